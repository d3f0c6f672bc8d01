"""Scenario files: a workload, its SLOs and budget, for ``infercap size`` and ``infercap check``.

A scenario is YAML, validated like the catalogs (every error names the file, the key and what
was expected). The format is documented in ``docs/scenarios.md``; an example ships in
``examples/chat-70b.yaml``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from infercap._schema import Field, Schema, validate
from infercap.errors import InfercapError, excerpt

HOURS_PER_MONTH = 730.0  # 8,760 h / 12
SECONDS_PER_DAY = 86_400.0
PERCENTILES = ("p50", "p90", "p99")  # of request lengths (a lognormal is fitted to them)
# less traffic than one request a day is not a serving workload (and divides by ~0 in $/token)
MIN_REQUESTS_PER_S = 1.0 / SECONDS_PER_DAY
# ten million requests/s is beyond any fleet; more is a typo (and overflows $/hour to inf)
MAX_REQUESTS_PER_S = 1e7


class ScenarioError(InfercapError):
    """A scenario file is malformed."""


def percentile_of(key: str) -> float | None:
    """The quantile (0, 1) a percentile key names: 'p95' -> 0.95, 'p99.9' -> 0.999; None
    for anything else."""
    import re

    m = re.fullmatch(r"p(\d{1,2}(?:\.\d{1,3})?)", key) if isinstance(key, str) else None
    if m is None:
        return None
    q = float(m.group(1)) / 100.0
    return q if 0.0 < q < 1.0 else None


def _slo_check(value: Any) -> str | None:
    # any percentile the queueing model computes (its CDFs are continuous): p50, p95, p99.9
    for k in value:
        if percentile_of(k) is None:
            return (f"unknown key {excerpt(str(k))} (expected percentiles such as p50, p90, p95, "
                    "p99, p99.9)")
    return None


def _percentile_map(name: str) -> Field:
    return Field("numbermap", check=_slo_check)


def _length_check(value: Any) -> str | None:
    import math

    if isinstance(value, bool):
        return "expected a number or a mapping with mean (and p50/p90/p99)"
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            return f"expected a finite number >= 1, got {value!r}"
        return None if value >= 1 else f"expected a number >= 1, got {value!r}"
    if not isinstance(value, dict):
        return ("expected a number or a mapping with mean (and p50/p90/p99), got "
                f"{excerpt(repr(value))}")
    extra = [k for k in value if k not in ("mean", *PERCENTILES)]
    if extra:
        return f"unknown key {excerpt(str(extra[0]))} (allowed: mean, p50, p90, p99)"
    if "mean" not in value:
        return "expected a mapping with mean (and optionally p50, p90, p99)"
    for k, v in value.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                or not v >= 1:
            got = repr(v) if isinstance(v, (int, float)) else excerpt(repr(v))
            return f"{k}: expected a finite number >= 1, got {got}"
    pct = [(k, value[k]) for k in PERCENTILES if k in value]
    for (k1, v1), (k2, v2) in zip(pct, pct[1:]):
        if v2 < v1:  # a distribution's percentiles never decrease
            return f"{k2}: expected at least {k1} ({v1:g}), got {v2:g}"
    return None


TRAFFIC = Schema({
    "average_requests_per_s": Field("number", positive=True, maximum=MAX_REQUESTS_PER_S),
    "peak_requests_per_s": Field("number", positive=True, maximum=MAX_REQUESTS_PER_S),
    "tokens_per_day": Field("number", positive=True),
    "peak_to_average": Field("number", minimum=1.0),
    "input_tokens": Field("any", check=_length_check),
    "output_tokens": Field("any", check=_length_check),
    "lengths_csv": Field("str"),
    "prefix_cache_hit_rate": Field("number", minimum=0.0, maximum=0.99),
})
SLO = Schema({
    "ttft_ms": _percentile_map("ttft_ms"),
    "tpot_ms": _percentile_map("tpot_ms"),
    "min_tokens_per_s_per_user": Field("number", positive=True),
})
BUDGET = Schema({
    "max_usd_per_m_tokens": Field("number", positive=True),
    "max_usd_per_m_output_tokens": Field("number", positive=True),
    "max_usd_per_month": Field("number", positive=True),
})
PRICING = Schema({
    "type": Field("str", choices=("on-demand", "reserved", "spot")),
    "discount": Field("number", minimum=0.0, maximum=0.95),
    "usd_per_gpu_hour": Field("numbermap"),
})
LIMITS = Schema({
    "max_gpus": Field("int", positive=True),
    "max_gpus_per_instance": Field("int", positive=True, maximum=4096),
})
SCENARIO = Schema(
    {
        "name": Field("str"),
        "model": Field("str"),
        "models": Field("list_str"),
        "gpus": Field("list_str"),
        "precisions": Field("list_str"),
        "engine": Field("str"),
        "serving": Field("str", choices=("aggregated", "disaggregated", "both")),
        "pricing": Field("map", schema=PRICING),
        "limits": Field("map", schema=LIMITS),
        "traffic": Field("map", required=True, schema=TRAFFIC),
        "slo": Field("map", schema=SLO),
        "budget": Field("map", schema=BUDGET),
    },
    one_of=(("model", "models"),),
)


@dataclass(frozen=True)
class Scenario:
    path: str
    name: str
    models: list[str]
    gpus: list[str]  # empty: every catalog GPU
    precisions: list[str]  # empty: the plan defaults
    engine: str
    serving: str
    average_rps: float
    peak_rps: float
    input_tokens: Any  # number or {mean, p50, ...}
    output_tokens: Any
    lengths_rows: list[tuple[float, float]] | None  # from lengths_csv
    prefix_cache_hit_rate: float
    ttft_ms: dict[str, float] = field(default_factory=dict)
    tpot_ms: dict[str, float] = field(default_factory=dict)
    min_tokens_per_s_per_user: float | None = None
    max_usd_per_m_tokens: float | None = None
    max_usd_per_m_output_tokens: float | None = None
    max_usd_per_month: float | None = None
    price_type: str = "on-demand"
    discount: float = 0.0
    price_overrides: dict[str, float] = field(default_factory=dict)
    max_gpus: int | None = None
    max_gpus_per_instance: int = 8

    def lengths(self):  # type: ignore[no-untyped-def]
        """The request lengths as ``queueing.Lengths`` (CSV rows, a lognormal fitted to the mean
        and percentiles, or fixed)."""
        import numpy as np

        from infercap.queueing import Lengths, lognormal_samples

        if self.lengths_rows:
            arr = np.array(self.lengths_rows, dtype=float)
            return Lengths(arr[:, 0], arr[:, 1])

        def samples(spec: Any) -> "np.ndarray":
            if isinstance(spec, dict):
                pct = {k: float(v) for k, v in spec.items() if k != "mean"}
                return lognormal_samples(float(spec["mean"]), pct)
            return np.array([float(spec)])

        i, o = samples(self.input_tokens), samples(self.output_tokens)
        if len(i) != len(o):
            n = max(len(i), len(o))
            # independent lengths: pair every input quantile with every output quantile
            i, o = np.repeat(i, len(o)), np.tile(o, len(i))
            if len(i) > 4 * n:
                pick = np.random.default_rng(0).choice(len(i), 4 * n, replace=False)
                i, o = i[pick], o[pick]
        return Lengths(i, o)


    def tail_ratio(self) -> float:
        """p99 over mean of the longer-tailed of input and output lengths: the declared p99
        where the scenario gives one (the 64 fitted samples' p99 falls a little short of it,
        so a declared p99 of exactly 3x the mean would read as 2.9x), else the samples'."""
        declared = [float(spec["p99"]) / float(spec["mean"])
                    for spec in (self.input_tokens, self.output_tokens)
                    if isinstance(spec, dict) and "p99" in spec]
        return max([self.lengths().tail_ratio, *declared])


