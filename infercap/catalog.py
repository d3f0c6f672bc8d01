"""Catalogs of accelerators and models: YAML files in, validated frozen objects out.

The schema is documented in docs/catalogs.md. Loading is explicit (never at import time):
``load_catalog(extra_dirs)`` reads the shipped catalogs, then the folders named by
``INFERCAP_CATALOG_PATH``, then ``--catalog`` folders; a later entry with the same id replaces an
earlier one, a duplicate id inside one source is an error naming both files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from infercap._schema import Field, Schema, check_id, validate
from infercap.errors import CatalogError

GIB = 2**30
DTYPES = ("bf16", "fp16", "fp8", "int8", "fp4")
PRICE_TYPES = ("on-demand", "reserved", "spot", "capacity-block", "estimate")
ENV_VAR = "INFERCAP_CATALOG_PATH"


def _pattern_check(value: Any) -> str | None:
    if not isinstance(value, str) or not value or set(value) - {"L", "G"}:
        return "expected a pattern of L (local) and G (global), e.g. LG"
    return None


EFFICIENCY_KEYS = (
    "gemm_peak_fraction_16bit",
    "gemm_peak_fraction_8bit",
    "gemm_peak_fraction_4bit",
    "gemm_half_tokens",
    "memory_bandwidth_fraction",
    "attention_peak_fraction",
    "scale_up_bandwidth_fraction",
    "scale_out_bandwidth_fraction",
    "collective_latency_us",
)

HARDWARE_SCHEMA = Schema(
    fields={
        "id": Field("str", required=True, check=check_id),
        "name": Field("str", required=True),
        "vendor": Field("str", required=True),
        "memory_gib": Field("number", positive=True),
        "memory_gb": Field("number", positive=True),
        "memory_bandwidth_tb_per_s": Field("number", required=True, positive=True),
        "dense_tflops": Field("numbermap", required=True, keys=DTYPES),
        "scale_up": Field(
            "map",
            required=True,
            schema=Schema(
                {
                    "type": Field("str", required=True),
                    "gb_per_s_per_direction": Field("number", required=True, positive=True),
                    "domain_gpus": Field("int", required=True, positive=True),
                }
            ),
        ),
        "scale_out_gb_per_s_per_direction": Field("number", required=True, positive=True),
        "gpus_per_node": Field("int", required=True, positive=True),
        "tdp_w": Field("number", required=True, positive=True),
        "price": Field(
            "map",
            required=True,
            schema=Schema(
                {
                    "usd_per_gpu_hour": Field("number", required=True, positive=True),
                    "provider": Field("str", required=True),
                    "type": Field("str", required=True, choices=PRICE_TYPES),
                    "date": Field("date", required=True),
                    "region": Field("str"),
                    "sku": Field("str"),
                }
            ),
        ),
        "efficiency": Field("numbermap", keys=EFFICIENCY_KEYS, minimum=0.0),
        # the catalog GPU of the same silicon whose per-GPU profile figures apply when a
        # profile has none of this GPU's own (GB200 -> B200: the same Blackwell GPU)
        "figures_from": Field("str", check=check_id),
        "sources": Field("strmap", required=True),
        "notes": Field("str"),
    },
    one_of=(("memory_gib", "memory_gb"),),
)

MODEL_SCHEMA = Schema(
    fields={
        "id": Field("str", required=True, check=check_id),
        "name": Field("str", required=True),
        "hf_id": Field("str", required=True),
        "num_hidden_layers": Field("int", required=True, positive=True),
        "hidden_size": Field("int", required=True, positive=True),
        "num_attention_heads": Field("int", required=True, positive=True),
        "num_key_value_heads": Field("int", required=True, positive=True),
        "head_dim": Field("int", required=True, positive=True),
        "intermediate_size": Field("int", required=True, positive=True),
        "vocab_size": Field("int", required=True, positive=True),
        "tie_word_embeddings": Field("bool", required=True),
        "max_position_embeddings": Field("int", required=True, positive=True),
        "mlp_type": Field("str", choices=("gated", "plain")),
        "attention_bias": Field("bool"),
        "qk_norm": Field("bool"),
        "parallel_attention": Field("bool"),
        "moe": Field(
            "map",
            schema=Schema(
                {
                    "num_experts": Field("int", required=True, positive=True),
                    "experts_per_token": Field("int", required=True, positive=True),
                    "expert_intermediate_size": Field("int", required=True, positive=True),
                    "shared_experts": Field("int", minimum=0),
                    "shared_expert_intermediate_size": Field("int", positive=True),
                    "first_dense_layers": Field("int", minimum=0),
                    "layer_step": Field("int", positive=True),
                }
            ),
        ),
        "mla": Field(
            "map",
            schema=Schema(
                {
                    "kv_lora_rank": Field("int", required=True, positive=True),
                    "q_lora_rank": Field("int", required=True, minimum=0),
                    "qk_rope_head_dim": Field("int", required=True, positive=True),
                    "qk_nope_head_dim": Field("int", required=True, positive=True),
                    "v_head_dim": Field("int", required=True, positive=True),
                }
            ),
        ),
        "sliding_window": Field(
            "map",
            schema=Schema(
                {
                    "window_tokens": Field("int", required=True, positive=True),
                    "layer_pattern": Field("str", required=True, check=_pattern_check),
                    "kind": Field("str", choices=("sliding", "chunked")),
                }
            ),
        ),
        "default_weights": Field(
            "str", choices=("bf16", "fp16", "fp8", "int8", "int4", "fp4", "mxfp4", "nvfp4")
        ),
        "params_published": Field(
            "map",
            required=True,
            schema=Schema(
                {
                    "total_b": Field("number", required=True, positive=True),
                    "active_b": Field("number", positive=True),
                    "exact": Field("bool"),
                }
            ),
        ),
        "sources": Field("strmap", required=True),
        "notes": Field("str"),
    }
)


@dataclass(frozen=True)
class Price:
    usd_per_gpu_hour: float
    provider: str
    type: str
    date: str


@dataclass(frozen=True)
class GPU:
    """One accelerator, as its catalog file states it (units in the names)."""

    id: str
    name: str
    vendor: str
    memory_bytes: float
    memory_bandwidth_tb_per_s: float
    dense_tflops: Mapping[str, float]
    scale_up_type: str
    scale_up_gb_per_s_per_direction: float
    scale_up_domain_gpus: int
    scale_out_gb_per_s_per_direction: float
    gpus_per_node: int
    tdp_w: float
    price: Price
    efficiency: Mapping[str, float]
    sources: Mapping[str, str]
    notes: str
    path: str
    figures_from: str = ""  # GPU id whose per-GPU profile figures stand in for this one's

    @property
    def memory_gib(self) -> float:
        return self.memory_bytes / GIB

    def supports(self, dtype: str) -> bool:
        return dtype in self.dense_tflops


@dataclass(frozen=True)
class MoE:
    num_experts: int
    experts_per_token: int
    expert_intermediate_size: int
    shared_experts: int = 0
    shared_expert_intermediate_size: int = 0
    first_dense_layers: int = 0
    layer_step: int = 1


@dataclass(frozen=True)
class MLA:
    kv_lora_rank: int
    q_lora_rank: int
    qk_rope_head_dim: int
    qk_nope_head_dim: int
    v_head_dim: int


@dataclass(frozen=True)
class SlidingWindow:
    window_tokens: int
    layer_pattern: str
    kind: str = "sliding"


@dataclass(frozen=True)
class Model:
    """One model's architecture, with Hugging Face config.json field names."""

    id: str
    name: str
    hf_id: str
    num_hidden_layers: int
    hidden_size: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool
    max_position_embeddings: int
    mlp_type: str = "gated"
    attention_bias: bool = False
    qk_norm: bool = False
    parallel_attention: bool = False
    moe: MoE | None = None
    mla: MLA | None = None
    sliding_window: SlidingWindow | None = None
    default_weights: str = "bf16"
    params_published_total_b: float = 0.0
    params_published_active_b: float | None = None
    params_published_exact: bool = False
    sources: Mapping[str, str] = field(default_factory=dict)
    notes: str = ""
    path: str = ""


