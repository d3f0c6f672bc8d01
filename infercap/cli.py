"""Command line: parses options, calls the library, renders. One place (``main``) turns
library errors into a one-line message and an exit code:

0 results printed · 1 nothing meets the constraints (or a check failed) · 2 usage, catalog or
input error.

Heavy imports (numpy, yaml, rich) happen inside commands so ``infercap --help`` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer
from typing_extensions import Annotated

from infercap import __version__

app = typer.Typer(
    name="infercap",
    help="Capacity planner for LLM inference: which GPU, how many, which parallelism, batch "
    "and precision meet your latency targets at the lowest $ per million tokens.",
    add_completion=True,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

EXIT_OK, EXIT_NOTHING, EXIT_ERROR = 0, 1, 2


def _err(message: str) -> None:
    sys.stderr.write(message.rstrip("\n") + "\n")


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"infercap {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Capacity planner for LLM inference."""


# ---------------------------------------------------------------- shared options

CatalogOpt = Annotated[
    Optional[List[Path]],
    typer.Option(
        "--catalog",
        help="Extra catalog folder (hardware/ and models/ inside, or YAML files); repeatable; "
        "also $INFERCAP_CATALOG_PATH. Same id overrides the shipped entry.",
    ),
]
FormatOpt = Annotated[
    Optional[str],
    typer.Option(
        "--format", "-f", help="table | csv | json (default: table on a terminal, else csv)."
    ),
]
OutputOpt = Annotated[
    Optional[Path],
    typer.Option("--output", "-o", help="Write to FILE (atomically) instead of stdout."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No messages on stderr.")]
ProfileOpt = Annotated[
    Optional[str],
    typer.Option("--profile", help="Calibration profile (id or YAML file) applied on top."),
]
ScenarioArg = Annotated[Path, typer.Argument(help="Scenario YAML file (docs/scenarios.md).")]
AllowPathsOpt = Annotated[
    Optional[List[Path]],
    typer.Option(
        "--allow-paths",
        metavar="DIR",
        help="Also let input files read data files (lengths_csv) under DIR (a folder or one "
        "file); repeatable. By default a lengths_csv must lie inside its YAML file's folder.",
    ),
]
ScenarioEngineOpt = Annotated[
    Optional[str],
    typer.Option("--engine", help="Engine profile; default: the scenario's engine, else trtllm."),
]


def _format(value: Optional[str]):  # type: ignore[no-untyped-def]
    from infercap.errors import UsageError
    from infercap.render import Format

    if value is None:
        return Format.table if sys.stdout.isatty() else Format.csv
    try:
        return Format(value)
    except ValueError:
        raise UsageError(f"expected table, csv or json, got {value!r}", key="--format") from None


class _progress:
    """Progress on stderr for work that takes seconds: a rich status line when stderr is a
    terminal, nothing when it is not (CI logs, pipes) or with --quiet."""

    def __init__(self, quiet: bool, what: str) -> None:
        self.quiet, self.what, self.status = quiet, what, None

    def __enter__(self):  # type: ignore[no-untyped-def]
        if self.quiet or not sys.stderr.isatty():
            return None
        from rich.console import Console

        self.status = Console(stderr=True).status(f"infercap: {self.what}...")
        self.status.__enter__()
        return lambda msg: self.status.update(f"infercap: {self.what}: {msg.strip()}")

    def __exit__(self, *exc: object) -> None:
        if self.status is not None:
            self.status.__exit__(*exc)


def _check_context(mdl, tokens: int, quiet: bool = False) -> None:  # type: ignore[no-untyped-def]
    """Warn (stderr) when requests run past the model's trained context window: engines run
    them (published benchmarks do, e.g. Llama-2-70B at 128 + 4,096 tokens), quality is the
    user's call, the capacity numbers stay valid."""
    if tokens > mdl.max_position_embeddings and not quiet:
        _err(f"infercap: warning: {tokens:,} input + output tokens exceed {mdl.id}'s context "
             f"window of {mdl.max_position_embeddings:,} (max_position_embeddings)")


def _check_output(output: Optional[Path]) -> None:
    """Fail before any work when --output cannot be written (its folder is missing, it is a
    directory, a dangling link or a link loop: ``render.output_target``)."""
    if output is not None:
        from infercap.render import output_target

        output_target(output)


def _engine(name: str):  # type: ignore[no-untyped-def]
    """An engine family's shipped profile (trtllm, vllm, sglang, pytorch), or any profile by
    id or file."""
    from infercap.profile import engine_profile_for, load_profile

    return engine_profile_for(name) or load_profile(name)


def _engine_gpus(eng, gpus, named: bool, quiet: bool, key: str = "--gpu"):  # type: ignore[no-untyped-def]
    """The GPUs the engine runs on; the others left out with one stderr line (an error when
    none is left of the GPUs the user named)."""
    from infercap.errors import UsageError
    from infercap.profile import engine_split

    kept, note = engine_split(eng, gpus)
    if note and not kept:
        raise UsageError(f"no GPU left: {note}", key=key if named else "--engine")
    if note and not quiet:
        _err(f"infercap: {note}")
    return kept


def _engine_label(eng) -> str:  # type: ignore[no-untyped-def]
    """A profile's id and what it is (its release line), for stderr lines."""
    if eng is None:
        return "default"
    return f"{eng.id} ({eng.description.split(';')[0]})"


def _allowed(paths: Optional[List[Path]]) -> List[Path]:
    """The --allow-paths entries, each an existing folder or file."""
    from infercap.errors import UsageError

    for p in paths or []:
        if not p.exists():
            raise UsageError(f"expected an existing folder or file, got {str(p)!r}",
                             key="--allow-paths")
    return list(paths or [])


def _resolver(profile: Optional[str]):  # type: ignore[no-untyped-def]
    from infercap.profile import Resolver, load_profile

    user = load_profile(profile) if profile else None
    return Resolver(load_profile("default"), None, user)


def _split(values: Optional[List[str]]) -> List[str]:
    out: List[str] = []
    for v in values or []:
        out += [x.strip() for x in v.split(",") if x.strip()]
    return out


def _ints(values: Optional[List[str]], key: str) -> List[int]:
    from infercap.errors import UsageError

    out = []
    for v in _split(values):
        try:
            n = int(v)
        except ValueError:
            raise UsageError(f"expected positive integers, got {v!r}", key=key) from None
        if n < 1:
            raise UsageError(f"expected positive integers, got {v!r}", key=key)
        out.append(n)
    return out


# ---------------------------------------------------------------- plan

PLAN_TABLE = (
    "gpu",
    "precision",
    "tp",
    "pp",
    "dp",
    "ep",
    "batch",
    "ttft_ms",
    "tpot_ms",
    "tokens_per_s_per_user",
    "output_tokens_per_s_per_gpu",
    "gpus",
    "usd_per_hour",
    "price_type",
    "usd_per_m_output_tokens",
    "memory_used_gib_per_gpu",
    "decode_bound",
    "pareto",
)
PLAN_HEADERS = {
    "price_type": "price",
    "tokens_per_s_per_user": "tok/s/user",
    "output_tokens_per_s_per_gpu": "tok/s/GPU",
    "usd_per_hour": "$/h/inst",
    "usd_per_m_output_tokens": "$/M out",
    "memory_used_gib_per_gpu": "GiB/GPU",
    "decode_bound": "bound",
    "pareto": "pareto",
}


@app.command()
def plan(
    model: Annotated[str, typer.Option("--model", "-m", help="Model id (see `infercap models`).")]
    = "llama-3.1-70b",
    gpu: Annotated[
        Optional[List[str]],
        typer.Option("--gpu", "-g", help="GPU id(s), repeatable or comma-separated "
                     "(default: every catalog GPU)."),
    ] = None,
    precision: Annotated[
        Optional[List[str]],
        typer.Option("--precision", "-p", help="Precision preset(s): bf16, fp16, fp8, int8, "
                     "int4, fp4, mxfp4 (default: bf16,fp8,fp4 and the model's released format).")
    ] = None,
    input_tokens: Annotated[int, typer.Option("--input-tokens", "-i", min=1,
                                              help="Prompt tokens per request.")] = 2048,
    output_tokens: Annotated[int, typer.Option("--output-tokens", "-n", min=1,
                                               help="Generated tokens per request.")] = 256,
    tp: Annotated[Optional[List[str]], typer.Option("--tp", help="Tensor-parallel sizes "
                                                    "(default 1,2,4,8).")] = None,
    pp: Annotated[Optional[List[str]], typer.Option("--pp", help="Pipeline-parallel sizes "
                                                    "(default 1,2,4).")] = None,
    dp: Annotated[Optional[List[str]], typer.Option("--dp", help="Data-parallel attention "
                                                    "ranks for MoE models, experts sharded "
                                                    "over them (default 1,2,4,8,16,32).")]
    = None,
    gpus_per_instance: Annotated[Optional[List[str]], typer.Option(
        "--gpus-per-instance", help="Sweep every layout (tp x pp x dp, every EP size) with "
        "exactly these GPU counts, instead of the --tp/--pp/--dp lists.")] = None,
    max_ttft_ms: Annotated[float, typer.Option("--max-ttft-ms", min=0,
                                               help="SLO: time to first token; 0 = none.")]
    = 2000.0,
    max_tpot_ms: Annotated[float, typer.Option("--max-tpot-ms", min=0,
                                               help="SLO: time per output token; 0 = none.")]
    = 50.0,
    min_tokens_per_s_per_user: Annotated[
        float, typer.Option("--min-tokens-per-s-per-user", min=0, help="SLO: 0 = none.")
    ] = 0.0,
    max_gpus: Annotated[int, typer.Option("--max-gpus", min=0,
                                          help="At most this many GPUs per instance; 0 = any.")]
    = 0,
    objective: Annotated[str, typer.Option("--objective", help="Sort by: cost ($/M output "
                                           "tokens), throughput (per GPU), latency (e2e).")]
    = "cost",
    top: Annotated[int, typer.Option("--top", "-t", min=0, help="Rows to print; 0 = all.")] = 15,
    per_gpu: Annotated[bool, typer.Option("--per-gpu/--all-rows", help="Keep the best row per "
                                          "GPU (default), or every configuration.")]
    = True,
    engine: Annotated[str, typer.Option("--engine", help="Engine profile: trtllm, vllm, "
                                        "sglang, pytorch, default, or a profile file.")]
    = "trtllm",
    profile: ProfileOpt = None,
    catalog: CatalogOpt = None,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    quiet: QuietOpt = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also list, on stderr, the "
                                          "layouts and precisions left out and why.")] = False,
    pareto: Annotated[bool, typer.Option("--pareto", help="Print the Pareto frontier (throughput "
                                         "per GPU against tokens/s per user): a chart on the "
                                         "table format, the frontier's points in CSV/JSON.")]
    = False,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write the Pareto frontier as "
                                                 "an image (.png/.svg/.pdf; needs "
                                                 "'infercap[plot]').")] = None,
) -> None:
    """Sweep GPUs x TP x PP x batch x precision for a model and workload; print the best.

    Example: infercap plan --model llama-3.1-8b --gpu h100-sxm,l40s -i 1024 -n 256 -f csv
    """
    from infercap.catalog import load_catalog
    from infercap.errors import UsageError
    from infercap.precision import PRESETS
    from infercap.render import render, write_output
    from infercap.sweep import (COLUMNS, OBJECTIVES, Workload, apply_slos, mark_pareto, rank,
                                sweep)

    form = _format(fmt)
    _check_output(output)
    if plot is not None:
        from infercap.render import check_plot_target

        check_plot_target(plot)
    if objective not in OBJECTIVES:
        raise UsageError(f"expected one of {', '.join(OBJECTIVES)}, got {objective!r}",
                         key="--objective")
    cat = load_catalog(catalog or [])
    mdl = cat.model(model)
    _check_context(mdl, input_tokens + output_tokens, quiet)
    gpu_ids = _split(gpu) or sorted(cat.gpus)
    gpus = [cat.gpu(g) for g in gpu_ids]
    precs = []
    names = _split(precision)
    if not names:
        # default: bf16, fp8, fp4, and the format the checkpoint is released in (gpt-oss: mxfp4)
        names = ["bf16", "fp8", "fp4"]
        if mdl.default_weights in PRESETS and mdl.default_weights not in names:
            names.append(mdl.default_weights)
    for name in names:
        if name not in PRESETS:
            raise UsageError(f"expected one of {', '.join(PRESETS)}, got {name!r}",
                             key="--precision")
        precs.append(PRESETS[name])
    eng = _engine(engine)
    res = _resolver(profile)
    tps, pps = _ints(tp, "--tp") or [1, 2, 4, 8], _ints(pp, "--pp") or [1, 2, 4]
    dps = _ints(dp, "--dp") or [1, 2, 4, 8, 16, 32]
    from infercap.sweep import layouts_for, layouts_for_counts

    counts = _ints(gpus_per_instance, "--gpus-per-instance")
    if any(n > 65536 for n in counts):
        raise UsageError(f"expected at most 65,536 GPUs per instance, got {max(counts):,}",
                         key="--gpus-per-instance")
    lays = layouts_for_counts(mdl, counts) if counts else layouts_for(mdl, tps, pps, None, dps)
    if len(lays.tp) == 0:
        why = "; ".join(sorted({w for *_, w in lays.rejected}))
        raise UsageError(f"no layout can run {mdl.id}: {why}", key="--tp/--pp")
    gpus = _engine_gpus(eng, gpus, bool(_split(gpu)), quiet)
    r = sweep(mdl, gpus, precs, Workload(input_tokens, output_tokens), res, eng, tps=tps,
              pps=pps, dps=dps, gpu_counts=counts or None)
    if verbose and not quiet:
        for note in r.notes:
            _err(f"infercap: {note}")
    fitting = len(r)
    if fitting == 0:
        from infercap.sweep import tabulate

        t = tabulate(gpus, precs, res, eng)
        if not t.runnable.any():  # no precision runs at all: say why, not "too big"
            why = "; ".join(dict.fromkeys(str(x) for x in t.reason.ravel()))
            _err(f"infercap: nothing runs: {why} (try another --precision or other GPUs)")
        else:
            _err(f"infercap: nothing fits: no GPU, layout and precision holds {mdl.id}'s "
                 f"weights and the KV cache of one {input_tokens + output_tokens}-token sequence "
                 "(try more GPUs per instance with --tp/--pp, a lower precision, or other "
                 "GPUs)")
        if form is not form.table:
            write_output(render([], COLUMNS, form), output)
        raise typer.Exit(EXIT_NOTHING)
    r = apply_slos(r, max_ttft_ms or None, max_tpot_ms or None,
                   min_tokens_per_s_per_user or None, max_gpus or None)
    r = mark_pareto(r)
    if pareto or plot is not None:
        import numpy as np

        from infercap.sweep import concat

        # each GPU's own frontier (the `pareto` column keeps the frontier over all GPUs)
        fronts = []
        for g in sorted(set(r.columns["gpu"])):
            sub = mark_pareto(r.take(np.flatnonzero(r.columns["gpu"] == g)))
            fronts.append(sub.take(np.flatnonzero(sub.columns["pareto"])))
        front = concat(fronts)
        front = mark_pareto(front)
        front = front.take(np.lexsort((front.columns["tokens_per_s_per_user"],
                                       front.columns["gpu"])))
        series = []
        for g in sorted(set(front.columns["gpu"])):
            sel = front.columns["gpu"] == g
            series.append((str(g), front.columns["tokens_per_s_per_user"][sel].tolist(),
                           front.columns["output_tokens_per_s_per_gpu"][sel].tolist()))
        title = (f"Pareto frontiers per GPU: {mdl.id}, {input_tokens} in / {output_tokens} "
                 f"out ({len(front)} points; `pareto` = on the frontier over all GPUs)")
        if plot is not None:
            from infercap.render import plot_file

            plot_file(plot, series, "tokens/s per user", "output tokens/s per GPU",
                      f"Pareto frontiers: {mdl.id}, {input_tokens} in / {output_tokens} out")
        if pareto:
            if not quiet:
                _err(f"infercap: {mdl.id}: {len(front)} configurations on the GPUs' Pareto "
                     f"frontiers, of {len(r)} meeting the SLOs")
            if form is form.table:
                from infercap.render import text_chart

                text = text_chart(series, "tokens/s per user", "output tokens/s per GPU",
                                  title)
            else:
                text = render(front.rows(), COLUMNS, form)
            write_output(text, output)
            return
    r = rank(r, objective, top or None, per_gpu)
    if not quiet:
        _err(f"infercap: {mdl.id}, {input_tokens} in / {output_tokens} out, engine profile "
             f"{_engine_label(eng)}: "
             f"{r.evaluated:,} configurations evaluated, {fitting:,} fit memory, "
             f"{len(r):,} shown meeting SLOs (ttft <= {max_ttft_ms or '-'} ms, "
             f"tpot <= {max_tpot_ms or '-'} ms)")
    if len(r) == 0:
        _err("infercap: no configuration meets the constraints "
             "(relax --max-ttft-ms / --max-tpot-ms / --min-tokens-per-s-per-user / --max-gpus, "
             "or add GPUs)")
        if form is not form.table:
            write_output(render([], COLUMNS, form), output)
        raise typer.Exit(EXIT_NOTHING)
    text = render(r.rows(), COLUMNS, form, table_columns=PLAN_TABLE, headers=PLAN_HEADERS,
                  quiet=quiet)
    write_output(text, output)


