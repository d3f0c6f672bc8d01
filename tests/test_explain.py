"""`infercap explain`: the same numbers as `plan`, broken down, with the figures' sources."""

from __future__ import annotations

import csv
import io
import json

import pytest

from conftest import assert_clean_error

ARGS = ["-m", "llama-3.1-8b", "-g", "h100-sxm", "-p", "fp8", "--tp", "1", "-b", "66",
        "-i", "1024", "-n", "256"]


def test_explain_json_matches_plan_for_the_same_configuration(run_cli):
    rc, out, err = run_cli(["explain", *ARGS, "-f", "json"])
    assert rc == 0, err
    d = json.loads(out)
    assert d["layout"] == {"tp": 1, "pp": 1, "dp": 1, "ep": 1, "gpus": 1}
    rc, out, err = run_cli(["plan", "-m", "llama-3.1-8b", "--gpu", "h100-sxm", "-p", "fp8",
                            "--tp", "1", "--pp", "1", "-i", "1024", "-n", "256", "--all-rows",
                            "--top", "0", "--max-tpot-ms", "0", "--max-ttft-ms", "0", "-f",
                            "csv", "-q"])
    assert rc == 0, err
    rows = [r for r in csv.DictReader(io.StringIO(out)) if r["batch"] == "66"]
    assert len(rows) == 1
    assert d["serving"]["tpot_ms"] == pytest.approx(float(rows[0]["tpot_ms"]), rel=1e-5)
    assert d["serving"]["ttft_ms"] == pytest.approx(float(rows[0]["ttft_ms"]), rel=1e-5)
    assert d["memory_per_gpu"]["max_sequences_that_fit"] >= 66


def test_explain_breakdown_adds_up_and_names_sources(run_cli):
    d = json.loads(run_cli(["explain", *ARGS, "-f", "json"])[1])
    for key in ("prefill", "decode_step"):
        s = d[key]
        parts = (s["gemm_ms"] + s["attention_ms"] + s["activation_io_ms"]
                 + s["communication_ms"] + s["layer_overhead_ms"])
        assert s["total_ms"] == pytest.approx(max(parts, s["host_dispatch_ms"]), rel=1e-9)
    # decode at batch 64 reads the weights: memory-bound, intensity below the ridge point
    assert d["decode_step"]["gemm_bound"] == "memory"
    assert d["decode_step"]["intensity_over_ridge"] < 1
    assert d["prefill"]["gemm_bound"] == "compute"
    figs = d["figures"]
    assert figs["memory_bandwidth_fraction"]["source"].startswith("infercap/profiles/trtllm")
    assert all(f["meaning"] and f["source"] for f in figs.values())
    m = d["memory_per_gpu"]
    assert m["weights_gib"] + m["kv_cache_gib"] + m["workspace_gib"] + m["reserved_gib"] \
        + m["free_gib"] == pytest.approx(m["capacity_gib"])


def test_explain_tree_on_a_terminal_format(run_cli):
    rc, out, err = run_cli(["explain", *ARGS, "-f", "table"])
    assert rc == 0, err
    assert "decode step" in out and "memory per GPU" in out
    assert "[infercap/profiles/" in out  # sources are printed, not eaten as markup


@pytest.mark.parametrize("extra,key", [
    (["--tp", "3"], "layout"),
    (["-p", "nope"], "--precision"),
    (["-g", "nope"], "gpu"),
    (["-f", "csv"], "--format"),
])
def test_explain_bad_input(run_cli, extra, key):
    line = assert_clean_error(*run_cli(["explain", *ARGS, *extra]))
    assert f"key '{key}'" in line
