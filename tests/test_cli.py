"""Command-line behaviour, by running ``python -m infercap`` and parsing what it prints.

Contract: stdout carries data only (CSV, JSON or a table), messages go to stderr; exit 0 with
results, 1 when nothing meets the constraints, 2 on a usage, catalog or input error (one line
on stderr, no traceback).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

import pytest
import yaml

import infercap
from conftest import assert_clean_error

FORMAT_MD = Path("/work/shared/benchmarks/FORMAT.md")

FORMAT_GPU_IDS = ["a100-sxm-80gb", "h100-sxm", "h200-sxm", "h800", "gh200", "l40s", "b200",
                  "gb200", "gb300", "rtx-pro-6000", "mi300x", "mi325x"]
EXTRA_GPU_IDS = ["h100-pcie", "h100-nvl", "h20", "a100-sxm-40gb", "l4", "a10g", "t4", "b300",
                 "mi355x", "gaudi3", "tpu-v5e", "tpu-v6e"]
FORMAT_MODEL_IDS = ["llama-3.1-8b", "llama-3.1-70b", "llama-3.3-70b", "llama-3-70b",
                    "llama-2-70b", "llama-3.1-405b", "llama-3.2-1b", "llama-4-scout",
                    "llama-4-maverick", "mistral-7b", "mixtral-8x7b", "mixtral-8x22b",
                    "qwen2.5-14b", "qwen3-8b", "qwen3-14b", "qwen3-32b", "qwen3-30b-a3b",
                    "qwen3-235b-a22b", "deepseek-v3", "deepseek-r1", "gpt-oss-20b",
                    "gpt-oss-120b", "glm-4.5-air", "glm-4.6", "falcon-180b"]

PLAN_TEXT_COLUMNS = {"model", "gpu", "precision", "compute_dtype", "price_type",
                     "decode_bound", "pareto"}
# every quantity with a unit says it in its name
PLAN_UNIT_COLUMNS = {"ttft_ms", "tpot_ms", "e2e_latency_s", "output_tokens_per_s",
                     "output_tokens_per_s_per_gpu", "tokens_per_s_per_user", "usd_per_hour",
                     "usd_per_m_output_tokens", "memory_used_gib_per_gpu",
                     "memory_gib_per_gpu"}
PLAN_ARGS = ["plan", "-m", "llama-3.1-8b", "-g", "h100-sxm,l40s,mi300x", "-i", "1024",
             "-n", "256"]


def parse_csv(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.reader(io.StringIO(text))
    rows = list(reader)
    assert rows, "no CSV at all"
    header = rows[0]
    for r in rows[1:]:
        assert len(r) == len(header), f"ragged CSV row: {r}"
    return header, [dict(zip(header, r)) for r in rows[1:]]


# ------------------------------------------------------------------ plan: CSV and JSON


@pytest.fixture(scope="module")
def plan_csv(run_cli):
    rc, out, err = run_cli(PLAN_ARGS + ["-f", "csv"])
    assert rc == 0, err
    return out, err


def test_plan_csv_parses(plan_csv):
    out, _ = plan_csv
    header, rows = parse_csv(out)
    assert header[0] == "model"  # no banner before the header
    assert len(set(header)) == len(header)
    assert header.count("model") == 1
    assert 1 <= len(rows) <= 15  # --top 15 by default
    assert PLAN_UNIT_COLUMNS <= set(header)
    # no second header line and no message lines in the data
    for r in rows:
        assert r["model"] == "llama-3.1-8b"
        assert not r["model"].startswith("infercap")
    numeric = [c for c in header if c not in PLAN_TEXT_COLUMNS]
    assert len(numeric) >= 15
    for r in rows:
        for c in numeric:
            v = float(r[c])  # raises on an empty or non-numeric cell
            assert math.isfinite(v), (c, r[c])
        assert r["pareto"] in ("true", "false")
        assert r["decode_bound"] in ("compute", "memory", "communication", "overhead")
        assert r["gpu"] in ("h100-sxm", "l40s", "mi300x")


def test_plan_csv_meets_default_slos_and_cost_identity(plan_csv):
    _, rows = parse_csv(plan_csv[0])
    for r in rows:
        assert float(r["ttft_ms"]) <= 2000.0 and float(r["tpot_ms"]) <= 50.0
        usd_h = float(r["usd_per_hour"])
        derived = (float(r["usd_per_m_output_tokens"]) * float(r["output_tokens_per_s"])
                   * 3600 / 1e6)
        assert derived == pytest.approx(usd_h, rel=2e-5)  # CSV keeps 6 significant digits
    costs = [float(r["usd_per_m_output_tokens"]) for r in rows]
    assert costs == sorted(costs)  # objective cost: cheapest first
    assert len({r["gpu"] for r in rows}) == len(rows)  # --per-gpu by default


def test_plan_stdout_is_data_stderr_is_messages(plan_csv):
    out, err = plan_csv
    assert "configurations evaluated" in err
    assert all(line.startswith("infercap: ") for line in err.splitlines())
    assert "configurations evaluated" not in out and "infercap:" not in out


def test_plan_quiet_prints_no_messages(run_cli):
    rc, out, err = run_cli(PLAN_ARGS + ["-f", "csv", "-q"])
    assert rc == 0 and err == ""
    assert out.startswith("model,")


def test_plan_json_matches_csv(run_cli, plan_csv):
    header, rows = parse_csv(plan_csv[0])
    rc, out, err = run_cli(PLAN_ARGS + ["-f", "json"])
    assert rc == 0, err
    data = json.loads(out)
    assert isinstance(data, list) and len(data) == len(rows)
    for obj, row in zip(data, rows):
        assert isinstance(obj, dict)
        assert list(obj) == header
        assert obj["gpu"] == row["gpu"] and obj["precision"] == row["precision"]
        for c in ("tp", "pp", "batch", "gpus"):
            assert isinstance(obj[c], int) and obj[c] == int(row[c])
        for c in PLAN_UNIT_COLUMNS:
            assert isinstance(obj[c], (int, float)) and math.isfinite(obj[c])
            assert obj[c] == pytest.approx(float(row[c]), rel=1e-5)
        assert isinstance(obj["pareto"], bool)


def test_plan_default_format_off_a_terminal_is_csv(run_cli, plan_csv):
    rc, out, err = run_cli(PLAN_ARGS)
    assert rc == 0, err
    assert out == plan_csv[0]


def test_plan_table_format(run_cli):
    rc, out, err = run_cli(PLAN_ARGS + ["-f", "table"])
    assert rc == 0, err
    assert "tok/s/GPU" in out and "$/M out" in out and "h100-sxm" in out


@pytest.mark.parametrize("objective, column, ascending", [
    ("throughput", "output_tokens_per_s_per_gpu", False),
    ("latency", "e2e_latency_s", True),
])
def test_plan_objectives_sort(run_cli, objective, column, ascending):
    rc, out, err = run_cli(PLAN_ARGS + ["-f", "csv", "--objective", objective, "-q"])
    assert rc == 0, err
    _, rows = parse_csv(out)
    values = [float(r[column]) for r in rows]
    assert values == sorted(values, reverse=not ascending)


def test_plan_all_rows_top_and_max_gpus(run_cli):
    rc, out, err = run_cli(["plan", "-m", "llama-3.1-70b", "-g", "h100-sxm", "--all-rows",
                            "-t", "40", "--max-gpus", "4", "-f", "csv", "-q"])
    assert rc == 0, err
    _, rows = parse_csv(out)
    assert len(rows) == 40
    assert all(int(r["gpus"]) <= 4 for r in rows)
    assert all(int(r["gpus"]) == int(r["tp"]) * int(r["pp"]) for r in rows)


# ------------------------------------------------------------------ plan: nothing fits


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_impossible_slo_exits_1_with_empty_valid_output(run_cli, fmt):
    rc, out, err = run_cli(PLAN_ARGS + ["--max-tpot-ms", "0.001", "-f", fmt])
    assert rc == 1
    assert "Traceback" not in err and "no configuration meets the constraints" in err
    if fmt == "csv":
        header, rows = parse_csv(out)
        assert rows == [] and header[0] == "model" and "tpot_ms" in header
    else:
        assert json.loads(out) == []


# ------------------------------------------------------------------ usage errors


@pytest.mark.parametrize("extra, key", [
    (["--format", "nope"], "--format"),
    (["--objective", "nope"], "--objective"),
    (["--precision", "nope"], "--precision"),
    (["--tp", "0"], "--tp"),
    (["--pp", "0"], "--pp"),
    (["--tp", "two"], "--tp"),
    (["--gpu", "nope"], "gpu"),
    (["--model", "nope"], "model"),
    (["--profile", "no-such-profile"], "--profile"),
])
def test_plan_usage_errors_exit_2(run_cli, extra, key):
    line = assert_clean_error(*run_cli(["plan", "-m", "llama-3.1-8b"] + extra))
    assert f"key '{key}'" in line
    assert "nope" in line or "0" in line or "two" in line or "no-such-profile" in line


@pytest.mark.parametrize("cmd", [["gpus"], ["models"], ["validate"], ["figures"]])
def test_format_nope_on_every_command(run_cli, cmd):
    line = assert_clean_error(*run_cli(cmd + ["-f", "nope"]))
    assert "key '--format'" in line and "'nope'" in line


@pytest.mark.parametrize("extra", [["--input-tokens", "0"], ["--input-tokens", "abc"],
                                   ["--no-such-option"]])
def test_option_parsing_errors_exit_2_without_traceback(run_cli, extra):
    line = assert_clean_error(*run_cli(["plan"] + extra))
    assert "--input-tokens" in line or "--no-such-option" in line


def test_unknown_command_exits_2(run_cli):
    line = assert_clean_error(*run_cli(["nope"]))
    assert "nope" in line


# ------------------------------------------------------------------ --output


def test_output_file_written_atomically(run_cli, tmp_path):
    target = tmp_path / "plan.csv"
    target.write_text("old content that must be replaced whole\n", encoding="utf-8")
    rc, out, err = run_cli(PLAN_ARGS + ["-f", "csv", "--output", target])
    assert rc == 0, err
    assert out == ""  # the data went to the file
    assert "configurations evaluated" in err
    header, rows = parse_csv(target.read_text(encoding="utf-8"))
    assert header[0] == "model" and rows
    assert "old content" not in target.read_text(encoding="utf-8")
    # no temporary file left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.csv"]


def test_output_json_file(run_cli, tmp_path):
    target = tmp_path / "plan.json"
    rc, out, err = run_cli(PLAN_ARGS + ["-f", "json", "-o", target, "-q"])
    assert rc == 0 and out == "" and err == ""
    assert isinstance(json.loads(target.read_text(encoding="utf-8")), list)


def test_output_file_untouched_on_error(run_cli, tmp_path):
    target = tmp_path / "plan.csv"
    target.write_text("keep me\n", encoding="utf-8")
    assert_clean_error(*run_cli(PLAN_ARGS + ["--objective", "nope", "-o", target]))
    assert target.read_text(encoding="utf-8") == "keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.csv"]


def test_output_for_catalog_listing(run_cli, tmp_path):
    target = tmp_path / "gpus.csv"
    rc, out, err = run_cli(["gpus", "-f", "csv", "-o", target])
    assert rc == 0 and out == "", err
    _, rows = parse_csv(target.read_text(encoding="utf-8"))
    assert len(rows) >= 24


def test_output_into_missing_folder_is_a_clean_error(run_cli, tmp_path):
    line = assert_clean_error(*run_cli(PLAN_ARGS + ["-f", "csv", "-q", "-o",
                                                    tmp_path / "no" / "x.csv"]))
    assert "key '--output'" in line


# ------------------------------------------------------------------ catalog listings


@pytest.fixture(scope="module")
def gpu_rows(run_cli):
    rc, out, err = run_cli(["gpus", "-f", "csv"])
    assert rc == 0 and err == ""
    return parse_csv(out)


def test_gpus_csv(gpu_rows):
    header, rows = gpu_rows
    assert header[0] == "id"
    assert {"memory_gib", "memory_bandwidth_tb_per_s", "bf16_dense_tflops",
            "usd_per_gpu_hour", "tdp_w"} <= set(header)
    assert len(rows) >= 24
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))
    missing = [g for g in FORMAT_GPU_IDS + EXTRA_GPU_IDS if g not in ids]
    assert not missing, f"GPU ids missing from the catalog: {missing}"
    for r in rows:
        for c in ("memory_gib", "memory_bandwidth_tb_per_s", "usd_per_gpu_hour", "tdp_w",
                  "bf16_dense_tflops"):
            v = float(r[c])
            assert math.isfinite(v) and v > 0, (r["id"], c, r[c])


def test_gpus_spot_values(gpu_rows):
    _, rows = gpu_rows
    by_id = {r["id"]: r for r in rows}
    h100 = by_id["h100-sxm"]
    assert float(h100["memory_gib"]) == 80
    assert float(h100["memory_bandwidth_tb_per_s"]) == 3.35
    assert h100["fp4_dense_tflops"] == ""  # Hopper has no fp4 tensor cores: left out
    assert float(by_id["b200"]["fp4_dense_tflops"]) > float(by_id["b200"]["fp8_dense_tflops"])


def test_gpu_detail_json(run_cli):
    rc, out, err = run_cli(["gpus", "h100-sxm"])
    assert rc == 0, err
    g = json.loads(out)
    assert g["id"] == "h100-sxm" and g["memory_bandwidth_tb_per_s"] == 3.35
    assert g["sources"]["memory_bandwidth_tb_per_s"]
    assert g["price"]["usd_per_gpu_hour"] > 0


@pytest.fixture(scope="module")
def model_rows(run_cli):
    rc, out, err = run_cli(["models", "-f", "json"])
    assert rc == 0 and err == ""
    return json.loads(out)


def test_models_json(model_rows):
    assert isinstance(model_rows, list) and len(model_rows) >= 30
    ids = [m["id"] for m in model_rows]
    assert len(ids) == len(set(ids))
    missing = [m for m in FORMAT_MODEL_IDS if m not in ids]
    assert not missing, f"model ids missing from the catalog: {missing}"
    keys = set(model_rows[0])
    assert {"id", "params_b", "active_params_b", "published_params_b", "layers",
            "kv_kib_per_token_bf16", "max_context"} <= keys
    for m in model_rows:
        assert set(m) == keys
        assert 0 < m["active_params_b"] <= m["params_b"]
        assert m["kv_kib_per_token_bf16"] > 0


def test_models_spot_values(model_rows):
    by_id = {m["id"]: m for m in model_rows}
    assert by_id["llama-3.1-8b"]["kv_kib_per_token_bf16"] == 128
    assert by_id["llama-3.1-70b"]["kv_kib_per_token_bf16"] == 320
    assert by_id["deepseek-v3"]["attention"].startswith("MLA")
    assert by_id["mixtral-8x7b"]["experts"] == 8
    assert by_id["mixtral-8x7b"]["experts_per_token"] == 2


def test_models_csv_matches_json(run_cli, model_rows):
    rc, out, err = run_cli(["models", "-f", "csv"])
    assert rc == 0, err
    header, rows = parse_csv(out)
    assert header == list(model_rows[0])
    assert [r["id"] for r in rows] == [m["id"] for m in model_rows]


def test_model_detail_json(run_cli):
    rc, out, err = run_cli(["models", "deepseek-v3"])
    assert rc == 0, err
    m = json.loads(out)
    assert m["id"] == "deepseek-v3" and m["mla"]["kv_lora_rank"] == 512


@pytest.mark.skipif(not FORMAT_MD.is_file(), reason=f"{FORMAT_MD} not present")
def test_every_id_named_in_format_md_is_in_the_catalog(catalog):
    text = FORMAT_MD.read_text(encoding="utf-8")
    models = re.search(r"Model ids that appear:(.*?)\.\s*\n\s*GPU ids", text, re.S)
    gpus = re.search(r"GPU ids:(.*?)\. The catalogs", text, re.S)
    assert models and gpus
    model_ids = [x.strip() for x in models.group(1).replace("\n", " ").split(",")]
    gpu_ids = [x.strip() for x in gpus.group(1).replace("\n", " ").split(",")]
    assert set(model_ids) == set(FORMAT_MODEL_IDS)
    assert set(gpu_ids) == set(FORMAT_GPU_IDS)
    assert not [m for m in model_ids if m not in catalog.models]
    assert not [g for g in gpu_ids if g not in catalog.gpus]


def test_figures_lists_every_figure(run_cli):
    from infercap.profile import FIGURES

    rc, out, err = run_cli(["figures", "h100-sxm", "-f", "csv"])
    assert rc == 0, err
    header, rows = parse_csv(out)
    assert header == ["figure", "value", "kind", "meaning", "source"]
    assert [r["figure"] for r in rows] == list(FIGURES)
    for r in rows:
        assert math.isfinite(float(r["value"]))


# ------------------------------------------------------------------ version and help


def test_version(run_cli):
    rc, out, err = run_cli(["--version"])
    assert rc == 0 and err == ""
    assert out == f"infercap {infercap.__version__}\n"


def test_help(run_cli):
    rc, out, _ = run_cli(["--help"])
    assert rc == 0
    for cmd in ("plan", "gpus", "models", "validate", "calibrate", "figures"):
        assert cmd in out


# ------------------------------------------------------------------ validate


VALIDATE_COLUMNS = ["id", "metric", "measured", "predicted", "error_pct", "skipped"]


def test_validate_csv_columns_and_rows(run_cli):
    rc, out, err = run_cli(["validate", "-f", "csv"])
    assert rc == 0, err
    assert re.search(r"\d+ cases from \d+ file\(s\)", err)
    header, rows = parse_csv(out)
    assert header[:6] == VALIDATE_COLUMNS
    assert len(rows) > 100
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))
    predicted = [r for r in rows if not r["skipped"]]
    # models not in the catalogs yet and disaggregated runs are other issues' work
    expected = [r for r in rows if not r["skipped"].startswith(("unknown model",
                                                                 "disaggregated"))]
    assert len(predicted) > 0.9 * len(expected) and len(expected) > 0.5 * len(rows)
    for r in rows:
        measured = float(r["measured"])
        assert measured > 0
        if r["skipped"]:
            assert r["predicted"] == "" and r["error_pct"] == ""
        else:
            p, e = float(r["predicted"]), float(r["error_pct"])
            assert math.isfinite(p) and p > 0
            assert e == pytest.approx((p - measured) / measured * 100, rel=1e-4, abs=1e-3)


def test_validate_json_matches_csv_header(run_cli):
    rc, out, err = run_cli(["validate", "-f", "json", "-q"])
    assert rc == 0 and err == ""
    data = json.loads(out)
    assert data and list(data[0])[:6] == VALIDATE_COLUMNS


def test_validate_table_summary(run_cli):
    rc, out, err = run_cli(["validate", "-f", "table", "--by", "gpu"])
    assert rc == 0, err
    assert "accuracy targets" in out and "h100-sxm" in out


def test_validate_bad_by(run_cli):
    line = assert_clean_error(*run_cli(["validate", "--by", "colour", "-f", "csv"]))
    assert "key '--by'" in line and "'colour'" in line


GOOD_CASE = {
    "id": "t-decode-1",
    "source": "unit test",
    "model": "llama-3.1-8b",
    "gpu": "h100-sxm",
    "gpus": 1,
    "tp": 1,
    "pp": 1,
    "weights": "bf16",
    "scenario": "decode_step",
    "batch": 8,
    "context_tokens": 1024,
    "metric": "decode_step_ms",
    "value": 7.5,
}


def write_cases(path: Path, *cases: dict) -> Path:
    path.write_text(yaml.safe_dump({"cases": list(cases)}, sort_keys=False), encoding="utf-8")
    return path


def case(**changes) -> dict:
    c = dict(GOOD_CASE)
    for k, v in changes.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def test_validate_good_file(run_cli, tmp_path):
    f = write_cases(tmp_path / "runs.yaml", case(),
                    case(id="t-prefill-1", scenario="prefill", input_tokens=2048, batch=1,
                         context_tokens=None, metric="prefill_ms", value=120.0))
    rc, out, err = run_cli(["validate", f, "-f", "csv"])
    assert rc == 0, err
    _, rows = parse_csv(out)
    assert [r["id"] for r in rows] == ["t-decode-1", "t-prefill-1"]
    assert all(r["skipped"] == "" and float(r["predicted"]) > 0 for r in rows)
    assert all(r["file"] == str(f) for r in rows)


@pytest.mark.parametrize("changes, key", [
    ({"value": None}, "value"),
    ({"scenario": "burst"}, "scenario"),
    ({"scenario": "rate", "input_tokens": 1024, "output_tokens": 128}, "request_rate"),
    ({"context_tokens": None}, "context_tokens"),
    ({"value": -3.0}, "value"),
    ({"value": "fast"}, "value"),
    ({"weights": "fp3"}, "weights"),
    ({"metric": "joules"}, "metric"),
    ({"tp": 2}, "gpus"),
    ({"colour": "red"}, "colour"),
])
def test_validate_bad_measurement_file(run_cli, tmp_path, changes, key):
    f = write_cases(tmp_path / "bad-runs.yaml", case(id="t-ok-0"), case(id="t-bad-1", **changes))
    line = assert_clean_error(*run_cli(["validate", f, "-f", "csv"]))
    assert str(f) in line
    assert "entry 't-bad-1'" in line
    assert f"key '{key}'" in line


def test_validate_case_without_id_is_named_by_position(run_cli, tmp_path):
    f = write_cases(tmp_path / "runs.yaml", case(), case(id=None))
    line = assert_clean_error(*run_cli(["validate", f, "-f", "csv"]))
    assert str(f) in line and "case #2" in line and "key 'id'" in line


def test_validate_duplicate_case_id(run_cli, tmp_path):
    f = write_cases(tmp_path / "runs.yaml", case(), case())
    line = assert_clean_error(*run_cli(["validate", f, "-f", "csv"]))
    assert "entry 't-decode-1'" in line and "duplicate" in line


@pytest.mark.parametrize("text", ["", "cases: 3\n", "- a\n- b\n", "cases: [\n"])
def test_validate_malformed_file(run_cli, tmp_path, text):
    f = tmp_path / "runs.yaml"
    f.write_text(text, encoding="utf-8")
    line = assert_clean_error(*run_cli(["validate", f, "-f", "csv"]))
    assert str(f) in line


def test_validate_unknown_gpu_is_skipped_with_reason(run_cli, tmp_path):
    f = write_cases(tmp_path / "runs.yaml", case(),
                    case(id="t-mystery", gpu="mystery-gpu-9000"),
                    case(id="t-mystery-model", model="mystery-model"))
    rc, out, err = run_cli(["validate", f, "-f", "csv"])
    assert rc == 0, err
    assert "Traceback" not in err
    assert "3 cases" in err and "1 predicted, 2 skipped" in err
    _, rows = parse_csv(out)
    by_id = {r["id"]: r for r in rows}
    assert set(by_id) == {"t-decode-1", "t-mystery", "t-mystery-model"}
    assert by_id["t-decode-1"]["skipped"] == "" and float(by_id["t-decode-1"]["predicted"]) > 0
    gone = by_id["t-mystery"]
    assert "unknown GPU id" in gone["skipped"] and "mystery-gpu-9000" in gone["skipped"]
    assert gone["predicted"] == "" and gone["error_pct"] == ""
    assert gone["gpu"] == "mystery-gpu-9000" and float(gone["measured"]) == 7.5
    assert "unknown model id" in by_id["t-mystery-model"]["skipped"]


def test_validate_layout_that_does_not_fit_is_skipped(run_cli, tmp_path):
    f = write_cases(tmp_path / "runs.yaml",
                    case(id="t-405b-one-gpu", model="llama-3.1-405b", gpu="l4"))
    rc, out, err = run_cli(["validate", f, "-f", "csv"])
    assert rc == 0, err
    _, rows = parse_csv(out)
    assert rows[0]["skipped"] and rows[0]["predicted"] == ""


# ------------------------------------------------------------------ calibrate


def test_calibrate_writes_a_profile_that_validate_and_plan_accept(run_cli, tmp_path):
    measured = Path(__file__).resolve().parents[1] / "infercap" / "benchmarks" / \
        "measured-h100-sxm.yaml"
    prof = tmp_path / "mine.yaml"
    rc, out, err = run_cli(["calibrate", measured, "--engine", "pytorch", "-o", prof])
    assert rc == 0, err
    assert out == ""
    assert "held-out" in err and "->" in err
    import yaml

    doc = yaml.safe_load(prof.read_text(encoding="utf-8"))
    assert doc["engine"] == "pytorch" and "layer_overhead_us" in doc["figures"]
    assert doc["fit"]["all_after"]["mdape_pct"] <= doc["fit"]["all_before"]["mdape_pct"]
    rc, out, err = run_cli(["validate", measured, "--profile", prof, "-f", "csv"])
    assert rc == 0, err
    header, rows = parse_csv(out)
    errors = [abs(float(r["error_pct"])) for r in rows]
    assert len(rows) == 22 and sorted(errors)[len(errors) // 2] < 5
    rc, out, err = run_cli(["plan", "-m", "llama-3.1-8b", "--gpu", "h100-sxm", "--engine",
                            "pytorch", "--profile", prof, "-f", "csv", "-q"])
    assert rc == 0, err


def test_calibrate_bad_figure_name_exits_2(run_cli, tmp_path):
    line = assert_clean_error(*run_cli(["calibrate", "--engine", "pytorch", "--figures",
                                        "nope", "-o", tmp_path / "x.yaml"]))
    assert "key '--figures'" in line and "nope" in line
    assert not (tmp_path / "x.yaml").exists()


def test_calibrated_profile_keeps_the_engine_settings(run_cli, tmp_path):
    """A fitted profile replaces its base: non-figure settings (the KV-cache default of fp8
    and fp4 checkpoints) must survive the fit."""
    prof = tmp_path / "trt.yaml"
    rc, out, err = run_cli(["calibrate", "--engine", "trtllm-0.x", "--figures",
                            "step_overhead_ms", "--scenario", "rate", "--global", "-q", "-o",
                            prof])
    assert rc == 0, err
    doc = yaml.safe_load(prof.read_text(encoding="utf-8"))
    assert doc["kv_cache_default"] == {"fp8": "fp8", "fp4": "fp8", "nvfp4": "fp8"}
    assert set(doc["figures"]) >= {"layer_overhead_us", "step_overhead_ms", "max_batch_size"}
    assert doc["id"] == "trtllm-0.x" and doc["engine"] == "trtllm"


# ------------------------------------------------------------ validate: load scenarios


def _rate_case(**changes) -> dict:
    base = case(id="t-rate", scenario="rate", input_tokens=467, output_tokens=256,
                request_rate=4.0, batch=None, context_tokens=None, metric="ttft_ms",
                value=24.0, engine="trtllm")
    base.update(changes)
    return base


def test_validate_rate_cases_use_the_queueing_model(run_cli, tmp_path):
    """Below capacity: TTFT grows with the offered rate; a percentile is predicted from the
    latency distribution (p99 above p50); past capacity a rate case without num_requests is
    skipped with the reason, and with num_requests its finite run is simulated."""
    f = write_cases(
        tmp_path / "runs.yaml",
        _rate_case(id="r2", request_rate=2.0),
        _rate_case(id="r16", request_rate=16.0),
        _rate_case(id="r16-p50", request_rate=16.0, stat="p50"),
        _rate_case(id="r16-p99", request_rate=16.0, stat="p99"),
        _rate_case(id="over", request_rate=500.0),
        _rate_case(id="over-run", request_rate=500.0, num_requests=400),
        _rate_case(id="over-run-tput", request_rate=500.0, num_requests=400,
                   metric="output_tokens_per_s", value=9000.0),
    )
    rc, out, err = run_cli(["validate", f, "-f", "csv"])
    assert rc == 0, err
    _, rows = parse_csv(out)
    got = {r["id"]: r for r in rows}
    pred = {k: float(r["predicted"]) for k, r in got.items() if r["predicted"]}
    assert pred["r2"] < pred["r16"]
    assert pred["r16-p50"] < pred["r16-p99"]
    assert "num_requests" in got["over"]["skipped"]
    # 400 requests offered at 500/s arrive in 0.8 s and queue: the mean wait is seconds
    assert pred["over-run"] > 1000.0
    assert pred["over-run-tput"] > 0


def test_validate_offline_run_with_num_requests_is_simulated(run_cli, tmp_path):
    """An offline run of N queued requests: the mean TTFT grows with N (the queue drains at
    the engine's throughput); without num_requests it is skipped."""
    offline = dict(scenario="offline", input_tokens=467, output_tokens=256, batch=None,
                   context_tokens=None, metric="ttft_ms", value=3000.0, engine="trtllm")
    f = write_cases(tmp_path / "runs.yaml",
                    case(id="n500", num_requests=500, **offline),
                    case(id="n2000", num_requests=2000, **offline),
                    case(id="none", **offline))
    rc, out, err = run_cli(["validate", f, "-f", "csv"])
    assert rc == 0, err
    _, rows = parse_csv(out)
    got = {r["id"]: r for r in rows}
    assert float(got["n2000"]["predicted"]) > 2 * float(got["n500"]["predicted"])
    assert "num_requests" in got["none"]["skipped"]


# ------------------------------------------------------- validate: a run's request lengths


def _write_lengths(path: Path, rows: list[tuple[int, int]]) -> Path:
    path.write_text("input_tokens,output_tokens\n" + "".join(f"{i},{o}\n" for i, o in rows),
                    encoding="utf-8")
    return path


def _burst(**changes) -> dict:
    return case(**{**dict(scenario="offline", batch=None, context_tokens=None,
                          num_requests=300, metric="tpot_ms", value=40.0, engine="vllm"),
                   **changes})


def test_validate_run_lengths_from_csv(run_cli, tmp_path):
    """lengths_csv carries the run's request lengths: rows all equal to the means predict
    exactly what the means do; the same means spread over short and long requests predict
    another TPOT, and a TPOT (per request) that differs from the ITL (per token)."""
    _write_lengths(tmp_path / "flat.csv", [(400, 200)] * 10)
    _write_lengths(tmp_path / "mixed.csv", [(40, 20), (760, 380)] * 5)  # means 400 / 200
    f = write_cases(
        tmp_path / "runs.yaml",
        _burst(id="means", input_tokens=400, output_tokens=200),
        _burst(id="flat", input_tokens=None, output_tokens=None, lengths_csv="flat.csv"),
        _burst(id="mixed", input_tokens=400, output_tokens=200, lengths_csv="mixed.csv"),
        _burst(id="mixed-itl", input_tokens=None, output_tokens=None, lengths_csv="mixed.csv",
               metric="itl_ms"),
        _burst(id="mixed-rate", scenario="rate", request_rate=5.0, num_requests=None,
               input_tokens=None, output_tokens=None, lengths_csv="mixed.csv",
               metric="ttft_ms"),
    )
    rc, out, err = run_cli(["validate", f, "-f", "csv"])
    assert rc == 0, err
    _, rows = parse_csv(out)
    pred = {r["id"]: float(r["predicted"]) for r in rows}
    assert pred["flat"] == pytest.approx(pred["means"], rel=1e-12)
    assert abs(pred["mixed"] / pred["means"] - 1.0) > 0.02
    assert abs(pred["mixed-itl"] / pred["mixed"] - 1.0) > 0.01
    assert pred["mixed-rate"] > 0


@pytest.mark.parametrize("csv_text, changes, where, key, words", [
    (None, {}, "runs", "lengths_csv", "cannot read lengths CSV"),
    ("input,output\n1,2\n", {}, "lens", None, "header with input_tokens,output_tokens"),
    ("input_tokens,output_tokens\n10,x\n", {}, "lens", None, "line 2: expected two numbers"),
    ("input_tokens,output_tokens\n10,20\n", {"input_tokens": 50}, "runs", "input_tokens",
     "mean of lengths_csv (10.0) within 2%"),
])
def test_validate_bad_lengths_csv(run_cli, tmp_path, csv_text, changes, where, key, words):
    if csv_text is not None:
        (tmp_path / "lens.csv").write_text(csv_text, encoding="utf-8")
    f = write_cases(tmp_path / "runs.yaml",
                    _burst(**{"id": "t-lens", "input_tokens": None, "output_tokens": None,
                              "lengths_csv": "lens.csv", **changes}))
    line = assert_clean_error(*run_cli(["validate", f, "-f", "csv"]))
    assert str(tmp_path / f"{where}.{'yaml' if where == 'runs' else 'csv'}") in line
    if key:
        assert f"key '{key}'" in line and "entry 't-lens'" in line
    assert words in line


def test_calibrate_simulate_fits_finite_runs(run_cli, tmp_path):
    """Bursts (offline cases with num_requests) enter the fit only with --simulate: measured
    values made by the model with step_overhead_ms = 4 give the figure back; without the flag
    the cases carry no information and the figure stays at its prior. (24 cases: the fit's weak
    prior, worth 3 cases, then moves the figure most of the way.)"""
    burst = dict(scenario="offline", input_tokens=300, output_tokens=60, num_requests=120,
                 batch=None, context_tokens=None, engine="vllm", model="llama-3.1-8b")
    cases = [case(id=f"b-{m}-{n}", metric=m, value=1.0, **{**burst, "num_requests": n})
             for m in ("ttft_ms", "tpot_ms", "output_tokens_per_s")
             for n in (20, 40, 60, 80, 100, 120, 140, 160)]
    truth = tmp_path / "truth.yaml"
    truth.write_text("id: truth\ndescription: step overhead 4 ms\nfigures:\n"
                     "  step_overhead_ms: 4.0\n", encoding="utf-8")
    rc, out, err = run_cli(["validate", write_cases(tmp_path / "dummy.yaml", *cases),
                            "--profile", truth, "-f", "csv"])
    assert rc == 0, err
    made = {r["id"]: float(r["predicted"]) for r in parse_csv(out)[1]}
    runs = write_cases(tmp_path / "runs.yaml",
                       *[{**c, "value": made[c["id"]]} for c in cases])
    prof = tmp_path / "fit.yaml"
    base = ["calibrate", runs, "--engine", "vllm", "--figures", "step_overhead_ms",
            "--global", "--holdout", "0", "-o", prof]
    rc, out, err = run_cli(base + ["--simulate"])
    assert rc == 0, err
    fitted = yaml.safe_load(prof.read_text(encoding="utf-8"))["figures"]["step_overhead_ms"]
    assert fitted == pytest.approx(4.0, rel=0.15)
    rc, out, err = run_cli(base)
    assert rc == 0, err
    assert "left at its prior" in err