# ---------------------------------------------------------------- size / check

SIZE_TABLE = ("model", "gpu", "mode", "precision", "tp", "pp", "dp", "ep", "batch_cap", "replicas",
              "gpus", "prefill_layout", "usd_per_month", "usd_per_m_blended_tokens",
              "utilisation_peak", "headroom_pct", "ttft_p99_ms", "tpot_p99_ms", "meets_budget",
              "best")
SIZE_HEADERS = {"batch_cap": "batch cap", "prefill_layout": "prefill pool",
                "usd_per_month": "$/month", "usd_per_m_blended_tokens": "$/M tok",
                "utilisation_peak": "util@peak", "headroom_pct": "headroom %",
                "ttft_p99_ms": "TTFT p99 ms", "tpot_p99_ms": "TPOT p99 ms",
                "meets_budget": "in budget"}
SIM_COLUMNS = ("sim_ttft_p50_ms", "sim_ttft_p99_ms", "sim_tpot_p50_ms", "sim_tpot_p99_ms",
               "sim_meets_slos")


def _size_table(s) -> list[str]:  # type: ignore[no-untyped-def]
    """SIZE_TABLE with, for TTFT and TPOT, the percentiles the SLOs name (p99 when none)."""
    from infercap.scenario import percentile_of
    from infercap.size import pct_name

    out: list[str] = []
    for c in SIZE_TABLE:
        metric = c[:4]
        if c in ("ttft_p99_ms", "tpot_p99_ms"):
            slo = getattr(s, f"{metric}_ms")
            qs = sorted(q for q in map(percentile_of, slo) if q is not None) or [0.99]
            out += [f"{metric}_{pct_name(q)}_ms" for q in qs]
        else:
            out.append(c)
    return out


