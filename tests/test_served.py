"""Served-engine mechanisms (issue 12), each on a hand-checked case: the benchmark client's
finite closed loop, per-rank DP prefill budgets, GPU-family figures, engine release lines, the
measurement fields of modern serving runs and the accuracy gate."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from conftest import assert_clean_error
from infercap.calibrate import configuration, split
from infercap.errors import MeasurementError
from infercap.measurements import parse_cases
from infercap.profile import Profile, Resolver, load_profile, release_profile_id
from infercap.queueing import Engine, Lengths
from infercap.simulate import simulate

# ------------------------------------------------------------------ the closed-loop client


def toy_engine(overhead_s: float = 0.005) -> Engine:
    """Decode iterations of 10 ms whatever the batch or context, 20 ms of engine time per
    prompt (100 tokens in, 3 out), a token budget that takes every prompt at once."""
    return Engine(n=np.array([1.0, 16.0]), decode_s=np.array([[0.01, 0.01]]),
                  decode_s_per_context=np.zeros((1, 2)), context=np.array([101.0]),
                  prefill_s=np.array([[0.02]]), lengths=Lengths.fixed(100, 3),
                  batch_cap=np.array([16.0]), token_budget=np.array([1e6]),
                  request_overhead_s=np.array([overhead_s]))


def test_closed_loop_starts_with_a_burst_and_stays_in_waves():
    """4 in flight, 8 requests. t = 0: four sent, at the engine 5 ms later (the server's own
    work). One iteration prefills all four: D(1) + 4 x 20 ms = 90 ms, so every first token at
    95 ms: TTFT 95 ms, holding four prompts' prefill, not one. Two decode iterations later
    (115 ms) all four finish and the client sends the next four at once: the same wave again,
    TTFT 95 ms; TPOT = (115 - 95) / 2 = 10 ms."""
    sim = simulate(toy_engine(), 0, np.inf, requests=8, warmup=0.0, concurrency=4)
    assert np.allclose(sim.ttft, 0.095)
    assert np.allclose(sim.tpot, 0.010)
    # the run lasts 2 x (5 + 90 + 20) ms = 230 ms for 24 tokens
    assert sim.output_tokens_per_s == pytest.approx(24 / 0.230)
    # one in flight: each request alone, TTFT = 5 + 10 + 20 ms
    one = simulate(toy_engine(), 0, np.inf, requests=3, warmup=0.0, concurrency=1)
    assert np.allclose(one.ttft, 0.035)


def test_closed_loop_never_holds_more_than_its_concurrency():
    e = toy_engine(0.0)
    for c in (1, 3, 7):
        sim = simulate(e, 0, np.inf, requests=5 * c, warmup=0.0, concurrency=c)
        assert sim.mean_batch <= c + 1e-9
        assert len(sim.ttft) == 5 * c


def test_open_loop_unchanged_by_the_server_overhead_shift():
    """Poisson arrivals: moving every arrival by the server overhead moves TTFT by it."""
    a = simulate(toy_engine(0.0), 0, 5.0, requests=400, seed=3)
    b = simulate(toy_engine(0.005), 0, 5.0, requests=400, seed=3)
    assert np.allclose(b.ttft, a.ttft + 0.005)


# ------------------------------------------------------------------ DP attention budgets


def test_each_dp_rank_has_its_own_prefill_budget(catalog, resolver):
    """DP attention: every rank schedules max_num_tokens of prompt per iteration, so the
    engine's budget is dp x max_num_tokens and a prompt costs 1/dp of the instance's time that
    one rank's whole budget would (here 4 ranks, 8,192 tokens each)."""
    from infercap.inputs import gather, tabulate
    from infercap.perf import Figs, Layout
    from infercap.precision import PRESETS
    from infercap.queueing import build_engine

    gpu = catalog.gpus["h200-sxm"]
    t = tabulate([gpu], [PRESETS["fp8"]], resolver, None, allow_weight_only_fp4=False)
    rates, _, byt = gather(t, np.array([0, 0]), np.array([0, 0]))
    from infercap.arch import arch_of

    a = arch_of(catalog.models["deepseek-v3"])
    figs = Figs({k: np.full(2, v) for k, v in resolver.figures(gpu).items()})
    lay = Layout(np.array([8.0, 1.0]), np.array([1.0, 1.0]), np.array([8.0, 8.0]),
                 np.array([1.0, 8.0]))
    e = build_engine(a, lay, byt, figs, rates, Lengths.fixed(2000, 100), np.array([64.0, 64.0]))
    mnt = float(figs.max_num_tokens[0])
    assert e.token_budget[0] == mnt and e.token_budget[1] == 8 * mnt


