#!/usr/bin/env python3
"""Generate roff man pages for the vadkit CLI from its Typer/click command tree.

    python scripts/gen_man.py            # (re)write vadkit/man/man1/vadkit.1, vadkit-<cmd>.1, ...
    python scripts/gen_man.py --check    # exit 1 if the pages differ from what the CLI says

One page for `vadkit`, one per command (`vadkit-eval.1`), and for sub-apps one per group and
one per sub-command (`vadkit weights fetch` → `vadkit-weights-fetch.1`). Besides what the CLI
says (synopsis, description, arguments, options, commands), every page has EXAMPLES (from
`EXAMPLES` below), EXIT STATUS, ENVIRONMENT and FILES sections. The output carries no date, so
it changes only when the CLI does; tests/test_man.py fails when the pages are stale.

The pages are package data (`vadkit/man/man1/`), so `pip install` puts them beside the code:
`man "$(python -c 'import vadkit, pathlib; print(pathlib.Path(vadkit.__file__).parent)')/man/man1/vadkit.1"`,
or add that `man` folder to MANPATH and run `man vadkit-train`. `man/` at the top of the
repository is a link to the same folder.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

import typer

REPO = Path(__file__).resolve().parents[1]
MAN_DIR = REPO / "vadkit" / "man" / "man1"
MANUAL = "vadkit manual"

# page name -> [(what it does, command line)], plain text (escaped when rendered)
EXAMPLES: dict[str, list[tuple[str, str]]] = {
    "vadkit": [
        ("The whole pipeline on synthetic videos:", "vadkit synth -o data"),
        ("", "vadkit weights fetch"),
        ("", "vadkit extract data/videos -o feats --crops 1 --no-patches"),
        ("", "vadkit train --model rtfm --train data/train.csv --features feats -o runs/rtfm"),
        ("", "vadkit score runs/rtfm feats -o scores"),
        ("", "vadkit eval scores -a data/annotations.csv"),
        (
            "Shell completion for bash (or zsh, fish, powershell):",
            "vadkit --install-completion bash",
        ),
    ],
    "vadkit-synth": [
        (
            "A small seeded dataset:",
            "vadkit synth -o data --videos-train 8 --videos-test 4 --seed 1",
        ),
    ],
    "vadkit-weights": [("Fetch the I3D weights once:", "vadkit weights fetch")],
    "vadkit-weights-fetch": [
        ("Download, check and convert; print the cached path:", "vadkit weights fetch"),
        ("Replace a broken cache:", "vadkit weights fetch --force"),
    ],
    "vadkit-extract": [
        (
            "Ten crops and MSIP's patches, resuming where it stopped:",
            "vadkit extract ucf/videos -o feats --crops 10",
        ),
        (
            "Clip features only (all RTFM and MGFN read):",
            "vadkit extract ucf/videos -o feats --crops 10 --no-patches",
        ),
        (
            "Eight processes on one machine:",
            "torchrun --nproc_per_node 8 -m vadkit extract ucf/videos -o feats",
        ),
    ],
    "vadkit-train": [
        (
            "RTFM, then MSIP's stage 2 on it:",
            "vadkit train --model rtfm --stage 1 --train train.csv --features feats -o runs/rtfm",
        ),
        (
            "",
            "vadkit train --model msip --stage 2 --from runs/rtfm --train train.csv "
            "--features feats -o runs/msip",
        ),
        ("Continue an interrupted run:", "vadkit train --resume -o runs/rtfm"),
        (
            "RTFM as its authors trained it, best kept on the test list as they did (labelled so):",
            "vadkit train --recipe rtfm-ucf --train ucf-i3d.list --abnormal-first 810 "
            "--val ucf-i3d-test.list -a Temporal_Anomaly_Annotation.txt --protocol official "
            "-o runs/rtfm-ucf",
        ),
        ("Settings from a file (flags override it):", "vadkit train --config run.toml -o runs/x"),
    ],
    "vadkit-score": [
        ("Scores of extracted features:", "vadkit score runs/msip feats -o scores"),
        (
            "Scores of a raw video (extracts only the features the run reads):",
            "vadkit score runs/msip my_video.mp4 -o scores",
        ),
    ],
    "vadkit-watch": [
        (
            "A camera-like file: paced at its frame rate, alerts saved as clips:",
            "vadkit watch data/videos/test_abn_000.mp4 --run runs/msip --realtime --save-clips alerts",
        ),
        (
            "An RTSP camera, reopened when it drops, a hook per alert event:",
            "vadkit watch rtsp://cam.local/stream1 --run runs/msip --reconnect "
            "--on-alert 'cat >> alerts.jsonl'",
        ),
        ("The first webcam, only the alert lines:", "vadkit watch 0 --run runs/msip | grep alert_"),
    ],
    "vadkit-plot-scores": [
        (
            "Two videos, one panel each, with an alarm threshold:",
            "vadkit plot scores test_abn_000 test_nrm_000 -s scores -a gt.csv --threshold 0.5 -o v.png",
        ),
    ],
    "vadkit-plot-training": [
        ("Validation curves of three runs:", "vadkit plot training runs/rtfm runs/msip -o t.png"),
        ("The per-evaluation table as JSON:", "vadkit plot training runs/rtfm --json"),
    ],
    "vadkit-plot-curves": [
        (
            "ROC curves of two models:",
            "vadkit plot curves scores/rtfm scores/msip -a gt.csv -o roc.png",
        ),
        ("PR curves:", "vadkit plot curves scores/rtfm -a gt.csv --kind pr -o pr.png"),
    ],
    "vadkit-plot-features": [
        ("Views of one feature file:", "vadkit plot features feats/VID.npy -o f.png"),
    ],
    "vadkit-manifest": [
        (
            "Labels from folders, split 80/20 per label:",
            "vadkit manifest minidrone/ --labels normal=0,suspicious=1,illicit=1 --split 0.8 -o lists/",
        ),
    ],
    "vadkit-render": [
        (
            "A test video with its score timeline, alert banners and (when scored with "
            "--evidence) the heatmap:",
            "vadkit render data/videos/test_abn_000.mp4 -s scores -o test_abn_000.mp4",
        ),
        (
            "Alerts only after half a second above 0.7, for a 640-pixel-wide review copy:",
            "vadkit render cam1.mp4 -s scores -o review.mp4 --threshold 0.7 --min-duration 0.5 "
            "--width 640",
        ),
        (
            "One frame as an image (default: the top alert's peak frame):",
            "vadkit render data/videos/test_abn_000.mp4 -s scores -o frame.png --frame 80",
        ),
    ],
    "vadkit-report": [
        (
            "One HTML page for a scored test set, with thumbnails and metrics:",
            "vadkit report scores -o report.html --videos data/videos -a data/annotations.csv",
        ),
        (
            "Without ground truth or videos (timelines and alerts only):",
            "vadkit report scores -o report.html",
        ),
    ],
    "vadkit-convert": [
        (
            "RTFM's published UCF-Crime checkpoint as a run, then score its public features:",
            "vadkit convert rtfm-ucf.pkl --model rtfm -o runs/rtfm-official",
        ),
        ("", "vadkit score runs/rtfm-official ucf-i3d-test/ -o scores"),
    ],
    "vadkit-recipes": [
        ("Every recipe, each value with where it comes from:", "vadkit recipes"),
        ("One recipe as JSON:", "vadkit recipes rtfm-ucf --json"),
    ],
    "vadkit-eval": [
        (
            "The benchmark metrics (annotation format detected):",
            "vadkit eval scores -a Temporal_Anomaly_Annotation.txt",
        ),
        ("As JSON, for scripts:", "vadkit eval scores -a Temporal_Anomaly_Annotation.txt --json"),
    ],
    "vadkit-plot": [
        (
            "One video's curve over its ground truth:",
            "vadkit plot Shooting022_x264 -s scores -a Temporal_Anomaly_Annotation.txt "
            "-o shooting022.png",
        ),
    ],
}

EXIT_STATUS = [
    ("0", "Success."),
    (
        "1",
        "An error: bad or missing input data, a failed step, out of memory. One line "
        "'Error: ...' on standard error says what failed.",
    ),
    ("2", "Bad usage: an unknown option, a bad option value or a missing argument."),
    ("130", "Interrupted (Ctrl-C, SIGINT)."),
]

ENVIRONMENT = [
    (
        "VADKIT_HOME",
        "Folder of vadkit's cache (the converted I3D weights). Default: "
        "$XDG_CACHE_HOME/vadkit, else ~/.cache/vadkit (Linux), ~/Library/Caches/vadkit (macOS), "
        "%LOCALAPPDATA%\\vadkit\\Cache (Windows).",
    ),
    ("XDG_CACHE_HOME", "Base of the default cache folder when VADKIT_HOME is not set."),
    (
        "RANK, WORLD_SIZE, LOCAL_RANK",
        "Set by torchrun: extract shards the videos, train runs distributed data-parallel.",
    ),
    ("NO_COLOR", "When set, progress bars and messages use no colour."),
]

FILES = [
    (
        "$VADKIT_HOME/weights/i3d-inception-kinetics400-rgb.safetensors",
        "The converted Kinetics-400 I3D weights that 'vadkit weights fetch' writes and extract "
        "and score read. It records the sha256 of its own tensors, checked on every load.",
    ),
    ("vadkit/man/man1/ (inside the installed package)", "These manual pages."),
]


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
    out += _params(cmd, ctx)
    subs = _subcommands(cmd, ctx)
    if subs:
        out.append(".SH COMMANDS")
        for sub_name, sub_help in subs:
            out += [
                ".TP",
                f"\\fB{_esc(sub_name)}\\fR",
                _esc(f"{sub_help} See {name}-{sub_name}(1)."),
            ]
    out += _conventions(name)
    see = [f"{name}-{s}(1)" for s, _ in subs] or ["vadkit(1)"]
    out += [".SH SEE ALSO", _esc(", ".join(see))]
    return "\n".join(out) + "\n"


def _params(cmd, ctx) -> list[str]:
    """ARGUMENTS and OPTIONS sections (hidden options, the old spellings, left out)."""
    params = [p for p in cmd.get_params(ctx) if p.name != "help"]
    args = [p for p in params if p.param_type_name == "argument"]
    opts = [p for p in params if p.param_type_name == "option" and not getattr(p, "hidden", False)]
    out = []
    if args:
        out.append(".SH ARGUMENTS")
        for p in args:
            record = p.get_help_record(ctx)
            out += [".TP", f"\\fB{_esc(p.name.upper())}\\fR", _esc(record[1] if record else "")]
    if opts:
        out.append(".SH OPTIONS")
        for p in opts:
            record = p.get_help_record(ctx)
            if record is not None:
                out += [".TP", f"\\fB{_esc(record[0])}\\fR", _esc(record[1] or "")]
    return out


def _subcommands(cmd, ctx) -> list[tuple[str, str]]:
    """(name, short help) of the visible sub-commands of a group; [] for a plain command."""
    subs = []
    for sub_name in cmd.list_commands(ctx) if hasattr(cmd, "list_commands") else []:
        sub = cmd.get_command(ctx, sub_name)
        if sub is not None and not getattr(sub, "hidden", False):
            subs.append((sub_name, sub.get_short_help_str(limit=200).strip()))
    return subs


def _tagged(title: str, rows: list[tuple[str, str]]) -> list[str]:
    """A `.SH` section of `.TP` entries."""
    out = [f".SH {title}"]
    for tag, text in rows:
        out += [".TP", f"\\fB{_esc(tag)}\\fR", _esc(text)]
    return out


def _conventions(name: str) -> list[str]:
    """EXAMPLES, EXIT STATUS, ENVIRONMENT and FILES of page `name` (roff lines)."""
    out = []
    if name in EXAMPLES:
        out.append(".SH EXAMPLES")
        for what, line in EXAMPLES[name]:
            if what:
                out += [".PP", _esc(what)]
            out += [".RS 4", ".nf", _esc(line), ".fi", ".RE"]
    out += _tagged("EXIT STATUS", EXIT_STATUS)
    out += _tagged("ENVIRONMENT", ENVIRONMENT)
    out += _tagged("FILES", FILES)
    return out


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
    ap.add_argument("out", nargs="?", type=Path, default=MAN_DIR, help="output directory")
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
