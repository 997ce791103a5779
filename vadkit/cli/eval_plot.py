"""`vadkit eval` (frame-level metrics of a score directory) and `vadkit plot` (one video's curve).

The commands only parse options and print: reading, checking, aligning and computing are the
library's (`vadkit.io.scores`, `vadkit.io.annotations`, `vadkit.metrics`, `vadkit.plot`). A
library check of a single option value runs as that option's callback, so that a bad value is a
usage error (exit 2) rather than a data error (exit 1).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from vadkit.cli.base import app
from vadkit.errors import VadkitError
from vadkit.io.annotations import Annotations, check_list_file, read_annotations
from vadkit.io.atomic import save_json
from vadkit.io.scores import ScoreMeta, read_scores
from vadkit.metrics import FALSE_ALARM_THRESHOLD, check_threshold, evaluate
from vadkit.plot import draw_curve, figure_format, match_video, video_curve


class AnnotationFormat(str, Enum):
    auto = "auto"
    ucf = "ucf"
    ucf_frames = "ucf-frames"
    xd = "xd"
    shanghaitech = "shanghaitech"
    csv = "csv"
    legacy = "legacy"


def _usage(check: Callable[[Any], Any], hint: str | None = None) -> Callable[[Any], Any]:
    """An option callback running the library's `check` on the value: exit 2 if it refuses."""

    def callback(value: Any) -> Any:
        if value is not None:
            try:
                check(value)
            except VadkitError as e:
                raise typer.BadParameter(str(e), param_hint=hint) from None
        return value

    return callback


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
    AnnotationFormat,
    typer.Option("--annotations-format", "-f", help=_FORMAT_HELP, case_sensitive=False),
]
# the old spelling, still accepted, not listed by --help
FormatAliasOpt = Annotated[
    AnnotationFormat | None,
    typer.Option(
        "--format", hidden=True, case_sensitive=False, help="Old spelling of --annotations-format."
    ),
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
    _usage(lambda f: check_list_file(annotations, fmt.value, f), "--list")(list_file)
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
    return {v: a for v, (a, _) in scored.items()}, metas, ann


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
        callback=_usage(check_threshold),
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
    arrays, metas, ann = _load(scores, annotations, fmt, list_file, one_based, end_inclusive)
    result = evaluate(
        arrays,
        ann,
        frame_counts={v: m.frame_count for v, m in metas.items()},
        snippet_lengths={v: m.snippet_length for v, m in metas.items()},
        threshold=threshold,
        pad_scores=ann.pad_short_scores,
        per_video=per_video,
    )
    result["scores"] = str(scores)
    _report_notes(result, scores)
    _write_result(result, out or output_alias, as_json)


PlotOutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="Figure file (required): .png, .jpg, .svg or .pdf, by its extension.",
        callback=_usage(figure_format),
        show_default=False,
    ),
]
PlotOutAliasOpt = Annotated[
    Path | None,
    typer.Option(
        "--output", hidden=True, callback=_usage(figure_format), help="Old spelling of --out."
    ),
]


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
    out: PlotOutOpt = None,
    annotations_format: FormatOpt = AnnotationFormat.auto,
    list_file: ListOpt = None,
    one_based: OneBasedOpt = None,
    end_inclusive: InclusiveOpt = None,
    format_alias: FormatAliasOpt = None,
    output_alias: PlotOutAliasOpt = None,
) -> None:
    """Plot one video's per-frame scores with its anomalous intervals shaded.

    The title gives the video id and, when the video has both normal and anomalous frames, its
    own ROC AUC.
    """
    out = out or output_alias
    if out is None:
        raise typer.BadParameter(
            "missing; give the figure file to write (.png, .jpg, .svg or .pdf)",
            param_hint="'-o' / '--out'",
        )
    fmt = format_alias or annotations_format
    arrays, metas, ann = _load(scores, annotations, fmt, list_file, one_based, end_inclusive)
    name = match_video(video, arrays)
    meta = metas.get(name)
    curve = video_curve(
        name,
        arrays[name],
        ann,
        frame_count=meta.frame_count if meta else None,
        snippet_length=meta.snippet_length if meta else None,
        pad_scores=ann.pad_short_scores,
    )
    draw_curve(curve, out)
    err = Console(stderr=True, soft_wrap=True)
    if curve.note:
        err.print(f"Note: {name}: {curve.note}", markup=False, highlight=False)
    auc = f", ROC AUC {curve.roc_auc:.4f}" if curve.roc_auc is not None else ""
    err.print(f"Wrote {out} ({name}{auc})", markup=False, highlight=False)
