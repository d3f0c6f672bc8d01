"""The formulas behind each measurement scenario, on hand-checked cases.

The synthetic model and GPU of test_perf are reused with neutral figures, so a decode step is
exactly (weight bytes + KV bytes) / bandwidth and a prefill exactly FLOPs / peak; the serving
formulas (docs/performance-model.md, infercap/serving.py) are then checked by hand.
"""

from __future__ import annotations

import numpy as np
import pytest

from infercap import serving
from infercap.arch import arch_of
from infercap.perf import (Bytes, Layout, decode_step, hop_time, pipeline_decode,
                           pipeline_prefill, prefill_stage)

from test_perf import TINY, neutral_figs, rates

A = arch_of(TINY)
LAY = Layout(np.array(1.0), np.array(1.0), np.array(1.0))
B16 = Bytes(np.array(2.0), np.array(2.0), np.array(2.0))


def one(x: np.ndarray) -> float:
    return float(np.asarray(x).reshape(-1)[0])


def test_steady_state_iteration_is_decode_plus_amortised_prefill_plus_overheads():
    f = neutral_figs(step_overhead_ms=2.0, sequence_overhead_us=10.0, max_num_tokens=100.0)
    r = rates()
    batch, isl, osl = np.array(8.0), np.array(50.0), np.array(10.0)
    s = serving.steady_state(A, LAY, B16, f, r, batch, isl, osl)
    t_dec, _ = pipeline_decode(A, LAY, B16, f, r, batch, isl + osl / 2)
    # prompts of 50 tokens packed two per 100-token chunk: p = prefill(2 x 50) / 2
    t_chunk, _ = pipeline_prefill(A, LAY, B16, f, r, np.array(2.0), isl)
    p = one(t_chunk) / 2
    # 8 sequences, 10 output tokens each -> 0.8 prompts join per iteration
    tau = one(t_dec) + 8 / 10 * p + 2e-3 + 8 * 10e-6
    assert one(s.tpot) == pytest.approx(tau, rel=1e-12)
    assert one(s.output_tokens_per_s) == pytest.approx(8 / tau, rel=1e-12)
    # TTFT: the prompt alone, the fixed step overhead and half an iteration of the 7 others
    t_pre, _ = pipeline_prefill(A, LAY, B16, f, r, np.array(1.0), isl)
    assert one(s.ttft) == pytest.approx(one(t_pre) + 2e-3 + 0.5 * (7 / 8) * tau, rel=1e-12)
    assert one(s.e2e) == pytest.approx(one(s.ttft) + 9 * tau, rel=1e-12)


def test_static_batch_is_one_prefill_then_output_minus_one_decode_steps():
    f = neutral_figs()
    r = rates()
    batch, isl, osl = np.array(4.0), np.array(32.0), np.array(17.0)
    s = serving.static_batch(A, LAY, B16, f, r, batch, isl, osl)
    t_pre, _ = pipeline_prefill(A, LAY, B16, f, r, batch, isl)
    t_dec, _ = pipeline_decode(A, LAY, B16, f, r, batch, isl + osl / 2)
    assert one(s.e2e) == pytest.approx(one(t_pre) + 16 * one(t_dec), rel=1e-12)
    assert one(s.output_tokens_per_s) == pytest.approx(4 * 17 / one(s.e2e), rel=1e-12)


def test_offline_batch_is_what_the_kv_cache_holds_capped_by_the_engine():
    r = rates(memory=10e6)  # 10 MB: tiny model weights ~0.4 MB, KV 256 B per token (bf16)
    f = neutral_figs(max_num_tokens=1.0)
    isl, osl = np.array(100.0), np.array(28.0)
    # KV per sequence: 64 elements x 2 layers x 2 B x 128 tokens = 32,768 B
    weights = (73_984 + 2 * 64_000) * 2.0  # bf16 decoder + embeddings (16-bit)
    workspace = 1.0 * (4 * 64 + (4 + 2 * 2) * 16 + 2 * 128) * 2.0
    expect = np.floor((10e6 - weights - workspace) / 32_768)
    assert one(serving.offline_batch(A, LAY, B16, f, r, isl, osl)) == expect
    capped = neutral_figs(max_num_tokens=1.0, max_batch_size=7.0)
    assert one(serving.offline_batch(A, LAY, B16, capped, r, isl, osl)) == 7


def test_pipeline_parallel_decode_rotates_micro_batches():
    f = neutral_figs()
    r = rates()
    pp2 = Layout(np.array(1.0), np.array(2.0), np.array(1.0))
    t, step = pipeline_decode(A, pp2, B16, f, r, np.array(8.0), np.array(100.0))
    # two micro-batches of 4; every token passes both stages: 2 x (stage time + hand-off),
    # the hand-off moving 4 tokens x 64 hidden x 2 B over the scale-up link
    stage = decode_step(A, pp2, B16, f, r, np.array(4.0), np.array(100.0))
    hop = one(hop_time(f, r, pp2, np.array(4 * 64 * 2.0)))
    assert hop == pytest.approx(4 * 64 * 2.0 / 100e9)
    assert one(step.total) == pytest.approx(one(stage.total), rel=1e-12)
    assert one(t) == pytest.approx(2 * (one(stage.total) + hop), rel=1e-12)


def test_pipeline_prefill_streams_chunks_over_the_stages():
    """A prompt of 4 chunks on 2 stages: the first chunk crosses both stages, the other three
    follow one stage behind, so latency = stage time x (1 + 1/4) + one chunk's hop; a prompt
    of one chunk takes both stages in turn (2 x stage time + hop). The engine's cost per
    prompt (throughput) stays one stage-time per chunk."""
    f = neutral_figs(max_num_tokens=64.0)
    r = rates()
    pp2 = Layout(np.array(1.0), np.array(2.0), np.array(1.0))
    long_p, short_p = np.array(256.0), np.array(64.0)
    stage, chunks, hop, _ = prefill_stage(A, pp2, B16, f, r, np.array(1.0), long_p)
    assert one(chunks) == 4
    t, _ = pipeline_prefill(A, pp2, B16, f, r, np.array(1.0), long_p)
    assert one(t) == pytest.approx(one(stage) * 1.25 + one(hop), rel=1e-12)
    assert one(hop) == pytest.approx(one(hop_time(f, r, pp2, np.array(64.0 * A.hidden * 2.0))),
                                     rel=1e-12)
    s1, c1, h1, _ = prefill_stage(A, pp2, B16, f, r, np.array(1.0), short_p)
    t1, _ = pipeline_prefill(A, pp2, B16, f, r, np.array(1.0), short_p)
    assert one(c1) == 1 and one(t1) == pytest.approx(2 * one(s1) + one(h1), rel=1e-12)
    cost = serving.prefill_cost_per_prompt(A, pp2, B16, f, r, long_p)
    assert one(cost) == pytest.approx(one(stage) + 0.5 * one(hop), rel=1e-12)
