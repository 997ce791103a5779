"""`vadkit render`: a video with its score timeline, alert banners and evidence heatmap drawn
on it. The command parses options and prints; drawing is `vadkit.render`'s. torch is never
imported."""

from __future__ import annotations

import json
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
from vadkit.cli.gt import usage

VideoArg = Annotated[
    Path, typer.Argument(help="The source video.", metavar="VIDEO", show_default=False)
]
ScoresOpt = Annotated[
    Path,
    typer.Option(
        "--scores",
        "-s",
        help="Score directory of `vadkit score` holding this video's VID.npy (matched by the "
        "video's file name without extension), and VID_evidence.npy when scored with --evidence.",
        show_default=False,
    ),
]


def _check_out(value: Path) -> None:
    from vadkit.render import check_output

    check_output(value)


OutOpt = Annotated[
    Path,
    typer.Option(
        "--out",
        "-o",
        help="File to write: a video, .mp4, .m4v or .mov (mp4v) or .avi (MJPG); or one frame "
        "as an image, .png or .jpg (see --frame).",
        callback=usage(_check_out),
        show_default=False,
    ),
]
WidthOpt = Annotated[
    int | None,
    typer.Option(
        "--width",
        help="Width of the output in pixels, the aspect kept (default: the video's, at least 480).",
        min=16,
        show_default=False,
    ),
]
FrameOpt = Annotated[
    int | None,
    typer.Option(
        "--frame",
        help="With an image -o: the frame to draw (0-based; default: the top alert's peak "
        "frame, else the highest-scoring frame).",
        min=0,
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a summary as JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]


@app.command("render")
def render_cmd(
    video: VideoArg,
    scores: ScoresOpt,
    out: OutOpt,
    threshold: ThresholdOpt = DEFAULT_THRESHOLD,
    min_duration: MinDurationOpt = DEFAULT_MIN_DURATION,
    cooldown: CooldownOpt = DEFAULT_COOLDOWN,
    release: ReleaseOpt = None,
    width: WidthOpt = None,
    frame: FrameOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Draw a video's scores on it: a score timeline under each frame, alert banners and,
    when the scores have evidence, the heatmap of where in the frame it raises the score.

    Below the frame: the whole score curve, the threshold (dashed), the alerts shaded and a
    cursor at the current frame; on it, a red banner while an alert is active and the time and
    score at the bottom left. The video and the scores must have the same number of frames.
    The output is written to a temporary file beside it and renamed when complete. An image
    output (.png, .jpg) holds one such frame (--frame).
    """
    from vadkit.cli.progress import ProgressReporter
    from vadkit.render import STILLS, render_still, render_video
    from vadkit.video import probe

    rule = alert_rule(threshold, min_duration, cooldown, release)
    if out.suffix.lower() in STILLS:
        summary = render_still(video, scores, out, rule, frame=frame, width=width)
    elif frame is not None:
        raise typer.BadParameter("only with an image output (.png, .jpg)", param_hint="--frame")
    else:
        total = probe(video).frame_count_hint or None
        with ProgressReporter("render", total=total, unit="frames", quiet=quiet) as progress:
            summary = render_video(
                video, scores, out, rule, width=width, progress=lambda _: progress.advance()
            )
    _print(summary, as_json)


def _print(summary: dict, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(summary, indent=1))
        return
    still = "frame" in summary
    what = f"frame {summary['frame']}" if still else f"{summary['frames']} frames"
    rate = "" if still else f" ({summary['render_fps']} frames/s)"
    typer.echo(
        f"{summary['out']}: {what}, {len(summary['alerts'])} alert(s), evidence "
        f"{'overlaid' if summary['evidence'] else 'none'}{rate}"
    )
