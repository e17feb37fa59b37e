"""Every `ember` subcommand's --help, group pages included, carries an example (Polygraphy's
habit), run as a user runs it."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from ember.compiler.cli import build_parser


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
              ) -> list[tuple[str, ...]]:
    found = [path] if path else []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, (*path, name))
    return found


COMMANDS = _commands(build_parser())


def test_the_walk_finds_the_groups_and_their_leaves():
    assert {("debug",), ("debug", "bisect"), ("passes",), ("surgeon", "fold"),
            ("bench",)} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_has_an_example(command):
    done = subprocess.run([sys.executable, "-m", "ember.compiler.cli", *command, "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "example" in done.stdout.lower(), f"ember {' '.join(command)} --help"
    assert f"ember {' '.join(command)}" in done.stdout or command == ("bench",)
