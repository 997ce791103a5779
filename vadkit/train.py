"""The training loop (docs/DESIGN.md, Training). It knows nothing about the model it trains: a
model from the registry states its config, inputs, stages and minimum snippet count
(`vadkit.models.common.VadModel`); the loop samples bags, steps the optimizer, evaluates and
saves. `Trainer.fit` is the whole loop: setup, step, evaluate, save.

A run directory holds (`vadkit.checkpointer` says how they are written):

- `config.json`       the training configuration (and the run's id);
- `state.pt`          everything `--resume` needs, one file replaced atomically;
- `last.safetensors`  weights + metadata at the latest save;
- `best.safetensors`  the checkpoint with the best validation `select_metric` (ROC AUC by
                      default; `last` without validation);
- `log.jsonl`         one JSON line per evaluation: step, mean loss parts since the previous line,
                      learning rate, device, roc_auc, average_precision, pr_auc_trapezoid, seconds.

Evaluation cadence: every `eval_every` steps and at the last step; with `protocol="official"`,
at the official code's cadence instead (`vadkit.recipes.official_cadence`: RTFM every 5 steps
after step 200, MGFN every epoch), where only evaluations on that cadence can become `best`, and
`last` is saved every `eval_every` steps and whenever `best` changes. The batch order is
`batch_order` (`vadkit.data.Sampler`).
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vadkit.checkpointer import STATE_FILE, Checkpointer, Progress
from vadkit.data import Source, TrainingSet, make_sampler, sources_from_manifest, steps_per_epoch
from vadkit.devices import resolve_device
from vadkit.distributed import Distributed, sync_batch_norm
from vadkit.errors import Interrupted, VadkitError
from vadkit.inference import frame_scores
from vadkit.io.annotations import read_annotations
from vadkit.io.checkpoint import read_checkpoint
from vadkit.io.features import FeatureSpec
from vadkit.io.manifest import read_manifest
from vadkit.metrics import evaluate
from vadkit.models import create_model, model_class
from vadkit.models.common import PATCHES
from vadkit.recipes import EPOCH, get_recipe, official_cadence
from vadkit.train_config import TrainConfig

VALIDATION_NOTE = (
    "vadkit reads no test data unless it is passed as the validation list; the best checkpoint "
    "was selected on the validation list named here, chosen by the user"
)


@dataclass
class Event:
    """What the loop reports to its caller (the CLI draws a progress bar from these)."""

    kind: str  # "load" | "start" (set up, before the notes) | "note" | "step" | "eval"
    step: int = 0
    steps: int = 0
    loss: float | None = None
    roc_auc: float | None = None
    record: dict[str, Any] | None = None
    message: str | None = None
    losses: dict[str, float] | None = None  # "step": the total and the loss's parts
    lr: float | None = None  # "step": the learning rate it used


@dataclass
class TrainResult:
    out: Path
    step: int
    best_step: int | None
    best_roc_auc: float | None
    last_record: dict[str, Any] | None
    notes: list[str]
    selection: str | None = None  # how `best` was chosen, to print with every result
    select_metric: str = "roc_auc"
    best_record: dict[str, Any] | None = None


Callback = Callable[[Event], None]


@dataclass
class _Prior:
    """The run of the previous stage that this one builds on."""

    state: dict[str, torch.Tensor]
    meta: dict[str, Any]
    path: Path


@dataclass
class _Validation:
    sources: list[Source]
    annotations: Any


def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    callback: Callback | None = None,
) -> TrainResult:
    """Train `cfg.model` and write the run directory `cfg.out`. See the module docstring.

    `resume=True` continues the run in `cfg.out` with its saved configuration; only `steps`
    and `device` are taken from `cfg` (see `resume_config`)."""
    if resume:
        cfg = resume_config(cfg.out, steps=cfg.steps, device=cfg.device)
    else:
        _refuse_existing_run(Path(cfg.out))
        cfg = cfg.with_overrides(run_id=uuid.uuid4().hex)
    cfg.validate()
    device = resolve_device(cfg.device)
    ddp = Distributed.from_env(device)
    try:
        return Trainer(cfg, resume=resume, callback=callback, device=device, ddp=ddp).fit()
    finally:
        ddp.close()


def resume_config(
    out: str | Path, *, steps: int | None = None, device: str = "auto"
) -> TrainConfig:
    """The saved configuration of the run in `out`; a new `steps` (and `device`) replace the
    saved ones and are recorded in its `config.json`."""
    out = Path(out)
    saved = out / "config.json"
    if not saved.is_file():
        raise VadkitError(f"{out}: nothing to resume (no config.json)")
    try:
        obj = json.loads(saved.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VadkitError(f"{saved}: damaged run configuration ({e})") from None
    cfg = TrainConfig.from_json(obj, source=str(saved))
    if cfg.run_id is None:
        raise VadkitError(f"{saved}: no run_id (written by an older vadkit); it cannot be resumed")
    changes = {"out": str(out), "device": device}
    if steps is not None:
        changes["steps"] = steps
    return cfg.with_overrides(**changes)


def _refuse_existing_run(out: Path) -> None:
    if (out / "last.safetensors").exists() or (out / STATE_FILE).exists():
        raise VadkitError(
            f"{out} already holds a run; continue it with --resume or choose another -o"
        )


class Trainer:
    """One training run: `fit()` = setup, then step / evaluate / save until `cfg.steps`."""

    def __init__(
        self,
        cfg: TrainConfig,
        *,
        resume: bool,
        callback: Callback | None,
        device: torch.device,
        ddp: Distributed,
    ) -> None:
        self.cfg = cfg
        self.resume = resume
        self.out = Path(cfg.out)
        self.ddp = ddp
        self.device = _rank_device(device, ddp)
        self.emit: Callback = (callback or _ignore) if ddp.main else _ignore
        self.notes: list[str] = []
        self.t0 = time.perf_counter()

    # ------------------------------------------------------------------ the loop

    def fit(self) -> TrainResult:
        self.setup()
        progress = self.start()
        try:
            while True:
                if self.ddp.main and self._eval_pending(progress):
                    self.evaluate(progress)  # and save
                if progress.step >= self.cfg.steps:
                    break
                self.step(progress)
        except KeyboardInterrupt:
            self.save(progress)
            raise Interrupted(
                f"interrupted at step {progress.step} of {self.cfg.steps}; saved "
                f"{self.out / 'last.safetensors'}; continue with: vadkit train --resume -o "
                f"{self.out}"
            ) from None
        self.ddp.barrier()
        self.ckpt.finish(self.model, progress)
        return TrainResult(
            self.out,
            progress.step,
            progress.best_step,
            progress.best_roc_auc,
            progress.last_record,
            self.notes,
            self.selection,
            self.cfg.select_metric,
            progress.best_record,
        )

    def step(self, progress: Progress) -> None:
        """One optimizer step on a sampled global batch; its loss joins the running sums."""
        with _deferred_interrupt():
            normal, abnormal = self.data.sample(
                self.batch_size,
                self.generator,
                inputs=self.model.inputs,
                device=self.device,
                shard=(self.ddp.rank, self.ddp.world),
                sampler=self.sampler,
                step=progress.step,
            )
            total, parts = self.loss_fn(normal, abnormal)
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            self.optimizer.step()
            progress.step += 1
            loss = float(total.detach())
            parts = {k: float(v) for k, v in parts.items()}
            if math.isfinite(loss):
                progress.add(loss, parts)
        if not math.isfinite(loss):
            self.save(progress)
            raise VadkitError(
                f"loss became {loss} at step {progress.step}; try a lower --lr (saved "
                f"{self.out / 'last.safetensors'} for inspection)"
            )
        self.emit(
            Event(
                "step", progress.step, self.cfg.steps, loss=loss, roc_auc=self._auc(progress),
                losses={"total": loss, **parts}, lr=self.optimizer.param_groups[0]["lr"],
            )
        )  # fmt: skip

    def evaluate(self, progress: Progress) -> None:
        """Validation metrics, then (Ctrl-C held) the log record — mean losses since the last
        one — and the best so far, saved."""
        metrics = {}
        if self.val is not None:  # interruptible: nothing has changed yet
            val = self.val
            metrics = validate(
                self.model, val.sources, val.annotations, self.data.spec, self.device
            )
        with _deferred_interrupt():
            record: dict[str, Any] = {
                "step": progress.step,
                "loss": progress.take_means(),
                "lr": self.optimizer.param_groups[0]["lr"],
                "device": str(self.device),
                **metrics,
                "seconds": round(progress.seconds + time.perf_counter() - self.t0, 3),
            }
            progress.records.append(record)
            key, best = self.cfg.select_metric, progress.best_record
            official = self.cfg.protocol == "official"
            new_best = metrics and (not official or self._on_cadence(progress.step))
            if new_best and (best is None or record[key] > best[key]):
                progress.best_step, progress.best_record = progress.step, record
            if self._save_due(progress):
                self.save(progress)
        steps = self.cfg.steps
        self.emit(Event("eval", progress.step, steps, roc_auc=record.get("roc_auc"), record=record))

    def save(self, progress: Progress) -> None:
        now = time.perf_counter()
        progress.seconds += now - self.t0
        self.t0 = now
        self.ckpt.save(self.model, self.optimizer, self.generator, progress)

    def _eval_pending(self, progress: Progress) -> bool:
        """An evaluation is due at this step and not yet logged (a run cut while validating
        evaluates again on resume)."""
        step, last = progress.step, progress.last_record
        due = step > 0 and (self._on_cadence(step) or step == self.cfg.steps)
        return due and (last is None or last["step"] != step)

    def _on_cadence(self, step: int) -> bool:
        every, after = self.cadence
        return step > after and step % every == 0

    def _save_due(self, progress: Progress) -> bool:
        """Every evaluation saves, except the official cadence's in between `eval_every` steps
        that do not change `best` (they are replayed exactly on resume)."""
        step = progress.step
        if self.cfg.protocol != "official" or step == self.cfg.steps:
            return True
        return step % self.cfg.eval_every == 0 or progress.best_step == step

    @staticmethod
    def _auc(progress: Progress) -> float | None:
        last = progress.last_record
        return None if last is None else last.get("roc_auc")

    # ------------------------------------------------------------------ setup

    def setup(self) -> None:
        """Everything before step 1, each input checked: data, validation, model, optimizer."""
        cfg = self.cfg
        self.cls = model_class(cfg.model)
        prior = self._previous_stage()
        self.data = self._load_training_set()
        self.val = self._load_validation()
        self.model = self._build_model(prior)
        self.data.require_snippets(self.model.min_snippets, why=f"model {cfg.model} needs")
        self.batch_size = cfg.batch_size or self.cls.default_batch_size
        self.sampler = make_sampler(cfg.batch_order, self.data, self.batch_size, cfg.seed)
        self.cadence, self.selection = self._cadence()
        self.loss_fn = self._place_model()
        self.model.train()  # a model's own train() may keep frozen parts in eval mode
        params = self.model.trainable_parameters()
        self.optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        # the same sampler on every rank: every rank draws the global batch
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.ckpt = Checkpointer(
            self.out, run_id=cfg.run_id, meta=self._meta(prior),
            main=self.ddp.main,
        )  # fmt: skip

    def start(self) -> Progress:
        """Restore a resumed run, or make the run directory; say what the run will do."""
        progress = None
        if self.resume:  # a refused state changes nothing; then the new steps are recorded
            progress = self.ckpt.restore(self.model, self.optimizer, self.generator)
            self.ckpt.write_config(self.cfg.to_json())
        elif self.ddp.main:
            self.out.mkdir(parents=True, exist_ok=True)
            self.ckpt.write_config(self.cfg.to_json())
            with contextlib.suppress(FileNotFoundError):
                (self.out / "log.jsonl").unlink()
        progress = progress or Progress()
        self.emit(Event("start", progress.step, self.cfg.steps))
        self._say_what_happens(progress)
        if self.ddp.enabled:
            # dropout differs per rank; the saved RNG state is rank 0's, so a resumed run (on any
            # number of processes) reseeds from the step it resumes at
            torch.manual_seed(self.cfg.seed + self.ddp.rank + 7919 * progress.step)
            self.ddp.barrier()
        return progress

    def _cadence(self) -> tuple[tuple[int, int], str]:
        """`(every, after)` of the evaluations, and how `best` is selected (the label every
        result carries)."""
        cfg = self.cfg
        if cfg.val is None:
            return (cfg.eval_every, 0), "the last checkpoint (no validation list)"
        if cfg.protocol != "official":
            return (cfg.eval_every, 0), (
                f"best {cfg.select_metric} on {_abs(cfg.val)}, evaluated every "
                f"{cfg.eval_every} steps"
            )
        official = official_cadence(cfg.model, cfg.recipe)
        c = official.value
        every = steps_per_epoch(self.data, self.batch_size) if c.every == EPOCH else c.every
        when = c.describe() + (f" = every {every} steps" if c.every == EPOCH else "")
        label = (
            f"best on {_abs(cfg.val)} at the official cadence ({when}; {official.source}), "
            f"by {cfg.select_metric}"
        )
        return (every, c.after), label

    def _say_what_happens(self, progress: Progress) -> None:
        if self.val is None:
            self.note("no --val given: best.safetensors is the last checkpoint")
        elif self.cfg.protocol == "official":
            self.note(
                f"--protocol official: best.safetensors is selected on the validation list "
                f"{self.cfg.val}: {self.selection}"
            )
        if self.cfg.recipe is not None:
            spec = self.data.spec
            bad = get_recipe(self.cfg.recipe).feature_mismatch(
                spec.crops, spec.feature_dim, spec.backbone
            )
            if bad:
                self.note(bad)
        short = self.data.classes_short_of(self.batch_size)
        if short and self.sampler is None:
            self.note(
                f"fewer training videos than --batch-size {self.batch_size} in: "
                f"{', '.join(short)}; those are drawn with replacement"
            )
        if progress.step >= self.cfg.steps:
            self.note(f"the run already has {progress.step} steps; nothing to do")

    def note(self, message: str) -> None:
        self.notes.append(message)
        self.emit(Event("note", message=message))

    def _previous_stage(self) -> _Prior | None:
        """The checkpoint of the previous stage's run (`--from`), checked."""
        if self.cfg.from_run is None:
            return None
        p = Path(self.cfg.from_run)
        path = p if p.is_file() else p / "best.safetensors"
        state, meta = read_checkpoint(path)
        want = self.cfg.stage - 1
        if meta.get("stage", 1) != want:
            raise VadkitError(
                f"{path}: --from needs a stage-{want} run, this is {meta.get('model')} stage "
                f"{meta.get('stage')}"
            )
        return _Prior(state, meta, path)

    def _load_training_set(self) -> TrainingSet:
        cfg = self.cfg
        return TrainingSet.load(
            _read_sources(cfg, cfg.train, cfg.features, self.note),
            segments=cfg.segments,
            patches=self.cls.patch_files(cfg.stage, cfg.model_args)
            or PATCHES in self.cls.input_names(cfg.stage),
            float16=cfg.float16_cache,
            name=f"training manifest {cfg.train}",
            progress=lambda i, n: self.emit(Event("load", step=i, steps=n)),
        )

    def _load_validation(self) -> _Validation | None:
        cfg = self.cfg
        if cfg.val is None:
            return None
        sources = _read_sources(
            cfg, cfg.val, cfg.val_features or cfg.features, self.note, validation=True
        )
        annotations = read_annotations(cfg.annotations, format=cfg.annotations_format)
        for src in sources:  # a video the annotation lacks fails now, not at the first eval
            if not src.path.is_file():
                raise VadkitError(
                    f"validation video {src.video}: {src.path}: feature file not found"
                )
            try:
                annotations.truth(src.video)
            except VadkitError as e:
                raise VadkitError(f"--val {cfg.val}: {e}") from None
        return _Validation(sources, annotations)

    def _build_model(self, prior: _Prior | None) -> nn.Module:
        """The model with its sizes taken from the data (never literals) and, for a later
        stage, what it takes from the previous stage's run."""
        cfg, spec = self.cfg, self.data.spec
        known: dict[str, Any] = {"feature_dim": spec.feature_dim}
        if PATCHES in self.cls.input_names(cfg.stage) and spec.grids:
            known["patch_grids"] = spec.grids
        if prior is not None:
            _check_prior_features(prior, spec)
            old = prior.meta["model_args"]
            known.update({k: old[k] for k in self.cls.stage1_args if k in old})
        torch.manual_seed(cfg.seed)
        model = create_model(cfg.model, **cfg.model_kwargs(**known))
        if prior is not None:
            try:
                model.load_stage1(prior.state, source=str(prior.path))
            except ValueError as e:
                raise VadkitError(str(e)) from None
        return model

    def _place_model(self) -> Callable:
        """Move the model to its device (DDP-wrapped under torchrun); return the loss to call."""
        model, ddp = self.model, self.ddp
        if not ddp.enabled:
            model.to(self.device)
            return model.loss
        if self.batch_size % ddp.world:
            raise VadkitError(
                f"--batch-size {self.batch_size} (the global batch per class) must be divisible "
                f"by the {ddp.world} processes torchrun started"
            )
        self.model = model = sync_batch_norm(model, self.device)
        model.to(self.device)
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(_LossModule(model), device_ids=ids)

    def _meta(self, prior: _Prior | None) -> dict[str, Any]:
        """What every checkpoint of this run records besides its step and metrics."""
        cfg, model = self.cfg, self.model
        return {
            "model": cfg.model,
            "model_args": model.config,
            "stage": cfg.stage,
            "feature_spec": self.data.spec.to_dict(),
            "extraction": _extraction(self.data),
            "train_config": cfg.to_json(),
            "trainable_parameters": sum(p.numel() for p in model.trainable_parameters()),
            "parameters": sum(p.numel() for p in model.parameters()),
            "validation": {
                "manifest": _abs(cfg.val),
                "annotations": _abs(cfg.annotations),
                "note": VALIDATION_NOTE,
                "selection": self.selection,
            },
            "stage1": None if prior is None else _abs(str(prior.path)),
            "protocol": cfg.protocol,
            "batch_order": cfg.batch_order,
            "selection": self.selection,
            "recipe": None if cfg.recipe is None else get_recipe(cfg.recipe).to_json(),
        }


