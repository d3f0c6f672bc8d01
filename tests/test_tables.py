"""The table format fits the terminal (issue 16): at 80 and 120 columns every line of
`infercap plan` and `infercap size` fits, every number is whole and equal to the CSV's, the
columns left out are the trivial ones (tp/pp/dp/ep = 1 in every row, or empty) and, to fit,
those named on stderr in ``render.DROP_ORDER``; CSV and JSON stay complete and do not depend
on the terminal's width.

The table is parsed as whitespace-separated tokens: each row's tokens must be, in order, the
tokens of the kept columns' CSV values (a number cut or wrapped would not parse, or would shift
every token after it)."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

import pytest
from rich.cells import cell_len

from infercap import cli, render
from infercap.sweep import COLUMNS as PLAN_COLUMNS

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "examples" / "chat-70b.yaml"
WIDTHS = (80, 120)
NOTE = re.compile(r"^infercap: the table leaves out (.+) to fit (\d+) columns; -f csv or -f json "
                  r"carry every column$")


def _size_spec():  # type: ignore[no-untyped-def]
    """The size table's columns and headers, as the CLI builds them for the scenario."""
    if hasattr(cli, "_size_table"):
        from infercap.scenario import load_scenario

        cols = cli._size_table(load_scenario(SCENARIO))
        return list(cols), cli._size_headers(cols)
    return list(cli.SIZE_TABLE), dict(cli.SIZE_HEADERS)


COMMANDS = {
    "plan": (["plan"], lambda: (list(cli.PLAN_TABLE), dict(cli.PLAN_HEADERS))),
    "plan-moe": (["plan", "-m", "deepseek-v3"],
                 lambda: (list(cli.PLAN_TABLE), dict(cli.PLAN_HEADERS))),
    "size": (["size", str(SCENARIO)], _size_spec),
}


def parse_csv(text: str) -> tuple[list[str], list[dict[str, str]]]:
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], [dict(zip(rows[0], r)) for r in rows[1:]]


@pytest.fixture(scope="module")
def csv_out(run_cli):
    out = {}
    for name, (args, _) in COMMANDS.items():
        rc, text, err = run_cli([*args, "-f", "csv", "-q"])
        assert rc == 0, err
        out[name] = text
    return out


@pytest.fixture(scope="module")
def tables(run_cli):
    out = {}
    for name, (args, _) in COMMANDS.items():
        for w in WIDTHS:
            rc, text, err = run_cli([*args, "-f", "table"], env={"COLUMNS": str(w)})
            assert rc == 0, err
            out[name, w] = (text, err)
    return out


def _number(token: str) -> float:
    return float(token.replace(",", ""))


def _close(shown: str, value: str) -> bool:
    """A table number (``render._fmt``: 3 significant digits or a thousands-grouped integer)
    against the CSV's (6 significant digits)."""
    x, y = _number(shown), float(value)
    if "e" in shown.lower():
        return math.isclose(x, y, rel_tol=5e-3)
    decimals = len(shown.split(".")[1]) if "." in shown else 0
    return abs(x - y) <= 0.5 * 10 ** -decimals * (1 + 1e-9) + 1e-6 * abs(y)


def _expected_tokens(column: str, value: str, numeric: bool) -> list[tuple[str, str]]:
    """(kind, CSV value) per token the table shows for one cell."""
    if value == "":
        return [] if not numeric else [("none", "")]
    if value in ("true", "false"):
        return [("flag", "*")] if value == "true" else []
    if numeric:
        return [("number", value)]
    return [("text", t) for t in value.split()]


def _is_numeric(column: str, rows: list[dict[str, str]]) -> bool:
    vals = [r[column] for r in rows if r[column] not in ("", "true", "false")]
    try:
        [float(v) for v in vals]
    except ValueError:
        return False
    return bool(vals) and column not in render._TEXT