def _size_headers(columns) -> dict:  # type: ignore[no-untyped-def, type-arg]
    head = dict(SIZE_HEADERS, sim_ttft_p99_ms="sim TTFT p99", sim_tpot_p99_ms="sim TPOT p99",
                sim_meets_slos="sim SLOs ok")
    for c in columns:
        if c not in head and c[:4] in ("ttft", "tpot") and c.endswith("_ms"):
            head[c] = f"{c[:4].upper()} {c[5:-3]} ms"
    return head


def _sized(scenario: Path, engine: Optional[str], profile: Optional[str], catalog, quiet: bool,  # type: ignore[no-untyped-def]
           allow_paths: Optional[List[Path]] = None):
    from infercap.catalog import load_catalog
    from infercap.scenario import load_scenario
    from infercap.size import size

    s = load_scenario(scenario, _allowed(allow_paths))
    cat = load_catalog(catalog or [])
    eng = _engine(engine or s.engine)
    res = _resolver(profile)
    with _progress(quiet, "sizing"):
        r = size(s, cat, res, eng)
    return s, cat, res, eng, r


def _simulate_rows(r, s, quiet: bool) -> None:  # type: ignore[no-untyped-def]
    """Add discrete-event-simulation percentiles to the aggregated rows (seeded), and whether
    the simulated percentiles meet the scenario's SLOs (a breach: one stderr line, unless -q)."""
    from infercap.render import distinct_pair
    from infercap.simulate import simulate
    from infercap.size import simulated_breaches

    for i, row in enumerate(r.rows):
        if i not in r.engines:
            for c in SIM_COLUMNS:
                row[c] = None
            continue
        e, rate = r.engines[i]
        sim = simulate(e, 0, rate, requests=6000, seed=0)
        p = sim.percentiles((0.5, 0.99))
        ms = [None if x != x else float(x) * 1e3 for x in (*p["ttft"], *p["tpot"])]  # NaN: none
        (row["sim_ttft_p50_ms"], row["sim_ttft_p99_ms"], row["sim_tpot_p50_ms"],
         row["sim_tpot_p99_ms"]) = ms
        breaches = simulated_breaches(e, rate, s, sim=sim)
        row["sim_meets_slos"] = not breaches
        if quiet:
            continue
        for limit, got, threshold in breaches:
            shown, lim = distinct_pair(got, threshold)
            _err(f"infercap: {row['gpu']} {row['mode']} ({row['replicas']} replicas): "
                 f"{limit.replace(' (simulated)', '')} simulated {shown} > {lim} ms: the "
                 "analytical model says it meets the SLO; add replicas or check the tail")
        for name in ("ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms"):
            a, b = float(row[name]), row["sim_" + name]
            if b is not None and b > 0 and abs(a / b - 1) > 0.15:
                _err(f"infercap: {row['gpu']}: analytical {name} {a:.1f} vs simulated {b:.1f} "
                     f"({(a / b - 1) * 100:+.0f}%)")


