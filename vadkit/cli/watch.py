"""`vadkit watch SOURCE --run RUN`: score a live stream snippet by snippet (`vadkit.watch`).

stdout carries JSON lines only (a `start` line, one `snippet` line per 16-frame snippet, alert
and stream events, a final `summary`); messages go to stderr. Ctrl-C (or SIGTERM) stops
cleanly: an open alert is closed, its clip written, hooks waited for, the summary printed, then
exit status 130. Imports no torch until the command runs.
"""

from __future__ import annotations

import json
import os
import signal
import sys
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
from vadkit.cli.base import EXIT_INTERRUPTED, app, fail
from vadkit.devices import DEVICE_HELP


class Checkpoint(str, Enum):
    best = "best"
    last = "last"


_Source = Annotated[
    str,
    typer.Argument(
        help="A video file, an http(s):// or rtsp:// URL, or a camera index (0, 1, ...).",
        show_default=False,
    ),
]
_Run = Annotated[Path, typer.Option("--run", "-r", help="Run directory (or a checkpoint file).")]
_Window = Annotated[
    int | None,
    typer.Option(
        "--window",
        "-w",
        min=1,
        help="Snippets the model sees: the newest and the W-1 before it. Default: the run's "
        "snippets per training sequence (--segments).",
        show_default=False,
    ),
]
_Lookahead = Annotated[
    int,
    typer.Option(
        min=0,
        help="Score the snippet this many places before the newest: later, closer to offline "
        "`score`, but an alert may then start up to that many snippets early (0: the newest).",
    ),
]
_Warmup = Annotated[
    int,
    typer.Option(
        min=0, help="First snippets scored but kept out of alerts (their windows are short)."
    ),
]
_OnAlert = Annotated[
    str | None,
    typer.Option(
        help="Shell command run on every alert event (alert_start, alert_end, alert_clip) "
        "with the event's JSON line on stdin and its name in $VADKIT_EVENT.",
        show_default=False,
    ),
]
_SaveClips = Annotated[
    Path | None,
    typer.Option(
        help="Write each alert's frames as an mp4 into this directory.", show_default=False
    ),
]
_Context = Annotated[
    float, typer.Option(min=0, help="Seconds of video before and after an alert in its clip.")
]
_Realtime = Annotated[
    bool, typer.Option(help="Pace a file at its frame rate, so it behaves like a camera.")
]
_Fps = Annotated[
    float | None,
    typer.Option(
        min=0.1,
        help="Frame rate of the source when it reports none (or a wrong one).",
        show_default=False,
    ),
]
_MaxLag = Annotated[
    float,
    typer.Option(
        min=0.0,
        help="Seconds of video that may wait for the model; beyond that a live source drops "
        "its oldest waiting snippet (reported).",
    ),
]
_Timeout = Annotated[
    float, typer.Option(min=0.1, help="Seconds without a frame before a stream is stalled.")
]
_Reconnect = Annotated[
    bool, typer.Option(help="Reopen a URL or camera that ends, stalls or fails to open.")
]
_ReconnectLimit = Annotated[
    int, typer.Option(min=1, help="Failed reconnection attempts in a row before giving up.")
]
_ReconnectDelay = Annotated[
    float, typer.Option(min=0.0, help="Seconds before the first reconnection attempt (doubles).")
]
_MaxSnippets = Annotated[
    int | None,
    typer.Option(min=1, help="Stop after this many snippets.", show_default=False),
]
_Weights = Annotated[
    Path | None,
    typer.Option(help="Backbone weights when not the default download.", show_default=False),
]
_Threads = Annotated[
    int | None, typer.Option(min=1, help="Torch threads (default: torch's).", show_default=False)
]
_Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No messages on stderr but errors.")]


def _emit(line: dict) -> None:
    try:
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # `| head`: the reader left; stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(0) from None


