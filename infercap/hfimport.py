"""Turn a Hugging Face ``config.json`` into a catalog model entry (pure: dict in, dict out).

Covers the families the planner models: Llama (1-3), Mistral, Mixtral, Qwen2/2.5, Qwen3 and
Qwen3-MoE, DeepSeek-V3/R1 (MLA + MoE), gpt-oss, Gemma 2/3 (text config), Llama 4 (text config),
Phi-3, GLM-4.5 MoE and Falcon. Keys that change the architecture but have no mapping are
reported, never silently dropped; keys that do not affect cost (dropout, token ids, rope
details) are ignored.
"""

from __future__ import annotations

import re
from typing import Any

from infercap.errors import UsageError

# config.json keys that do not change parameters, FLOPs or KV bytes
IGNORED = {
    "architectures", "model_type", "torch_dtype", "dtype", "transformers_version",
    "bos_token_id", "eos_token_id", "pad_token_id", "initializer_range", "rms_norm_eps",
    "layer_norm_eps", "layer_norm_epsilon", "attention_dropout", "hidden_dropout",
    "use_cache", "rope_theta", "rope_scaling", "rope_parameters", "hidden_act",
    "hidden_activation", "router_aux_loss_coef", "output_router_logits", "auto_map",
    "pretraining_tp", "mlp_bias", "norm_topk_prob", "routed_scaling_factor", "scoring_func",
    "topk_method", "n_group", "topk_group", "ep_size", "aux_loss_alpha", "seq_aux",
    "num_nextn_predict_layers", "max_window_layers", "use_sliding_window",
    "attn_logit_softcapping", "final_logit_softcapping", "query_pre_attn_scalar",
    "rope_local_base_freq", "swiglu_limit", "experts_per_token", "router_jitter_noise",
    "cache_implementation", "_name_or_path", "quantization_config", "moe_layer_freq",
    "partial_rotary_factor", "use_qk_norm", "attention_chunk_size", "no_rope_layers",
    "interleave_moe_layer_step", "intermediate_size_mlp", "sliding_window_pattern",
    "layer_types", "num_local_experts", "num_experts", "num_experts_per_tok",
    "moe_intermediate_size", "n_routed_experts", "n_shared_experts", "first_k_dense_replace",
    "shared_expert_intermediate_size", "decoder_sparse_step", "mlp_only_layers", "kv_lora_rank",
    "q_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim", "sliding_window",
    "attention_bias", "head_dim", "tie_word_embeddings", "vocab_size", "hidden_size",
    "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size",
    "max_position_embeddings", "n_head", "n_head_kv", "num_kv_heads", "n_layer",
    "new_decoder_architecture", "parallel_attn", "bias", "multi_query", "alibi",
    "ffn_hidden_size", "qk_norm", "attn_implementation", "vision_config", "image_token_index",
    "boi_token_index", "eoi_token_index", "mm_tokens_per_image", "text_config",
    "original_max_position_embeddings", "embd_pdrop", "resid_pdrop", "qkv_bias",
    "use_bfloat16", "tie_word_embedding", "is_encoder_decoder", "num_nextn_predict_layer",
    "router_dtype", "output_attentions", "output_hidden_states", "return_dict",
    "chunk_size_feed_forward", "torchscript", "vocab_size_padded",
}


