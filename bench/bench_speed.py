"""Speed benchmark for infercap: the full sweep grid, `infercap plan` and `infercap --help`.

Run from anywhere:  python bench/bench_speed.py [--profile] [--importtime] [--no-write]

Targets (checked on the machine it runs on, originally a 2-core box):

1. every catalog model x every catalog GPU x TP {1,2,4,8} x PP {1,2,4} x 64 batch sizes x
   {bf16, fp8, fp4} evaluated in under 3 s (median of 3 runs, catalog loaded once, untimed);
2. `infercap plan` with default arguments (`-f csv`, output discarded) under 1 s wall
   (median of 5 subprocess runs, interpreter start-up included);
3. `infercap --help` under 0.3 s wall (median of 5 subprocess runs);
4. `infercap size examples/chat-70b.yaml` (the issue's scenario: llama-3.1-70b, 50 requests/s
   peak, 2,000 in / 300 out, p99 TTFT and TPOT SLOs) under 2 s wall (median of 5 runs);
5. `infercap size examples/chat-70b-longtail.yaml` (the same with long-tailed prompt lengths:
   a bigger queueing mixture, and the chosen deployments checked by simulation) under 20 s
   wall (median of 3 runs).

A target passes when its *median* is under the limit; best and every run are reported too.
When target 1 fails (or with --profile) the sweep loop is run under cProfile and the top
functions are reported; when target 3 fails (or with --importtime) the slowest imports of
`import infercap.cli` are reported from `python -X importtime`.

The markdown report is printed and written to bench/SPEED.md (next to this script).
Standard library + numpy only.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as _dt
import io
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:  # run from a checkout even when not installed
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

TARGET_GRID_S = 3.0
TARGET_PLAN_S = 1.0
TARGET_HELP_S = 0.3
TARGET_SIZE_S = 2.0
SIZE_SCENARIO = "examples/chat-70b.yaml"
TARGET_LONGTAIL_S = 20.0
LONGTAIL_SCENARIO = "examples/chat-70b-longtail.yaml"
GRID_REPEATS = 3
CLI_REPEATS = 5
PRECISIONS = ("bf16", "fp8", "fp4")
TPS = (1, 2, 4, 8)
PPS = (1, 2, 4)
N_BATCHES = 64
WORKLOAD = (2048, 256)


# ---------------------------------------------------------------- machine


def machine() -> dict[str, str]:
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout
        nproc = nproc.strip()
    except (OSError, subprocess.CalledProcessError):
        nproc = str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                    else os.cpu_count())
    cpu, mhz = "", ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not cpu:
                cpu = value.strip()
            elif key.strip() == "cpu MHz" and not mhz:
                mhz = value.strip()
    except OSError:
        pass
    cpu = cpu or platform.processor() or "unknown"
    try:
        cpu += f" ({float(mhz):.0f} MHz)" if mhz else ""
    except ValueError:
        pass
    return {
        "code": code_version(),
        "nproc": nproc,
        "cpu": cpu,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def code_version() -> str:
    """Commit and whether the working tree differs from it (read-only git queries)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=ROOT, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, cwd=ROOT, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    n = len([ln for ln in dirty.splitlines() if ln.strip()])
    return f"{head}" + (f" + uncommitted changes in {n} tracked file(s)" if n else " (clean)")


# ---------------------------------------------------------------- target 1: the grid


def grid_setup():  # type: ignore[no-untyped-def]
    from infercap.catalog import load_catalog
    from infercap.precision import PRESETS
    from infercap.profile import Resolver, load_profile
    from infercap.sweep import Workload, default_batches

    t0 = time.perf_counter()
    cat = load_catalog()
    load_s = time.perf_counter() - t0
    models = [cat.models[k] for k in sorted(cat.models)]
    gpus = [cat.gpus[k] for k in sorted(cat.gpus)]
    precs = [PRESETS[p] for p in PRECISIONS]
    resolver = Resolver(load_profile("default"))
    batches = default_batches(N_BATCHES)
    return {
        "models": models,
        "gpus": gpus,
        "precisions": precs,
        "resolver": resolver,
        "batches": batches,
        "workload": Workload(*WORKLOAD),
        "catalog_load_s": load_s,
    }


