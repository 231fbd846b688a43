"""The README's examples stay true: every ``calib`` command line in its code blocks names a real
command with real options (parsed by the CLI itself), and every Python block compiles and uses
only names calib exports."""

from __future__ import annotations

import ast
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

import calib
from calib.cli import cli

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks() -> list[tuple[str, str]]:
    out, lang, buf = [], None, []
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            if lang is None:
                lang, buf = line[3:].strip() or "text", []
            else:
                out.append((lang, "\n".join(buf)))
                lang = None
            continue
        if lang is not None:
            buf.append(line)
    return out


def _commands() -> list[str]:
    cmds = []
    for lang, text in _blocks():
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("calib ") and "..." not in line:
                cmds.append(line.split(" #")[0].strip())
    return cmds


def test_the_readme_has_examples():
    assert len(_commands()) >= 8 and any(lang == "python" for lang, _ in _blocks())


@pytest.mark.parametrize("command", _commands())
def test_every_readme_command_parses(command):
    """``<command> --help`` parses every option of the example first (an unknown option or command
    fails before help is printed)."""
    args = shlex.split(command)[1:]
    res = CliRunner().invoke(cli, [*args, "--help"])
    assert res.exit_code == 0, f"{command!r}: {res.output}"


@pytest.mark.parametrize("block", [t for lang, t in _blocks() if lang == "python"])
def test_every_readme_python_block_compiles_and_uses_real_names(block):
    tree = ast.parse(block)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "calib":
            assert hasattr(calib, node.attr), f"calib.{node.attr} does not exist"