@dataclass(frozen=True)
class Catalog:
    gpus: Mapping[str, GPU]
    models: Mapping[str, Model]

    def gpu(self, gpu_id: str) -> GPU:
        from infercap.errors import UsageError

        if gpu_id not in self.gpus:
            raise UsageError(
                f"unknown GPU id {gpu_id!r} (known: {', '.join(sorted(self.gpus))})", key="gpu"
            )
        return self.gpus[gpu_id]

    def model(self, model_id: str) -> Model:
        from infercap.errors import UsageError

        if model_id not in self.models:
            raise UsageError(
                f"unknown model id {model_id!r} (known: {', '.join(sorted(self.models))})",
                key="model",
            )
        return self.models[model_id]


def _check_sources(data: dict[str, Any], file: str, entry: str, numeric: Iterable[str]) -> None:
    sources = data.get("sources", {})
    for key in numeric:
        if key in data and key not in sources:
            raise CatalogError(
                f"missing source (expected sources.{key}: where the value was read)",
                file=file,
                entry=entry,
                key="sources",
            )


def parse_gpu(data: Any, file: str) -> GPU:
    entry = data.get("id") if isinstance(data, dict) and isinstance(data.get("id"), str) else None
    validate(data, HARDWARE_SCHEMA, error=CatalogError, file=file, entry=entry)
    _check_sources(
        data,
        file,
        data["id"],
        (
            "memory_gib",
            "memory_gb",
            "memory_bandwidth_tb_per_s",
            "dense_tflops",
            "scale_up",
            "scale_out_gb_per_s_per_direction",
            "tdp_w",
            "price",
        ),
    )
    eff = data.get("efficiency") or {}
    for key, value in eff.items():
        if key.endswith("_fraction") and not 0 < value <= 1:
            raise CatalogError(
                f"expected a fraction in (0, 1], got {value!r}",
                file=file,
                entry=data["id"],
                key=f"efficiency.{key}",
            )
    memory = data["memory_gib"] * GIB if "memory_gib" in data else data["memory_gb"] * 1e9
    up = data["scale_up"]
    price = data["price"]
    return GPU(
        id=data["id"],
        name=data["name"],
        vendor=data["vendor"],
        memory_bytes=float(memory),
        memory_bandwidth_tb_per_s=float(data["memory_bandwidth_tb_per_s"]),
        dense_tflops={k: float(v) for k, v in data["dense_tflops"].items()},
        scale_up_type=up["type"],
        scale_up_gb_per_s_per_direction=float(up["gb_per_s_per_direction"]),
        scale_up_domain_gpus=int(up["domain_gpus"]),
        scale_out_gb_per_s_per_direction=float(data["scale_out_gb_per_s_per_direction"]),
        gpus_per_node=int(data["gpus_per_node"]),
        tdp_w=float(data["tdp_w"]),
        price=Price(
            float(price["usd_per_gpu_hour"]), price["provider"], price["type"], str(price["date"])
        ),
        efficiency={k: float(v) for k, v in eff.items()},
        sources=dict(data["sources"]),
        notes=data.get("notes") or "",
        path=file,
        figures_from=data.get("figures_from") or "",
    )


