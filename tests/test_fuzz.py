"""Fuzzing every user input path (hypothesis): catalog entries, measurement files, profiles and
CLI options. The property: a clean InfercapError naming the file (exit code 2 through the CLI,
one line, no traceback) or a valid result with only finite numbers — never another exception.
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import assert_clean_error
from infercap.catalog import load_catalog
from infercap.errors import InfercapError
from infercap.measurements import load_cases
from infercap.profile import load_profile_file

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = int(os.environ.get("INFERCAP_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

junk_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**30, max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["", "nan", "inf", "-1", "1e400", "ünïcödé", "0x10", "~", "null"]),
)
junk = st.recursive(junk_scalars, lambda c: st.one_of(st.lists(c, max_size=3),
                                                      st.dictionaries(st.text(max_size=8), c,
                                                                      max_size=3)),
                    max_leaves=8)


def mutate(data: dict, path: list, value) -> dict:  # type: ignore[type-arg]
    out = copy.deepcopy(data)
    node = out
    for k in path[:-1]:
        node = node[k]
    if value is _DELETE:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return out


_DELETE = object()


def key_paths(data: dict, prefix: tuple = ()) -> list[list]:  # type: ignore[type-arg]
    paths = []
    for k, v in data.items():
        paths.append([*prefix, k])
        if isinstance(v, dict):
            paths += key_paths(v, (*prefix, k))
    return paths


def write(tmp: Path, sub: str, name: str, data) -> Path:  # type: ignore[no-untyped-def]
    folder = tmp / sub if sub else tmp
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    try:
        text = yaml.safe_dump(data, allow_unicode=True)
    except yaml.YAMLError:
        text = "{unbalanced: ["
    p.write_text(text, encoding="utf-8")
    return p


def check_catalog(tmp: Path, file: Path) -> None:
    try:
        cat = load_catalog([tmp])
    except InfercapError as exc:
        assert str(file) in str(exc) or "--catalog" in str(exc), str(exc)
        assert "\n" not in str(exc)
        return
    for g in cat.gpus.values():
        assert math.isfinite(g.memory_bytes) and g.memory_bytes > 0
        assert all(math.isfinite(v) and v > 0 for v in g.dense_tflops.values())


HW = yaml.safe_load((ROOT / "hardware" / "h100-sxm.yaml").read_text())
MODEL = yaml.safe_load((ROOT / "models" / "deepseek-v3.yaml").read_text())
CASES = yaml.safe_load((ROOT / "infercap" / "benchmarks" / "measured-h100-sxm.yaml").read_text())
PROFILE = yaml.safe_load((ROOT / "infercap" / "profiles" / "trtllm.yaml").read_text())


@FUZZ
@given(data=st.data())
def test_fuzz_hardware_entries(tmp_path_factory, data):
    tmp = tmp_path_factory.mktemp("hw")
    path = data.draw(st.sampled_from(key_paths(HW)))
    value = data.draw(st.one_of(junk, st.just(_DELETE)))
    file = write(tmp, "hardware", "h100-sxm.yaml", mutate(HW, path, value))
    check_catalog(tmp, file)


@FUZZ
@given(data=st.data())
def test_fuzz_model_entries_and_plan_on_them(tmp_path_factory, data):
    tmp = tmp_path_factory.mktemp("m")
    path = data.draw(st.sampled_from(key_paths(MODEL)))
    value = data.draw(st.one_of(junk, st.just(_DELETE),
                                st.integers(min_value=1, max_value=10**6)))
    file = write(tmp, "models", "deepseek-v3.yaml", mutate(MODEL, path, value))
    try:
        cat = load_catalog([tmp])
    except InfercapError as exc:
        assert str(file) in str(exc) and "\n" not in str(exc)
        return
    from infercap.precision import PRESETS
    from infercap.profile import Resolver, load_profile
    from infercap.sweep import Workload, sweep

    r = sweep(cat.model("deepseek-v3"), [cat.gpu("h100-sxm")], [PRESETS["fp8"]],
              Workload(128, 16), Resolver(load_profile("default")), tps=[8], pps=[2],
              dps=[1], batches=np.array([1.0, 64.0]))
    for v in r.columns.values():
        if v.dtype.kind == "f":
            assert np.all(np.isfinite(v))


@FUZZ
@given(data=st.data())
def test_fuzz_measurement_files(tmp_path_factory, data):
    tmp = tmp_path_factory.mktemp("c")
    case = CASES["cases"][data.draw(st.integers(0, len(CASES["cases"]) - 1))]
    path = data.draw(st.sampled_from(key_paths(case)))
    value = data.draw(st.one_of(junk, st.just(_DELETE)))
    doc = {"cases": [mutate(case, path, value)]}
    if data.draw(st.booleans()):
        doc = data.draw(st.one_of(junk, st.just(doc)))
    file = write(tmp, "", "runs.yaml", doc)
    try:
        load_cases([file])
    except InfercapError as exc:
        assert str(file) in str(exc) and "\n" not in str(exc)


@FUZZ
@given(data=st.data())
def test_fuzz_profiles(tmp_path_factory, data):
    tmp = tmp_path_factory.mktemp("p")
    path = data.draw(st.sampled_from(key_paths(PROFILE)))
    value = data.draw(st.one_of(junk, st.just(_DELETE)))
    file = write(tmp, "", "p.yaml", mutate(PROFILE, path, value))
    try:
        load_profile_file(file)
    except InfercapError as exc:
        assert str(file) in str(exc) and "\n" not in str(exc)


def test_malformed_and_nested_yaml(tmp_path):
    hw = tmp_path / "hardware"
    hw.mkdir()
    for text in ("", "[[[[", "a: b: c", "- " * 3000 + "x", "\x00\x01", "{" * 500,
                 "id: h100-sxm\n" * 3):
        f = hw / "h100-sxm.yaml"
        f.write_text(text, encoding="utf-8")
        check_catalog(tmp_path, f)
    (hw / "h100-sxm.yaml").write_bytes(b"\xff\xfe bad utf8")
    check_catalog(tmp_path, hw / "h100-sxm.yaml")


@settings(max_examples=12, deadline=None)
@given(opt=st.sampled_from(["--input-tokens", "--output-tokens", "--max-tpot-ms",
                            "--max-ttft-ms", "--top", "--tp", "--pp", "--max-gpus"]),
       value=st.sampled_from(["nan", "inf", "-inf", "-1", "1e400", "abc", "", "0.5",
                              "99999999999999999999", "ü"]))
def test_fuzz_cli_numeric_options(run_cli, opt, value):
    rc, out, err = run_cli(["plan", "-m", "llama-3.1-8b", "--gpu", "h100-sxm", "-f", "csv",
                            "-q", opt, value])
    assert "Traceback" not in err
    if rc == 2:
        assert_clean_error(rc, out, err)
    else:
        assert rc in (0, 1), err
        for line in out.splitlines()[1:]:
            assert "nan" not in line.lower().split(",") and "inf" not in line.lower()


def test_enormous_numbers_do_not_hang(tmp_path):
    """10**30 layers (or a window pattern over them) is answered at once, never looped over."""
    import time

    from infercap.arch import arch_of

    for patch in ({"num_hidden_layers": 10**30},
                  {"num_hidden_layers": 10**30, "moe": {**MODEL["moe"], "layer_step": 7}}):
        folder = tmp_path / str(len(patch))
        write(folder, "models", "deepseek-v3.yaml", {**MODEL, **patch})
        t0 = time.perf_counter()
        try:
            a = arch_of(load_catalog([folder]).model("deepseek-v3"))
            assert a.n_moe_layers > 0
        except InfercapError:
            pass
        assert time.perf_counter() - t0 < 5
    gemma = yaml.safe_load((ROOT / "models" / "gemma-3-27b.yaml").read_text())
    # a count past 1e15 is a typo: refused with the key named, before any arithmetic on it
    for n, needle in ((10**20, "key 'num_hidden_layers': expected a number of magnitude at most"),
                      (10**30, "line 14: malformed YAML (an integer of 31 digits (at most 30))")):
        write(tmp_path / "g", "models", "gemma-3-27b.yaml", {**gemma, "num_hidden_layers": n})
        with pytest.raises(InfercapError) as exc:
            load_catalog([tmp_path / "g"])
        assert needle in str(exc.value)