def run_grid(s) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """One pass over the whole grid; returns (configurations evaluated, rows that fit)."""
    from infercap.sweep import sweep

    evaluated = fitting = 0
    for model in s["models"]:
        # the target grid is TP x PP; DP-attention layouts of MoE models (plan's --dp) are
        # left out here so that the count matches the target's definition
        r = sweep(model, s["gpus"], s["precisions"], s["workload"], s["resolver"],
                  tps=TPS, pps=PPS, batches=s["batches"], dps=(1,))
        evaluated += r.evaluated
        fitting += len(r)
    return evaluated, fitting


def bench_grid(s) -> dict:  # type: ignore[no-untyped-def]
    times, evaluated, fitting = [], 0, 0
    for _ in range(GRID_REPEATS):
        t0 = time.perf_counter()
        evaluated, fitting = run_grid(s)
        times.append(time.perf_counter() - t0)
    nominal = (len(s["models"]) * len(s["gpus"]) * len(TPS) * len(PPS) * len(s["batches"])
               * len(s["precisions"]))
    med = statistics.median(times)
    return {
        "times": times,
        "best": min(times),
        "median": med,
        "evaluated": evaluated,
        "fitting": fitting,
        "nominal": nominal,
        "per_s": evaluated / med if med else float("inf"),
        "per_s_best": evaluated / min(times) if min(times) else float("inf"),
    }


def profile_grid(s, top: int = 25) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """cProfile one grid pass; (by cumulative time, by own time) as text tables."""
    prof = cProfile.Profile()
    prof.enable()
    run_grid(s)
    prof.disable()
    out = []
    for key in ("cumulative", "tottime"):
        buf = io.StringIO()
        st = pstats.Stats(prof, stream=buf)
        st.sort_stats(key).print_stats(top)
        out.append(_trim_pstats(buf.getvalue()))
    return out[0], out[1]


def _trim_pstats(text: str) -> str:
    """Keep the table of a pstats dump, with paths shortened to the package."""
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
    keep = []
    for ln in lines[start:]:
        if not ln.strip():
            continue
        for prefix in (str(ROOT) + os.sep, sysconfig.get_paths()["purelib"] + os.sep,
                       sysconfig.get_paths()["stdlib"] + os.sep):
            ln = ln.replace(prefix, "")
        keep.append(ln)
    return "\n".join(keep)


# ---------------------------------------------------------------- targets 2-3: the CLI


def infercap_command() -> tuple[list[str], str]:
    """The console script next to this interpreter (what a user runs, without shell shims such
    as pyenv's), else the one on PATH, else `python -m infercap`."""
    exe = "infercap.exe" if os.name == "nt" else "infercap"
    local = Path(sysconfig.get_path("scripts")) / exe
    if local.is_file() and os.access(local, os.X_OK):
        return [str(local)], str(local)
    found = shutil.which("infercap")
    if found:
        return [found], found
    return [sys.executable, "-m", "infercap"], f"{sys.executable} -m infercap"


def time_cmd(cmd: list[str], repeats: int = CLI_REPEATS) -> dict:
    times, rcs, err = [], [], ""
    for _ in range(repeats):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
        times.append(time.perf_counter() - t0)
        rcs.append(p.returncode)
        err = p.stderr.decode(errors="replace").strip()
    return {"times": times, "best": min(times), "median": statistics.median(times), "rcs": rcs,
            "stderr": err}