def parse_model(data: Any, file: str) -> Model:
    entry = data.get("id") if isinstance(data, dict) and isinstance(data.get("id"), str) else None
    validate(data, MODEL_SCHEMA, error=CatalogError, file=file, entry=entry)
    mid = data["id"]

    def bad(key: str, message: str) -> CatalogError:
        return CatalogError(message, file=file, entry=mid, key=key)

    if "architecture" not in data["sources"] or "params_published" not in data["sources"]:
        raise bad("sources", "expected sources.architecture and sources.params_published")
    heads, kv = data["num_attention_heads"], data["num_key_value_heads"]
    if heads % kv:
        raise bad(
            "num_key_value_heads",
            f"expected a divisor of num_attention_heads ({heads}), got {kv}",
        )
    moe = None
    if data.get("moe"):
        m = data["moe"]
        if m["experts_per_token"] > m["num_experts"]:
            raise bad(
                "moe.experts_per_token",
                f"expected at most num_experts ({m['num_experts']}), got {m['experts_per_token']}",
            )
        moe = MoE(
            num_experts=m["num_experts"],
            experts_per_token=m["experts_per_token"],
            expert_intermediate_size=m["expert_intermediate_size"],
            shared_experts=m.get("shared_experts") or 0,
            shared_expert_intermediate_size=m.get("shared_expert_intermediate_size")
            or m["expert_intermediate_size"],
            first_dense_layers=m.get("first_dense_layers") or 0,
            layer_step=m.get("layer_step") or 1,
        )
        if moe.first_dense_layers >= data["num_hidden_layers"]:
            raise bad("moe.first_dense_layers", "expected fewer than num_hidden_layers")
    mla = MLA(**data["mla"]) if data.get("mla") else None
    sw = None
    if data.get("sliding_window"):
        s = data["sliding_window"]
        sw = SlidingWindow(s["window_tokens"], s["layer_pattern"], s.get("kind") or "sliding")
    pub = data["params_published"]
    return Model(
        id=mid,
        name=data["name"],
        hf_id=data["hf_id"],
        num_hidden_layers=data["num_hidden_layers"],
        hidden_size=data["hidden_size"],
        num_attention_heads=heads,
        num_key_value_heads=kv,
        head_dim=data["head_dim"],
        intermediate_size=data["intermediate_size"],
        vocab_size=data["vocab_size"],
        tie_word_embeddings=data["tie_word_embeddings"],
        max_position_embeddings=data["max_position_embeddings"],
        mlp_type=data.get("mlp_type") or "gated",
        attention_bias=bool(data.get("attention_bias")),
        qk_norm=bool(data.get("qk_norm")),
        parallel_attention=bool(data.get("parallel_attention")),
        moe=moe,
        mla=mla,
        sliding_window=sw,
        default_weights=data.get("default_weights") or "bf16",
        params_published_total_b=float(pub["total_b"]),
        params_published_active_b=float(pub["active_b"]) if pub.get("active_b") else None,
        params_published_exact=bool(pub.get("exact")),
        sources=dict(data["sources"]),
        notes=data.get("notes") or "",
        path=file,
    )