# ------------------------------------------------------------------ figures by GPU family


def test_gb200_takes_b200_figures_unless_it_has_its_own(catalog):
    default = load_profile("default")
    eng = Profile("x", "test", {}, gpus={"b200": {"memory_bandwidth_fraction": 0.61}})
    r = Resolver(default, eng)
    assert catalog.gpus["gb200"].figures_from == "b200"
    assert r.figures(catalog.gpus["gb200"])["memory_bandwidth_fraction"] == 0.61
    assert "gpus.b200" in r.source_of(catalog.gpus["gb200"], "memory_bandwidth_fraction")
    own = Profile("x", "test", {}, gpus={"b200": {"memory_bandwidth_fraction": 0.61},
                                         "gb200": {"memory_bandwidth_fraction": 0.7}})
    assert Resolver(default, own).figures(catalog.gpus["gb200"])[
        "memory_bandwidth_fraction"] == 0.7


def test_unknown_figures_from_is_refused(run_cli, tmp_path):
    from conftest import copy_shipped

    dest = tmp_path / "cat"
    f = copy_shipped("hardware", "h100-sxm", dest)
    (dest / "hardware" / "h100-x.yaml").write_text(
        f.read_text().replace("id: h100-sxm", "id: h100-x") + "figures_from: nope\n")
    f.unlink()
    line = assert_clean_error(*run_cli(["plan", "-m", "llama-3.1-8b", "-g", "h100-x",
                                        "--catalog", str(dest)]))
    assert "figures_from" in line and "nope" in line


# ------------------------------------------------------------------ engine release lines


def test_release_lines():
    assert release_profile_id("trtllm", "0.17.0") == "trtllm-0.x"
    assert release_profile_id("trtllm", "1.2.0rc6.post2") == "trtllm"
    assert release_profile_id("trtllm", None) == "trtllm"  # the current line
    assert release_profile_id("vllm", "0.19.0") == "vllm"  # one line ships
    assert release_profile_id("trtllm", "nightly-dev") == "trtllm"
    assert load_profile("trtllm-0.x").description.startswith("TensorRT-LLM 0.x")
    assert load_profile("trtllm").description.startswith("TensorRT-LLM 1.x")


def test_plan_names_the_release_line(run_cli):
    rc, out, err = run_cli(["plan", "-m", "llama-3.1-8b", "-g", "h100-sxm", "-f", "csv"])
    assert rc == 0 and "engine profile trtllm (TensorRT-LLM 1.x" in err
    rc, out, err = run_cli(["plan", "-m", "llama-3.1-8b", "-g", "h100-sxm", "-f", "csv",
                            "--engine", "trtllm-0.x"])
    assert rc == 0 and "engine profile trtllm-0.x (TensorRT-LLM 0.x" in err


# ------------------------------------------------------------------ measurement fields

BASE = """\
cases:
- id: c1
  source: test
  model: deepseek-v3
  gpu: b200
  gpus: 8
  tp: 1
  pp: 1
  dp: 8
  ep: 8
  weights: fp8
  engine: sglang
  engine_version: 0.5.9
  scenario: concurrency
  concurrency: 64
  input_tokens: 922
  output_tokens: 922
  input_tokens_range: [819, 1024]
  output_tokens_range: [819, 1024]
  num_requests: 640
  warmup_requests: 128
  metric: ttft_ms
  value: 300
"""


def test_modern_fields_load():
    (c,) = parse_cases(__import__("yaml").safe_load(BASE), "m.yaml")
    assert (c.dp, c.engine_version, c.input_range, c.output_range, c.warmup_requests) == \
        (8, "0.5.9", (819, 1024), (819, 1024), 128)