def validate(
    model: torch.nn.Module,
    sources: list[Source],
    annotations: Any,
    spec: FeatureSpec,
    device: torch.device,
) -> dict[str, Any]:
    """Frame-level ROC AUC, AP and the trapezoid PR AUC of `model` on the validation videos."""
    scores, counts = frame_scores(model, sources, spec=spec, device=device)
    m = evaluate(scores, annotations, frame_counts=counts)
    keys = ("roc_auc", "average_precision", "pr_auc_trapezoid")
    return {k: m[k] for k in keys}


def _check_prior_features(prior: _Prior, spec: FeatureSpec) -> None:
    theirs = FeatureSpec.from_dict(prior.meta.get("feature_spec"), source=str(prior.path))
    bad = theirs.mismatch(spec, patches=False)
    if bad:
        key, want, have = bad
        raise VadkitError(
            f"training features have {key} {have} but the stage-1 run {prior.path} was "
            f"trained on {key} {want}"
        )


def _rank_device(device: torch.device, ddp: Distributed) -> torch.device:
    if ddp.enabled and device.type == "cuda":
        device = torch.device("cuda", ddp.local_rank)
        torch.cuda.set_device(device)
    return device


def _ignore(event: Event) -> None:
    pass


def _abs(p: str | None) -> str | None:
    return None if p is None else str(Path(p).resolve())