@app.command()
def size(
    scenario: ScenarioArg,
    engine: ScenarioEngineOpt = None,
    profile: ProfileOpt = None,
    simulate: Annotated[bool, typer.Option("--simulate", help="Also run the discrete-event "
                                           "simulation of each aggregated deployment at peak "
                                           "and add its percentiles (sim_* columns).")]
    = False,
    pareto: Annotated[bool, typer.Option("--pareto", help="Print each GPU's frontier of "
                                         "throughput per GPU against tokens/s per user over "
                                         "all its configurations and loads (chart on the table "
                                         "format, points in CSV/JSON).")] = False,
    catalog: CatalogOpt = None,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    quiet: QuietOpt = False,
    allow_paths: AllowPathsOpt = None,
) -> None:
    """The cheapest deployment per GPU (aggregated and disaggregated) that meets a scenario's
    SLO percentiles at peak traffic: layout, batch cap, replicas, $/month, $/M tokens.

    Example: infercap size examples/chat-70b.yaml -f csv
    """
    from infercap.render import render, write_output
    from infercap.size import columns as size_columns

    form = _format(fmt)
    _check_output(output)
    s, cat, res, eng, r = _sized(scenario, engine, profile, catalog, quiet, allow_paths)
    if pareto:
        from infercap.size import pareto_points

        pts = pareto_points(s, cat, res, eng)
        if form is form.table:
            from infercap.render import text_chart

            series = []
            for g in sorted({p["gpu"] for p in pts}):
                sel = [p for p in pts if p["gpu"] == g]
                series.append((g, [p["tokens_per_s_per_user"] for p in sel],
                               [p["output_tokens_per_s_per_gpu"] for p in sel]))
            text = text_chart(series, "tokens/s per user", "output tokens/s per GPU",
                              f"Pareto frontiers per GPU: {s.name} (aggregated, loads up to "
                              f"95% of capacity)")
        else:
            text = render(pts, list(pts[0]) if pts else ["gpu"], form)
        write_output(text, output)
        return
    columns = list(size_columns(s))
    if simulate:
        _simulate_rows(r, s, quiet)
        columns += list(SIM_COLUMNS)
    if not quiet:
        _err(f"infercap: {s.name}: peak {s.peak_rps:g} requests/s, average {s.average_rps:g}; "
             f"engine profile {_engine_label(eng)}; {len(r.rows)} deployments meet the SLOs")
        for note in r.notes:
            _err(f"infercap: {note}")
        _explain_disaggregation(r.rows)
    if not r.rows:
        _err("infercap: no deployment meets the SLOs within the limits (see `infercap check` "
             "for which limit cannot be met)")
        if not quiet:
            from infercap.render import distinct_pair
            from infercap.size import diagnose

            for limit, got, threshold, where in diagnose(s, cat, res, eng):
                shown, lim = distinct_pair(got, threshold)
                _err(f"infercap: {limit}: the closest reachable is {shown} > {lim}, by {where} "
                     "at a trickle of load")
        if form is not form.table:
            write_output(render([], columns, form), output)
        raise typer.Exit(EXIT_NOTHING)
    table_cols = _size_table(s) + ([c for c in SIM_COLUMNS if "p50" not in c] if simulate
                                   else [])
    write_output(render(r.rows, columns, form, table_columns=table_cols,
                        headers=_size_headers(table_cols), quiet=quiet), output)


def _explain_disaggregation(rows) -> None:  # type: ignore[no-untyped-def]
    by_gpu: dict = {}
    for row in rows:
        by_gpu.setdefault(row["gpu"], {})[row["mode"]] = row
    for g, modes in by_gpu.items():
        if len(modes) < 2:
            continue
        a, d = modes["aggregated"], modes["disaggregated"]
        cheaper, other = (d, a) if d["usd_per_hour"] < a["usd_per_hour"] else (a, d)
        saving = (1 - cheaper["usd_per_hour"] / other["usd_per_hour"]) * 100
        per_gpu_d = float(d["mean_batch_peak"]) / float(d["gpus_per_instance"])
        per_gpu_a = float(a["mean_batch_peak"]) / float(a["gpus_per_instance"])
        if per_gpu_d > per_gpu_a:
            d_why = ("decode runs without prompt work in its iterations, so it meets the TPOT "
                     f"SLO at a larger batch ({per_gpu_d:.0f} vs {per_gpu_a:.0f} sequences per "
                     "decode GPU at peak)")
        else:
            d_why = ("each pool runs its own layout: prompts on "
                     f"{d['prefill_layout']}, decode on {d['gpus_per_instance']} GPU(s) per "
                     "instance, so neither pays for the other's SLO")
        why = d_why if cheaper is d else (
               "one pool shares GPUs between prompts and decode without a KV transfer or a "
               "second pool's rounding")
        if saving > 0.5:
            _err(f"infercap: {g}: {cheaper['mode']} is {saving:.0f}% cheaper ({cheaper['gpus']} "
                 f"vs {other['gpus']} GPUs): {why}")


@app.command()
def check(
    scenario: ScenarioArg,
    engine: ScenarioEngineOpt = None,
    profile: ProfileOpt = None,
    catalog: CatalogOpt = None,
    output: OutputOpt = None,
    quiet: QuietOpt = False,
    allow_paths: AllowPathsOpt = None,
) -> None:
    """CI budget gate: exit 0 when the cheapest deployment meets every SLO and budget, 1 with
    one line per breached limit on stderr, 2 for a bad scenario. The full result is JSON on
    stdout.

    Example: infercap check examples/chat-70b.yaml > result.json
    """
    import json

    from infercap.render import write_output
    from infercap.render import distinct_pair
    from infercap.size import HEAVY_TAIL_RATIO, budget_breaches, diagnose, simulated_breaches

    _check_output(output)
    s, cat, res, eng, r = _sized(scenario, engine, profile, catalog, True, allow_paths)
    best = next((row for row in r.rows if row["meets_budget"]), r.rows[0] if r.rows else None)
    breaches: list = []
    if best is None:
        found = diagnose(s, cat, res, eng)
        breaches = [{"limit": k, "value": v, "threshold": t, "closest": w}
                    for k, v, t, w in found]
        if not breaches:
            limit = f"limits.max_gpus={s.max_gpus}" if s.max_gpus else "the candidate GPUs"
            breaches = [{"limit": "slo", "value": None, "threshold": None,
                         "detail": f"each SLO can be met alone, but no deployment meets them "
                                   f"all at {s.peak_rps:g} requests/s within {limit}"}]
    else:
        breaches = [{"limit": k, "value": v, "threshold": t} for k, v, t in budget_breaches(best, s)]
    # heavy-tailed lengths: the analytical p99s run low (docs/queueing.md), so a gate must not
    # pass on them alone: the chosen aggregated deployment is simulated at peak as well
    simulated = False
    if best is not None and s.tail_ratio() >= HEAVY_TAIL_RATIO:
        i = next(k for k, row in enumerate(r.rows) if row is best)
        simulated = i in r.simulated  # size checked its replicas by simulation
        if i in r.engines:  # aggregated: simulate the plan once more, as the gate sees it
            e, rate = r.engines[i]
            breaches += [{"limit": k, "value": v, "threshold": t}
                         for k, v, t in simulated_breaches(e, rate, s)]
            simulated = True
    result = {"scenario": s.name, "file": str(scenario), "pass": not breaches,
              "breaches": breaches, "simulated": simulated, "best": best, "deployments": r.rows}
    write_output(json.dumps(result, indent=2, default=_jsonable) + "\n", output)
    for b in breaches:
        if b.get("value") is None:
            _err(f"infercap: check failed: {b['detail']}")
        else:
            shown, limit = distinct_pair(float(b["value"]), float(b["threshold"]))
            closest = (f" (the closest: {b['closest']}, at a trickle of load)"
                       if b.get("closest") else "")
            _err(f"infercap: check failed: {b['limit']}: {shown} > {limit}{closest}")
    if simulated and any("(simulated)" in b["limit"] for b in breaches):
        _err(f"infercap: {best['gpu']} {best['mode']} with {best['replicas']} replicas meets the "
             "SLOs in the analytical model, but heavy-tailed lengths queue longer than it "
             "predicts (docs/queueing.md): add replicas, or compare with `infercap size "
             "--simulate`")
    if breaches:
        raise typer.Exit(EXIT_NOTHING)
    if not quiet and best is not None:
        _err(f"infercap: check passed: {best['gpu']} {best['mode']}, {best['gpus']} GPUs, "
             f"${best['usd_per_month']:,.0f}/month, ${best['usd_per_m_blended_tokens']:.3f}/M "
             "tokens")


