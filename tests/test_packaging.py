"""The wheel carries the catalogs, profiles and measurement files, and works from there.

The wheel is built with ``pip wheel --no-build-isolation`` (needs hatchling installed; no
network), unpacked into a temporary folder, and imported from there with ``PYTHONPATH`` from a
working directory outside the repository, so the source checkout cannot stand in for it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("hatchling") is None,
    reason="hatchling is not installed: the wheel cannot be built without network access "
    "(pip install hatchling)",
)

REQUIRED = [
    "infercap/__init__.py",
    "infercap/cli.py",
    "infercap/_catalog/hardware/h100-sxm.yaml",
    "infercap/_catalog/models/llama-3.1-8b.yaml",
    "infercap/profiles/default.yaml",
    "infercap/benchmarks/published.yaml",
]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(out), str(REPO)],
        capture_output=True, text=True, timeout=300, cwd=str(out),
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheels = list(out.glob("infercap-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def unpacked(wheel, tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(dest)
    return dest


def test_wheel_contents(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    missing = [n for n in REQUIRED if n not in names]
    assert not missing, f"missing from {wheel.name}: {missing}"
    # every shipped catalog file and profile is packed
    for kind in ("hardware", "models"):
        for p in (REPO / kind).glob("*.yaml"):
            assert f"infercap/_catalog/{kind}/{p.name}" in names
    for p in (REPO / "infercap" / "profiles").glob("*.yaml"):
        assert f"infercap/profiles/{p.name}" in names
    # no tests, caches or build leftovers in the wheel
    assert not [n for n in names if "__pycache__" in n or n.startswith("tests/")]
    meta = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert meta, "no entry_points.txt"
    with zipfile.ZipFile(wheel) as z:
        assert "infercap = infercap.cli:main" in z.read(meta[0]).decode()


def _python(code: str, site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "INFERCAP_CATALOG_PATH"}
    env["PYTHONPATH"] = str(site)
    env["PYTHONNOUSERSITE"] = "1"
    return subprocess.run([sys.executable, *(["-c", code] if code else []), *args],
                          capture_output=True, text=True, timeout=120, cwd=str(cwd), env=env)


PROBE = """
import json, infercap
from infercap.catalog import load_catalog, shipped_dir
from infercap.measurements import shipped_files
from infercap.profile import builtin_profile_ids, load_profile
cat = load_catalog()
print(json.dumps({
    "file": infercap.__file__,
    "shipped_dir": str(shipped_dir()),
    "gpus": len(cat.gpus),
    "models": len(cat.models),
    "gpu_path": cat.gpu("h100-sxm").path,
    "profiles": builtin_profile_ids(),
    "default_figures": len(load_profile("default").figures),
    "measurements": [p.name for p in shipped_files()],
}))
"""


def test_unpacked_wheel_loads_packed_catalog(unpacked, tmp_path):
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    proc = _python(PROBE, unpacked, cwd)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert Path(info["file"]).resolve().is_relative_to(unpacked.resolve())
    assert info["shipped_dir"].endswith("_catalog")
    assert Path(info["shipped_dir"]).resolve().is_relative_to(unpacked.resolve())
    assert info["gpus"] >= 24 and info["models"] >= 30
    assert Path(info["gpu_path"]).resolve().is_relative_to(unpacked.resolve())
    assert "default" in info["profiles"] and info["default_figures"] > 0
    assert "published.yaml" in info["measurements"]


def test_unpacked_wheel_cli_runs(unpacked, tmp_path):
    proc = _python("", unpacked, tmp_path, "-m", "infercap", "plan", "-m", "llama-3.1-8b",
                   "-g", "h100-sxm", "-f", "json", "-q")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert rows and rows[0]["gpu"] == "h100-sxm"
    proc = _python("", unpacked, tmp_path, "-m", "infercap", "validate", "-f", "csv", "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("id,metric,measured,predicted,error_pct,skipped")


def test_unpacked_wheel_runs_every_daily_command(unpacked, tmp_path):
    """explain, schema, gpus add, models import, figures and the Pareto view, from the wheel."""
    def run(*args: str) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
        proc = _python("", unpacked, tmp_path, "-m", "infercap", *args)
        assert proc.returncode == 0, (args, proc.stderr)
        return proc

    assert json.loads(run("explain", "-m", "llama-3.1-8b", "-g", "h100-sxm", "--tp", "1",
                          "-f", "json").stdout)["layout"]["gpus"] == 1
    assert json.loads(run("schema", "hardware").stdout)["title"].startswith("infercap")
    assert "TO CHECK" in run("gpus", "add", "new-gpu").stdout
    cfg = Path(__file__).resolve().parent / "data" / "hf-configs" / \
        "meta-llama--Meta-Llama-3.1-8B.config.json"
    assert "num_hidden_layers: 32" in run("models", "import", str(cfg), "--id", "x").stdout
    assert "layer_overhead_us" in run("figures", "h100-sxm", "-f", "csv").stdout
    assert "Pareto" in run("plan", "-m", "llama-3.1-8b", "-g", "h100-sxm", "--pareto", "-f",
                           "table", "-q").stdout
