"""Reading YAML files into plain Python data, with errors that name the file and line."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

from infercap.errors import InfercapError


MAX_FILE_BYTES = 64 << 20  # a larger YAML file is refused (no catalog entry comes close)
MAX_VALUES = 1_000_000  # values after YAML aliases are expanded ("billion laughs" bound)
MAX_INT_DIGITS = 30  # no count, size or price needs more; Python refuses 4,300+ anyway

_LOADER: Any = None


def _loader() -> Any:
    """A safe loader (the C one where built) that also reads what users write and refuses what
    would be read with the wrong meaning:
    - ``2.0e9`` and ``1e9`` are floats (YAML 1.2; the 1.1 resolver wants a dot and a sign);
    - a key given twice in one mapping is an error (PyYAML keeps the last silently);
    - an impossible date (``2026-02-30``) or an integer of more than MAX_INT_DIGITS digits is an
      error at its line, not a ValueError traceback."""
    global _LOADER
    if _LOADER is not None:
        return _LOADER
    import re

    import yaml
    from yaml.constructor import ConstructorError
    from yaml.nodes import MappingNode, ScalarNode

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc, valid-type]
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, MappingNode):
                seen: dict[tuple[str, str], Any] = {}
                for key_node, _ in node.value:
                    if isinstance(key_node, ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                        k = (key_node.tag, key_node.value)
                        if k in seen:
                            from infercap.errors import excerpt

                            raise ConstructorError(
                                None, None,
                                f"duplicate key {excerpt(key_node.value)} (first on line "
                                f"{seen[k].line + 1}): give each key once",
                                key_node.start_mark)
                        seen[k] = key_node.start_mark
            return super().construct_mapping(node, deep=deep)

        def construct_yaml_int(self, node: Any) -> Any:
            digits = sum(c.isdigit() for c in str(node.value))
            if digits > MAX_INT_DIGITS:
                raise ConstructorError(
                    None, None, f"an integer of {digits} digits (at most {MAX_INT_DIGITS})",
                    node.start_mark)
            return super().construct_yaml_int(node)

        def construct_yaml_timestamp(self, node: Any) -> Any:
            try:
                return super().construct_yaml_timestamp(node)
            except (ValueError, OverflowError) as exc:
                from infercap.errors import excerpt

                raise ConstructorError(
                    None, None, f"invalid date {excerpt(str(node.value))} ({exc})",
                    node.start_mark) from None

    Loader.add_constructor("tag:yaml.org,2002:int", Loader.construct_yaml_int)
    Loader.add_constructor("tag:yaml.org,2002:timestamp", Loader.construct_yaml_timestamp)
    Loader.add_constructor("tag:yaml.org,2002:map", Loader.construct_yaml_map)
    # YAML 1.2 floats without a dot or without a sign in the exponent: 1e9, 2.0e9, 5E-3
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"
                   r"|^[-+]?\.[0-9_]+[eE][-+]?[0-9]+$"),
        list("-+0123456789."))
    _LOADER = Loader
    return Loader


def load_yaml(path: Path, error: type[InfercapError]) -> Any:
    """Parse one YAML file; a read or syntax error becomes ``error`` naming the file."""
    return parse_yaml(read_bytes(path, error), path, error)


def read_bytes(path: Path, error: type[InfercapError], limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a file, at most ``limit`` of them (a link to /dev/zero or a huge file is
    an error, not unbounded memory); a directory, FIFO or device is refused before reading."""
    try:
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(path, flags)
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode) and not stat.S_ISCHR(st.st_mode):
                kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
                raise error(f"cannot read file ({kind})", file=str(path))
            raw = fh.read(limit + 1)
    except OSError as exc:
        raise error(f"cannot read file ({exc.strerror or exc})", file=str(path)) from None
    if len(raw) > limit:
        raise error(f"file larger than {limit >> 20} MiB: not a catalog, scenario or "
                    "measurement file", file=str(path))
    return raw


def _count_values(data: Any, limit: int) -> int:
    """How many values ``data`` holds with every alias expanded (shared objects counted each
    time they are reached), stopping past ``limit``; memoised per object, so linear in the
    size of the document as written."""
    memo: dict[int, int] = {}

    def count(o: Any) -> int:
        t = type(o)
        if t is not dict and t is not list:
            return 1
        key = id(o)
        got = memo.get(key)
        if got is not None:
            return got
        memo[key] = limit + 1  # a self-referencing alias counts as too many
        n = 1
        for v in (o.values() if t is dict else o):
            n += count(v)
            if n > limit:
                break
        if t is dict:
            n += len(o)
        memo[key] = n
        return n

    return count(data)


