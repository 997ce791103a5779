"""Command-line interface. Each subcommand lives in its own module and registers on `app`.

Command modules are imported on demand: `vadkit eval` and `vadkit plot` never import torch
(about 1–3 s of start-up on a small CPU), while `vadkit --help` and `from vadkit.cli import app`
load every command.
"""

from __future__ import annotations

import importlib
import sys

# subcommand -> module under vadkit.cli that registers it
COMMAND_MODULES = {
    "synth": "synth",
    "weights": "extract",
    "extract": "extract",
    "train": "train_score",
    "score": "train_score",
    "eval": "eval_plot",
    "plot": "eval_plot",
}

__all__ = ["COMMAND_MODULES", "app", "load_commands", "main"]


def load_commands(names: list[str] | None = None):
    """Import the modules of the named subcommands (all when None); return the Typer app."""
    from vadkit.cli.base import app

    wanted = COMMAND_MODULES.values() if names is None else [COMMAND_MODULES[n] for n in names]
    for module in dict.fromkeys(wanted):
        importlib.import_module(f"vadkit.cli.{module}")
    return app


def __getattr__(name: str):
    if name == "app":
        return load_commands()
    raise AttributeError(name)


def _subcommand(argv: list[str]) -> str | None:
    """The first argument that is not an option, if it names a known subcommand."""
    for arg in argv:
        if arg.startswith("-"):
            continue
        return arg if arg in COMMAND_MODULES else None
    return None


def main() -> None:
    sub = _subcommand(sys.argv[1:])
    app = load_commands(None if sub is None else [sub])
    app(prog_name="vadkit")
