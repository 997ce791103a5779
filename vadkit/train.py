"""The training loop (SPEC §4). It knows nothing about the model it trains: a model from the
registry exposes `inputs`, `loss(normal, abnormal) -> (total, parts)` and its trainable
parameters; the loop samples bags, steps the optimizer, evaluates and checkpoints.

A run directory holds:

- `config.json`       the training configuration;
- `last.safetensors`  weights + metadata after the latest save, `last.state.pt` the optimizer and
                      RNG states that make `--resume` end with the same weights as an
                      uninterrupted run (loaded with `weights_only=True`);
- `best.safetensors`  the checkpoint with the best validation ROC AUC (`last` without validation);
- `log.jsonl`         one JSON line per evaluation: step, mean loss parts since the previous line,
                      roc_auc, average_precision, seconds.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vadkit.data import Source, TrainingSet, sources_from_manifest, spec_mismatch
from vadkit.devices import resolve_device
from vadkit.distributed import Distributed, sync_batch_norm
from vadkit.errors import VadkitError
from vadkit.io.annotations import read_annotations
from vadkit.io.atomic import atomic_path, save_json
from vadkit.io.manifest import read_manifest
from vadkit.metrics import evaluate
from vadkit.models import create_model, model_class
from vadkit.score import (
    frame_scores,
    read_checkpoint,
    save_checkpoint,
)

VALIDATION_NOTE = (
    "vadkit reads no test data unless it is passed as the validation list; the best checkpoint "
    "was selected on the validation list named here, chosen by the user"
)


@dataclass
class TrainConfig:
    model: str
    train: str
    out: str
    stage: int = 1
    features: str | None = None
    val: str | None = None
    val_features: str | None = None  # defaults to `features`
    annotations: str | None = None
    annotations_format: str = "auto"
    from_run: str | None = None
    steps: int = 15000  # RTFM trains 15,000 iterations
    batch_size: int | None = None  # per class; None: the model's default (RTFM 32, MGFN 16)
    lr: float = 1e-3  # RTFM, MGFN
    weight_decay: float = 5e-4  # RTFM/MGFN papers (RTFM's code uses 5e-3)
    seed: int = 0
    eval_every: int = 100
    device: str = "auto"
    loss: str = "msip"
    segments: int = 32  # RTFM's 32 segments per training video
    float16_cache: bool = False
    naming: str | None = None  # labels of a .list manifest (ucf | xd)
    abnormal_first: int | None = None
    model_args: dict[str, Any] = field(default_factory=dict)  # extra constructor arguments

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in known})


@dataclass
class Event:
    """What the loop reports to its caller (the CLI draws a progress bar from these)."""

    kind: str  # "load" | "step" | "eval" | "save"
    step: int = 0
    steps: int = 0
    loss: float | None = None
    roc_auc: float | None = None
    record: dict[str, Any] | None = None


@dataclass
class TrainResult:
    out: Path
    step: int
    best_step: int | None
    best_roc_auc: float | None
    last_record: dict[str, Any] | None
    notes: list[str]


Callback = Callable[[Event], None]


def _abs(p: str | None) -> str | None:
    return None if p is None else str(Path(p).resolve())


def _read_sources(cfg: TrainConfig, manifest: str, features: str | None) -> list[Source]:
    entries = read_manifest(manifest, abnormal_first=cfg.abnormal_first, naming=cfg.naming)
    return sources_from_manifest(entries, features)


def _stage1(cfg: TrainConfig) -> tuple[dict[str, torch.Tensor], dict[str, Any], Path]:
    if cfg.from_run is None:
        raise VadkitError(
            f"stage 2 of {cfg.model} trains on top of a stage-1 run: pass --from RUN_STAGE1 "
            f"(train it first with --stage 1)"
        )
    p = Path(cfg.from_run)
    path = p if p.is_file() else p / "best.safetensors"
    state, meta = read_checkpoint(path)
    if meta.get("stage", 1) != 1:
        raise VadkitError(
            f"{path}: --from needs a stage-1 run, this is {meta.get('model')} stage "
            f"{meta.get('stage')}"
        )
    return state, meta, path


def build_for_data(
    cfg: TrainConfig, data: TrainingSet, stage1_meta: dict | None
) -> torch.nn.Module:
    """Construct the model with its sizes taken from the data (never literals)."""
    cls = model_class(cfg.model)
    args: dict[str, Any] = {
        "feature_dim": data.spec["feature_dim"],
        "segments": cfg.segments,
        "loss": cfg.loss,
    }
    if len(cls.stages) > 1:
        args["stage"] = cfg.stage
    if "patches" in cls.input_names(cfg.stage) and data.spec.get("patch_grids"):
        args["patch_grids"] = [list(g) for g in data.spec["patch_grids"].values()]
    if stage1_meta is not None:
        for key in cls.stage1_args:
            if key in stage1_meta["model_args"]:
                args[key] = stage1_meta["model_args"][key]
    args.update(cfg.model_args)
    return create_model(cfg.model, **args)


def _validate_config(cfg: TrainConfig) -> None:
    cls = model_class(cfg.model)
    if cfg.stage not in cls.stages:
        raise VadkitError(
            f"model {cfg.model} trains in stage(s) {', '.join(map(str, cls.stages))}, "
            f"not --stage {cfg.stage}"
        )
    if cfg.stage == 1 and cfg.from_run is not None:
        raise VadkitError("--from is for stage 2 (it names the stage-1 run to build on)")
    for name in ("steps", "eval_every", "segments"):
        if getattr(cfg, name) < 1:
            raise VadkitError(f"--{name.replace('_', '-')} must be at least 1")
    if cfg.batch_size is not None and cfg.batch_size < 1:
        raise VadkitError("--batch-size must be at least 1")
    if (cfg.val is None) != (cfg.annotations is None):
        raise VadkitError("--val and --annotations go together: validation needs ground truth")


@contextlib.contextmanager
def _deferred_interrupt() -> Iterator[None]:
    """Hold Ctrl-C until the current step is complete, so a saved `last` is always a whole step."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if got:
        raise KeyboardInterrupt


