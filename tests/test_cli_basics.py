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


def test_eval_and_plot_start_without_importing_torch():
    # `vadkit eval` must stay fast (1.1 M frames in < 2 s): only the eval module is loaded.
    code = (
        "import sys\n"
        "sys.argv = ['vadkit', 'eval', '--help']\n"
        "from vadkit.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('TORCH', 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "TORCH False" in out.stdout
    assert "Usage: vadkit eval" in out.stdout