@pytest.mark.parametrize("change, key, words", [
    ("  dp: 8\n", "dp", "multiple of tp x pp x dp"),  # replaced by dp: 3 below
    ("  input_tokens_range: [819, 1024]\n", "input_tokens_range", "min <= max"),
    ("  input_tokens: 922\n", "input_tokens_range", "inside"),
    ("DISAGG", "disaggregated.decode", "missing required key"),
])
def test_bad_modern_fields(run_cli, tmp_path, change, key, words):
    text = {"  dp: 8\n": BASE.replace("  dp: 8\n", "  dp: 3\n"),
            "  input_tokens_range: [819, 1024]\n": BASE.replace("[819, 1024]\n  output",
                                                                "[1024, 819]\n  output"),
            "  input_tokens: 922\n": BASE.replace("  input_tokens: 922\n",
                                                  "  input_tokens: 2000\n"),
            "DISAGG": BASE.replace("  dp: 8\n", "  disaggregated:\n    prefill: {workers: 1, "
                                   "tp: 8, pp: 1}\n")}[change]
    p = tmp_path / "m.yaml"
    p.write_text(text)
    line = assert_clean_error(*run_cli(["validate", str(p)]))
    assert str(p) in line and f"key '{key}'" in line and words in line, line


def test_disaggregated_cases_load_and_are_skipped_with_the_reason(run_cli, tmp_path):
    p = tmp_path / "d.yaml"
    p.write_text(BASE.replace("  gpus: 8\n", "  gpus: 16\n").replace(
        "  dp: 8\n", "  dp: 8\n  disaggregated:\n    prefill: {workers: 1, tp: 8, pp: 1}\n"
        "    decode: {workers: 1, tp: 1, pp: 1, dp: 8, ep: 8}\n"))
    rc, out, err = run_cli(["validate", str(p), "-f", "csv"])
    assert rc == 0, err
    assert "disaggregated prefill/decode pools are not predicted" in out
    bad = tmp_path / "e.yaml"
    bad.write_text(p.read_text().replace("  gpus: 16\n", "  gpus: 12\n"))
    line = assert_clean_error(*run_cli(["validate", str(bad)]))
    assert "key 'gpus'" in line and "total of both pools (16)" in line


# ------------------------------------------------------------------ hold-out and the gate


def test_holdout_keeps_a_deployment_on_one_side():
    import yaml

    base = yaml.safe_load(BASE)["cases"][0]
    cases = []
    for k, conc in enumerate((4, 8, 16, 32, 64, 128)):
        for cfg in range(12):
            c = dict(base, id=f"c{cfg}-{k}", concurrency=conc, ep=8 // (1 + cfg % 2),
                     input_tokens=900 + cfg)
            cases.append(c)
    parsed = parse_cases({"cases": cases}, "h.yaml")
    held = split(parsed, 0.5, 0)
    by_cfg: dict[str, set[bool]] = {}
    for c, h in zip(parsed, held):
        by_cfg.setdefault(configuration(c), set()).add(bool(h))
    assert len(by_cfg) == 12 and all(len(v) == 1 for v in by_cfg.values())
    assert 0 < held.sum() < len(held)


DECODE = """\
cases:
- id: d1
  source: test
  model: llama-3.1-8b
  gpu: h100-sxm
  gpus: 1
  tp: 1
  pp: 1
  weights: bf16
  scenario: decode_step
  batch: 1
  context_tokens: 1024
  metric: decode_step_ms
  value: {value}
"""