def shipped_dir() -> Path:
    """Folder holding the shipped ``hardware/`` and ``models/`` catalogs.

    In a wheel they are packed at ``infercap/_catalog``; in a source checkout (or an editable
    install) they are the repository's top-level folders.
    """
    here = Path(__file__).resolve().parent
    packed = here / "_catalog"
    if (packed / "hardware").is_dir():
        return packed
    return here.parent


def _kind_of(data: Any) -> str | None:
    if isinstance(data, dict):
        if "memory_bandwidth_tb_per_s" in data or "dense_tflops" in data:
            return "hardware"
        if "num_hidden_layers" in data or "hidden_size" in data:
            return "models"
    return None


def _files(root: Path) -> list[tuple[str | None, Path]]:
    """(kind, file) pairs in a catalog folder; kind None = decide from the file's keys."""
    out: list[tuple[str | None, Path]] = []
    for kind in ("hardware", "models"):
        sub = root / kind
        if sub.is_dir():
            out += [(kind, p) for p in sorted(sub.glob("*.y*ml")) if p.suffix in (".yaml", ".yml")]
    out += [(None, p) for p in sorted(root.glob("*.y*ml")) if p.suffix in (".yaml", ".yml")]
    return out


def catalog_dirs(extra: Iterable[str | Path] = ()) -> list[Path]:
    """The catalog folders in load order: shipped, $INFERCAP_CATALOG_PATH, then ``extra``."""
    from infercap.errors import UsageError

    dirs = [shipped_dir()]
    env = os.environ.get(ENV_VAR, "")
    named = [(ENV_VAR, Path(p)) for p in env.split(os.pathsep) if p.strip()]
    named += [("--catalog", Path(p)) for p in extra]
    for origin, path in named:
        if not path.is_dir():
            raise UsageError(f"expected a catalog folder, got {str(path)!r}", key=origin)
        dirs.append(path)
    return dirs


def load_catalog(extra: Iterable[str | Path] = ()) -> Catalog:
    """Load and validate every catalog folder; see the module docstring for precedence.

    Parsed YAML is cached per folder (``yamlio.ParseCache``: data only, keyed by the SHA-256
    of each file's bytes) so that large catalogs load fast; every entry is validated on every
    load all the same."""
    from infercap.yamlio import ParseCache

    gpus: dict[str, GPU] = {}
    models: dict[str, Model] = {}
    for root in catalog_dirs(extra):
        seen: dict[tuple[str, str], str] = {}
        cache = ParseCache(root)
        for kind, path in _files(root):
            file = str(path)
            data = cache.load(path, CatalogError)
            if data is None:
                raise CatalogError("expected a catalog entry, got an empty file", file=file)
            kind = kind or _kind_of(data)
            if kind is None:
                raise CatalogError(
                    "expected a hardware entry (memory_bandwidth_tb_per_s, ...) or a model "
                    "entry (num_hidden_layers, ...)",
                    file=file,
                )
            if kind == "hardware":
                obj: GPU | Model = parse_gpu(data, file)
            else:
                obj = parse_model(data, file)
            if obj.id != path.stem:
                raise CatalogError(
                    f"expected the file to be named {obj.id}.yaml after its id",
                    file=file,
                    entry=obj.id,
                    key="id",
                )
            if (kind, obj.id) in seen:
                raise CatalogError(
                    f"duplicate id, also defined in {seen[(kind, obj.id)]}",
                    file=file,
                    entry=obj.id,
                    key="id",
                )
            seen[(kind, obj.id)] = file
            if isinstance(obj, GPU):
                gpus[obj.id] = obj
            else:
                models[obj.id] = obj
        cache.save()
    for g in gpus.values():
        if g.figures_from and g.figures_from not in gpus:
            raise CatalogError(f"expected the id of a catalog GPU, got {g.figures_from!r}",
                               file=g.path, entry=g.id, key="figures_from")
    return Catalog(gpus=gpus, models=models)
