"""Property tests (hypothesis) of the sweep and the performance model.

These check physical invariants and accounting identities that must hold whatever the
calibrated efficiency figures are: the profiles are tuned elsewhere, so no test here pins a
predicted number.
"""

from __future__ import annotations

import csv
import io
import math
import os

import numpy as np
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from infercap.arch import arch_of
from infercap.catalog import load_catalog
from infercap.perf import Bytes, Layout, weight_bytes_per_gpu
from infercap.precision import PRESETS
from infercap.profile import Resolver, builtin_profile_ids, engine_profile_for, load_profile
from infercap.render import Format, render
from infercap.sweep import (COLUMNS, Workload, apply_slos, layouts_for, mark_pareto, rank,
                            sweep)

CAT = load_catalog()
RES = Resolver(load_profile("default"))
MODEL_IDS = sorted(CAT.models)
GPU_IDS = sorted(CAT.gpus)
PRESET_NAMES = list(PRESETS)
ENGINES = [None] + [p for p in ("trtllm", "vllm", "sglang", "pytorch")
                    if p in builtin_profile_ids()]
TEXT_COLUMNS = {"model", "gpu", "precision", "compute_dtype", "price_type", "decode_bound",
                "pareto"}
NUMERIC_COLUMNS = [c for c in COLUMNS if c not in TEXT_COLUMNS]

# INFERCAP_HYPOTHESIS_EXAMPLES=500 for a thorough run; 30 keeps the suite fast.
SETTINGS = settings(max_examples=int(os.environ.get("INFERCAP_HYPOTHESIS_EXAMPLES", "30")),
                    deadline=None, suppress_health_check=[HealthCheck.too_slow])

models = st.sampled_from(MODEL_IDS)
gpu_sets = st.lists(st.sampled_from(GPU_IDS), min_size=1, max_size=5, unique=True)
precision_sets = st.lists(st.sampled_from(PRESET_NAMES), min_size=1, max_size=3, unique=True)
input_lengths = st.one_of(st.sampled_from([1, 128, 1024, 2048, 8192, 32768]),
                          st.integers(1, 65536))
output_lengths = st.one_of(st.sampled_from([1, 16, 128, 256, 1024, 4096]),
                           st.integers(1, 8192))
engines = st.sampled_from(ENGINES)


def run_sweep(model_id, gpu_ids, precs, isl, osl, engine=None, **kw):
    return sweep(CAT.model(model_id), [CAT.gpu(g) for g in gpu_ids],
                 [PRESETS[p] for p in precs], Workload(isl, osl), RES,
                 engine_profile_for(engine), **kw)


# ------------------------------------------------------------------ (a) throughput vs batch


@SETTINGS
@given(model=models, gpu=st.sampled_from(GPU_IDS), prec=st.sampled_from(PRESET_NAMES),
       isl=input_lengths, osl=output_lengths, tp=st.sampled_from([1, 2, 4, 8]),
       pp=st.sampled_from([1, 2, 4]), engine=engines)
def test_throughput_never_falls_with_batch_while_memory_bound(model, gpu, prec, isl, osl, tp,
                                                              pp, engine):
    r = run_sweep(model, [gpu], [prec], isl, osl, engine, tps=[tp], pps=[pp],
                  batches=np.arange(1.0, 257.0))
    if len(r) == 0:
        return
    c = r.columns
    for ep, dp in {(int(e), int(d)) for e, d in zip(c["ep"], c["dp"])}:
        sel = np.flatnonzero((c["ep"] == ep) & (c["dp"] == dp))
        sel = sel[np.argsort(c["batch"][sel])]
        batch, tput = c["batch"][sel], c["output_tokens_per_s"][sel]
        bound = c["decode_bound"][sel]
        for i in range(len(sel) - 1):
            if bound[i] == "memory" and bound[i + 1] == "memory":
                assert tput[i + 1] >= tput[i] * (1 - 1e-9), (
                    f"throughput fell from batch {batch[i]} ({tput[i]:.6g} tok/s) to "
                    f"{batch[i + 1]} ({tput[i + 1]:.6g} tok/s) while memory-bound")


