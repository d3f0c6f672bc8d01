"""Shared fixtures for the infercap test suite.

- ``run_cli(args, env=None, cwd=None)`` runs ``python -m infercap ARGS`` in a subprocess (the
  real entry point: exit codes, stdout/stderr separation) and returns ``(rc, stdout, stderr)``;
- ``catalog`` / ``resolver``: the shipped catalog and the default profile, loaded once;
- helpers to copy a shipped catalog file into a temporary user catalog and to check that a
  command failed with one clean line on stderr.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence, Tuple

import pytest

REPO = Path(__file__).resolve().parents[1]
SHIPPED_HARDWARE = REPO / "hardware"
SHIPPED_MODELS = REPO / "models"

# A user's own catalog path must not leak into the tests (in-process loads read it too).
os.environ.pop("INFERCAP_CATALOG_PATH", None)
# the parse cache (infercap/yamlio.py) stays out of the tests, except where a test turns it on
os.environ["INFERCAP_NO_CACHE"] = "1"

CliResult = Tuple[int, str, str]


def _run(
    args: Sequence[str],
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[os.PathLike] = None,
    timeout: float = 120.0,
) -> CliResult:
    full_env = {k: v for k, v in os.environ.items() if k != "INFERCAP_CATALOG_PATH"}
    full_env["PYTHONIOENCODING"] = "utf-8"
    if env:
        full_env.update(env)
    proc = subprocess.run(
        [sys.executable, "-m", "infercap", *[str(a) for a in args]],
        cwd=str(cwd or REPO),
        env=full_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., CliResult]:
    """``run_cli(args, env=None, cwd=None) -> (rc, stdout, stderr)``."""
    return _run


@pytest.fixture(scope="session")
def catalog():
    from infercap.catalog import load_catalog

    return load_catalog()


@pytest.fixture(scope="session")
def resolver():
    from infercap.profile import Resolver, load_profile

    return Resolver(load_profile("default"))


def copy_shipped(kind: str, entry_id: str, dest: Path) -> Path:
    """Copy ``hardware/<id>.yaml`` or ``models/<id>.yaml`` into ``dest/<kind>/`` and return
    the copy's path."""
    src = (SHIPPED_HARDWARE if kind == "hardware" else SHIPPED_MODELS) / f"{entry_id}.yaml"
    folder = dest / kind
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{entry_id}.yaml"
    shutil.copyfile(src, target)
    return target


def assert_clean_error(rc: int, out: str, err: str, code: int = 2) -> str:
    """The command failed with ``code``, printed nothing on stdout and exactly one line on
    stderr, without a traceback. Returns that line."""
    assert rc == code, f"exit {rc}, expected {code}; stderr:\n{err}"
    assert out == "", f"stdout should be empty, got:\n{out}"
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    assert lines[0].startswith("infercap: error: "), lines[0]
    return lines[0]
