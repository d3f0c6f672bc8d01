"""`infercap models import CONFIG.json`: published config.json files (tests/data/hf-configs,
copied from ../shared/reference/hf-configs) become catalog entries equal to the shipped ones."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import yaml

from conftest import assert_clean_error
from infercap.arch import arch_of
from infercap.catalog import load_catalog, parse_model
from infercap.hfimport import KINDS, convert

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


# --- wrongly typed config.json values (issue 16) -------------------------------------------

LLAMA = json.loads((DATA / "meta-llama--Meta-Llama-3.1-8B.config.json").read_text("utf-8"))
SCOUT = json.loads((DATA / "meta-llama--Llama-4-Scout-17B-16E-Instruct.config.json")
                   .read_text("utf-8"))
# every JSON type, the edges of the integer range, and NaN / Infinity (json.dumps writes the
# literals Python's json reads back)
JUNK = ["4096", "false", "", True, False, [], [1], ["x"], {}, {"a": 1}, None, 1.5, 4096.0,
        math.nan, math.inf, 10**400, -1, 0, 1, 2**31 - 1, 2**31]


def _fits(kind: str, v: object) -> bool:
    """Written apart from hfimport: which values a key of each kind may legitimately hold."""
    def count(x: object, low: int) -> bool:
        return type(x) is int and low <= x < 2**31

    if v is None:  # null is absent: the key's fallback applies
        return True
    return {
        "count": lambda: count(v, 1),
        "size": lambda: count(v, 0),
        "flag": lambda: type(v) is bool,
        "text": lambda: type(v) is str,
        "map": lambda: type(v) is dict,
        "texts": lambda: type(v) is list and all(type(x) is str for x in v),
        "bits": lambda: type(v) is list and all(x in (0, 1) and type(x) in (int, bool)
                                               for x in v),
        "indices": lambda: type(v) is list and all(count(x, 0) for x in v),
    }[kind]()


@pytest.fixture(scope="module")
def _command():  # type: ignore[no-untyped-def]
    import typer

    from infercap import cli

    return typer.main.get_command(cli.app)  # typer rebuilds it on every call: 50 ms


@pytest.fixture
def import_cli(monkeypatch, capsys, tmp_path, _command):
    """``import_cli(config) -> (rc, stdout, stderr)``: `infercap models import` through the
    real entry point (cli.main, its error handling included) in-process, for speed: the
    thousands of runs below would take minutes as subprocesses."""
    from infercap import cli

    monkeypatch.setattr(cli, "app", _command)

    def run(config: object) -> tuple[int, str, str]:
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config), encoding="utf-8")
        monkeypatch.setattr(sys, "argv", ["infercap", "models", "import", str(path)])
        capsys.readouterr()
        try:
            cli.main()
            rc = 0
        except SystemExit as exc:
            rc = int(exc.code or 0)
        out, err = capsys.readouterr()
        return rc, out, err

    return run


def _check(result: tuple[int, str, str], path: str, kind: str, value: object) -> None:
    rc, out, err = result
    assert "Traceback" not in err, err
    if not _fits(kind, value):
        line = assert_clean_error(rc, out, err)
        assert f"key '{path}'" in line and "expected" in line, line
        assert len(line) < 400, line  # the bad value is quoted cut, never whole
    elif rc:
        assert_clean_error(rc, out, err)  # e.g. an empty text_config: no hidden_size
    else:
        body = out.split("\n", 1)[1]
        parse_model(yaml.safe_load(body), "<stdout>")


@pytest.mark.parametrize("key", sorted(KINDS))
def test_every_key_read_rejects_wrong_types(import_cli, key):
    """Each key hfimport reads, given each JSON type at the top level (a Llama 3.1 config) and
    in text_config (Llama 4 Scout): a one-line error naming the key path, or a valid entry
    where the value is one the key may hold."""
    for value in JUNK:
        _check(import_cli({**LLAMA, key: value}), key, KINDS[key], value)
        text = {**SCOUT["text_config"], key: value}
        _check(import_cli({**SCOUT, "text_config": text}), f"text_config.{key}", KINDS[key],
               value)
    for value in JUNK:  # the one nested key read
        qc = {"quant_method": value}
        _check(import_cli({**LLAMA, "quantization_config": qc}),
               "quantization_config.quant_method", "text", value)


def test_every_key_read_is_type_checked():
    """The converter reads no config.json key that KINDS does not type-check: every dict
    records the keys looked up in it, over each shipped test config."""
    seen: set[str] = set()

    class Recording(dict):  # type: ignore[type-arg]
        def get(self, key, default=None):  # type: ignore[no-untyped-def]
            seen.add(key)
            return super().get(key, default)

        def __getitem__(self, key):  # type: ignore[no-untyped-def]
            seen.add(key)
            return super().__getitem__(key)

        def __contains__(self, key):  # type: ignore[no-untyped-def]
            seen.add(key)
            return super().__contains__(key)

    for config in CASES:
        cfg = json.loads((DATA / config).read_text("utf-8"), object_pairs_hook=Recording)
        convert(cfg)
    assert seen and seen <= set(KINDS) | {"quant_method"}, sorted(seen - set(KINDS))


def _write(tmp_path: Path, config: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def test_reported_wrong_types(run_cli, tmp_path):
    """The three reported cases, through the real entry point: "false" is not false, a 0 kv
    head count is not "absent", and a text_config key is named with its path."""
    line = assert_clean_error(*run_cli(["models", "import", _write(
        tmp_path, {**LLAMA, "tie_word_embeddings": "false"})]))
    assert line == (f"infercap: error: {tmp_path / 'config.json'}: key 'tie_word_embeddings': "
                    "expected true or false, got 'false' (str)")
    line = assert_clean_error(*run_cli(["models", "import", _write(
        tmp_path, {**LLAMA, "num_key_value_heads": 0})]))
    assert "key 'num_key_value_heads': expected a positive integer" in line
    assert line.endswith("got 0 (int)")
    text = {**SCOUT["text_config"], "num_key_value_heads": 0}
    line = assert_clean_error(*run_cli(["models", "import", _write(
        tmp_path, {**SCOUT, "text_config": text})]))
    assert "key 'text_config.num_key_value_heads'" in line and line.endswith("got 0 (int)")
    for bad in ({"hidden_size": -1}, {"num_hidden_layers": 0}, {"vocab_size": 4096.0},
                {"head_dim": True}, {"intermediate_size": "14336"}):
        key, value = next(iter(bad.items()))
        line = assert_clean_error(*run_cli(["models", "import", _write(
            tmp_path, {**LLAMA, **bad})]))
        assert f"key '{key}': expected a positive integer" in line, line


def test_fallbacks_apply_when_absent_or_null(import_cli):
    """Absent and null are the same: the documented fallback. A JSON bool is read as itself."""
    def imported(config: dict) -> dict:  # type: ignore[type-arg]
        rc, out, err = import_cli(config)
        assert rc == 0, err
        return yaml.safe_load(out.split("\n", 1)[1])

    bare = {k: v for k, v in LLAMA.items() if k != "num_key_value_heads"}
    assert imported(bare)["num_key_value_heads"] == 32  # absent: as many as query heads
    assert imported({**LLAMA, "num_key_value_heads": None})["num_key_value_heads"] == 32
    assert imported({**bare, "num_kv_heads": 4})["num_key_value_heads"] == 4
    assert imported({**bare, "multi_query": True})["num_key_value_heads"] == 1
    assert imported(LLAMA)["num_key_value_heads"] == 8
    assert imported({**LLAMA, "tie_word_embeddings": True})["tie_word_embeddings"] is True
    assert imported({**LLAMA, "tie_word_embeddings": False})["tie_word_embeddings"] is False
    assert imported({**LLAMA, "tie_word_embeddings": None})["tie_word_embeddings"] is False
    # a wrapper's own tie_word_embeddings applies where text_config has none (or null)
    text = {**SCOUT["text_config"], "tie_word_embeddings": None}
    assert imported({**SCOUT, "text_config": text, "tie_word_embeddings": True})[
        "tie_word_embeddings"] is True
    assert imported({**LLAMA, "max_position_embeddings": None})[
        "max_position_embeddings"] == 2048


def test_bad_json_files(run_cli, tmp_path):
    """Not an object, not JSON, not UTF-8, or a NaN / Infinity where a count belongs: one
    line naming the file."""
    path = tmp_path / "config.json"
    for top in ([1, 2], "text", 3, None, True):
        path.write_text(json.dumps(top), encoding="utf-8")
        line = assert_clean_error(*run_cli(["models", "import", path]))
        assert str(path) in line and "expected a JSON object at the top level" in line
    for text in ("", "{", '{"hidden_size": 4096,}', "\ufeff{}", "{} []"):
        path.write_text(text, encoding="utf-8")
        line = assert_clean_error(*run_cli(["models", "import", path]))
        assert str(path) in line and "expected JSON" in line, line
    path.write_bytes(b'{"model_type": "\xff\xfe"}')
    line = assert_clean_error(*run_cli(["models", "import", path]))
    assert str(path) in line and "expected JSON" in line and "utf-8" in line
    body = json.dumps(LLAMA)
    for literal, key in (("NaN", "hidden_size"), ("Infinity", "num_hidden_layers"),
                         ("-Infinity", "vocab_size"), ("1e400", "intermediate_size")):
        path.write_text(body.replace(f'"{key}": {LLAMA[key]}', f'"{key}": {literal}'),
                        encoding="utf-8")
        line = assert_clean_error(*run_cli(["models", "import", path]))
        assert f"key '{key}': expected a positive integer" in line, line
        assert "(float)" in line
