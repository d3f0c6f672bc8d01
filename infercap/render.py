"""Presentation: rows of plain values to CSV, JSON or a rich table. The only module that
imports rich (the CLI imports it lazily through here)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
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


def to_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    headers: dict[str, str] | None = None,
    title: str | None = None,
    width: int | None = None,
) -> str:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, header_style="bold", box=None, pad_edge=False)
    for c in columns:
        t.add_column((headers or {}).get(c, c), justify="left" if c in _TEXT else "right")
    for r in rows:
        t.add_row(*(_fmt(r.get(c)) for c in columns))
    buf = io.StringIO()
    Console(file=buf, width=width or 200, force_terminal=False, color_system=None).print(t)
    return buf.getvalue()


_TEXT = {"model", "gpu", "precision", "compute_dtype", "decode_bound", "id", "metric",
         "scenario", "engine", "skipped", "group", "name", "vendor", "figure", "source", "key",
         "value_text", "price_provider", "price_type", "price_date", "kind", "meaning", "meets"}


def write_output(text: str, output: Path | None) -> None:
    """Write to stdout, or atomically to ``output`` (temp file in the same folder, then
    rename), so a failed run never leaves a partial file."""
    import sys

    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from infercap.errors import UsageError

    folder = output.resolve().parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", dir=folder)
    except OSError as exc:
        raise UsageError(f"cannot write {str(output)!r} ({exc.strerror or exc})",
                         key="--output") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal rights
        os.replace(tmp, output)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise UsageError(f"cannot write {str(output)!r} ({exc.strerror or exc})",
                         key="--output") from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def render(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    fmt: Format,
    *,
    table_columns: Sequence[str] | None = None,
    headers: dict[str, str] | None = None,
    title: str | None = None,
) -> str:
    if fmt is Format.csv:
        return to_csv(rows, columns)
    if fmt is Format.json:
        return to_json(rows, columns)
    return to_table(rows, table_columns or columns, headers, title)


def explain_text(d: dict[str, Any], width: int = 110) -> str:
    """The `infercap explain` result as a rich tree (plain text when not on a terminal)."""
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
    return buf.getvalue()
