"""Predict measured cases with the planner's own model, and score the error.

``prepare()`` turns cases into per-model groups of arrays once (skipping, with a reason, what
cannot be predicted); ``predict()`` evaluates every group vectorised, optionally with figures
overridden (``calibrate`` calls it inside its optimiser). Nothing here prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from infercap.arch import Arch, arch_of
from infercap.catalog import Catalog
from infercap.measurements import Case
from infercap.perf import Bytes, Figs, Layout, Rates, kv_budget_per_gpu, kv_bytes_per_sequence
from infercap.perf import pipeline_decode, pipeline_prefill
from infercap.precision import parse_precision
from infercap.profile import FIGURES, Profile, Resolver, engine_profile_for, release_profile_id
from infercap.serving import offline_batch, static_batch, steady_state
from infercap.errors import UsageError

ENGINE_FAMILIES = ("trtllm", "vllm", "sglang", "pytorch")


@dataclass
class Group:
    """Cases of one model, as arrays."""

    arch: Arch
    index: np.ndarray  # positions in the prepared case list
    rates: Rates
    byt: Bytes
    lay: Layout
    figs: dict[str, np.ndarray]
    replicas: np.ndarray
    scenario: np.ndarray
    metric: np.ndarray
    isl: np.ndarray
    osl: np.ndarray
    rate: np.ndarray
    conc: np.ndarray
    batch: np.ndarray
    ctx: np.ndarray
    nreq: np.ndarray  # num_requests (0: not given)
    stat: np.ndarray  # mean | p50 | p90 | p99
    gpu_ids: np.ndarray
    engines: np.ndarray
    lengths: np.ndarray  # per case: the run's (input, output) pairs (lengths_csv or the
    # uniform ranges of a benchmark client's random dataset), or None: the means


@dataclass
class Prepared:
    cases: list[Case]
    skipped: dict[int, str]  # position -> reason
    groups: list[Group] = field(default_factory=list)


def _arr(values: Sequence[float | None], fill: float = 1.0) -> np.ndarray:
    return np.array([fill if v is None else float(v) for v in values], dtype=float)


def _objects(values: Sequence[object]) -> np.ndarray:
    """A 1-D object array of ``values`` (tuples stay elements, not rows)."""
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def release_line(c: Case) -> str | None:
    """The shipped profile id of a case's engine release line (``release_profile_id``)."""
    return release_profile_id(engine_family(c.engine), c.engine_version)


def engine_family(engine: str | None) -> str | None:
    if not engine:
        return None
    e = engine.lower()
    for fam in ENGINE_FAMILIES:
        if e.startswith(fam):
            return fam
    return None


