"""One exception tree for every user-facing error.

Each error carries the file, the entry and the key it is about, so the CLI can print one line
that names them (``FILE: entry 'ID': key 'KEY': expected ..., got ...``) and exit with code 2.
"""

from __future__ import annotations


class InfercapError(Exception):
    """Base of every error infercap reports to a user (exit code 2)."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        entry: str | None = None,
        key: str | None = None,
    ) -> None:
        self.file = file
        self.entry = entry
        self.key = key
        self.detail = message
        super().__init__(self.format())

    def format(self) -> str:
        parts = []
        if self.file:
            parts.append(_cap(str(self.file), MAX_NAME_CHARS))
        if self.entry:
            parts.append(f"entry '{_cap(str(self.entry), MAX_NAME_CHARS)}'")
        if self.key:
            parts.append(f"key '{_cap(str(self.key), MAX_NAME_CHARS)}'")
        parts.append(_cap(str(self.detail), MAX_DETAIL_CHARS))
        # one line whatever the input held: a key or value with a line break is escaped
        return ": ".join(parts).replace("\r", "\\r").replace("\n", "\\n")


# An error line stays readable whatever the input held (a 131 kB field, a value of a million
# list items): file, entry and key are cut at MAX_NAME_CHARS, the message at MAX_DETAIL_CHARS.
MAX_NAME_CHARS = 200
MAX_DETAIL_CHARS = 600


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class CatalogError(InfercapError):
    """A hardware or model catalog file is malformed."""


class ProfileError(InfercapError):
    """A calibration profile file is malformed."""


class MeasurementError(InfercapError):
    """A measurement file (the FORMAT.md format) is malformed."""


class UsageError(InfercapError):
    """A command-line option or argument is invalid (unknown id, impossible layout, ...)."""


def excerpt(text: str, limit: int = 60) -> str:
    """``text`` quoted for an error message: repr-style escaping (no control characters, no
    line breaks), at most ``limit`` characters, ``...`` marking a cut. For quoting what a
    user's file holds without echoing it whole."""
    shown = text[:limit]
    quoted = repr(shown)
    if len(quoted) <= limit and shown == text:
        return quoted
    while shown and len(repr(shown)) > limit - 3:
        shown = shown[:-1]
    return repr(shown) + "..."
