"""`infercap models import CONFIG.json`: published config.json files (tests/data/hf-configs,
copied from ../shared/reference/hf-configs) become catalog entries equal to the shipped ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import assert_clean_error
from infercap.arch import arch_of
from infercap.catalog import load_catalog, parse_model

DATA = Path(__file__).resolve().parent / "data" / "hf-configs"
CAT = load_catalog()
CASES = {
    "Qwen--Qwen3-30B-A3B.config.json": "qwen3-30b-a3b",
    "Qwen--Qwen3-32B.config.json": "qwen3-32b",
    "deepseek-ai--DeepSeek-V3.config.json": "deepseek-v3",
    "meta-llama--Llama-4-Scout-17B-16E-Instruct.config.json": "llama-4-scout",
    "meta-llama--Meta-Llama-3.1-8B.config.json": "llama-3.1-8b",
    "mistralai--Mixtral-8x7B-v0.1.config.json": "mixtral-8x7b",
}
FIELDS = ("num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads",
          "head_dim", "intermediate_size", "vocab_size", "tie_word_embeddings", "qk_norm",
          "moe", "mla")


@pytest.mark.parametrize("config,model_id", sorted(CASES.items()))
def test_import_matches_the_shipped_entry(run_cli, tmp_path, config, model_id):
    out_file = tmp_path / f"{model_id}.yaml"
    rc, out, err = run_cli(["models", "import", DATA / config, "--id", model_id, "-o",
                            out_file])
    assert rc == 0, err
    assert out == "" and "params_published is the computed count" in err
    entry = yaml.safe_load(out_file.read_text(encoding="utf-8"))
    imported = parse_model(entry, str(out_file))
    shipped = CAT.model(model_id)
    for f in FIELDS:
        assert getattr(imported, f) == getattr(shipped, f), f
    assert arch_of(imported).total_params == pytest.approx(arch_of(shipped).total_params)
    assert arch_of(imported).kv_bytes_per_token(2) == arch_of(shipped).kv_bytes_per_token(2)
    # the written file loads as a user catalog and plans
    rc, out, err = run_cli(["models", model_id, "--catalog", tmp_path])
    assert rc == 0, err


def test_import_bad_json_and_missing_keys(run_cli, tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{not json", encoding="utf-8")
    line = assert_clean_error(*run_cli(["models", "import", bad]))
    assert str(bad) in line and "expected JSON" in line
    bad.write_text('{"hidden_size": 64}', encoding="utf-8")
    line = assert_clean_error(*run_cli(["models", "import", bad]))
    assert "num_hidden_layers" in line
    line = assert_clean_error(*run_cli(["models", "import"]))
    assert "import" in line
