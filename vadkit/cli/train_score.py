"""`vadkit train` and `vadkit score`: thin wrappers over `vadkit.train` and `vadkit.score`."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from vadkit.cli.base import app
from vadkit.errors import VadkitError
from vadkit.models import list_models
from vadkit.models.common import LOSS_VARIANTS
from vadkit.score import extract_for_run, load_run, resolve_inputs, score_to_dir
from vadkit.train import Event, TrainConfig, train

DEVICES = ("auto", "cpu", "cuda")


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # a log file gets the summary, not bar redraws
    )


def _choice(value: str | None, choices: tuple[str, ...] | list[str], flag: str) -> None:
    if value is not None and value not in choices:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}", param_hint=flag)


def _model_args(items: list[str]) -> dict:
    args = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--model-arg")
        try:
            args[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            args[key.strip()] = value
    return args


@app.command("train")
def train_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to write.")],
    model: Annotated[
        str | None, typer.Option(help=f"Model: {', '.join(list_models())}.", show_default=False)
    ] = None,
    stage: Annotated[
        int, typer.Option(help="1: CTR + classifier (or MGFN); 2: MSIP's MPSR on a stage-1 run.")
    ] = 1,
    train_manifest: Annotated[
        Path | None,
        typer.Option("--train", help="Training manifest (CSV video,label[,path] or .list)."),
    ] = None,
    features: Annotated[
        Path | None,
        typer.Option(help="Feature directory (FEATS/VIDEO.npy) for entries without a .npy path."),
    ] = None,
    val: Annotated[
        Path | None, typer.Option(help="Validation manifest, evaluated every --eval-every steps.")
    ] = None,
    val_features: Annotated[
        Path | None, typer.Option(help="Feature directory of the validation videos [--features].")
    ] = None,
    annotations: Annotated[
        Path | None, typer.Option(help="Ground truth of the validation videos.")
    ] = None,
    annotations_format: Annotated[
        str, typer.Option(help="auto|ucf|ucf-frames|xd|shanghaitech|csv|legacy.")
    ] = "auto",
    from_run: Annotated[
        Path | None, typer.Option("--from", help="Stage-1 run that stage 2 builds on.")
    ] = None,
    steps: Annotated[
        int | None, typer.Option(help="Training steps [15000, RTFM's; --resume: the run's].")
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(help="Normal (and abnormal) videos per step [model's: RTFM 32, MGFN 16]."),
    ] = None,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    weight_decay: Annotated[
        float, typer.Option(help="Adam weight decay (papers 5e-4; RTFM's code 5e-3).")
    ] = 5e-4,
    seed: Annotated[int, typer.Option(help="Seed of initialisation, sampling and dropout.")] = 0,
    eval_every: Annotated[int, typer.Option(help="Evaluate and save `last` every N steps.")] = 100,
    device: Annotated[str, typer.Option(help="auto|cpu|cuda.")] = "auto",
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in -o from its last checkpoint.")
    ] = False,
    loss: Annotated[
        str,
        typer.Option(help="Sparsity/smoothness form: msip (paper, per video) or rtfm-code."),
    ] = "msip",
    segments: Annotated[int, typer.Option(help="Segments per training video (RTFM: 32).")] = 32,
    float16_cache: Annotated[
        bool, typer.Option("--float16-cache", help="Hold training features as float16.")
    ] = False,
    naming: Annotated[
        str | None, typer.Option(help="Labels of a .list manifest by name: ucf or xd.")
    ] = None,
    abnormal_first: Annotated[
        int | None, typer.Option(help="Labels of a .list manifest: the first N are abnormal.")
    ] = None,
    model_arg: Annotated[
        list[str] | None,
        typer.Option(
            "--model-arg",
            help="Constructor argument KEY=VALUE (VALUE as JSON), e.g. hidden=256; repeatable.",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Train a model on extracted features; write RUN/{best,last}.safetensors, log.jsonl."""
    _choice(device, DEVICES, "--device")
    _choice(loss, LOSS_VARIANTS, "--loss")
    _choice(model, list_models(), "--model")
    if resume:
        saved = out / "config.json"
        if not saved.exists():
            raise VadkitError(f"{out}: nothing to resume (no config.json)")
        cfg = TrainConfig.from_json(json.loads(saved.read_text()))
        cfg.out = str(out)
        cfg.device = device
        if steps is not None:
            cfg.steps = steps
    else:
        if model is None:
            raise typer.BadParameter("choose a model", param_hint="--model")
        if train_manifest is None:
            raise typer.BadParameter("a training manifest is needed", param_hint="--train")
        cfg = TrainConfig(
            model=model,
            train=str(train_manifest),
            out=str(out),
            stage=stage,
            features=None if features is None else str(features),
            val=None if val is None else str(val),
            val_features=None if val_features is None else str(val_features),
            annotations=None if annotations is None else str(annotations),
            annotations_format=annotations_format,
            from_run=None if from_run is None else str(from_run),
            steps=15000 if steps is None else steps,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            seed=seed,
            eval_every=eval_every,
            device=device,
            loss=loss,
            segments=segments,
            float16_cache=float16_cache,
            naming=naming,
            abnormal_first=abnormal_first,
            model_args=_model_args(model_arg or []),
        )
    console = Console(stderr=True)
    with _progress(console) as bar:
        load_task = bar.add_task("loading features", total=None, info="")
        step_task = None

        def on_event(e: Event) -> None:
            nonlocal step_task
            if e.kind == "load":
                bar.update(load_task, completed=e.step, total=e.steps)
                return
            if step_task is None:
                step_task = bar.add_task("training", total=e.steps, completed=e.step, info="")
            auc = "–" if e.roc_auc is None else f"{e.roc_auc:.4f}"
            if e.kind == "step":
                bar.update(step_task, completed=e.step, info=f"loss {e.loss:.4f} val AUC {auc}")

        result = train(cfg, resume=resume, callback=on_event)
    for note in result.notes:
        console.print(f"note: {note}")
    summary = {
        "run": str(result.out),
        "steps": result.step,
        "best_step": result.best_step,
        "best_roc_auc": result.best_roc_auc,
        "last": result.last_record,
        "notes": result.notes,
    }
    if json_out:
        typer.echo(json.dumps(summary))
    else:
        best = (
            "no validation"
            if result.best_roc_auc is None
            else f"best ROC AUC {result.best_roc_auc:.4f} at step {result.best_step}"
        )
        typer.echo(f"{result.out}: {result.step} steps, {best}")


