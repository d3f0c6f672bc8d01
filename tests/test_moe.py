"""MoE, MLA, sliding windows and DP-attention layouts: mechanisms with hand-checked numbers."""

from __future__ import annotations

import numpy as np
import pytest

from infercap import perf
from infercap.arch import arch_of
from infercap.catalog import MoE, Model, load_catalog
from infercap.perf import Bytes, Layout
from infercap.sweep import layouts_for

from test_perf import neutral_figs, rates

CAT = load_catalog()
B16 = Bytes(np.array(2.0), np.array(2.0), np.array(2.0))

# 2 layers, hidden 64, 4 heads x 16, 2 KV heads, 8 experts of width 32, top-2, no shared.
TINY_MOE = Model(
    id="tiny-moe", name="tiny MoE", hf_id="none/tiny-moe", num_hidden_layers=2, hidden_size=64,
    num_attention_heads=4, num_key_value_heads=2, head_dim=16, intermediate_size=32,
    vocab_size=1000, tie_word_embeddings=False, max_position_embeddings=4096,
    moe=MoE(num_experts=8, experts_per_token=2, expert_intermediate_size=32),
)


def lay(tp=1, pp=1, ep=1, dp=1) -> Layout:
    return Layout(*(np.asarray(float(x)) for x in (tp, pp, ep, dp)))


def test_moe_parameter_split():
    a = arch_of(TINY_MOE)
    # one expert: 3 x 64 x 32 = 6,144; router 64 x 8 = 512; both layers are MoE
    assert a.expert == 6_144 and a.router == 512 and a.n_moe_layers == 2
    dense, experts, emb = perf.params_per_gpu(a, lay())
    assert experts == 2 * 8 * 6_144
    # DP attention over 2 ranks with the experts sharded over both: experts halve, the
    # attention/router/embeddings are replicated
    dense2, experts2, emb2 = perf.params_per_gpu(a, lay(dp=2, ep=2))
    assert experts2 == experts / 2 and dense2 == dense and emb2 == emb


def test_expected_experts_touched_by_a_decode_batch():
    # E (1 - (1 - k/E)^T): one token touches exactly k; many tokens touch all E
    a = arch_of(TINY_MOE)
    f, r = neutral_figs(), rates(flops=1e30)
    one = perf.decode_step(a, lay(), B16, f, r, np.array(1.0), np.array(1.0))
    many = perf.decode_step(a, lay(), B16, f, r, np.array(1e6), np.array(1.0))
    e_bytes = 2 * 6_144 * 2.0  # one expert, both layers, bf16
    dense, _, _ = perf.params_per_gpu(a, lay())
    head = 1000 * 64 * 2.0
    assert float(one.gemm_memory) == pytest.approx((dense * 2 + head + 2 * e_bytes) / 1e12)
    assert float(many.gemm_memory) == pytest.approx((dense * 2 + head + 8 * e_bytes) / 1e12)
    four = 8 * (1 - (1 - 2 / 8) ** 4)  # 4 tokens: 5.27 experts on average
    t4 = perf.decode_step(a, lay(), B16, f, r, np.array(4.0), np.array(1.0))
    assert float(t4.gemm_memory) == pytest.approx((dense * 2 + head + four * e_bytes) / 1e12)


def test_dp_attention_all_to_all_time():
    # dispatch + combine per MoE layer: each GPU sends its tokens' hidden states to k experts,
    # (n-1)/n of them leaving the GPU: 2 layers x 2 x (latency + bytes / link)
    a = arch_of(TINY_MOE)
    f = neutral_figs(collective_latency_us=3.0)
    r = rates(scale_up=100e9)
    st = perf.decode_step(a, lay(dp=4, ep=4), B16, f, r, np.array(32.0), np.array(10.0))
    sent = 32 / 4 * 2 * 64 * 2.0 * 3 / 4
    assert float(st.communication) == pytest.approx(2 * 2 * (3e-6 + sent / 100e9))
    assert float(perf.decode_step(a, lay(), B16, f, r, np.array(32.0),
                                  np.array(10.0)).communication) == 0.0


def test_dp_attention_multiplies_the_sequences_that_fit():
    a = arch_of(CAT.model("deepseek-v3"))
    f, r = neutral_figs(max_num_tokens=1.0), rates(memory=192e9)
    fp8 = Bytes(np.array(1.0), np.array(1.0), np.array(1.0))
    tp8 = perf.max_sequences(a, lay(tp=8), fp8, f, r, np.array(4096.0))
    dp8 = perf.max_sequences(a, lay(dp=8, ep=8), fp8, f, r, np.array(4096.0))
    # MLA's latent is replicated on every TP rank but each DP rank holds only its own
    # sequences: with the same weights per GPU the instance holds 8x the sequences
    w_tp = perf.weight_bytes_per_gpu(a, lay(tp=8), fp8)
    w_dp = perf.weight_bytes_per_gpu(a, lay(dp=8, ep=8), fp8)
    per_seq = (512 + 64) * 61 * 4096 * 1.0  # fp8 latent of 4,096 tokens, all 61 layers

    def fit(layout, weights):  # type: ignore[no-untyped-def]
        ws = float(perf.workspace_bytes_per_gpu(a, layout, f))
        return np.floor((192e9 - float(weights) - ws) / per_seq)

    assert float(tp8) == fit(lay(tp=8), w_tp)
    assert float(dp8) == 8 * fit(lay(dp=8, ep=8), w_dp)
    assert dp8 > 4 * tp8


