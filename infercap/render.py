"""Presentation: rows of plain values to CSV, JSON or a plain-text table fitted to the
terminal (see the comment above ``TRIVIAL``). The only module that imports rich (the CLI
imports it lazily through here)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Sequence


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


def _plain(v: Any) -> Any:
    """A JSON/CSV-safe plain value; non-finite floats become None (never 'inf' or 'nan')."""
    if isinstance(v, bool):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    return v


def _csv_cell(v: Any) -> str:
    v = _plain(v)
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_csv_cell(r.get(c)) for c in columns])
    return buf.getvalue()


def to_json(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    out = []
    for r in rows:
        keys = columns if columns is not None else list(r)
        out.append({k: _plain(r.get(k)) for k in keys})
    return json.dumps(out, indent=2, allow_nan=False) + "\n"


def _fmt(v: Any) -> str:
    v = _plain(v)
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "*" if v else ""
    if isinstance(v, float):
        a = abs(v)
        if a == 0:
            return "0"
        if a >= 1000:
            return f"{v:,.0f}"
        if a >= 100:
            return f"{v:.0f}"
        if a >= 10:
            return f"{v:.1f}"
        if a >= 0.1:
            return f"{v:.2f}"
        return f"{v:.3g}"
    return str(v)


# ---------------------------------------------------------------- the table format
#
# The table is the human format (a terminal, or -f table); CSV and JSON are the machine formats
# and always carry every column, unchanged. A table is fitted to the terminal's width
# (``terminal_width``: $COLUMNS, else the width of the terminal stdout is), in this order,
# stopping as soon as it fits:
#
# 1. always: columns that carry nothing in this result are left out: empty in every row, or a
#    trivial layout value in every row (``TRIVIAL``: tp, pp, dp, ep = 1);
# 2. headers split onto two lines at their spaces ("TTFT p99 ms" -> "TTFT" / "p99 ms");
# 3. text columns with the same value in every row (the scenario's model, say) move to one
#    line above the table ("every row: model llama-3.1-70b");
# 4. one space between columns instead of two, then headers on up to three lines, then the
#    shorter headers of ``TIGHT_HEADERS`` ("precision" -> "prec");
# 5. the least important columns are left out, in ``DROP_ORDER`` (each step tries 2-4 again);
#    the rest (model, gpu, precision, layout, batch, latency, throughput, GPUs, $/M tokens and
#    the flags) are never left out, and ``render`` says on stderr which columns were;
# 6. last, text cells (ids, names) are cut with an ellipsis. A number is never cut or wrapped:
#    a table of numbers alone wider than the terminal prints wider.

TRIVIAL = {"tp": 1, "pp": 1, "dp": 1, "ep": 1}

# table-only headers (a command's own ``headers`` take precedence); units stay in the header
TABLE_HEADERS = {
    "ttft_ms": "TTFT ms", "tpot_ms": "TPOT ms", "e2e_latency_s": "e2e s",
    **{f"{m}_{q}_ms": f"{m.upper()} {q} ms" for m in ("ttft", "tpot")
       for q in ("p50", "p90", "p99")},
    **{f"sim_{m}_{q}_ms": f"sim {m.upper()} {q} ms" for m in ("ttft", "tpot")
       for q in ("p50", "p90", "p99")},
    "output_tokens_per_s": "tok/s", "output_tokens_per_s_per_gpu": "tok/s/GPU",
    "tokens_per_s_per_user": "tok/s/user", "usd_per_m_output_tokens": "$/M out",
    "usd_per_m_input_tokens": "$/M in", "usd_per_m_blended_tokens": "$/M tok",
    "memory_used_gib_per_gpu": "GiB/GPU", "memory_gib_per_gpu": "GiB/GPU cap",
    "usd_per_month": "$/month", "gpus_per_instance": "GPUs/inst", "batch_cap": "batch cap",
    "headroom_pct": "headroom %", "utilisation_peak": "util peak",
    "utilisation_average": "util avg", "mean_batch_peak": "batch at peak",
    "kv_transfer_ms": "KV transfer ms", "prefill_layout": "prefill pool",
    "meets_budget": "in budget", "price_type": "price", "decode_bound": "bound",
}

# shorter still, on a narrow terminal (before any column is left out)
TIGHT_HEADERS = {"precision": "prec"}

# left out first to last when a table is still too wide (plan and size columns): what another
# column tells already or what matters least for choosing a deployment goes first
DROP_ORDER = (
    "price_type",  # on-demand or estimate
    "memory_used_gib_per_gpu",
    "decode_bound",
    "headroom_pct",
    "utilisation_peak",
    "utilisation_average",
    "mean_batch_peak",
    "kv_transfer_ms",
    "prefill_layout",  # the disaggregated prefill pool, e.g. "3x tp1pp4 fp8"
    "tokens_per_s_per_user",  # 1000 / TPOT ms
    "e2e_latency_s",
    "output_tokens_per_s",
    "usd_per_month",  # $/M tokens stay
    "usd_per_hour",
    "sim_ttft_p99_ms",
    "sim_tpot_p99_ms",
    "replicas",  # the total GPUs stay
)

_TEXT = {"model", "gpu", "precision", "compute_dtype", "decode_bound", "id", "metric",
         "scenario", "engine", "skipped", "group", "name", "vendor", "figure", "source", "key",
         "value_text", "price_provider", "price_type", "price_date", "kind", "meaning", "meets",
         "mode"}
_PROSE = {"meaning", "skipped"}  # sentences: wrapped at spaces on a narrow terminal
_TEXT_FLOOR = 8  # a text column is cut to no fewer cells than this (or its header)
_PROSE_FLOOR = 24  # a sentence column wraps at no fewer cells than this


def terminal_width() -> int | None:
    """The width a table is fitted to: ``$COLUMNS`` when set to a positive number, else the
    width of the terminal stdout is; ``None`` (no limit) when stdout is no terminal."""
    import sys

    try:
        n = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        n = 0
    if n > 0:
        return n
    try:
        if sys.stdout.isatty():
            return os.get_terminal_size(sys.stdout.fileno()).columns or None
    except (AttributeError, OSError, ValueError):
        pass
    return None


@dataclass
class TableFit:
    """How a table is laid out: the columns shown, their header lines and widths, the gap
    between columns, what moved above the table and what was left out."""

    columns: list[str]
    header_lines: list[list[str]]  # per column, top to bottom
    widths: list[int]
    gap: int
    hoisted: dict[str, str] = field(default_factory=dict)  # column -> the value of every row
    trivial: list[str] = field(default_factory=list)  # left out: nothing to tell
    dropped: list[str] = field(default_factory=list)  # left out: too wide (DROP_ORDER)
    width: int | None = None

    @property
    def total(self) -> int:
        return sum(self.widths) + self.gap * max(len(self.widths) - 1, 0)


def header_of(column: str, headers: dict[str, str] | None = None, tight: bool = False) -> str:
    """A column's table header: the command's, else (``tight``: ``TIGHT_HEADERS``, else)
    ``TABLE_HEADERS``, else its name."""
    if (headers or {}).get(column):
        return (headers or {})[column]
    return (tight and TIGHT_HEADERS.get(column)) or TABLE_HEADERS.get(column) or column


def _split_header(text: str, most: int) -> list[str]:
    """``text`` on at most ``most`` lines, split at spaces, as narrow as can be."""
    import itertools

    words = text.split(" ")
    best = [text]
    for k in range(2, min(most, len(words)) + 1):
        for cuts in itertools.combinations(range(1, len(words)), k - 1):
            bounds = (0, *cuts, len(words))
            lines = [" ".join(words[a:b]) for a, b in zip(bounds, bounds[1:])]
            if max(map(_cells, lines)) < max(map(_cells, best)):
                best = lines
    return best


def _cells(text: str) -> int:
    from rich.cells import cell_len

    return cell_len(text)


def _is_number_column(rows: Sequence[dict[str, Any]], column: str) -> bool:
    vals = [_plain(r.get(column)) for r in rows]
    vals = [v for v in vals if v is not None]
    return bool(vals) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                              for v in vals)


def fit_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    headers: dict[str, str] | None = None,
    width: int | None = None,
) -> TableFit:
    """Lay a table out within ``width`` terminal cells (``None``: no limit); the steps are in
    the comment above ``TRIVIAL``."""
    trivial = []
    if rows:
        for c in columns:
            vals = [_plain(r.get(c)) for r in rows]
            if all(v is None or v == "" for v in vals) or (
                    c in TRIVIAL and all(v == TRIVIAL[c] and not isinstance(v, bool)
                                         for v in vals)):
                trivial.append(c)
    cols = [c for c in columns if c not in trivial]
    cells = {c: [_fmt(r.get(c)) for r in rows] for c in cols}
    data_w = {c: max(map(_cells, cells[c]), default=0) for c in cols}
    constant = {c: cells[c][0] for c in cols if len(rows) >= 2 and c in _TEXT
                and c not in _PROSE and cells[c][0] not in ("", "-")
                and all(x == cells[c][0] for x in cells[c])}

    def layout(shown: list[str], level: int, dropped: list[str]) -> TableFit:
        most = 1 if level == 0 else 2 if level < 4 else 3
        tight = level >= 5
        hoisted = {c: constant[c] for c in shown if c in constant} if level >= 2 else {}
        shown = [c for c in shown if c not in hoisted]
        lines = [_split_header(header_of(c, headers, tight), most) for c in shown]
        widths = [max(data_w[c], *map(_cells, h)) for c, h in zip(shown, lines)]
        return TableFit(shown, lines, widths, 2 if level < 3 else 1, hoisted, trivial,
                        dropped, width)

    droppable = [c for c in DROP_ORDER if c in cols]
    fit = layout(cols, 0, [])
    if width is None or fit.total <= width:
        return fit
    for k in range(len(droppable) + 1):
        shown = [c for c in cols if c not in droppable[:k]]
        for level in range(6):
            fit = layout(shown, level, droppable[:k])
            if fit.total <= width:
                return fit
    # still too wide: cut text columns (never numbers), the widest first, down to a floor: a
    # sentence wraps at ``_PROSE_FLOOR`` cells, other text is cut with an ellipsis, never to
    # fewer than ``_TEXT_FLOOR`` cells, nor so far that two values (two ids) would read alike
    floors = []
    for c, h, w in zip(fit.columns, fit.header_lines, fit.widths):
        least = max(_PROSE_FLOOR if c in _PROSE else _TEXT_FLOOR, *map(_cells, h))
        if _is_number_column(rows, c) or least >= w:
            floors.append(w)
        elif c in _PROSE:
            floors.append(least)
        else:
            distinct = len(set(cells[c]))
            floors.append(next(n for n in range(least, w + 1)
                               if len({_cut(x, n) for x in cells[c]}) == distinct))
    while fit.total > width:
        spare = [i for i, (w, f) in enumerate(zip(fit.widths, floors)) if w > f]
        if not spare:
            break
        i = max(spare, key=lambda j: (fit.widths[j] - floors[j], fit.widths[j]))
        fit.widths[i] -= 1
    return fit


def _cut(text: str, width: int) -> str:
    from rich.cells import set_cell_size

    if _cells(text) <= width:
        return text
    return set_cell_size(text, max(width - 1, 0)) + "…" if width > 0 else ""


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    if _cells(text) <= width:
        return [text]
    return textwrap.wrap(text, width, break_on_hyphens=False) or [""]


def _table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    headers: dict[str, str] | None,
    title: str | None,
    width: int | None,
) -> tuple[str, TableFit]:
    fit = fit_table(rows, columns, headers, width)

    def pad(text: str, w: int, right: bool) -> str:
        text = _cut(text, w)
        fill = " " * (w - _cells(text))
        return fill + text if right else text + fill

    right = [c not in _TEXT for c in fit.columns]
    sep = " " * fit.gap
    out: list[str] = []
    if title:
        out.append(title.center(max(fit.total, _cells(title))).rstrip())
    if fit.hoisted:
        caption = "every row: " + ", ".join(f"{header_of(c, headers)} {v}"
                                            for c, v in fit.hoisted.items())
        out += _wrap(caption, width) if width else [caption]
    n = max((len(h) for h in fit.header_lines), default=1)
    for i in range(n):
        parts = []
        for h, w, r in zip(fit.header_lines, fit.widths, right):
            k = i - (n - len(h))  # bottom-aligned: the last line sits on the data
            parts.append(pad(h[k] if k >= 0 else "", w, r))
        out.append(sep.join(parts).rstrip())
    for row in rows:
        stacks = []  # each cell's lines: one, or a sentence wrapped
        for c, w in zip(fit.columns, fit.widths):
            text = _fmt(row.get(c))
            stacks.append(_wrap(text, w) if c in _PROSE else [text])
        for i in range(max((len(x) for x in stacks), default=1)):
            out.append(sep.join(pad(x[i] if i < len(x) else "", w, r)
                                for x, w, r in zip(stacks, fit.widths, right)).rstrip())
    return "\n".join(out) + "\n", fit


def to_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    headers: dict[str, str] | None = None,
    title: str | None = None,
    width: int | None = None,
) -> str:
    """The rows as a plain-text table fitted to ``width`` cells (default: ``terminal_width``;
    see the comment above ``TRIVIAL``)."""
    return _table(rows, columns, headers, title, width if width else terminal_width())[0]


def dropped_note(fit: TableFit) -> str | None:
    """The stderr line naming the columns a too-narrow terminal left out of a table."""
    if not fit.dropped:
        return None
    return (f"infercap: the table leaves out {', '.join(fit.dropped)} to fit {fit.width} "
            "columns; -f csv or -f json carry every column")


def output_target(output: Path) -> tuple[Path, str]:
    """Where ``--output FILE`` writes and how: ``(path, "replace")`` for a regular file or an
    absent one (written atomically: temp file in the same folder, then rename; through a
    symbolic link, the file it points to, keeping the link), ``(path, "stream")`` for a
    character device or a FIFO (``/dev/null``, ``/dev/stdout``, a pipe: written in place).
    A directory, a socket or block device, a dangling link, a link loop or a missing folder
    is a ``UsageError`` naming the path."""
    import stat

    from infercap.errors import UsageError

    def fail(why: str) -> UsageError:
        return UsageError(f"cannot write {str(output)!r} ({why})", key="--output")

    try:
        st = os.lstat(output)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise fail(exc.strerror or str(exc)) from None
    if st is None:  # a new file, in an existing folder
        parent = output.parent
        try:
            folder = Path(os.path.realpath(parent, strict=True))
        except (OSError, RuntimeError) as exc:
            why = getattr(exc, "strerror", None) or str(exc)
            raise fail(f"no folder {str(parent)!r}: {why}") from None
        if not folder.is_dir():
            raise fail(f"{str(parent)!r} is not a folder")
        return folder / output.name, "replace"
    if stat.S_ISLNK(st.st_mode):
        try:
            st = os.stat(output)  # through every link (/dev/stdout's /proc/self/fd/1 too)
        except FileNotFoundError:
            raise fail("a symbolic link to a missing file") from None
        except OSError as exc:  # a link loop: ELOOP
            raise fail(exc.strerror or str(exc)) from None
        if stat.S_ISREG(st.st_mode):  # replaced where it is, the link kept
            try:
                return Path(os.path.realpath(output, strict=True)), "replace"
            except (OSError, RuntimeError) as exc:
                raise fail(getattr(exc, "strerror", None) or str(exc)) from None
    if stat.S_ISREG(st.st_mode):
        return output, "replace"
    if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode):
        return output, "stream"
    if stat.S_ISDIR(st.st_mode):
        raise fail("a directory")
    raise fail("not a regular file, character device or FIFO")


def write_output(text: str, output: Path | None) -> None:
    """Write to stdout, or to ``output`` (see ``output_target``): a regular file atomically
    (temp file in the same folder, then rename, keeping the file's permissions), so a failed
    run never leaves a partial file or a temp file; a device or FIFO in place."""
    import stat
    import sys

    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from infercap.errors import UsageError

    def fail(exc: OSError) -> UsageError:
        return UsageError(f"cannot write {str(output)!r} ({exc.strerror or exc})",
                          key="--output")

    target, how = output_target(output)
    data = text.encode("utf-8")
    if how == "stream":
        try:
            fd = os.open(target, os.O_WRONLY | getattr(os, "O_NOCTTY", 0))
        except OSError as exc:
            raise fail(exc) from None
        try:
            mode = os.fstat(fd).st_mode
            if not (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):  # swapped since the check
                raise UsageError(f"cannot write {str(output)!r} (changed while writing)",
                                 key="--output")
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except OSError as exc:
            raise fail(exc) from None
        finally:
            os.close(fd)
        return
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise fail(exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)  # replacing: keep its permissions
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask  # mkstemp creates 0600; give a new file normal rights
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise fail(exc) from None
        raise


def render(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    fmt: Format,
    *,
    table_columns: Sequence[str] | None = None,
    headers: dict[str, str] | None = None,
    title: str | None = None,
    width: int | None = None,
    quiet: bool = False,
) -> str:
    """``rows`` in ``fmt``: CSV and JSON with every one of ``columns``; a table with
    ``table_columns`` (default: ``columns``) fitted to ``width`` cells (default:
    ``terminal_width``), and, unless ``quiet``, one line on stderr naming the columns it left
    out to fit."""
    if fmt is Format.csv:
        return to_csv(rows, columns)
    if fmt is Format.json:
        return to_json(rows, columns)
    import sys

    text, fit = _table(rows, table_columns or columns, headers, title,
                       width if width else terminal_width())
    note = dropped_note(fit)
    if note and not quiet:
        sys.stderr.write(note + "\n")
    return text


def explain_text(d: dict[str, Any], width: int | None = None) -> str:
    """The `infercap explain` result as a rich tree (plain text when not on a terminal),
    wrapped at ``width`` cells (default: the terminal's width, at most 110)."""
    if not width:
        width = min(terminal_width() or 110, 110)
    from rich.console import Console
    from rich.tree import Tree

    lay = d["layout"]
    root = Tree(f"{d['model']} on {lay['gpus']} x {d['gpu']} (tp={lay['tp']} pp={lay['pp']} "
                f"dp={lay['dp']} ep={lay['ep']}), {d['precision']}, engine profile "
                f"{d['engine_profile']}")
    c = d["compute"]
    root.add(f"compute: {c['dtype']} at {_fmt(c['dense_peak_tflops'])} dense TFLOPS, "
             f"{_fmt(c['memory_bandwidth_tb_per_s'])} TB/s ({c['note']})")
    m = d["memory_per_gpu"]
    mem = root.add(f"memory per GPU: {_fmt(m['capacity_gib'])} GiB, "
                   f"{'fits' if m['fits'] else 'DOES NOT FIT'} "
                   f"(up to {_fmt(m['max_sequences_that_fit'])} sequences)")
    for k in ("weights_gib", "kv_cache_gib", "workspace_gib", "reserved_gib", "free_gib"):
        mem.add(f"{k.replace('_gib', '').replace('_', ' ')}: {_fmt(m[k])} GiB")
    mem.add(f"KV cache per sequence: {_fmt(m['kv_cache_per_sequence_mib'])} MiB")
    for key, title in (("prefill", "prefill of one prompt"), ("decode_step", "decode step")):
        s = d[key]
        head = (f"{title}: {_fmt(s['total_ms'])} ms per stage"
                + (f" (prompt {s['prompt_tokens']} tokens, {_fmt(s['latency_ms'])} ms through "
                   "all stages)" if key == "prefill" else
                   f" at context {_fmt(s['context_tokens'])} "
                   f"({_fmt(s['time_per_output_token_ms'])} ms per token)"))
        node = root.add(head)
        total = max(s["total_ms"], 1e-12)
        for part in ("gemm_ms", "attention_ms", "activation_io_ms", "communication_ms",
                     "layer_overhead_ms"):
            node.add(f"{part[:-3].replace('_', ' ')}: {_fmt(s[part])} ms "
                     f"({100 * s[part] / total:.0f}%)")
        node.add(f"GEMMs {s['gemm_bound']}-bound: compute {_fmt(s['gemm_compute_ms'])} ms vs "
                 f"memory {_fmt(s['gemm_memory_ms'])} ms; intensity "
                 f"{_fmt(s['gemm_arithmetic_intensity_flop_per_byte'])} FLOP/B vs ridge "
                 f"{_fmt(s['ridge_point_flop_per_byte'])} "
                 f"(x{_fmt(s['intensity_over_ridge'])})")
        if s["host_bound"]:
            node.add(f"CPU dispatch bound: {_fmt(s['host_dispatch_ms'])} ms")
    sv = d["serving"]
    srv = root.add(f"serving at batch {sv['batch']}")
    for k in ("ttft_ms", "tpot_ms", "e2e_latency_s", "output_tokens_per_s",
              "output_tokens_per_s_per_gpu", "prefill_share_of_gpu_time", "usd_per_hour",
              "usd_per_m_output_tokens"):
        srv.add(f"{k}: {_fmt(sv[k])}")
    figs = root.add("efficiency figures applied")
    for name, fig in d["figures"].items():
        figs.add(f"{name} = {_fmt(fig['value'])}  [{fig['source']}]")
    buf = io.StringIO()
    Console(file=buf, width=width, force_terminal=False, color_system=None,
            markup=False).print(root)
    return "".join(line.rstrip() + "\n" for line in buf.getvalue().splitlines())


MARKERS = "*o+x#@%&=~abcdefghijklmnopqrstuvwxyz"


def text_chart(
    series: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    x_label: str,
    y_label: str,
    title: str = "",
    width: int = 72,
    height: int = 18,
    log_x: bool = False,
) -> str:
    """A scatter/line chart in plain characters (no colours, no terminal needed): one marker
    per series, axes with their ranges, a legend."""
    import math as _m

    pts = [(x, y) for _, xs, ys in series for x, y in zip(xs, ys)
           if _m.isfinite(x) and _m.isfinite(y) and (x > 0 or not log_x)]
    if not pts:
        return f"{title}\n(no points)\n"
    fx = (lambda v: _m.log10(v)) if log_x else (lambda v: v)
    x0, x1 = min(fx(p[0]) for p in pts), max(fx(p[0]) for p in pts)
    y0, y1 = min(0.0, min(p[1] for p in pts)), max(p[1] for p in pts)
    x1 = x1 if x1 > x0 else x0 + 1
    y1 = y1 if y1 > y0 else y0 + 1
    grid = [[" "] * width for _ in range(height)]
    legend = []
    for k, (name, xs, ys) in enumerate(series):
        mark = MARKERS[k % len(MARKERS)]
        legend.append(f"{mark} {name}")
        for x, y in zip(xs, ys):
            if not (_m.isfinite(x) and _m.isfinite(y)) or (log_x and x <= 0):
                continue
            c = int(round((fx(x) - x0) / (x1 - x0) * (width - 1)))
            r = height - 1 - int(round((y - y0) / (y1 - y0) * (height - 1)))
            grid[r][c] = mark
    ylab_hi, ylab_lo = _fmt(float(y1)), _fmt(float(y0))
    pad = max(len(ylab_hi), len(ylab_lo))
    lines = [title] if title else []
    lines.append(f"{y_label}")
    for i, row in enumerate(grid):
        lab = ylab_hi if i == 0 else (ylab_lo if i == height - 1 else "")
        lines.append(f"{lab:>{pad}} |" + "".join(row))
    lines.append(" " * pad + " +" + "-" * width)
    lo = _fmt(float(10 ** x0 if log_x else x0))
    hi = _fmt(float(10 ** x1 if log_x else x1))
    axis = f"{lo}{' ' * max(1, width - len(lo) - len(hi))}{hi}"
    lines.append(" " * (pad + 2) + axis)
    lines.append(" " * (pad + 2) + x_label + (" (log scale)" if log_x else ""))
    lines.append("   ".join(legend))
    return "\n".join(lines) + "\n"


def check_plot_target(path: Path) -> None:
    """Fail before any work when --plot cannot be honoured (suffix, matplotlib, folder)."""
    import importlib.util

    from infercap.errors import UsageError

    if path.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise UsageError(f"expected a .png, .svg or .pdf file, got {str(path)!r}", key="--plot")
    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError("matplotlib is not installed: pip install 'infercap[plot]'",
                         key="--plot")
    if not path.resolve().parent.is_dir():
        raise UsageError(f"cannot write {str(path)!r} (no folder {str(path.parent)!r})",
                         key="--plot")


def plot_file(
    path: Path,
    series: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    x_label: str,
    y_label: str,
    title: str = "",
    log_x: bool = False,
) -> None:
    """The same chart as an image through matplotlib (the optional `plot` extra)."""
    from infercap.errors import UsageError

    if path.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise UsageError(f"expected a .png, .svg or .pdf file, got {str(path)!r}", key="--plot")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("matplotlib is not installed: pip install 'infercap[plot]'",
                         key="--plot") from None
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, xs, ys in series:
        ax.plot(list(xs), list(ys), marker="o", markersize=3, label=name)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    folder = path.resolve().parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=folder)
    os.close(fd)
    try:
        fig.savefig(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)


def distinct_pair(value: float, threshold: float, start: int = 2, most: int = 10) -> tuple[str, str]:
    """``value`` and ``threshold`` with the fewest decimals (at least ``start``) that tell them
    apart, so a reported breach never reads "0.13 > 0.13" (0.1326 against 0.132 prints
    "0.133 > 0.132"); equal numbers print at ``start`` decimals."""
    for d in range(start, most + 1):
        a, b = f"{value:,.{d}f}", f"{threshold:,.{d}f}"
        if a != b:
            return a, b
    return f"{value:,.{start}f}", f"{threshold:,.{start}f}"