@app.command("score")
def score_command(
    run: Annotated[Path, typer.Argument(help="Run directory (or a checkpoint file).")],
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Feature files (VID.npy), feature directories, manifests, or video files.",
            show_default=False,
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for VID.npy + VID.json.")],
    checkpoint: Annotated[str, typer.Option(help="best or last.")] = "best",
    features: Annotated[
        Path | None,
        typer.Option(
            help="Feature directory for manifest entries without a .npy path; videos given as "
            "input are extracted here (else into a temporary directory)."
        ),
    ] = None,
    weights: Annotated[
        Path | None,
        typer.Option(help="Backbone weights for video inputs when not the default download."),
    ] = None,
    device: Annotated[str, typer.Option(help="auto|cpu|cuda.")] = "auto",
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON summary.")] = False,
) -> None:
    """Per-frame anomaly scores of every input video, one VID.npy (+ VID.json) each."""
    _choice(device, DEVICES, "--device")
    _choice(checkpoint, ("best", "last"), "--checkpoint")
    loaded = load_run(run, checkpoint=checkpoint, device=device)
    sources, videos = resolve_inputs(inputs, features=features)
    console = Console(stderr=True)
    tmp = None
    try:
        if videos:
            target = features
            if target is None:
                tmp = Path(tempfile.mkdtemp(prefix="vadkit-score-"))
                target = tmp
            console.print(f"extracting {len(videos)} video(s) into {target}")
            sources += extract_for_run(
                loaded,
                videos,
                target,
                device=device,
                weights=None if weights is None else str(weights),
            )
        if not sources:
            raise VadkitError("no videos to score")
        with _progress(console) as bar:
            task = bar.add_task("scoring", total=len(sources), info="")
            rows = score_to_dir(
                loaded,
                sources,
                out,
                progress=lambda i, n, v: bar.update(task, completed=i, info=v),
            )
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    if json_out:
        typer.echo(
            json.dumps(
                {
                    "checkpoint": str(loaded.path),
                    "sha256": loaded.sha256,
                    "model": loaded.label,
                    "out": str(out),
                    "videos": rows,
                }
            )
        )
    else:
        typer.echo(f"{out}: scored {len(rows)} video(s) with {loaded.label} ({loaded.path})")