def _jsonable(v):  # type: ignore[no-untyped-def]
    import numpy as np

    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(type(v).__name__)


# ---------------------------------------------------------------- catalogs

GPU_COLUMNS = ("id", "name", "vendor", "memory_gib", "memory_bandwidth_tb_per_s",
               "bf16_dense_tflops", "fp8_dense_tflops", "fp4_dense_tflops",
               "scale_up_gb_per_s_per_direction", "scale_up_domain_gpus",
               "scale_out_gb_per_s_per_direction", "tdp_w", "usd_per_gpu_hour", "price_provider",
               "price_date")
MODEL_COLUMNS = ("id", "name", "params_b", "active_params_b", "published_params_b", "layers",
                 "hidden_size", "heads", "kv_heads", "head_dim", "experts", "experts_per_token",
                 "attention", "kv_kib_per_token_bf16", "max_context")


def _gpu_row(g) -> dict:  # type: ignore[no-untyped-def]
    return {
        "id": g.id, "name": g.name, "vendor": g.vendor, "memory_gib": g.memory_gib,
        "memory_bandwidth_tb_per_s": g.memory_bandwidth_tb_per_s,
        "bf16_dense_tflops": g.dense_tflops.get("bf16", g.dense_tflops.get("fp16")),
        "fp8_dense_tflops": g.dense_tflops.get("fp8"),
        "fp4_dense_tflops": g.dense_tflops.get("fp4"),
        "scale_up_gb_per_s_per_direction": g.scale_up_gb_per_s_per_direction,
        "scale_up_domain_gpus": g.scale_up_domain_gpus,
        "scale_out_gb_per_s_per_direction": g.scale_out_gb_per_s_per_direction,
        "tdp_w": g.tdp_w, "usd_per_gpu_hour": g.price.usd_per_gpu_hour,
        "price_provider": g.price.provider, "price_date": g.price.date,
    }


def _model_row(m) -> dict:  # type: ignore[no-untyped-def]
    from infercap.arch import arch_of

    a = arch_of(m)
    attn = "MLA" if m.mla else ("GQA" if m.num_key_value_heads < m.num_attention_heads else "MHA")
    if m.sliding_window:
        attn += f"+{m.sliding_window.kind}{m.sliding_window.window_tokens}"
    return {
        "id": m.id, "name": m.name, "params_b": a.total_params / 1e9,
        "active_params_b": a.active_params / 1e9,
        "published_params_b": m.params_published_total_b, "layers": m.num_hidden_layers,
        "hidden_size": m.hidden_size, "heads": m.num_attention_heads,
        "kv_heads": m.num_key_value_heads, "head_dim": m.head_dim,
        "experts": m.moe.num_experts if m.moe else 0,
        "experts_per_token": m.moe.experts_per_token if m.moe else 0, "attention": attn,
        "kv_kib_per_token_bf16": a.kv_bytes_per_token(2.0) / 1024,
        "max_context": m.max_position_embeddings,
    }


def _show(obj) -> str:  # type: ignore[no-untyped-def]
    import dataclasses
    import json

    def conv(v):  # type: ignore[no-untyped-def]
        if dataclasses.is_dataclass(v):
            return {k: conv(x) for k, x in dataclasses.asdict(v).items()}
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v

    return json.dumps(conv(obj), indent=2, default=str) + "\n"


@app.command()
def gpus(
    args: Annotated[Optional[List[str]], typer.Argument(
        help="ID to show one GPU in full (JSON), or: add NEW_ID", show_default=False)] = None,
    from_gpu: Annotated[str, typer.Option("--from", help="With add: the entry to start from.")]
    = "h100-sxm",
    catalog: CatalogOpt = None,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
) -> None:
    """List the accelerator catalog, show one entry with its sources, or start a new entry
    from an existing one (`add`: YAML to edit, on stdout or -o FILE).

    Example: infercap gpus -f csv ; infercap gpus h100-sxm ;
    infercap gpus add my-gpu --from h200-sxm -o my-catalog/hardware/my-gpu.yaml
    """
    from infercap.catalog import load_catalog
    from infercap.errors import UsageError
    from infercap.render import render, write_output

    _check_output(output)
    args = list(args or [])
    cat = load_catalog(catalog or [])
    if args and args[0] == "add":
        if len(args) != 2:
            raise UsageError("expected: infercap gpus add NEW_ID [--from GPU]", key="add")
        write_output(_gpu_template(cat.gpu(from_gpu), args[1]), output)
        return
    if len(args) > 1:
        raise UsageError(f"expected one GPU id, got {' '.join(args)}", key="ID")
    if args:
        write_output(_show(cat.gpu(args[0])), output)
        return
    rows = [_gpu_row(g) for g in sorted(cat.gpus.values(), key=lambda g: g.id)]
    table = ("id", "memory_gib", "memory_bandwidth_tb_per_s", "bf16_dense_tflops",
             "fp8_dense_tflops", "fp4_dense_tflops", "scale_up_gb_per_s_per_direction",
             "scale_up_domain_gpus", "usd_per_gpu_hour", "price_provider")
    headers = {"memory_bandwidth_tb_per_s": "TB/s", "bf16_dense_tflops": "bf16 TFLOPS",
               "fp8_dense_tflops": "fp8 TFLOPS", "fp4_dense_tflops": "fp4 TFLOPS",
               "scale_up_gb_per_s_per_direction": "scale-up GB/s/dir",
               "scale_up_domain_gpus": "domain", "usd_per_gpu_hour": "$/GPU-h",
               "memory_gib": "GiB", "price_provider": "price from"}
    write_output(render(rows, GPU_COLUMNS, _format(fmt), table_columns=table, headers=headers),
                 output)