def importtime(module: str = "infercap.cli", top: int = 20) -> tuple[float, float, list[str]]:
    """(seconds for `module`, seconds for all imports, top imports by cumulative time) of
    `python -X importtime -c "import module"`."""
    p = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                       capture_output=True, text=True, cwd=ROOT)
    rows = []
    for line in p.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        parts = line[len("import time:"):].split("|")
        if len(parts) != 3:
            continue
        try:
            self_us, cum_us = int(parts[0]), int(parts[1])
        except ValueError:
            continue
        name = parts[2].rstrip()
        depth = (len(name) - len(name.lstrip())) // 2
        rows.append((cum_us, self_us, depth, name.strip()))
    own = next((r[0] for r in rows if r[2] == 0 and r[3] == module), 0)
    total = sum(r[0] for r in rows if r[2] == 0)  # everything imported, site included
    rows.sort(reverse=True)
    lines = [f"| {name} | {cum / 1e3:.1f} | {own / 1e3:.1f} | {depth} |"
             for cum, own, depth, name in rows[:top]]
    return own / 1e6, total / 1e6, lines


# ---------------------------------------------------------------- report


def verdict(value: float, limit: float) -> str:
    return "PASS" if value < limit else "FAIL"


def fmt_times(ts: list[float]) -> str:
    return ", ".join(f"{t:.3f}" for t in ts)


def report(m: dict, s, g: dict, plan: dict, helps: dict, cmd_text: str,  # type: ignore
           prof: tuple[str, str] | None, imp: tuple[float, float, list[str]] | None) -> str:
    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    v1 = verdict(g["median"], TARGET_GRID_S)
    v2 = verdict(plan["median"], TARGET_PLAN_S)
    v3 = verdict(helps["median"], TARGET_HELP_S)
    L = []
    L.append("# infercap speed benchmark")
    L.append("")
    L.append(f"Generated by `python bench/bench_speed.py` on {now}.")
    L.append("")
    L.append("## Machine")
    L.append("")
    L.append(f"- nproc: {m['nproc']}")
    L.append(f"- CPU: {m['cpu']}")
    L.append(f"- Python: {m['python']}; numpy {m['numpy']}")
    L.append(f"- Platform: {m['platform']}")
    L.append(f"- Code: {m['code']}")
    L.append("")
    L.append("## Summary")
    L.append("")
    L.append("| target | limit | median | best | result |")
    L.append("|---|---|---|---|---|")
    L.append(f"| 1. full sweep grid | < {TARGET_GRID_S:g} s | {g['median']:.3f} s | "
             f"{g['best']:.3f} s | **{v1}** |")
    L.append(f"| 2. `infercap plan -f csv` (defaults) | < {TARGET_PLAN_S:g} s | "
             f"{plan['median']:.3f} s | {plan['best']:.3f} s | **{v2}** |")
    L.append(f"| 3. `infercap --help` | < {TARGET_HELP_S:g} s | {helps['median']:.3f} s | "
             f"{helps['best']:.3f} s | **{v3}** |")
    L.append("")
    L.append("A target passes when the median run is under the limit.")
    L.append("")
    L.append("## 1. Full sweep grid")
    L.append("")
    nb = len(s["batches"])
    L.append(f"{len(s['models'])} models x {len(s['gpus'])} GPUs x TP {{{','.join(map(str, TPS))}}} x PP "
             f"{{{','.join(map(str, PPS))}}} x {nb} batch sizes (`default_batches({N_BATCHES})`, "
             f"{s['batches'][0]:g}..{s['batches'][-1]:g}) x precisions {', '.join(PRECISIONS)}; "
             f"workload {WORKLOAD[0]} in / {WORKLOAD[1]} out; `sweep()` called once per model "
             f"with every GPU. Catalog and default profile loaded once before timing "
             f"({s['catalog_load_s']:.3f} s, not counted).")
    L.append("")
    L.append("| metric | value |")
    L.append("|---|---|")
    L.append(f"| runs (s) | {fmt_times(g['times'])} |")
    L.append(f"| best / median wall | {g['best']:.3f} s / {g['median']:.3f} s |")
    L.append(f"| nominal grid (models x GPUs x layouts x batches x precisions) | "
             f"{g['nominal']:,} |")
    L.append(f"| configurations evaluated (sum of `Result.evaluated`) | {g['evaluated']:,} |")
    L.append(f"| configurations that fit memory (rows returned) | {g['fitting']:,} |")
    L.append(f"| configurations / s (median run) | {g['per_s']:,.0f} |")
    L.append(f"| configurations / s (best run) | {g['per_s_best']:,.0f} |")
    L.append("")
    L.append("`evaluated` is smaller than the nominal grid: layouts a model cannot run (heads not "
             "divisible by TP, ...) and precisions a GPU does not offer are dropped before the "
             "batch broadcast.")
    L.append("")
    L.append("## 2-3. Command line (subprocess wall time, interpreter start-up included)")
    L.append("")
    L.append(f"Command: `{cmd_text}` (console script of this interpreter; output discarded).")
    L.append("")
    L.append("| command | runs (s) | best | median | exit codes |")
    L.append("|---|---|---|---|---|")
    L.append(f"| `infercap plan -f csv` | {fmt_times(plan['times'])} | {plan['best']:.3f} | "
             f"{plan['median']:.3f} | {sorted(set(plan['rcs']))} |")
    L.append(f"| `infercap --help` | {fmt_times(helps['times'])} | {helps['best']:.3f} | "
             f"{helps['median']:.3f} | {sorted(set(helps['rcs']))} |")
    L.append("")
    if plan["stderr"]:
        L.append(f"`plan` stderr (last run): `{plan['stderr'].splitlines()[-1]}`")
        L.append("")
    if imp is not None:
        own, total, lines = imp
        L.append("## Import time of `import infercap.cli` (`python -X importtime`)")
        L.append("")
        L.append(f"`infercap.cli` and what it pulls in: {own * 1e3:.1f} ms; all imports "
                 f"(`site` included): {total * 1e3:.1f} ms. Top entries by cumulative time:")
        L.append("")
        L.append("| module | cumulative ms | self ms | depth |")
        L.append("|---|---|---|---|")
        L.extend(lines)
        L.append("")
    if prof is not None:
        L.append("## cProfile of one grid pass")
        L.append("")
        L.append("By cumulative time:")
        L.append("")
        L.append("```")
        L.append(prof[0])
        L.append("```")
        L.append("")
        L.append("By own time:")
        L.append("")
        L.append("```")
        L.append(prof[1])
        L.append("```")
        L.append("")
    return "\n".join(L).rstrip() + "\n"