def _read_sources(
    cfg: TrainConfig,
    manifest: str,
    features: str | None,
    note: Callable[[str], None],
    *,
    validation: bool = False,
) -> list[Source]:
    """The videos of a manifest. `--abnormal-first` and `--naming` label the training list;
    a validation list's labels are unused (its ground truth is `--annotations`), so a `.list`
    of another length than the training list (RTFM's test list) reads without them. Notes
    (e.g. patch files of a naive `ls feats/*.npy` list, skipped) go to `note`."""
    first = (0 if cfg.naming is None else None) if validation else cfg.abnormal_first
    notes: list[str] = []
    entries = read_manifest(manifest, abnormal_first=first, naming=cfg.naming, notes=notes)
    for text in notes:
        note(text)
    return sources_from_manifest(entries, features)


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


class _LossModule(nn.Module):
    """DDP wraps `forward`; the loop calls `loss`: this puts one behind the other."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, normal, abnormal):
        return self.model.loss(normal, abnormal)


def _extraction(data: TrainingSet) -> dict[str, Any] | None:
    """The extraction settings of the training features, to extract a new video the same way."""
    from vadkit.extract import extraction_record

    metas = data.metas
    return extraction_record(metas[0]) if metas else None


__all__ = ["Event", "TrainConfig", "TrainResult", "Trainer", "resume_config", "train", "validate"]


class _CallableModule(types.ModuleType):
    """`vadkit.train` names both this module and its `train` function (the public API); once
    the module is imported the package attribute is the module, so calling it trains."""

    def __call__(self, *args: Any, **kwargs: Any) -> TrainResult:
        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