def _summary_text(s: dict) -> str:
    lat = s.get("latency_p50")
    parts = [
        f"{s['ended']}: {s['snippets']} snippet(s) scored, {s['dropped']} dropped",
        f"{s['alerts']} alert(s)",
    ]
    if lat is not None:
        parts.append(f"latency p50 {lat:.3f} s, p95 {s['latency_p95']:.3f} s")
    if s.get("fps"):
        parts.append(f"{s['fps']:.1f} fps sustained (capacity {s['capacity_fps']:.1f} fps)")
    return "; ".join(parts)


def _sigterm(*_: object) -> None:
    raise KeyboardInterrupt


@app.command("watch")
def watch_command(
    source: _Source,
    run: _Run,
    checkpoint: Annotated[Checkpoint, typer.Option(help="Which checkpoint of a run.")] = (
        Checkpoint.best
    ),
    window: _Window = None,
    lookahead: _Lookahead = 0,
    warmup: _Warmup = 2,
    threshold: ThresholdOpt = DEFAULT_THRESHOLD,
    min_duration: MinDurationOpt = DEFAULT_MIN_DURATION,
    cooldown: CooldownOpt = DEFAULT_COOLDOWN,
    release: ReleaseOpt = None,
    on_alert: _OnAlert = None,
    save_clips: _SaveClips = None,
    clip_context: _Context = 2.0,
    realtime: _Realtime = False,
    fps: _Fps = None,
    max_lag: _MaxLag = 4.0,
    timeout: _Timeout = 10.0,
    reconnect: _Reconnect = False,
    reconnect_limit: _ReconnectLimit = 10,
    reconnect_delay: _ReconnectDelay = 1.0,
    max_snippets: _MaxSnippets = None,
    weights: _Weights = None,
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = "auto",
    threads: _Threads = None,
    quiet: _Quiet = False,
) -> None:
    """Score a live video stream: one JSON line per 16-frame snippet on stdout, alerts with
    hysteresis, an optional hook and clip per alert.

    Each snippet is extracted with the run's recorded extraction settings and scored by the
    model on the last --window snippets; the newest snippet's score is emitted (with
    --lookahead L, the score of the snippet L places before it). A source the
    model cannot keep up with drops snippets beyond --max-lag (reported); a stream that ends or
    stalls is reported (and reopened with --reconnect). Ctrl-C ends with a summary (exit 130)."""
    from vadkit.watch import ReaderOptions, WatchOptions

    rule = alert_rule(threshold, min_duration, cooldown, release)
    reader = ReaderOptions(fps=fps, realtime=realtime, max_lag=max_lag, timeout=timeout,
                           reconnect=reconnect, reconnect_limit=reconnect_limit,
                           reconnect_delay=reconnect_delay)  # fmt: skip
    options = WatchOptions(rule=rule, window=window, lookahead=lookahead, warmup=warmup,
                           reader=reader,
                           max_snippets=max_snippets,
                           on_alert=on_alert, save_clips=save_clips,
                           clip_context=clip_context)  # fmt: skip
    _watch(source, run, options, checkpoint=checkpoint.value, weights=weights, device=device,
           threads=threads, quiet=quiet)  # fmt: skip


def _watch(source: str, run: Path, options, *, checkpoint: str, weights: Path | None,
           device: str, threads: int | None, quiet: bool) -> None:  # fmt: skip
    """Load the run and its extractor, watch until the end or Ctrl-C, print the summary."""
    from vadkit.score import load_run
    from vadkit.watch import Watcher, load_extractor, parse_source

    spec = parse_source(source)

    def log(message: str) -> None:
        if not quiet:
            typer.echo(message, err=True)

    loaded = load_run(run, checkpoint=checkpoint, device=device)
    if threads:
        import torch

        torch.set_num_threads(threads)
    extractor = load_extractor(loaded, device=device, weights=weights and str(weights))
    watcher = Watcher(loaded, extractor, spec, options)
    previous = signal.signal(signal.SIGTERM, _sigterm)
    interrupted = False
    try:
        watcher.run_loop(_emit, log)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        summary = watcher.finish("interrupted" if interrupted else None)
        signal.signal(signal.SIGTERM, previous)
    if summary["failed"]:
        raise fail(summary["ended"])
    log(_summary_text(summary))
    if interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