def parse_yaml(raw: bytes, path: Path, error: type[InfercapError]) -> Any:
    """Parse the bytes of one YAML file (read as text: UTF-8, universal newlines)."""
    import yaml

    try:
        text = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError:
        raise error("expected UTF-8 text, got undecodable bytes", file=str(path)) from None
    try:
        data = yaml.load(text, Loader=_loader())  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{where}malformed YAML ({problem})", file=str(path)) from None
    except RecursionError:
        raise error("malformed YAML (nested too deeply)", file=str(path)) from None
    try:
        n = _count_values(data, MAX_VALUES)
    except RecursionError:
        raise error("malformed YAML (nested too deeply)", file=str(path)) from None
    if n > MAX_VALUES:
        raise error(f"malformed YAML (more than {MAX_VALUES:,} values once aliases are "
                    "expanded)", file=str(path))
    return data


# ---------------------------------------------------------------- the parse cache

CACHE_FORMAT = 2  # bump when the layout or the meaning of a cache entry changes
_KEY_PREFIX = b"infercap-parse-cache v%d\n" % CACHE_FORMAT
_DATE = "\x00infercap:date"  # {_DATE: "2024-05-01"} stands for a YAML date
CACHE_MAX_FILES = 64  # cache files kept (one per catalog folder), the most recent
CACHE_MAX_AGE_S = 30 * 86400  # a cache file not used for 30 days is removed
CACHE_MAX_BYTES = 1 << 30  # a larger cache file is ignored
_TEMP_MAX_AGE_S = 3600  # a temp file this old was left by a killed run


class _NotJSON(Exception):
    """The parsed data has a value JSON cannot carry exactly (bytes, a set, a timestamp, a
    non-string key, ...): that file is not cached."""


def _encode(data: Any) -> tuple[bool, str] | None:
    """(has_dates, JSON text) that decodes back to exactly ``data``, or None when it cannot:
    only dicts with string keys, lists, str, int, float, bool, None and dates are cached."""
    import datetime
    import json

    dates = False

    def enc(o: Any) -> Any:
        nonlocal dates
        t = type(o)
        if o is None or t is str or t is int or t is float or t is bool:
            return o
        if t is list:
            return [enc(x) for x in o]
        if t is dict:
            if _DATE in o or any(type(k) is not str for k in o):
                raise _NotJSON
            return {k: enc(v) for k, v in o.items()}
        if t is datetime.date:
            dates = True
            return {_DATE: o.isoformat()}
        raise _NotJSON

    try:
        text = json.dumps(enc(data), separators=(",", ":"))
    except (_NotJSON, RecursionError, ValueError, TypeError):
        return None
    return dates, text


def _decode(entry: Any) -> Any:
    """The data of one cache entry (fresh objects), or ``_MISS`` when it is malformed."""
    import datetime
    import json

    def dec(o: Any) -> Any:
        if type(o) is dict:
            if _DATE in o:
                if len(o) != 1 or type(o[_DATE]) is not str:
                    raise ValueError("bad date")
                return datetime.date.fromisoformat(o[_DATE])
            return {k: dec(v) for k, v in o.items()}
        if type(o) is list:
            return [dec(x) for x in o]
        return o

    try:
        dates, text = entry
        if type(text) is not str or type(dates) is not bool:
            return _MISS
        data = json.loads(text)
        return dec(data) if dates else data
    except (ValueError, TypeError, RecursionError):
        return _MISS


_MISS = object()


def _owned(st: os.stat_result) -> bool:
    """Owned by this user and not writable by group or others (POSIX; elsewhere: true)."""
    if not hasattr(os, "geteuid"):
        return True
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _cache_dir_ok(base: Path) -> bool:
    try:
        st = os.stat(base)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and _owned(st)