class _State:
    """Everything besides the weights that `--resume` needs."""

    def __init__(self, optimizer: torch.optim.Optimizer, generator: torch.Generator) -> None:
        self.optimizer = optimizer
        self.generator = generator
        self.best_step: int | None = None
        self.best_roc_auc: float | None = None

    def save(self, path: Path, step: int) -> None:
        obj = {
            "step": step,
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "sampler_rng": self.generator.get_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "best_step": -1 if self.best_step is None else self.best_step,
            "best_roc_auc": math.nan if self.best_roc_auc is None else self.best_roc_auc,
        }
        with atomic_path(path) as tmp:
            torch.save(obj, tmp)

    def load(self, path: Path) -> int:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError) as e:
            raise VadkitError(f"{path}: unreadable training state ({e})") from None
        self.optimizer.load_state_dict(obj["optimizer"])
        torch.set_rng_state(obj["torch_rng"])
        self.generator.set_state(obj["sampler_rng"])
        if obj["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(obj["cuda_rng"])
        self.best_step = None if obj["best_step"] < 0 else int(obj["best_step"])
        self.best_roc_auc = None if math.isnan(obj["best_roc_auc"]) else obj["best_roc_auc"]
        return int(obj["step"])


class _LossModule(nn.Module):
    """DDP wraps `forward`; the loop calls `loss`: this puts one behind the other."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, normal, abnormal):
        return self.model.loss(normal, abnormal)


def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    callback: Callback | None = None,
) -> TrainResult:
    """Train `cfg.model` and write the run directory `cfg.out`. See the module docstring."""
    emit = callback or (lambda event: None)
    out = Path(cfg.out)
    if resume:
        saved = out / "config.json"
        if not saved.exists() or not (out / "last.safetensors").exists():
            raise VadkitError(f"{out}: nothing to resume (no config.json / last.safetensors)")
        old = TrainConfig.from_json(json.loads(saved.read_text()))
        # a resumed run keeps its data and model; only the length and where it runs may change
        cfg = TrainConfig.from_json(
            {**asdict(old), "steps": cfg.steps, "device": cfg.device, "out": cfg.out}
        )
    elif (out / "last.safetensors").exists():
        raise VadkitError(
            f"{out} already holds a run; continue it with --resume or choose another -o"
        )
    _validate_config(cfg)
    device = resolve_device(cfg.device)
    ddp = Distributed.from_env(device)
    try:
        return _train(cfg, resume, emit, out, device, ddp)
    finally:
        ddp.close()


def _train(
    cfg: TrainConfig,
    resume: bool,
    emit: Callback,
    out: Path,
    device: torch.device,
    ddp: Distributed,
) -> TrainResult:
    if ddp.enabled and device.type == "cuda":
        device = torch.device("cuda", ddp.local_rank)
        torch.cuda.set_device(device)
    if not ddp.main:
        emit = lambda event: None  # noqa: E731  (rank 0 reports)
    notes: list[str] = []

    stage1_state = stage1_meta = None
    if cfg.stage == 2:
        stage1_state, stage1_meta, stage1_path = _stage1(cfg)
    cls = model_class(cfg.model)
    needs_patches = "patches" in cls.input_names(cfg.stage)
    min_snippets = max(1, cfg.segments // 10)  # the top-k selection's k

    def loading(i: int, n: int) -> None:
        emit(Event("load", step=i, steps=n))

    train_sources = _read_sources(cfg, cfg.train, cfg.features)
    data = TrainingSet.load(
        train_sources,
        segments=cfg.segments,
        min_snippets=min_snippets,
        patches=needs_patches,
        float16=cfg.float16_cache,
        name=f"training manifest {cfg.train}",
        progress=loading,
    )
    val_sources: list[Source] = []
    annotations = None
    if cfg.val is not None:
        val_sources = _read_sources(cfg, cfg.val, cfg.val_features or cfg.features)
        annotations = read_annotations(cfg.annotations, format=cfg.annotations_format)
    else:
        notes.append("no --val given: best.safetensors is the last checkpoint")

    torch.manual_seed(cfg.seed)
    model = build_for_data(cfg, data, stage1_meta)
    if stage1_state is not None:
        s1_spec = stage1_meta["feature_spec"]
        bad = spec_mismatch(s1_spec, data.spec, patches=False)
        if bad:
            key, want, have = bad
            raise VadkitError(
                f"training features have {key} {have} but the stage-1 run {stage1_path} was "
                f"trained on {key} {want}"
            )
        try:
            model.load_stage1(stage1_state, source=str(stage1_path))
        except ValueError as e:
            raise VadkitError(str(e)) from None
    if resume:
        weights, _ = read_checkpoint(out / "last.safetensors")
        model.load_state_dict(weights)
    batch_size = cfg.batch_size or cls.default_batch_size
    loss_fn = model.loss
    if ddp.enabled:
        if batch_size % ddp.world:
            raise VadkitError(
                f"--batch-size {batch_size} (the global batch per class) must be divisible by "
                f"the {ddp.world} processes torchrun started"
            )
        model = sync_batch_norm(model, device)
    model.to(device)
    if ddp.enabled:
        wrapped = nn.parallel.DistributedDataParallel(
            _LossModule(model), device_ids=[device.index] if device.type == "cuda" else None
        )
        loss_fn = wrapped
    params = model.trainable_parameters()
    optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    generator = torch.Generator().manual_seed(cfg.seed)  # same on every rank: the global batch
    state = _State(optimizer, generator)

    start = 0
    if resume:
        start = state.load(out / "last.state.pt")
        if start >= cfg.steps:
            notes.append(f"the run already has {start} steps; nothing to do")
    elif ddp.main:
        out.mkdir(parents=True, exist_ok=True)
        save_json(out / "config.json", _config_json(cfg))
        with contextlib.suppress(FileNotFoundError):
            (out / "log.jsonl").unlink()
    if ddp.enabled:
        # dropout differs per rank; the saved RNG state is rank 0's, so a resumed run (on any
        # number of processes) reseeds from the step it resumes at
        torch.manual_seed(cfg.seed + ddp.rank + 7919 * start)
        ddp.barrier()

    meta_base = {
        "model": cfg.model,
        "model_args": model.config,
        "stage": cfg.stage,
        "feature_spec": data.spec,
        "extraction": _extraction(data),
        "train_config": _config_json(cfg),
        "trainable_parameters": sum(p.numel() for p in params),
        "parameters": sum(p.numel() for p in model.parameters()),
        "validation": {
            "manifest": _abs(cfg.val),
            "annotations": _abs(cfg.annotations),
            "note": VALIDATION_NOTE,
        },
        "stage1": None if stage1_meta is None else _abs(str(stage1_path)),
    }

    def save(name: str, step: int, record: dict | None) -> None:
        if not ddp.main:
            return
        meta = {**meta_base, "step": step, "metrics": record}
        save_checkpoint(out / f"{name}.safetensors", model, meta)
        if name == "last":
            state.save(out / "last.state.pt", step)
        emit(Event("save", step=step, steps=cfg.steps))

    sums: dict[str, float] = {}
    count = 0
    last_auc = state.best_roc_auc
    last_record: dict | None = None
    t0 = time.perf_counter()
    step = start
    model.train()
    try:
        while step < cfg.steps:
            with _deferred_interrupt():
                normal, abnormal = data.sample(
                    batch_size,
                    generator,
                    inputs=model.inputs,
                    device=device,
                    shard=(ddp.rank, ddp.world),
                )
                total, parts = loss_fn(normal, abnormal)
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                optimizer.step()
                step += 1
            loss = float(total.detach())
            if not math.isfinite(loss):
                save("last", step, None)
                raise VadkitError(
                    f"loss became {loss} at step {step}; try a lower --lr (saved "
                    f"{out / 'last.safetensors'} for inspection)"
                )
            sums["total"] = sums.get("total", 0.0) + loss
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            count += 1
            emit(Event("step", step=step, steps=cfg.steps, loss=loss, roc_auc=last_auc))
            if ddp.main and (step % cfg.eval_every == 0 or step == cfg.steps):
                record = {"step": step, "loss": {k: v / count for k, v in sums.items()}}
                sums, count = {}, 0
                if annotations is not None:
                    metrics = validate(model, val_sources, annotations, data.spec, device)
                    record.update(metrics)
                    last_auc = metrics["roc_auc"]
                record["seconds"] = round(time.perf_counter() - t0, 3)
                _append_log(out / "log.jsonl", record)
                last_record = record
                emit(Event("eval", step=step, steps=cfg.steps, roc_auc=last_auc, record=record))
                save("last", step, record)
                if annotations is not None and (
                    state.best_roc_auc is None or record["roc_auc"] > state.best_roc_auc
                ):
                    state.best_step, state.best_roc_auc = step, record["roc_auc"]
                    save("best", step, record)
                    state.save(out / "last.state.pt", step)  # remember the new best
    except KeyboardInterrupt:
        save("last", step, last_record)
        raise VadkitError(
            f"interrupted at step {step} of {cfg.steps}; saved {out / 'last.safetensors'}; "
            f"continue with: vadkit train --resume -o {out}"
        ) from None

    ddp.barrier()
    if annotations is None and ddp.main:
        with atomic_path(out / "best.safetensors") as tmp:
            shutil.copyfile(out / "last.safetensors", tmp)
    return TrainResult(out, step, state.best_step, state.best_roc_auc, last_record, notes)


def validate(
    model: torch.nn.Module,
    sources: list[Source],
    annotations: Any,
    spec: dict[str, Any],
    device: torch.device,
) -> dict[str, Any]:
    """Frame-level ROC AUC and AP of `model` on the validation videos (SPEC §5)."""
    scores, counts = frame_scores(model, sources, spec=spec, device=device)
    m = evaluate(scores, annotations, frame_counts=counts)
    return {"roc_auc": m["roc_auc"], "average_precision": m["average_precision"]}


def _append_log(path: Path, record: dict[str, Any]) -> None:
    """Rewrite the log with one more line, atomically (a crash never leaves half a line)."""
    old = path.read_text() if path.exists() else ""
    with atomic_path(path) as tmp:
        tmp.write_text(old + json.dumps(record) + "\n")


def _config_json(cfg: TrainConfig) -> dict[str, Any]:
    obj = asdict(cfg)
    for key in ("train", "features", "val", "val_features", "annotations", "from_run", "out"):
        obj[key] = _abs(obj[key])
    return obj


def _extraction(data: TrainingSet) -> dict[str, Any] | None:
    """The extraction settings of the training features, to extract a new video the same way."""
    metas = data.metas
    if not metas:
        return None
    m = metas[0]
    return {
        "backbone": m.backbone,
        "crops": m.crops,
        "short_side": m.short_side,
        "crop_size": m.crop_size,
        "patches": m.has_patches,
        "patch_frame_size": m.patch_frame_size,
        "fps": None if m.fps_used == m.fps_native else m.fps_used,
        "padding": m.padding,
        "compute_dtype": m.compute_dtype,
        "weights_sha256": m.weights_sha256,
        "weights_source": m.weights_source,
    }


__all__ = ["Event", "TrainConfig", "TrainResult", "train", "validate"]
