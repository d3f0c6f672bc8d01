"""Architecture arithmetic: parameter counts, FLOPs and KV-cache sizes of one model.

Pure functions of a catalog ``Model``; the vectorised performance model (``perf``) uses the
per-layer counts here. Formulas follow the Hugging Face implementations (LlamaForCausalLM,
MixtralForCausalLM, Qwen3Moe, DeepseekV3, GptOss, Gemma2/3, Falcon): one matrix of
``in x out`` parameters per projection, biases where the config says so, RMSNorm weights.
"""

from __future__ import annotations

from dataclasses import dataclass

from infercap.catalog import Model


@dataclass(frozen=True)
class Arch:
    """Per-layer parameter counts (elements) and shape facts of one model."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    # attention, per layer
    attn_sharded: float  # split over TP ranks (q, o; MLA q_b, kv_b, o)
    attn_kv: float  # k and v projections: split over TP only down to one KV head per rank
    attn_replicated: float  # copied on every TP rank (MLA q_a, kv_a; norms)
    # MLP, per layer
    dense_mlp: float  # one dense layer's MLP
    expert: float  # one routed expert
    shared: float  # all shared experts of one MoE layer
    router: float
    n_dense_layers: int
    n_moe_layers: int
    num_experts: int
    experts_per_token: int
    expert_width: int  # one expert's intermediate size (for activation traffic)
    dense_width: int
    # embeddings
    embed: float
    lm_head: float  # 0 if tied (the embedding matrix is reused, not stored twice)
    final_norm: float
    # KV cache and attention shape
    kv_elems_per_token_layer: float  # elements cached per token per layer (all KV heads / latent)
    kv_split_over_tp: bool  # False for MLA: the latent is replicated on every TP rank
    local_layers: int  # layers with a sliding/chunked window
    window: int  # window (tokens) of the local layers; 0 if none
    chunked: bool
    qk_dim: int  # per-head q.k width (prefill)
    v_dim: int  # per-head value width
    mla_latent: int  # MLA: kv_lora_rank (absorbed decode attends over it); 0 otherwise
    mla_rope: int

    @property
    def layer_total(self) -> float:
        """All parameters of all decoder layers (every expert counted)."""
        attn = self.attn_sharded + self.attn_kv + self.attn_replicated
        moe = self.router + self.shared + self.num_experts * self.expert
        return self.layers * attn + self.n_dense_layers * self.dense_mlp + self.n_moe_layers * moe

    @property
    def layer_active(self) -> float:
        """Decoder parameters one token uses (top-k experts only)."""
        attn = self.attn_sharded + self.attn_kv + self.attn_replicated
        moe = self.router + self.shared + self.experts_per_token * self.expert
        return self.layers * attn + self.n_dense_layers * self.dense_mlp + self.n_moe_layers * moe

    @property
    def total_params(self) -> float:
        return self.embed + self.lm_head + self.final_norm + self.layer_total

    @property
    def active_params(self) -> float:
        """Active parameters per token, embeddings included (the usual published 'active')."""
        return self.embed + self.lm_head + self.final_norm + self.layer_active

    def kv_bytes_per_token(self, kv_bytes: float) -> float:
        """KV-cache bytes per token of full context, whole model, one replica (no TP split)."""
        return self.kv_elems_per_token_layer * self.layers * kv_bytes


def moe_layer_count(model: Model) -> int:
    """Layers with an MoE block: after ``first_dense_layers``, every ``layer_step``-th layer
    (HF Llama4: ``(i + 1) % interleave_moe_layer_step == 0``; DeepSeek: ``i >= first_k``).
    Counted arithmetically: multiples of the step in (first_dense_layers, layers]."""
    moe = model.moe
    if moe is None:
        return 0
    step = moe.layer_step
    return model.num_hidden_layers // step - moe.first_dense_layers // step


def local_layer_count(model: Model) -> int:
    """Layers marked L in the repeated layer pattern (counted per whole repetition)."""
    sw = model.sliding_window
    if sw is None:
        return 0
    pattern, n = sw.layer_pattern, model.num_hidden_layers
    full, rest = divmod(n, len(pattern))
    return full * pattern.count("L") + pattern[:rest].count("L")


def arch_of(model: Model) -> Arch:
    h, nh, nkv, hd = (
        model.hidden_size,
        model.num_attention_heads,
        model.num_key_value_heads,
        model.head_dim,
    )
    norms = 2 * h  # input + post-attention RMSNorm weights
    if model.parallel_attention and model.mlp_type == "plain":
        norms = 4 * h  # Falcon-180B: ln_attn and ln_mlp, LayerNorm weight + bias each
    if model.mla is not None:
        m = model.mla
        qk = m.qk_nope_head_dim + m.qk_rope_head_dim
        if m.q_lora_rank:
            q_rep = h * m.q_lora_rank + m.q_lora_rank  # q_a_proj + q_a_layernorm
            q_shard = m.q_lora_rank * nh * qk  # q_b_proj
        else:
            q_rep, q_shard = 0.0, h * nh * qk
        kv_rep = h * (m.kv_lora_rank + m.qk_rope_head_dim) + m.kv_lora_rank  # kv_a + norm
        kv_shard = m.kv_lora_rank * nh * (m.qk_nope_head_dim + m.v_head_dim)  # kv_b_proj
        o = nh * m.v_head_dim * h
        attn_sharded = q_shard + kv_shard + o
        attn_kv = 0.0
        attn_rep = q_rep + kv_rep + norms
        kv_elems = m.kv_lora_rank + m.qk_rope_head_dim  # compressed latent + shared rope key
        kv_split = False
        qk_dim, v_dim = qk, m.v_head_dim
        latent, rope = m.kv_lora_rank, m.qk_rope_head_dim
    else:
        q = h * nh * hd
        o = nh * hd * h
        kv = 2 * h * nkv * hd
        bias = (nh + 2 * nkv) * hd if model.attention_bias else 0
        qk_norm = 2 * hd if model.qk_norm else 0
        attn_sharded = q + o + bias
        attn_kv = kv
        attn_rep = norms + qk_norm
        kv_elems = 2 * nkv * hd
        kv_split = True
        qk_dim = v_dim = hd
        latent = rope = 0
    mats = 3 if model.mlp_type == "gated" else 2
    dense_mlp = mats * h * model.intermediate_size
    n_moe = moe_layer_count(model)
    if model.moe is not None:
        e = model.moe
        expert = 3 * h * e.expert_intermediate_size
        shared = e.shared_experts * 3 * h * e.shared_expert_intermediate_size
        router = h * e.num_experts
        n_exp, k, ew = e.num_experts, e.experts_per_token, e.expert_intermediate_size
    else:
        expert = shared = router = 0.0
        n_exp, k, ew = 0, 0, 0
    sw = model.sliding_window
    return Arch(
        layers=model.num_hidden_layers,
        hidden=h,
        heads=nh,
        kv_heads=nkv,
        head_dim=hd,
        vocab=model.vocab_size,
        attn_sharded=float(attn_sharded),
        attn_kv=float(attn_kv),
        attn_replicated=float(attn_rep),
        dense_mlp=float(dense_mlp),
        expert=float(expert),
        shared=float(shared),
        router=float(router),
        n_dense_layers=model.num_hidden_layers - n_moe,
        n_moe_layers=n_moe,
        num_experts=n_exp,
        experts_per_token=k,
        expert_width=ew,
        dense_width=model.intermediate_size,
        embed=float(model.vocab_size * h),
        lm_head=0.0 if model.tie_word_embeddings else float(model.vocab_size * h),
        final_norm=float(h),
        kv_elems_per_token_layer=float(kv_elems),
        kv_split_over_tp=kv_split,
        local_layers=local_layer_count(model),
        window=sw.window_tokens if sw else 0,
        chunked=bool(sw and sw.kind == "chunked"),
        qk_dim=qk_dim,
        v_dim=v_dim,
        mla_latent=latent,
        mla_rope=rope,
    )