class ParseCache:
    """Parsed YAML of one catalog folder, kept between runs.

    Parsing dominates loading a large catalog (10,000 entries: ~2 s). The cache is one JSON
    file per catalog folder mapping the SHA-256 of each file's bytes (and the cache format) to
    its parsed data, so a file is parsed again whenever its content changes, whatever its size
    and timestamp. It lives in ``$INFERCAP_CACHE_DIR`` (default ``~/.cache/infercap``, created
    0700); ``INFERCAP_NO_CACHE=1`` turns it off. Data only (no pickle), and trusted only when
    the folder and the file belong to this user and are not group- or other-writable; a file
    whose data JSON cannot carry exactly is not cached. Written atomically (temp file, then
    rename); files unused for 30 days, beyond the 64 most recent, of older formats and temp
    files of killed runs are removed when it is written. Any problem with the cache
    (unwritable, corrupt, untrusted) just means no cache; callers validate every entry."""

    def __init__(self, root: Path) -> None:
        self.entries: dict[str, Any] = {}  # key -> [has_dates, JSON text], as read
        self.used: dict[str, Any] = {}  # the entries of this run's files: what save writes
        self.dirty = False
        self.path: Path | None = None
        self.mtime = 0.0
        if os.environ.get("INFERCAP_NO_CACHE"):
            return
        base = Path(os.environ.get("INFERCAP_CACHE_DIR")
                    or Path.home() / ".cache" / "infercap")
        key = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16]
        self.path = base / f"catalog-{key}.v{CACHE_FORMAT}.json"
        try:
            self.entries = self._read()
        except Exception:  # noqa: BLE001 - a missing or bad cache is no cache
            self.entries = {}

    def _read(self) -> dict[str, Any]:
        import json

        assert self.path is not None
        if not _cache_dir_ok(self.path.parent):
            return {}
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(self.path, flags)
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode) or not _owned(st) or st.st_size > CACHE_MAX_BYTES:
                return {}
            doc = json.loads(fh.read())
        self.mtime = st.st_mtime
        if (type(doc) is not dict or doc.get("format") != "infercap-parse-cache"
                or doc.get("version") != CACHE_FORMAT or type(doc.get("entries")) is not dict):
            return {}
        return doc["entries"]

    def load(self, path: Path, error: type[InfercapError]) -> Any:
        raw = read_bytes(path, error)
        if self.path is None:
            return parse_yaml(raw, path, error)
        key = hashlib.sha256(_KEY_PREFIX + raw).hexdigest()
        entry = self.entries.get(key)
        if entry is not None:
            data = _decode(entry)
            if data is not _MISS:
                self.used[key] = entry
                return data
        data = parse_yaml(raw, path, error)
        enc = _encode(data)
        if enc is not None:
            self.used[key] = list(enc)
            self.dirty = True
        return data

    def save(self) -> None:
        import time

        if self.path is None:
            return
        try:
            if not self.dirty and len(self.used) == len(self.entries):
                if self.used and time.time() - self.mtime > 86400:
                    os.utime(self.path)  # still in use: keep it from being pruned
                return
            if self._write():
                _prune(self.path)
        except Exception:  # noqa: BLE001 - caching is best effort
            pass

    def _write(self) -> bool:
        """Write the cache file (True), unless its folder is not this user's own (False)."""
        import json
        import tempfile

        assert self.path is not None
        base = self.path.parent
        os.makedirs(base, mode=0o700, exist_ok=True)
        if not _cache_dir_ok(base):
            return False
        doc = {"format": "infercap-parse-cache", "version": CACHE_FORMAT, "entries": self.used}
        fd, tmp = tempfile.mkstemp(dir=base, prefix=".catalog-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, separators=(",", ":"))
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return True


def _prune(keep: Path) -> None:
    """Bound the cache folder: remove cache files unused for CACHE_MAX_AGE_S or beyond the
    CACHE_MAX_FILES most recent, older formats (the pickles of earlier versions included) and
    temp files left by killed runs. One directory listing, only when the cache is written."""
    import re
    import time

    now = time.time()
    current = re.compile(r"catalog-[0-9a-f]{16}\.v%d\.json" % CACHE_FORMAT)
    ours: list[tuple[float, str]] = []
    drop: list[str] = []
    with os.scandir(keep.parent) as it:
        for de in it:
            name = de.name
            try:
                mtime = de.stat(follow_symlinks=False).st_mtime
            except OSError:
                continue
            if name.startswith(".catalog-") and name.endswith(".tmp"):
                if now - mtime > _TEMP_MAX_AGE_S:
                    drop.append(de.path)
            elif current.fullmatch(name):
                if name != keep.name:
                    ours.append((mtime, de.path))
            elif name.startswith("catalog-") and (name.endswith(".pickle")
                                                  or name.endswith(".json")):
                drop.append(de.path)
    ours.sort(reverse=True)
    for i, (mtime, p) in enumerate(ours):
        if i >= CACHE_MAX_FILES - 1 or now - mtime > CACHE_MAX_AGE_S:
            drop.append(p)
    for p in drop:
        try:
            os.unlink(p)
        except OSError:
            pass
