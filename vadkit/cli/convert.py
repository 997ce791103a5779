"""`vadkit convert`: an official RTFM / MGFN checkpoint → a vadkit run that `vadkit score` uses."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from vadkit.cli.base import app
from vadkit.errors import VadkitError


class OfficialModel(str, Enum):
    rtfm = "rtfm"
    mgfn = "mgfn"


@app.command()
def convert(
    checkpoint: Annotated[
        Path,
        typer.Argument(
            help="The authors' checkpoint (.pkl/.pth): a torch.save'd state dict under their "
            "key names, read with weights_only=True.",
            show_default=False,
        ),
    ],
    model: Annotated[OfficialModel, typer.Option("--model", "-m", help="Whose code saved it.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Run directory to write (RUN/best.safetensors).")
    ],
    backbone: Annotated[
        str | None,
        typer.Option(help="Backbone of the features it was trained on [i3d-r50, RTFM/MGFN's]."),
    ] = None,
    crops: Annotated[
        int | None, typer.Option(min=1, help="Crops per snippet of those features [10].")
    ] = None,
    feature_dim: Annotated[
        int | None,
        typer.Option(min=1, help="Feature dimension [from the weights]; must fit them."),
    ] = None,
    snippet_length: Annotated[
        int | None, typer.Option(min=1, help="Frames per snippet of those features [16].")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace RUN/best.safetensors if it exists.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Convert an official RTFM or MGFN checkpoint into a vadkit run.

    The keys are renamed with vadkit's table (an unknown or missing key is an error that names
    it), the model's sizes come from the tensor shapes, and the run records the feature layout
    the weights expect (RTFM/MGFN's I3D-ResNet50 10-crop 2048-d features unless overridden),
    the source file and its sha256.
    """
    from vadkit.convert import convert_run

    _check_backbone(backbone)
    target = out / "best.safetensors"
    if target.exists() and not force:
        raise VadkitError(f"{target} exists; pass --force to replace it")
    overrides = {
        "backbone": backbone,
        "crops": crops,
        "feature_dim": feature_dim,
        "snippet_length": snippet_length,
    }
    meta = convert_run(checkpoint, model.value, out, overrides)
    _summary(meta, checkpoint, target, json_out)


def _check_backbone(backbone: str | None) -> None:
    from vadkit.features import list_backbones

    if backbone is not None and backbone not in list_backbones():
        raise typer.BadParameter(
            f"{backbone!r} is not one of {', '.join(list_backbones())}", param_hint="--backbone"
        )


def _summary(meta: dict, checkpoint: Path, target: Path, json_out: bool) -> None:
    spec = meta["feature_spec"]
    if json_out:
        keys = ("model", "model_args", "parameters", "feature_spec", "source")
        typer.echo(json.dumps({"checkpoint": str(target), **{k: meta[k] for k in keys}}))
        return
    typer.echo(
        f"{target}: {meta['model']} ({meta['parameters']:,} parameters) for "
        f"{spec['backbone']} features, {spec['crops']} crops x {spec['feature_dim']}-d, "
        f"from {checkpoint} (sha256 {meta['source']['sha256'][:12]})"
    )