def prepare(cases: Sequence[Case], catalog: Catalog, resolver: Resolver,
            engine_override: Profile | None = None) -> Prepared:
    """Group cases by model and build their arrays; record why any case is skipped."""
    from infercap.inputs import gather, tabulate

    prep = Prepared(list(cases), {})
    engines: dict[str | None, Profile | None] = {}
    by_model: dict[str, list[int]] = {}
    for i, c in enumerate(cases):
        if c.model not in catalog.models:
            prep.skipped[i] = f"unknown model id {c.model!r}"
            continue
        if c.gpu not in catalog.gpus:
            prep.skipped[i] = f"unknown GPU id {c.gpu!r}"
            continue
        has_distribution = c.metric in ("ttft_ms", "tpot_ms") and (
            c.scenario == "rate" or (c.scenario == "offline" and bool(c.num_requests)))
        if (c.stat in ("p90", "p99") and c.scenario in ("offline", "rate", "concurrency")
                and not has_distribution):
            prep.skipped[i] = (f"{c.stat} of {c.metric} under {c.scenario} load is not "
                               "modelled (percentiles: TTFT and TPOT of rate cases and of "
                               "offline runs with num_requests)")
            continue
        if c.scenario == "offline" and c.metric in ("ttft_ms", "e2e_latency_s") \
                and not c.num_requests:
            prep.skipped[i] = ("offline TTFT/latency depends on the number of queued requests; "
                               "the case has no num_requests")
            continue
        if c.disaggregated is not None:
            prep.skipped[i] = ("disaggregated prefill/decode pools are not predicted yet "
                               "(the wide-EP/disaggregation issue)")
            continue
        if c.gpus % (c.tp * c.pp * c.dp):
            prep.skipped[i] = f"gpus={c.gpus} is not a multiple of tp x pp x dp"
            continue
        by_model.setdefault(c.model, []).append(i)

    for model_id, idx in by_model.items():
        model = catalog.models[model_id]
        a = arch_of(model)
        keep: list[int] = []
        for i in idx:
            c = cases[i]
            why = None
            if a.heads % c.tp:
                why = f"{a.heads} attention heads do not divide over tp={c.tp}"
            elif a.kv_split_over_tp and a.kv_heads % c.tp and c.tp % a.kv_heads:
                why = f"{a.kv_heads} KV heads do not divide over tp={c.tp}"
            elif c.ep > 1 and a.num_experts and (a.num_experts % c.ep or (c.tp * c.dp) % c.ep):
                why = f"ep={c.ep} must divide the experts and tp x dp={c.tp * c.dp}"

            if why:
                prep.skipped[i] = why
            else:
                keep.append(i)
        if not keep:
            continue
        gpus = sorted({cases[i].gpu for i in keep})
        precs = []
        prec_of: dict[int, object] = {}
        for i in keep:
            c = cases[i]
            line = release_line(c)
            if line not in engines:
                engines[line] = engine_profile_for(line)
            eng = engine_override or engines[line]
            kv = c.kv_cache or (eng.kv_cache_default.get(c.weights) if eng else None)
            try:
                p = parse_precision(c.weights, c.activations, kv)
            except UsageError as exc:
                prep.skipped[i] = exc.detail
                continue
            prec_of[i] = p
            if p not in precs:
                precs.append(p)
        keep = [i for i in keep if i not in prep.skipped]
        if not keep:
            continue
        gobj = [catalog.gpus[g] for g in gpus]
        t = tabulate(gobj, precs, resolver, None, allow_weight_only_fp4=False)
        gi = np.array([gpus.index(cases[i].gpu) for i in keep])
        qi = np.array([precs.index(prec_of[i]) for i in keep])
        runnable = t.runnable[gi, qi]
        for k, i in enumerate(keep):
            if not runnable[k]:
                prep.skipped[i] = str(t.reason[gi[k], qi[k]])
        sel = np.flatnonzero(runnable)
        if len(sel) == 0:
            continue
        keep = [keep[k] for k in sel]
        gi, qi = gi[sel], qi[sel]
        rates, _, byt = gather(t, gi, qi)
        # figures per case: the GPU's, the case's engine profile, the user's profile
        figs = {name: np.zeros(len(keep)) for name in FIGURES}
        for k, i in enumerate(keep):
            eng = engine_override or engines[release_line(cases[i])]
            vals = resolver.figures(catalog.gpus[cases[i].gpu], eng)
            vals.update(cases[i].engine_args or {})  # the run's own engine settings
            for name in FIGURES:
                figs[name][k] = vals[name]
        cs = [cases[i] for i in keep]
        lay = Layout(_arr([c.tp for c in cs]), _arr([c.pp for c in cs]), _arr([c.ep for c in cs]),
                     _arr([c.dp for c in cs]))
        g = Group(
            arch=a,
            index=np.array(keep),
            rates=rates,
            byt=byt,
            lay=lay,
            figs=figs,
            replicas=_arr([c.gpus // (c.tp * c.pp * c.dp) for c in cs]),
            scenario=np.array([c.scenario for c in cs], dtype=object),
            metric=np.array([c.metric for c in cs], dtype=object),
            isl=_arr([c.input_tokens for c in cs]),
            osl=_arr([c.output_tokens for c in cs]),
            rate=_arr([c.request_rate for c in cs]),
            conc=_arr([c.concurrency for c in cs]),
            batch=_arr([c.batch for c in cs]),
            ctx=_arr([c.context_tokens for c in cs]),
            nreq=_arr([c.num_requests for c in cs], fill=0.0),
            stat=np.array([c.stat for c in cs], dtype=object),
            gpu_ids=np.array([c.gpu for c in cs], dtype=object),
            engines=np.array([engine_family(c.engine) or "default" for c in cs], dtype=object),
            lengths=_objects([c.lengths or _uniform_pairs(c) for c in cs]),
        )
        # memory: a layout whose weights (or one sequence's KV cache) do not fit is skipped
        f = Figs(g.figs)
        need = np.where(np.isin(g.scenario, ["decode_step"]), g.ctx, g.isl + g.osl)
        need = np.where(g.scenario == "prefill", g.isl, need)
        seqs = np.where(np.isin(g.scenario, ["batch", "prefill", "decode_step"]), g.batch, 1.0)
        # a concurrency beyond what the KV pool holds queues in the engine (the batch cap is
        # the pool's, queueing.closed_loop and the simulation wait for slots): one sequence
        # must fit
        budget = kv_budget_per_gpu(a, lay, byt, f, rates)
        fits = budget >= seqs * kv_bytes_per_sequence(a, lay, byt, need)
        for k in np.flatnonzero(~fits):
            prep.skipped[keep[k]] = (
                f"does not fit: {budget[k] / 2**30:.1f} GiB left for KV cache per GPU after "
                f"weights (tp={cs[k].tp}, pp={cs[k].pp}, {cs[k].weights})"
            )
        if not fits.all():
            sel = np.flatnonzero(fits)
            g = _subset(g, sel)
        if len(g.index):
            prep.groups.append(g)
    return prep


def _uniform_pairs(c: Case, n: int = 32) -> tuple[tuple[float, float], ...] | None:
    """``n`` equally weighted (input, output) pairs for lengths drawn uniformly and
    independently from the case's integer ranges (``input_tokens_range``/``output_tokens_range``,
    as a benchmark client's random dataset draws them): midpoints of n equal-probability bins,
    the outputs in a fixed scrambled order so the pairs carry no correlation. None when the
    case gives no range."""
    if c.input_range is None and c.output_range is None:
        return None
    q = (np.arange(n) + 0.5) / n

    def grid(rng: tuple[int, int] | None, mean: float | None) -> np.ndarray:
        if rng is None:
            return np.full(n, float(mean or 1.0))
        lo, hi = rng
        return np.floor(lo + q * (hi - lo + 1))  # uniform on the integers lo..hi

    out = grid(c.output_range, c.output_tokens)[(np.arange(n) * 13) % n]  # 13 coprime to 32
    return tuple(zip(grid(c.input_range, c.input_tokens).tolist(), out.tolist()))


def _take(obj, sel: np.ndarray):  # type: ignore[no-untyped-def]
    """A dataclass of per-case arrays, keeping the cases in ``sel`` (other fields as they are)."""
    import dataclasses

    arrays = {f.name: getattr(obj, f.name)[sel] for f in dataclasses.fields(obj)
              if isinstance(getattr(obj, f.name), np.ndarray) and getattr(obj, f.name).ndim}
    return dataclasses.replace(obj, **arrays)


def _subset(g: Group, sel: np.ndarray) -> Group:
    import dataclasses

    return dataclasses.replace(
        _take(g, sel), rates=_take(g.rates, sel), byt=_take(g.byt, sel), lay=_take(g.lay, sel),
        figs={k: v[sel] for k, v in g.figs.items()})


FigureOverride = Callable[[Group], Mapping[str, np.ndarray]]


def predict_group(g: Group, figs: Mapping[str, np.ndarray] | None = None,
                  simulate: bool = True) -> np.ndarray:
    """Predicted value of each case's metric, in the metric's unit. Load scenarios (``rate``,
    ``concurrency``) use the queueing model (``infercap.queueing``); finite runs past capacity
    and offline runs of a given ``num_requests`` are simulated (``infercap.simulate``) unless
    ``simulate`` is False (calibration: NaN there)."""
    from infercap.queueing import analyse, closed_loop

    f = Figs(dict(figs) if figs is not None else g.figs)
    a, lay, b, r = g.arch, g.lay, g.byt, g.rates
    out = np.full(len(g.index), np.nan)
    sc, me = g.scenario, g.metric

    def put(mask: np.ndarray, values: np.ndarray) -> None:
        out[mask] = np.broadcast_to(values, out.shape)[mask]

    m = sc == "prefill"
    if m.any():
        t, _ = pipeline_prefill(a, lay, b, f, r, g.batch, g.isl)
        put(m & (me == "prefill_ms"), t * 1e3)
        put(m & (me == "ttft_ms"), t * 1e3)
    m = sc == "decode_step"
    if m.any():
        t, _ = pipeline_decode(a, lay, b, f, r, g.batch, g.ctx)
        t = t / lay.pp  # one iteration of the engine (every stage busy with a micro-batch)
        put(m & np.isin(me, ["decode_step_ms", "tpot_ms", "itl_ms"]), t * 1e3)
    m = sc == "batch"
    if m.any():
        s = static_batch(a, lay, b, f, r, g.batch, g.isl, g.osl)
        _serving_metrics(out, m, me, s, g.replicas, g.osl)
    m = sc == "concurrency"
    if m.any():
        for ks, e in _engines(g, f, m):
            ttft, tau, tput = closed_loop(e, g.conc[ks] / g.replicas[ks])
            _load_metrics(out, ks, me[ks], ttft, tau, tput * g.replicas[ks], g.osl[ks])
            # a benchmark client's run is a finite closed loop (num_requests, at most
            # concurrency in flight) that starts with a burst of the first concurrency prompts;
            # with equal lengths it stays in synchronized waves whatever its length, which no
            # steady state describes: simulated (a case without num_requests over
            # CLOSED_LOOP_REQUESTS_PER_SLOT x concurrency requests, the InferenceX client's
            # --num-prompts)
            if simulate:
                runs: dict[tuple, object] = {}
                for j in range(len(ks)):
                    k = ks[j]
                    key = (_config_key(e, j), float(g.conc[k] / g.replicas[k]),
                           float(g.nreq[k]))
                    if key not in runs:
                        runs[key] = _closed_run(g, e, j, k)
                    _simulated_metrics(out, k, g.metric[k], g.stat[k], runs[key],
                                       g.replicas[k], g.osl[k])
    m = sc == "offline"
    if m.any():
        batch = np.maximum(offline_batch(a, lay, b, f, r, g.isl, g.osl), 1.0)
        s = steady_state(a, lay, b, f, r, batch, g.isl, g.osl)
        _serving_metrics(out, m & (g.nreq == 0), me, s, g.replicas, g.osl)
        # a finite queue of num_requests: the burst, simulated (TTFT grows with the queue)
        burst = m & (g.nreq > 0)
        if simulate and burst.any():
            for ks, e in _engines(g, f, burst):
                for j, k in enumerate(ks):
                    _simulate_case(out, g, e, j, k, np.inf)
    m = sc == "rate"
    if m.any():
        for ks, e in _engines(g, f, m):
            lam = g.rate[ks] / g.replicas[ks]
            q = analyse(e, lam)
            ttft = np.where(q.saturated, np.nan, q.ttft_mean)
            tpot = np.where(q.saturated, np.nan, q.tpot_mean)
            _load_metrics(out, ks, me[ks], ttft, tpot, q.output_tokens_per_s * g.replicas[ks],
                          g.osl[ks])
            # percentiles from the model's distributions (docs/queueing.md)
            pct = np.isin(g.stat[ks], list(QUANTILE_OF)) & ~q.saturated
            if pct.any():
                qs = tuple(QUANTILE_OF.values())
                tt, tp = q.ttft_quantiles(qs), q.tpot_quantiles(qs)
                for j in np.flatnonzero(pct):
                    col = list(QUANTILE_OF).index(g.stat[ks[j]])
                    if me[ks[j]] == "ttft_ms":
                        out[ks[j]] = tt[j, col] * 1e3
                    elif me[ks[j]] == "tpot_ms":
                        out[ks[j]] = tp[j, col] * 1e3
            # past capacity there is no steady state: the latency grows with the run, so a
            # run of known length (num_requests) is simulated; otherwise it is not predicted
            if simulate:
                for j in np.flatnonzero(q.saturated & (g.nreq[ks] > 0)):
                    _simulate_case(out, g, e, j, ks[j], float(lam[j]))
    return out


def _simulate_case(out: np.ndarray, g: Group, e, j: int, k: int,  # type: ignore[no-untyped-def]
                   rate: float) -> None:
    """Case ``k`` (configuration ``j`` of ``e``) from a seeded simulation of its finite run:
    num_requests split evenly over the replicas, each offered ``rate`` (inf: a burst)."""
    from infercap.simulate import simulate

    per = int(np.ceil(g.nreq[k] / g.replicas[k]))
    sim = simulate(e, j, rate, requests=per, seed=0, warmup=0.0)
    _simulated_metrics(out, k, g.metric[k], g.stat[k], sim, g.replicas[k], g.osl[k])


# requests a closed-loop case without num_requests is simulated over, per request in flight
# (InferenceX's benchmark_lib.sh: --num-prompts 10 x --max-concurrency)
CLOSED_LOOP_REQUESTS_PER_SLOT = 10


def _config_key(e, j: int) -> tuple:  # type: ignore[no-untyped-def]
    """What configuration ``j`` of engine ``e`` simulates with (equal keys: equal runs)."""
    return (e.decode_s[j].tobytes(), e.decode_s_per_context[j].tobytes(), float(e.context[j]),
            e.prefill_s[j].tobytes(), float(e.batch_cap[j]), float(e.token_budget[j]),
            float(e.request_overhead_s[j]))


def _closed_run(g: Group, e, j: int, k: int):  # type: ignore[no-untyped-def]
    """A seeded simulation of case ``k``'s finite closed loop on one replica: its share of
    num_requests, at most its share of the concurrency in flight (warm-up requests were sent
    before the measured run and are not in it)."""
    from infercap.simulate import simulate

    conc = max(int(round(g.conc[k] / g.replicas[k])), 1)
    per = int(np.ceil(g.nreq[k] / g.replicas[k])) if g.nreq[k] > 0 \
        else CLOSED_LOOP_REQUESTS_PER_SLOT * conc
    return simulate(e, j, np.inf, requests=per, seed=0, warmup=0.0, concurrency=conc)


def _engines(g: Group, f: Figs, mask: np.ndarray):  # type: ignore[no-untyped-def]
    """(case positions, their queueing.Engine) for each distinct workload among the cases in
    ``mask``: the run's request lengths (lengths_csv) or its mean (input, output) pair; the
    batch cap is what the KV cache holds at the mean full length."""
    from infercap.queueing import Lengths, build_engine

    a = g.arch
    sel = np.flatnonzero(mask)
    keys = [(float(g.isl[k]), float(g.osl[k]), g.lengths[k]) for k in sel]
    for key in dict.fromkeys(keys):
        isl, osl, rows = key
        ks = sel[[k == key for k in keys]]
        sub = _subset(g, ks)
        fs = Figs({k: np.asarray(v)[ks] for k, v in f.values.items()})
        cap = np.maximum(offline_batch(a, sub.lay, sub.byt, fs, sub.rates, sub.isl, sub.osl), 1.0)
        if rows is None:
            lengths = Lengths.fixed(isl, osl)
        else:
            arr = np.array(rows, dtype=float)
            lengths = Lengths(arr[:, 0], arr[:, 1])
        yield ks, build_engine(a, sub.lay, sub.byt, fs, sub.rates, lengths, cap)


QUANTILE_OF = {"p50": 0.5, "p90": 0.9, "p99": 0.99}


def _simulated_metrics(out: np.ndarray, k: int, metric: str, stat: str, sim,  # type: ignore[no-untyped-def]
                       replicas: float, osl: float) -> None:
    """Case ``k``'s metric from a simulated run: the mean over its requests, or a percentile."""
    def agg(x: np.ndarray) -> float:
        if not len(x):
            return float("nan")
        return float(np.quantile(x, QUANTILE_OF[stat])) if stat in QUANTILE_OF else float(x.mean())

    if metric == "output_tokens_per_s":
        out[k] = sim.output_tokens_per_s * replicas
    elif metric == "ttft_ms":
        out[k] = agg(sim.ttft) * 1e3
    elif metric == "itl_ms" and stat not in QUANTILE_OF:
        out[k] = sim.itl_mean * 1e3  # token-weighted: long requests count per token
    elif metric in ("tpot_ms", "itl_ms", "decode_step_ms"):
        out[k] = agg(sim.tpot) * 1e3
    elif metric == "e2e_latency_s":
        out[k] = sim.ttft.mean() + max(osl - 1.0, 0.0) * (sim.tpot.mean() if len(sim.tpot) else 0.0)


def _load_metrics(out: np.ndarray, ks: np.ndarray, me: np.ndarray, ttft: np.ndarray,
                  tpot: np.ndarray, tput: np.ndarray, osl: np.ndarray) -> None:
    """Write a load scenario's metrics (seconds in, the metric's unit out) for cases ``ks``."""
    vals = np.full(len(ks), np.nan)
    vals = np.where(me == "output_tokens_per_s", tput, vals)
    vals = np.where(me == "ttft_ms", ttft * 1e3, vals)
    vals = np.where(np.isin(me, ["tpot_ms", "itl_ms", "decode_step_ms"]), tpot * 1e3, vals)
    vals = np.where(me == "e2e_latency_s", ttft + np.maximum(osl - 1.0, 0.0) * tpot, vals)
    out[ks] = vals


def _serving_metrics(out: np.ndarray, mask: np.ndarray, me: np.ndarray, s,  # type: ignore[no-untyped-def]
                     replicas: np.ndarray, osl: np.ndarray) -> None:
    """A ``serving.Serving`` result's metrics for the cases in ``mask`` (as ``_load_metrics``;
    a prefill_ms of these scenarios is their TTFT)."""
    ks = np.flatnonzero(mask)
    n = out.shape
    ttft = np.broadcast_to(s.ttft, n)[ks]
    _load_metrics(out, ks, me[ks], ttft, np.broadcast_to(s.tpot, n)[ks],
                  np.broadcast_to(s.output_tokens_per_s * replicas, n)[ks], osl[ks])
    pre = me[ks] == "prefill_ms"
    out[ks[pre]] = ttft[pre] * 1e3


def predict(prep: Prepared, override: FigureOverride | None = None,
            simulate: bool = True) -> np.ndarray:
    """Predictions for all prepared cases (NaN where skipped or not predicted)."""
    out = np.full(len(prep.cases), np.nan)
    for g in prep.groups:
        figs = override(g) if override else None
        out[g.index] = predict_group(g, figs, simulate)
    return out


@dataclass(frozen=True)
class Row:
    case: Case
    predicted: float | None
    error_pct: float | None
    skipped: str | None


def score(prep: Prepared, predicted: np.ndarray) -> list[Row]:
    rows = []
    for i, c in enumerate(prep.cases):
        if i in prep.skipped:
            rows.append(Row(c, None, None, prep.skipped[i]))
            continue
        p = float(predicted[i])
        if not np.isfinite(p) or p <= 0:
            why = "the model gives no finite prediction"
            if c.scenario == "rate":
                why = ("offered rate at or past the modelled capacity: no steady state, the "
                       "latency grows with the run; give num_requests to simulate the run")
            rows.append(Row(c, None, None, why))
            continue
        rows.append(Row(c, p, (p - c.value) / c.value * 100.0, None))
    return rows


@dataclass(frozen=True)
class Summary:
    key: tuple[str, ...]
    count: int
    skipped: int
    mdape_pct: float
    bias_pct: float
    within_20_pct: float


def summarise(rows: Sequence[Row], by: Sequence[str]) -> list[Summary]:
    """Median absolute % error, mean signed % error and share within +-20% per group."""
    groups: dict[tuple[str, ...], list[Row]] = {}
    for r in rows:
        key = tuple(str(getattr(r.case, k) or "-") for k in by)
        groups.setdefault(key, []).append(r)
    out = []
    for key in sorted(groups):
        rs = groups[key]
        errs = np.array([r.error_pct for r in rs if r.error_pct is not None])
        skipped = sum(1 for r in rs if r.skipped)
        if len(errs):
            out.append(Summary(key, len(errs), skipped, float(np.median(np.abs(errs))),
                               float(np.mean(errs)), float(np.mean(np.abs(errs) <= 20) * 100)))
        else:
            out.append(Summary(key, 0, skipped, float("nan"), float("nan"), float("nan")))
    return out


def target_rows(rows: Sequence[Row]) -> list[Row]:
    """The rows that belong to an accuracy-target group, relabelled with the group as metric
    (so ``summarise(target_rows(rows), ["metric"])`` scores the targets)."""
    import dataclasses

    out = []
    for r in rows:
        g = target_group(r.case)
        if g:
            out.append(dataclasses.replace(r, case=dataclasses.replace(r.case, metric=g)))
    return out


SERVED_ENGINES = ("trtllm", "vllm", "sglang")


def is_served_run(c: Case) -> bool:
    """A benchmark client's closed-loop run against an engine's HTTP server, as InferenceX and
    NVIDIA record them: a ``concurrency`` case that names the engine's release or the client's
    run (num_requests, length ranges)."""
    return (c.scenario == "concurrency" and engine_family(c.engine) in SERVED_ENGINES
            and bool(c.engine_version or c.num_requests or c.input_range))


def target_group(c: Case) -> str | None:
    """The accuracy-target group a case belongs to (issue targets), or None."""
    if c.metric == "decode_step_ms":
        return "decode_step_ms"
    if c.metric == "prefill_ms" and (c.input_tokens or 0) * 1 >= 2048:
        return "prefill_ms (>= 2048 tokens)"
    if c.scenario == "offline" and c.metric == "output_tokens_per_s":
        return "offline output_tokens_per_s"
    if is_served_run(c) and c.metric in ("ttft_ms", "tpot_ms") and c.disaggregated is None:
        return f"served {c.metric} {engine_family(c.engine)}"
    if c.metric in ("ttft_ms", "tpot_ms", "itl_ms") and not is_served_run(c):
        return "ttft/tpot/itl"
    return None


# median absolute % error each target group must reach (issues 4 and 12)
TARGETS = {
    "decode_step_ms": 10.0,
    "prefill_ms (>= 2048 tokens)": 10.0,
    "offline output_tokens_per_s": 15.0,
    "ttft/tpot/itl": 20.0,
    **{f"served ttft_ms {e}": 25.0 for e in SERVED_ENGINES},
    **{f"served tpot_ms {e}": 12.0 for e in SERVED_ENGINES},
}
