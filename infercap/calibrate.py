"""Fit the named efficiency figures to measured cases.

Least squares on the log error (a case 20% high weighs like one 20% low, whatever its unit),
with a soft-L1 robust loss so that a few odd measurements cannot drag every figure, and bounds
that keep each figure physical (no efficiency above 1). The solver is a small bounded
Levenberg-Marquardt on a finite-difference Jacobian: a handful of parameters, each a named
figure with a meaning — never one per case.

Which figures are fitted:
- engine-wide (written to the profile's ``figures``): per-layer overhead, scheduler step
  overhead, activation traffic passes, collective latency and link efficiency, attention
  efficiency, and the host/attention figures of engines that need them;
- per GPU (written under ``gpus:``), for every GPU with at least ``MIN_CASES_PER_GPU`` cases
  (others share one engine-wide value): GEMM peak fraction per precision class in use, and
  memory-bandwidth fraction.

A parameter the cases are insensitive to is left at its prior value and reported as such.
Over-fitting check: cases are split in two by a seeded hash of their configuration (every load
point of one deployment on the same side); the figures are
fitted on one half and the error reported on the other, then refitted on all cases.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, Sequence

import numpy as np

from infercap.catalog import Catalog
from infercap.measurements import Case
from infercap.profile import Profile, Resolver, builtin_profile_ids, engine_profile_for
from infercap.profile import load_profile
from infercap.validate import Group, Prepared, engine_family, predict, prepare, release_line

MIN_CASES_PER_GPU = 8
PRIOR_CASES = 3.0  # weight of each figure's prior, in cases (see _fit_with)

# figure -> (lower, upper) bounds
ENGINE_FIGURES: dict[str, tuple[float, float]] = {
    "layer_overhead_us": (0.0, 400.0),
    "step_overhead_ms": (0.0, 30.0),
    "sequence_overhead_us": (0.0, 20.0),
    "request_overhead_ms": (0.0, 100.0),
    "activation_io_passes": (0.0, 40.0),
    "collective_latency_us": (1.0, 200.0),
    "scale_up_bandwidth_fraction": (0.1, 1.0),
    "attention_peak_fraction": (0.1, 0.95),
    "prefill_host_overhead_us_per_layer": (0.0, 3000.0),
    "decode_attention_saturation_blocks": (1.0, 512.0),
}
# Upper bounds: no engine beats the best measured kernels (bf16 GEMM 0.82 of peak, fp8 0.75,
# copy 0.90 of peak bandwidth on H100/H200: bench/derive_kernel_figures.py) by much.
GPU_FIGURES: dict[str, tuple[float, float]] = {
    "gemm_peak_fraction_16bit": (0.15, 0.9),
    "gemm_peak_fraction_8bit": (0.15, 0.9),
    "gemm_peak_fraction_4bit": (0.15, 0.9),
    "memory_bandwidth_fraction": (0.3, 0.95),
}


@dataclass(frozen=True)
class Param:
    figure: str
    gpu: str | None  # None: every GPU (engine-wide)
    lower: float
    upper: float
    prior: float

    @property
    def label(self) -> str:
        return f"{self.figure}" + (f" [{self.gpu}]" if self.gpu else "")


@dataclass
class Errors:
    count: int
    mdape_pct: float
    rms_log: float
    bias_pct: float


@dataclass
class Report:
    engine: str | None
    base: Profile
    params: list[Param]
    values: np.ndarray
    insensitive: list[str]
    train_before: Errors
    train_after: Errors
    test_before: Errors
    test_after: Errors
    all_before: Errors
    all_after: Errors
    n_train: int
    n_test: int
    skipped: int
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [
            f"calibrated {len(self.params)} figure(s) for engine {self.engine or '(mixed)'} "
            f"on {self.all_after.count} cases ({self.skipped} skipped)",
        ]
        for p, v in zip(self.params, self.values):
            out.append(f"  {p.label:48s} {p.prior:10.4g} -> {v:10.4g}")
        for name in self.insensitive:
            out.append(f"  {name:48s} left at its prior (cases insensitive to it)")

        def e(x: Errors) -> str:
            return f"MdAPE {x.mdape_pct:5.1f}%  bias {x.bias_pct:+6.1f}%  (n={x.count})"

        out.append(f"  fit half  before: {e(self.train_before)}   after: {e(self.train_after)}")
        out.append(f"  held-out  before: {e(self.test_before)}   after: {e(self.test_after)}")
        out.append(f"  all cases before: {e(self.all_before)}   after: {e(self.all_after)}")
        return out + self.notes


def _errors(pred: np.ndarray, meas: np.ndarray) -> Errors:
    ok = np.isfinite(pred) & (pred > 0)
    if not ok.any():
        return Errors(0, float("nan"), float("nan"), float("nan"))
    pct = (pred[ok] - meas[ok]) / meas[ok] * 100
    return Errors(int(ok.sum()), float(np.median(np.abs(pct))),
                  float(np.sqrt(np.mean(np.log(pred[ok] / meas[ok]) ** 2))), float(np.mean(pct)))


def configuration(c: Case) -> str:
    """A deployment as a benchmark sweeps it: everything but the load level (concurrency,
    rate, batch) and the metric, so all points of one deployment share a side of the split."""
    return ":".join(str(x) for x in (
        c.file.rsplit("/", 1)[-1], c.model, c.gpu, c.gpus, c.tp, c.pp, c.dp, c.ep, c.weights,
        c.activations, c.kv_cache, c.engine, c.engine_version, c.scenario, c.input_tokens,
        c.output_tokens, c.context_tokens))


def split(cases: Sequence[Case], holdout: float, seed: int) -> np.ndarray:
    """Deterministic hold-out mask (True = held out) from a seeded hash of each case's
    configuration (``configuration``): held-out error is error on deployments the fit never
    saw, not on other load points of the same deployment."""
    out = np.zeros(len(cases), dtype=bool)
    if holdout <= 0:
        return out
    for i, c in enumerate(cases):
        h = hashlib.sha256(f"{seed}:{configuration(c)}".encode()).digest()
        out[i] = int.from_bytes(h[:8], "big") / 2**64 < holdout
    return out


def _candidates(prep: Prepared, train: np.ndarray, per_gpu: bool) -> list[Param]:
    cases = prep.cases
    used = np.zeros(len(cases), dtype=bool)
    for g in prep.groups:
        used[g.index] = True
    idx = np.flatnonzero(used & train)
    # priors: the mean value in force over the training cases
    prior: dict[tuple[str, str | None], float] = {}
    gpu_count: dict[str, int] = {}
    bits_by_gpu: dict[str, set[int]] = {}
    for g in prep.groups:
        sel = np.isin(g.index, idx)
        for gid, bits in zip(g.gpu_ids[sel], g.rates.gemm_bits[sel]):
            gpu_count[gid] = gpu_count.get(gid, 0) + 1
            bits_by_gpu.setdefault(gid, set()).add(int(bits))
        for name in list(ENGINE_FIGURES) + list(GPU_FIGURES):
            if sel.any():
                prior.setdefault((name, None), float(np.mean(g.figs[name][sel])))
                for gid in set(g.gpu_ids[sel]):
                    prior.setdefault((name, gid), float(np.mean(g.figs[name][sel & (g.gpu_ids == gid)])))
    params = [Param(n, None, lo, hi, prior.get((n, None), lo)) for n, (lo, hi) in
              ENGINE_FIGURES.items()]
    bit_name = {16: "gemm_peak_fraction_16bit", 8: "gemm_peak_fraction_8bit",
                4: "gemm_peak_fraction_4bit"}
    shared_bits: set[int] = set()
    for gid, n in sorted(gpu_count.items()):
        if per_gpu and n >= MIN_CASES_PER_GPU:
            names = [bit_name[b] for b in sorted(bits_by_gpu[gid])] + ["memory_bandwidth_fraction"]
            for name in names:
                lo, hi = GPU_FIGURES[name]
                params.append(Param(name, gid, lo, hi, prior.get((name, gid), 0.7)))
        else:
            shared_bits |= bits_by_gpu[gid]
    if shared_bits:
        for b in sorted(shared_bits):
            lo, hi = GPU_FIGURES[bit_name[b]]
            params.append(Param(bit_name[b], "*shared*", lo, hi, prior.get((bit_name[b], None), 0.7)))
        lo, hi = GPU_FIGURES["memory_bandwidth_fraction"]
        params.append(Param("memory_bandwidth_fraction", "*shared*", lo, hi,
                            prior.get(("memory_bandwidth_fraction", None), 0.8)))
    return params


def _solve(
    residual: Callable[[np.ndarray], np.ndarray],
    x0: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    iterations: int = 40,
    progress: Callable[[str], None] | None = None,
) -> np.ndarray:
    """Bounded Levenberg-Marquardt with a soft-L1 robust loss (IRLS weights)."""
    scale = np.maximum(hi - lo, 1e-12)

    def to_u(x: np.ndarray) -> np.ndarray:
        return (x - lo) / scale

    def to_x(u: np.ndarray) -> np.ndarray:
        return lo + np.clip(u, 0.0, 1.0) * scale

    delta = 0.1  # soft-L1 knee on log error (about 10%)

    def cost(r: np.ndarray) -> float:
        return float(np.sum(2 * delta**2 * (np.sqrt(1 + (r / delta) ** 2) - 1)))

    u = to_u(x0)
    r = residual(to_x(u))
    c = cost(r)
    lam = 1e-2
    for it in range(iterations):
        w = 1.0 / np.sqrt(np.sqrt(1 + (r / delta) ** 2))  # sqrt of IRLS weight
        J = np.empty((len(r), len(u)))
        for j in range(len(u)):
            h = 1e-3 if u[j] < 0.999 else -1e-3
            up = u.copy()
            up[j] += h
            J[:, j] = (residual(to_x(up)) - r) / h
        Jw, rw = J * w[:, None], r * w
        A, g = Jw.T @ Jw, Jw.T @ rw
        improved = False
        for _ in range(8):
            step = np.linalg.solve(A + lam * (np.diag(np.diag(A)) + 1e-9 * np.eye(len(u))), -g)
            un = np.clip(u + step, 0.0, 1.0)
            rn = residual(to_x(un))
            cn = cost(rn)
            if np.isfinite(cn) and cn < c:
                u, r, c = un, rn, cn
                lam = max(lam / 3, 1e-6)
                improved = True
                break
            lam *= 4
        if progress:
            progress(f"  iteration {it + 1}: robust cost {c:.4f}")
        if not improved or np.max(np.abs(step)) < 1e-5:
            break
    return to_x(u)


def calibrate(
    cases: Sequence[Case],
    catalog: Catalog,
    *,
    engine: str | None = None,
    per_gpu: bool = True,
    holdout: float = 0.5,
    seed: int = 0,
    base: Profile | None = None,
    only: Sequence[str] | None = None,
    scenarios: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
    simulate: bool = False,
    metrics: Sequence[str] | None = None,
) -> Report:
    """Fit figures to ``cases`` (optionally only one engine family's); ``base`` is the profile
    the fit starts from and completes (default: the shipped profile of the engine family)."""
    fams = {release_line(c) for c in cases}
    if engine:
        # a release line's profile id (trtllm, trtllm-0.x) takes that line's cases; a family
        # or engine name the cases of that engine
        if engine in fams:
            cases = [c for c in cases
                     if release_line(c) == engine]
            fams = {engine}
        else:
            cases = [c for c in cases if engine_family(c.engine) == engine_family(engine)
                     or c.engine == engine]
            fams = {engine_family(engine)}
    from infercap.errors import UsageError

    if scenarios:
        cases = [c for c in cases if c.scenario in scenarios]
    if metrics:
        cases = [c for c in cases if c.metric in metrics]
    if not cases:
        raise UsageError(f"no cases of engine {engine!r}, scenarios "
                         f"{', '.join(scenarios or ['any'])} and metrics "
                         f"{', '.join(metrics or ['any'])} to calibrate on", key="--engine")
    fam = next(iter(fams)) if len(fams) == 1 else None
    if base is None and fam:
        base = load_profile(fam) if fam in builtin_profile_ids() else engine_profile_for(fam)
    default = load_profile("default")
    base_profile = base or default
    resolver = Resolver(default)
    prep = prepare(cases, catalog, resolver, base_profile)
    meas = np.array([c.value for c in prep.cases])
    test = split(prep.cases, holdout, seed)
    used = np.zeros(len(cases), dtype=bool)
    for g in prep.groups:
        used[g.index] = True
    train = used & ~test
    test_m = used & test
    if train.sum() < 3:
        train, test_m = used, np.zeros_like(used)
    params = _candidates(prep, train, per_gpu)
    if only:
        # "figure" fits it everywhere it applies; "figure@gpu" only that GPU's own value (a
        # GPU whose kernels were measured keeps its kernel-derived figure)
        names = {o.split("@", 1)[0] for o in only}
        unknown = sorted(names - set(ENGINE_FIGURES) - set(GPU_FIGURES))
        if unknown:
            raise UsageError(f"expected figures among {', '.join(list(ENGINE_FIGURES) + list(GPU_FIGURES))}, got {', '.join(unknown)}", key="--figures")
        params = [p for p in params if p.figure in only or f"{p.figure}@{p.gpu}" in only]
    # '*shared*' params apply to GPUs without their own value: rewrite them per GPU id
    own = {(p.figure, p.gpu) for p in params if p.gpu not in (None, "*shared*")}
    gpus_in = sorted({gid for g in prep.groups for gid in g.gpu_ids})
    expanded: list[Param] = []
    shared_groups: list[tuple[int, list[str]]] = []
    for p in params:
        if p.gpu == "*shared*":
            members = [gid for gid in gpus_in if (p.figure, gid) not in own]
            shared_groups.append((len(expanded), members))
            expanded.append(replace(p, gpu=None))
        else:
            expanded.append(p)
    params = expanded

    def override_for(x: np.ndarray) -> Callable[[Group], Mapping[str, np.ndarray]]:
        return _override_shared(params, x, shared_groups)

    before = predict(prep)
    if progress:
        progress(f"infercap: fitting {len(params)} candidate figures on {int(train.sum())} cases "
                 f"(holding out {int(test_m.sum())})")
    x_train, _ = _fit_with(prep, train, params, override_for, progress, simulate=simulate)
    after_train = predict(prep, override_for(x_train))
    x_all, live_all = _fit_with(prep, used, params, override_for, None, x_start=x_train,
                                simulate=simulate)
    after_all = predict(prep, override_for(x_all))
    values = x_all[live_all]
    insensitive = sorted({params[j].label for j in range(len(params)) if j not in live_all})
    # record shared GPU memberships in the labels
    labelled = []
    for j in live_all:
        p = params[j]
        members = next((m for k, m in shared_groups if k == j), None)
        if members is not None:
            p = replace(p, gpu="+".join(members) if members else None)
        labelled.append(p)
    return Report(
        engine=fam,
        base=base_profile,
        params=labelled,
        values=values,
        insensitive=insensitive,
        train_before=_errors(before[train], meas[train]),
        train_after=_errors(after_train[train], meas[train]),
        test_before=_errors(before[test_m], meas[test_m]),
        test_after=_errors(after_train[test_m], meas[test_m]),
        all_before=_errors(before[used], meas[used]),
        all_after=_errors(after_all[used], meas[used]),
        n_train=int(train.sum()),
        n_test=int(test_m.sum()),
        skipped=len(prep.skipped),
    )


def _override_shared(params: Sequence[Param], x: np.ndarray,
                     shared: list[tuple[int, list[str]]]) -> Callable[[Group], Mapping[str, np.ndarray]]:
    members = dict(shared)

    def fn(g: Group) -> Mapping[str, np.ndarray]:
        figs = {k: v for k, v in g.figs.items()}
        copied: set[str] = set()
        for j, (p, v) in enumerate(zip(params, x)):
            if p.figure not in copied:
                figs[p.figure] = figs[p.figure].copy()
                copied.add(p.figure)
            if j in members:
                figs[p.figure][np.isin(g.gpu_ids, members[j])] = v
            elif p.gpu is None:
                figs[p.figure][:] = v
            else:
                figs[p.figure][g.gpu_ids == p.gpu] = v
        return figs

    return fn


def _fit_with(prep: Prepared, mask: np.ndarray, params: list[Param],
              override_for: Callable[[np.ndarray], Callable[[Group], Mapping[str, np.ndarray]]],
              progress: Callable[[str], None] | None,
              x_start: np.ndarray | None = None,
              simulate: bool = False) -> tuple[np.ndarray, list[int]]:
    meas = np.array([c.value for c in prep.cases])
    lo = np.array([p.lower for p in params])
    hi = np.array([p.upper for p in params])
    prior = np.clip(np.array([p.prior for p in params]), lo, hi)
    x0 = prior if x_start is None else np.clip(x_start, lo, hi)

    def residual(x: np.ndarray) -> np.ndarray:
        # simulated cases (finite runs) are left out of the fit unless `simulate` (each
        # evaluation then reruns them: seconds, not milliseconds), as are cases the model
        # does not predict (NaN: no information); an infinite prediction of a finite
        # measurement is a large error
        pred = predict(prep, override_for(x), simulate=simulate)[mask]
        r = np.log(np.maximum(pred, 1e-12) / meas[mask])
        return np.where(np.isnan(pred), 0.0, np.where(np.isfinite(r), r, 5.0))

    r0 = residual(x0)
    live = []
    for j in range(len(params)):
        xp = x0.copy()
        mid = lo[j] + 0.5 * (hi[j] - lo[j])
        xp[j] = lo[j] + (hi[j] - lo[j]) * (0.75 if x0[j] < mid else 0.25)
        if np.max(np.abs(residual(xp) - r0)) > 1e-3:
            live.append(j)
    if not live:
        return x0, []

    def res_sub(xs: np.ndarray) -> np.ndarray:
        x = x0.copy()
        x[live] = xs
        return residual(x)

    # a weak prior: each figure is pulled towards its starting value as if by PRIOR_CASES cases
    # whose log error equals its move in units of half its allowed range. Figures the data
    # determine move freely; figures the data barely touch stay near their physical prior.
    u0 = (prior[live] - lo[live]) / np.maximum(hi[live] - lo[live], 1e-12)
    k = np.sqrt(PRIOR_CASES) * 2.0

    def res_reg(xs: np.ndarray) -> np.ndarray:
        u = (xs - lo[live]) / np.maximum(hi[live] - lo[live], 1e-12)
        return np.concatenate([res_sub(xs), k * (u - u0)])

    xs = _solve(res_reg, x0[live], lo[live], hi[live], progress=progress)
    x = x0.copy()
    x[live] = xs
    return x, live


def profile_yaml(report: Report) -> str:
    """The fitted profile: the base engine profile's figures with the fitted ones replaced."""
    import yaml

    figures = dict(report.base.figures)
    gpus: dict[str, dict[str, float]] = {k: dict(v) for k, v in report.base.gpus.items()}
    sources = dict(report.base.sources)
    for p, v in zip(report.params, report.values):
        val = round(float(v), 4)
        if p.gpu is None:
            figures[p.figure] = val
        else:
            for gid in p.gpu.split("+"):
                gpus.setdefault(gid, {})[p.figure] = val
        sources[p.label] = "fitted by infercap calibrate"

    def stats(e: Errors) -> dict[str, float]:
        return {"cases": e.count, "mdape_pct": round(e.mdape_pct, 2),
                "bias_pct": round(e.bias_pct, 2), "rms_log": round(e.rms_log, 4)}

    doc = {
        "id": report.base.id if report.engine else "calibrated",
        "description": report.base.description if "fitted by infercap calibrate" in
        report.base.description else f"{report.base.description}; figures fitted by infercap "
        "calibrate",
        "engine": engine_family(report.engine) or report.engine or "mixed",
        **({"vendors": list(report.base.vendors)} if report.base.vendors else {}),
        "figures": figures,
        "gpus": gpus,
        "kv_cache_default": dict(report.base.kv_cache_default),
        "sources": sources,
        "fit": {
            "held_out_before": stats(report.test_before),
            "held_out_after": stats(report.test_after),
            "all_before": stats(report.all_before),
            "all_after": stats(report.all_after),
        },
    }
    if report.engine is None:
        doc.pop("engine")
    if not doc["kv_cache_default"]:
        doc.pop("kv_cache_default")
    if not doc["sources"]:
        doc.pop("sources")
    header = ("# Generated by `infercap calibrate`. Figures: `infercap figures`; fit statistics "
              "under `fit`.\n")
    return header + yaml.safe_dump(doc, sort_keys=False, width=100)
