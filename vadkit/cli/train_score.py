"""`vadkit train` and `vadkit score`: thin wrappers over `vadkit.train` and `vadkit.score`.

Defaults and choices come from the library (`TrainConfig`, the model registry, the loss
variants, the annotation formats); validation happens there too. Nothing here imports torch at
import time: the command bodies import the library.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import fields
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from vadkit.cli.base import app
from vadkit.errors import VadkitError
from vadkit.evidence import DEFAULT_METHOD as EVIDENCE_DEFAULT
from vadkit.evidence import METHODS as EVIDENCE_METHODS
from vadkit.io.annotations import FORMATS
from vadkit.models import LOSS_NAMES, LOSS_VARIANTS, list_models
from vadkit.recipes import list_recipes
from vadkit.train_config import BATCH_ORDERS, PROTOCOLS, SELECT_METRICS, TrainConfig

DEVICE_HELP = "auto|cpu|cuda|cuda:N|mps (auto: this process's GPU if any, else the CPU)."
DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(TrainConfig)}

ModelName = Enum("ModelName", {n: n for n in list_models()}, type=str)
LossVariant = Enum("LossVariant", {n: n for n in LOSS_NAMES}, type=str)
_LOSS_HELP = (
    "Score regularisers; default: the model's own code's form. "
    + "; ".join(f"{name}: {text}" for name, text in LOSS_VARIANTS.items())
    + "; rtfm-code: old name of rtfm."
)
RecipeName = Enum("RecipeName", {n: n for n in list_recipes()}, type=str)
BatchOrder = Enum("BatchOrder", {n: n for n in BATCH_ORDERS}, type=str)
Protocol = Enum("Protocol", {n: n for n in PROTOCOLS}, type=str)
SelectMetric = Enum("SelectMetric", {n: n for n in SELECT_METRICS}, type=str)
AnnotationsFormat = Enum("AnnotationsFormat", {n: n for n in ("auto", *FORMATS)}, type=str)


class Checkpoint(str, Enum):
    best = "best"
    last = "last"


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


def _str(p: Path | None) -> str | None:
    return None if p is None else str(p)


def _value(choice: Enum | None) -> str | None:
    return None if choice is None else choice.value


def _opt(*names: str, help: str, **kw: Any) -> Any:
    return typer.Option(*names, help=help, **kw)


D = DEFAULTS
OutOpt = Annotated[Path, _opt("--out", "-o", help="Run directory to write.")]
ModelOpt = Annotated[ModelName | None, _opt(help="Model to train.", show_default=False)]
StageOpt = Annotated[
    int, _opt(help="1: CTR + classifier (or MGFN); 2: MSIP's MPSR on a stage-1 run.")
]
TrainOpt = Annotated[
    Path | None, _opt("--train", help="Training manifest (CSV video,label[,path] or .list).")
]
FeaturesOpt = Annotated[
    Path | None,
    _opt(help="Feature directory (FEATS/VIDEO.npy) for entries without a .npy path."),
]
ValOpt = Annotated[
    Path | None, _opt(help="Validation manifest, evaluated every --eval-every steps.")
]
ValFeaturesOpt = Annotated[
    Path | None, _opt(help="Feature directory of the validation videos [--features].")
]
AnnotationsOpt = Annotated[
    Path | None, _opt("--annotations", "-a", help="Ground truth of the validation videos.")
]
FormatOpt = Annotated[
    AnnotationsFormat, _opt("--annotations-format", "-f", help="Format of --annotations.")
]
FromOpt = Annotated[Path | None, _opt("--from", help="Stage-1 run that stage 2 builds on.")]
StepsOpt = Annotated[
    int | None, _opt(help=f"Training steps [{D['steps']}, RTFM's; --resume: the run's].")
]
BatchOpt = Annotated[
    int | None,
    _opt(help="Normal (and abnormal) videos per step [the model's: RTFM 32, MGFN 16]."),
]
LrOpt = Annotated[float, _opt(help="Adam learning rate.")]
WeightDecayOpt = Annotated[float, _opt(help="Adam weight decay (papers 5e-4; RTFM's code 5e-3).")]
SeedOpt = Annotated[int, _opt(help="Seed of initialisation, sampling and dropout.")]
EvalEveryOpt = Annotated[int, _opt(help="Evaluate and save `last` every N steps.")]
DeviceOpt = Annotated[str, _opt(help=DEVICE_HELP)]
ResumeOpt = Annotated[bool, _opt("--resume", help="Continue the run in -o from its last save.")]
LossOpt = Annotated[LossVariant | None, _opt(help=_LOSS_HELP, show_default=False)]
SegmentsOpt = Annotated[int, _opt(help="Segments per training video (RTFM: 32).")]
Float16Opt = Annotated[bool, _opt("--float16-cache", help="Hold training features as float16.")]
NamingOpt = Annotated[str | None, _opt(help="Labels of a .list manifest by name: ucf or xd.")]
AbnormalFirstOpt = Annotated[
    int | None, _opt(help="Labels of a .list manifest: the first N are abnormal.")
]
ModelArgOpt = Annotated[
    list[str] | None,
    _opt(
        "--model-arg",
        help="Model config field KEY=VALUE (VALUE as JSON), e.g. hidden=256; repeatable.",
    ),
]
JsonOpt = Annotated[bool, _opt("--json", help="Print the summary as JSON.")]
QuietOpt = Annotated[
    bool, _opt("--quiet", "-q", help="No progress or evaluation lines (notes still print).")
]
TensorBoardOpt = Annotated[
    Path | None,
    _opt(
        "--tensorboard",
        help="Also write TensorBoard scalars (losses, lr, val AUC/AP) here; needs the "
        "tensorboard package.",
        show_default=False,
    ),
]


RecipeOpt = Annotated[
    RecipeName | None,
    _opt(
        help="Named settings of a paper's code (vadkit recipes lists them); flags and --config "
        "override its values.",
        show_default=False,
    ),
]
ConfigOpt = Annotated[
    Path | None,
    _opt(
        "--config",
        help="TOML file of settings (keys: the option names or TrainConfig fields; relative paths "
        "from the file's folder), or a run's config.json; flags override it.",
        show_default=False,
    ),
]
BatchOrderOpt = Annotated[
    BatchOrder,
    _opt(
        help="random: independent draws each step; epoch-shuffle: RTFM's shuffled drop-last "
        "loaders; fixed: MGFN's unshuffled loaders, the same order every epoch."
    ),
]
ProtocolOpt = Annotated[
    Protocol,
    _opt(
        help="official: evaluate on --val at the official cadence (RTFM every 5 steps after "
        "200, MGFN every epoch) and keep the best on it, labelled as selected on that list."
    ),
]
SelectMetricOpt = Annotated[SelectMetric, _opt(help="Validation metric that picks best.")]
# train_command's parameters that are not TrainConfig fields of the same name
_PARAM_FIELDS = {"train_manifest": "train", "model_arg": "model_args"}
_NOT_FIELDS = ("ctx", "resume", "json_out", "recipe", "config", "quiet", "tensorboard")


@app.command("train")
def train_command(
    ctx: typer.Context,
    out: OutOpt,
    model: ModelOpt = None,
    stage: StageOpt = D["stage"],
    train_manifest: TrainOpt = None,
    features: FeaturesOpt = None,
    val: ValOpt = None,
    val_features: ValFeaturesOpt = None,
    annotations: AnnotationsOpt = None,
    annotations_format: FormatOpt = D["annotations_format"],
    from_run: FromOpt = None,
    steps: StepsOpt = None,
    batch_size: BatchOpt = D["batch_size"],
    lr: LrOpt = D["lr"],
    weight_decay: WeightDecayOpt = D["weight_decay"],
    seed: SeedOpt = D["seed"],
    eval_every: EvalEveryOpt = D["eval_every"],
    device: DeviceOpt = D["device"],
    resume: ResumeOpt = False,
    loss: LossOpt = D["loss"],
    segments: SegmentsOpt = D["segments"],
    float16_cache: Float16Opt = D["float16_cache"],
    naming: NamingOpt = None,
    abnormal_first: AbnormalFirstOpt = None,
    model_arg: ModelArgOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    tensorboard: TensorBoardOpt = None,
    recipe: RecipeOpt = None,
    config: ConfigOpt = None,
    batch_order: BatchOrderOpt = D["batch_order"],
    protocol: ProtocolOpt = D["protocol"],
    select_metric: SelectMetricOpt = D["select_metric"],
) -> None:
    """Train a model on extracted features; write RUN/{best,last}.safetensors, log.jsonl."""
    from vadkit.train import resume_config

    if resume:
        if recipe is not None or config is not None:
            raise typer.BadParameter(
                "--resume continues with the run's saved settings", param_hint="--recipe/--config"
            )
        cfg, settings = resume_config(out, steps=steps, device=device), None
    else:
        if model is None and recipe is None and config is None:
            raise typer.BadParameter("choose a model (or a --recipe)", param_hint="--model")
        if train_manifest is None and config is None:
            raise typer.BadParameter("a training manifest is needed", param_hint="--train")
        cfg, origins = TrainConfig.from_sources(
            _explicit(ctx), recipe=_value(recipe), config=_str(config)
        )
        settings = _settings_text(cfg, origins)
    result = _run_training(cfg, resume, quiet=quiet, tensorboard=tensorboard, settings=settings)
    _print_summary(result, json_out)


def _explicit(ctx: typer.Context) -> dict[str, Any]:
    """The options given on the command line (and -o), as TrainConfig fields and values."""
    given = {}
    for name, value in ctx.params.items():
        if name in _NOT_FIELDS:
            continue
        source = getattr(ctx.get_parameter_source(name), "name", None)  # click's enum
        if name != "out" and source not in ("COMMANDLINE", "ENVIRONMENT"):
            continue
        if name == "model_arg":
            value = _model_args(value or [])
        elif isinstance(value, Enum):
            value = value.value
        elif isinstance(value, Path):
            value = str(value)
        given[_PARAM_FIELDS.get(name, name)] = value
    return given


def _settings_text(cfg: TrainConfig, origins: dict[str, str]) -> str:
    """The effective training values and where each came from, printed once at the start."""
    recipe = f" (recipe {cfg.recipe})" if cfg.recipe else ""
    lines = [f"settings{recipe}:"]
    lines += [f"  {key} = {value}  [{origin}]" for key, value, origin in cfg.settings(origins)]
    return "\n".join(lines)


def _print_summary(result: Any, json_out: bool) -> None:
    if json_out:
        typer.echo(
            json.dumps(
                {
                    "run": str(result.out),
                    "steps": result.step,
                    "best_step": result.best_step,
                    "best_roc_auc": result.best_roc_auc,
                    "last": result.last_record,
                    "notes": result.notes,
                    "selection": result.selection,
                }
            )
        )
        return
    if result.best_roc_auc is None:
        best = "no validation"
    else:
        best = f"best ROC AUC {result.best_roc_auc:.4f} at step {result.best_step}"
        metric = result.select_metric
        if metric != "roc_auc" and result.best_record is not None:
            best += f" ({metric} {result.best_record[metric]:.4f})"
        best += f", selected on the validation list ({result.selection})"
    typer.echo(f"{result.out}: {result.step} steps, {best}")


def _run_training(
    cfg: TrainConfig,
    resume: bool,
    *,
    quiet: bool,
    tensorboard: Path | None,
    settings: str | None = None,
):
    """`vadkit.train.train` with its progress on stderr (`vadkit.cli.train_progress`) and,
    with `--tensorboard`, its scalars written there too."""
    from vadkit.cli.train_progress import TrainDisplay
    from vadkit.train import train

    writer = None
    # before any work, so a missing package fails at once; under torchrun rank 0 writes
    if tensorboard is not None and os.environ.get("RANK", "0") == "0":
        from vadkit.cli.tensorboard import TensorBoardCallback, open_writer

        writer = TensorBoardCallback(open_writer(tensorboard))
    display = TrainDisplay(quiet=quiet, settings=settings)

    def on_event(event) -> None:
        display(event)
        if writer is not None:
            writer(event)

    failed = True
    try:
        result = train(cfg, resume=resume, callback=on_event)
        failed = False
        return result
    finally:
        display.close(failed=failed)
        if writer is not None:
            writer.close()


ScoreFeaturesOpt = Annotated[
    Path | None,
    typer.Option(
        help="Feature directory for manifest entries without a .npy path; videos given as "
        "input are extracted here [OUT/features]."
    ),
]
DiscardOpt = Annotated[
    bool,
    typer.Option(
        "--discard-features",
        help="Extract video inputs into a temporary directory, deleted afterwards.",
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]
EvidenceOpt = Annotated[
    bool,
    typer.Option(
        "--evidence",
        help="Also write VID_evidence.npy (snippets x patches): how much each MSIP patch raises "
        "the snippet's score (runs whose model reads patches only).",
    ),
]
EvidenceMethod = Enum("EvidenceMethod", {n: n for n in EVIDENCE_METHODS}, type=str)
EvidenceMethodOpt = Annotated[
    EvidenceMethod,
    typer.Option(
        help="How --evidence measures a patch: "
        + "; ".join(f"{k}: {v}" for k, v in EVIDENCE_METHODS.items())
        + "."
    ),
]


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
    checkpoint: Annotated[
        Checkpoint, typer.Option(help="Which checkpoint of a run.")
    ] = Checkpoint.best,
    features: ScoreFeaturesOpt = None,
    discard_features: DiscardOpt = False,
    weights: Annotated[
        Path | None,
        typer.Option(help="Backbone weights for video inputs when not the default download."),
    ] = None,
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = "auto",
    quiet: QuietOpt = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON summary.")] = False,
    evidence: EvidenceOpt = False,
    evidence_method: EvidenceMethodOpt = EvidenceMethod(EVIDENCE_DEFAULT),
) -> None:
    """Per-frame anomaly scores of every input video, one VID.npy (+ VID.json) each.

    A video that cannot be scored (unreadable or unfit features, NaN) is named at the end and
    the others are scored; then the exit status is 1. Video inputs are extracted first, with
    the run's extraction settings, into --features (default OUT/features, kept for the next
    run) unless --discard-features. With --evidence (MSIP stage-2 runs), VID_evidence.npy
    beside each score file says which patches raised each snippet's score; VID.json's
    extra.evidence records the method and the patch geometry."""
    from vadkit.score import check_evidence_run, collect_inputs, load_run, prepare_score_dir

    if features is not None and discard_features:
        raise typer.BadParameter("give --features or --discard-features, not both")
    loaded = load_run(run, checkpoint=checkpoint.value, device=device)
    method = evidence_method.value if evidence else None
    if evidence:
        check_evidence_run(loaded)
    found = collect_inputs(inputs, features=features)
    prepare_score_dir(out, loaded, found)
    for note in found.notes:
        typer.echo(f"note: {note}", err=True)
    failed: list[dict] = []
    sources = found.sources
    if found.videos:
        with _extraction_dir(features, out, discard_features) as target:
            sources = sources + _extract(
                loaded, found.videos, target, device, weights, quiet, failed
            )
            rows = _score(loaded, sources, out, quiet, method)
    else:
        rows = _score(loaded, sources, out, quiet, method)
    rows += failed
    _report_score(loaded, out, rows, json_out)


@contextlib.contextmanager
def _extraction_dir(features: Path | None, out: Path, discard: bool):
    """Where video inputs are extracted: --features, a temporary directory (discarded) or
    OUT/features. The default stays inside -o, beside the scores it made, so that everything
    one command wrote is in one place, a second run reuses it, and `eval OUT` (which reads
    only OUT's top level) does not see it."""
    if features is not None:
        yield features
    elif discard:
        tmp = Path(tempfile.mkdtemp(prefix="vadkit-score-"))
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    else:
        yield out / "features"


def _extract(loaded, videos: list[Path], target: Path, device, weights, quiet, failed):
    from vadkit.cli.progress import ExtractionDisplay, ProgressReporter
    from vadkit.models.common import PATCHES
    from vadkit.score import extract_for_run

    if not quiet:
        what = (
            "with MSIP's patches, which this run reads"
            if PATCHES in loaded.model.inputs
            else "clip features only: this run reads no patches"
        )
        typer.echo(
            f"note: {len(videos)} video input(s) have no features yet: extracting them first "
            f"into {target} with the run's extraction settings ({what}); this takes a while "
            "(minutes per video on a CPU). Next time pass --features with that directory.",
            err=True,
        )
    with ProgressReporter(
        "extract", total=len(videos), unit="videos", work_unit="snippets", quiet=quiet
    ) as rep:
        return extract_for_run(
            loaded, videos, target, device=device, weights=_str(weights),
            progress=ExtractionDisplay(rep), failed=failed,
        )  # fmt: skip


def _score(loaded, sources: list, out: Path, quiet: bool, evidence: str | None) -> list[dict]:
    from vadkit.cli.progress import ProgressReporter
    from vadkit.score import score_to_dir

    if not sources:
        return []
    with ProgressReporter("score", total=len(sources), unit="videos", quiet=quiet) as rep:
        done = [0]

        def step(i: int, n: int, video: str) -> None:
            rep.advance(i - done[0], item=video)
            done[0] = i

        rows = score_to_dir(loaded, sources, out, progress=step, keep_going=True, evidence=evidence)
    return rows


def _report_score(loaded, out: Path, rows: list[dict], json_out: bool) -> None:
    failed = [r for r in rows if r["status"] == "failed"]
    scored = len(rows) - len(failed)
    if json_out:
        typer.echo(
            json.dumps(
                {
                    "checkpoint": str(loaded.path),
                    "sha256": loaded.sha256,
                    "model": loaded.label,
                    "out": str(out),
                    "scored": scored,
                    "failed": len(failed),
                    "videos": rows,
                }
            )
        )
    else:
        typer.echo(f"{out}: scored {scored} video(s) with {loaded.label} ({loaded.path})")
    for r in failed:
        typer.echo(f"failed {r['video']} ({r['path']}): {r['error']}", err=True)
    if failed:
        raise VadkitError(
            f"{len(failed)} of {len(rows)} video(s) could not be scored (named above)"
        )
    if not rows:
        raise VadkitError("no videos to score")