def test_fail_on_targets_is_a_ci_gate(run_cli, tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text(DECODE.format(value=1000.0))  # a decode step 100x slower than any model
    rc, out, err = run_cli(["validate", str(p), "--fail-on-targets"])
    assert rc == 1 and "accuracy target missed: decode_step_ms" in err, err
    rc, out, err = run_cli(["validate", str(p)])
    assert rc == 0, err
    rc, out, err = run_cli(["validate", str(p), "-f", "csv"])
    predicted = float(out.splitlines()[1].split(",")[3])
    p.write_text(DECODE.format(value=predicted * 1.02))
    rc, out, err = run_cli(["validate", str(p), "--fail-on-targets"])
    assert rc == 0, err


def test_measurement_error_names_the_file():
    with pytest.raises(MeasurementError, match="x.yaml"):
        parse_cases({"cases": [{"id": "a"}]}, "x.yaml")


def test_dedent_is_plain():  # the YAML above is written flush left
    assert textwrap.dedent(BASE) == BASE


# ------------------------------------------------------------------ each engine's KV pool


def test_kv_pool_by_engine():
    """vLLM's gpu_memory_utilization and SGLang's mem_fraction_static are shares of the whole
    GPU; TensorRT-LLM's free_gpu_memory_fraction is a share of what the weights and
    activations leave. On an 80 GiB GPU with 16 GiB of weights, 1 GiB reserved and the
    workspace W: vLLM (0.9, 1.0) keeps 0.9 x 80 - 1 - 16 - W; TensorRT-LLM 1.x (1.0, 0.9)
    keeps 0.9 x (80 - 1.5 - 16 - W)."""
    from test_perf import TINY, layout, nbytes, neutral_figs, rates

    from infercap import perf
    from infercap.arch import arch_of

    a, lay, b = arch_of(TINY), layout(), nbytes()
    r = rates(memory=80 * 2**30)
    w = float(perf.weight_bytes_per_gpu(a, lay, b))
    gib = 2**30

    def pool(**figs: float) -> float:
        f = neutral_figs(max_num_tokens=8192, **figs)
        ws = float(perf.workspace_bytes_per_gpu(a, lay, f))
        return float(perf.kv_budget_per_gpu(a, lay, b, f, r)), ws

    vllm, ws = pool(gpu_memory_utilization=0.9, kv_cache_free_memory_fraction=1.0,
                    runtime_reserved_gib=1.0)
    assert vllm == pytest.approx(0.9 * 80 * gib - gib - w - ws)
    trt, ws = pool(gpu_memory_utilization=1.0, kv_cache_free_memory_fraction=0.9,
                   runtime_reserved_gib=1.5)
    assert trt == pytest.approx(0.9 * (80 * gib - 1.5 * gib - w - ws))
    # the shipped profiles carry these semantics
    assert load_profile("vllm").figures["gpu_memory_utilization"] == 0.9
    assert load_profile("trtllm").figures["kv_cache_free_memory_fraction"] == 0.9
    assert load_profile("trtllm").figures["gpu_memory_utilization"] == 1.0


def test_concurrency_beyond_the_pool_waits_for_a_slot():
    """12 sent at once to an engine whose pool holds 4 sequences: four are prefilled together
    (10 + 4 x 20 = 90 ms), decode two iterations (110 ms) and leave; the next four wait for
    those slots: first tokens at 110 + 90 = 200 ms, the last four at 310 ms. Without the cap
    all twelve share one iteration: 10 + 12 x 20 = 250 ms."""
    e = toy_engine(0.0)
    small = Engine(e.n, e.decode_s, e.decode_s_per_context, e.context, e.prefill_s, e.lengths,
                   np.array([4.0]), e.token_budget, e.request_overhead_s)
    sim = simulate(small, 0, np.inf, requests=12, warmup=0.0, concurrency=12)
    assert np.allclose(np.sort(sim.ttft), [0.09] * 4 + [0.20] * 4 + [0.31] * 4)
    assert sim.mean_batch <= 4 + 1e-9
    free = simulate(e, 0, np.inf, requests=12, warmup=0.0, concurrency=12)
    assert np.allclose(free.ttft, 0.25)


# ------------------------------------------------------------------ the run's engine settings


def test_engine_args_replace_the_profile_settings(run_cli, tmp_path):
    """A run that capped its running requests at 4 (vLLM --max-num-seqs, SGLang
    --max-running-requests, TensorRT-LLM max_batch_size) holds its other 12 prompts back:
    TTFT grows by about two waves, TPOT shrinks with the smaller batch."""
    import csv
    import io

    text = BASE.replace("  concurrency: 64\n", "  concurrency: 16\n").replace(
        "  num_requests: 640\n", "  num_requests: 160\n")
    text += text.replace("id: c1", "id: c2").replace("cases:\n", "").replace(
        "  metric: ttft_ms\n", "  engine_args: {max_batch_size: 4}\n  metric: ttft_ms\n")
    p = tmp_path / "m.yaml"
    p.write_text(text)
    rc, out, err = run_cli(["validate", str(p), "-f", "csv"])
    assert rc == 0, err
    got = {r["id"]: float(r["predicted"]) for r in csv.DictReader(io.StringIO(out))}
    assert got["c2"] > 2 * got["c1"]


@pytest.mark.parametrize("args, key, words", [
    ("{gpu_memory_utilization: 1.5}", "engine_args", "in (0, 1]"),
    ("{max_batch_size: 2.5}", "engine_args", "whole number"),
    ("{max_num_seqs: 8}", "engine_args.max_num_seqs", "unknown key"),
    ("{recv_interval_iterations: 2.5}", "engine_args", "whole number"),
    ("{dp_balance_timeout_iterations: 0.5}", "engine_args", "whole number"),
])
def test_bad_engine_args(run_cli, tmp_path, args, key, words):
    p = tmp_path / "m.yaml"
    p.write_text(BASE.replace("  metric: ttft_ms\n", f"  engine_args: {args}\n  metric: ttft_ms\n"))
    line = assert_clean_error(*run_cli(["validate", str(p)]))
    assert f"key '{key}'" in line and words in line, line


# ------------------------------------------------------------------ TensorRT-LLM batch waiting


def _lengths_engine(outputs, **extra):
    e = toy_engine(0.0)
    k = len(outputs)
    return Engine(n=e.n, decode_s=e.decode_s, decode_s_per_context=e.decode_s_per_context,
                  context=e.context, prefill_s=np.array([[0.02] * k]),
                  lengths=Lengths(np.full(k, 100.0), np.array(outputs, dtype=float)),
                  batch_cap=e.batch_cap, token_budget=np.array([1000.0]),
                  request_overhead_s=e.request_overhead_s, **extra)


def test_batch_wait_holds_new_prompts_until_the_timeout():
    """TensorRT-LLM batch_wait_timeout_iters 3, batch_wait_max_tokens_ratio 0.9 of a 1,000-token
    budget; 100-token prompts, outputs of 5 or 40 tokens, 4 in flight. The first four arrive
    on an idle engine: nothing decodes, no wait. The next four arrive as the short ones finish
    while long ones decode: 4 x 100 prompt + 2 decode tokens < 900, so each waits exactly three
    decode iterations, 30 ms, before its prefill."""
    plain = simulate(_lengths_engine([5.0, 40.0]), 0, np.inf, requests=40, warmup=0.0,
                     concurrency=4)
    waiting = simulate(_lengths_engine([5.0, 40.0], batch_wait_iterations=np.array([3.0]),
                                       batch_wait_tokens_fraction=np.array([0.9])),
                       0, np.inf, requests=40, warmup=0.0, concurrency=4)
    d = waiting.ttft - plain.ttft
    assert np.allclose(d[:4], 0.0) and np.allclose(d[4:8], 0.03)
    assert 0.01 < d.mean() < 0.05


def test_recv_interval_holds_new_requests_between_polls():
    """SGLang --scheduler-recv-interval 4: after decode-only iterations (10 ms each) the
    scheduler looks for new requests only every 4th iteration. The first four requests reach
    an idle engine (it polls continuously): no delay. A later one waits at most 3 decode
    iterations (30 ms) for the poll; interval 1 is the default and changes nothing."""
    def run(**extra):
        return simulate(_lengths_engine([5.0, 40.0], **extra), 0, np.inf, requests=60,
                        warmup=0.0, concurrency=4)

    plain, polled = run(), run(recv_interval_iterations=np.array([4.0]))
    assert np.allclose(run(recv_interval_iterations=np.array([1.0])).ttft, plain.ttft)
    assert np.allclose((polled.ttft - plain.ttft)[:4], 0.0)
    assert 0.0 < polled.ttft.mean() - plain.ttft.mean() <= 0.03
    assert polled.ttft.max() <= plain.ttft.max() + 0.03 + 1e-9


def test_dp_balance_holds_prompts_until_every_rank_has_one():
    """TensorRT-LLM attention-DP balancing, 2 ranks, timeout 8 iterations: a prompt on one rank
    waits while the other rank has none, at most 7 decode iterations (70 ms; the counter runs
    every iteration), unless a rank has nothing to decode (the first four, on an idle engine,
    do not wait). With one rank (dp 1) the setting does nothing."""
    def run(dp, **extra):
        return simulate(_lengths_engine([5.0, 17.0, 40.0], dp=np.array([dp]), **extra), 0,
                        np.inf, requests=60, warmup=0.0, concurrency=4)

    timeout = dict(dp_balance_timeout_iterations=np.array([8.0]))
    assert np.allclose(run(1.0, **timeout).ttft, run(1.0).ttft)
    plain, balanced = run(2.0), run(2.0, **timeout)
    assert np.allclose((balanced.ttft - plain.ttft)[:4], 0.0)
    assert 0.0 < balanced.ttft.mean() - plain.ttft.mean() <= 0.07
    assert balanced.ttft.max() <= plain.ttft.max() + 0.07 + 1e-9
