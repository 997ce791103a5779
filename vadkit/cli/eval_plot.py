"""`vadkit eval` (frame-level metrics of a score directory) and `vadkit plot` (one video's curve)."""

from __future__ import annotations

import json
import math
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from vadkit.cli.base import app
from vadkit.io.annotations import Annotations, read_annotations
from vadkit.io.atomic import save_json
from vadkit.io.scores import ScoreMeta, read_scores
from vadkit.metrics import FALSE_ALARM_THRESHOLD, SNIPPET_LENGTH, evaluate
from vadkit.plot import PLOT_FORMATS, draw_curve, match_video, video_curve


class AnnotationFormat(str, Enum):
    auto = "auto"
    ucf = "ucf"
    ucf_frames = "ucf-frames"
    xd = "xd"
    shanghaitech = "shanghaitech"
    csv = "csv"
    legacy = "legacy"


_FORMAT_HELP = (
    "Ground-truth format. auto: a directory is shanghaitech (VID.npy 0/1 frame masks), a .npy "
    "is legacy (concatenated RTFM/MGFN gt, needs --list), a .csv is csv "
    "(video,start,end[,class][,frames]); a text file is ucf ('name class s1 e1 s2 e2'), "
    "ucf-frames ('Class/name.mp4 nframes class s1 e1 s2 e2') or xd ('name s1 e1 [s2 e2 ...]', "
    "unlisted videos are normal) by its first line."
)
_ONE_BASED_HELP = (
    "Frame numbers in the annotation count from 1 (--one-based) or 0 (--zero-based). Default "
    "for every interval format: zero-based."
)
_INCLUSIVE_HELP = (
    "Whether an interval's end frame is anomalous too. Default for every interval format: "
    "end-inclusive (UCF-Crime's 'Shooting022 ... 2850 3300' marks frames 2850-3300)."
)

AnnotationsOpt = Annotated[
    Path,
    typer.Option(
        "--annotations",
        "-a",
        help="Ground truth: an annotation file, or a directory of frame masks.",
        show_default=False,
    ),
]
FormatOpt = Annotated[
    AnnotationFormat, typer.Option("--format", "-f", help=_FORMAT_HELP, case_sensitive=False)
]
ListOpt = Annotated[
    Path | None,
    typer.Option(
        "--list",
        help="legacy format: the test-feature list in gt order; each line a feature path, "
        "optionally followed by its snippet count t (the gt holds 16·t entries per video).",
    ),
]
OneBasedOpt = Annotated[bool | None, typer.Option("--one-based/--zero-based", help=_ONE_BASED_HELP)]
InclusiveOpt = Annotated[
    bool | None, typer.Option("--end-inclusive/--end-exclusive", help=_INCLUSIVE_HELP)
]


def _load(
    scores_dir: Path,
    annotations: Path,
    fmt: AnnotationFormat,
    list_file: Path | None,
    one_based: bool | None,
    end_inclusive: bool | None,
) -> tuple[dict, dict[str, ScoreMeta], Annotations]:
    scored = read_scores(scores_dir)
    metas = {v: m for v, (_, m) in scored.items() if m is not None}
    ann = read_annotations(
        annotations,
        format=fmt.value,
        one_based=one_based,
        end_inclusive=end_inclusive,
        list_file=list_file,
        snippets={v: m.snippets for v, m in metas.items()},
    )
    if list_file is not None and ann.format != "legacy":
        raise typer.BadParameter(
            f"--list is for the legacy gt format, but {annotations} is {ann.format}",
            param_hint="--list",
        )
    return {v: a for v, (a, _) in scored.items()}, metas, ann


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _table(result: dict, console: Console) -> None:
    t = Table(title="frame-level metrics", show_header=True, header_style="bold")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_row("roc_auc", _fmt(result["roc_auc"]))
    t.add_row("average_precision", _fmt(result["average_precision"]))
    t.add_row("pr_auc_trapezoid", _fmt(result["pr_auc_trapezoid"]))
    t.add_row("roc_auc_abnormal", _fmt(result["roc_auc_abnormal"]))
    t.add_row(f"false_alarm_rate (@{result['threshold']:g})", _fmt(result["false_alarm_rate"]))
    t.add_row(
        "videos",
        f"{result['videos']} ({result['abnormal_videos']} abnormal, {result['normal_videos']} normal)",
    )
    t.add_row("frames", f"{result['frames']} ({result['anomalous_frames']} anomalous)")
    console.print(t)
    if result["per_class"]:
        c = Table(title="per class (class videos + all normal videos)", header_style="bold")
        c.add_column("class")
        c.add_column("roc_auc", justify="right")
        c.add_column("videos", justify="right")
        c.add_column("frames", justify="right")
        for name, row in result["per_class"].items():
            c.add_row(name, _fmt(row["roc_auc"]), str(row["videos"]), str(row["frames"]))
        console.print(c)
    if "per_video" in result:
        p = Table(title="per video (worst ROC AUC first)", header_style="bold")
        for col in ("video", "frames", "anomalous", "roc_auc", "mean", "max", "alarm_rate"):
            if col == "video":
                p.add_column(col, overflow="fold")
            else:
                p.add_column(col, justify="right")
        rows = sorted(
            result["per_video"].items(),
            key=lambda kv: (kv[1]["roc_auc"] is None, kv[1]["roc_auc"] or 0.0, kv[0]),
        )
        for v, r in rows:
            p.add_row(
                v,
                str(r["frames"]),
                str(r["anomalous_frames"]),
                _fmt(r["roc_auc"]),
                _fmt(r["mean_score"]),
                _fmt(r["max_score"]),
                _fmt(r["alarm_rate"]),
            )
        console.print(p)


