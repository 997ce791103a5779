"""Command-line interface. Each subcommand lives in its own module and registers on `app`."""

from __future__ import annotations

from vadkit.cli import eval_plot, extract, synth, train_score  # noqa: F401  (registers commands)
from vadkit.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    app(prog_name="vadkit")
