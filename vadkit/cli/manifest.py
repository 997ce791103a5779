"""`vadkit manifest`: a CSV manifest of a folder tree, each video labelled by its folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from vadkit.cli.base import app
from vadkit.errors import VadkitError
from vadkit.io.folders import VIDEO_EXTENSIONS


def _check_labels(value: str) -> str:
    from vadkit.io.folders import parse_labels

    try:
        parse_labels(value)
    except VadkitError as e:
        raise typer.BadParameter(str(e)) from None
    return value


def _counts(entries) -> str:
    n1 = sum(e.label for e in entries)
    return f"{len(entries)} videos: {len(entries) - n1} normal, {n1} abnormal"


RootArg = Annotated[
    Path,
    typer.Argument(
        help="Dataset folder: videos in (sub)folders named after their class.",
        metavar="DIR",
        show_default=False,
    ),
]
LabelsOpt = Annotated[
    str,
    typer.Option(
        "--labels",
        help="FOLDER=LABEL pairs, label 0 normal or 1 abnormal, e.g. "
        "normal=0,suspicious=1,illicit=1 (folder names case-insensitive). A video takes "
        "the label of the nearest folder above it that is named here.",
        callback=_check_labels,
        show_default=False,
    ),
]
OutOpt = Annotated[
    Path,
    typer.Option(
        "--out",
        "-o",
        help="The CSV manifest to write; with --split, a directory that gets train.csv "
        "and test.csv.",
        show_default=False,
    ),
]
SplitOpt = Annotated[
    float | None,
    typer.Option(
        "--split",
        help="Split into train and test: this fraction of each label's videos (e.g. 0.8) "
        "goes to train.csv, the rest to test.csv, drawn with --seed.",
        show_default=False,
    ),
]
SeedOpt = Annotated[int, typer.Option(help="Seed of --split.")]
ExtOpt = Annotated[
    str,
    typer.Option(
        "--ext",
        help="File extensions that are videos (comma-separated); npy lists feature files "
        "(MSIP's VID_patchNN.npy are skipped).",
    ),
]
IgnoreOpt = Annotated[
    bool,
    typer.Option(
        "--ignore-unknown",
        help="Skip videos in no folder named by --labels instead of refusing them.",
    ),
]
VIDEO_EXTS = ",".join(VIDEO_EXTENSIONS)


@app.command("manifest")
def manifest_cmd(
    root: RootArg,
    labels: LabelsOpt,
    out: OutOpt,
    train_fraction: SplitOpt = None,
    seed: SeedOpt = 0,
    ext: ExtOpt = VIDEO_EXTS,
    ignore_unknown: IgnoreOpt = False,
) -> None:
    """Write a CSV manifest (video,label,path,class) of the videos under DIR.

    Each video's label is that of the folder it sits in, as the Mini-drone Video Dataset
    (normal / suspicious / illicit) and UCF-Crime (one folder per class) are organised. Paths
    are written relative to the CSV's directory (how vadkit train reads them). Videos in no
    named folder are an error unless --ignore-unknown; two videos with one name are an error.
    """
    from vadkit.io.folders import parse_extensions, parse_labels, scan, split, write_csv

    err = Console(stderr=True, soft_wrap=True)
    entries, skipped = scan(
        root, parse_labels(labels), extensions=parse_extensions(ext), ignore_unknown=ignore_unknown
    )
    if skipped:
        err.print(f"Note: skipped {len(skipped)} video(s) in no labelled folder", markup=False)
    if train_fraction is None:
        if out.is_dir() or out.suffix.lower() != ".csv":
            raise typer.BadParameter(
                "without --split, give the .csv file to write", param_hint="'-o'"
            )
        write_csv(out, entries)
        err.print(f"Wrote {out} ({_counts(entries)})", markup=False, highlight=False)
        return
    if out.suffix.lower() == ".csv":
        raise typer.BadParameter(
            "with --split, -o is a directory (train.csv and test.csv are written into it)",
            param_hint="'-o'",
        )
    train, test = split(entries, train_fraction, seed)
    for name, part in (("train.csv", train), ("test.csv", test)):
        write_csv(out / name, part)
        err.print(f"Wrote {out / name} ({_counts(part)})", markup=False, highlight=False)
