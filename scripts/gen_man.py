#!/usr/bin/env python3
"""Generate roff man pages for the vadkit CLI from its Typer/click command tree.

    python scripts/gen_man.py            # (re)write man/vadkit.1, man/vadkit-<cmd>.1, ...
    python scripts/gen_man.py --check    # exit 1 if man/ differs from what the CLI says

One page for `vadkit`, one per command (`vadkit-eval.1`), and for sub-apps one per group and
one per sub-command (`vadkit weights fetch` → `vadkit-weights-fetch.1`). The output carries no
date, so it changes only when the CLI does; tests/test_man.py fails when man/ is stale.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

import typer

REPO = Path(__file__).resolve().parents[1]
MANUAL = "vadkit manual"


def _esc(text: str) -> str:
    """Escape text for roff: backslashes, hyphens (so they stay ASCII), leading dots/quotes."""
    out = text.replace("\\", "\\e").replace("-", "\\-")
    lines = [("\\&" + ln) if ln.startswith((".", "'")) else ln for ln in out.split("\n")]
    return "\n".join(lines)


def _paragraphs(text: str) -> list[str]:
    """Docstring → paragraphs, each joined into one line (roff refills them)."""
    paras = []
    for block in inspect.cleandoc(text or "").split("\n\n"):
        lines = [ln.strip() for ln in block.splitlines() if ln.strip() and ln.strip() != "\b"]
        if lines:
            paras.append(" ".join(lines))
    return paras


def _walk(cmd, ctx, path: tuple[str, ...]):
    """Yield (path, command, context) for the command and, recursively, its sub-commands."""
    yield path, cmd, ctx
    if hasattr(cmd, "list_commands"):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is None or getattr(sub, "hidden", False):
                continue
            sub_ctx = sub.context_class(sub, info_name=name, parent=ctx)
            yield from _walk(sub, sub_ctx, (*path, name))


def _synopsis(cmd, ctx, path: tuple[str, ...]) -> str:
    parts = []
    for p in cmd.get_params(ctx):
        if p.param_type_name == "argument":
            name = p.name.upper() + ("..." if p.nargs == -1 else "")
            parts.append(name if p.required else f"[{name}]")
    if hasattr(cmd, "list_commands"):
        parts.append("COMMAND [ARGS]...")
    return f".B {_esc(' '.join(path))}\n" + _esc(" ".join(["[OPTIONS]", *parts]))


def render(cmd, ctx, path: tuple[str, ...], version: str) -> str:
    name = "-".join(path)
    short = cmd.get_short_help_str(limit=200).strip()
    out = [
        f'.TH "{name.upper()}" "1" "" "vadkit {version}" "{MANUAL}"',
        ".SH NAME",
        f"{_esc(name)} \\- {_esc(short)}",
        ".SH SYNOPSIS",
        _synopsis(cmd, ctx, path),
    ]
    paras = _paragraphs(cmd.help or "")
    if paras:
        out.append(".SH DESCRIPTION")
        for i, para in enumerate(paras):
            if i:
                out.append(".PP")
            out.append(_esc(para))
    params = [p for p in cmd.get_params(ctx) if p.name != "help"]
    args = [p for p in params if p.param_type_name == "argument"]
    opts = [p for p in params if p.param_type_name == "option" and not getattr(p, "hidden", False)]
    if args:
        out.append(".SH ARGUMENTS")
        for p in args:
            record = p.get_help_record(ctx)
            out += [".TP", f"\\fB{_esc(p.name.upper())}\\fR", _esc(record[1] if record else "")]
    if opts:
        out.append(".SH OPTIONS")
        for p in opts:
            record = p.get_help_record(ctx)
            if record is None:
                continue
            out += [".TP", f"\\fB{_esc(record[0])}\\fR", _esc(record[1] or "")]
    subs = []
    if hasattr(cmd, "list_commands"):
        for sub_name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, sub_name)
            if sub is not None and not getattr(sub, "hidden", False):
                subs.append((sub_name, sub.get_short_help_str(limit=200).strip()))
    if subs:
        out.append(".SH COMMANDS")
        for sub_name, sub_help in subs:
            out += [
                ".TP",
                f"\\fB{_esc(sub_name)}\\fR",
                _esc(f"{sub_help} See {name}-{sub_name}(1)."),
            ]
    see = [f"{name}-{s}(1)" for s, _ in subs] or ["vadkit(1)"]
    out += [".SH SEE ALSO", _esc(", ".join(see))]
    return "\n".join(out) + "\n"


def render_all() -> dict[str, str]:
    """{file name: roff text} for every page of the current CLI."""
    from vadkit import __version__
    from vadkit.cli import app

    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="vadkit")
    pages = {}
    for path, cmd, cmd_ctx in _walk(root, ctx, ("vadkit",)):
        pages["-".join(path) + ".1"] = render(cmd, cmd_ctx, path, __version__)
    return pages


def write(out_dir: Path) -> list[Path]:
    """Write every page into `out_dir` and delete pages of commands that no longer exist."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pages = render_all()
    for stale in out_dir.glob("vadkit*.1"):
        if stale.name not in pages:
            stale.unlink()
    written = []
    for fname, text in pages.items():
        p = out_dir / fname
        if not p.exists() or p.read_text() != text:
            p.write_text(text)
        written.append(p)
    return written


def stale(out_dir: Path) -> list[str]:
    """Page names that are missing, different or extra in `out_dir`."""
    pages = render_all()
    bad = [
        f for f, t in pages.items() if not (out_dir / f).exists() or (out_dir / f).read_text() != t
    ]
    bad += [p.name for p in out_dir.glob("vadkit*.1") if p.name not in pages]
    return sorted(bad)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", type=Path, default=REPO / "man", help="output directory")
    ap.add_argument("--check", action="store_true", help="only check; exit 1 if stale")
    a = ap.parse_args(argv)
    if a.check:
        bad = stale(a.out)
        if bad:
            print(f"stale man pages in {a.out}: {', '.join(bad)}; run python scripts/gen_man.py")
            return 1
        return 0
    for p in write(a.out):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