def _mean_of(spec: Any) -> float:
    return float(spec["mean"]) if isinstance(spec, dict) else float(spec)


def parse_scenario(data: Any, file: str, allow_paths: Sequence[str | Path] = ()) -> Scenario:
    d = validate(data, SCENARIO, error=ScenarioError, file=file, entry=None)

    def fail(key: str, msg: str) -> None:
        raise ScenarioError(msg, file=file, key=key)

    tr = d["traffic"]
    rows = None
    if "lengths_csv" in tr:
        if "input_tokens" in tr or "output_tokens" in tr:
            fail("traffic.lengths_csv", "expected either lengths_csv or input_tokens/"
                 "output_tokens, not both")
        rows = read_lengths_csv(data_path(tr["lengths_csv"], file, "traffic.lengths_csv",
                                          ScenarioError, allow_paths=allow_paths), file)
        isl = sum(r[0] for r in rows) / len(rows)
        osl = sum(r[1] for r in rows) / len(rows)
    else:
        for k in ("input_tokens", "output_tokens"):
            if k not in tr:
                fail(f"traffic.{k}", "missing required key (expected a number or a mapping with "
                     "mean and p50/p90/p99; or give traffic.lengths_csv)")
        isl, osl = _mean_of(tr["input_tokens"]), _mean_of(tr["output_tokens"])
    if "tokens_per_day" in tr:
        if "average_requests_per_s" in tr:
            fail("traffic.tokens_per_day", "expected either tokens_per_day or "
                 "average_requests_per_s, not both")
        avg = tr["tokens_per_day"] / SECONDS_PER_DAY / (isl + osl)
        if avg > MAX_REQUESTS_PER_S:
            fail("traffic.tokens_per_day", f"expected at most {MAX_REQUESTS_PER_S:g} requests/s, "
                 f"got {avg:g} ({tr['tokens_per_day']:g} tokens/day)")
        if avg < MIN_REQUESTS_PER_S:
            fail("traffic.tokens_per_day", f"expected at least one request a day "
                 f"({isl + osl:,.0f} tokens), got {tr['tokens_per_day']:g}")
    elif "average_requests_per_s" in tr:
        avg = float(tr["average_requests_per_s"])
    elif "peak_requests_per_s" in tr:
        avg = None
    else:
        fail("traffic", "expected peak_requests_per_s, average_requests_per_s or tokens_per_day")
    if "peak_requests_per_s" in tr:
        peak = float(tr["peak_requests_per_s"])
        if "peak_to_average" in tr:
            fail("traffic.peak_to_average", "expected either peak_requests_per_s or "
                 "peak_to_average, not both")
    else:
        peak = avg * float(tr.get("peak_to_average", 1.0))  # type: ignore[operator]
        if peak > MAX_REQUESTS_PER_S:
            fail("traffic.peak_to_average", f"expected a peak of at most {MAX_REQUESTS_PER_S:g} "
                 f"requests/s, got {peak:g}")
    if avg is None:
        avg = peak
    for key, rate in (("average_requests_per_s", avg), ("peak_requests_per_s", peak)):
        if key in tr and rate < MIN_REQUESTS_PER_S:
            fail(f"traffic.{key}", f"expected at least one request a day "
                 f"({MIN_REQUESTS_PER_S:.3g} requests/s), got {rate:g}")
    if avg > peak:
        fail("traffic.average_requests_per_s", f"expected at most the peak ({peak:g} "
             f"requests/s), got {avg:g}")
    slo = d.get("slo") or {}
    budget = d.get("budget") or {}
    pricing = d.get("pricing") or {}
    limits = d.get("limits") or {}
    if pricing.get("type") in ("reserved", "spot") and "discount" not in pricing \
            and "usd_per_gpu_hour" not in pricing:
        fail("pricing.discount", f"a {pricing['type']} price needs a discount off the catalog's "
             "price or usd_per_gpu_hour per GPU")
    models = d["models"] if "models" in d else [d["model"]]
    if not models:
        fail("models", "expected at least one model id")
    if "gpus" in d and not d["gpus"]:
        fail("gpus", "expected at least one GPU id (leave gpus out for every catalog GPU)")
    name = d.get("name") or Path(file).stem
    return Scenario(
        path=file, name=name, models=list(models), gpus=list(d.get("gpus") or []),
        precisions=list(d.get("precisions") or []), engine=d.get("engine", "trtllm"),
        serving=d.get("serving", "both"), average_rps=avg, peak_rps=peak,
        input_tokens=tr.get("input_tokens", isl), output_tokens=tr.get("output_tokens", osl),
        lengths_rows=rows, prefix_cache_hit_rate=float(tr.get("prefix_cache_hit_rate", 0.0)),
        ttft_ms=dict(slo.get("ttft_ms") or {}), tpot_ms=dict(slo.get("tpot_ms") or {}),
        min_tokens_per_s_per_user=slo.get("min_tokens_per_s_per_user"),
        max_usd_per_m_tokens=budget.get("max_usd_per_m_tokens"),
        max_usd_per_m_output_tokens=budget.get("max_usd_per_m_output_tokens"),
        max_usd_per_month=budget.get("max_usd_per_month"),
        price_type=pricing.get("type", "on-demand"), discount=float(pricing.get("discount", 0)),
        price_overrides=dict(pricing.get("usd_per_gpu_hour") or {}),
        max_gpus=limits.get("max_gpus"),
        max_gpus_per_instance=int(limits.get("max_gpus_per_instance", 8)),
    )


