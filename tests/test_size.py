"""Scenario files, `infercap size` and `infercap check` (the CI budget gate)."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, assert_clean_error
from infercap.profile import Resolver, engine_profile_for, load_profile
from infercap.queueing import analyse
from infercap.scenario import ScenarioError, load_scenario
from infercap.size import size

SPEC = """\
model: llama-3.1-70b
gpus: [h100-sxm]
precisions: [fp8]
serving: aggregated
traffic:
  peak_requests_per_s: 50
  average_requests_per_s: 20
  input_tokens: 2000
  output_tokens: 300
slo:
  ttft_ms: {p99: 1000}
  tpot_ms: {p99: 50}
"""


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_issue_scenario_replicas_and_monthly_cost_by_hand(tmp_path, catalog):
    """50 requests/s peak, 2,000 in / 300 out, p99 TTFT <= 1 s, p99 TPOT <= 50 ms: the replica
    count is the smallest whose per-replica load meets both SLOs, and the monthly cost is GPUs x
    the catalog price x 730 h."""
    s = load_scenario(write(tmp_path, SPEC))
    eng = engine_profile_for("trtllm")
    r = size(s, catalog, Resolver(load_profile("default")), eng)
    assert len(r.rows) == 1
    row = r.rows[0]
    e, rate = r.engines[0]
    reps = row["replicas"]
    assert rate == pytest.approx(50.0 / reps)
    # by hand: at 50 / reps requests/s per replica both p99s are within the SLOs...
    q = analyse(e, np.array([50.0 / reps]))
    assert q.ttft_quantiles((0.99,))[0, 0] <= 1.0 + 1e-6
    assert q.tpot_quantiles((0.99,))[0, 0] <= 0.050 + 1e-6
    # ...and one replica fewer breaks one of them (or exceeds the 95 % utilisation cap)
    if reps > 1:
        q2 = analyse(e, np.array([50.0 / (reps - 1)]))
        assert (q2.ttft_quantiles((0.99,))[0, 0] > 1.0 or q2.tpot_quantiles((0.99,))[0, 0] > 0.05
                or q2.utilisation[0] > 0.95)
    price = catalog.gpus["h100-sxm"].price.usd_per_gpu_hour
    assert row["gpus"] == reps * row["tp"] * row["pp"]
    assert row["usd_per_month"] == pytest.approx(row["gpus"] * price * 730.0)
    # $/M blended tokens at the average traffic: $/hour / (20 req/s x 3600 x 2,300 tokens)
    assert row["usd_per_m_blended_tokens"] == pytest.approx(
        row["gpus"] * price / (20 * 3600 * 2300) * 1e6)
    assert row["utilisation_average"] == pytest.approx(row["utilisation_peak"] * 20 / 50)


def test_size_cli_csv_both_modes(run_cli, tmp_path):
    p = write(tmp_path, SPEC.replace("serving: aggregated", "serving: both"))
    rc, out, err = run_cli(["size", p, "-f", "csv"])
    assert rc == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    modes = {r["mode"] for r in rows}
    assert modes == {"aggregated", "disaggregated"}
    dis = next(r for r in rows if r["mode"] == "disaggregated")
    assert int(dis["prefill_gpus"]) + int(dis["decode_gpus"]) == int(dis["gpus"])
    assert float(dis["kv_transfer_ms"]) > 0
    for r in rows:
        assert float(r["ttft_p99_ms"]) <= 1000.0 + 1e-6
        assert float(r["tpot_p99_ms"]) <= 50.0 + 1e-6
        assert float(r["ttft_p50_ms"]) <= float(r["ttft_p99_ms"])
    assert sum(r["best"] == "true" for r in rows) == 1
    assert "cheaper" in err


def test_size_simulate_and_pareto(run_cli, tmp_path):
    p = write(tmp_path, SPEC)
    rc, out, err = run_cli(["size", p, "-f", "json", "--simulate"])
    assert rc == 0, err
    row = json.loads(out)[0]
    for k in ("ttft_p99_ms", "tpot_p99_ms"):
        assert row["sim_" + k] == pytest.approx(row[k], rel=0.25)
    rc, out, err = run_cli(["size", p, "-f", "csv", "--pareto"])
    assert rc == 0, err
    pts = list(csv.DictReader(io.StringIO(out)))
    users = [float(r["tokens_per_s_per_user"]) for r in pts]
    per_gpu = [float(r["output_tokens_per_s_per_gpu"]) for r in pts]
    # a frontier: as user speed falls, throughput per GPU rises
    assert users == sorted(users, reverse=True)
    assert per_gpu == sorted(per_gpu)
    rc, out, _ = run_cli(["size", p, "-f", "table", "--pareto"])
    assert rc == 0 and "tokens/s per user" in out


def test_check_passes_and_prints_json(run_cli, tmp_path):
    p = write(tmp_path, SPEC + "budget:\n  max_usd_per_month: 1000000\n")
    rc, out, err = run_cli(["check", p])
    assert rc == 0, err
    res = json.loads(out)
    assert res["pass"] is True and res["breaches"] == []
    assert res["best"]["gpu"] == "h100-sxm"
    assert "check passed" in err


@pytest.mark.parametrize("budget,key", [
    ("max_usd_per_month: 1000", "budget.max_usd_per_month"),
    ("max_usd_per_m_tokens: 0.001", "budget.max_usd_per_m_tokens"),
    ("max_usd_per_m_output_tokens: 0.001", "budget.max_usd_per_m_output_tokens"),
])
def test_check_fails_on_each_budget(run_cli, tmp_path, budget, key):
    p = write(tmp_path, SPEC + f"budget:\n  {budget}\n")
    rc, out, err = run_cli(["check", p])
    assert rc == 1
    res = json.loads(out)
    assert res["pass"] is False
    assert [b["limit"] for b in res["breaches"]] == [key]
    line = err.strip().splitlines()
    assert len(line) == 1 and key in line[0] and " > " in line[0]
    b = res["breaches"][0]
    assert b["value"] > b["threshold"]


@pytest.mark.parametrize("slo,key", [
    ("ttft_ms: {p99: 1}", "slo.ttft_ms.p99"),
    ("tpot_ms: {p50: 0.5}", "slo.tpot_ms.p50"),
    ("min_tokens_per_s_per_user: 100000", "slo.min_tokens_per_s_per_user"),
])
def test_check_fails_on_unreachable_slo(run_cli, tmp_path, slo, key):
    text = SPEC.replace("slo:\n  ttft_ms: {p99: 1000}\n  tpot_ms: {p99: 50}\n", f"slo:\n  {slo}\n")
    rc, out, err = run_cli(["check", write(tmp_path, text)])
    assert rc == 1
    res = json.loads(out)
    assert [b["limit"] for b in res["breaches"]] == [key]
    assert key in err


def test_check_fails_when_gpu_limit_binds(run_cli, tmp_path):
    text = SPEC + "limits:\n  max_gpus: 4\n"
    rc, out, err = run_cli(["check", write(tmp_path, text)])
    assert rc == 1
    assert "max_gpus=4" in err
    assert json.loads(out)["best"] is None


@pytest.mark.parametrize("text,needle", [
    ("model: llama-3.1-70b\n", "key 'traffic': missing required key"),
    (SPEC + "colour: blue\n", "key 'colour': unknown key"),
    (SPEC.replace("peak_requests_per_s: 50", "peak_requests_per_s: -5"),
     "key 'traffic.peak_requests_per_s': expected a number > 0"),
    (SPEC.replace("{p99: 1000}", "{p100: 1000}"), "key 'slo.ttft_ms': unknown key 'p100'"),
    (SPEC.replace("input_tokens: 2000", "input_tokens: {p90: 10}"),
     "key 'traffic.input_tokens': expected a mapping with mean"),
    (SPEC.replace("average_requests_per_s: 20", "average_requests_per_s: 80"),
     "expected at most the peak"),
    (SPEC.replace("gpus: [h100-sxm]", "gpus: [h900]"), "key 'gpus': unknown GPU id 'h900'"),
    (SPEC.replace("model: llama-3.1-70b", "model: llama-9"), "unknown model id 'llama-9'"),
    ("traffic: [1, 2\n", "malformed YAML"),
])
def test_bad_scenarios_exit_2_with_one_line(run_cli, tmp_path, text, needle):
    p = write(tmp_path, text)
    for cmd in ("size", "check"):
        rc, out, err = run_cli([cmd, p])
        line = assert_clean_error(rc, out, err)
        assert needle in line and str(p) in line


def test_lengths_csv_and_tokens_per_day(tmp_path, run_cli):
    (tmp_path / "req.csv").write_text("input_tokens,output_tokens\n1000,200\n3000,400\n")
    text = SPEC.replace("  input_tokens: 2000\n  output_tokens: 300\n", "  lengths_csv: req.csv\n")
    text = text.replace("  peak_requests_per_s: 50\n  average_requests_per_s: 20\n",
                        "  tokens_per_day: 397440000\n  peak_to_average: 2.5\n")
    s = load_scenario(write(tmp_path, text))
    # 397,440,000 tokens/day / 86,400 s / 2,300 tokens per request = 2 requests/s
    assert s.average_rps == pytest.approx(2.0)
    assert s.peak_rps == pytest.approx(5.0)
    ls = s.lengths()
    assert ls.mean_input == 2000 and ls.mean_output == 300
    rc, out, err = run_cli(["size", tmp_path / "s.yaml", "-f", "csv"])
    assert rc == 0, err
    (tmp_path / "req.csv").write_text("input_tokens,output_tokens\n1000,x\n")
    with pytest.raises(ScenarioError, match="line 2: expected two numbers"):
        load_scenario(tmp_path / "s.yaml")


def test_shipped_example_scenario_runs(run_cli):
    rc, out, err = run_cli(["check", REPO / "examples" / "chat-70b.yaml"])
    assert rc in (0, 1), err
    assert json.loads(out)["deployments"]
    assert math.isfinite(json.loads(out)["deployments"][0]["usd_per_month"])


def test_size_checks_heavy_tailed_plans_by_simulation(run_cli, tmp_path, catalog):
    """Fixed lengths: the analytical replica count. Lognormal lengths with p90 at twice the mean
    (p99 ~5x): replicas are added until a seeded simulation at peak meets the SLO percentiles
    too; one replica fewer breaks them in simulation; stderr says how many were checked."""
    from infercap.size import simulated_breaches

    rc, out, err = run_cli(["size", write(tmp_path, SPEC), "-f", "csv"])
    assert rc == 0 and "simulation" not in err
    heavy = SPEC.replace("input_tokens: 2000", "input_tokens: {mean: 2000, p90: 4000}")
    p = write(tmp_path, heavy, "heavy.yaml")
    rc, out, err = run_cli(["size", p, "-f", "csv"])
    assert rc == 0, err
    note = [line for line in err.splitlines() if "checked by simulation" in line]
    assert len(note) == 1
    analytical = int(note[0].split("analytical: ")[1].rstrip(")"))
    s = load_scenario(p)
    r = size(s, catalog, Resolver(load_profile("default")), engine_profile_for("trtllm"))
    (i, (e, rate)), = r.engines.items()
    reps = r.rows[i]["replicas"]
    assert reps > analytical  # this scenario's analytical p99s are known to be low
    assert rate == pytest.approx(50.0 / reps)
    assert simulated_breaches(e, 50.0 / reps, s) == []
    assert simulated_breaches(e, 50.0 / (reps - 1), s) != []
    # a GPU limit below what the simulation needs: no deployment, and stderr says why
    capped = heavy + f"limits:\n  max_gpus: {(reps - 1) * r.rows[i]['gpus_per_instance']}\n"
    rc, out, err = run_cli(["size", write(tmp_path, capped, "capped.yaml"), "-f", "csv"])
    assert rc == 1 and "no replica count within the limits" in err


def test_check_simulates_heavy_tailed_scenarios(run_cli, tmp_path):
    """Fixed lengths: the gate uses the analytical model only. Heavy-tailed lengths: the chosen
    deployment is simulated at peak as well (`simulated` in the JSON); since `size` already
    added the replicas the simulation asks for, the gate passes on the same plan."""
    rc, out, err = run_cli(["check", write(tmp_path, SPEC), "-q"])
    assert rc == 0 and json.loads(out)["simulated"] is False
    heavy = SPEC.replace("input_tokens: 2000", "input_tokens: {mean: 2000, p90: 4000}")
    rc, out, err = run_cli(["check", write(tmp_path, heavy, "heavy.yaml")])
    doc = json.loads(out)
    assert rc == 0, err
    assert doc["simulated"] is True and doc["pass"] is True and not doc["breaches"]


def test_heavy_tailed_disaggregated_pools_are_checked_by_simulation(run_cli, tmp_path):
    """Serving both ways with heavy-tailed prompts: the prefill pool (TTFT SLOs, plus the KV
    transfer and first decode step) and the decode pool (TPOT SLOs) are each given the
    replicas a simulation asks for, never fewer than the analytical count; check gates that
    plan as simulated whichever mode wins."""
    heavy = SPEC.replace("input_tokens: 2000", "input_tokens: {mean: 2000, p90: 4000}") \
        .replace("serving: aggregated", "serving: both")
    p = write(tmp_path, heavy, "both.yaml")
    rc, out, err = run_cli(["size", p, "-f", "csv"])
    assert rc == 0, err
    notes = [line for line in err.splitlines() if "disaggregated" in line and "checked" in line]
    assert len(notes) == 1
    got = notes[0].split("disaggregated ")[1]
    p_reps, d_reps = int(got.split(" prefill")[0]), int(got.split("+ ")[1].split(" decode")[0])
    p_an, d_an = (int(x) for x in got.split("analytical: ")[1].rstrip(")").split(" + "))
    assert p_reps >= p_an and d_reps >= d_an
    rows = list(csv.DictReader(io.StringIO(out)))
    dis = next(r for r in rows if r["mode"] == "disaggregated")
    assert dis["prefill_layout"].startswith(f"{p_reps}x ") and int(dis["replicas"]) == d_reps
    rc, out, err = run_cli(["check", p, "-q"])
    assert rc == 0 and json.loads(out)["simulated"] is True


def test_distinct_pair_prints_the_digits_that_show_the_breach():
    from infercap.render import distinct_pair
    assert distinct_pair(0.1326, 0.132) == ("0.133", "0.132")  # not "0.13 > 0.13"
    assert distinct_pair(1234.5, 1000.0) == ("1,234.50", "1,000.00")
    assert distinct_pair(2.0, 2.0) == ("2.00", "2.00")


def test_check_breach_line_tells_value_and_limit_apart(run_cli, tmp_path):
    """A budget just under the best deployment's cost: the stderr line shows two different
    numbers, the value above the limit."""
    def check(limit):
        budget = f"budget:\n  max_usd_per_m_tokens: {limit!r}\n"
        return run_cli(["check", write(tmp_path, SPEC + budget)])

    value = json.loads(check(0.001)[1])["breaches"][0]["value"]
    rc, out, err = check(value * (1 - 1e-4))  # equal at 2 decimals
    assert rc == 1
    shown, _, bound = err.strip().splitlines()[0].rpartition(": ")[2].partition(" > ")
    assert shown != bound and float(shown.replace(",", "")) > float(bound.replace(",", ""))
