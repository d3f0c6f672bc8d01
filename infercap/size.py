"""``infercap size``: the cheapest deployment per GPU that meets a scenario's SLOs at peak.

For every GPU x precision x layout (every factorisation of 1..max_gpus_per_instance GPUs), the
replica runs with the batch cap its KV cache allows (at most the engine's ``max_batch_size``).
The queueing model (``queueing.analyse``) gives the highest request rate one replica serves with
every SLO percentile met (bisection on the rate, vectorised over configurations); replicas =
ceil(peak / that rate). Costs follow from the GPU count and price; $/M tokens are at the average
traffic (the fleet is paid for at peak size all month).

Disaggregated serving (``mode = disaggregated``): a prefill pool (engines with output length 1)
and a decode pool (engines with no prompt work: the KV cache arrives from the prefill pool), each
with its own layout and replica count, on the same GPU type. TTFT = prefill-pool TTFT + KV
transfer + the decode pool's first iteration; the TTFT SLO goes to the prefill pool after the
other two are taken off, the TPOT SLO to the decode pool.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from infercap.arch import arch_of
from infercap.catalog import GPU, Catalog, Model
from infercap.errors import UsageError
from infercap.inputs import gather, tabulate
from infercap.perf import Layout, link_bandwidth
from infercap.precision import PRESETS
from infercap.profile import Profile, Resolver
from infercap.queueing import Engine, Lengths, Queue, analyse, build_engine, capacity
from infercap.scenario import HOURS_PER_MONTH, Scenario

QS = (0.5, 0.9, 0.99)
MAX_UTILISATION = 0.95  # never plan a replica above this share of its capacity
BISECTION_STEPS = 22
# p99/mean of the request lengths from which the analytical p99s are not trusted alone: the
# chosen aggregated deployments are checked by simulation (docs/queueing.md, heavy tails)
HEAVY_TAIL_RATIO = 3.0

COLUMNS = (
    "model", "gpu", "mode", "precision", "tp", "pp", "dp", "ep", "gpus_per_instance",
    "batch_cap", "replicas", "gpus", "prefill_layout", "prefill_gpus", "decode_gpus",
    "usd_per_hour", "usd_per_month", "price_type", "usd_per_m_input_tokens",
    "usd_per_m_output_tokens", "usd_per_m_blended_tokens", "utilisation_average",
    "utilisation_peak", "headroom_pct", "mean_batch_peak", "ttft_p50_ms", "ttft_p90_ms",
    "ttft_p99_ms", "tpot_p50_ms", "tpot_p90_ms", "tpot_p99_ms", "kv_transfer_ms",
    "meets_budget", "best",
)


@dataclass
class Sized:
    rows: list[dict[str, object]]
    notes: list[str] = field(default_factory=list)
    engines: dict[int, tuple[Engine, float]] = field(default_factory=dict)  # row -> (engine, rate)
    simulated: set[int] = field(default_factory=set)  # rows whose replicas a simulation checked


@dataclass(frozen=True)
class Pool:
    """Flat candidate configurations of one model (arrays over C)."""

    gi: np.ndarray
    qi: np.ndarray
    lay: Layout
    engine: Engine
    price: np.ndarray  # USD per GPU-hour after overrides/discount
    precision: np.ndarray  # preset name per configuration
    kv_bytes: np.ndarray  # bytes per KV-cache element per configuration
    rates: object  # perf.Rates per configuration
    figs: object  # perf.Figs per configuration

    def take(self, sel: np.ndarray) -> "Pool":
        from infercap.perf import Figs, Rates

        r = self.rates
        return Pool(self.gi[sel], self.qi[sel],
                    Layout(*(getattr(self.lay, k)[sel] for k in ("tp", "pp", "ep", "dp"))),
                    self.engine.take(sel), self.price[sel], self.precision[sel],
                    self.kv_bytes[sel],
                    Rates(*(getattr(r, k)[sel] for k in r.__dataclass_fields__)),  # type: ignore[attr-defined]
                    Figs({k: v[sel] for k, v in self.figs.values.items()}))  # type: ignore[attr-defined]


def _precisions(s: Scenario, model: Model) -> list:
    names = list(s.precisions) or ["bf16", "fp8", "fp4"]
    if not s.precisions and model.default_weights in PRESETS and model.default_weights not in names:
        names.append(model.default_weights)
    out = []
    for n in names:
        if n not in PRESETS:
            raise UsageError(f"expected one of {', '.join(PRESETS)}, got {n!r}",
                             file=s.path, key="precisions")
        out.append(PRESETS[n])
    return out


def _counts(limit: int) -> list[int]:
    c, out = 1, []
    while c <= limit:
        out.append(c)
        c *= 2
    if limit not in out:
        out.append(limit)
    return out


def _prices(s: Scenario, gpus: Sequence[GPU]) -> np.ndarray:
    out = []
    for g in gpus:
        if g.id in s.price_overrides:
            out.append(float(s.price_overrides[g.id]))
        else:
            out.append(g.price.usd_per_gpu_hour * (1.0 - s.discount))
    return np.array(out)


def _slo_ok(q: Queue, s: Scenario, ttft_extra: np.ndarray | float = 0.0,
            ttft: bool = True, tpot: bool = True) -> np.ndarray:
    """Every SLO percentile met (CDF at the limit reaches the percentile)."""
    ok = ~q.saturated
    if ttft:
        for pct, limit_ms in s.ttft_ms.items():
            x = (limit_ms * 1e-3 - np.broadcast_to(ttft_extra, ok.shape))[:, None]
            ok &= q.ttft_cdf(x)[:, 0] >= float(pct[1:]) / 100.0 - 1e-9
    if tpot:
        for pct, limit_ms in s.tpot_ms.items():
            x = np.full((len(ok), 1), limit_ms * 1e-3)
            ok &= q.tpot_cdf(x)[:, 0] >= float(pct[1:]) / 100.0 - 1e-9
        if s.min_tokens_per_s_per_user:
            ok &= q.tpot_mean <= 1.0 / s.min_tokens_per_s_per_user
    return ok


def slo_rate(e: Engine, s: Scenario, ttft_extra: np.ndarray | float = 0.0, ttft: bool = True,
             tpot: bool = True, slot_wait_max: float | None = None) -> np.ndarray:
    """Highest rate per replica meeting the SLOs (bisection; SLO metrics grow with load), at
    most MAX_UTILISATION of capacity; 0 where even a trickle misses them."""
    cap = capacity(e) * MAX_UTILISATION
    extra = np.broadcast_to(np.asarray(ttft_extra, dtype=float), cap.shape)

    def ok(rate: np.ndarray) -> np.ndarray:
        q = analyse(e, rate)
        good = _slo_ok(q, s, extra, ttft, tpot)
        if slot_wait_max is not None:
            good &= q.slot_wait_prob <= slot_wait_max
        return good

    lo = np.zeros_like(cap)
    hi = cap.copy()
    top = ok(hi)
    lo = np.where(top, hi, lo)
    floor = ok(cap * 1e-3)
    for _ in range(BISECTION_STEPS):
        mid = (lo + hi) / 2
        good = ok(mid)
        lo = np.where(good, mid, lo)
        hi = np.where(good, hi, mid)
    return np.where(top, cap, np.where(floor, lo, 0.0))


def _pool(model: Model, gpus: Sequence[GPU], s: Scenario, resolver: Resolver,
          engine: Profile | None, lengths: Lengths, mode: str) -> Pool | None:
    """Candidates for one pool: 'aggregated', 'prefill' (output 1) or 'decode' (no prompts)."""
    from infercap.sweep import layouts_for_counts, offered

    a = arch_of(model)
    precs = _precisions(s, model)
    lays = layouts_for_counts(model, _counts(s.max_gpus_per_instance))
    t = tabulate(gpus, precs, resolver, engine)
    if not len(lays.tp):
        return None
    ctx = lengths.mean_input + (1.0 if mode == "prefill" else lengths.mean_output)
    gi, qi, lay, fit = offered(a, t, lays, ctx)
    sel = np.flatnonzero(fit >= 1)
    if not len(sel):
        return None
    gi, qi = gi[sel], qi[sel]
    rates, figs, byt = gather(t, gi, qi)
    lay = Layout(lay.tp[sel], lay.pp[sel], lay.ep[sel], lay.dp[sel])
    use = lengths if mode != "prefill" else Lengths(lengths.input, np.ones_like(lengths.input))
    e = build_engine(a, lay, byt, figs, rates, use, fit[sel],
                     cached_fraction=s.prefix_cache_hit_rate, prefill=mode != "decode")
    price = _prices(s, gpus)[gi]
    names = np.array([p.name for p in precs], dtype=object)[qi]
    return Pool(gi, qi, lay, e, price, names, t.kv_bytes[qi], rates, figs)


def _layout_text(lay: Layout, i: int) -> str:
    txt = f"tp{int(lay.tp[i])}"
    if lay.pp[i] > 1:
        txt += f"pp{int(lay.pp[i])}"
    if lay.dp[i] > 1:
        txt += f"dp{int(lay.dp[i])}"
    if lay.ep[i] > 1:
        txt += f"ep{int(lay.ep[i])}"
    return txt


def size_model(model: Model, gpus: Sequence[GPU], s: Scenario, resolver: Resolver,
               engine: Profile | None) -> Sized:
    lengths = s.lengths()
    out = Sized([])
    peak, avg = s.peak_rps, s.average_rps
    isl, osl = lengths.mean_input, lengths.mean_output
    modes = ("aggregated", "disaggregated") if s.serving == "both" else (s.serving,)
    heavy = s.tail_ratio() >= HEAVY_TAIL_RATIO  # check the chosen replicas by simulation
    price_type = None  # each row's GPU: price_type_of
    qs = slo_quantiles(s)

    def finish(row: dict, cost_h: float, input_share: float) -> dict:
        tok_h = avg * 3600.0
        row["usd_per_hour"] = cost_h
        row["usd_per_month"] = cost_h * HOURS_PER_MONTH
        row["usd_per_m_input_tokens"] = cost_h * input_share / (tok_h * isl) * 1e6
        row["usd_per_m_output_tokens"] = cost_h * (1 - input_share) / (tok_h * osl) * 1e6
        row["usd_per_m_blended_tokens"] = cost_h / (tok_h * (isl + osl)) * 1e6
        return row

    if "aggregated" in modes:
        pool = _pool(model, gpus, s, resolver, engine, lengths, "aggregated")
        if pool is not None:
            rate = slo_rate(pool.engine, s)
            best = _cheapest(pool, rate, peak, s)
            for g, i in best.items():
                reps = int(np.ceil(peak / rate[i] - 1e-9))
                if heavy:
                    # heavy tails: the analytical p99s run low (docs/queueing.md); add replicas
                    # until a seeded simulation at peak meets the SLO percentiles too
                    reps = _simulated_replicas(pool.engine.take(np.array([i])), reps, peak, s,
                                               int(pool.lay.gpus[i]))
                    if reps is None:
                        out.notes.append(f"{gpus[int(pool.gi[i])].id}: heavy-tailed lengths: no "
                                         "replica count within the limits meets the SLOs in "
                                         "simulation")
                        continue
                    out.notes.append(f"{gpus[int(pool.gi[i])].id}: heavy-tailed lengths: "
                                     f"{reps} replicas checked by simulation (analytical: "
                                     f"{int(np.ceil(peak / rate[i] - 1e-9))})")
                e1 = pool.engine.take(np.array([i, i]))
                q = analyse(e1, np.array([peak / reps, avg / reps]))
                tq, pq = q.ttft_quantiles(qs)[0] * 1e3, q.tpot_quantiles(qs)[0] * 1e3
                m1 = float(pool.engine.prefill_s[i].mean())
                dec = float(q.tpot_mean[1]) * osl / max(float(q.mean_batch[1]), 1.0)
                per_inst = int(pool.lay.gpus[i])
                row = _base_row(model, gpus[int(pool.gi[i])], pool, i, "aggregated", price_type,
                                s)
                row.update(gpus_per_instance=per_inst, batch_cap=int(pool.engine.batch_cap[i]),
                           replicas=reps, gpus=reps * per_inst, prefill_layout="",
                           prefill_gpus=0, decode_gpus=0,
                           utilisation_average=float(q.utilisation[1]),
                           utilisation_peak=float(q.utilisation[0]),
                           headroom_pct=(reps * rate[i] / peak - 1) * 100,
                           mean_batch_peak=float(q.mean_batch[0]), kv_transfer_ms=0.0,
                           **_pcts(tq, pq, qs))
                out.rows.append(finish(row, reps * per_inst * float(pool.price[i]),
                                       m1 / (m1 + dec)))
                out.engines[len(out.rows) - 1] = (pool.engine.take(np.array([i])), peak / reps)
                if heavy:
                    out.simulated.add(len(out.rows) - 1)

    if "disaggregated" in modes:
        dec_pool = _pool(model, gpus, s, resolver, engine, lengths, "decode")
        pre_pool = _pool(model, gpus, s, resolver, engine, lengths, "prefill")
        if dec_pool is not None and pre_pool is not None:
            # decode pool: TPOT SLOs, and arrivals rarely wait for a slot
            d_rate = slo_rate(dec_pool.engine, s, ttft=False, slot_wait_max=0.01)
            d_best = _cheapest(dec_pool, d_rate, peak, s)
            a = arch_of(model)
            for g, j in d_best.items():
                d_reps = int(np.ceil(peak / d_rate[j] - 1e-9))
                d_analytical = d_reps
                if heavy:
                    d_reps = _simulated_replicas(dec_pool.engine.take(np.array([j])), d_reps,
                                                 peak, s, int(dec_pool.lay.gpus[j]), ttft=False)
                    if d_reps is None:
                        continue
                dq = analyse(dec_pool.engine.take(np.array([j, j])),
                             np.array([peak / d_reps, avg / d_reps]))
                first = float(dq.tpot_mean[0])  # the decode pool's first iteration
                # KV transfer from a prefill instance to a decode instance: the prompt's cache
                # over the fabric linking them (scale-up inside one domain, else each GPU's NIC)
                sel = np.flatnonzero(pre_pool.gi == dec_pool.gi[j])
                if not len(sel):
                    continue
                sub = pre_pool.take(sel)
                kv_b = np.array([a.kv_bytes_per_token(float(x)) for x in sub.kv_bytes]) * isl
                span = sub.lay.gpus + dec_pool.lay.gpus[j]
                bw = link_bandwidth(sub.figs, sub.rates, span) * sub.lay.gpus
                transfer = kv_b / bw + sub.figs.collective_latency_us * 1e-6
                p_rate = slo_rate(sub.engine, s, ttft_extra=transfer + first, tpot=False)
                p_best = _cheapest(sub, p_rate, peak, s)
                if g not in p_best:
                    continue
                k = p_best[g]
                p_reps = int(np.ceil(peak / p_rate[k] - 1e-9))
                p_analytical = p_reps
                if heavy:
                    p_reps = _simulated_replicas(
                        sub.engine.take(np.array([k])), p_reps, peak, s, int(sub.lay.gpus[k]),
                        tpot=False, ttft_extra_s=float(transfer[k]) + first)
                    if p_reps is None:
                        continue
                pq = analyse(sub.engine.take(np.array([k, k])),
                             np.array([peak / p_reps, avg / p_reps]))
                t_tr = float(transfer[k])
                tq = pq.ttft_quantiles(qs)[0] * 1e3 + (t_tr + first) * 1e3
                tp_q = dq.tpot_quantiles(qs)[0] * 1e3
                p_gpus = p_reps * int(sub.lay.gpus[k])
                d_gpus = d_reps * int(dec_pool.lay.gpus[j])
                if s.max_gpus and p_gpus + d_gpus > s.max_gpus:
                    continue
                row = _base_row(model, gpus[int(dec_pool.gi[j])], dec_pool, j, "disaggregated",
                                price_type, s)
                headroom = min(p_reps * p_rate[k], d_reps * d_rate[j]) / peak - 1
                row.update(gpus_per_instance=int(dec_pool.lay.gpus[j]),
                           batch_cap=int(dec_pool.engine.batch_cap[j]), replicas=d_reps,
                           gpus=p_gpus + d_gpus,
                           prefill_layout=f"{p_reps}x {_layout_text(sub.lay, k)} "
                                          f"{sub.precision[k]}",
                           prefill_gpus=p_gpus, decode_gpus=d_gpus,
                           utilisation_average=float(max(pq.utilisation[1], dq.utilisation[1])),
                           utilisation_peak=float(max(pq.utilisation[0], dq.utilisation[0])),
                           headroom_pct=headroom * 100, mean_batch_peak=float(dq.mean_batch[0]),
                           kv_transfer_ms=t_tr * 1e3, **_pcts(tq, tp_q, qs))
                cost = p_gpus * float(sub.price[k]) + d_gpus * float(dec_pool.price[j])
                out.rows.append(finish(row, cost, p_gpus * float(sub.price[k]) / cost))
                if heavy:
                    out.simulated.add(len(out.rows) - 1)
                    out.notes.append(f"{gpus[int(dec_pool.gi[j])].id}: heavy-tailed lengths: "
                                     f"disaggregated {p_reps} prefill + {d_reps} decode "
                                     "replicas checked by simulation (analytical: "
                                     f"{p_analytical} + {d_analytical})")
    return out


def slo_quantiles(s: Scenario) -> tuple[float, ...]:
    """The quantiles a sizing reports: p50/p90/p99 and every percentile an SLO names."""
    from infercap.scenario import percentile_of

    extra = {percentile_of(k) for k in (*s.ttft_ms, *s.tpot_ms)}
    return tuple(sorted(set(QS) | {q for q in extra if q is not None}))


def pct_name(q: float) -> str:
    """0.5 -> 'p50', 0.95 -> 'p95', 0.999 -> 'p99.9'."""
    return "p" + f"{q * 100:.3f}".rstrip("0").rstrip(".")


def columns(s: Scenario) -> tuple[str, ...]:
    """COLUMNS with a TTFT and TPOT column for every reported quantile (p95 SLO: p95 too)."""
    qs = slo_quantiles(s)
    i = COLUMNS.index("ttft_p50_ms")
    pcts = tuple(f"{m}_{pct_name(q)}_ms" for m in ("ttft", "tpot") for q in qs)
    return COLUMNS[:i] + pcts + COLUMNS[i + 6:]


def _pcts(tq: np.ndarray, pq: np.ndarray, qs: tuple[float, ...]) -> dict[str, float]:
    out = {f"ttft_{pct_name(q)}_ms": float(v) for q, v in zip(qs, tq)}
    out.update({f"tpot_{pct_name(q)}_ms": float(v) for q, v in zip(qs, pq)})
    return out


def _base_row(model: Model, gpu: GPU, pool: Pool, i: int, mode: str, price_type: str | None,
              s: Scenario) -> dict[str, object]:
    return {"model": model.id, "gpu": gpu.id, "mode": mode,
            "precision": str(pool.precision[i]),
            "tp": int(pool.lay.tp[i]), "pp": int(pool.lay.pp[i]), "dp": int(pool.lay.dp[i]),
            "ep": int(pool.lay.ep[i]),
            "price_type": price_type or price_type_of(s, gpu)}


def price_type_of(s: Scenario, gpu: GPU) -> str:
    """The price type of ``gpu``'s price in this scenario: the scenario's type where its
    discount or its own price for this GPU applies (_prices), else the catalog's (a partial
    usd_per_gpu_hour override leaves the other GPUs at their catalog price and type)."""
    if s.discount or gpu.id in s.price_overrides:
        return s.price_type
    return gpu.price.type


def _cheapest(pool: Pool, rate: np.ndarray, peak: float, s: Scenario) -> dict[int, int]:
    """Per GPU index: the configuration with the lowest $/hour for the peak (ties: fewer GPUs,
    then more headroom)."""
    ok = rate > 0
    reps = np.where(ok, np.ceil(peak / np.where(ok, rate, 1.0) - 1e-9), np.inf)
    gpus_total = reps * pool.lay.gpus
    if s.max_gpus:
        ok &= gpus_total <= s.max_gpus
    cost = np.where(ok, gpus_total * pool.price, np.inf)
    headroom = np.where(ok, np.where(ok, reps, 0.0) * rate / peak, 0.0)
    order = np.lexsort((-headroom, gpus_total, cost))
    best: dict[int, int] = {}
    for i in order:
        if not ok[i]:
            break
        best.setdefault(int(pool.gi[i]), int(i))
    return best


def _mark(rows: list[dict[str, object]], s: Scenario) -> None:
    for r in rows:
        r["meets_budget"] = not budget_breaches(r, s)
    cheapest = min((r for r in rows), key=lambda r: float(r["usd_per_hour"]), default=None)
    for r in rows:
        r["best"] = r is cheapest


def budget_breaches(row: dict[str, object], s: Scenario) -> list[tuple[str, float, float]]:
    """(limit, value, threshold) for every budget limit the row breaks."""
    out = []
    for key, col in (("max_usd_per_month", "usd_per_month"),
                     ("max_usd_per_m_tokens", "usd_per_m_blended_tokens"),
                     ("max_usd_per_m_output_tokens", "usd_per_m_output_tokens")):
        limit = getattr(s, key)
        if limit is not None and float(row[col]) > limit:  # type: ignore[arg-type]
            out.append((f"budget.{key}", float(row[col]), float(limit)))  # type: ignore[arg-type]
    return out


def _simulated_replicas(e, reps: int, peak: float, s: Scenario,  # type: ignore[no-untyped-def]
                        per_instance: int, **which: object) -> int | None:
    """The fewest replicas, from ``reps`` up, whose share of the peak meets the SLO
    percentiles in simulation (``which``: simulated_breaches' metric switches); None past the
    GPU limit or four times ``reps``."""
    for n in range(reps, 4 * reps + 1):
        if s.max_gpus and n * per_instance > s.max_gpus:
            return None
        if not simulated_breaches(e, peak / n, s, **which):  # type: ignore[arg-type]
            return n
    return None


def simulated_breaches(e, rate: float, s: Scenario,  # type: ignore[no-untyped-def]
                       requests: int = 6000, ttft: bool = True, tpot: bool = True,
                       ttft_extra_s: float = 0.0, sim=None) -> list[tuple[str, float, float]]:
    """(limit, simulated value, threshold) for every TTFT/TPOT percentile SLO that a seeded
    discrete-event simulation of configuration 0 of engine ``e`` at ``rate`` breaks (ms).
    ``ttft``/``tpot`` choose the SLOs checked (a disaggregated pool serves one of them);
    ``ttft_extra_s`` is added to every simulated TTFT (KV transfer, first decode step);
    ``sim``: a simulation of it already run (simulate.simulate's result), else one is run."""
    from infercap.simulate import simulate

    from infercap.scenario import percentile_of

    if sim is None:
        sim = simulate(e, 0, rate, requests=requests, seed=0)
    out = []
    checks = ([("ttft_ms", sim.ttft + ttft_extra_s)] if ttft else []) + \
        ([("tpot_ms", sim.tpot)] if tpot else [])
    for metric, values in checks:
        for stat, limit in getattr(s, metric).items():
            q = percentile_of(stat)
            if q is not None and len(values):
                got = float(np.quantile(values, q)) * 1e3
                if got > float(limit):
                    out.append((f"slo.{metric}.{stat} (simulated)", got, float(limit)))
    return out


def size(s: Scenario, catalog: Catalog, resolver: Resolver, engine: Profile | None) -> Sized:
    """Size every model of the scenario on every candidate GPU; rows sorted by $/hour."""
    gpu_ids = s.gpus or sorted(catalog.gpus)
    for g in gpu_ids:
        if g not in catalog.gpus:
            raise UsageError(f"unknown GPU id {g!r} (see `infercap gpus`)", file=s.path,
                             key="gpus")
    for g in s.price_overrides:
        if g not in catalog.gpus:
            raise UsageError(f"unknown GPU id {g!r} (see `infercap gpus`)", file=s.path,
                             key=f"pricing.usd_per_gpu_hour.{g}")
    from infercap.profile import engine_split

    gpus, note = engine_split(engine, [catalog.gpus[g] for g in gpu_ids])
    if not gpus:
        raise UsageError(f"no GPU left: {note}", file=s.path, key="gpus" if s.gpus else "engine")
    out = Sized([], notes=[note] if note else [])
    for m in s.models:
        if m not in catalog.models:
            raise UsageError(f"unknown model id {m!r} (see `infercap models`)", file=s.path,
                             key="models" if len(s.models) > 1 else "model")
        model = catalog.models[m]
        part = size_model(model, gpus, s, resolver, engine)
        got = {r["gpu"] for r in part.rows}
        missing = [g.id for g in gpus if g.id not in got]
        if missing and part.rows:  # none at all: the caller says so (and diagnoses it)
            part.notes.append(f"{', '.join(missing)}: no {m} deployment meets the SLOs within "
                              "the limits")
        base = len(out.rows)
        out.rows += part.rows
        out.notes += part.notes
        out.engines.update({base + k: v for k, v in part.engines.items()})
        out.simulated |= {base + k for k in part.simulated}
    order = sorted(range(len(out.rows)), key=lambda i: float(out.rows[i]["usd_per_hour"]))
    out.engines = {order.index(k): v for k, v in out.engines.items()}
    out.simulated = {order.index(k) for k in out.simulated}
    out.rows = [out.rows[i] for i in order]
    _mark(out.rows, s)
    return out


def diagnose(s: Scenario, catalog: Catalog, resolver: Resolver,
             engine: Profile | None) -> list[tuple[str, float, float, str]]:
    """When nothing meets the SLOs: (limit, best value any configuration reaches at a trickle
    of load, threshold, the model, GPU and layout that reach it) for each SLO that no
    configuration can meet even alone."""
    from infercap.profile import engine_split

    gpus = engine_split(engine, [catalog.gpus[g] for g in (s.gpus or sorted(catalog.gpus))])[0]
    out: dict[str, tuple[float, float, str]] = {}
    for m in s.models:
        lengths = s.lengths()
        for mode in ("aggregated", "decode"):
            pool = _pool(catalog.models[m], gpus, s, resolver, engine, lengths, mode)
            if pool is None:
                continue
            q = analyse(pool.engine, capacity(pool.engine) * 0.01)
            checks = [] if mode == "decode" else [
                (f"slo.ttft_ms.{p}", q.ttft_quantiles((float(p[1:]) / 100,))[:, 0] * 1e3, v)
                for p, v in s.ttft_ms.items()]
            checks += [(f"slo.tpot_ms.{p}", q.tpot_quantiles((float(p[1:]) / 100,))[:, 0] * 1e3,
                        v) for p, v in s.tpot_ms.items()]
            if s.min_tokens_per_s_per_user:
                checks.append(("slo.min_tokens_per_s_per_user", -1.0 / q.tpot_mean,
                               -s.min_tokens_per_s_per_user))
            for key, vals, limit in checks:
                k = int(np.argmin(vals))
                best = float(vals[k])
                if key not in out or best < out[key][0]:
                    where = (f"{m} on {gpus[int(pool.gi[k])].id} {_layout_text(pool.lay, k)} "
                             f"{pool.precision[k]}" + (" (decode pool)" if mode == "decode"
                                                       else ""))
                    out[key] = (best, float(limit), where)
    return [(k, abs(v), abs(t), w) for k, (v, t, w) in out.items() if v > t]


def pareto_points(s: Scenario, catalog: Catalog, resolver: Resolver,
                  engine: Profile | None) -> list[dict[str, object]]:
    """Per GPU: the frontier of output tokens/s per GPU against tokens/s per user, over every
    aggregated configuration at loads from 5% to 95% of its capacity (mean TPOT)."""
    from infercap.profile import engine_split

    gpus = engine_split(engine, [catalog.gpus[g] for g in (s.gpus or sorted(catalog.gpus))])[0]
    loads = np.linspace(0.05, 0.95, 19)
    out: list[dict[str, object]] = []
    for m in s.models:
        pool = _pool(catalog.models[m], gpus, s, resolver, engine, s.lengths(), "aggregated")
        if pool is None:
            continue
        C = len(pool.gi)
        idx = np.repeat(np.arange(C), len(loads))
        e = pool.engine.take(idx)
        q = analyse(e, capacity(e) * np.tile(loads, C))
        user = 1.0 / q.tpot_mean
        per_gpu = q.output_tokens_per_s / pool.lay.gpus[idx]
        for gi in np.unique(pool.gi):
            sel = np.flatnonzero(pool.gi[idx] == gi)
            order = sel[np.lexsort((-per_gpu[sel], -user[sel]))]
            best = -np.inf
            for k in order:
                if per_gpu[k] > best:
                    best = per_gpu[k]
                    i = idx[k]
                    out.append({"model": m, "gpu": gpus[int(gi)].id,
                                "precision": str(pool.precision[i]), "tp": int(pool.lay.tp[i]),
                                "pp": int(pool.lay.pp[i]), "dp": int(pool.lay.dp[i]),
                                "ep": int(pool.lay.ep[i]),
                                "utilisation": float(q.utilisation[k]),
                                "tokens_per_s_per_user": float(user[k]),
                                "output_tokens_per_s_per_gpu": float(per_gpu[k]),
                                "tpot_ms": float(q.tpot_mean[k] * 1e3),
                                "ttft_ms": float(q.ttft_mean[k] * 1e3)})
    return out