def _req(cfg: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if k in cfg and cfg[k] is not None:
            return cfg[k]
    raise UsageError(f"config.json has none of {', '.join(keys)}", key=keys[0])


def convert(cfg: Any, model_id: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """(catalog entry, warnings). Raises UsageError for what cannot be mapped."""
    if not isinstance(cfg, dict):
        raise UsageError("expected a JSON object", key="config.json")
    top = cfg
    if isinstance(cfg.get("text_config"), dict):  # multimodal wrappers: Llama 4, Gemma 3
        cfg = {**cfg["text_config"], **{k: v for k, v in top.items() if k == "architectures"}}
    warnings: list[str] = []
    arch = (top.get("architectures") or ["?"])[0]
    mtype = str(cfg.get("model_type") or top.get("model_type") or "")
    hidden = int(_req(cfg, "hidden_size", "d_model"))
    layers = int(_req(cfg, "num_hidden_layers", "n_layer", "num_layers"))
    heads = int(_req(cfg, "num_attention_heads", "n_head"))
    kv = cfg.get("num_key_value_heads") or cfg.get("num_kv_heads") or cfg.get("n_head_kv")
    if kv is None and cfg.get("multi_query"):
        kv = 1
    kv = int(kv or heads)
    head_dim = int(cfg.get("head_dim") or hidden // heads)
    inter = cfg.get("intermediate_size") or cfg.get("ffn_hidden_size")
    if inter is None and "falcon" in mtype:
        inter = 4 * hidden
    entry: dict[str, Any] = {
        "id": model_id or _slug(top.get("_name_or_path") or mtype or "model"),
        "name": str(top.get("_name_or_path") or model_id or arch),
        "hf_id": str(top.get("_name_or_path") or "unknown"),
        "num_hidden_layers": layers,
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "head_dim": head_dim,
        "intermediate_size": int(_req({"i": inter}, "i")) if inter else 0,
        "vocab_size": int(_req(cfg, "vocab_size")),
        "tie_word_embeddings": bool(cfg.get("tie_word_embeddings",
                                            top.get("tie_word_embeddings", False))),
        "max_position_embeddings": int(cfg.get("max_position_embeddings") or 2048),
    }
    if cfg.get("max_position_embeddings") is None:
        warnings.append("max_position_embeddings absent: 2048 assumed")
    if cfg.get("attention_bias") or cfg.get("qkv_bias") or "qwen2" == mtype:
        entry["attention_bias"] = True
    if mtype.startswith("qwen3") or cfg.get("use_qk_norm") or cfg.get("qk_norm"):
        entry["qk_norm"] = True
    if "falcon" in mtype:
        entry["mlp_type"] = "plain"
        entry["parallel_attention"] = bool(cfg.get("parallel_attn", True))
    # MoE
    n_exp = cfg.get("n_routed_experts") or cfg.get("num_local_experts") or cfg.get("num_experts")
    if n_exp:
        k = int(_req(cfg, "num_experts_per_tok", "experts_per_token", "num_experts_per_token"))
        width = int(cfg.get("moe_intermediate_size") or inter)
        moe: dict[str, Any] = {"num_experts": int(n_exp), "experts_per_token": k,
                               "expert_intermediate_size": width}
        shared = int(cfg.get("n_shared_experts") or 0)
        if cfg.get("shared_expert_intermediate_size"):
            moe["shared_experts"] = 1
            moe["shared_expert_intermediate_size"] = int(cfg["shared_expert_intermediate_size"])
        elif shared:
            moe["shared_experts"] = shared
            moe["shared_expert_intermediate_size"] = width
        elif mtype == "llama4_text":
            moe["shared_experts"] = 1  # Llama 4 MoE layers add one shared expert of the width
            moe["shared_expert_intermediate_size"] = width
        first = int(cfg.get("first_k_dense_replace") or 0)
        if first:
            moe["first_dense_layers"] = first
        step = int(cfg.get("interleave_moe_layer_step") or cfg.get("decoder_sparse_step") or 1)
        if step > 1:
            moe["layer_step"] = step
        if cfg.get("mlp_only_layers"):
            warnings.append("mlp_only_layers is not mapped: those layers are counted as MoE")
        entry["moe"] = moe
        if mtype == "llama4_text" and cfg.get("intermediate_size_mlp"):
            entry["intermediate_size"] = int(cfg["intermediate_size_mlp"])
        if not entry["intermediate_size"]:
            entry["intermediate_size"] = width
    if not entry["intermediate_size"]:
        raise UsageError("config.json has no intermediate_size", key="intermediate_size")
    # MLA
    if cfg.get("kv_lora_rank"):
        entry["mla"] = {
            "kv_lora_rank": int(cfg["kv_lora_rank"]),
            "q_lora_rank": int(cfg.get("q_lora_rank") or 0),
            "qk_rope_head_dim": int(_req(cfg, "qk_rope_head_dim")),
            "qk_nope_head_dim": int(_req(cfg, "qk_nope_head_dim")),
            "v_head_dim": int(_req(cfg, "v_head_dim")),
        }
        entry["head_dim"] = entry["mla"]["qk_rope_head_dim"] + entry["mla"]["qk_nope_head_dim"]
    # local attention layers
    window = cfg.get("sliding_window")
    types = cfg.get("layer_types")
    if mtype == "llama4_text" and cfg.get("attention_chunk_size"):
        nope = cfg.get("no_rope_layers")
        pattern = ("".join("L" if x else "G" for x in nope[:4]) if isinstance(nope, list)
                   and nope else "LLLG")
        entry["sliding_window"] = {"window_tokens": int(cfg["attention_chunk_size"]),
                                   "layer_pattern": pattern, "kind": "chunked"}
    elif window and cfg.get("use_sliding_window", True) is not False:
        if isinstance(types, list) and types:
            pattern = "".join("L" if "sliding" in str(t) else "G" for t in types)
            pattern = _period(pattern)
        elif mtype.startswith("gemma3"):
            n = int(cfg.get("sliding_window_pattern") or 6)
            pattern = "L" * (n - 1) + "G"
        elif mtype.startswith("gemma2"):
            pattern = "LG"
        else:
            pattern = "L"
        if "G" in pattern or int(window) < entry["max_position_embeddings"]:
            entry["sliding_window"] = {"window_tokens": int(window), "layer_pattern": pattern}
    qc = top.get("quantization_config") or cfg.get("quantization_config")
    if isinstance(qc, dict):
        method = str(qc.get("quant_method", "")).lower()
        if method in ("fp8", "mxfp4"):
            entry["default_weights"] = method
        elif method:
            warnings.append(f"quantization_config {method!r} not mapped: weights taken as bf16")
    unknown = sorted(k for k in cfg if k not in IGNORED)
    if unknown:
        warnings.append("keys not mapped (check they do not change the architecture): "
                        + ", ".join(unknown))
    entry["sources"] = {
        "architecture": f"config.json of {entry['hf_id']} ({arch}), imported by infercap",
        "params_published": "computed by infercap from the architecture: replace with the "
                            "owner's published count",
    }
    # a valid entry needs a published count: start from the computed one (to be replaced)
    from infercap.arch import arch_of
    from infercap.catalog import parse_model

    entry["params_published"] = {"total_b": 1.0}
    a = arch_of(parse_model(entry, "<config.json>"))
    entry["params_published"] = {"total_b": round(a.total_params / 1e9, 3), "exact": False}
    if "moe" in entry:
        entry["params_published"]["active_b"] = round(a.active_params / 1e9, 3)
    warnings.append("params_published is the computed count: replace it with the owner's "
                    "figure and its source")
    return entry, warnings


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9._-]+", "-", text.split("/")[-1].lower()).strip("-")
    return s or "model"


def _period(pattern: str) -> str:
    """Shortest repeating unit of a layer pattern (LGLGLG -> LG)."""
    for n in range(1, len(pattern) + 1):
        unit = pattern[:n]
        if (unit * (len(pattern) // n + 1))[: len(pattern)] == pattern:
            return unit
    return pattern
