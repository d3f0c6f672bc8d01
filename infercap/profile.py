"""Efficiency figures: the few named, calibrated numbers the performance model uses.

Every figure has a unit in its name or is a dimensionless fraction/count, a meaning, and lives
in a YAML profile (``infercap/profiles/*.yaml``) or a hardware catalog entry's ``efficiency``
block — never in code. For one GPU the value is resolved, later winning:

1. ``profiles/default.yaml`` ``figures`` (derived from measured GEMM/copy kernels),
2. the chosen engine profile's ``figures``,
3. the GPU's catalog ``efficiency`` block (measured on that GPU),
4. the chosen profile's ``gpus: {<gpu id>: {...}}`` block (calibrated on that GPU).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from infercap._schema import Field, Schema, validate
from infercap.errors import ProfileError, UsageError

# name -> (kind, meaning). kind: fraction (0,1], positive, nonneg, count (>= 1).
FIGURES: dict[str, tuple[str, str]] = {
    "gemm_peak_fraction_16bit": (
        "fraction",
        "achieved share of the dense 16-bit tensor peak in large GEMMs",
    ),
    "gemm_peak_fraction_8bit": ("fraction", "achieved share of the dense fp8/int8 peak"),
    "gemm_peak_fraction_4bit": ("fraction", "achieved share of the dense fp4 peak"),
    "gemm_half_tokens": (
        "nonneg",
        "GEMM rows (tokens) at which compute efficiency reaches half its peak share",
    ),
    "memory_bandwidth_fraction": (
        "fraction",
        "achieved share of peak memory bandwidth when streaming weights and KV cache",
    ),
    "attention_peak_fraction": (
        "fraction",
        "achieved share of the dense 16-bit peak in prefill (flash) attention",
    ),
    "scale_up_bandwidth_fraction": (
        "fraction",
        "achieved share of scale-up link bandwidth in collectives (NVLink/xGMI)",
    ),
    "scale_out_bandwidth_fraction": (
        "fraction",
        "achieved share of scale-out network bandwidth in collectives",
    ),
    "collective_latency_us": (
        "nonneg",
        "latency of one synchronizing hop of a collective (all-reduce over n GPUs: ring 2(n-1) "
        "hops, two-shot 2, one-shot 1)",
    ),
    "layer_overhead_us": (
        "nonneg",
        "GPU time per layer per forward outside GEMMs/attention (norms, small kernels, launches)",
    ),
    "prefill_host_overhead_us_per_layer": (
        "nonneg",
        "CPU dispatch time per layer of an eager (not graph-captured) prefill forward",
    ),
    "decode_host_overhead_us_per_layer": (
        "nonneg",
        "CPU dispatch time per layer of a decode step (0 when decode runs in CUDA graphs)",
    ),
    "activation_io_passes": (
        "nonneg",
        "read/write passes over each token's layer activations outside GEMMs (unfused ops)",
    ),
    "decode_attention_saturation_blocks": (
        "count",
        "(sequence x KV head) work blocks decode attention needs to reach full bandwidth "
        "(1 for split-KV / flash-decoding kernels)",
    ),
    "step_overhead_ms": (
        "nonneg",
        "scheduler time per engine iteration not overlapped with the GPU (batching, sampling)",
    ),
    "sequence_overhead_us": (
        "nonneg",
        "host time per running sequence per engine iteration (bookkeeping, sampling, "
        "detokenisation)",
    ),
    "request_overhead_ms": (
        "nonneg",
        "per-request latency of the serving front end added to TTFT (HTTP, tokenisation, "
        "queueing into the engine)",
    ),
    "batch_wait_iterations": (
        "nonneg",
        "iterations the scheduler holds new prompts to batch them (TensorRT-LLM "
        "batch_wait_timeout_iters; 0: off)",
    ),
    "batch_wait_tokens_fraction": (
        "nonneg",
        "share of max_num_tokens of scheduled tokens that ends a batch wait early (TensorRT-LLM "
        "batch_wait_max_tokens_ratio)",
    ),
    "recv_interval_iterations": (
        "count",
        "decode iterations between the scheduler's polls for new requests (SGLang "
        "--scheduler-recv-interval; an iteration with prefill, or an idle engine, polls at once; "
        "1: every iteration)",
    ),
    "dp_balance_timeout_iterations": (
        "nonneg",
        "with DP attention, iterations new prompts wait for every DP rank to have one before "
        "they are scheduled anyway (TensorRT-LLM attention_dp_config enable_balance + "
        "timeout_iters; 0: off)",
    ),
    "max_batch_size": ("count", "engine cap on concurrently running sequences"),
    "max_num_tokens": ("count", "engine cap on tokens in one forward (chunked-prefill budget)"),
    "gpu_memory_utilization": (
        "fraction",
        "share of GPU memory the engine may use for weights, activations and KV cache "
        "(vLLM gpu_memory_utilization, SGLang mem_fraction_static)",
    ),
    "kv_cache_free_memory_fraction": (
        "fraction",
        "share of the memory left after weights and activations that becomes KV cache "
        "(TensorRT-LLM kv_cache_free_gpu_mem_fraction)",
    ),
    "runtime_reserved_gib": (
        "nonneg",
        "memory outside the engine's budget per GPU: CUDA context, library workspaces",
    ),
    "moe_load_imbalance": (
        "count",
        "ratio of the busiest expert-parallel rank's tokens to the mean (>= 1)",
    ),
}

GPU_LEVEL = (
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


def _figure_field(name: str) -> Field:
    kind = FIGURES[name][0]
    if kind == "fraction":
        return Field("number", positive=True, maximum=1.0)
    if kind == "count":
        return Field("number", minimum=1.0)
    return Field("number", minimum=0.0)


FIGURES_SCHEMA = Schema({name: _figure_field(name) for name in FIGURES})
PROFILE_SCHEMA = Schema(
    {
        "id": Field("str", required=True),
        "description": Field("str", required=True),
        "engine": Field("str"),
        "vendors": Field("list_str"),
        "figures": Field("map", schema=FIGURES_SCHEMA),
        "gpus": Field("any"),
        "kv_cache_default": Field("strmap"),
        "sources": Field("strmap"),
        "fit": Field("any"),
    }
)


@dataclass(frozen=True)
class Profile:
    """A named set of efficiency figures (engine-wide, and per GPU)."""

    id: str
    description: str
    figures: Mapping[str, float]
    gpus: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)
    path: str = ""
    # KV-cache format the engine uses when a run does not say, by weight format
    kv_cache_default: Mapping[str, str] = field(default_factory=dict)
    # the GPU vendors (catalog `vendor`) the engine runs on; empty: any
    vendors: tuple[str, ...] = ()

    def runs_on(self, gpu: Any) -> bool:
        """Whether this engine runs on ``gpu`` (a catalog GPU: its ``vendor``)."""
        return not self.vendors or gpu.vendor.lower() in {v.lower() for v in self.vendors}


def profiles_dir() -> Path:
    return Path(__file__).resolve().parent / "profiles"


def parse_profile(data: Any, file: str) -> Profile:
    entry = data.get("id") if isinstance(data, dict) and isinstance(data.get("id"), str) else None
    validate(data, PROFILE_SCHEMA, error=ProfileError, file=file, entry=entry)
    gpus_raw = data.get("gpus") or {}
    if not isinstance(gpus_raw, dict):
        raise ProfileError("expected a mapping of GPU id to figures", file=file, entry=entry,
                           key="gpus")
    gpus: dict[str, dict[str, float]] = {}
    for gid, figs in gpus_raw.items():
        validate(figs, FIGURES_SCHEMA, error=ProfileError, file=file, entry=entry,
                 prefix=f"gpus.{gid}.")
        gpus[str(gid)] = {k: float(v) for k, v in figs.items()}
    return Profile(
        id=data["id"],
        description=data["description"],
        figures={k: float(v) for k, v in (data.get("figures") or {}).items()},
        gpus=gpus,
        sources=dict(data.get("sources") or {}),
        path=file,
        kv_cache_default=dict(data.get("kv_cache_default") or {}),
        vendors=tuple(data.get("vendors") or ()),
    )


ENGINE_FAMILIES = ("trtllm", "vllm", "sglang")  # the serving engines with a shipped profile


def engine_split(engine: Profile | None, gpus: Sequence[Any]) -> tuple[list[Any], str | None]:
    """(the GPUs ``engine`` runs on, a sentence naming the others and the shipped engines that
    do run there, or None when none is left out). An engine profile names its vendors; a GPU
    of another vendor is never planned under it (a TensorRT-LLM deployment on an MI300X does
    not exist)."""
    if engine is None:
        return list(gpus), None
    kept = [g for g in gpus if engine.runs_on(g)]
    out = [g for g in gpus if not engine.runs_on(g)]
    if not out:
        return kept, None
    vendors = sorted({g.vendor for g in out})
    others = []
    for fam in ENGINE_FAMILIES:
        prof = engine_profile_for(fam)
        if prof is not None and prof.id != engine.id and all(prof.runs_on(g) for g in out):
            others.append(fam)
    name = engine.description.split(";")[0].split(" (")[0]
    hint = f"; --engine {' or '.join(others)} runs on them" if others else ""
    return kept, (f"left out {', '.join(g.id for g in out)} ({', '.join(vendors)}): {name} "
                  f"runs on {', '.join(engine.vendors)} GPUs only{hint}")


def load_profile_file(path: str | Path) -> Profile:
    from infercap.yamlio import load_yaml

    p = Path(path)
    return parse_profile(load_yaml(p, ProfileError), str(p))


def builtin_profile_ids() -> list[str]:
    return sorted(p.stem for p in profiles_dir().glob("*.yaml"))


def load_profile(name_or_path: str) -> Profile:
    """A shipped profile by id (``default``, ``trtllm``, ``vllm``, ...) or a YAML file path."""
    builtin = profiles_dir() / f"{name_or_path}.yaml"
    if builtin.is_file():
        return load_profile_file(builtin)
    path = Path(name_or_path)
    if path.is_file():
        return load_profile_file(path)
    raise UsageError(
        f"expected a profile id ({', '.join(builtin_profile_ids())}) or a profile file, "
        f"got {name_or_path!r}",
        key="--profile",
    )


@dataclass(frozen=True)
class Resolver:
    """Resolves figures for (GPU, engine) from the default profile, an engine profile, the
    hardware catalog and an optional user profile (see the module docstring)."""

    default: Profile
    engine: Profile | None = None
    user: Profile | None = None

    def figures(self, gpu: Any, engine: Profile | None = None) -> dict[str, float]:
        eng = engine if engine is not None else self.engine
        out = dict(self.default.figures)
        for layer in (eng, self.user):
            if layer is not None:
                out.update(layer.figures)
        out.update(getattr(gpu, "efficiency", {}) or {})
        for layer in (self.default, eng, self.user):
            if layer is not None:
                out.update(layer.gpus.get(_gpu_key(layer, gpu), {}))
        missing = [k for k in FIGURES if k not in out]
        if missing:
            raise ProfileError(
                f"missing figures {', '.join(missing)}", file=self.default.path, entry="default"
            )
        return out

    def source_of(self, gpu: Any, name: str, engine: Profile | None = None) -> str:
        """Which file gave a figure its value for ``gpu`` (for `figures`/`explain`)."""
        return _short(self._source_of(gpu, name, engine))

    def _source_of(self, gpu: Any, name: str, engine: Profile | None = None) -> str:
        eng = engine if engine is not None else self.engine
        where = self.default.path
        for layer in (eng, self.user):
            if layer is not None and name in layer.figures:
                where = layer.path
        if name in (getattr(gpu, "efficiency", {}) or {}):
            where = gpu.path
        for layer in (self.default, eng, self.user):
            key = _gpu_key(layer, gpu) if layer is not None else ""
            if layer is not None and name in layer.gpus.get(key, {}):
                where = f"{layer.path} (gpus.{key})"
        return where


def _gpu_key(layer: Profile, gpu: Any) -> str:
    """The ``gpus:`` entry of ``layer`` that applies to ``gpu``: its own, else that of the GPU
    of the same silicon it names in ``figures_from`` (a B200 figure holds for a GB200)."""
    if gpu.id in layer.gpus:
        return str(gpu.id)
    return str(getattr(gpu, "figures_from", "") or gpu.id)


def _short(path: str) -> str:
    """A shipped file's path relative to the package's parent folder (repository or site)."""
    root = str(Path(__file__).resolve().parent.parent) + "/"
    return path[len(root):] if path.startswith(root) else path


def release_profile_id(family: str | None, version: str | None = None) -> str | None:
    """The shipped profile id of an engine family's release line: ``<family>-<major>.x`` when
    a profile of that line ships and ``version`` names its major release (``0.17.0`` ->
    ``trtllm-0.x``: the TensorRT engine line), else ``<family>`` (the current line; also for
    runs that do not say which release they used)."""
    if not family:
        return None
    if version:
        major = version.strip().split(".")[0]
        if major.isdigit() and (profiles_dir() / f"{family}-{major}.x.yaml").is_file():
            return f"{family}-{major}.x"
    return family


def engine_profile_for(engine: str | None, version: str | None = None) -> Profile | None:
    """The shipped profile of an engine family (trtllm, vllm, sglang, pytorch), if any, for
    the release line of ``version`` (``release_profile_id``)."""
    pid = release_profile_id(engine, version)
    if not pid:
        return None
    path = profiles_dir() / f"{pid}.yaml"
    return load_profile_file(path) if path.is_file() else None
