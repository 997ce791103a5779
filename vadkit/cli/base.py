"""The Typer app every subcommand module registers on, and the error boundary around it.

Library code raises `VadkitError`; here it becomes one `Error: …` line on stderr and exit 1.
Bad arguments are `typer.BadParameter` (exit 2). Rich formatting of errors is off so that an
error stays one plain, greppable line.
"""

from __future__ import annotations

import sys

import typer
from typer.core import TyperGroup

from vadkit import __version__
from vadkit.errors import VadkitError


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one `Error: …` line on stderr; return the Exit to raise."""
    first = " ".join(str(message).split("\n"))
    typer.secho(f"Error: {first}", err=True, fg=typer.colors.RED)
    sys.stderr.flush()
    return typer.Exit(code)


class _Group(TyperGroup):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except VadkitError as e:
            raise fail(str(e)) from None
        except MemoryError:
            raise fail("out of memory; try a smaller --batch-size or fewer crops") from None


app = typer.Typer(
    cls=_Group,
    name="vadkit",
    help="Weakly-supervised video anomaly detection: extract I3D features, train MSIP / RTFM / "
    "MGFN, score videos frame by frame, evaluate and plot.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vadkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Weakly-supervised video anomaly detection: extract, train, score, eval, plot."""
