"""Every command and every option of the CLI is documented in the README."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer.main

from infercap.cli import app

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
GROUP = typer.main.get_command(app)
COMMANDS = sorted(GROUP.commands)  # type: ignore[attr-defined]


def test_commands_are_the_expected_ones():
    assert {"plan", "gpus", "models", "figures", "validate", "calibrate"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_command_is_documented(name):
    assert f"infercap {name}" in README, f"`infercap {name}` is not in the README"


@pytest.mark.parametrize(
    "name,option",
    [(name, opt) for name in COMMANDS for p in GROUP.commands[name].params  # type: ignore[attr-defined]
     for opt in p.opts if opt.startswith("--") and opt not in ("--help",)],
)
def test_option_is_documented(name, option):
    assert f"`{option}" in README or f" {option}" in README, (
        f"option {option} of `infercap {name}` is not in the README")
