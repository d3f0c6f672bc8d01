"""A small declarative validator for the YAML files infercap reads.

Why not jsonschema: its messages name JSON pointers rather than "file, entry, key, expected",
and it costs start-up time. The rules here are few: types, positivity, enumerations, unknown
keys, required keys, nested blocks. Every failure raises the error class given by the caller
with the file, the entry id and the dotted key.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from infercap.errors import InfercapError

ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True)
class Field:
    """One key of a mapping.

    kind: "number", "int", "str", "bool", "map" (nested ``Schema``), "strmap" (str -> str),
    "numbermap" (str -> number), "list_str", "range" ([min, max] of positive integers,
    min <= max), "any".
    """

    kind: str
    required: bool = False
    minimum: float | None = None  # inclusive lower bound
    positive: bool = False  # strictly > 0
    maximum: float | None = None  # inclusive upper bound
    choices: tuple[str, ...] | None = None
    schema: "Schema | None" = None
    keys: tuple[str, ...] | None = None  # allowed keys of a numbermap
    check: Callable[[Any], str | None] | None = None  # extra rule: returns an error text or None


@dataclass(frozen=True)
class Schema:
    fields: dict[str, Field] = field(default_factory=dict)
    one_of: tuple[tuple[str, ...], ...] = ()  # groups where exactly one key must be present


def describe(value: Any) -> str:
    """Short text of a bad value for an error message (bounded depth and length, so deeply
    nested junk cannot exhaust the stack)."""
    import reprlib

    r = reprlib.Repr()
    r.maxlevel, r.maxstring, r.maxother = 3, 40, 40
    try:
        text = r.repr(value)
    except RecursionError:
        text = "..."
    text = text.replace("\n", " ")
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


# No quantity in a catalog, profile, scenario or measurement comes near 1e15 (tokens per day
# of the largest fleets: ~1e12); a larger one is a typo, and products of two such values
# would overflow float64 to inf and print as "Infinity" (issue 16: never a non-finite output).
MAX_MAGNITUDE = 1e15


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_number(value: Any, spec: Field, integer: bool) -> str | None:
    if not _is_number(value) or (integer and not float(value).is_integer()):
        return f"expected {'an integer' if integer else 'a number'}, got {describe(value)}"
    if not math.isfinite(value):
        return f"expected a finite number, got {value!r}"
    if abs(value) > MAX_MAGNITUDE:
        return f"expected a number of magnitude at most {MAX_MAGNITUDE:g}, got {value:g}"
    if spec.positive and value <= 0:
        return f"expected a number > 0, got {value!r}"
    if spec.minimum is not None and value < spec.minimum:
        return f"expected a number >= {spec.minimum:g}, got {value!r}"
    if spec.maximum is not None and value > spec.maximum:
        return f"expected a number <= {spec.maximum:g}, got {value!r}"
    return None


def validate(
    data: Any,
    schema: Schema,
    *,
    error: type[InfercapError],
    file: str,
    entry: str | None,
    prefix: str = "",
) -> dict[str, Any]:
    """Check ``data`` against ``schema``; return it (a dict) or raise ``error``."""

    def fail(key: str | None, message: str) -> None:
        raise error(message, file=file, entry=entry, key=key)

    if not isinstance(data, dict):
        fail(prefix.rstrip(".") or None, f"expected a mapping, got {describe(data)}")
    for key in data:
        if not isinstance(key, str):
            fail(prefix.rstrip(".") or None, f"expected text keys, got {describe(key)}")
        if key not in schema.fields:
            allowed = ", ".join(sorted(schema.fields))
            fail(prefix + key, f"unknown key (allowed: {allowed})")
    for group in schema.one_of:
        present = [k for k in group if k in data]
        if len(present) != 1:
            fail(
                prefix + group[0],
                f"expected exactly one of {', '.join(group)}, got {len(present)}",
            )
    for key, spec in schema.fields.items():
        full = prefix + key
        if key not in data or data[key] is None:
            if key in data and data[key] is None and spec.required:
                fail(full, "expected a value, got null")
            if spec.required:
                fail(full, f"missing required key (expected {_expected(spec)})")
            if key in data:
                fail(full, f"expected {_expected(spec)}, got null")
            continue
        value = data[key]
        problem: str | None = None
        if spec.kind in ("number", "int"):
            problem = _check_number(value, spec, spec.kind == "int")
        elif spec.kind == "date":
            import datetime

            if isinstance(value, datetime.date):
                data[key] = value.isoformat()
            elif not isinstance(value, str) or not value.strip():
                problem = f"expected a date or text, got {describe(value)}"
        elif spec.kind == "str":
            if not isinstance(value, str) or not value.strip():
                problem = f"expected non-empty text, got {describe(value)}"
            elif spec.choices and value not in spec.choices:
                problem = f"expected one of {', '.join(spec.choices)}, got {value!r}"
        elif spec.kind == "bool":
            if not isinstance(value, bool):
                problem = f"expected true or false, got {describe(value)}"
        elif spec.kind == "map":
            assert spec.schema is not None
            validate(value, spec.schema, error=error, file=file, entry=entry, prefix=full + ".")
        elif spec.kind == "strmap":
            if not isinstance(value, dict) or not value:
                problem = f"expected a non-empty mapping of text, got {describe(value)}"
            else:
                for k, v in value.items():
                    if not isinstance(k, str) or not isinstance(v, str) or not v.strip():
                        fail(f"{full}.{k}", f"expected non-empty text, got {describe(v)}")
        elif spec.kind == "numbermap":
            if not isinstance(value, dict) or not value:
                problem = f"expected a non-empty mapping of numbers, got {describe(value)}"
            else:
                for k, v in value.items():
                    if spec.keys is not None and k not in spec.keys:
                        fail(f"{full}.{k}", f"unknown key (allowed: {', '.join(spec.keys)})")
                    rule = (Field("number", minimum=spec.minimum) if spec.minimum is not None
                            else Field("number", positive=True))
                    sub = _check_number(v, rule, False)
                    if sub:
                        fail(f"{full}.{k}", sub)
        elif spec.kind == "list_str":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                problem = f"expected a list of text, got {describe(value)}"
        elif spec.kind == "range":
            if not (isinstance(value, list) and len(value) == 2
                    and all(_is_number(v) and math.isfinite(v) and float(v).is_integer()
                            and v > 0 for v in value)):
                problem = f"expected [min, max] of positive integers, got {describe(value)}"
            elif value[0] > value[1]:
                problem = f"expected min <= max, got [{value[0]}, {value[1]}]"
        if problem is None and spec.check is not None:
            problem = spec.check(value)
        if problem:
            fail(full, problem)
    return data


def _expected(spec: Field) -> str:
    if spec.kind in ("number", "int"):
        word = "an integer" if spec.kind == "int" else "a number"
        if spec.positive:
            return f"{word} > 0"
        if spec.minimum is not None:
            return f"{word} >= {spec.minimum:g}"
        return word
    if spec.kind == "str":
        return "one of " + ", ".join(spec.choices) if spec.choices else "text"
    if spec.kind == "bool":
        return "true or false"
    if spec.kind in ("map", "strmap", "numbermap"):
        return "a mapping"
    if spec.kind == "list_str":
        return "a list of text"
    if spec.kind == "range":
        return "[min, max]"
    return "a value"


def check_id(value: Any) -> str | None:
    if not isinstance(value, str) or not ID_RE.match(value):
        return "expected an id of lower-case letters, digits, '.', '-', '_'"
    return None


def to_json_schema(schema: Schema, title: str = "") -> dict[str, Any]:
    """The same rules as a JSON Schema (draft 2020-12), for editors (yaml-language-server)."""

    def field(spec: Field) -> dict[str, Any]:
        if spec.kind in ("number", "int"):
            out: dict[str, Any] = {"type": "integer" if spec.kind == "int" else "number"}
            if spec.positive:
                out["exclusiveMinimum"] = 0
            if spec.minimum is not None:
                out["minimum"] = spec.minimum
            if spec.maximum is not None:
                out["maximum"] = spec.maximum
            return out
        if spec.kind == "str":
            out = {"type": "string", "minLength": 1}
            if spec.choices:
                out["enum"] = list(spec.choices)
            return out
        if spec.kind == "date":
            return {"type": "string", "minLength": 1}
        if spec.kind == "bool":
            return {"type": "boolean"}
        if spec.kind == "map":
            assert spec.schema is not None
            return to_json_schema(spec.schema)
        if spec.kind == "strmap":
            return {"type": "object", "minProperties": 1,
                    "additionalProperties": {"type": "string", "minLength": 1}}
        if spec.kind == "numbermap":
            value: dict[str, Any] = {"type": "number"}
            if spec.minimum is not None:
                value["minimum"] = spec.minimum
            else:
                value["exclusiveMinimum"] = 0
            out = {"type": "object", "minProperties": 1}
            if spec.keys is not None:
                out["properties"] = {k: value for k in spec.keys}
                out["additionalProperties"] = False
            else:
                out["additionalProperties"] = value
            return out
        if spec.kind == "list_str":
            return {"type": "array", "items": {"type": "string"}}
        if spec.kind == "range":
            return {"type": "array", "minItems": 2, "maxItems": 2,
                    "items": {"type": "integer", "exclusiveMinimum": 0}}
        return {}

    out: dict[str, Any] = {
        "type": "object",
        "properties": {k: field(v) for k, v in schema.fields.items()},
        "required": [k for k, v in schema.fields.items() if v.required],
        "additionalProperties": False,
    }
    if schema.one_of:
        out["oneOf"] = [{"required": [k]} for group in schema.one_of for k in group]
    if title:
        out = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": title, **out}
    return out