def _gpu_template(base, new_id: str) -> str:  # type: ignore[no-untyped-def]
    """A new hardware entry: the fields of ``base`` under a new id, every source marked for
    replacement, so that the file loads and plans at once and says what to check."""
    from pathlib import Path as _P

    from infercap._schema import check_id
    from infercap.errors import UsageError

    problem = check_id(new_id)
    if problem:
        raise UsageError(f"{problem}, got {new_id!r}", key="NEW_ID")
    text = _P(base.path).read_text(encoding="utf-8")
    lines, out, in_sources, in_notes = text.splitlines(), [], False, False
    for line in lines:
        if line.startswith("id:"):
            line = f"id: {new_id}"
        elif line.startswith("name:"):
            line = f"name: '{new_id} (from {base.id}, edit every value and its source)'"
        elif line.startswith("efficiency:") or line.startswith("  gemm_") or \
                line.startswith("  memory_bandwidth_fraction"):
            if not in_sources:
                continue  # measured figures belong to the GPU they were measured on
        if line.startswith("sources:"):
            in_sources = True
            out.append(line)
            continue
        if in_sources and line.startswith("  ") and not line.startswith("    "):
            key = line.split(":", 1)[0].strip()
            if key == "efficiency":
                continue
            line = f"  {key}: 'TO CHECK: copied from {base.id}; cite where the value was read'"
        elif in_sources and line.startswith("    "):
            continue
        elif in_sources and not line.startswith(" "):
            in_sources = False
        if line.startswith("notes:"):
            in_notes = True
            continue
        if in_notes and line.startswith(" "):
            continue
        in_notes = False
        out.append(line)
    header = (f"# yaml-language-server: $schema=infercap/schemas/hardware.schema.json\n"
              f"# New accelerator started from {base.id} by `infercap gpus add`: replace every "
              "value and its source (docs/catalogs.md).\n")
    return header + "\n".join(out) + "\n"


@app.command()
def models(
    args: Annotated[Optional[List[str]], typer.Argument(
        help="ID to show one model in full (JSON), or: import CONFIG.json", show_default=False)]
    = None,
    model_id_opt: Annotated[Optional[str], typer.Option("--id", help="With import: the id of "
                                                        "the new entry.")] = None,
    catalog: CatalogOpt = None,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
) -> None:
    """List the model catalog (parameter counts computed from the architecture), show one, or
    import a Hugging Face config.json as a catalog entry (YAML on stdout or -o FILE).

    Example: infercap models ; infercap models deepseek-v3 ;
    infercap models import config.json --id my-model -o my-catalog/models/my-model.yaml
    """
    from infercap.catalog import load_catalog
    from infercap.errors import UsageError
    from infercap.render import render, write_output

    _check_output(output)
    args = list(args or [])
    if args and args[0] == "import":
        if len(args) != 2:
            raise UsageError("expected: infercap models import CONFIG.json [--id ID]",
                             key="import")
        write_output(_import_config(Path(args[1]), model_id_opt), output)
        return
    if len(args) > 1:
        raise UsageError(f"expected one model id, got {' '.join(args)}", key="ID")
    cat = load_catalog(catalog or [])
    if args:
        write_output(_show(cat.model(args[0])), output)
        return
    rows = [_model_row(m) for m in sorted(cat.models.values(), key=lambda m: m.id)]
    table = ("id", "params_b", "active_params_b", "published_params_b", "layers", "hidden_size",
             "heads", "kv_heads", "experts", "attention", "kv_kib_per_token_bf16", "max_context")
    write_output(render(rows, MODEL_COLUMNS, _format(fmt), table_columns=table), output)


def _import_config(path: Path, model_id: Optional[str]) -> str:
    import json

    import yaml

    from infercap.catalog import parse_model
    from infercap.errors import UsageError
    from infercap.hfimport import convert

    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read ({exc.strerror or exc})", key="CONFIG.json",
                         file=str(path)) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"expected JSON ({exc})", key="CONFIG.json", file=str(path)) from None
    except RecursionError:
        raise UsageError("expected JSON (nested too deeply)", key="CONFIG.json",
                         file=str(path)) from None
    try:
        entry, warnings = convert(cfg, model_id)
    except UsageError as exc:
        raise UsageError(exc.detail, key=exc.key, file=str(path)) from None
    parse_model(entry, str(path))  # the result must load as a catalog entry
    for w in warnings:
        _err(f"infercap: {path}: {w}")
    return ("# Imported by `infercap models import` from " + str(path.name) + "; check it, and "
            "set params_published from the model card.\n"
            + yaml.safe_dump(entry, sort_keys=False, width=100))


@app.command()
def figures(
    gpu_id: Annotated[Optional[str], typer.Argument(help="Resolve the figures for this GPU.")]
    = None,
    engine: Annotated[str, typer.Option("--engine", help="Engine profile (as `plan`: "
                                        "trtllm unless given).")] = "trtllm",
    profile: Annotated[Optional[str], typer.Option("--profile", help="Extra profile.")] = None,
    catalog: CatalogOpt = None,
    fmt: FormatOpt = None,
) -> None:
    """List the named efficiency figures: meaning, and the value in force (for a GPU) under
    the same engine profile `plan` uses by default.

    Example: infercap figures h100-sxm --engine vllm
    """
    from infercap.catalog import load_catalog
    from infercap.profile import FIGURES
    from infercap.render import render, write_output

    res = _resolver(profile)
    eng = _engine(engine)
    rows = []
    if gpu_id:
        g = load_catalog(catalog or []).gpu(gpu_id)
        vals = res.figures(g, eng)
    else:
        vals = dict(res.default.figures)
        for layer in (eng, res.user):
            if layer is not None:
                vals.update(layer.figures)
    for name, (kind, meaning) in FIGURES.items():
        row = {"figure": name, "value": vals.get(name), "kind": kind, "meaning": meaning}
        if gpu_id:
            row["source"] = res.source_of(g, name, eng)
        rows.append(row)
    cols = ["figure", "value", "kind", "meaning"] + (["source"] if gpu_id else [])
    write_output(render(rows, cols, _format(fmt)), None)


