"""Architecture arithmetic (infercap.arch) against hand-checked numbers.

Every expected value carries the arithmetic that gives it, from the model's config.json as
recorded in models/<id>.yaml.
"""

from __future__ import annotations

import pytest

from infercap.arch import arch_of, local_layer_count, moe_layer_count
from infercap.catalog import load_catalog

BF16 = 2.0  # bytes per element
KIB = 1024

_CATALOG = load_catalog()


def arch(model_id: str):
    return arch_of(_CATALOG.model(model_id))


def rel(x: float, target: float) -> float:
    return abs(x - target) / target


# ------------------------------------------------------------------ Llama 3.1 8B


def test_llama_3_1_8b_parameters():
    a = arch("llama-3.1-8b")
    # embeddings: vocab 128256 x hidden 4096 = 525,336,576; untied LM head: the same again
    #   -> 1,050,673,152
    # per layer: q 4096x4096 = 16,777,216; k+v 2 x 4096 x (8 x 128) = 8,388,608;
    #   o 4096x4096 = 16,777,216; SwiGLU MLP 3 x 4096 x 14336 = 176,160,768;
    #   two RMSNorms 2 x 4096 = 8,192  -> 218,112,000 per layer
    # 32 layers: 6,979,584,000; final norm 4,096
    # total = 1,050,673,152 + 6,979,584,000 + 4,096 = 8,030,261,248 (HF safetensors: 8.03B)
    assert rel(a.total_params, 8.03e9) <= 0.005
    assert a.total_params == 8_030_261_248
    assert a.active_params == a.total_params  # dense: every parameter is active


def test_llama_3_1_8b_kv_bytes_per_token():
    a = arch("llama-3.1-8b")
    # K and V (2) x 8 KV heads x head_dim 128 x 32 layers x 2 bytes (bf16) = 131,072 B = 128 KiB
    assert a.kv_bytes_per_token(BF16) == 2 * 8 * 128 * 32 * 2 == 131072 == 128 * KIB
    # fp8 KV cache: half of it
    assert a.kv_bytes_per_token(1.0) == 65536


def test_llama_3_1_70b_kv_bytes_per_token():
    a = arch("llama-3.1-70b")
    # 2 x 8 KV heads x 128 x 80 layers x 2 B = 327,680 B = 320 KiB
    assert a.kv_bytes_per_token(BF16) == 2 * 8 * 128 * 80 * 2 == 320 * KIB


def test_llama_3_1_70b_parameters():
    a = arch("llama-3.1-70b")
    # embeddings 2 x 128256 x 8192 = 2,101,346,304
    # per layer: q + o 2 x 8192^2 = 134,217,728; k+v 2 x 8192 x 1024 = 16,777,216;
    #   MLP 3 x 8192 x 28672 = 704,643,072; norms 16,384 -> 855,654,400; x 80 = 68,452,352,000
    # total = 2,101,346,304 + 68,452,352,000 + 8,192 = 70,553,706,496
    assert a.total_params == 70_553_706_496


# ------------------------------------------------------------------ DeepSeek-V3 (MLA + MoE)


def test_deepseek_v3_parameters():
    a = arch("deepseek-v3")
    # 671B total and 37B activated per token (DeepSeek-V3 technical report)
    assert rel(a.total_params, 671e9) <= 0.01
    assert rel(a.active_params, 37e9) <= 0.03
    # 61 layers, the first 3 dense (first_k_dense_replace), 58 MoE layers of 256 routed experts
    assert a.n_dense_layers == 3 and a.n_moe_layers == 58
    assert a.num_experts == 256 and a.experts_per_token == 8


def test_deepseek_v3_kv_bytes_per_token():
    a = arch("deepseek-v3")
    # MLA caches the compressed latent (kv_lora_rank 512) and the shared RoPE key (64):
    # (512 + 64) x 61 layers x 2 B = 70,272 B = 68.625 KiB
    assert a.kv_bytes_per_token(BF16) == (512 + 64) * 61 * 2 == 70272
    assert not a.kv_split_over_tp  # the latent is replicated on every TP rank


# ------------------------------------------------------------------ MoE models


