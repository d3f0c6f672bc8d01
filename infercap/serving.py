"""Serving metrics built on the step-time model (pure, vectorised).

Continuous batching in steady state, as vLLM, SGLang and TensorRT-LLM's in-flight batching do:
``batch`` sequences hold a slot each; every engine iteration decodes one token for each of them
and also prefills the prompts of the requests that replace finished ones. With output length
``osl``, on average ``batch / osl`` requests finish (and join) per iteration, so

    iteration time  tau = T_decode(batch, mean context) + (batch / osl) x p + step_overhead

where ``p`` is the prefill cost of one prompt when prompts are processed in chunks of the
engine's ``max_num_tokens`` budget (weights read once per chunk). Each slot emits one token per
iteration: output throughput = batch / tau, TPOT = ITL = tau. A request's TTFT is its own
prefill plus, on a busy engine, half an iteration of waiting for the running step, plus the
serving front end's per-request latency (HTTP, tokenisation; ``request_overhead_ms``).

Scenarios of the measurement format (FORMAT.md) map onto it (``rate`` and ``concurrency``, and
offline runs of a known ``num_requests``, go through ``infercap.queueing`` and
``infercap.simulate`` instead, which build on the same step time):

- ``offline``: batch = the most sequences whose KV cache fits (capped by the engine's
  max_batch_size), all requests queued;
- ``batch``: a static batch: prefill of all prompts, then ``osl - 1`` decode steps;
- ``prefill`` and ``decode_step``: one forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from infercap.arch import Arch
from infercap.perf import (
    Bytes,
    Figs,
    Layout,
    Rates,
    StepTime,
    max_sequences,
    pipeline_decode,
    pipeline_prefill,
    prefill_stage,
)


@dataclass(frozen=True)
class Serving:
    """Per-configuration serving metrics (arrays, seconds unless named otherwise)."""

    batch: np.ndarray
    ttft: np.ndarray
    tpot: np.ndarray
    e2e: np.ndarray
    output_tokens_per_s: np.ndarray
    prefill_share: np.ndarray  # share of GPU time spent on prefill
    decode: StepTime  # the decode step of one stage (for "what bounds decode")
    step_overhead: np.ndarray


def step_overhead(f: Figs, batch: np.ndarray) -> np.ndarray:
    """Host time of one engine iteration not hidden behind the GPU: a fixed part (scheduling,
    launching the step) and a part per running sequence (request bookkeeping, sampling,
    detokenisation)."""
    return f.step_overhead_ms * 1e-3 + f.sequence_overhead_us * 1e-6 * batch


def prefill_cost_per_prompt(
    a: Arch, lay: Layout, b: Bytes, f: Figs, rates: Rates, isl: np.ndarray
) -> np.ndarray:
    """Seconds of engine time one prompt costs when prompts share ``max_num_tokens`` chunks.
    Under DP attention every rank schedules its own chunk of max_num_tokens (SGLang and
    TensorRT-LLM attention DP: one scheduler per rank), so an iteration's chunk holds dp times
    the prompts, each rank's whole prompts (perf.prefill)."""
    per_chunk = np.maximum(np.floor(f.max_num_tokens / isl), 1.0) * lay.dp
    # a pipeline overlaps chunks across stages: the engine is busy one stage-time per chunk
    # (plus the hop of its activations to the next stage)
    stage, _, hop, _ = prefill_stage(a, lay, b, f, rates, per_chunk, isl)
    return (stage + (lay.pp - 1) / lay.pp * hop) / per_chunk


def iteration(
    a: Arch,
    lay: Layout,
    b: Bytes,
    f: Figs,
    rates: Rates,
    batch: np.ndarray,
    isl: np.ndarray,
    osl: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, StepTime, np.ndarray]:
    """(iteration time tau, prefill share, decode step, per-prompt prefill cost)."""
    ctx = isl + osl / 2.0  # sequences are spread evenly over their decode
    t_dec, step = pipeline_decode(a, lay, b, f, rates, batch, ctx)
    p = prefill_cost_per_prompt(a, lay, b, f, rates, isl)
    pre = batch / np.maximum(osl, 1.0) * p
    tau = t_dec + pre + step_overhead(f, batch)
    return tau, pre / tau, step, p


def steady_state(
    a: Arch,
    lay: Layout,
    b: Bytes,
    f: Figs,
    rates: Rates,
    batch: np.ndarray,
    isl: np.ndarray,
    osl: np.ndarray,
) -> Serving:
    """Closed loop with ``batch`` sequences always in flight."""
    tau, share, step, _ = iteration(a, lay, b, f, rates, batch, isl, osl)
    t_pre, _ = pipeline_prefill(a, lay, b, f, rates, np.ones_like(batch), isl)
    busy = (batch - 1.0) / np.maximum(batch, 1.0)  # alone, nothing else is running
    ttft = t_pre + f.step_overhead_ms * 1e-3 + 0.5 * busy * tau + f.request_overhead_ms * 1e-3
    e2e = ttft + np.maximum(osl - 1.0, 0.0) * tau
    return Serving(batch, ttft, tau, e2e, batch / tau, share, step, step_overhead(f, batch))


def offline_batch(
    a: Arch, lay: Layout, b: Bytes, f: Figs, rates: Rates, isl: np.ndarray, osl: np.ndarray
) -> np.ndarray:
    """Sequences an engine runs at once when every request is queued: as many as the KV cache
    holds at full length (TensorRT-LLM's guaranteed-no-evict reservation), up to
    ``max_batch_size``."""
    fit = max_sequences(a, lay, b, f, rates, isl + osl)
    return np.minimum(fit, f.max_batch_size)


def static_batch(
    a: Arch,
    lay: Layout,
    b: Bytes,
    f: Figs,
    rates: Rates,
    batch: np.ndarray,
    isl: np.ndarray,
    osl: np.ndarray,
) -> Serving:
    """One static batch: all prompts prefilled, then osl - 1 decode steps at growing context."""
    t_pre, _ = pipeline_prefill(a, lay, b, f, rates, batch, isl)
    t_dec, step = pipeline_decode(a, lay, b, f, rates, batch, isl + osl / 2.0)
    tau = t_dec + step_overhead(f, batch)
    ttft = t_pre + step_overhead(f, batch)
    e2e = ttft + np.maximum(osl - 1.0, 0.0) * tau
    return Serving(batch, ttft, tau, e2e, batch * osl / e2e, t_pre / e2e, step,
                   step_overhead(f, batch))
