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

from infercap._schema import describe
from infercap.errors import UsageError, excerpt

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


# What each config.json key hfimport reads must hold. Checked before anything is read, at the
# top level and in text_config alike, so a wrong type is an error naming the key, never a
# traceback or a silent truthy/falsy reading ("false" as true, 0 kv heads as "absent"). A null
# is taken as absent: the key's fallback applies. NaN and Infinity (which Python's json reads)
# fail these checks like any float; keys not read are not checked, as published configs hold
# such values (Nemotron-H: "time_step_limit": [0.0, Infinity]).
COUNT, SIZE, FLAG, TEXT, TEXTS, BITS, INDICES, MAP = (
    "count", "size", "flag", "text", "texts", "bits", "indices", "map")
KINDS: dict[str, str] = {
    **dict.fromkeys((
        "hidden_size", "d_model", "num_hidden_layers", "n_layer", "num_layers",
        "num_attention_heads", "n_head", "num_key_value_heads", "num_kv_heads", "n_head_kv",
        "head_dim", "intermediate_size", "ffn_hidden_size", "vocab_size",
        "max_position_embeddings", "num_experts_per_tok", "experts_per_token",
        "num_experts_per_token", "moe_intermediate_size", "interleave_moe_layer_step",
        "decoder_sparse_step", "intermediate_size_mlp", "kv_lora_rank", "qk_rope_head_dim",
        "qk_nope_head_dim", "v_head_dim", "sliding_window", "attention_chunk_size",
        "sliding_window_pattern"), COUNT),
    # 0 is meaningful here (no experts: dense; no shared expert; no dense layers; no q LoRA)
    **dict.fromkeys((
        "n_routed_experts", "num_local_experts", "num_experts", "n_shared_experts",
        "shared_expert_intermediate_size", "first_k_dense_replace", "q_lora_rank"), SIZE),
    **dict.fromkeys((
        "multi_query", "tie_word_embeddings", "attention_bias", "qkv_bias", "use_qk_norm",
        "qk_norm", "parallel_attn", "use_sliding_window"), FLAG),
    **dict.fromkeys(("model_type", "_name_or_path"), TEXT),
    **dict.fromkeys(("architectures", "layer_types"), TEXTS),
    "no_rope_layers": BITS,
    "mlp_only_layers": INDICES,
    **dict.fromkeys(("text_config", "quantization_config", "rope_scaling", "rope_parameters"),
                    MAP),
}
# above any real model's count (those are int32 in the engines); keeps the arithmetic finite
MAX_COUNT = 2**31 - 1
# a Gemma-style period is written out in full as a layer pattern: real ones are 2 to 6 long
MAX_PERIOD = 1 << 16
_EXPECTED = {
    COUNT: f"a positive integer (at most {MAX_COUNT})",
    SIZE: f"an integer from 0 to {MAX_COUNT}",
    FLAG: "true or false",
    TEXT: "a string",
    TEXTS: "a list of strings",
    BITS: "a list of 0/1 (or true/false)",
    INDICES: "a list of layer indices (integers >= 0)",
    MAP: "an object",
}
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,60}$")


def _is_int(value: Any, low: int) -> bool:
    # JSON true/false are Python bools, an int subclass: never a count; nor is 4096.0
    return (isinstance(value, int) and not isinstance(value, bool)
            and low <= value <= MAX_COUNT)


def _fits(kind: str, value: Any) -> bool:
    if kind == COUNT:
        return _is_int(value, 1)
    if kind == SIZE:
        return _is_int(value, 0)
    if kind == FLAG:
        return isinstance(value, bool)
    if kind == TEXT:
        return isinstance(value, str)
    if kind == MAP:
        return isinstance(value, dict)
    if not isinstance(value, list):
        return False
    if kind == TEXTS:
        return all(isinstance(x, str) for x in value)
    if kind == BITS:
        return all(isinstance(x, bool) or (isinstance(x, int) and x in (0, 1)) for x in value)
    return all(_is_int(x, 0) for x in value)  # INDICES


def _name(key: str) -> str:
    """A config.json key for a message: as is when plain, else quoted and cut (keys are the
    file's text, and may be long or hold control characters)."""
    return key if _PLAIN_KEY.match(key) else excerpt(key, 40)


def _bad(path: str, expected: str, value: Any) -> UsageError:
    return UsageError(f"expected {expected}, got {describe(value)}", key=path)


def _check_types(cfg: dict[str, Any], prefix: str) -> None:
    for key, kind in KINDS.items():
        value = cfg.get(key)
        if value is not None and not _fits(kind, value):
            raise _bad(prefix + key, _EXPECTED[kind], value)
    qc = cfg.get("quantization_config")
    if isinstance(qc, dict) and qc.get("quant_method") is not None \
            and not isinstance(qc["quant_method"], str):
        raise _bad(prefix + "quantization_config.quant_method", "a string", qc["quant_method"])


def _first(cfg: dict[str, Any], *keys: str) -> Any:
    """The value of the first of ``keys`` that is set (absent and null both count as unset)."""
    for k in keys:
        if cfg.get(k) is not None:
            return cfg[k]
    return None


