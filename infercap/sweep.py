"""The planner's sweep: GPUs x layouts x precisions x batch sizes, evaluated in one pass.

``sweep()`` builds flat index arrays over the whole grid (no Python loop over configurations),
evaluates memory and serving metrics with ``perf``/``serving``, and returns a ``Result``: named
arrays with units in their names. Filtering by SLOs, sorting and Pareto marking are array ops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from infercap.arch import Arch, arch_of
from infercap.catalog import GPU, Model
from infercap.inputs import Tables, gather, tabulate
from infercap.perf import (Layout, kv_bytes_per_sequence, max_sequences, weight_bytes_per_gpu,
                           workspace_bytes_per_gpu)
from infercap.precision import Precision
from infercap.profile import Profile, Resolver
from infercap.serving import steady_state

DEFAULT_TP = (1, 2, 4, 8)
DEFAULT_PP = (1, 2, 4)


def default_batches(n: int = 64, largest: int = 4096) -> np.ndarray:
    """``n`` batch sizes from 1 to ``largest``, geometrically spaced, unique integers."""
    values = np.unique(np.round(np.geomspace(1, largest, n * 2)).astype(int))
    idx = np.round(np.linspace(0, len(values) - 1, n)).astype(int)
    return values[np.unique(idx)].astype(float)


@dataclass(frozen=True)
class Workload:
    input_tokens: float
    output_tokens: float


@dataclass(frozen=True)
class Layouts:
    """Candidate layouts for one model (flat arrays) and why others were rejected."""

    tp: np.ndarray
    pp: np.ndarray
    ep: np.ndarray
    dp: np.ndarray
    rejected: list[tuple[int, int, int, int, str]] = field(default_factory=list)


DEFAULT_DP = (1, 2, 4, 8, 16, 32)
MAX_STAGE_GPUS = 64


def divisors(n: int) -> list[int]:
    small = [d for d in range(1, int(n**0.5) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def layouts_for_counts(model: Model, counts: Sequence[int]) -> Layouts:
    """Every factorisation of each GPU count into tp x pp x dp (dp only for MoE models), with
    every EP size that divides dp x tp and the experts: all valid layouts, not a subset."""
    a = arch_of(model)
    parts: list[Layouts] = []
    for n in counts:
        for tp in divisors(n):
            for pp in divisors(n // tp):
                dp = n // (tp * pp)
                if dp > 1 and not a.num_experts:
                    continue
                eps = [e for e in divisors(tp * dp)] if a.num_experts else [1]
                parts.append(layouts_for(model, [tp], [pp], eps, [dp], max_stage_gpus=n))
    if not parts:
        return Layouts(*(np.zeros(0) for _ in range(4)))
    rejected = [x for p in parts for x in p.rejected]
    return Layouts(*(np.concatenate([getattr(p, k) for p in parts]) for k in
                     ("tp", "pp", "ep", "dp")), rejected)


def layouts_for(
    model: Model,
    tps: Sequence[int],
    pps: Sequence[int],
    eps: Sequence[int] | None = None,
    dps: Sequence[int] = DEFAULT_DP,
    max_stage_gpus: int = MAX_STAGE_GPUS,
) -> Layouts:
    """Every (tp, pp, dp, ep) the model can run. Dense models: TP x PP (DP replicas of a whole
    instance cost the same per GPU). MoE models also: DP attention over ``dps`` ranks with the
    experts sharded over EP ranks (EP inside the TP group, or over all dp x tp GPUs of a
    stage). Rejected: heads not divisible over TP, KV heads neither divisible nor replicable,
    more stages than layers, experts not divisible over EP."""
    a = arch_of(model)
    keep: list[tuple[int, int, int, int]] = []
    rejected: list[tuple[int, int, int, int, str]] = []
    for tp in tps:
        for dp in (sorted(set(dps)) if a.num_experts else [1]):
            if tp * dp > max_stage_gpus:
                rejected.append((tp, 1, dp, 0, f"tp x dp = {tp * dp} GPUs per pipeline stage "
                                 f"(at most {max_stage_gpus})"))
                continue
            if eps is not None:
                ep_choices = sorted({e for e in eps if e >= 1})
            elif a.num_experts:
                ep_choices = sorted({1, tp, tp * dp})
            else:
                ep_choices = [1]
            for pp in pps:
                for ep in ep_choices:
                    why = None
                    if a.heads % tp:
                        why = f"{a.heads} attention heads do not divide over tp={tp}"
                    elif a.kv_split_over_tp and a.kv_heads % tp and tp % a.kv_heads:
                        why = f"{a.kv_heads} KV heads neither divide over nor replicate to tp={tp}"
                    elif pp > a.layers:
                        why = f"pp={pp} is more stages than the {a.layers} layers"
                    elif ep > 1 and ((tp * dp) % ep or a.num_experts % ep):
                        why = (f"ep={ep} must divide dp x tp={tp * dp} and the "
                               f"{a.num_experts} experts")
                    if why:
                        rejected.append((tp, pp, dp, ep, why))
                    else:
                        keep.append((tp, pp, dp, ep))
    arr = np.array(keep, dtype=float).reshape(-1, 4)
    return Layouts(arr[:, 0], arr[:, 1], arr[:, 3], arr[:, 2], rejected)


COLUMNS = (
    "model",
    "gpu",
    "precision",
    "compute_dtype",
    "tp",
    "pp",
    "dp",
    "ep",
    "gpus",
    "batch",
    "ttft_ms",
    "tpot_ms",
    "e2e_latency_s",
    "output_tokens_per_s",
    "output_tokens_per_s_per_gpu",
    "tokens_per_s_per_user",
    "usd_per_hour",
    "price_type",
    "usd_per_m_output_tokens",
    "usd_per_m_input_tokens",
    "usd_per_m_blended_tokens",
    "memory_used_gib_per_gpu",
    "memory_gib_per_gpu",
    "max_batch_fit",
    "decode_bound",
    "pareto",
)

BOUNDS = np.array(["compute", "memory", "communication", "overhead"], dtype=object)


@dataclass
class Result:
    """Named arrays, one entry per evaluated configuration (units in the names)."""

    columns: dict[str, np.ndarray]
    evaluated: int  # configurations evaluated (fitting or not)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def take(self, idx: np.ndarray) -> "Result":
        return Result({k: v[idx] for k, v in self.columns.items()}, self.evaluated, self.notes)

    def rows(self) -> list[dict[str, object]]:
        keys = [k for k in COLUMNS if k in self.columns]
        out = []
        for i in range(len(self)):
            row: dict[str, object] = {}
            for k in keys:
                v = self.columns[k][i]
                if isinstance(v, (np.floating, float)):
                    row[k] = float(v)
                elif isinstance(v, (np.integer, int)) and not isinstance(v, bool):
                    row[k] = int(v)
                elif isinstance(v, np.bool_):
                    row[k] = bool(v)
                else:
                    row[k] = v
            out.append(row)
        return out


def offered(a: Arch, t: Tables, lays: Layouts, context: float | np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, Layout, np.ndarray]:
    """Every (GPU, precision, layout) combination the GPU offers, flat: GPU and precision
    indices into ``t``, the layouts, and how many sequences of ``context`` tokens fit in memory
    (capped by the engine's max_batch_size)."""
    G, Q, L = t.runnable.shape[0], t.runnable.shape[1], len(lays.tp)
    gi, qi, li = (x.ravel() for x in np.meshgrid(np.arange(G), np.arange(Q), np.arange(L),
                                                 indexing="ij"))
    ok = t.runnable[gi, qi]
    gi, qi, li = gi[ok], qi[ok], li[ok]
    rates, figs, byt = gather(t, gi, qi)
    lay = Layout(lays.tp[li], lays.pp[li], lays.ep[li], lays.dp[li])
    fit = np.minimum(max_sequences(a, lay, byt, figs, rates, np.float64(context)),
                     figs.max_batch_size)
    return gi, qi, lay, fit


def sweep(
    model: Model,
    gpus: Sequence[GPU],
    precisions: Sequence[Precision],
    workload: Workload,
    resolver: Resolver,
    engine: Profile | None = None,
    tps: Sequence[int] = DEFAULT_TP,
    pps: Sequence[int] = DEFAULT_PP,
    batches: np.ndarray | None = None,
    eps: Sequence[int] | None = None,
    dps: Sequence[int] = DEFAULT_DP,
    gpu_counts: Sequence[int] | None = None,
) -> Result:
    """Evaluate every GPU x layout x precision x batch for one model and workload.

    Returns only configurations that run: the precision is offered on the GPU, the weights and
    the KV cache of ``batch`` sequences of input+output tokens fit in memory, and the batch is
    within the engine's max_batch_size.
    """
    a = arch_of(model)
    batches = default_batches() if batches is None else np.asarray(batches, dtype=float)
    lays = (layouts_for_counts(model, gpu_counts) if gpu_counts
            else layouts_for(model, tps, pps, eps, dps))
    t = tabulate(gpus, precisions, resolver, engine)
    G, Q, L, B = len(gpus), len(precisions), len(lays.tp), len(batches)
    notes = [f"layout tp={tp} pp={pp} dp={dp} ep={ep} rejected: {why}"
             for tp, pp, dp, ep, why in lays.rejected]
    for i, g in enumerate(gpus):
        for j, p in enumerate(precisions):
            if not t.runnable[i, j]:
                notes.append(f"{g.id} {p.name}: {t.reason[i, j]}")
            elif "(w-only)" in str(t.compute_dtype[i, j]):
                notes.append(f"{g.id} {p.name}: {t.reason[i, j]}")
    if L == 0 or G == 0 or Q == 0:
        return Result({}, 0, notes)
    # stage 1: (gpu, precision, layout) combinations that are offered; memory fit per layout
    isl = np.float64(workload.input_tokens)
    osl = np.float64(workload.output_tokens)
    gi, qi, lay, fit = offered(a, t, lays, isl + osl)
    # stage 2: broadcast over batch sizes, keep what fits
    ci, bi = (x.ravel() for x in np.meshgrid(np.arange(len(gi)), np.arange(B), indexing="ij"))
    evaluated = len(ci)
    keep = batches[bi] <= fit[ci]
    ci, bi = ci[keep], bi[keep]
    if len(ci) == 0:
        return Result({}, evaluated, notes)
    gi2, qi2 = gi[ci], qi[ci]
    rates, figs, byt = gather(t, gi2, qi2)
    lay = Layout(lay.tp[ci], lay.pp[ci], lay.ep[ci], lay.dp[ci])
    batch = batches[bi]
    s = steady_state(a, lay, byt, figs, rates, batch, isl, osl)
    return _assemble(model, a, t, gi2, qi2, lay, byt, figs, rates, batch, fit[ci], s, isl, osl,
                     evaluated, notes)


def _assemble(model, a: Arch, t, gi, qi, lay, byt, figs, rates, batch, fit, s, isl, osl,
              evaluated, notes) -> Result:  # type: ignore[no-untyped-def]
    gpus_used = lay.gpus
    price = t.price[gi]
    usd_h = gpus_used * price
    tok_s = s.output_tokens_per_s
    in_tok_s = tok_s * isl / osl
    weights = weight_bytes_per_gpu(a, lay, byt)
    kv_used = batch / lay.dp * kv_bytes_per_sequence(a, lay, byt, isl + osl)
    mem_used = weights + workspace_bytes_per_gpu(a, lay, figs) + kv_used
    mem_used = mem_used + figs.runtime_reserved_gib * 2**30
    st = s.decode
    comp = np.where(st.gemm_compute >= st.gemm_memory, st.gemm, 0.0)
    mem = np.where(st.gemm_compute < st.gemm_memory, st.gemm, 0.0) + st.attention
    mem = mem + st.activation_io
    over = st.overhead + np.maximum(st.host - st.gpu, 0.0) + s.step_overhead
    bound = BOUNDS[np.argmax(np.stack([comp, mem, st.communication, over]), axis=0)]
    cols: dict[str, np.ndarray] = {
        "model": np.full(len(gi), model.id, dtype=object),
        "gpu": np.array([g.id for g in t.gpus], dtype=object)[gi],
        "precision": np.array([p.name for p in t.precisions], dtype=object)[qi],
        "compute_dtype": t.compute_dtype[gi, qi],
        "tp": lay.tp.astype(int),
        "pp": lay.pp.astype(int),
        "dp": lay.dp.astype(int),
        "ep": lay.ep.astype(int),
        "gpus": gpus_used.astype(int),
        "batch": batch.astype(int),
        "ttft_ms": s.ttft * 1e3,
        "tpot_ms": s.tpot * 1e3,
        "e2e_latency_s": s.e2e,
        "output_tokens_per_s": tok_s,
        "output_tokens_per_s_per_gpu": tok_s / gpus_used,
        "tokens_per_s_per_user": 1.0 / s.tpot,
        "usd_per_hour": usd_h,
        "price_type": np.array([g.price.type for g in t.gpus], dtype=object)[gi],
        "usd_per_m_output_tokens": usd_h / (tok_s * 3600.0) * 1e6,
        "usd_per_m_input_tokens": usd_h * s.prefill_share / (in_tok_s * 3600.0) * 1e6,
        "usd_per_m_blended_tokens": usd_h / ((tok_s + in_tok_s) * 3600.0) * 1e6,
        "memory_used_gib_per_gpu": mem_used / 2**30,
        "memory_gib_per_gpu": rates.memory / 2**30,
        "max_batch_fit": fit.astype(int),
        "decode_bound": bound,
        "pareto": np.zeros(len(gi), dtype=bool),
    }
    return Result(cols, evaluated, notes)


OBJECTIVES = {
    # objective -> (column, ascending)
    "cost": ("usd_per_m_output_tokens", True),
    "throughput": ("output_tokens_per_s_per_gpu", False),
    "latency": ("e2e_latency_s", True),
}


def apply_slos(
    r: Result,
    max_ttft_ms: float | None = None,
    max_tpot_ms: float | None = None,
    min_tokens_per_s_per_user: float | None = None,
    max_gpus: int | None = None,
) -> Result:
    if len(r) == 0:
        return r
    keep = np.ones(len(r), dtype=bool)
    c = r.columns
    if max_ttft_ms:
        keep &= c["ttft_ms"] <= max_ttft_ms
    if max_tpot_ms:
        keep &= c["tpot_ms"] <= max_tpot_ms
    if min_tokens_per_s_per_user:
        keep &= c["tokens_per_s_per_user"] >= min_tokens_per_s_per_user
    if max_gpus:
        keep &= c["gpus"] <= max_gpus
    return r.take(np.flatnonzero(keep))


def mark_pareto(r: Result) -> Result:
    """Mark rows no other row beats on both throughput per GPU and tokens/s per user."""
    n = len(r)
    if n == 0:
        return r
    x = r.columns["tokens_per_s_per_user"]
    y = r.columns["output_tokens_per_s_per_gpu"]
    order = np.lexsort((-y, -x))  # by user speed desc, then per-GPU throughput desc
    ys = y[order]
    best_before = np.concatenate(([-np.inf], np.maximum.accumulate(ys)[:-1]))
    front = ys > best_before
    mask = np.zeros(n, dtype=bool)
    mask[order[front]] = True
    r.columns["pareto"] = mask
    return r


def rank(r: Result, objective: str, top: int | None, per_gpu: bool = False) -> Result:
    if len(r) == 0:
        return r
    col, asc = OBJECTIVES[objective]
    v = r.columns[col]
    tie = r.columns["gpus"]
    order = np.lexsort((tie, v if asc else -v))
    if per_gpu:
        _, first = np.unique(r.columns["gpu"][order], return_index=True)
        order = order[np.sort(first)]
    if top:
        order = order[:top]
    return r.take(order)


def concat(results: Sequence[Result]) -> Result:
    evaluated = sum(r.evaluated for r in results)
    notes = [n for r in results for n in r.notes]
    full = [r for r in results if len(r)]
    if not full:
        return Result({}, evaluated, notes)
    cols = {k: np.concatenate([r.columns[k] for r in full]) for k in full[0].columns}
    return Result(cols, evaluated, notes)