def test_mixtral_8x7b_parameters():
    a = arch("mixtral-8x7b")
    # embeddings 2 x 32000 x 4096 = 262,144,000; final norm 4,096
    # per layer: attention q + o 2 x 4096^2 + k+v 2 x 4096 x 1024 = 41,943,040, norms 8,192
    #   -> 41,951,232; one expert 3 x 4096 x 14336 = 176,160,768; router 4096 x 8 = 32,768
    # total: 32 x (41,951,232 + 8 x 176,160,768 + 32,768) + 262,148,096 = 46,702,792,704
    # active: 32 x (41,951,232 + 2 x 176,160,768 + 32,768) + 262,148,096 = 12,879,925,248
    assert rel(a.total_params, 46.7e9) <= 0.01
    assert rel(a.active_params, 12.9e9) <= 0.01
    assert a.total_params == 46_702_792_704
    assert a.active_params == 12_879_925_248


def test_qwen3_235b_a22b_parameters():
    a = arch("qwen3-235b-a22b")
    # the name says it: 235B total, 22B active (Qwen3 model card: 235B / 22B activated)
    assert rel(a.total_params, 235e9) <= 0.01
    assert rel(a.active_params, 22e9) <= 0.03
    # 94 layers x 2 x 4 KV heads x 128 x 2 B = 192,512 B per token
    assert a.kv_bytes_per_token(BF16) == 94 * 2 * 4 * 128 * 2


def test_gpt_oss_120b_parameters():
    a = arch("gpt-oss-120b")
    # model card: 116.83B total ("117B")
    assert rel(a.total_params, 117e9) <= 0.01
    # 36 layers x 2 x 8 KV heads x head_dim 64 x 2 B = 73,728 B per token (full context)
    assert a.kv_bytes_per_token(BF16) == 36 * 2 * 8 * 64 * 2


def test_llama_4_maverick_parameters():
    a = arch("llama-4-maverick")
    # model card: 17B active, 400B total (128 routed experts + 1 shared, MoE every 2nd layer)
    assert rel(a.total_params, 400e9) <= 0.03
    assert rel(a.active_params, 17e9) <= 0.03
    # interleave_moe_layer_step 2 over 48 layers: layers 1, 3, ..., 47 are MoE -> 24
    assert moe_layer_count(_CATALOG.model("llama-4-maverick")) == 24


# ------------------------------------------------------------------ every catalog model


@pytest.mark.parametrize("model_id", sorted(_CATALOG.models))
def test_total_params_match_published(model_id):
    m = _CATALOG.model(model_id)
    a = arch_of(m)
    published = m.params_published_total_b * 1e9
    assert rel(a.total_params, published) <= 0.03, (
        f"{model_id}: computed {a.total_params / 1e9:.3f}B, published {published / 1e9:.3f}B"
    )
    # physical sanity: active <= total, both positive, KV per token positive
    assert 0 < a.active_params <= a.total_params
    assert a.kv_bytes_per_token(BF16) > 0


_EXACT = sorted(m.id for m in _CATALOG.models.values() if m.params_published_exact)


@pytest.mark.parametrize("model_id", _EXACT)
def test_exact_published_counts(model_id):
    """Where the published figure is an exact count, the computed count is within 0.1%."""
    m = _CATALOG.model(model_id)
    assert rel(arch_of(m).total_params, m.params_published_total_b * 1e9) <= 1e-3


# ------------------------------------------------------------------ sliding-window layers


def test_local_layer_count_gemma_3_27b():
    m = _CATALOG.model("gemma-3-27b")
    assert m.num_hidden_layers == 62 and m.sliding_window.layer_pattern == "LLLLLG"
    # 62 layers = 10 x LLLLLG (50 local, 10 global) + LL (2 local) -> 52 local, 10 global
    assert local_layer_count(m) == 10 * 5 + 2 == 52
    assert arch_of(m).local_layers == 52


@pytest.mark.parametrize("model_id, layers", [("gpt-oss-120b", 36), ("gpt-oss-20b", 24)])
def test_local_layer_count_gpt_oss(model_id, layers):
    m = _CATALOG.model(model_id)
    assert m.num_hidden_layers == layers and m.sliding_window.layer_pattern == "LG"
    # LG from layer 0: even layers local, odd layers global -> half of them local
    assert local_layer_count(m) == layers // 2


def test_local_layer_count_dense_model_is_zero():
    assert local_layer_count(_CATALOG.model("llama-3.1-8b")) == 0
