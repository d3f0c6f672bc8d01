"""The analytical queueing model: special functions, hand-checked formulas, and agreement with
the discrete-event simulation of the same scheduler (issue: within 15% on p50/p99 TTFT and
TPOT at loads up to 90% of capacity)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from infercap.arch import arch_of
from infercap.inputs import gather, tabulate
from infercap.perf import Layout
from infercap.precision import PRESETS
from infercap.profile import Resolver, engine_profile_for, load_profile
from infercap.queueing import (Lengths, analyse, build_engine, capacity, closed_loop,
                               gamma_quantile, lognormal_samples, log_factorial, normal_cdf,
                               normal_quantile)
from infercap.serving import offline_batch
from infercap.simulate import simulate


def engine_for(catalog, model, gpu, prec, tp, cap, lengths):  # type: ignore[no-untyped-def]
    eng = engine_profile_for("trtllm")
    res = Resolver(load_profile("default"), eng)
    t = tabulate([catalog.gpus[gpu]], [PRESETS[prec]], res, eng)
    rates, figs, byt = gather(t, np.array([0]), np.array([0]))
    a = arch_of(catalog.models[model])
    lay = Layout(np.array([float(tp)]), np.array([1.0]), np.array([1.0]), np.array([1.0]))
    fit = offline_batch(a, lay, byt, figs, rates, np.float64(lengths.mean_input),
                        np.float64(lengths.mean_output))
    return build_engine(a, lay, byt, figs, rates, lengths, np.array([min(cap, fit[0])]))


def test_special_functions():
    assert normal_quantile(0.99) == pytest.approx(2.326348, abs=1e-5)
    assert normal_quantile(0.5) == pytest.approx(0.0, abs=1e-9)
    assert normal_cdf(np.array(1.959964)) == pytest.approx(0.975, abs=1e-6)
    assert log_factorial(np.array(10.0)) == pytest.approx(math.lgamma(11), rel=1e-9)
    assert log_factorial(np.array(0.0)) == 0.0
    # gamma with shape 4, scale 1: median 3.672, p99 10.045 (tables); Wilson-Hilferty ~0.5 %
    assert gamma_quantile(4.0, 4.0, 0.5) == pytest.approx(3.672, rel=0.01)
    assert gamma_quantile(4.0, 4.0, 0.99) == pytest.approx(10.045, rel=0.01)


def test_lognormal_lengths_keep_mean_and_percentile():
    x = lognormal_samples(2000.0, {"p90": 4000.0}, n=4000)
    assert x.mean() == pytest.approx(2000.0, rel=0.02)
    assert np.quantile(x, 0.9) == pytest.approx(4000.0, rel=0.03)
    assert len(lognormal_samples(300.0, {})) == 1


def test_capacity_by_hand(catalog):
    """capacity = 1 / (osl x D(B) / B + E[P]): recompute from the engine's own arrays."""
    e = engine_for(catalog, "llama-3.1-8b", "h100-sxm", "bf16", 1, 64, Lengths.fixed(512, 512))
    d_b = np.interp(64.0, e.n, e.decode_s[0])
    by_hand = 1.0 / (512.0 * d_b / 64.0 + e.prefill_s[0].mean())
    assert capacity(e)[0] == pytest.approx(by_hand, rel=1e-9)
    # at a tiny load: TPOT = D(1)-ish, TTFT about one prefill iteration plus overheads
    q = analyse(e, np.array([capacity(e)[0] * 1e-4]))
    assert q.tpot_mean[0] == pytest.approx(e.decode_s[0, 0], rel=0.02)
    assert not q.saturated[0]
    assert analyse(e, np.array([capacity(e)[0] * 1.01])).saturated[0]


def test_percentiles_grow_with_load(catalog):
    e = engine_for(catalog, "llama-3.1-70b", "h100-sxm", "fp8", 4, 256, Lengths.fixed(2000, 300))
    loads = np.linspace(0.1, 0.9, 9)
    q = analyse(e.take(np.zeros(9, dtype=int)), capacity(e)[0] * loads)
    for arr in (q.ttft_quantiles((0.5, 0.99)), q.tpot_quantiles((0.5, 0.99))):
        assert np.all(np.diff(arr, axis=0) > 0)
        assert np.all(arr[:, 1] >= arr[:, 0])


