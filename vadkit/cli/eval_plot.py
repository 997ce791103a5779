"""`vadkit eval` (frame-level metrics of a score directory); `vadkit plot` is `vadkit.cli.plots`,
registered from here too (the command registry maps both to this module).

The commands only parse options and print: reading, checking, aligning and computing are the
library's (`vadkit.io.scores`, `vadkit.io.annotations`, `vadkit.metrics`, `vadkit.plot`). A
library check of a single option value runs as that option's callback (`vadkit.cli.gt.usage`),
so that a bad value is a usage error (exit 2) rather than a data error (exit 1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from vadkit.cli.base import app
from vadkit.cli.gt import (
    AnnotationFormat,
    AnnotationsOpt,
    FormatAliasOpt,
    FormatOpt,
    GroundTruth,
    InclusiveOpt,
    ListOpt,
    OneBasedOpt,
    ViperObjectsOpt,
    ViperWhereOpt,
    load,
    usage,
)
from vadkit.io.atomic import save_json
from vadkit.metrics import FALSE_ALARM_THRESHOLD, check_threshold, evaluate


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _metrics_table(result: dict) -> Table:
    t = Table(title="frame-level metrics", show_header=True, header_style="bold")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for key in ("roc_auc", "average_precision", "pr_auc_trapezoid", "roc_auc_abnormal"):
        t.add_row(key, _fmt(result[key]))
    t.add_row(f"false_alarm_rate (@{result['threshold']:g})", _fmt(result["false_alarm_rate"]))
    t.add_row(
        "videos",
        f"{result['videos']} ({result['abnormal_videos']} abnormal, {result['normal_videos']} normal)",
    )
    t.add_row("frames", f"{result['frames']} ({result['anomalous_frames']} anomalous)")
    return t


def _class_table(per_class: dict) -> Table:
    c = Table(title="per class (class videos + all normal videos)", header_style="bold")
    for col in ("class", "roc_auc", "videos", "frames"):
        c.add_column(col, justify="left" if col == "class" else "right")
    for name, row in per_class.items():
        c.add_row(name, _fmt(row["roc_auc"]), str(row["videos"]), str(row["frames"]))
    return c


def _video_table(per_video: dict) -> Table:
    p = Table(title="per video (worst ROC AUC first)", header_style="bold")
    p.add_column("video", overflow="fold")
    for col in ("frames", "anomalous", "roc_auc", "mean", "max", "alarm_rate"):
        p.add_column(col, justify="right")
    rows = sorted(
        per_video.items(),
        key=lambda kv: (kv[1]["roc_auc"] is None, kv[1]["roc_auc"] or 0.0, kv[0]),
    )
    for v, r in rows:
        numbers = (r["roc_auc"], r["mean_score"], r["max_score"], r["alarm_rate"])
        p.add_row(v, str(r["frames"]), str(r["anomalous_frames"]), *map(_fmt, numbers))
    return p


def _print_tables(result: dict) -> None:
    # piped output is not folded to 80 columns: video names stay whole for grep
    out = Console()
    out = out if out.is_terminal else Console(width=200)
    out.print(_metrics_table(result))
    if result["per_class"]:
        out.print(_class_table(result["per_class"]))
    if "per_video" in result:
        out.print(_video_table(result["per_video"]))


def _report_notes(result: dict, scores: Path) -> None:
    """Annotated videos without scores as a warning, the other notes as notes (stderr)."""
    err = Console(stderr=True, soft_wrap=True)
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


def _write_result(result: dict, out: Path | None, as_json: bool) -> None:
    """The metrics as JSON to `out` (`-`: stdout, instead of the tables), on stdout with
    `as_json`, else as tables."""
    to_stdout = out is not None and str(out) == "-"
    if out is not None and not to_stdout:
        save_json(out, result)
    if as_json or to_stdout:
        typer.echo(json.dumps(result, indent=1))
    else:
        _print_tables(result)


ScoresArg = Annotated[
    Path,
    typer.Argument(
        help="Score directory: one VID.npy of per-frame scores per video (+ VID.json "
        "metadata from `vadkit score`; bare arrays from other tools are accepted).",
        metavar="SCORES",
        show_default=False,
    ),
]
ThresholdOpt = Annotated[
    float,
    typer.Option(
        help="Score threshold of the false-alarm rate (score >= threshold).",
        callback=usage(check_threshold),
    ),
]
PerVideoOpt = Annotated[
    bool,
    typer.Option(
        "--per-video",
        help="Also report each video's frames, ROC AUC, mean/max score and alarm rate "
        "(a table sorted by ROC AUC, or 'per_video' in the JSON).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the metrics as JSON on stdout.")]
OutHelp = "Also write the metrics to this JSON file ('-': to stdout, instead of the tables)."
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help=OutHelp)]
OutAliasOpt = Annotated[
    Path | None, typer.Option("--output", hidden=True, help="Old spelling of --out.")
]


@app.command("eval")
def eval_cmd(
    scores: ScoresArg,
    annotations: AnnotationsOpt,
    annotations_format: FormatOpt = AnnotationFormat.auto,
    list_file: ListOpt = None,
    one_based: OneBasedOpt = None,
    end_inclusive: InclusiveOpt = None,
    viper_objects: ViperObjectsOpt = None,
    viper_where: ViperWhereOpt = None,
    threshold: ThresholdOpt = FALSE_ALARM_THRESHOLD,
    per_video: PerVideoOpt = False,
    as_json: JsonOpt = False,
    out: OutOpt = None,
    format_alias: FormatAliasOpt = None,
    output_alias: OutAliasOpt = None,
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
    fmt = format_alias or annotations_format
    gt = GroundTruth(
        annotations, fmt, list_file, one_based, end_inclusive, viper_objects, viper_where
    )
    arrays, metas, ann = load(scores, gt)
    result = evaluate(
        arrays,
        ann,
        frame_counts={v: m.frame_count for v, m in metas.items()},
        snippet_lengths={v: m.snippet_length for v, m in metas.items()},
        threshold=threshold,
        per_video=per_video,
    )
    result["scores"] = str(scores)
    _report_notes(result, scores)
    _write_result(result, out or output_alias, as_json)


# `vadkit plot` and its sub-commands live in their own module; importing it registers them
from vadkit.cli import plots  # noqa: E402, F401
