"""Catalog validation and precedence, through the command line.

Each bad-catalog test copies one valid shipped file into a temporary user catalog, corrupts
exactly one thing, and runs ``infercap gpus|models --catalog DIR``: the command must exit 2
with one line on stderr (no traceback) naming the file, the entry and the key, and print
nothing on stdout.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest
import yaml

from conftest import SHIPPED_HARDWARE, SHIPPED_MODELS, assert_clean_error, copy_shipped


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def dump(data: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def bad_gpu(tmp_path: Path, mutate) -> Path:
    """A user catalog holding a copy of h100-sxm.yaml changed by ``mutate(data)``."""
    path = copy_shipped("hardware", "h100-sxm", tmp_path)
    data = load(path)
    mutate(data)
    return dump(data, path)


def bad_model(tmp_path: Path, mutate) -> Path:
    path = copy_shipped("models", "llama-3.1-8b", tmp_path)
    data = load(path)
    mutate(data)
    return dump(data, path)


def gpus_error(run_cli, tmp_path: Path) -> str:
    return assert_clean_error(*run_cli(["gpus", "--catalog", tmp_path, "-f", "csv"]))


def models_error(run_cli, tmp_path: Path) -> str:
    return assert_clean_error(*run_cli(["models", "--catalog", tmp_path, "-f", "csv"]))


# ------------------------------------------------------------------ the shipped files are valid


def test_shipped_catalog_loads(catalog):
    assert len(catalog.gpus) >= 24 and len(catalog.models) >= 30
    for g in catalog.gpus.values():
        assert Path(g.path).stem == g.id
    for m in catalog.models.values():
        assert Path(m.path).stem == m.id


def test_unchanged_copy_is_accepted(run_cli, tmp_path):
    copy_shipped("hardware", "h100-sxm", tmp_path)
    copy_shipped("models", "llama-3.1-8b", tmp_path)
    for cmd in ("gpus", "models"):
        rc, out, err = run_cli([cmd, "--catalog", tmp_path, "-f", "csv"])
        assert rc == 0, err
        assert err == ""


# ------------------------------------------------------------------ hardware: one fault each


def test_negative_number_exact_message(run_cli, tmp_path):
    path = bad_gpu(tmp_path, lambda d: d.update(memory_bandwidth_tb_per_s=-1))
    line = gpus_error(run_cli, tmp_path)
    assert line == (f"infercap: error: {path}: entry 'h100-sxm': "
                     f"key 'memory_bandwidth_tb_per_s': expected a number > 0, got -1")


def test_zero_is_rejected(run_cli, tmp_path):
    path = bad_gpu(tmp_path, lambda d: d.update(tdp_w=0))
    line = gpus_error(run_cli, tmp_path)
    assert str(path) in line
    assert "entry 'h100-sxm'" in line and "key 'tdp_w'" in line
    assert line.endswith("expected a number > 0, got 0")


def test_nested_zero_names_dotted_key(run_cli, tmp_path):
    bad_gpu(tmp_path, lambda d: d["scale_up"].update(domain_gpus=0))
    line = gpus_error(run_cli, tmp_path)
    assert "key 'scale_up.domain_gpus'" in line and "expected a number > 0, got 0" in line


def test_unknown_key(run_cli, tmp_path):
    path = bad_gpu(tmp_path, lambda d: d.update(colour="green"))
    line = gpus_error(run_cli, tmp_path)
    assert str(path) in line
    assert "entry 'h100-sxm'" in line and "key 'colour'" in line
    assert "unknown key" in line


def test_string_for_a_number(run_cli, tmp_path):
    bad_gpu(tmp_path, lambda d: d.update(memory_bandwidth_tb_per_s="3.35"))
    line = gpus_error(run_cli, tmp_path)
    assert "key 'memory_bandwidth_tb_per_s'" in line
    assert "expected a number, got '3.35' (str)" in line


@pytest.mark.parametrize("value, words", [(True, "expected a number"),
                                          (float("nan"), "expected a finite number"),
                                          (float("inf"), "expected a finite number")])
def test_bool_and_non_finite_numbers(run_cli, tmp_path, value, words):
    bad_gpu(tmp_path, lambda d: d.update(tdp_w=value))
    line = gpus_error(run_cli, tmp_path)
    assert "key 'tdp_w'" in line and words in line


def test_missing_required_field(run_cli, tmp_path):
    path = bad_gpu(tmp_path, lambda d: d.pop("memory_bandwidth_tb_per_s"))
    line = gpus_error(run_cli, tmp_path)
    assert str(path) in line
    assert "entry 'h100-sxm'" in line and "key 'memory_bandwidth_tb_per_s'" in line
    assert "missing required key" in line


def test_both_memory_units_rejected(run_cli, tmp_path):
    bad_gpu(tmp_path, lambda d: d.update(memory_gb=85.9))
    line = gpus_error(run_cli, tmp_path)
    assert "exactly one of memory_gib, memory_gb" in line


def test_price_type_enumeration(run_cli, tmp_path):
    bad_gpu(tmp_path, lambda d: d["price"].update(type="cheap"))
    line = gpus_error(run_cli, tmp_path)
    assert "key 'price.type'" in line and "got 'cheap'" in line


@pytest.mark.parametrize("dtype", ["tf32", "fp8_sparse", "bf16_sparse", "fp6"])
def test_disallowed_dtype_key(run_cli, tmp_path, dtype):
    path = bad_gpu(tmp_path, lambda d: d.update(dense_tflops={dtype: 1}))
    line = gpus_error(run_cli, tmp_path)
    assert str(path) in line
    assert f"key 'dense_tflops.{dtype}'" in line and "unknown key" in line


def test_null_dtype_rejected(run_cli, tmp_path):
    bad_gpu(tmp_path, lambda d: d["dense_tflops"].update(fp4=None))
    line = gpus_error(run_cli, tmp_path)
    assert "key 'dense_tflops.fp4'" in line


def test_missing_source_for_numeric_field(run_cli, tmp_path):
    path = bad_gpu(tmp_path, lambda d: d["sources"].pop("tdp_w"))
    line = gpus_error(run_cli, tmp_path)
    assert str(path) in line and "entry 'h100-sxm'" in line
    assert "missing source" in line and "sources.tdp_w" in line


def test_malformed_yaml(run_cli, tmp_path):
    path = copy_shipped("hardware", "h100-sxm", tmp_path)
    path.write_text("id: h100-sxm\nname: [unclosed\nvendor: NVIDIA\n", encoding="utf-8")
    line = gpus_error(run_cli, tmp_path)
    assert str(path) in line and "malformed YAML" in line


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n"])
def test_empty_file(run_cli, tmp_path, text):
    path = copy_shipped("hardware", "h100-sxm", tmp_path)
    path.write_text(text, encoding="utf-8")
    line = gpus_error(run_cli, tmp_path)
    assert str(path) in line and "empty file" in line


def test_not_a_mapping(run_cli, tmp_path):
    path = copy_shipped("hardware", "h100-sxm", tmp_path)
    path.write_text("- id: h100-sxm\n", encoding="utf-8")
    line = gpus_error(run_cli, tmp_path)
    assert str(path) in line and "expected a mapping" in line


def test_undecodable_bytes(run_cli, tmp_path):
    path = copy_shipped("hardware", "h100-sxm", tmp_path)
    path.write_bytes(b"id: h100-sxm\nname: \xff\xfe\n")
    line = gpus_error(run_cli, tmp_path)
    assert str(path) in line and "UTF-8" in line


def test_id_not_matching_file_name(run_cli, tmp_path):
    src = copy_shipped("hardware", "h100-sxm", tmp_path)
    renamed = src.with_name("my-h100.yaml")
    src.rename(renamed)
    line = gpus_error(run_cli, tmp_path)
    assert str(renamed) in line
    assert "entry 'h100-sxm'" in line and "key 'id'" in line
    assert "h100-sxm.yaml" in line


def test_bad_id_characters(run_cli, tmp_path):
    src = copy_shipped("hardware", "h100-sxm", tmp_path)
    data = load(src)
    data["id"] = "H100 SXM"
    src.unlink()
    dump(data, tmp_path / "hardware" / "H100 SXM.yaml")
    line = gpus_error(run_cli, tmp_path)
    assert "key 'id'" in line and "lower-case" in line


def test_duplicate_id_in_one_folder_names_both_files(run_cli, tmp_path):
    first = copy_shipped("hardware", "h100-sxm", tmp_path)
    second = first.with_suffix(".yml")  # same id, same folder
    second.write_bytes(first.read_bytes())
    line = gpus_error(run_cli, tmp_path)
    assert "duplicate id" in line and "entry 'h100-sxm'" in line
    assert str(first) in line and str(second) in line


def test_duplicate_id_between_subfolder_and_top_level(run_cli, tmp_path):
    first = copy_shipped("hardware", "h100-sxm", tmp_path)
    top = tmp_path / "h100-sxm.yaml"  # a loose file in the same catalog folder
    top.write_bytes(first.read_bytes())
    line = gpus_error(run_cli, tmp_path)
    assert "duplicate id" in line and str(first) in line and str(top) in line


def test_catalog_folder_must_exist(run_cli, tmp_path):
    missing = tmp_path / "nope"
    line = assert_clean_error(*run_cli(["gpus", "--catalog", missing, "-f", "csv"]))
    assert "key '--catalog'" in line and str(missing) in line


# ------------------------------------------------------------------ models: one fault each


def test_model_unknown_key(run_cli, tmp_path):
    path = bad_model(tmp_path, lambda d: d.update(rope_theta=500000))
    line = models_error(run_cli, tmp_path)
    assert str(path) in line and "entry 'llama-3.1-8b'" in line
    assert "key 'rope_theta'" in line and "unknown key" in line


def test_model_float_for_integer(run_cli, tmp_path):
    bad_model(tmp_path, lambda d: d.update(hidden_size=4096.5))
    line = models_error(run_cli, tmp_path)
    assert "key 'hidden_size'" in line and "expected an integer" in line


def test_model_string_for_number(run_cli, tmp_path):
    bad_model(tmp_path, lambda d: d.update(num_hidden_layers="32"))
    line = models_error(run_cli, tmp_path)
    assert "key 'num_hidden_layers'" in line and "expected an integer, got '32' (str)" in line


def test_model_negative_number(run_cli, tmp_path):
    path = bad_model(tmp_path, lambda d: d.update(vocab_size=-1))
    line = models_error(run_cli, tmp_path)
    assert line == (f"infercap: error: {path}: entry 'llama-3.1-8b': key 'vocab_size': "
                    f"expected a number > 0, got -1")


def test_model_missing_required(run_cli, tmp_path):
    bad_model(tmp_path, lambda d: d.pop("num_key_value_heads"))
    line = models_error(run_cli, tmp_path)
    assert "key 'num_key_value_heads'" in line and "missing required key" in line


def test_model_missing_params_published(run_cli, tmp_path):
    bad_model(tmp_path, lambda d: d.pop("params_published"))
    line = models_error(run_cli, tmp_path)
    assert "key 'params_published'" in line


def test_model_missing_architecture_source(run_cli, tmp_path):
    bad_model(tmp_path, lambda d: d["sources"].pop("architecture"))
    line = models_error(run_cli, tmp_path)
    assert "key 'sources'" in line and "sources.architecture" in line


def test_model_kv_heads_must_divide_heads(run_cli, tmp_path):
    bad_model(tmp_path, lambda d: d.update(num_key_value_heads=5))
    line = models_error(run_cli, tmp_path)
    assert "key 'num_key_value_heads'" in line and "divisor" in line


def test_model_bad_layer_pattern(run_cli, tmp_path):
    bad_model(tmp_path, lambda d: d.update(
        sliding_window={"window_tokens": 4096, "layer_pattern": "LXG"}))
    line = models_error(run_cli, tmp_path)
    assert "key 'sliding_window.layer_pattern'" in line


def test_model_moe_top_k_above_experts(run_cli, tmp_path):
    bad_model(tmp_path, lambda d: d.update(
        moe={"num_experts": 4, "experts_per_token": 8, "expert_intermediate_size": 1024}))
    line = models_error(run_cli, tmp_path)
    assert "key 'moe.experts_per_token'" in line


def test_loose_file_of_unknown_kind(run_cli, tmp_path):
    path = tmp_path / "mystery.yaml"
    path.write_text("id: mystery\nname: Mystery\n", encoding="utf-8")
    line = gpus_error(run_cli, tmp_path)
    assert str(path) in line and "expected a hardware entry" in line


# ------------------------------------------------------------------ precedence


def _user_h100(folder: Path, bandwidth: float, loose: bool = False) -> Path:
    data = load(SHIPPED_HARDWARE / "h100-sxm.yaml")
    data["memory_bandwidth_tb_per_s"] = bandwidth
    target = folder / "h100-sxm.yaml" if loose else folder / "hardware" / "h100-sxm.yaml"
    return dump(data, target)


@pytest.mark.parametrize("loose", [False, True], ids=["hardware-subfolder", "loose-file"])
def test_user_entry_overrides_shipped(run_cli, tmp_path, loose):
    path = _user_h100(tmp_path, 9.99, loose)
    rc, out, err = run_cli(["gpus", "h100-sxm", "--catalog", tmp_path])
    assert rc == 0, err
    shown = json.loads(out)
    assert shown["memory_bandwidth_tb_per_s"] == 9.99
    assert shown["path"] == str(path)
    # the listing keeps every shipped GPU, with the new value for h100-sxm
    rc, out, err = run_cli(["gpus", "--catalog", tmp_path, "-f", "csv"])
    assert rc == 0, err
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(out))}
    assert len(rows) == len(list(SHIPPED_HARDWARE.glob("*.yaml")))
    assert float(rows["h100-sxm"]["memory_bandwidth_tb_per_s"]) == 9.99
    assert float(rows["h200-sxm"]["memory_bandwidth_tb_per_s"]) != 9.99


def test_env_var_overrides_shipped(run_cli, tmp_path):
    _user_h100(tmp_path, 7.77)
    rc, out, err = run_cli(["gpus", "h100-sxm"], env={"INFERCAP_CATALOG_PATH": str(tmp_path)})
    assert rc == 0, err
    assert json.loads(out)["memory_bandwidth_tb_per_s"] == 7.77
    # without the variable the shipped value is back
    rc, out, _ = run_cli(["gpus", "h100-sxm"])
    assert json.loads(out)["memory_bandwidth_tb_per_s"] == 3.35


def test_env_var_path_list_and_catalog_option_order(run_cli, tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    _user_h100(a, 1.11)
    _user_h100(b, 2.22)
    _user_h100(c, 3.33)
    env = {"INFERCAP_CATALOG_PATH": os.pathsep.join([str(a), str(b)])}
    rc, out, err = run_cli(["gpus", "h100-sxm"], env=env)
    assert rc == 0, err
    assert json.loads(out)["memory_bandwidth_tb_per_s"] == 2.22  # later path wins
    rc, out, err = run_cli(["gpus", "h100-sxm", "--catalog", c], env=env)
    assert rc == 0, err
    assert json.loads(out)["memory_bandwidth_tb_per_s"] == 3.33  # --catalog wins over env


def test_env_var_bad_folder(run_cli, tmp_path):
    rc, out, err = run_cli(["gpus", "-f", "csv"],
                           env={"INFERCAP_CATALOG_PATH": str(tmp_path / "missing")})
    line = assert_clean_error(rc, out, err)
    assert "INFERCAP_CATALOG_PATH" in line


def test_env_var_bad_file_is_reported(run_cli, tmp_path):
    path = bad_gpu(tmp_path, lambda d: d.update(tdp_w=-5))
    rc, out, err = run_cli(["gpus", "-f", "csv"], env={"INFERCAP_CATALOG_PATH": str(tmp_path)})
    line = assert_clean_error(rc, out, err)
    assert str(path) in line and "key 'tdp_w'" in line


def test_new_user_gpu_is_planned(run_cli, tmp_path):
    data = load(SHIPPED_HARDWARE / "h100-sxm.yaml")
    data["id"] = "my-gpu"
    data["name"] = "My test accelerator"
    dump(data, tmp_path / "hardware" / "my-gpu.yaml")
    rc, out, err = run_cli(["plan", "-m", "llama-3.1-8b", "--gpu", "my-gpu", "--catalog",
                            tmp_path, "-f", "csv", "-q"])
    assert rc == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows and {r["gpu"] for r in rows} == {"my-gpu"}


def test_new_user_model_is_listed(run_cli, tmp_path):
    data = load(SHIPPED_MODELS / "llama-3.1-8b.yaml")
    data["id"] = "my-model"
    data["num_hidden_layers"] = 16
    dump(data, tmp_path / "models" / "my-model.yaml")
    rc, out, err = run_cli(["models", "--catalog", tmp_path, "-f", "json"])
    assert rc == 0, err
    rows = {r["id"]: r for r in json.loads(out)}
    assert rows["my-model"]["layers"] == 16
    assert "llama-3.1-8b" in rows


def test_unknown_gpu_id_in_plan(run_cli):
    line = assert_clean_error(*run_cli(["plan", "--gpu", "nope", "-f", "csv"]))
    assert "'nope'" in line and "unknown GPU id" in line
    assert "h100-sxm" in line  # the known ids are listed


def test_unknown_model_id_in_plan(run_cli):
    line = assert_clean_error(*run_cli(["plan", "--model", "nope-7b", "-f", "csv"]))
    assert "'nope-7b'" in line and "unknown model id" in line


def test_gpus_add_starts_a_loadable_entry_that_asks_for_sources(run_cli, tmp_path):
    (tmp_path / "hardware").mkdir()
    target = tmp_path / "hardware" / "my-gpu.yaml"
    rc, out, err = run_cli(["gpus", "add", "my-gpu", "--from", "h200-sxm", "-o", target])
    assert rc == 0, err
    text = target.read_text(encoding="utf-8")
    assert "id: my-gpu" in text and "TO CHECK" in text and "efficiency" not in text
    rc, out, err = run_cli(["plan", "-m", "llama-3.1-8b", "--gpu", "my-gpu", "--catalog",
                            tmp_path, "-f", "csv", "-q"])
    assert rc == 0, err
    assert "my-gpu" in out
    line = assert_clean_error(*run_cli(["gpus", "add", "Bad_Id"]))
    assert "key 'NEW_ID'" in line


def test_parse_cache_speeds_up_and_never_serves_a_stale_entry(tmp_path, monkeypatch):
    from infercap.catalog import load_catalog

    monkeypatch.delenv("INFERCAP_NO_CACHE")
    monkeypatch.setenv("INFERCAP_CACHE_DIR", str(tmp_path / "cache"))
    cat = tmp_path / "cat"
    target = copy_shipped("hardware", "h100-sxm", cat)
    assert load_catalog([cat]).gpu("h100-sxm").tdp_w == 700
    assert list((tmp_path / "cache").glob("catalog-*.json"))  # written (data only)
    assert load_catalog([cat]).gpu("h100-sxm").tdp_w == 700  # served from the cache
    text = target.read_text(encoding="utf-8").replace("tdp_w: 700", "tdp_w: 650")
    target.write_text(text, encoding="utf-8")
    os.utime(target, ns=(1, 1))  # even with an old timestamp: the size changed
    assert load_catalog([cat]).gpu("h100-sxm").tdp_w == 650
    bad = text.replace("tdp_w: 650", "tdp_w: -65")
    target.write_text(bad, encoding="utf-8")
    with pytest.raises(Exception, match="expected a number > 0, got -65"):
        load_catalog([cat])  # a cached file is still validated on every load
    (tmp_path / "cache" / next(p.name for p in (tmp_path / "cache").iterdir())).write_bytes(
        b"garbage")
    target.write_text(text, encoding="utf-8")
    assert load_catalog([cat]).gpu("h100-sxm").tdp_w == 650  # a corrupt cache is no cache
