"""Command-line interface. Each subcommand lives in its own module and registers on `app`.

Command modules are imported on demand (the registry is `vadkit.cli.base.COMMANDS`): `vadkit
--help`, `vadkit --version`, `vadkit eval` and `vadkit plot` never import torch, while
`from vadkit.cli import app` loads every command (for the man pages and the tests).

Shell completion is Typer's: `vadkit --install-completion [SHELL]` appends the script to the
shell's start-up file, `vadkit --show-completion [SHELL]` prints it. SHELL is bash, zsh, fish or
powershell/pwsh; without it the running shell is detected (its process, else `$SHELL`).
"""

from __future__ import annotations

import os
import sys

SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")
_COMPLETION_OPTIONS = ("--install-completion", "--show-completion")

__all__ = ["COMMANDS", "COMMAND_MODULES", "app", "load_commands", "main"]


def load_commands(names: list[str] | None = None):
    """Import the modules of the named subcommands (all when None); return the Typer app."""
    from vadkit.cli.base import COMMANDS, app, load_command_module

    for name in COMMANDS if names is None else names:
        load_command_module(name)
    return app


def __getattr__(name: str):
    # lazy, so that `main` is entered before typer loads and can catch a Ctrl-C during imports
    if name == "app":
        return load_commands()
    if name == "COMMANDS":
        from vadkit.cli.base import COMMANDS

        return COMMANDS
    if name == "COMMAND_MODULES":  # the old name: subcommand -> module under vadkit.cli
        from vadkit.cli.base import COMMANDS

        return {command: module for command, (module, _) in COMMANDS.items()}
    raise AttributeError(name)


def _detect_shell() -> str:
    """The running shell's name: shellingham's answer (as Typer asks it), else `$SHELL`'s."""
    try:
        import shellingham

        name = shellingham.detect_shell()[0]
    except Exception:  # no shell among the ancestors, or shellingham missing
        name = os.path.basename(os.environ.get("SHELL", ""))
    return name.lower()


def _completion_argv(argv: list[str]) -> list[str]:
    """Give `--install-completion` / `--show-completion` an explicit shell.

    Typer's options either detect the shell (flags) or, in its explicit mode, take the shell as
    their value. vadkit accepts both spellings: a shell named after the option is used, else the
    detected one is filled in; Typer's explicit mode is then switched on for this process.
    """
    out = list(argv)
    for i, arg in enumerate(out):
        if arg not in _COMPLETION_OPTIONS:
            continue
        if i + 1 >= len(out) or out[i + 1] not in SHELLS:
            out.insert(i + 1, _detect_shell() or "bash")
        os.environ["_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION"] = "1"
        break
    return out


def main() -> None:
    try:
        from vadkit.cli.base import app

        argv = _completion_argv(sys.argv[1:])
    except KeyboardInterrupt:  # Ctrl-C while modules are still importing
        print("Interrupted", file=sys.stderr)
        sys.exit(130)
    app(args=argv, prog_name="vadkit")
