"""The shipped JSON Schemas match the validator's rules and accept every shipped file."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from infercap.cli import SCHEMA_KINDS, schema_document

ROOT = Path(__file__).resolve().parents[1]
FILES = {"hardware": "hardware/*.yaml", "model": "models/*.yaml",
         "profile": "infercap/profiles/*.yaml", "measurements": "infercap/benchmarks/*.yaml"}


def plain(x):  # YAML dates -> strings, as an editor's YAML-to-JSON sees them
    return json.loads(json.dumps(x, default=lambda v: v.isoformat()
                                 if isinstance(v, datetime.date) else str(v)))


@pytest.mark.parametrize("kind", SCHEMA_KINDS)
def test_shipped_schema_is_current(kind):
    shipped = json.loads((ROOT / "infercap" / "schemas" / f"{kind}.schema.json").read_text())
    assert shipped == schema_document(kind), f"regenerate: infercap schema {kind} -o ..."


@pytest.mark.parametrize("kind", SCHEMA_KINDS)
def test_every_shipped_file_validates(kind):
    sch = schema_document(kind)
    files = sorted(ROOT.glob(FILES[kind]))
    assert files
    for f in files:
        jsonschema.validate(plain(yaml.safe_load(f.read_text(encoding="utf-8"))), sch)


def test_schema_rejects_what_the_loader_rejects():
    sch = schema_document("hardware")
    good = plain(yaml.safe_load((ROOT / "hardware" / "h100-sxm.yaml").read_text()))
    for bad in ({**good, "nope": 1}, {**good, "memory_bandwidth_tb_per_s": -1},
                {k: v for k, v in good.items() if k != "tdp_w"},
                {**good, "dense_tflops": {"tf32": 1}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, sch)


def test_schema_command_bad_kind(run_cli):
    from conftest import assert_clean_error

    line = assert_clean_error(*run_cli(["schema", "nope"]))
    assert "key 'KIND'" in line