LENGTHS_MAX_BYTES = 64 << 20  # a larger lengths CSV is refused (64 MiB)
LENGTHS_MAX_ROWS = 1_000_000  # requests per lengths CSV
_SYSTEM_TREES = ("/proc", "/sys")  # files there are not data, even when allowed


def _inside(path: str, root: str) -> bool:
    import os

    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def data_path(value: str, yaml_file: str, key: str, error: type[InfercapError],
              entry: str | None = None, allow_paths: Sequence[str | Path] = ()) -> Path:
    """The file that ``value`` (a path in ``yaml_file`` under ``key``) names, relative to the
    YAML file's folder. Resolved (symbolic links included), it must lie inside that folder or
    inside one of ``allow_paths`` (folders or files the user allowed: ``--allow-paths``), so a
    YAML file from elsewhere cannot make infercap read ``/proc/self/environ`` or
    ``../../etc/passwd``; never under /proc or /sys. Else ``error`` naming the YAML file
    and the key."""
    import os

    def fail(msg: str) -> InfercapError:
        return error(msg, file=yaml_file, entry=entry, key=key)

    if not value or "\x00" in value:
        raise fail(f"expected a file name, got {excerpt(value, 200)}")
    folder = os.path.realpath(Path(yaml_file).parent)
    path = Path(folder) / value  # an absolute value replaces the folder
    roots = [folder]
    for a in allow_paths:
        try:
            roots.append(os.path.realpath(a, strict=True))
        except (OSError, RuntimeError):
            continue

    def check(real: str) -> None:
        if not any(_inside(real, r) for r in roots) \
                or any(_inside(real, t) for t in _SYSTEM_TREES):
            raise fail(f"refusing to read {excerpt(value, 200)}: a lengths CSV must be inside "
                       "the YAML file's folder (or a folder given with --allow-paths)")

    # where it leads is checked first, so a refusal says nothing of what exists elsewhere
    real = os.path.realpath(path)
    check(real)
    try:
        real = os.path.realpath(path, strict=True)
    except (OSError, RuntimeError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        raise fail(f"cannot read lengths CSV {excerpt(value, 200)} ({why})") from None
    check(real)
    return Path(real)


def read_lengths_csv(path: Path, scenario_file: str, key: str = "traffic.lengths_csv",
                     error: type[InfercapError] = ScenarioError,
                     entry: str | None = None) -> list[tuple[float, float]]:
    """Rows of ``input_tokens,output_tokens`` (a header row naming them; one row per request)
    from ``path`` (as ``data_path`` returns it). Only a regular file is read, at most
    LENGTHS_MAX_BYTES and LENGTHS_MAX_ROWS rows. A file that cannot be read is reported
    against ``scenario_file`` (the file naming it) and ``key``; a bad row against the CSV
    itself, with its line, quoting at most a short escaped excerpt of it."""
    import io
    import os
    import stat

    where = str(path)

    def unreadable(why: str) -> InfercapError:
        return error(f"cannot read lengths CSV {where!r} ({why})",
                     file=scenario_file, entry=entry, key=key)

    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise unreadable(exc.strerror or str(exc)) from None
    try:
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):  # a FIFO, a device, a folder
                raise unreadable("not a regular file")
            if st.st_size > LENGTHS_MAX_BYTES:
                raise unreadable(f"larger than {LENGTHS_MAX_BYTES >> 20} MiB")
            fh = os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise
        with fh:
            raw = fh.read(LENGTHS_MAX_BYTES + 1)
    except OSError as exc:
        raise unreadable(exc.strerror or str(exc)) from None
    if len(raw) > LENGTHS_MAX_BYTES:
        raise unreadable(f"larger than {LENGTHS_MAX_BYTES >> 20} MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise error("expected a UTF-8 CSV file", file=where) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows: list[tuple[float, float]] = []
    try:
        cols = reader.fieldnames or []
        if "input_tokens" not in cols or "output_tokens" not in cols:
            got = excerpt(",".join(c or "" for c in cols)) if cols else "nothing"
            raise error(f"expected a header with input_tokens,output_tokens, got {got}",
                        file=where)
        for line, row in enumerate(reader, start=2):
            if len(rows) >= LENGTHS_MAX_ROWS:
                raise error(f"expected at most {LENGTHS_MAX_ROWS:,} request rows", file=where)
            a, b = row["input_tokens"], row["output_tokens"]
            try:
                i, o = float(a), float(b)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                got = excerpt(f"{a if a is not None else ''},{b if b is not None else ''}")
                raise error(f"line {line}: expected two numbers, got {got}",
                            file=where) from None
            if not (i >= 1 and o >= 1) or i != i or o != o or i == float("inf") \
                    or o == float("inf"):
                raise error(f"line {line}: expected token counts >= 1, got "
                            f"{i:g},{o:g}", file=where)
            rows.append((i, o))
    except csv.Error as exc:
        raise error(f"line {reader.line_num}: malformed CSV ({exc})", file=where) from None
    if not rows:
        raise error("expected at least one request row", file=where)
    return rows


def load_scenario(path: str | Path, allow_paths: Sequence[str | Path] = ()) -> Scenario:
    """Load a scenario; its ``traffic.lengths_csv`` must be inside its folder or inside one of
    ``allow_paths`` (see ``data_path``)."""
    from infercap.yamlio import load_yaml

    data = load_yaml(Path(path), ScenarioError)
    return parse_scenario(data, str(path), allow_paths)