def big_catalog(cmd: list[str], n: int = 10_000) -> str:
    """`infercap plan` on one model of a user catalog of ``n`` model entries: the first run
    parses every file (and fills the parse cache), later runs read the cache."""
    import tempfile

    base = (ROOT / "models" / "llama-3.1-8b.yaml").read_text()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "cat" / "models"
        folder.mkdir(parents=True)
        for i in range(n):
            (folder / f"m{i:05d}.yaml").write_text(base.replace("id: llama-3.1-8b",
                                                                f"id: m{i:05d}"))
        env_cache = str(Path(tmp) / "cache")
        run = cmd + ["plan", "-m", "m00042", "--gpu", "h100-sxm", "-f", "csv", "-q",
                     "--catalog", str(folder.parent)]
        old = os.environ.get("INFERCAP_CACHE_DIR")
        os.environ["INFERCAP_CACHE_DIR"] = env_cache
        try:
            cold = time_cmd(run, repeats=1)
            warm = time_cmd(run)
        finally:
            if old is None:
                os.environ.pop("INFERCAP_CACHE_DIR", None)
            else:
                os.environ["INFERCAP_CACHE_DIR"] = old
    verdict = "PASS" if warm["median"] < TARGET_PLAN_S else "FAIL"
    return (f"\n## 4. A {n:,}-entry user catalog\n\n"
            f"`infercap plan -m m00042 --gpu h100-sxm --catalog <{n:,} model files>`: first run "
            f"(parses every file, fills the parse cache) {cold['median']:.2f} s; later runs "
            f"(median of {len(warm['times'])}) {warm['median']:.2f} s — **{verdict}** against "
            f"the {TARGET_PLAN_S:g} s `plan` target. Every entry is validated on every run; "
            "only the YAML parse is cached (`infercap/yamlio.py`).\n")


