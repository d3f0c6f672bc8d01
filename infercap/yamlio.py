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


class ParseCache:
    """Parsed YAML of one catalog folder, kept between runs.

    Parsing dominates loading a large catalog (10,000 entries: ~2 s); the cache maps each
    file to (size, mtime_ns, parsed data), so only new or changed files are parsed again.
    It lives in ``$INFERCAP_CACHE_DIR`` (default ``~/.cache/infercap``); ``INFERCAP_NO_CACHE=1``
    turns it off. Any problem with the cache (unwritable, corrupt) just means no cache."""

    def __init__(self, root: Path) -> None:
        import hashlib
        import os

        self.entries: dict[str, tuple[int, int, Any]] = {}
        self.dirty = False
        self.path: Path | None = None
        if os.environ.get("INFERCAP_NO_CACHE"):
            return
        base = Path(os.environ.get("INFERCAP_CACHE_DIR")
                    or Path.home() / ".cache" / "infercap")
        key = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16]
        self.path = base / f"catalog-{key}.pickle"
        try:
            import pickle

            with open(self.path, "rb") as fh:
                entries = pickle.load(fh)
            if isinstance(entries, dict):
                self.entries = entries
        except Exception:  # noqa: BLE001 - a missing or bad cache is no cache
            self.entries = {}

    def load(self, path: Path, error: type[InfercapError]) -> Any:
        try:
            st = path.stat()
            stamp = (st.st_size, st.st_mtime_ns)
        except OSError:
            return load_yaml(path, error)
        hit = self.entries.get(str(path))
        if hit is not None and (hit[0], hit[1]) == stamp:
            return hit[2]  # fresh objects from the unpickling, used once
        data = load_yaml(path, error)
        if self.path is not None:
            self.entries[str(path)] = (stamp[0], stamp[1], data)
            self.dirty = True
        return data

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        try:
            import os
            import pickle
            import tempfile

            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".catalog-")
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(self.entries, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, self.path)
        except Exception:  # noqa: BLE001 - caching is best effort
            pass