def test_throughput_monotone_case_is_not_vacuous():
    """Llama-3.1-8B bf16 on one H100 is memory-bound at small batch (weights dominate)."""
    r = run_sweep("llama-3.1-8b", ["h100-sxm"], ["bf16"], 1024, 256, tps=[1], pps=[1],
                  batches=np.arange(1.0, 33.0))
    c = r.columns
    mem = c["decode_bound"] == "memory"
    assert mem.sum() >= 8
    order = np.argsort(c["batch"][mem])
    assert np.all(np.diff(c["output_tokens_per_s"][mem][order]) > 0)


# ------------------------------------------------------------------ (b) TP and weight memory


@SETTINGS
@given(model=models, pp=st.sampled_from([1, 2, 3, 4, 8]), prec=st.sampled_from(PRESET_NAMES))
def test_more_tp_never_raises_weight_memory_per_gpu(model, pp, prec):
    a = arch_of(CAT.model(model))
    p = PRESETS[prec]
    tps = np.array([1, 2, 3, 4, 6, 8, 16, 32, 64], dtype=float)
    ones = np.ones_like(tps)
    b = Bytes(ones * p.weight_bytes, ones * p.weight_bytes, ones * p.kv_bytes)
    w = weight_bytes_per_gpu(a, Layout(tps, ones * pp, ones), b)
    assert np.all(w > 0)
    assert np.all(np.diff(w) <= 1e-9 * w[:-1]), dict(zip(tps, w))
    # and the valid layouts only (what the sweep offers)
    lays = layouts_for(CAT.model(model), [1, 2, 4, 8, 16], [pp])
    valid = np.unique(lays.tp)
    if len(valid) > 1:
        one = np.ones_like(valid)
        wv = weight_bytes_per_gpu(a, Layout(valid, one * pp, one),
                                  Bytes(one * p.weight_bytes, one * p.weight_bytes,
                                        one * p.kv_bytes))
        assert np.all(np.diff(wv) <= 1e-9 * wv[:-1])


@SETTINGS
@given(model=models, gpu=st.sampled_from(GPU_IDS), prec=st.sampled_from(PRESET_NAMES),
       isl=input_lengths, osl=output_lengths)
def test_more_tp_never_raises_memory_used_per_gpu(model, gpu, prec, isl, osl):
    r = run_sweep(model, [gpu], [prec], isl, osl, tps=[1, 2, 4, 8], pps=[1],
                  batches=np.array([1.0]), eps=[1], dps=[1])
    if len(r) < 2:
        return
    c = r.columns
    order = np.argsort(c["tp"])
    used = c["memory_used_gib_per_gpu"][order]
    assert np.all(np.diff(used) <= 1e-9 * used[:-1]), dict(zip(c["tp"][order], used))


# ------------------------------------------------------------------ (c) cost identities


@SETTINGS
@given(model=models, isl=input_lengths, osl=output_lengths, engine=engines)
def test_cost_identity_every_row(model, isl, osl, engine):
    r = run_sweep(model, GPU_IDS, PRESET_NAMES, isl, osl, engine)
    note(f"{len(r)} rows")
    if len(r) == 0:
        return
    c = r.columns
    # $/h = $/M output tokens x output tokens/s x 3600 s/h / 1e6
    np.testing.assert_allclose(
        c["usd_per_hour"], c["usd_per_m_output_tokens"] * c["output_tokens_per_s"] * 3600 / 1e6,
        rtol=1e-9)
    # $/h = GPUs x the GPU's hourly price
    price = np.array([CAT.gpu(g).price.usd_per_gpu_hour for g in c["gpu"]])
    np.testing.assert_allclose(c["usd_per_hour"], c["gpus"] * price, rtol=1e-12)
    assert np.all(c["gpus"] == c["tp"] * c["pp"] * c["dp"])
    # per-GPU throughput and per-user speed are consistent with the totals
    np.testing.assert_allclose(c["output_tokens_per_s_per_gpu"] * c["gpus"],
                               c["output_tokens_per_s"], rtol=1e-12)
    np.testing.assert_allclose(c["tokens_per_s_per_user"] * c["tpot_ms"], 1000.0, rtol=1e-9)
    # blended $/M tokens is below the output-only price (input tokens are counted too)
    assert np.all(c["usd_per_m_blended_tokens"] <= c["usd_per_m_output_tokens"] * (1 + 1e-12))


# ------------------------------------------------------------------ (d) finite numbers


