"""`vadkit report`: one self-contained HTML page to review a batch of scores. The command
parses options and prints; the page is `vadkit.report`'s. torch is never imported."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from vadkit.cli.alert_opts import (
    DEFAULT_COOLDOWN,
    DEFAULT_MIN_DURATION,
    DEFAULT_THRESHOLD,
    CooldownOpt,
    MinDurationOpt,
    ReleaseOpt,
    ThresholdOpt,
    alert_rule,
)
from vadkit.cli.base import app
from vadkit.cli.gt import (
    AnnotationFormat,
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
from vadkit.cli.gt import AnnotationsHelp as _AnnotationsHelp
from vadkit.errors import VadkitError


class RankBy(str, Enum):
    peak = "peak"
    mean = "mean"


ScoresArg = Annotated[
    Path,
    typer.Argument(
        help="Score directory of `vadkit score` (VID.npy + VID.json per video, and "
        "VID_evidence.npy when scored with --evidence).",
        metavar="SCORES",
        show_default=False,
    ),
]


def _check_out(value: Path) -> None:
    if value.is_dir():
        raise VadkitError(f"{value}: is a directory; give the HTML file to write")


OutOpt = Annotated[
    Path,
    typer.Option(
        "--out", "-o", help="HTML file to write.", callback=usage(_check_out), show_default=False
    ),
]
VideosOpt = Annotated[
    Path | None,
    typer.Option(
        "--videos",
        help="Directory of the source videos (searched recursively, matched by file name "
        "without extension): a thumbnail of each alert's peak frame. Without it, no thumbnails.",
        show_default=False,
    ),
]
AnnotationsOpt = Annotated[
    Path | None,
    typer.Option(
        "--annotations",
        "-a",
        help=_AnnotationsHelp + " Optional: the metrics of `vadkit eval` and the ground truth "
        "on each timeline.",
        show_default=False,
    ),
]
RankOpt = Annotated[
    RankBy, typer.Option("--rank", help="Rank each video's alerts by their peak or mean score.")
]
FpsOpt = Annotated[
    float,
    typer.Option(
        "--fps",
        help="Frame rate of videos whose source is not found and whose scores record none.",
        min=0.001,
    ),
]
ThumbsOpt = Annotated[
    int,
    typer.Option(
        "--thumbnails", help="At most this many thumbnails per video (top-ranked alerts).", min=0
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a summary as JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]


@app.command("report")
def report_cmd(
    scores: ScoresArg,
    out: OutOpt,
    videos: VideosOpt = None,
    annotations: AnnotationsOpt = None,
    annotations_format: FormatOpt = AnnotationFormat.auto,
    list_file: ListOpt = None,
    one_based: OneBasedOpt = None,
    end_inclusive: InclusiveOpt = None,
    viper_objects: ViperObjectsOpt = None,
    viper_where: ViperWhereOpt = None,
    threshold: ThresholdOpt = DEFAULT_THRESHOLD,
    min_duration: MinDurationOpt = DEFAULT_MIN_DURATION,
    cooldown: CooldownOpt = DEFAULT_COOLDOWN,
    release: ReleaseOpt = None,
    rank: RankOpt = RankBy.peak,
    fps: FpsOpt = 30.0,
    thumbnails: ThumbsOpt = 8,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    format_alias: FormatAliasOpt = None,
) -> None:
    """Write one self-contained HTML page to review a batch of scored videos.

    At the top, the metrics of `vadkit eval` when ground truth is given (-a; the false-alarm
    rate at --threshold) and a sortable table of every video, highest peak score first. Then
    per video: its score timeline (the curve, the threshold, alerts shaded and numbered, the
    ground truth in green), and its alerts ranked, each with its peak frame as a thumbnail when
    the source video is under --videos (with the evidence heatmap when the scores have
    evidence). CSS, script and images are inline: the file opens offline, anywhere.
    """
    from vadkit.cli.progress import ProgressReporter
    from vadkit.report import gather, write_report

    rule = alert_rule(threshold, min_duration, cooldown, release)
    ann = None
    if annotations is not None:
        gt = GroundTruth(
            annotations,
            format_alias or annotations_format,
            list_file,
            one_based,
            end_inclusive,
            viper_objects,
            viper_where,
        )
        _, _, ann = load(scores, gt)
    with ProgressReporter("report", unit="videos", quiet=quiet) as progress:
        batch = gather(
            scores,
            rule=rule,
            videos_dir=videos,
            annotations=ann,
            rank_by=rank.value,
            default_fps=fps,
            thumbnails=thumbnails,
            progress=lambda name: progress.advance(item=name),
        )
    _print(write_report(batch, out), as_json)


def _print(summary: dict, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(summary, indent=1))
    else:
        typer.echo(
            f"{summary['out']}: {summary['videos']} videos, {summary['alerts']} alerts, "
            f"{summary['bytes'] / 1e6:.2f} MB"
        )