CASES = [
    ("llama-3.1-70b", "h100-sxm", "fp8", 4, 256, (2000, 300)),
    ("llama-3.1-8b", "h100-sxm", "bf16", 1, 256, (512, 512)),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_analytical_model_agrees_with_simulation(catalog, case):
    model, gpu, prec, tp, cap, (isl, osl) = case
    e = engine_for(catalog, model, gpu, prec, tp, cap, Lengths.fixed(isl, osl))
    c = capacity(e)[0]
    for load in (0.2, 0.5, 0.7, 0.9):
        q = analyse(e, np.array([load * c]))
        sim = simulate(e, 0, load * c, requests=20000, seed=3).percentiles((0.5, 0.99))
        for name, analytic in (("ttft", q.ttft_quantiles((0.5, 0.99))[0]),
                               ("tpot", q.tpot_quantiles((0.5, 0.99))[0])):
            err = analytic / sim[name] - 1
            assert np.all(np.abs(err) <= 0.15), (model, load, name, analytic, sim[name])


def test_simulation_is_seeded_and_conserves_requests(catalog):
    e = engine_for(catalog, "llama-3.1-8b", "h100-sxm", "bf16", 1, 32, Lengths.fixed(256, 64))
    a = simulate(e, 0, 5.0, requests=600, seed=7)
    b = simulate(e, 0, 5.0, requests=600, seed=7)
    assert np.array_equal(a.ttft, b.ttft)
    assert len(a.ttft) == 480  # the middle 80 % are measured
    assert a.mean_batch <= 32
    # a burst: everything arrives at once, the batch cap is the binding limit
    burst = simulate(e, 0, float("inf"), requests=200, seed=0, warmup=0.0)
    assert burst.ttft.max() > 5 * burst.ttft.min()
    # fixed lengths: the token-weighted ITL is the per-request mean TPOT
    assert a.itl_mean == pytest.approx(a.tpot.mean(), rel=1e-9)
    # mixed lengths: long requests weigh more in the ITL (they decode late, at small batches
    # after the burst's short ones leave, so their gaps differ from the short ones')
    mixed = build_engine_for_mixed(catalog)
    m = simulate(mixed, 0, float("inf"), requests=300, seed=0, warmup=0.0)
    assert m.itl_mean != pytest.approx(m.tpot.mean(), rel=1e-3)


def build_engine_for_mixed(catalog):  # type: ignore[no-untyped-def]
    lengths = Lengths(np.array([256.0, 256.0]), np.array([16.0, 512.0]))
    return engine_for(catalog, "llama-3.1-8b", "h100-sxm", "bf16", 1, 32, lengths)


def test_idle_engine_pays_no_residual(catalog):
    """At a vanishing load the engine is empty when a request arrives: TTFT = front-end
    overhead + one prefill-only iteration D(1) + the prompt's marginal cost, no residual."""
    e = engine_for(catalog, "llama-3.1-8b", "h100-sxm", "bf16", 1, 64, Lengths.fixed(467, 16))
    q = analyse(e, np.array([capacity(e)[0] * 1e-5]))
    by_hand = e.request_overhead_s[0] + e.decode_s[0, 0] + e.prefill_s[0, 0]
    assert q.ttft_mean[0] == pytest.approx(by_hand, rel=1e-3)
    # and the median is that same point (the idle component is a step, not a spread)
    assert q.ttft_quantiles((0.5,))[0, 0] == pytest.approx(by_hand, rel=1e-3)


def test_closed_loop_by_hand(catalog):
    """c in flight: tau = D(c) + (c / osl) E[P]; throughput c / tau; TTFT = overhead + D(c)
    + max(1, c / osl) E[P]; past the batch cap the extra requests queue."""
    e = engine_for(catalog, "llama-3.1-8b", "h100-sxm", "bf16", 1, 64, Lengths.fixed(512, 128))
    p = e.prefill_s[0, 0]
    ttft, tau, tput = closed_loop(e, np.array([16.0]))
    d16 = np.interp(16.0, e.n, e.decode_s[0])
    assert tau[0] == pytest.approx(d16 + 16 / 128 * p, rel=1e-9)
    assert tput[0] == pytest.approx(16 / tau[0], rel=1e-9)
    assert ttft[0] == pytest.approx(e.request_overhead_s[0] + d16 + p, rel=1e-9)
    # 96 in flight, cap 64: 32 wait for 32 departures at 64 / (128 tau) per second
    ttft96, tau96, _ = closed_loop(e, np.array([96.0]))
    d64 = np.interp(64.0, e.n, e.decode_s[0])
    assert tau96[0] == pytest.approx(d64 + 64 / 128 * p, rel=1e-9)
    assert ttft96[0] == pytest.approx(e.request_overhead_s[0] + 32 * 128 * tau96[0] / 64
                                      + d64 + p, rel=1e-9)


def test_heavy_tailed_prompts_hold_arrivals_for_their_whole_prefill(catalog):
    """Lognormal lengths (mean 2000, p90 4000 / mean 300, p90 700): the median TTFT follows the
    simulation within 15% up to half load, because an arrival during a long prompt's prefill
    waits for all its chunks (the landing block). The p99 tail is documented as low."""
    lengths = Lengths(lognormal_samples(2000, {"p90": 4000}), lognormal_samples(300, {"p90": 700}))
    e = engine_for(catalog, "llama-3.1-70b", "h200-sxm", "fp8", 2, 512, lengths)
    c = capacity(e)[0]
    for load in (0.3, 0.5):
        q = analyse(e, np.array([load * c]))
        sim = simulate(e, 0, load * c, requests=20000, seed=5).percentiles((0.5,))
        assert q.ttft_quantiles((0.5,))[0, 0] == pytest.approx(sim["ttft"][0], rel=0.15), load
