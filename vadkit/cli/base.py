"""The Typer app every subcommand module registers on, the command registry, and the error
boundary around them.

Start-up: `COMMANDS` names every subcommand, the module under `vadkit.cli` that registers it and
its one-line help. The root group lists commands from this table and imports a command's module
only when that command is run (or its own `--help` is asked for), so `vadkit --help`,
`vadkit --version` and shell completion of command names import neither torch nor any command
module. A new command adds one line here.

Exit status (documented in the README and the man pages):

- 0: success;
- 1: an error (`VadkitError` from the library: one `Error: …` line on stderr), or out of memory;
  an exception may carry its own `exit_code` attribute to choose another status;
- 2: bad usage (unknown option, bad value, missing argument: click's usage errors);
- 130: interrupted (Ctrl-C, SIGINT), after one `Interrupted` line on stderr.

Rich formatting of errors is off so that an error stays one plain, greppable line.
"""

from __future__ import annotations

import importlib
import sys

import typer
from typer.core import TyperGroup

from vadkit import __version__
from vadkit.errors import VadkitError

# subcommand -> (module under vadkit.cli that registers it, one-line help for `vadkit --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("synth", "Write a seeded synthetic dataset: videos, manifests, ground truth."),
    "weights": ("extract", "Backbone weights: download and convert DeepMind's Kinetics-400 I3D."),
    "extract": ("extract", "Extract I3D features of 16-frame snippets (clip crops, patches)."),
    "train": ("train_score", "Train RTFM / MSIP / MGFN on extracted features."),
    "score": ("train_score", "Per-frame anomaly scores of features, manifests or videos."),
    "convert": ("convert", "Convert an official RTFM / MGFN checkpoint into a vadkit run."),
    "recipes": ("recipes", "Training recipes of the papers' code: every value and its source."),
    "eval": ("eval_plot", "Frame-level metrics of per-frame scores against ground truth."),
    "plot": ("eval_plot", "Plot scores over ground truth, training curves, ROC/PR, features."),
    "manifest": ("manifest", "Write a labelled CSV manifest from a folder tree (--split)."),
    "render": ("render", "Draw scores, alerts and evidence on a video: an mp4 for review."),
    "report": ("report", "One self-contained HTML page to review a batch of scores."),
    "watch": ("watch", "Score a live stream (file, URL, camera) as it plays, with alerts."),
}

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    """Print one `Error: …` line on stderr; return the Exit to raise."""
    first = " ".join(str(message).split("\n"))
    typer.secho(f"Error: {first}", err=True, fg=typer.colors.RED)
    sys.stderr.flush()
    return typer.Exit(code)


def load_command_module(name: str) -> None:
    """Import the module that registers subcommand `name` on `app`."""
    importlib.import_module(f"vadkit.cli.{COMMANDS[name][0]}")


class _Group(TyperGroup):
    """Root group: lists commands from `COMMANDS`, imports each one's module on first use."""

    def list_commands(self, ctx):
        return list(dict.fromkeys([*COMMANDS, *super().list_commands(ctx)]))

    def get_command(self, ctx, cmd_name):
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            load_command_module(cmd_name)
            # the module registered on the Typer `app`; rebuild its click commands from there
            built = typer.main.get_group(app)
            for name, cmd in built.commands.items():
                self.commands.setdefault(name, cmd)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx, formatter):
        rows = [(name, short) for name, (_, short) in COMMANDS.items()]
        rows += [
            (name, cmd.get_short_help_str(formatter.width - 20))
            for name, cmd in self.commands.items()
            if name not in COMMANDS and not cmd.hidden
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except VadkitError as e:
            raise fail(str(e), getattr(e, "exit_code", EXIT_ERROR)) from None
        except MemoryError:
            raise fail("out of memory; try a smaller --batch-size or fewer crops") from None
        except KeyboardInterrupt:
            typer.echo("Interrupted", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None


app = typer.Typer(
    cls=_Group,
    name="vadkit",
    help="Weakly-supervised video anomaly detection: extract I3D features, train MSIP / RTFM / "
    "MGFN, score videos frame by frame, evaluate and plot.",
    no_args_is_help=True,
    add_completion=True,
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