def size_section(res: dict) -> str:
    v = verdict(res["median"], TARGET_SIZE_S)
    last = res["stderr"].splitlines()[-1] if res["stderr"] else ""
    return (f"\n## 5. `infercap size {SIZE_SCENARIO} -f csv`\n\n"
            "llama-3.1-70b on every GPU and precision of the scenario, every layout of 1-8 GPUs, "
            "aggregated and disaggregated serving, a bisection of the rate each configuration "
            "serves within the p99 SLOs. "
            f"Runs (s): {fmt_times(res['times'])}; median {res['median']:.3f} s — **{v}** "
            f"against the {TARGET_SIZE_S:g} s target; exit codes {sorted(set(res['rcs']))}."
            + (f"\n\nstderr (last run): `{last}`" if last else "") + "\n")


def longtail_section(res: dict) -> str:
    v = verdict(res["median"], TARGET_LONGTAIL_S)
    return (f"\n## 6. `infercap size {LONGTAIL_SCENARIO} -f csv`\n\n"
            "The same sizing with long-tailed prompt lengths (lognormal, p99 about 5x the "
            "mean): the queueing model's TTFT mixture has a component per landing block, "
            "companion count and prompt length class, and each GPU's chosen aggregated "
            "deployment is checked by simulation. "
            f"Runs (s): {fmt_times(res['times'])}; median {res['median']:.3f} s — **{v}** "
            f"against the {TARGET_LONGTAIL_S:g} s target; exit codes {sorted(set(res['rcs']))}.\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", action="store_true",
                    help="cProfile the grid even when target 1 passes")
    ap.add_argument("--importtime", action="store_true",
                    help="report -X importtime even when target 3 passes")
    ap.add_argument("--no-write", action="store_true", help="do not write bench/SPEED.md")
    args = ap.parse_args(argv)

    m = machine()
    s = grid_setup()
    g = bench_grid(s)
    cmd, cmd_text = infercap_command()
    plan = time_cmd(cmd + ["plan", "-f", "csv"])
    helps = time_cmd(cmd + ["--help"])
    prof = profile_grid(s) if args.profile or g["median"] >= TARGET_GRID_S else None
    imp = importtime() if args.importtime or helps["median"] >= TARGET_HELP_S else None
    text = report(m, s, g, plan, helps, cmd_text, prof, imp)
    text += big_catalog(cmd)
    sized = time_cmd(cmd + ["size", SIZE_SCENARIO, "-f", "csv"])
    text += size_section(sized)
    longtail = time_cmd(cmd + ["size", LONGTAIL_SCENARIO, "-f", "csv"], repeats=3)
    text += longtail_section(longtail)
    sys.stdout.write(text)
    if not args.no_write:
        (HERE / "SPEED.md").write_text(text)
    failed = (g["median"] >= TARGET_GRID_S or plan["median"] >= TARGET_PLAN_S
              or helps["median"] >= TARGET_HELP_S or sized["median"] >= TARGET_SIZE_S
              or longtail["median"] >= TARGET_LONGTAIL_S)
    bad_rc = (any(rc not in (0, 1) for rc in plan["rcs"]) or any(helps["rcs"])
              or any(sized["rcs"]) or any(rc not in (0, 1) for rc in longtail["rcs"]))
    return 1 if failed or bad_rc else 0


if __name__ == "__main__":
    sys.exit(main())