def _req(cfg: dict[str, Any], prefix: str, *keys: str) -> Any:
    value = _first(cfg, *keys)
    if value is None:
        raise UsageError(f"config.json has none of {', '.join(keys)}", key=prefix + keys[0])
    return value


def convert(cfg: Any, model_id: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """(catalog entry, warnings). Raises UsageError for what cannot be mapped, naming the key
    (``text_config.num_key_value_heads``)."""
    if not isinstance(cfg, dict):
        raise UsageError(f"expected a JSON object at the top level, got {describe(cfg)}",
                         key="config.json")
    _check_types(cfg, "")
    top = cfg
    pre = ""  # where the architecture keys live, for messages
    if top.get("text_config") is not None:  # multimodal wrappers: Llama 4, Gemma 3
        cfg, pre = top["text_config"], "text_config."
        _check_types(cfg, pre)
    warnings: list[str] = []
    arch = (top.get("architectures") or ["?"])[0]
    mtype = _first(cfg, "model_type") or top.get("model_type") or ""
    hidden = _req(cfg, pre, "hidden_size", "d_model")
    layers = _req(cfg, pre, "num_hidden_layers", "n_layer", "num_layers")
    heads = _req(cfg, pre, "num_attention_heads", "n_head")
    kv = _first(cfg, "num_key_value_heads", "num_kv_heads", "n_head_kv")
    if kv is None:
        kv = 1 if cfg.get("multi_query") else heads
    elif heads % kv:
        key = next(k for k in ("num_key_value_heads", "num_kv_heads", "n_head_kv")
                   if cfg.get(k) is not None)
        raise UsageError(f"expected a divisor of num_attention_heads ({heads}), got {kv}",
                         key=pre + key)
    head_dim = cfg.get("head_dim") or hidden // heads
    if not head_dim:
        raise UsageError(f"absent, and hidden_size ({hidden}) is smaller than "
                         f"num_attention_heads ({heads})", key=pre + "head_dim")
    inter = _first(cfg, "intermediate_size", "ffn_hidden_size")
    if inter is None and "falcon" in mtype:
        inter = 4 * hidden
    tie = _first(cfg, "tie_word_embeddings")
    if tie is None:
        tie = top.get("tie_word_embeddings")
    entry: dict[str, Any] = {
        "id": model_id or _slug(top.get("_name_or_path") or mtype or "model"),
        "name": top.get("_name_or_path") or model_id or arch,
        "hf_id": top.get("_name_or_path") or "unknown",
        "num_hidden_layers": layers,
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "head_dim": head_dim,
        "intermediate_size": inter or 0,
        "vocab_size": _req(cfg, pre, "vocab_size"),
        "tie_word_embeddings": bool(tie),  # a checked bool, or absent: untied
        "max_position_embeddings": cfg.get("max_position_embeddings") or 2048,
    }
    if cfg.get("max_position_embeddings") is None:
        warnings.append("max_position_embeddings absent: 2048 assumed")
    if cfg.get("attention_bias") or cfg.get("qkv_bias") or "qwen2" == mtype:
        entry["attention_bias"] = True
    if mtype.startswith("qwen3") or cfg.get("use_qk_norm") or cfg.get("qk_norm"):
        entry["qk_norm"] = True
    if "falcon" in mtype:
        entry["mlp_type"] = "plain"
        entry["parallel_attention"] = cfg.get("parallel_attn") is not False
    # MoE (0 experts: a dense model)
    n_exp = _first(cfg, "n_routed_experts", "num_local_experts", "num_experts")
    if n_exp:
        k = _req(cfg, pre, "num_experts_per_tok", "experts_per_token", "num_experts_per_token")
        width = _first(cfg, "moe_intermediate_size") or inter
        if width is None:
            raise UsageError("config.json has none of moe_intermediate_size, "
                             "intermediate_size", key=pre + "moe_intermediate_size")
        moe: dict[str, Any] = {"num_experts": n_exp, "experts_per_token": k,
                               "expert_intermediate_size": width}
        shared = cfg.get("n_shared_experts") or 0
        if cfg.get("shared_expert_intermediate_size"):
            moe["shared_experts"] = 1
            moe["shared_expert_intermediate_size"] = cfg["shared_expert_intermediate_size"]
        elif shared:
            moe["shared_experts"] = shared
            moe["shared_expert_intermediate_size"] = width
        elif mtype == "llama4_text":
            moe["shared_experts"] = 1  # Llama 4 MoE layers add one shared expert of the width
            moe["shared_expert_intermediate_size"] = width
        first = cfg.get("first_k_dense_replace") or 0
        if first:
            moe["first_dense_layers"] = first
        step = _first(cfg, "interleave_moe_layer_step", "decoder_sparse_step") or 1
        if step > 1:
            moe["layer_step"] = step
        if cfg.get("mlp_only_layers"):
            warnings.append("mlp_only_layers is not mapped: those layers are counted as MoE")
        entry["moe"] = moe
        if mtype == "llama4_text" and cfg.get("intermediate_size_mlp"):
            entry["intermediate_size"] = cfg["intermediate_size_mlp"]
        if not entry["intermediate_size"]:
            entry["intermediate_size"] = width
    if not entry["intermediate_size"]:
        raise UsageError("config.json has no intermediate_size", key=pre + "intermediate_size")
    # MLA
    if cfg.get("kv_lora_rank"):
        entry["mla"] = {
            "kv_lora_rank": cfg["kv_lora_rank"],
            "q_lora_rank": cfg.get("q_lora_rank") or 0,
            "qk_rope_head_dim": _req(cfg, pre, "qk_rope_head_dim"),
            "qk_nope_head_dim": _req(cfg, pre, "qk_nope_head_dim"),
            "v_head_dim": _req(cfg, pre, "v_head_dim"),
        }
        entry["head_dim"] = entry["mla"]["qk_rope_head_dim"] + entry["mla"]["qk_nope_head_dim"]
    # local attention layers
    window = cfg.get("sliding_window")
    types = cfg.get("layer_types")
    if types and len(types) != layers:
        raise UsageError(f"expected one entry per layer ({layers}), got {len(types)}",
                         key=pre + "layer_types")
    if mtype == "llama4_text" and cfg.get("attention_chunk_size"):
        nope = cfg.get("no_rope_layers")
        pattern = "".join("L" if x else "G" for x in nope[:4]) if nope else "LLLG"
        entry["sliding_window"] = {"window_tokens": cfg["attention_chunk_size"],
                                   "layer_pattern": pattern, "kind": "chunked"}
    elif window and cfg.get("use_sliding_window") is not False:
        if types:
            pattern = _period("".join("L" if "sliding" in t else "G" for t in types))
        elif mtype.startswith("gemma3"):
            n = cfg.get("sliding_window_pattern") or 6
            if n > min(layers, MAX_PERIOD):
                raise UsageError(f"expected a period of at most {min(layers, MAX_PERIOD)} "
                                 f"layers, got {n}", key=pre + "sliding_window_pattern")
            pattern = "L" * (n - 1) + "G"
        elif mtype.startswith("gemma2"):
            pattern = "LG"
        else:
            pattern = "L"
        if "G" in pattern or window < entry["max_position_embeddings"]:
            entry["sliding_window"] = {"window_tokens": window, "layer_pattern": pattern}
    qc = _first(top, "quantization_config")
    if qc is None:
        qc = cfg.get("quantization_config")
    if qc is not None:
        method = (qc.get("quant_method") or "").lower()
        if method in ("fp8", "mxfp4"):
            entry["default_weights"] = method
        elif method:
            warnings.append(f"quantization_config {excerpt(method, 40)} not mapped: weights "
                            "taken as bf16")
    unknown = sorted(_name(k) for k in cfg if k not in IGNORED)
    if unknown:
        shown = unknown[:30] + ([f"and {len(unknown) - 30} more"] if len(unknown) > 30 else [])
        warnings.append("keys not mapped (check they do not change the architecture): "
                        + ", ".join(shown))
    entry["sources"] = {
        "architecture": f"config.json of {entry['hf_id']} ({arch}), imported by infercap",
        "params_published": "computed by infercap from the architecture: replace with the "
                            "owner's published count",
    }
    # a valid entry needs a published count: start from the computed one (to be replaced)
    from infercap.arch import arch_of
    from infercap.catalog import parse_model
    from infercap.errors import InfercapError

    entry["params_published"] = {"total_b": 1.0}
    try:
        a = arch_of(parse_model(entry, "<config.json>"))
    except InfercapError as exc:  # a relation between keys (experts_per_tok > experts, ...)
        where = f"{exc.key} of the imported entry" if exc.key else "the imported entry"
        raise UsageError(f"{where}: {exc.detail}") from None
    entry["params_published"] = {"total_b": round(a.total_params / 1e9, 3), "exact": False}
    if "moe" in entry:
        entry["params_published"]["active_b"] = round(a.active_params / 1e9, 3)
    warnings.append("params_published is the computed count: replace it with the owner's "
                    "figure and its source")
    return entry, warnings


def _slug(text: str) -> str:
    # an id starts with a letter or digit (catalog.check_id): "./local-dir" gives "local-dir"
    s = re.sub(r"[^a-z0-9._-]+", "-", text.split("/")[-1].lower()).lstrip("._-").rstrip("-")
    return s or "model"


def _period(pattern: str) -> str:
    """Shortest repeating unit of a layer pattern (LGLGLG -> LG; a cut last repeat is allowed,
    LLLGLL -> LLLG). Linear (the KMP failure function): layer_types may be long."""
    fail = [0] * len(pattern)
    k = 0
    for i in range(1, len(pattern)):
        while k and pattern[i] != pattern[k]:
            k = fail[k - 1]
        if pattern[i] == pattern[k]:
            k += 1
        fail[i] = k
    return pattern[: len(pattern) - (fail[-1] if pattern else 0)]
