"""Formula unit tests for infercap.perf on a tiny synthetic model and GPU.

The efficiency figures are set by hand (fractions 1, overheads and latencies 0, no engine
caps) so that every expected number below follows from the arithmetic in its comment, not
from a calibrated profile.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infercap import perf
from infercap.arch import arch_of
from infercap.catalog import Model, load_catalog
from infercap.perf import Bytes, Figs, Layout, Rates
from infercap.profile import FIGURES

# ------------------------------------------------------------------ the synthetic setup

# 2 layers, hidden 64, 4 heads of 16, 2 KV heads, SwiGLU width 128, vocab 1000, untied head.
TINY = Model(
    id="tiny",
    name="Tiny test model",
    hf_id="none/tiny",
    num_hidden_layers=2,
    hidden_size=64,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    intermediate_size=128,
    vocab_size=1000,
    tie_word_embeddings=False,
    max_position_embeddings=4096,
)
# Per layer: q 64x64 = 4,096; o 4,096; k+v 2 x 64 x (2 x 16) = 4,096; norms 2 x 64 = 128
#   -> attention 12,416; MLP 3 x 64 x 128 = 24,576 -> 36,992 per layer, 73,984 for 2 layers.
# Embedding 1000 x 64 = 64,000; LM head 64,000; final norm 64.
TINY_DECODER = 73_984
TINY_EMBED = 64_000
TINY_TOTAL = TINY_DECODER + 2 * TINY_EMBED + 64  # 202,048
# KV per token per layer: K and V x 2 heads x 16 = 64 elements.
TINY_KV_ELEMS = 64


def neutral_figs(**override: float) -> Figs:
    """Every figure the model knows, at a neutral value: fractions 1, counts 1, the rest 0;
    engine caps and memory shares made non-binding. ``override`` sets any of them."""
    values = {}
    for name, (kind, _meaning) in FIGURES.items():
        values[name] = {"fraction": 1.0, "count": 1.0, "positive": 1.0}.get(kind, 0.0)
    values.update(
        max_batch_size=1e9,
        max_num_tokens=1e9,
        gpu_memory_utilization=1.0,
        kv_cache_free_memory_fraction=1.0,
        runtime_reserved_gib=0.0,
        moe_load_imbalance=1.0,
        decode_attention_saturation_blocks=1.0,
        gemm_half_tokens=0.0,
        activation_io_passes=0.0,
    )
    values.update(override)
    return Figs({k: np.asarray(float(v)) for k, v in values.items()})


def rates(
    *,
    flops: float = 1e18,
    bandwidth: float = 1e12,
    memory: float = 80 * 2**30,
    scale_up: float = 100e9,
    scale_out: float = 50e9,
    domain: float = 8,
    bits: float = 16,
) -> Rates:
    """A GPU with the given rates (SI units). The default is absurdly fast at compute and
    1 TB/s of memory bandwidth, so that decode is purely memory-bound."""
    f = np.asarray
    return Rates(
        peak_flops=f(flops),
        peak16_flops=f(flops),
        bandwidth=f(bandwidth),
        memory=f(memory),
        scale_up=f(scale_up),
        scale_out=f(scale_out),
        domain=f(float(domain)),
        gemm_bits=f(float(bits)),
    )


def layout(tp=1, pp=1, ep=1) -> Layout:
    return Layout(np.asarray(float(tp)), np.asarray(float(pp)), np.asarray(float(ep)))


def nbytes(weights=2.0, experts=None, kv=2.0) -> Bytes:
    return Bytes(
        np.asarray(weights), np.asarray(weights if experts is None else experts), np.asarray(kv)
    )


_CATALOG = load_catalog()


# ------------------------------------------------------------------ arch of the tiny model


def test_tiny_model_counts():
    a = arch_of(TINY)
    assert a.total_params == TINY_TOTAL == 202_048
    assert a.layer_total == TINY_DECODER
    assert a.kv_elems_per_token_layer == TINY_KV_ELEMS
    # 64 elements x 2 layers x 2 B = 256 B per token in bf16
    assert a.kv_bytes_per_token(2.0) == 256


# ------------------------------------------------------------------ causal attention pairs


def test_causal_pairs_global():
    # 4 tokens: query i sees keys 1..i -> 1 + 2 + 3 + 4 = 10 = 4 x 5 / 2
    assert perf.causal_pairs(4) == 10
    assert perf.causal_pairs(1) == 1
    np.testing.assert_array_equal(perf.causal_pairs(np.array([1.0, 2.0, 3.0, 100.0])),
                                  [1, 3, 6, 5050])


def test_causal_pairs_sliding_window():
    # window 2 over 4 tokens: queries see min(i, 2) keys -> 1 + 2 + 2 + 2 = 7
    assert perf.causal_pairs(4, window=2) == 7
    # a window at least as long as the prompt changes nothing: 4 x 5 / 2 = 10
    assert perf.causal_pairs(4, window=4) == 10
    assert perf.causal_pairs(4, window=100) == 10
    # window 0 means "global"
    assert perf.causal_pairs(4, window=0) == 10


def test_causal_pairs_chunked():
    # chunks of 2 over 5 tokens: [1,2][3,4][5] -> (1 + 2) + (1 + 2) + 1 = 7
    assert perf.causal_pairs(5, window=2, chunked=True) == 7
    # chunks of 4 over 4 tokens: one chunk, the global count 10
    assert perf.causal_pairs(4, window=4, chunked=True) == 10


@settings(max_examples=40, deadline=None)
@given(s=st.integers(1, 60), w=st.integers(0, 70), chunked=st.booleans())
def test_causal_pairs_matches_enumeration(s, w, chunked):
    count = 0
    for q in range(s):  # 0-based query position
        for k in range(q + 1):  # causal: keys 0..q
            if w == 0:
                count += 1
            elif chunked:
                count += k // w == q // w
            else:
                count += q - k < w
    assert perf.causal_pairs(s, window=w, chunked=chunked) == count


# ------------------------------------------------------------------ collectives


def test_allreduce_time_ring_formula():
    f = neutral_figs(collective_latency_us=0.0)
    r = rates(scale_up=100e9, scale_out=50e9, domain=8)
    # bandwidth term of a ring all-reduce: each GPU sends 2(n-1)/n x bytes.
    # inside the domain, 4 GPUs, 1 MB: 2 x 3/4 x 1e6 B / 100e9 B/s = 15 us
    t = perf.allreduce_time(f, r, np.asarray(4.0), np.asarray(1e6))
    assert t == pytest.approx(2 * 3 / 4 * 1e6 / 100e9, rel=1e-12)
    assert t == pytest.approx(15e-6, rel=1e-12)
    # 16 GPUs span two domains: the scale-out link (50 GB/s) sets the ring's pace:
    # 2 x 15/16 x 1e6 / 50e9 = 37.5 us
    t16 = perf.allreduce_time(f, r, np.asarray(16.0), np.asarray(1e6))
    assert t16 == pytest.approx(37.5e-6, rel=1e-12)
    # achieved-bandwidth fraction divides the bandwidth: 2 x 3/4 x 1e6 / (0.5 x 100e9) = 30 us
    f_half = neutral_figs(collective_latency_us=0.0, scale_up_bandwidth_fraction=0.5)
    assert perf.allreduce_time(f_half, r, np.asarray(4.0), np.asarray(1e6)) == pytest.approx(
        30e-6, rel=1e-12)


def test_allreduce_algorithm_by_message_size():
    """One-shot for small messages, two-shot for mid sizes, ring for large ones and across
    the scale-out network. L = 5 us a hop, 100 GB/s NVLink, 8-GPU domain, n = 8:
    ring = 14 L + 2 x 7/8 x S / B; two-shot = 2 L + the same bytes; one-shot = L + 7 S / B."""
    r = rates(scale_up=100e9, scale_out=50e9, domain=8)
    f = neutral_figs(collective_latency_us=5.0)
    n = np.asarray(8.0)

    def t(size: float, gpus: float = 8.0) -> float:
        return float(perf.allreduce_time(f, r, np.asarray(gpus), np.asarray(size)))

    # 16 KB (a decode step's hidden state): one-shot 5 us + 7 x 16e3 / 100e9 = 6.12 us,
    # where a ring would pay 14 x 5 = 70 us + 0.28 us
    assert t(16e3) == pytest.approx(5e-6 + 7 * 16e3 / 100e9, rel=1e-12)
    # 1 MB: one-shot 5 + 70 = 75 us; two-shot 10 + 17.5 = 27.5 us; ring 70 + 17.5 = 87.5 us
    assert t(1e6) == pytest.approx(10e-6 + 2 * 7 / 8 * 1e6 / 100e9, rel=1e-12)
    # an empty message: one hop
    assert t(0.0) == pytest.approx(5e-6, rel=1e-12)
    # 16 GPUs over two domains: ring at the scale-out pace, 30 L + 2 x 15/16 x S / 50e9
    assert t(16e3, 16.0) == pytest.approx(30 * 5e-6 + 2 * 15 / 16 * 16e3 / 50e9, rel=1e-12)
    # the chosen algorithm is never slower than the ring, and one GPU needs none
    ring = 14 * 5e-6 + 2 * 7 / 8 * 1e9 / 100e9
    assert t(1e9) == pytest.approx(min(ring, 10e-6 + 2 * 7 / 8 * 1e9 / 100e9), rel=1e-12)
    assert float(perf.allreduce_time(f, r, np.asarray(1.0), np.asarray(1e6))) == 0.0
    assert n == 8.0


def test_allreduce_time_single_gpu_is_zero():
    f = neutral_figs(collective_latency_us=5.0)
    t = perf.allreduce_time(f, rates(), np.asarray(1.0), np.asarray(1e9))
    assert t == 0.0
    # vectorised: n = 1, 2, 8 on 8 MB at 100 GB/s, no latency
    f0 = neutral_figs()
    n = np.array([1.0, 2.0, 8.0])
    got = perf.allreduce_time(f0, rates(), n, np.full(3, 8e6))
    np.testing.assert_allclose(got, [0.0, 2 * 1 / 2 * 8e6 / 100e9, 2 * 7 / 8 * 8e6 / 100e9],
                               rtol=1e-12)


# ------------------------------------------------------------------ decode: memory-bound


def test_decode_step_memory_bound_equals_bytes_over_bandwidth():
    a = arch_of(TINY)
    f, r = neutral_figs(), rates(bandwidth=1e12)
    step = perf.decode_step(a, layout(), nbytes(2.0, kv=2.0), f, r, np.asarray(1.0),
                            np.asarray(100.0))
    # weights read once per step: decoder linear layers 73,984 x 2 B + LM head 64,000 x 2 B
    #   = 147,968 + 128,000 = 275,968 B (the embedding is a lookup, not a read of the table)
    weight_bytes = TINY_DECODER * 2 + TINY_EMBED * 2
    assert weight_bytes == 275_968
    # KV cache read: 1 sequence x 100 tokens x 64 elements x 2 layers x 2 B = 25,600 B
    kv_bytes = 1 * 100 * TINY_KV_ELEMS * 2 * 2
    assert kv_bytes == 25_600
    assert step.gemm_memory == pytest.approx(weight_bytes / 1e12, rel=1e-9)
    assert step.gemm == pytest.approx(weight_bytes / 1e12, rel=1e-9)
    assert step.attention == pytest.approx(kv_bytes / 1e12, rel=1e-9)
    assert step.communication == 0.0 and step.overhead == 0.0
    # total: (275,968 + 25,600) B / 1e12 B/s = 301.568 ns
    assert step.total == pytest.approx((weight_bytes + kv_bytes) / 1e12, rel=1e-9)


def test_decode_step_scales_with_bandwidth_and_batch():
    a = arch_of(TINY)
    f = neutral_figs()
    lay, b = layout(), nbytes()
    ctx = np.asarray(100.0)
    t1 = perf.decode_step(a, lay, b, f, rates(bandwidth=1e12), np.asarray(1.0), ctx).total
    t2 = perf.decode_step(a, lay, b, f, rates(bandwidth=2e12), np.asarray(1.0), ctx).total
    assert t2 == pytest.approx(t1 / 2, rel=1e-9)  # twice the bandwidth, half the time
    # 8 sequences: weights read once, KV read 8 times: (275,968 + 8 x 25,600) / 1e12
    t8 = perf.decode_step(a, lay, b, f, rates(bandwidth=1e12), np.asarray(8.0), ctx).total
    assert t8 == pytest.approx((275_968 + 8 * 25_600) / 1e12, rel=1e-9)


def test_decode_step_fp8_weights_halve_weight_traffic():
    a = arch_of(TINY)
    f, r = neutral_figs(), rates(bandwidth=1e12)
    one, ctx = np.asarray(1.0), np.asarray(100.0)
    s16 = perf.decode_step(a, layout(), nbytes(2.0, kv=2.0), f, r, one, ctx)
    s8 = perf.decode_step(a, layout(), nbytes(1.0, kv=1.0), f, r, one, ctx)
    # decoder weights 73,984 x 1 B; the LM head stays 16-bit (64,000 x 2 B)
    assert s8.gemm_memory == pytest.approx((TINY_DECODER * 1 + TINY_EMBED * 2) / 1e12, rel=1e-9)
    assert s8.attention == pytest.approx(s16.attention / 2, rel=1e-9)


def test_decode_step_compute_bound_on_slow_tensor_cores():
    a = arch_of(TINY)
    f = neutral_figs()
    # 1 GFLOP/s of compute, practically infinite bandwidth: the GEMMs are compute-bound.
    r = rates(flops=1e9, bandwidth=1e30)
    step = perf.decode_step(a, layout(), nbytes(), f, r, np.asarray(1.0), np.asarray(1.0))
    # 2 FLOP per parameter per token: decoder 2 x 73,984 + LM head 2 x 64,000 = 275,968 FLOP
    assert step.gemm_compute == pytest.approx(2 * (TINY_DECODER + TINY_EMBED) / 1e9, rel=1e-9)
    assert step.gemm == pytest.approx(step.gemm_compute, rel=1e-12)


def test_prefill_compute_bound_flops():
    a = arch_of(TINY)
    f = neutral_figs()
    r = rates(flops=1e12, bandwidth=1e30)
    s = 100.0
    step = perf.prefill(a, layout(), nbytes(), f, r, np.asarray(1.0), np.asarray(s))
    # GEMMs: 2 x 100 tokens x 73,984 decoder params + LM head on the last token 2 x 64,000
    assert step.gemm_compute == pytest.approx((2 * s * TINY_DECODER + 2 * TINY_EMBED) / 1e12,
                                              rel=1e-9)
    # attention: 2 layers x 100 x 101 / 2 pairs x 4 heads x 2 x (16 + 16) FLOP per pair
    pairs = 2 * s * (s + 1) / 2
    assert step.attention == pytest.approx(pairs * 4 * 2 * (16 + 16) / 1e12, rel=1e-9)


# ------------------------------------------------------------------ memory


def test_kv_bytes_per_sequence_tiny():
    a = arch_of(TINY)
    # 1000 tokens x 64 elements x 2 layers x 2 B = 256,000 B
    got = perf.kv_bytes_per_sequence(a, layout(), nbytes(kv=2.0), np.asarray(1000.0))
    assert got == 256_000
    # two pipeline stages: each holds one layer -> half
    got_pp = perf.kv_bytes_per_sequence(a, layout(pp=2), nbytes(kv=2.0), np.asarray(1000.0))
    assert got_pp == 128_000


def test_kv_bytes_per_sequence_linear_in_context():
    a = arch_of(_CATALOG.model("llama-3.1-8b"))
    ctx = np.array([1.0, 10.0, 1000.0, 131072.0])
    got = perf.kv_bytes_per_sequence(a, layout(), nbytes(kv=2.0), ctx)
    # 128 KiB per token (see test_arch)
    np.testing.assert_allclose(got, ctx * 131072, rtol=1e-12)


def test_kv_bytes_per_sequence_tp_split_and_replication():
    a = arch_of(_CATALOG.model("llama-3.1-8b"))  # 8 KV heads
    ctx = np.asarray(4096.0)

    def kv(tp):
        return float(perf.kv_bytes_per_sequence(a, layout(tp=tp), nbytes(kv=2.0), ctx))

    full = 4096 * 131072
    assert kv(1) == full
    assert kv(2) == full / 2  # 4 KV heads per rank
    assert kv(4) == full / 4
    assert kv(8) == full / 8  # one KV head per rank
    # beyond 8 ranks a KV head is replicated: still one head (1/8) per rank
    assert kv(16) == kv(8) == full / 8
    assert kv(32) == full / 8


def test_kv_bytes_mla_latent_is_replicated_over_tp():
    a = arch_of(_CATALOG.model("deepseek-v3"))
    ctx = np.asarray(1000.0)
    one = perf.kv_bytes_per_sequence(a, layout(tp=1), nbytes(kv=2.0), ctx)
    eight = perf.kv_bytes_per_sequence(a, layout(tp=8), nbytes(kv=2.0), ctx)
    # (512 + 64) x 61 layers x 2 B x 1000 tokens on every rank
    assert one == eight == 576 * 61 * 2 * 1000


def test_kv_bytes_sliding_window_caps_local_layers():
    a = arch_of(_CATALOG.model("gpt-oss-120b"))  # 18 local layers of window 128, 18 global
    ctx = np.asarray(10_000.0)
    got = perf.kv_bytes_per_sequence(a, layout(), nbytes(kv=2.0), ctx)
    per_tok_layer = 2 * 8 * 64 * 2  # K+V x 8 KV heads x 64 x 2 B
    assert got == per_tok_layer * (18 * 10_000 + 18 * 128)


def test_weight_bytes_per_gpu_tiny():
    a = arch_of(TINY)
    # tp=1: every parameter once at 2 B: decoder 73,984 + embedding and LM head 128,000
    #   = 201,984 params -> 403,968 B (the 64-element final norm is not counted)
    w1 = perf.weight_bytes_per_gpu(a, layout(), nbytes(2.0))
    assert w1 == (TINY_DECODER + 2 * TINY_EMBED) * 2 == 403_968


def test_weight_bytes_per_gpu_halves_with_tp2():
    a = arch_of(_CATALOG.model("llama-3.1-8b"))
    b = nbytes(2.0)
    w1 = float(perf.weight_bytes_per_gpu(a, layout(tp=1), b))
    w2 = float(perf.weight_bytes_per_gpu(a, layout(tp=2), b))
    # 8.03e9 params x 2 B = 16.06 GB on one GPU; all but the norms split in two
    assert w1 == pytest.approx(8.03e9 * 2, rel=0.005)
    assert 0.5 <= w2 / w1 <= 0.5 + 1e-3
    w8 = float(perf.weight_bytes_per_gpu(a, layout(tp=8), b))
    assert 1 / 8 <= w8 / w1 <= 1 / 8 + 1e-3


def test_weight_bytes_per_gpu_pipeline_split():
    a = arch_of(_CATALOG.model("llama-3.1-70b"))
    b = nbytes(2.0)
    w1 = float(perf.weight_bytes_per_gpu(a, layout(pp=1), b))
    w4 = float(perf.weight_bytes_per_gpu(a, layout(pp=4), b))
    # 80 layers over 4 stages: 20 layers per stage, plus one embedding table (2.1 GB of 141 GB)
    assert w4 < w1 / 4 + 8192 * 128256 * 2 + 1
    assert w4 > w1 / 4 * 0.95


def test_max_sequences_fits_budget():
    a = arch_of(TINY)
    # 1 MiB = 1,048,576 B of memory; weights 403,968 B; no workspace (max_num_tokens 0)
    #   -> 644,608 B of KV cache; one sequence of 1000 tokens holds 256,000 B -> 2 fit
    f = neutral_figs(max_num_tokens=0.0)
    r = rates(memory=2**20)
    n = perf.max_sequences(a, layout(), nbytes(), f, r, np.asarray(1000.0))
    assert n == (2**20 - 403_968) // 256_000 == 2
    # weights that do not fit: no sequence at all
    n0 = perf.max_sequences(a, layout(), nbytes(), f, rates(memory=1000.0), np.asarray(1.0))
    assert n0 == 0
