"""`vadkit synth`: write a small synthetic surveillance dataset with known ground truth.

Defaults come from `SynthConfig`; its `validate` is the one check of the settings (a bad
setting is a usage error, exit 2). Imports no torch.
"""

from __future__ import annotations

import json
import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from vadkit.cli.base import app

# one import line to switch to the shared reporter: from vadkit.cli.progress import ...
from vadkit.cli.progress import ProgressReporter
from vadkit.errors import VadkitError
from vadkit.synth import EVENT_CLASSES, PRESETS, SynthConfig, preset_config, synthesize

_DEFAULT = SynthConfig()
Preset = Enum("Preset", {name: name for name in PRESETS}, type=str)


def _parse_size(value: str) -> tuple[int, int]:
    """'WxH' -> (w, h)."""
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: expected WIDTHxHEIGHT, e.g. 160x120", param_hint="--size"
        ) from None
    return w, h


def _parse_range(value: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value.split(","))
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: expected MIN,MAX, e.g. 0.4,0.8", param_hint="--event-length"
        ) from None
    return lo, hi


def _parse_classes(value: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in value.split(",") if c.strip())


_Out = Annotated[
    Path, typer.Option("--out", "-o", help="Output directory (new, empty, or a previous synth).")
]
_Train = Annotated[int, typer.Option(help="Training videos (normal + anomalous).")]
_Test = Annotated[int, typer.Option(help="Test videos (normal + anomalous).")]
_Size = Annotated[
    str | None,
    typer.Option(
        help="Frame size WIDTHxHEIGHT (even numbers, at least 32). Default: the preset's "
        f"({_DEFAULT.width}x{_DEFAULT.height}; wide: 840x480)."
    ),
]
_Preset = Annotated[
    Preset,
    typer.Option(
        help="quickstart: a close camera, 160x120. wide: MSIP's 840x480 frame, a distant "
        "camera whose events cover at most 2 % of the frame. Other options override it."
    ),
]
_FigureScale = Annotated[
    float | None,
    typer.Option(
        help="Size of people and cars relative to the scene (default: the preset's; "
        "quickstart 1, wide 0.5)."
    ),
]
_Frames = Annotated[int, typer.Option(help="Frames per video.")]
_Fps = Annotated[float, typer.Option(help="Frame rate written to the videos.")]
_Seed = Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")]
_Fraction = Annotated[
    float, typer.Option(help="Share of each split's videos that contain an anomalous event.")
]
_Classes = Annotated[
    str,
    typer.Option(help=f"Comma-separated event classes to draw from: {', '.join(EVENT_CLASSES)}."),
]
_EventLength = Annotated[
    str,
    typer.Option(
        help="MIN,MAX duration of an anomalous event as a fraction of its video (drawn uniformly)."
    ),
]
_Json = Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")]
_Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]


@app.command()
def synth(
    out: _Out,
    preset: _Preset = Preset.quickstart,
    videos_train: _Train = _DEFAULT.videos_train,
    videos_test: _Test = _DEFAULT.videos_test,
    size: _Size = None,
    frames: _Frames = _DEFAULT.frames,
    fps: _Fps = _DEFAULT.fps,
    seed: _Seed = _DEFAULT.seed,
    anomaly_fraction: _Fraction = _DEFAULT.anomaly_fraction,
    classes: _Classes = ",".join(_DEFAULT.classes),
    event_length: _EventLength = ",".join(f"{v:g}" for v in _DEFAULT.event_length),
    figure_scale: _FigureScale = None,
    as_json: _Json = False,
    quiet: _Quiet = False,
) -> None:
    """Write synthetic surveillance videos (videos/*.mp4), train.csv / test.csv manifests,
    annotations.csv, a UCF-Crime style Temporal_Anomaly_Annotation.txt, boxes.csv (where
    each event is, per frame: video,frame,x0,y0,x1,y1 in pixels) and synth.json."""
    w, h = _parse_size(size) if size is not None else (None, None)
    config = preset_config(
        preset.value,
        videos_train=videos_train,
        videos_test=videos_test,
        width=w,
        height=h,
        figure_scale=figure_scale,
        frames=frames,
        fps=fps,
        seed=seed,
        anomaly_fraction=anomaly_fraction,
        classes=_parse_classes(classes),
        event_length=_parse_range(event_length),
    )
    w, h = config.width, config.height
    try:
        config.validate()  # the library's check; a bad setting is a usage error (exit 2)
    except VadkitError as e:
        raise typer.BadParameter(str(e)) from None
    t0 = time.perf_counter()
    total = videos_train + videos_test
    with ProgressReporter("synth", total, "videos", quiet=quiet) as progress:

        def on_video(plan) -> None:
            progress.describe(plan.video)
            progress.advance(item=plan.video)

        summary = synthesize(out, config, on_video=on_video)
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    if as_json:
        typer.echo(json.dumps(summary, indent=1))
    else:
        typer.echo(
            f"wrote {summary['videos']} videos ({summary['train_videos']} train, "
            f"{summary['test_videos']} test, {summary['anomalous_videos']} anomalous; "
            f"{w}x{h}, {frames} frames at {fps:g} fps) to {out} in {summary['seconds']:.1f} s"
        )