@app.command("eval")
def eval_cmd(
    scores: Annotated[
        Path,
        typer.Argument(
            help="Score directory: one VID.npy of per-frame scores per video (+ VID.json "
            "metadata from `vadkit score`; bare arrays from other tools are accepted).",
            metavar="SCORES",
            show_default=False,
        ),
    ],
    annotations: AnnotationsOpt,
    format: FormatOpt = AnnotationFormat.auto,
    list_file: ListOpt = None,
    one_based: OneBasedOpt = None,
    end_inclusive: InclusiveOpt = None,
    threshold: Annotated[
        float, typer.Option(help="Score threshold of the false-alarm rate (score >= threshold).")
    ] = FALSE_ALARM_THRESHOLD,
    per_video: Annotated[
        bool,
        typer.Option(
            "--per-video",
            help="Also report each video's frames, ROC AUC, mean/max score and alarm rate "
            "(a table sorted by ROC AUC, or 'per_video' in the JSON).",
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the metrics as JSON on stdout.")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Also write the metrics to this JSON file."),
    ] = None,
) -> None:
    """Frame-level metrics of per-frame scores against ground truth.

    Reports ROC AUC, average precision (sklearn), the trapezoid PR AUC that RTFM/MGFN print,
    ROC AUC on the anomalous videos only, the false-alarm rate on normal videos, per-class ROC
    AUC (class videos + all normal videos) and counts, over all frames of all videos
    concatenated. A video whose scores and labels differ in length by at most one snippet
    (16 frames) is trimmed and listed under 'trimmed'; a larger difference is an error. Scored
    videos missing from an annotation that lists every video are an error; annotated videos
    without scores are reported on stderr and under 'missing_scores'.
    """
    if not math.isfinite(threshold):
        raise typer.BadParameter(f"{threshold}: expected a finite number", param_hint="--threshold")
    err = Console(stderr=True, soft_wrap=True)
    arrays, metas, ann = _load(scores, annotations, format, list_file, one_based, end_inclusive)
    result = evaluate(
        arrays,
        ann,
        frame_counts={v: m.frame_count for v, m in metas.items()},
        snippet_lengths={v: m.snippet_length or SNIPPET_LENGTH for v, m in metas.items()},
        threshold=threshold,
        per_video=per_video,
    )
    result["scores"] = str(scores)
    missing = result["missing_scores"]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        err.print(
            f"Warning: {len(missing)} annotated video(s) have no scores in {scores} and were not "
            f"evaluated: {shown}",
            markup=False,
            highlight=False,
        )
    for note in result["notes"]:
        if "have no scores" not in note:  # already a warning above
            err.print(f"Note: {note}", markup=False, highlight=False)
    if output is not None:
        save_json(output, result)
    if as_json:
        typer.echo(json.dumps(result, indent=1))
    else:
        # piped output is not folded to 80 columns: video names stay whole for grep
        out = Console()
        _table(result, out if out.is_terminal else Console(width=200))


@app.command("plot")
def plot_cmd(
    video: Annotated[
        str,
        typer.Argument(
            help="Video id, or a case-insensitive prefix of one (shooting022 finds "
            "Shooting022_x264); an exact name always wins.",
            metavar="VIDEO",
            show_default=False,
        ),
    ],
    scores: Annotated[
        Path,
        typer.Option(
            "--scores", "-s", help="Score directory (VID.npy per video).", show_default=False
        ),
    ],
    annotations: AnnotationsOpt,
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Figure file: .png, .svg or .pdf.", show_default=False),
    ],
    format: FormatOpt = AnnotationFormat.auto,
    list_file: ListOpt = None,
    one_based: OneBasedOpt = None,
    end_inclusive: InclusiveOpt = None,
) -> None:
    """Plot one video's per-frame scores with its anomalous intervals shaded.

    The title gives the video id and, when the video has both normal and anomalous frames, its
    own ROC AUC.
    """
    if output.suffix.lower().lstrip(".") not in PLOT_FORMATS:
        raise typer.BadParameter(
            f"{output}: unsupported figure format {output.suffix or '(none)'!r}; "
            f"use .png, .svg or .pdf",
            param_hint="--output",
        )
    arrays, metas, ann = _load(scores, annotations, format, list_file, one_based, end_inclusive)
    name = match_video(video, arrays)
    meta = metas.get(name)
    curve = video_curve(
        name,
        arrays[name],
        ann,
        frame_count=meta.frame_count if meta else None,
        snippet_length=(meta.snippet_length if meta else 0) or SNIPPET_LENGTH,
    )
    draw_curve(curve, output)
    err = Console(stderr=True, soft_wrap=True)
    if curve.note:
        err.print(f"Note: {name}: {curve.note}", markup=False, highlight=False)
    auc = f", ROC AUC {curve.roc_auc:.4f}" if curve.roc_auc is not None else ""
    err.print(f"Wrote {output} ({name}{auc})", markup=False, highlight=False)
