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
    committed = {p.name: p.read_text() for p in (REPO / "man").glob("*.1")}
    stale = sorted(n for n in fresh.keys() | committed.keys() if fresh.get(n) != committed.get(n))
    assert not stale, f"man/ is stale ({', '.join(stale)}); run: python scripts/gen_man.py"


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