def check_table(text: str, err: str, width: int, csv_text: str, columns: list[str],
                headers: dict[str, str]) -> dict:
    """Assert everything about one table; return what it kept, moved and left out."""
    lines = text.splitlines()
    for line in lines:
        assert cell_len(line) <= width, f"{cell_len(line)} > {width}: {line!r}"
    header, rows = parse_csv(csv_text)
    assert rows
    n = len(rows)
    data, head = lines[-n:], lines[:-n]
    # left out for the width: named on stderr (one line), in DROP_ORDER's order
    notes = [m for m in map(NOTE.match, err.splitlines()) if m]
    assert len(notes) <= 1
    dropped = notes[0].group(1).split(", ") if notes else []
    if notes:
        assert int(notes[0].group(2)) == width
    order = [c for c in render.DROP_ORDER if c in columns]
    assert dropped == order[:len(dropped)]
    # moved above the table: "every row: <header> <value>, ..."
    hoisted = {}
    captions = [line for line in head if line.startswith("every row: ")]
    for caption in captions:
        for part in caption[len("every row: "):].split(", "):
            c = next(c for c in columns if part.startswith(render.header_of(c, headers) + " "))
            hoisted[c] = part[len(render.header_of(c, headers)) + 1:]
            assert all(r[c] == hoisted[c] for r in rows), c
    head = [line for line in head if line not in captions]
    assert 1 <= len(head) <= 3  # header lines
    # trivial: a layout size of 1 in every row, or empty in every row
    trivial = [c for c in columns if all(r[c] == "" for r in rows)
               or (c in render.TRIVIAL and all(r[c] == str(render.TRIVIAL[c]) for r in rows))]
    kept = [c for c in columns if c not in trivial and c not in dropped and c not in hoisted]
    # the headers: every word of every kept column's header (or of its tight form, on a
    # narrow terminal: "prec" for "precision"), and nothing else
    words = sorted(w for c in kept for w in render.header_of(c, headers).split())
    tight = {render.header_of(c, headers, tight=True): render.header_of(c, headers)
             for c in kept}
    assert sorted(tight.get(w, w) for w in " ".join(head).split()) == words
    # the data: each row's tokens, in order, are its kept cells', every number whole
    numeric = {c: _is_numeric(c, rows) for c in kept}
    for line, row in zip(data, rows):
        want = [t for c in kept for t in _expected_tokens(c, row[c], numeric[c])]
        got = line.split()
        assert len(got) == len(want), f"{got} vs {want}"
        for g, (kind, value) in zip(got, want):
            if kind == "number":
                assert re.fullmatch(r"-?[\d,]+(\.\d+)?(e[-+]\d+)?", g), g
                assert _close(g, value), (g, value)
            elif kind == "none":
                assert g == "-"
            elif kind == "flag":
                assert g == "*"
            else:
                assert g == value  # ids are never cut at these widths
    return {"kept": kept, "dropped": dropped, "hoisted": hoisted, "trivial": trivial}


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", list(COMMANDS))
def test_table_fits_and_numbers_are_whole(tables, csv_out, name, width):
    columns, headers = COMMANDS[name][1]()
    text, err = tables[name, width]
    got = check_table(text, err, width, csv_out[name], columns, headers)
    # what must stay: model (or moved above), gpu, precision, batch, latency, throughput,
    # $/M tokens and the flags
    for c in ("gpu", "precision", "batch", "batch_cap", "ttft_ms", "tpot_ms",
              "output_tokens_per_s_per_gpu", "usd_per_m_output_tokens",
              "usd_per_m_blended_tokens", "pareto", "meets_budget", "best", "gpus"):
        if c in columns:
            assert c in got["kept"] or c in got["hoisted"], c
    assert [c for c in got["dropped"] if c not in render.DROP_ORDER] == []
    # the per-instance $/h sits right after its GPU count
    if "usd_per_hour" in got["kept"]:
        i = got["kept"].index("usd_per_hour")
        assert got["kept"][i - 1] == "gpus"


def test_plan_dense_leaves_out_trivial_layout(tables, csv_out):
    _, rows = parse_csv(csv_out["plan"])
    assert all(r["dp"] == r["ep"] == "1" for r in rows)  # llama-3.1-70b: dense
    for w in WIDTHS:
        got = check_table(*tables["plan", w], w, csv_out["plan"], *COMMANDS["plan"][1]())
        assert {"dp", "ep"} <= set(got["trivial"])
        for c in ("tp", "pp"):  # shown exactly when some row is not 1
            assert (c in got["kept"]) == any(r[c] != "1" for r in rows), c


def test_plan_moe_keeps_dp(tables, csv_out):
    _, rows = parse_csv(csv_out["plan-moe"])
    assert len({r["dp"] for r in rows}) > 1
    for w in WIDTHS:
        got = check_table(*tables["plan-moe", w], w, csv_out["plan-moe"],
                          *COMMANDS["plan-moe"][1]())
        assert "dp" in got["kept"]