@app.command()
def explain(
    model: Annotated[str, typer.Option("--model", "-m", help="Model id.")] = "llama-3.1-70b",
    gpu: Annotated[str, typer.Option("--gpu", "-g", help="GPU id.")] = "h100-sxm",
    precision: Annotated[str, typer.Option("--precision", "-p", help="Precision preset.")]
    = "fp8",
    tp: Annotated[int, typer.Option("--tp", min=1, help="Tensor-parallel size.")] = 4,
    pp: Annotated[int, typer.Option("--pp", min=1, help="Pipeline stages.")] = 1,
    dp: Annotated[int, typer.Option("--dp", min=1, help="DP-attention ranks (MoE).")] = 1,
    ep: Annotated[int, typer.Option("--ep", min=1, help="Expert-parallel size (MoE).")] = 1,
    batch: Annotated[int, typer.Option("--batch", "-b", min=1, help="Concurrent sequences.")]
    = 64,
    input_tokens: Annotated[int, typer.Option("--input-tokens", "-i", min=1)] = 2048,
    output_tokens: Annotated[int, typer.Option("--output-tokens", "-n", min=1)] = 256,
    engine: Annotated[str, typer.Option("--engine", help="Engine profile.")] = "trtllm",
    profile: Annotated[Optional[str], typer.Option("--profile", help="Calibration profile.")]
    = None,
    catalog: CatalogOpt = None,
    fmt: Annotated[Optional[str], typer.Option("--format", "-f", help="table (a tree) or "
                                               "json (default: table on a terminal, else "
                                               "json).")] = None,
    output: OutputOpt = None,
    chart: Annotated[bool, typer.Option("--chart", help="Also chart decode step time and "
                                        "throughput against batch size (table format).")]
    = False,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write the batch chart as an "
                                                 "image (.png/.svg/.pdf; needs "
                                                 "'infercap[plot]').")] = None,
) -> None:
    """Explain one configuration: where the time goes in prefill and a decode step, compute-
    or memory-bound and by how much, where the memory goes, and which figures were applied.

    Example: infercap explain -m llama-3.1-8b -g h100-sxm -p bf16 --tp 1 -b 32
    """
    import json as _json

    from infercap.catalog import load_catalog
    from infercap.errors import UsageError
    from infercap.explain import explain as run
    from infercap.precision import PRESETS
    from infercap.render import explain_text, write_output

    _check_output(output)
    if plot is not None:
        from infercap.render import check_plot_target

        check_plot_target(plot)
    if fmt not in (None, "table", "json"):
        raise UsageError(f"expected table or json, got {fmt!r}", key="--format")
    if precision not in PRESETS:
        raise UsageError(f"expected one of {', '.join(PRESETS)}, got {precision!r}",
                         key="--precision")
    cat = load_catalog(catalog or [])
    _check_context(cat.model(model), input_tokens + output_tokens)
    eng = _engine(engine)
    d = run(cat.model(model), cat.gpu(gpu), PRESETS[precision], tp, pp, batch, input_tokens,
            output_tokens, _resolver(profile), eng, ep=ep, dp=dp)
    as_json = fmt == "json" or (fmt is None and not sys.stdout.isatty())
    curve = None
    if chart or plot or as_json:
        from infercap.explain import batch_curve

        curve = batch_curve(cat.model(model), cat.gpu(gpu), PRESETS[precision], tp, pp,
                            input_tokens, output_tokens, _resolver(profile), eng, ep=ep, dp=dp)
    if as_json:
        d["batch_curve"] = curve
        text = _json.dumps(d, indent=2, allow_nan=False, default=float) + "\n"
    else:
        text = explain_text(d)
        if chart and curve:
            text += "\n" + _batch_charts(curve, d)
    if plot is not None and curve:
        from infercap.render import plot_file

        plot_file(plot, [("decode step (ms)", curve["batch"], curve["decode_step_ms"])],
                  "batch (sequences)", "decode step (ms)",
                  f"{model} on {gpu}, {precision}: decode step vs batch", log_x=True)
    write_output(text, output)


def _batch_charts(curve: dict, d: dict) -> str:  # type: ignore[type-arg]
    from infercap.render import text_chart

    mem = [i for i, b in enumerate(curve["gemm_bound"]) if b == "memory"]
    comp = [i for i, b in enumerate(curve["gemm_bound"]) if b == "compute"]

    def pick(key: str, idx: list[int]) -> tuple[list[float], list[float]]:
        return [curve["batch"][i] for i in idx], [curve[key][i] for i in idx]

    out = []
    for key, label in (("decode_step_ms", "decode step (ms)"),
                       ("output_tokens_per_s", "output tokens/s")):
        series = [("GEMMs memory-bound", *pick(key, mem)),
                  ("GEMMs compute-bound", *pick(key, comp))]
        out.append(text_chart(series, "batch (sequences)", label,
                              f"{label} vs batch, {d['model']} on {d['layout']['gpus']} x "
                              f"{d['gpu']}", log_x=True))
    return "\n".join(out)


SCHEMA_KINDS = ("hardware", "model", "profile", "measurements")


def schema_document(kind: str) -> dict:  # type: ignore[type-arg]
    from infercap._schema import Field, Schema, to_json_schema
    from infercap.catalog import HARDWARE_SCHEMA, MODEL_SCHEMA
    from infercap.measurements import CASE_SCHEMA
    from infercap.profile import FIGURES_SCHEMA, PROFILE_SCHEMA

    if kind == "hardware":
        return to_json_schema(HARDWARE_SCHEMA, "infercap hardware catalog entry")
    if kind == "model":
        return to_json_schema(MODEL_SCHEMA, "infercap model catalog entry")
    if kind == "profile":
        doc = to_json_schema(PROFILE_SCHEMA, "infercap efficiency profile")
        doc["properties"]["gpus"] = {"type": "object",
                                     "additionalProperties": to_json_schema(FIGURES_SCHEMA)}
        return doc
    case = to_json_schema(CASE_SCHEMA)
    return to_json_schema(Schema({"cases": Field("any", required=True)}),
                          "infercap measurement file") | {
        "properties": {"cases": {"type": "array", "items": case}}}


@app.command()
def schema(
    kind: Annotated[str, typer.Argument(help="hardware, model, profile or measurements.")],
    output: OutputOpt = None,
) -> None:
    """Print the JSON Schema of a catalog, profile or measurement file, for editors.

    Example: infercap schema hardware -o hardware.schema.json, then put
    `# yaml-language-server: $schema=hardware.schema.json` at the top of a YAML file.
    """
    import json

    from infercap.errors import UsageError

    _check_output(output)
    if kind not in SCHEMA_KINDS:
        raise UsageError(f"expected one of {', '.join(SCHEMA_KINDS)}, got {kind!r}", key="KIND")
    write_output_json = json.dumps(schema_document(kind), indent=2) + "\n"
    from infercap.render import write_output

    write_output(write_output_json, output)


# ---------------------------------------------------------------- validate / calibrate

VALIDATE_COLUMNS = ("id", "metric", "measured", "predicted", "error_pct", "skipped", "scenario",
                    "model", "gpu", "engine", "file")
SUMMARY_COLUMNS = ("group", "count", "skipped", "mdape_pct", "bias_pct", "within_20_pct")


def _validate_rows(rows):  # type: ignore[no-untyped-def]
    return [
        {
            "id": r.case.id, "metric": r.case.metric, "measured": r.case.value,
            "predicted": r.predicted, "error_pct": r.error_pct, "skipped": r.skipped or "",
            "scenario": r.case.scenario, "model": r.case.model, "gpu": r.case.gpu,
            "engine": r.case.engine or "", "file": r.case.file,
        }
        for r in rows
    ]


