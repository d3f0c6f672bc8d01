"""Reading YAML files into plain Python data, with errors that name the file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infercap.errors import InfercapError


def _loader() -> Any:
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: Path, error: type[InfercapError]) -> Any:
    """Parse one YAML file; a read or syntax error becomes ``error`` naming the file."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise error("expected UTF-8 text, got undecodable bytes", file=str(path)) from None
    except OSError as exc:
        raise error(f"cannot read file ({exc.strerror or exc})", file=str(path)) from None
    try:
        return yaml.load(text, Loader=_loader())  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{where}malformed YAML ({problem})", file=str(path)) from None
    except RecursionError:
        raise error("malformed YAML (nested too deeply)", file=str(path)) from None
