"""The installed CLI: --version, --help, `python -m vadkit`, documented commands."""

from __future__ import annotations

import subprocess
import sys

import pytest
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


def _modules_after(*argv: str, env: dict | None = None) -> tuple[str, set[str]]:
    """Run `vadkit ARGV` in a fresh interpreter; its stdout and the modules it imported."""
    code = (
        "import sys\n"
        f"sys.argv = ['vadkit', *{list(argv)!r}]\n"
        "from vadkit.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('MODULES', ' '.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout
    text, _, mods = out.rpartition("MODULES ")
    return text, set(mods.split())


def test_version_and_help_import_no_torch_and_no_command_module():
    from vadkit.cli.base import COMMANDS

    for argv in (["--version"], ["--help"], ["-h"], []):
        text, mods = _modules_after(*argv)
        assert "torch" not in mods, argv
        command_modules = {f"vadkit.cli.{m}" for m, _ in COMMANDS.values()}
        assert not mods & command_modules, (argv, mods & command_modules)
        if argv and argv[0] != "--version":
            for name in COMMANDS:
                assert f"  {name}  " in text or f"  {name} " in text, name


def test_registry_matches_the_registered_commands():
    # every registry entry is registered by the module it names, and nothing is missing from it
    from vadkit.cli.base import COMMANDS

    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="vadkit")
    registered = {
        n for n in root.list_commands(ctx) if not getattr(root.get_command(ctx, n), "hidden", 0)
    }
    assert registered == set(COMMANDS)
    for name, (module, short) in COMMANDS.items():
        cmd = root.get_command(ctx, name)
        callback = cmd.callback if cmd.callback is not None else None
        if callback is not None:  # a plain command: its function lives in that module
            assert callback.__module__ == f"vadkit.cli.{module}", name
        assert (
            short.endswith(".") and 10 < len(short) <= 67
        )  # one line in an 80-column --help, (name, short)


def test_subcommand_help_loads_only_its_module():
    text, mods = _modules_after("eval", "--help")
    assert "Usage: vadkit eval" in text
    assert "vadkit.cli.eval_plot" in mods and "vadkit.cli.train_score" not in mods


def test_show_completion_prints_a_script(tmp_path):
    import os

    env = {**os.environ, "SHELL": "/bin/bash"}
    for argv in (["--show-completion", "bash"], ["--show-completion"]):
        r = subprocess.run(
            [sys.executable, "-m", "vadkit", *argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
        assert "_VADKIT_COMPLETE" in r.stdout and "complete" in r.stdout
    r = subprocess.run(
        [sys.executable, "-m", "vadkit", "--show-completion", "zsh"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0 and "compdef" in r.stdout


def test_install_completion_writes_the_start_up_file(tmp_path):
    import os

    env = {**os.environ, "HOME": str(tmp_path), "SHELL": "/bin/bash"}
    r = subprocess.run(
        [sys.executable, "-m", "vadkit", "--install-completion", "bash"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "bash completion installed" in r.stdout
    script = tmp_path / ".bash_completions" / "vadkit.sh"
    assert "_VADKIT_COMPLETE" in script.read_text()
    assert str(script.name) in (tmp_path / ".bashrc").read_text()


def test_completion_of_command_names_works():
    import os

    env = {
        **os.environ,
        "_VADKIT_COMPLETE": "complete_bash",
        "COMP_WORDS": "vadkit ev",
        "COMP_CWORD": "1",
    }
    r = subprocess.run(
        [sys.executable, "-m", "vadkit"], capture_output=True, text=True, env=env, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["eval"]


def test_exit_status_usage_error_interrupt_and_custom_code():
    from typer.testing import CliRunner

    from vadkit.cli.base import EXIT_INTERRUPTED, EXIT_USAGE, _Group
    from vadkit.errors import VadkitError

    demo = typer.Typer(cls=_Group)

    @demo.command()
    def stop(kind: str):
        if kind == "interrupt":
            raise KeyboardInterrupt
        err = VadkitError("broken input")
        if kind == "custom":
            err.exit_code = 3
        raise err

    @demo.command()
    def other():
        pass

    runner = CliRunner()
    r = runner.invoke(demo, ["stop", "interrupt"])
    assert r.exit_code == EXIT_INTERRUPTED == 130
    assert "Interrupted" in r.output
    r = runner.invoke(demo, ["stop", "error"])
    assert r.exit_code == 1 and "Error: broken input" in r.output
    r = runner.invoke(demo, ["stop", "custom"])
    assert r.exit_code == 3
    r = _run("eval", "--no-such-option")
    assert r.returncode == EXIT_USAGE == 2 and "No such option" in r.stderr


def test_ctrl_c_while_modules_import_exits_130(monkeypatch, capsys):
    """Ctrl-C before typer and the command modules have loaded: one line, exit 130."""
    import builtins
    import sys

    import vadkit.cli as cli

    real_import = builtins.__import__

    def interrupted(name, *args, **kwargs):
        if name == "vadkit.cli.base":
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", interrupted)
    monkeypatch.setattr(sys, "argv", ["vadkit", "--help"])
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 130
    assert capsys.readouterr().err.strip() == "Interrupted"