@SETTINGS
@given(model=models, gpus=gpu_sets, precs=precision_sets, isl=input_lengths,
       osl=output_lengths, engine=engines)
def test_every_number_is_finite_and_physical(model, gpus, precs, isl, osl, engine):
    r = run_sweep(model, gpus, precs, isl, osl, engine)
    if len(r) == 0:
        return
    c = r.columns
    for name in NUMERIC_COLUMNS:
        v = np.asarray(c[name], dtype=float)
        assert np.all(np.isfinite(v)), f"{name} has non-finite values"
        assert np.all(v > 0), f"{name} has values <= 0"
    # a configuration the sweep keeps fits in memory, with the batch it runs
    assert np.all(c["memory_used_gib_per_gpu"] <= c["memory_gib_per_gpu"] * (1 + 1e-9))
    assert np.all(c["batch"] <= c["max_batch_fit"])
    # a request takes at least its first token plus (osl - 1) decode steps
    np.testing.assert_array_less(c["ttft_ms"] / 1e3 * (1 - 1e-9), c["e2e_latency_s"] + 1e-15)
    # the rendered CSV of the best rows: every numeric cell parses as a finite float
    best = rank(mark_pareto(r), "cost", 30, per_gpu=False)
    text = render(best.rows(), COLUMNS, Format.csv)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(best)
    for row in rows:
        for name in NUMERIC_COLUMNS:
            assert math.isfinite(float(row[name])), (name, row[name])


# ------------------------------------------------------------------ (e) Pareto front


def _check_pareto(r):
    c = r.columns
    x, y, front = c["tokens_per_s_per_user"], c["output_tokens_per_s_per_gpu"], c["pareto"]
    assert front.dtype == bool and front.any()
    px, py = x[front], y[front]
    # no row dominates a Pareto row (>= on both axes, > on one)
    for xi, yi in zip(px, py):
        dominated = (x >= xi) & (y >= yi) & ((x > xi) | (y > yi))
        assert not dominated.any(), f"Pareto row ({xi}, {yi}) is dominated"
    # every other row is matched or beaten on both axes by a Pareto row
    rest = np.flatnonzero(~front)
    for start in range(0, len(rest), 4096):
        idx = rest[start:start + 4096]
        covered = ((px[None, :] >= x[idx, None]) & (py[None, :] >= y[idx, None])).any(axis=1)
        assert covered.all(), "a non-Pareto row is not dominated by the front"


@SETTINGS
@given(model=models, gpus=gpu_sets, precs=precision_sets, isl=input_lengths,
       osl=output_lengths)
def test_pareto_rows_are_not_dominated(model, gpus, precs, isl, osl):
    r = run_sweep(model, gpus, precs, isl, osl)
    if len(r) == 0:
        return
    _check_pareto(mark_pareto(r))


@SETTINGS
@given(model=models, isl=input_lengths, osl=output_lengths,
       max_tpot=st.sampled_from([10.0, 30.0, 50.0, 200.0]),
       max_ttft=st.sampled_from([200.0, 1000.0, 5000.0]),
       objective=st.sampled_from(["cost", "throughput", "latency"]))
def test_slo_filter_and_ranking(model, isl, osl, max_tpot, max_ttft, objective):
    r = run_sweep(model, GPU_IDS, ["bf16", "fp8"], isl, osl)
    r = apply_slos(r, max_ttft, max_tpot, None, 8)
    if len(r) == 0:
        return
    c = r.columns
    assert np.all(c["ttft_ms"] <= max_ttft) and np.all(c["tpot_ms"] <= max_tpot)
    assert np.all(c["gpus"] <= 8)
    r = mark_pareto(r)
    _check_pareto(r)
    col, asc = {"cost": ("usd_per_m_output_tokens", True),
                "throughput": ("output_tokens_per_s_per_gpu", False),
                "latency": ("e2e_latency_s", True)}[objective]
    best = rank(r, objective, None, per_gpu=True)
    v = best.columns[col]
    assert np.all(np.diff(v) >= 0) if asc else np.all(np.diff(v) <= 0)
    assert len(set(best.columns["gpu"])) == len(best)  # one row per GPU
    # the best row of each GPU is the best of that GPU in the unranked result
    for g, val in zip(best.columns["gpu"], v):
        all_g = r.columns[col][r.columns["gpu"] == g]
        assert val == (all_g.min() if asc else all_g.max())
