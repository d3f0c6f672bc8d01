"""Pareto view and charts: text charts on the table format, points in CSV, images optional."""

from __future__ import annotations

import csv
import importlib.util
import io
import json

import pytest

from conftest import assert_clean_error
from infercap.render import text_chart

PLAN = ["plan", "-m", "llama-3.1-8b", "--gpu", "h100-sxm,l40s", "-i", "1024", "-n", "128",
        "--max-tpot-ms", "0"]


def test_text_chart_places_points_and_legend():
    out = text_chart([("a", [1, 2, 3], [1, 2, 3]), ("b", [3], [0])], "x", "y", "t",
                     width=20, height=5)
    lines = out.splitlines()
    assert lines[0] == "t" and lines[1] == "y"
    grid = [ln.split("|", 1)[1] for ln in lines[2:7]]
    assert grid[0][-1] == "*"  # (3, 3) top right
    assert grid[-1][-1] == "o"  # (3, 0) bottom right, second series
    assert "* a" in lines[-1] and "o b" in lines[-1]
    assert text_chart([], "x", "y", "empty").endswith("(no points)\n")


def test_pareto_table_is_a_chart_and_csv_the_frontier(run_cli):
    rc, out, err = run_cli([*PLAN, "--pareto", "-f", "table"])
    assert rc == 0, err
    assert "Pareto frontiers per GPU" in out and "tokens/s per user" in out
    assert "h100-sxm" in out.splitlines()[-1] and "l40s" in out.splitlines()[-1]
    rc, out, err = run_cli([*PLAN, "--pareto", "-f", "csv", "-q"])
    assert rc == 0, err
    assert list(csv.DictReader(io.StringIO(out)))
    rc, out, err = run_cli([*PLAN, "--pareto", "-f", "json", "-q"])  # full precision
    rows = json.loads(out)
    assert rows and {r["gpu"] for r in rows} == {"h100-sxm", "l40s"}
    for g in ("h100-sxm", "l40s"):  # no point of a GPU's frontier dominated by another of it
        pts = [(r["tokens_per_s_per_user"], r["output_tokens_per_s_per_gpu"])
               for r in rows if r["gpu"] == g]
        for x, y in pts:
            assert not any(x2 >= x and y2 >= y and (x2, y2) != (x, y) for x2, y2 in pts)
    assert any(r["pareto"] for r in rows)


def test_explain_chart_shows_the_batch_curve(run_cli):
    rc, out, err = run_cli(["explain", "-m", "llama-3.1-8b", "-g", "h100-sxm", "-p", "fp8",
                            "--tp", "1", "--chart", "-f", "table"])
    assert rc == 0, err
    assert "decode step (ms) vs batch" in out and "output tokens/s vs batch" in out


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is not None,
                    reason="matplotlib is installed: the image is written instead")
def test_plot_without_matplotlib_says_how_to_install(run_cli, tmp_path):
    line = assert_clean_error(*run_cli([*PLAN, "-q", "--plot", tmp_path / "p.png"]))
    assert "pip install 'infercap[plot]'" in line
    assert not (tmp_path / "p.png").exists()


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                    reason="needs the optional plot extra (matplotlib)")
def test_plot_writes_an_image(run_cli, tmp_path):
    rc, out, err = run_cli([*PLAN, "-q", "-f", "csv", "--plot", tmp_path / "p.png"])
    assert rc == 0, err
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_rejects_other_suffixes(run_cli, tmp_path):
    line = assert_clean_error(*run_cli([*PLAN, "-q", "--plot", tmp_path / "p.txt"]))
    assert "key '--plot'" in line
