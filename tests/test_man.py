"""Man pages: generated from the CLI, never stale, one per command, none without help."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import typer

from vadkit.cli import app

REPO = Path(__file__).resolve().parents[1]


def _gen_man():
    spec = importlib.util.spec_from_file_location("gen_man", REPO / "scripts" / "gen_man.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _commands():
    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="vadkit")
    gen = _gen_man()
    return list(gen._walk(root, ctx, ("vadkit",)))


def test_man_pages_are_up_to_date(tmp_path):
    gen = _gen_man()
    gen.write(tmp_path)
    fresh = {p.name: p.read_text() for p in tmp_path.glob("*.1")}
    committed = {p.name: p.read_text() for p in gen.MAN_DIR.glob("*.1")}
    stale = sorted(n for n in fresh.keys() | committed.keys() if fresh.get(n) != committed.get(n))
    assert not stale, (
        f"vadkit/man/man1 is stale ({', '.join(stale)}); run: python scripts/gen_man.py"
    )


def test_every_command_has_a_page_and_help():
    pages = _gen_man().render_all()
    for path, cmd, _ in _commands():
        name = "-".join(path) + ".1"
        assert name in pages, name
        assert (cmd.help or "").strip(), f"{' '.join(path)} has no help text"
        assert ".SH DESCRIPTION" in pages[name]
    assert {"vadkit.1", "vadkit-eval.1", "vadkit-plot.1"} <= set(pages)


def test_output_is_deterministic_and_roff_escaped():
    gen = _gen_man()
    a, b = gen.render_all(), gen.render_all()
    assert a == b
    page = a["vadkit-eval.1"]
    assert page.startswith('.TH "VADKIT-EVAL" "1" ""')
    assert "\\-\\-annotations" in page and "--annotations" not in page
    assert gen._esc(".dot\n'quote\\") == "\\&.dot\n\\&'quote\\e"


def test_pages_are_package_data_and_the_old_folder_still_works():
    gen = _gen_man()
    assert gen.MAN_DIR == REPO / "vadkit" / "man" / "man1"
    assert (REPO / "man" / "vadkit.1").read_text() == (gen.MAN_DIR / "vadkit.1").read_text()
    import tomllib

    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "man/man1/*.1" in setuptools["package-data"]["vadkit"]


def test_every_page_has_examples_exit_status_environment_and_files():
    gen = _gen_man()
    pages = gen.render_all()
    assert set(gen.EXAMPLES) <= {n[:-2] for n in pages}, "EXAMPLES names a page that is gone"
    for name, page in pages.items():
        for section in (".SH EXAMPLES", ".SH EXIT STATUS", ".SH ENVIRONMENT", ".SH FILES"):
            assert section in page, (name, section)
        assert "VADKIT_HOME" in page and "130" in page
    assert "vadkit weights fetch \\-\\-force" in pages["vadkit-weights-fetch.1"]


def test_examples_use_only_options_the_commands_have():
    import shlex

    root = typer.main.get_command(app)
    for name, examples in _gen_man().EXAMPLES.items():
        for _, line in examples:
            words = shlex.split(line)
            if words[0] != "vadkit":  # torchrun ... -m vadkit ...
                words = words[words.index("vadkit") :]
            cmd, ctx = root, root.context_class(root, info_name="vadkit")
            for word in words[1:]:
                sub = cmd.get_command(ctx, word) if hasattr(cmd, "get_command") else None
                if sub is None and getattr(cmd, "default", None):  # `vadkit plot VIDEO`
                    sub, word = cmd.get_command(ctx, cmd.default), cmd.default
                if sub is None:
                    break
                cmd, ctx = sub, sub.context_class(sub, info_name=word, parent=ctx)
            known = {o for p in cmd.get_params(ctx) for o in (*p.opts, *p.secondary_opts)}
            for word in words:
                if word.startswith("-") and not word.lstrip("-").isdigit():
                    assert word in known, f"{name}: {line!r} uses {word}, unknown to {cmd.name}"
