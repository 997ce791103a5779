"""The installed CLI: --version, --help, `python -m vadkit`, documented commands."""

from __future__ import annotations

import subprocess
import sys

import typer

from vadkit import __version__
from vadkit.cli import app


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "vadkit", *args], capture_output=True, text=True, timeout=120
    )


def test_version():
    r = _run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"vadkit {__version__}"


def test_help_lists_every_command():
    r = _run("--help")
    assert r.returncode == 0, r.stderr
    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="vadkit")
    names = root.list_commands(ctx)
    assert {"eval", "plot"} <= set(names)
    for name in names:
        assert name in r.stdout


def test_every_command_and_option_is_documented():
    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="vadkit")

    def walk(cmd, ctx, path):
        yield path, cmd, ctx
        if hasattr(cmd, "list_commands"):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                yield from walk(
                    sub, sub.context_class(sub, info_name=name, parent=ctx), f"{path} {name}"
                )

    for path, cmd, cctx in walk(root, ctx, "vadkit"):
        assert (cmd.help or "").strip(), f"`{path}` has no docstring/help"
        for p in cmd.get_params(cctx):
            if p.param_type_name == "option":
                assert (p.help or "").strip(), f"`{path}` option {p.opts} has no help"


def test_subcommand_help_and_one_line_error():
    r = _run("eval", "--help")
    assert r.returncode == 0 and "--annotations" in r.stdout
    r = _run("eval", "/definitely/not/here", "--annotations", "/nor/here.txt")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "Error: /definitely/not/here: score directory not found"
    ]
    assert "Traceback" not in r.stderr
