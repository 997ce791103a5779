"""`vadkit synth`: write a small synthetic surveillance dataset with known ground truth."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from vadkit.cli.base import app
from vadkit.synth import EVENT_CLASSES, SynthConfig, synthesize

_DEFAULT = SynthConfig()


def _parse_size(value: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"{value!r}: expected WIDTHxHEIGHT, e.g. 160x120") from None
    if w < 32 or h < 32 or w % 2 or h % 2:
        raise typer.BadParameter(f"{value!r}: width and height must be even and at least 32")
    return w, h


def _parse_range(value: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value.split(","))
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: expected MIN,MAX, e.g. 0.4,0.8", param_hint="--event-length"
        ) from None
    if not 0 < lo <= hi <= 1:
        raise typer.BadParameter(
            f"{value!r}: expected 0 < MIN <= MAX <= 1", param_hint="--event-length"
        )
    return lo, hi


def _parse_classes(value: str) -> tuple[str, ...]:
    names = tuple(c.strip() for c in value.split(",") if c.strip())
    bad = [c for c in names if c not in EVENT_CLASSES]
    if bad or not names:
        raise typer.BadParameter(
            f"{value!r}: unknown event class {', '.join(bad) or '(none given)'}; "
            f"choose from {', '.join(EVENT_CLASSES)}"
        )
    return names


@app.command()
def synth(
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Output directory (new, empty, or a previous synth)."),
    ],
    videos_train: Annotated[
        int, typer.Option(min=2, help="Training videos (normal + anomalous).")
    ] = _DEFAULT.videos_train,
    videos_test: Annotated[
        int, typer.Option(min=2, help="Test videos (normal + anomalous).")
    ] = _DEFAULT.videos_test,
    size: Annotated[
        str, typer.Option(help="Frame size WIDTHxHEIGHT (even numbers).")
    ] = f"{_DEFAULT.width}x{_DEFAULT.height}",
    frames: Annotated[int, typer.Option(min=16, help="Frames per video.")] = _DEFAULT.frames,
    fps: Annotated[float, typer.Option(min=1.0, help="Frame rate written to the videos.")] = (
        _DEFAULT.fps
    ),
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = (
        _DEFAULT.seed
    ),
    anomaly_fraction: Annotated[
        float, typer.Option(help="Share of each split's videos that contain an anomalous event.")
    ] = _DEFAULT.anomaly_fraction,
    classes: Annotated[
        str, typer.Option(help=f"Event classes to draw from ({', '.join(EVENT_CLASSES)}).")
    ] = ",".join(_DEFAULT.classes),
    event_length: Annotated[
        str,
        typer.Option(
            help="MIN,MAX duration of an anomalous event as a fraction of its video "
            "(drawn uniformly)."
        ),
    ] = ",".join(f"{v:g}" for v in _DEFAULT.event_length),
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON summary on stdout.")
    ] = False,
) -> None:
    """Write synthetic surveillance videos (videos/*.mp4), train.csv / test.csv manifests,
    annotations.csv, a UCF-Crime style Temporal_Anomaly_Annotation.txt and synth.json."""
    w, h = _parse_size(size)
    if not 0 < anomaly_fraction < 1:
        raise typer.BadParameter(
            f"{anomaly_fraction}: expected a value strictly between 0 and 1",
            param_hint="--anomaly-fraction",
        )
    config = SynthConfig(
        videos_train=videos_train,
        videos_test=videos_test,
        width=w,
        height=h,
        frames=frames,
        fps=fps,
        seed=seed,
        anomaly_fraction=anomaly_fraction,
        classes=_parse_classes(classes),
        event_length=_parse_range(event_length),
    )
    console = Console(stderr=True)
    t0 = time.perf_counter()
    with Progress(
        TextColumn("synth"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("", total=videos_train + videos_test)
        summary = synthesize(
            out,
            config,
            on_video=lambda plan: progress.update(task, advance=1, description=plan.video),
        )
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    if as_json:
        typer.echo(json.dumps(summary, indent=1))
    else:
        typer.echo(
            f"wrote {summary['videos']} videos ({summary['train_videos']} train, "
            f"{summary['test_videos']} test, {summary['anomalous_videos']} anomalous; "
            f"{w}x{h}, {frames} frames at {fps:g} fps) to {out} in {summary['seconds']:.1f} s"
        )