def test_size_keeps_the_deployment_columns(tables, csv_out):
    for w in WIDTHS:
        got = check_table(*tables["size", w], w, csv_out["size"], *_size_spec())
        assert {"gpu", "mode", "gpus", "usd_per_m_blended_tokens", "meets_budget",
                "best"} <= set(got["kept"])


def test_note_only_when_columns_are_left_out(run_cli, tables):
    # wide enough: nothing left out for the width, no note
    rc, out, err = run_cli(["plan", "-f", "table"], env={"COLUMNS": "250"})
    assert rc == 0 and "leaves out" not in err
    assert "tok/s/GPU" in out and "$/h/inst" in out
    # 80 columns: something is, said once; -q says nothing
    _, err80 = tables["plan", 80]
    assert sum("leaves out" in line for line in err80.splitlines()) == 1
    rc, _, err = run_cli(["plan", "-f", "table", "-q"], env={"COLUMNS": "80"})
    assert rc == 0 and err == ""


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_machine_formats_ignore_the_width(run_cli, csv_out, fmt):
    args = COMMANDS["plan"][0] + ["-f", fmt, "-q"]
    outs = {run_cli(args, env={"COLUMNS": str(w)})[1] for w in (40, 80, 120, 300)}
    assert len(outs) == 1
    text = outs.pop()
    if fmt == "csv":
        assert text == csv_out["plan"]
        assert parse_csv(text)[0] == list(PLAN_COLUMNS)  # every column
    else:
        data = json.loads(text)
        assert list(data[0]) == list(PLAN_COLUMNS)
    size_csv = run_cli(["size", str(SCENARIO), "-f", "csv", "-q"], env={"COLUMNS": "80"})[1]
    assert size_csv == csv_out["size"]


@pytest.mark.parametrize("width", WIDTHS)
def test_explain_wraps_within_the_terminal(run_cli, width):
    args = ["explain", "-m", "llama-3.1-70b", "-g", "h100-sxm", "-f", "table"]
    rc, out, err = run_cli(args, env={"COLUMNS": str(width)})
    assert rc == 0, err
    assert all(cell_len(line) <= width for line in out.splitlines())
    rc, wide, _ = run_cli(args, env={"COLUMNS": "400"})
    # the same words, none cut: a wrap falls between words (tree lines aside)

    def words(text: str) -> list[str]:
        return sorted(t for t in text.split() if t.strip("│├└─"))

    assert words(out) == words(wide)


# ------------------------------------------------------------------ render, directly


def test_fit_never_cuts_a_number():
    rows = [{"gpu": f"gpu-{i}", "a_ms": 123456.0 + i, "b_ms": 0.00123, "c": 10 ** 9}
            for i in range(3)]
    text = render.to_table(rows, ["gpu", "a_ms", "b_ms", "c"], width=12)
    for line in text.splitlines()[1:]:
        toks = line.split()
        assert toks[1].startswith("123,45") and toks[2] == "0.00123" and toks[3] == "1000000000"
        assert toks[0].startswith("gpu-")  # ids cut no further than tells them apart


def test_fit_cuts_text_but_keeps_ids_apart():
    rows = [{"id": "a100-sxm-40gb", "x": 1.5, "name": "a long descriptive name " * 3},
            {"id": "a100-sxm-80gb", "x": 2.5, "name": "another long name " * 3}]
    fit = render.fit_table(rows, ["id", "x", "name"], width=30)
    text = render.to_table(rows, ["id", "x", "name"], width=30)
    assert fit.total <= 30
    ids = [line.split()[0] for line in text.splitlines()[1:]]
    assert len(set(ids)) == 2
    assert all(cell_len(line) <= 30 for line in text.splitlines())


def test_trivial_and_empty_columns_only_leave_the_table():
    rows = [{"gpu": "h100-sxm", "tp": 2, "pp": 1, "ep": 1, "note": "", "x": 1.0},
            {"gpu": "l40s", "tp": 4, "pp": 1, "ep": 1, "note": None, "x": 2.0}]
    cols = ["gpu", "tp", "pp", "ep", "note", "x"]
    fit = render.fit_table(rows, cols)
    assert fit.columns == ["gpu", "tp", "x"] and fit.trivial == ["pp", "ep", "note"]
    assert render.render(rows, cols, render.Format.csv).splitlines()[0] == ",".join(cols)
    assert list(json.loads(render.render(rows, cols, render.Format.json))[0]) == cols
