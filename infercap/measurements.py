"""Measurement files (docs/measurement-format.md): YAML in, validated frozen cases out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from infercap._schema import Field, Schema, validate
from infercap.errors import MeasurementError

SCENARIOS = ("offline", "rate", "concurrency", "batch", "prefill", "decode_step")
METRICS = (
    "output_tokens_per_s",
    "ttft_ms",
    "tpot_ms",
    "itl_ms",
    "e2e_latency_s",
    "prefill_ms",
    "decode_step_ms",
)
STATS = ("mean", "p50", "p90", "p99")
WEIGHTS = ("bf16", "fp16", "fp8", "int8", "int4", "fp4", "mxfp4", "nvfp4")

# fields each scenario needs (FORMAT.md)
NEEDS = {
    "offline": ("input_tokens", "output_tokens"),
    "rate": ("input_tokens", "output_tokens", "request_rate"),
    "concurrency": ("input_tokens", "output_tokens", "concurrency"),
    "batch": ("input_tokens", "output_tokens", "batch"),
    "prefill": ("input_tokens", "batch"),
    "decode_step": ("batch", "context_tokens"),
}

# one worker pool of a disaggregated deployment (FORMAT.md "disaggregated")
POOL_SCHEMA = Schema(
    {
        "workers": Field("int", required=True, positive=True),
        "tp": Field("int", required=True, positive=True),
        "pp": Field("int", required=True, positive=True),
        "dp": Field("int", positive=True),
        "ep": Field("int", positive=True),
    }
)
DISAGG_SCHEMA = Schema({"prefill": Field("map", required=True, schema=POOL_SCHEMA),
                        "decode": Field("map", required=True, schema=POOL_SCHEMA)})

# engine settings a run may state (the engine's flags, in infercap's figure names): they
# replace the profile's value for that case (docs/measurement-format.md maps each engine's flag)
ENGINE_ARGS = ("max_batch_size", "max_num_tokens", "gpu_memory_utilization",
               "kv_cache_free_memory_fraction", "batch_wait_iterations",
               "batch_wait_tokens_fraction", "recv_interval_iterations",
               "dp_balance_timeout_iterations")


def _check_engine_args(value: Any) -> str | None:
    for k, v in value.items():
        if k.endswith(("_utilization", "_fraction")) and not 0 < v <= 1:
            return f"expected {k} in (0, 1], got {v!r}"
        if k.startswith("max_") and (v < 1 or not float(v).is_integer()):
            return f"expected {k} a whole number >= 1, got {v!r}"
        if k in ("batch_wait_iterations", "recv_interval_iterations",
                 "dp_balance_timeout_iterations") and not float(v).is_integer():
            return f"expected {k} a whole number, got {v!r}"
    return None


CASE_SCHEMA = Schema(
    {
        "id": Field("str", required=True),
        "source": Field("str", required=True),
        "model": Field("str", required=True),
        "gpu": Field("str", required=True),
        "gpus": Field("int", required=True, positive=True),
        "tp": Field("int", required=True, positive=True),
        "pp": Field("int", required=True, positive=True),
        "ep": Field("int", positive=True),
        "dp": Field("int", positive=True),
        "weights": Field("str", required=True, choices=WEIGHTS),
        "activations": Field("str", choices=("bf16", "fp16", "fp8", "int8", "fp4", "mxfp4",
                                              "nvfp4")),
        "kv_cache": Field("str", choices=("bf16", "fp16", "fp8", "int8", "fp4", "nvfp4")),
        "engine": Field("str"),
        "engine_version": Field("str"),
        "scenario": Field("str", required=True, choices=SCENARIOS),
        "input_tokens": Field("number", positive=True),
        "output_tokens": Field("number", positive=True),
        "request_rate": Field("number", positive=True),
        "concurrency": Field("number", positive=True),
        "batch": Field("number", positive=True),
        "context_tokens": Field("number", positive=True),
        "num_requests": Field("int", positive=True),
        "warmup_requests": Field("int", minimum=0),
        "input_tokens_range": Field("range"),
        "output_tokens_range": Field("range"),
        "disaggregated": Field("map", schema=DISAGG_SCHEMA),
        "engine_args": Field("numbermap", keys=ENGINE_ARGS, check=_check_engine_args),
        "lengths_csv": Field("str"),
        "metric": Field("str", required=True, choices=METRICS),
        "stat": Field("str", choices=STATS),
        "value": Field("number", required=True, positive=True),
        "notes": Field("str"),
    }
)


@dataclass(frozen=True)
class Case:
    id: str
    source: str
    model: str
    gpu: str
    gpus: int
    tp: int
    pp: int
    ep: int
    weights: str
    activations: str | None
    kv_cache: str | None
    engine: str | None
    scenario: str
    input_tokens: float | None
    output_tokens: float | None
    request_rate: float | None
    concurrency: float | None
    batch: float | None
    context_tokens: float | None
    num_requests: int | None
    metric: str
    stat: str
    value: float
    file: str
    dp: int = 1  # attention data-parallel ranks per pipeline stage
    engine_version: str | None = None
    input_range: tuple[int, int] | None = None  # lengths uniform in [min, max] (integers)
    output_range: tuple[int, int] | None = None
    warmup_requests: int = 0
    # {"prefill": {...}, "decode": {...}}: workers, tp, pp, dp, ep of each pool
    disaggregated: dict[str, dict[str, int]] | None = None
    # the run's engine settings (ENGINE_ARGS), replacing the profile's figures
    engine_args: dict[str, float] | None = None
    # (input, output) tokens of every request of the run, from lengths_csv (None: the means)
    lengths: tuple[tuple[float, float], ...] | None = None


def parse_cases(data: Any, file: str,
                allow_paths: Sequence[str | Path] = ()) -> list[Case]:
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        raise MeasurementError("expected a mapping with a list under 'cases'", file=file,
                               key="cases")
    out: list[Case] = []
    seen: set[str] = set()
    csvs: dict[Path, tuple[tuple[float, float], ...]] = {}
    for i, raw in enumerate(data["cases"]):
        cid = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None
        entry = cid or f"case #{i + 1}"
        validate(raw, CASE_SCHEMA, error=MeasurementError, file=file, entry=entry)
        if cid in seen:
            raise MeasurementError("duplicate case id", file=file, entry=entry, key="id")
        seen.add(cid)  # type: ignore[arg-type]
        lengths = None
        if raw.get("lengths_csv") is not None:
            raw = dict(raw)  # the CSV's means fill input_tokens/output_tokens
            lengths = _lengths(raw, file, entry, csvs, allow_paths)
        for need in NEEDS[raw["scenario"]]:
            if raw.get(need) is None:
                raise MeasurementError(
                    f"missing field for scenario {raw['scenario']} "
                    f"(needs {', '.join(NEEDS[raw['scenario']])})",
                    file=file,
                    entry=entry,
                    key=need,
                )
        dp = raw.get("dp") or 1
        if raw.get("disaggregated") is None and raw["gpus"] % (raw["tp"] * raw["pp"] * dp):
            raise MeasurementError(
                f"expected gpus ({raw['gpus']}) a multiple of tp x pp x dp, got "
                f"{raw['tp']} x {raw['pp']} x {dp}",
                file=file,
                entry=entry,
                key="dp" if dp > 1 else "gpus",
            )
        for k, mean_key in (("input_tokens_range", "input_tokens"),
                            ("output_tokens_range", "output_tokens")):
            lo_hi = raw.get(k)
            mean = raw.get(mean_key)
            if lo_hi is not None and mean is not None and not lo_hi[0] <= mean <= lo_hi[1]:
                raise MeasurementError(f"expected {mean_key} ({mean:g}) inside [{lo_hi[0]}, "
                                       f"{lo_hi[1]}]", file=file, entry=entry, key=k)
        dis = raw.get("disaggregated")
        if dis is not None:
            pools = {k: {"workers": v["workers"], "tp": v["tp"], "pp": v["pp"],
                         "dp": v.get("dp") or 1, "ep": v.get("ep") or 1}
                     for k, v in dis.items()}
            total = sum(p["workers"] * p["tp"] * p["pp"] * p["dp"] for p in pools.values())
            if total != raw["gpus"]:
                raise MeasurementError(
                    f"expected gpus to be the total of both pools ({total}), got {raw['gpus']}",
                    file=file, entry=entry, key="gpus")
            dis = pools
        warm = raw.get("warmup_requests")
        out.append(
            Case(
                id=raw["id"],
                source=raw["source"],
                model=raw["model"],
                gpu=raw["gpu"],
                gpus=raw["gpus"],
                tp=raw["tp"],
                pp=raw["pp"],
                ep=raw.get("ep") or 1,
                weights=raw["weights"],
                activations=raw.get("activations"),
                kv_cache=raw.get("kv_cache"),
                engine=raw.get("engine"),
                scenario=raw["scenario"],
                input_tokens=raw.get("input_tokens"),
                output_tokens=raw.get("output_tokens"),
                request_rate=raw.get("request_rate"),
                concurrency=raw.get("concurrency"),
                batch=raw.get("batch"),
                context_tokens=raw.get("context_tokens"),
                num_requests=raw.get("num_requests"),
                metric=raw["metric"],
                stat=raw.get("stat") or "mean",
                value=float(raw["value"]),
                file=file,
                lengths=lengths,
                dp=dp,
                engine_version=raw.get("engine_version"),
                input_range=_pair(raw.get("input_tokens_range")),
                output_range=_pair(raw.get("output_tokens_range")),
                warmup_requests=int(warm or 0),
                disaggregated=dis,
                engine_args={k: float(v) for k, v in raw["engine_args"].items()}
                if raw.get("engine_args") else None,
            )
        )
    return out


def _pair(v: list[float] | None) -> tuple[int, int] | None:
    return None if v is None else (int(v[0]), int(v[1]))


def _lengths(raw: dict[str, Any], file: str, entry: str,
             csvs: dict[Path, tuple[tuple[float, float], ...]],
             allow_paths: Sequence[str | Path] = ()) -> tuple[tuple[float, float], ...]:
    """The run's request lengths from ``lengths_csv`` (relative to the measurement file, inside
    its folder or one of ``allow_paths``: ``scenario.data_path``). Its means are the case's
    input_tokens/output_tokens: filled in when absent, checked (within 2%) when given."""
    from infercap.scenario import data_path, read_lengths_csv

    path = data_path(raw["lengths_csv"], file, "lengths_csv", MeasurementError, entry,
                     allow_paths)
    if path not in csvs:
        csvs[path] = tuple(read_lengths_csv(path, file, key="lengths_csv",
                                            error=MeasurementError, entry=entry))
    rows = csvs[path]
    for k, col in (("input_tokens", 0), ("output_tokens", 1)):
        mean = sum(r[col] for r in rows) / len(rows)
        if raw.get(k) is None:
            raw[k] = mean
        elif abs(raw[k] - mean) > 0.02 * mean:
            raise MeasurementError(f"expected the mean of lengths_csv ({mean:.1f}) within 2%, "
                                   f"got {raw[k]:g}", file=file, entry=entry, key=k)
    return rows


def load_cases(paths: Iterable[str | Path],
               allow_paths: Sequence[str | Path] = ()) -> list[Case]:
    """Load measurement files; a case's ``lengths_csv`` must be inside its file's folder or
    inside one of ``allow_paths`` (``scenario.data_path``)."""
    from infercap.yamlio import load_yaml

    cases: list[Case] = []
    for p in paths:
        path = Path(p)
        cases += parse_cases(load_yaml(path, MeasurementError), str(path), allow_paths)
    return cases


def shipped_files() -> list[Path]:
    """Measurement files shipped with infercap (copied from ../shared/benchmarks)."""
    root = Path(__file__).resolve().parent / "benchmarks"
    return sorted(root.glob("*.yaml"))