@app.command()
def validate(
    files: Annotated[Optional[List[Path]], typer.Argument(
        help="Measurement files (docs/measurement-format.md); default: the shipped ones.")]
    = None,
    by: Annotated[str, typer.Option("--by", help="Summary grouping: comma-separated among "
                                    "metric, scenario, gpu, model, engine.")]
    = "metric,scenario",
    cases: Annotated[bool, typer.Option("--cases", help="Print every case, not the summary "
                                        "(implied by --format csv/json).")] = False,
    engine: Annotated[Optional[str], typer.Option("--engine", help="Use this engine profile "
                                                  "for every case (default: the case's).")]
    = None,
    profile: Annotated[Optional[str], typer.Option("--profile", help="Calibration profile.")]
    = None,
    catalog: CatalogOpt = None,
    allow_paths: AllowPathsOpt = None,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    quiet: QuietOpt = False,
    fail_on_targets: Annotated[bool, typer.Option(
        "--fail-on-targets", help="Exit 1 when an accuracy-target group present in the cases "
        "misses its target (a CI gate on accuracy); stderr names each miss.")] = False,
) -> None:
    """Predict every measured case with the planner's model and report the error.

    The default (table) prints the error per group and the accuracy targets; -f csv/json (or
    --cases) print one row per case (id, metric, measured, predicted, error_pct, skipped, ...).

    Example: infercap validate ../shared/benchmarks/*.yaml --by gpu,model -f table
    """
    from infercap.catalog import load_catalog
    from infercap.errors import UsageError
    from infercap.measurements import load_cases, shipped_files
    from infercap.render import Format, render, write_output
    from infercap.validate import TARGETS, predict, prepare, score, summarise, target_rows

    # validate's report is the summary: it is the default on a terminal and in a pipe alike;
    # per-case rows with -f csv/json or --cases
    form = _format(fmt or "table")
    keys = _split([by])
    for k in keys:
        if k not in ("metric", "scenario", "gpu", "model", "engine"):
            raise UsageError(f"expected metric, scenario, gpu, model or engine, got {k!r}",
                             key="--by")
    _check_output(output)
    paths = list(files or shipped_files())
    cs = load_cases(paths, _allowed(allow_paths))
    cat = load_catalog(catalog or [])
    eng = None
    if engine:
        eng = _engine(engine)
    prep = prepare(cs, cat, _resolver(profile), eng)
    rows = score(prep, predict(prep))
    n_skip = sum(1 for r in rows if r.skipped)
    if not quiet:
        _err(f"infercap: {len(rows)} cases from {len(paths)} file(s): {len(rows) - n_skip} "
             f"predicted, {n_skip} skipped")
    targets = []
    for s in summarise(target_rows(rows), ["metric"]):
        goal = TARGETS.get(s.key[0])
        targets.append({"group": s.key[0], "count": s.count, "skipped": s.skipped,
                        "mdape_pct": s.mdape_pct, "bias_pct": s.bias_pct,
                        "within_20_pct": s.within_20_pct, "target_mdape_pct": goal,
                        "meets": "yes" if s.count and s.mdape_pct <= (goal or 0) else "no"})
    if form is not Format.table or cases:
        write_output(render(_validate_rows(rows), VALIDATE_COLUMNS, form), output)
    else:
        summ = [{"group": " / ".join(s.key), "count": s.count, "skipped": s.skipped,
                 "mdape_pct": s.mdape_pct, "bias_pct": s.bias_pct,
                 "within_20_pct": s.within_20_pct} for s in summarise(rows, keys)]
        text = render(summ, SUMMARY_COLUMNS, form, title=f"error by {', '.join(keys)}")
        text += "\n" + render(targets, list(SUMMARY_COLUMNS) + ["target_mdape_pct", "meets"],
                              form, title="accuracy targets")
        write_output(text, output)
    if fail_on_targets:
        misses = [t for t in targets if t["count"] and t["meets"] == "no"]
        for t in misses:
            _err(f"infercap: accuracy target missed: {t['group']}: MdAPE {t['mdape_pct']:.1f}% "
                 f"> {t['target_mdape_pct']:g}% ({t['count']} cases)")
        if misses:
            raise typer.Exit(EXIT_NOTHING)


@app.command()
def calibrate(
    files: Annotated[Optional[List[Path]], typer.Argument(
        help="Measurement files to fit; default: the shipped ones.")] = None,
    out: Annotated[Path, typer.Option("--output", "-o", help="Profile YAML to write.")]
    = Path("profile.yaml"),
    engine: Annotated[Optional[str], typer.Option("--engine", help="Fit only cases of this "
                                                  "engine family.")] = None,
    per_gpu: Annotated[bool, typer.Option("--per-gpu/--global", help="Fit GPU-level figures "
                                          "per GPU (default) or once for all.")] = True,
    holdout: Annotated[float, typer.Option("--holdout", min=0.0, max=0.9, help="Share of "
                                           "cases held out to report out-of-sample error.")]
    = 0.5,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the hold-out split.")] = 0,
    base: Annotated[Optional[str], typer.Option("--base", help="Profile (id or file) the fit "
                                                "starts from (default: the engine's shipped "
                                                "profile).")] = None,
    only: Annotated[Optional[List[str]], typer.Option("--figures", help="Fit only these "
                                                      "figures (comma-separated).")] = None,
    scenario: Annotated[Optional[List[str]], typer.Option("--scenario", help="Fit only cases of "
                                                          "these scenarios (comma-separated).")]
    = None,
    simulate: Annotated[bool, typer.Option("--simulate", help="Also fit to finite runs "
                                           "(offline bursts with num_requests, rate cases past "
                                           "capacity), simulating them at every step: "
                                           "slower.")] = False,
    metric: Annotated[Optional[List[str]], typer.Option("--metric", help="Fit only cases of "
                                                        "these metrics (comma-separated), e.g. "
                                                        "tpot_ms.")] = None,
    catalog: CatalogOpt = None,
    quiet: QuietOpt = False,
    allow_paths: AllowPathsOpt = None,
) -> None:
    """Fit the named efficiency figures to measured cases (least squares on log error,
    physical bounds) and write a profile usable with --profile.

    Example: infercap calibrate my-runs.yaml --engine vllm -o vllm-mine.yaml
    """
    from infercap.calibrate import calibrate as fit, profile_yaml
    from infercap.catalog import load_catalog
    from infercap.measurements import load_cases, shipped_files
    from infercap.profile import load_profile
    from infercap.render import write_output

    _check_output(out)
    paths = list(files or shipped_files())
    cs = load_cases(paths, _allowed(allow_paths))
    cat = load_catalog(catalog or [])
    with _progress(quiet, "calibrating") as progress:
        report = fit(cs, cat, engine=engine, per_gpu=per_gpu, holdout=holdout, seed=seed,
                     base=load_profile(base) if base else None, only=_split(only) or None,
                     scenarios=_split(scenario) or None, progress=progress,
                     simulate=simulate, metrics=_split(metric) or None)
    write_output(profile_yaml(report), out)
    if not quiet:
        for line in report.lines():
            _err(line)


def _click_exceptions() -> tuple[type, ...]:
    """(ClickException, Exit, Abort) classes of the click typer runs on: typer >= 0.22 vendors
    click as typer._click (its Exit/Abort are typer.Exit/typer.Abort); older typer uses click."""
    try:
        from typer._click.exceptions import ClickException  # type: ignore[import-not-found]

        return ClickException, typer.Exit, typer.Abort
    except ImportError:  # pragma: no cover - older typer on plain click
        from click import exceptions as ex

        return ex.ClickException, ex.Exit, ex.Abort


def _interrupted() -> None:
    """Ctrl-C: one line and the shell's code for SIGINT (128 + 2). Output files are written
    atomically at the end (render.write_output), so none is left half-written."""
    _err("infercap: interrupted")
    sys.exit(130)


def main() -> None:
    """Entry point: run the app; turn every user error into one line on stderr and exit code 2
    (1 for "nothing meets the constraints"), never a traceback."""
    from infercap.errors import InfercapError

    click_error, click_exit, click_abort = _click_exceptions()
    try:
        rc = app(standalone_mode=False)
        if rc == 130:  # typer's Exit(130) for Ctrl-C, returned (not raised) by click
            _interrupted()
        if isinstance(rc, int) and not isinstance(rc, bool):
            sys.exit(rc)
    except InfercapError as exc:
        _err(f"infercap: error: {exc}")
        sys.exit(exc.exit_code)
    except (typer.Exit, click_exit) as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):  # typer turns Ctrl-C into Exit(130)
            _interrupted()
        sys.exit(exc.exit_code)
    except click_error as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `infercap`: show the help
            exc.show()
            sys.exit(0)
        _err(f"infercap: error: {exc.format_message()} (see --help)")
        sys.exit(EXIT_ERROR)
    except (typer.Abort, click_abort) as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):
            _interrupted()
        _err("infercap: aborted")
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        _interrupted()
    except BrokenPipeError:
        sys.exit(0)


if __name__ == "__main__":
    main()