def test_mla_kv_bytes_per_token():
    a = arch_of(CAT.model("deepseek-v3"))
    # compressed latent 512 + shared rope key 64, 61 layers, bf16
    assert a.kv_bytes_per_token(2.0) == (512 + 64) * 61 * 2
    # replicated over TP ranks (not split by heads)
    per_tok = perf.kv_bytes_per_sequence(a, lay(tp=8), B16, np.array(1.0))
    assert float(per_tok) == (512 + 64) * 61 * 2


def test_sliding_window_caps_kv_on_local_layers():
    a = arch_of(CAT.model("gpt-oss-120b"))  # 36 layers, alternating 128-token window / full
    assert a.local_layers == 18 and a.window == 128
    kv = perf.kv_bytes_per_sequence(a, lay(), B16, np.array(10_000.0))
    per_layer_tok = 2 * 8 * 64 * 2.0
    assert float(kv) == pytest.approx(per_layer_tok * (18 * 10_000 + 18 * 128))


def test_layouts_reject_what_cannot_run_and_say_why():
    m = CAT.model("deepseek-v3")
    lays = layouts_for(m, [1, 2, 3], [1, 128], dps=[1, 4])
    reasons = {w for *_, w in lays.rejected}
    assert any("do not divide over tp=3" in w for w in reasons)
    assert any("more stages than the 61 layers" in w for w in reasons)
    assert np.all(lays.ep <= lays.tp * lays.dp)
    assert ((lays.dp == 4) & (lays.ep == 4)).any()  # wide EP with DP attention is explored
    dense = layouts_for(CAT.model("llama-3.1-8b"), [1, 2], [1], dps=[1, 4])
    assert np.all(dense.dp == 1)  # plain DP replicas of dense models are not separate layouts


@pytest.mark.parametrize("model,expected", [
    # KV bytes per token at full context, bf16: 2 (K,V) x KV heads x head_dim x layers x 2 B
    ("mixtral-8x7b", 2 * 8 * 128 * 32 * 2),        # 131,072 B = 128 KiB
    ("qwen3-235b-a22b", 2 * 4 * 128 * 94 * 2),     # 192,512 B = 188 KiB
    ("llama-4-maverick", 2 * 8 * 128 * 48 * 2),    # 196,608 B = 192 KiB (before chunking)
    ("gpt-oss-120b", 2 * 8 * 64 * 36 * 2),         # 73,728 B = 72 KiB (before the window)
    ("deepseek-v3", (512 + 64) * 61 * 2),          # 70,272 B: MLA latent + rope key
])
def test_kv_bytes_per_token_of_frontier_models(model, expected):
    assert arch_of(CAT.model(model)).kv_bytes_per_token(2.0) == expected


def test_precision_runs_only_at_rates_the_gpu_has():
    from infercap.precision import PRESETS, compute_mode

    a100, h100, b200 = CAT.gpu("a100-sxm-80gb"), CAT.gpu("h100-sxm"), CAT.gpu("b200")
    # fp8 on A100 (no fp8 tensor cores): weight-only, at the bf16 rate
    m = compute_mode(a100, PRESETS["fp8"])
    assert m.weight_only and m.dtype == "bf16" and m.tflops == a100.dense_tflops["bf16"]
    # fp8 on H100: the fp8 rate; fp4 on H100: weight-only at bf16 (the sweep does not offer it)
    assert compute_mode(h100, PRESETS["fp8"]).tflops == h100.dense_tflops["fp8"]
    assert compute_mode(h100, PRESETS["fp4"]).weight_only
    assert compute_mode(b200, PRESETS["fp4"]).tflops == b200.dense_tflops["fp4"]
    # int4 and mxfp4 are weight-only everywhere (W4A16)
    assert compute_mode(b200, PRESETS["int4"]).dtype == "bf16"
    assert compute_mode(b200, PRESETS["mxfp4"]).weight_only
    # T4 has no bf16: 16-bit runs as fp16
    t4 = CAT.gpu("t4")
    assert compute_mode(t4, PRESETS["bf16"]).dtype == "fp16"


def test_layouts_for_a_gpu_count_are_every_factorisation():
    from infercap.sweep import layouts_for_counts

    dense = layouts_for_counts(CAT.model("llama-3.1-70b"), [8])
    assert sorted(zip(dense.tp.astype(int), dense.pp.astype(int))) == [
        (1, 8), (2, 4), (4, 2), (8, 1)]
    assert np.all(dense.tp * dense.pp * dense.dp == 8)
    moe = layouts_for_counts(CAT.model("mixtral-8x7b"), [4])
    got = {(int(t), int(p), int(d), int(e)) for t, p, d, e in
           zip(moe.tp, moe.pp, moe.dp, moe.ep)}
    # tp x pp x dp = 4, every EP that divides dp x tp (and the 8 experts)
    expect = set()
    for tp in (1, 2, 4):
        for pp in (1, 2, 4):
            if 4 % (tp * pp):
                continue
            dp = 4 // (tp * pp)
            for ep in (1, 2, 4):
                if (tp * dp) % ep == 0:
                    expect.add((tp, pp, dp, ep))
    assert got == expect
