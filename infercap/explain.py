"""Where the time and the memory of one configuration go (pure: objects in, a dict out).

``explain()`` evaluates one configuration with the same functions ``plan`` uses and returns a
nested dict: the prefill and decode-step breakdowns (GEMMs, attention, activation traffic,
communication, fixed overheads), whether each is compute- or memory-bound by how much
(arithmetic intensity against the GPU's ridge point), the memory per GPU (weights, KV cache,
workspace, reserved, free), the serving metrics, and every efficiency figure applied with
the file it came from.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from infercap.arch import arch_of
from infercap.catalog import GPU, Model
from infercap.errors import UsageError
from infercap.inputs import gather, tabulate
from infercap.perf import (Layout, kv_budget_per_gpu, kv_bytes_per_sequence, max_sequences,
                           params_per_gpu, pipeline_decode, pipeline_prefill,
                           weight_bytes_per_gpu, workspace_bytes_per_gpu)
from infercap.precision import Precision
from infercap.profile import FIGURES, Profile, Resolver
from infercap.serving import steady_state
from infercap.sweep import layouts_for

GIB = 2**30


def _f(x: Any) -> float:
    return float(np.asarray(x).reshape(-1)[0])


def _step(st: Any, flops: float, nbytes: float, ridge: float) -> dict[str, Any]:
    total = _f(st.total)
    parts = {
        "gemm_ms": _f(st.gemm) * 1e3,
        "attention_ms": _f(st.attention) * 1e3,
        "activation_io_ms": _f(st.activation_io) * 1e3,
        "communication_ms": _f(st.communication) * 1e3,
        "layer_overhead_ms": _f(st.overhead) * 1e3,
    }
    host = _f(st.host) * 1e3
    intensity = flops / nbytes if nbytes else float("inf")
    return {
        "total_ms": total * 1e3,
        **parts,
        "host_dispatch_ms": host,
        "host_bound": host > _f(st.gpu) * 1e3,
        "gemm_compute_ms": _f(st.gemm_compute) * 1e3,
        "gemm_memory_ms": _f(st.gemm_memory) * 1e3,
        "gemm_bound": "compute" if _f(st.gemm_compute) >= _f(st.gemm_memory) else "memory",
        "gemm_arithmetic_intensity_flop_per_byte": intensity,
        "ridge_point_flop_per_byte": ridge,
        "intensity_over_ridge": intensity / ridge if ridge else float("nan"),
    }


def _setup(model, gpu, precision, tp, pp, ep, dp, resolver, engine):  # type: ignore[no-untyped-def]
    lays = layouts_for(model, [tp], [pp], [ep], [dp])
    if len(lays.tp) == 0:
        raise UsageError(lays.rejected[0][-1], key="layout")
    t = tabulate([gpu], [precision], resolver, engine)
    if not t.runnable[0, 0]:
        raise UsageError(str(t.reason[0, 0]), key="--precision")
    rates, f, byt = gather(t, np.array([0]), np.array([0]))
    lay = Layout(np.array([float(tp)]), np.array([float(pp)]), np.array([float(ep)]),
                 np.array([float(dp)]))
    return t, rates, f, byt, lay


def batch_curve(
    model: Model, gpu: GPU, precision: Precision, tp: int, pp: int, input_tokens: int,
    output_tokens: int, resolver: Resolver, engine: Profile | None, ep: int = 1, dp: int = 1,
) -> dict[str, list[Any]]:
    """Decode step time, throughput and what bounds decode for every batch that fits (1 to
    the KV-cache limit, geometric): where decode turns from memory- to compute-bound."""
    a = arch_of(model)
    _, rates, f, byt, lay = _setup(model, gpu, precision, tp, pp, ep, dp, resolver, engine)
    isl, osl = np.array([float(input_tokens)]), np.array([float(output_tokens)])
    fit = _f(np.minimum(max_sequences(a, lay, byt, f, rates, isl + osl), f.max_batch_size))
    if fit < 1:
        raise UsageError("not even one sequence fits in memory", key="layout")
    batches = np.unique(np.round(np.geomspace(1, fit, 48)))
    s = steady_state(a, lay, byt, f, rates, batches, isl, osl)
    st = s.decode
    bound = np.where(st.gemm_compute >= st.gemm_memory, "compute", "memory")
    return {"batch": batches.tolist(), "decode_step_ms": (_f_all(st.total) * 1e3).tolist(),
            "tpot_ms": (s.tpot * 1e3).tolist(),
            "output_tokens_per_s": s.output_tokens_per_s.tolist(),
            "gemm_bound": bound.tolist()}


def _f_all(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=float).reshape(-1)


def explain(
    model: Model,
    gpu: GPU,
    precision: Precision,
    tp: int,
    pp: int,
    batch: int,
    input_tokens: int,
    output_tokens: int,
    resolver: Resolver,
    engine: Profile | None,
    ep: int = 1,
    dp: int = 1,
) -> dict[str, Any]:
    a = arch_of(model)
    t, rates, f, byt, lay = _setup(model, gpu, precision, tp, pp, ep, dp, resolver, engine)
    b = np.array([float(batch)])
    isl, osl = np.array([float(input_tokens)]), np.array([float(output_tokens)])

    # memory per GPU
    dense_p, expert_p, emb_p = params_per_gpu(a, lay)
    weights = _f(weight_bytes_per_gpu(a, lay, byt))
    kv_seq = _f(kv_bytes_per_sequence(a, lay, byt, isl + osl))
    kv_used = batch / dp * kv_seq
    workspace = _f(workspace_bytes_per_gpu(a, lay, f))
    reserved = _f(f.runtime_reserved_gib) * GIB
    budget = _f(kv_budget_per_gpu(a, lay, byt, f, rates))
    fit = _f(max_sequences(a, lay, byt, f, rates, isl + osl))
    capacity = _f(rates.memory)
    memory = {
        "capacity_gib": capacity / GIB,
        "weights_gib": weights / GIB,
        "weight_params_per_gpu_b": (_f(dense_p) + _f(expert_p) + _f(emb_p)) / 1e9,
        "kv_cache_gib": kv_used / GIB,
        "kv_cache_per_sequence_mib": kv_seq / 2**20,
        "workspace_gib": workspace / GIB,
        "reserved_gib": reserved / GIB,
        "kv_cache_budget_gib": budget / GIB,
        "free_gib": (capacity - weights - kv_used - workspace - reserved) / GIB,
        "max_sequences_that_fit": fit,
        "fits": bool(batch <= fit),
    }

    peak = _f(rates.peak_flops)
    bw = _f(rates.bandwidth) * _f(f.memory_bandwidth_fraction)
    ridge = peak * _f(f.gemm_peak_fraction_16bit if _f(rates.gemm_bits) == 16
                      else f.gemm_peak_fraction_8bit) / bw

    # decode step at the mean context of a running sequence
    ctx = isl + osl / 2
    t_tok, dstep = pipeline_decode(a, lay, byt, f, rates, b, ctx)
    active = a.layer_active / a.layers * np.ceil(a.layers / pp)
    d_flops = 2.0 * batch / dp * active / tp
    d_bytes = max(_f(dstep.gemm_memory) * bw, 1.0)
    decode = _step(dstep, d_flops, d_bytes, ridge)
    decode["context_tokens"] = _f(ctx)
    decode["time_per_output_token_ms"] = _f(t_tok) * 1e3

    # prefill of one prompt
    t_pre, pstep = pipeline_prefill(a, lay, byt, f, rates, np.array([1.0]), isl)
    p_flops = 2.0 * input_tokens * active / tp
    p_bytes = max(_f(pstep.gemm_memory) * bw, 1.0)
    prefill = _step(pstep, p_flops, p_bytes, ridge)
    prefill["prompt_tokens"] = input_tokens
    prefill["latency_ms"] = _f(t_pre) * 1e3

    s = steady_state(a, lay, byt, f, rates, b, isl, osl)
    gpus = tp * pp * dp
    tok_s = _f(s.output_tokens_per_s)
    price = gpu.price.usd_per_gpu_hour * gpus
    serving = {
        "batch": batch,
        "ttft_ms": _f(s.ttft) * 1e3,
        "tpot_ms": _f(s.tpot) * 1e3,
        "e2e_latency_s": _f(s.e2e),
        "output_tokens_per_s": tok_s,
        "output_tokens_per_s_per_gpu": tok_s / gpus,
        "prefill_share_of_gpu_time": _f(s.prefill_share),
        "step_overhead_ms": _f(s.step_overhead) * 1e3,
        "usd_per_hour": price,
        "usd_per_m_output_tokens": price / (tok_s * 3600) * 1e6,
    }
    values = resolver.figures(gpu, engine)
    figures = {
        name: {"value": values[name], "meaning": FIGURES[name][1],
               "source": resolver.source_of(gpu, name, engine)}
        for name in FIGURES
    }
    return {
        "model": model.id,
        "gpu": gpu.id,
        "precision": precision.name,
        "compute": {"dtype": str(t.compute_dtype[0, 0]), "note": str(t.reason[0, 0]),
                    "dense_peak_tflops": peak / 1e12,
                    "memory_bandwidth_tb_per_s": _f(rates.bandwidth) / 1e12},
        "layout": {"tp": tp, "pp": pp, "dp": dp, "ep": ep, "gpus": gpus},
        "engine_profile": engine.id if engine else resolver.default.id,
        "memory_per_gpu": memory,
        "prefill": prefill,
        "decode_step": decode,
        "serving": serving,
        "figures": figures,
    }
