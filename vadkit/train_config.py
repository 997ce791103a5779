"""What a training run is asked to do: `TrainConfig` and its validation. No torch here, so the
CLI takes its defaults and choices from it at start-up (docs/DESIGN.md, Training)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from vadkit.errors import VadkitError
from vadkit.models import LOSS_NAMES, model_class
from vadkit.settings import build_config

# model config fields the loop fills in itself, and where each comes from
LOOP_ARGS = {
    "feature_dim": "the training features",
    "patch_grids": "the training features",
    "segments": "--segments",
    "loss": "--loss",
    "stage": "--stage",
}
PATH_FIELDS = ("train", "features", "val", "val_features", "annotations", "from_run", "out")


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
    loss: str | None = None  # score-regulariser variant; None: the model's own (its code's)
    segments: int = 32  # RTFM's 32 segments per training video
    float16_cache: bool = False
    naming: str | None = None  # labels of a .list manifest (ucf | xd)
    abnormal_first: int | None = None
    model_args: dict[str, Any] = field(default_factory=dict)  # extra model config fields
    run_id: str | None = None  # set by `train` when the run directory is made

    @classmethod
    def from_json(cls, obj: dict[str, Any], *, source: str = "training config") -> TrainConfig:
        """Read a saved `config.json` (unknown keys are ignored; wrong types are an error)."""
        if not isinstance(obj, dict):
            raise VadkitError(f"{source}: expected a JSON object, got {type(obj).__name__}")
        known = {f.name for f in fields(cls)}
        return build_config(cls, {k: v for k, v in obj.items() if k in known}, what=source)

    def to_json(self) -> dict[str, Any]:
        """The form `config.json` holds: paths absolute."""
        obj = asdict(self)
        for key in PATH_FIELDS:
            if obj[key] is not None:
                obj[key] = str(Path(obj[key]).resolve())
        return obj

    def with_overrides(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes)

    def model_kwargs(self, **from_data: Any) -> dict[str, Any]:
        """The model config: what the loop knows (data, --segments, --loss, --stage) restricted
        to the fields the model's config declares, then `model_args`."""
        cls = model_class(self.model)
        declared = {f.name for f in fields(cls.Config)}
        loop = {"segments": self.segments, "loss": self.loss, "stage": self.stage, **from_data}
        args = {k: v for k, v in loop.items() if k in declared and v is not None}
        return {**args, **self.model_args}

    def validate(self) -> None:
        """Refuse a bad configuration before anything is read or written."""
        cls = model_class(self.model)
        if self.stage not in cls.stages:
            raise VadkitError(
                f"model {self.model} trains in stage(s) {', '.join(map(str, cls.stages))}, "
                f"not --stage {self.stage}"
            )
        first = cls.stages[0]
        if self.stage == first and self.from_run is not None:
            raise VadkitError(
                f"--from is for stage {first + 1} (it names the stage-{first} run to build on)"
            )
        if self.stage != first and self.from_run is None:
            raise VadkitError(
                f"stage {self.stage} of {self.model} trains on top of a stage-{self.stage - 1} "
                f"run: pass --from RUN_STAGE{self.stage - 1} (train it first with --stage "
                f"{self.stage - 1})"
            )
        for name in ("steps", "eval_every", "segments"):
            if getattr(self, name) < 1:
                raise VadkitError(f"--{name.replace('_', '-')} must be at least 1")
        if self.batch_size is not None and self.batch_size < 1:
            raise VadkitError("--batch-size must be at least 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise VadkitError(f"--lr must be a positive number, got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise VadkitError(f"--weight-decay must be 0 or more, got {self.weight_decay}")
        if self.loss is not None and self.loss not in LOSS_NAMES:
            raise VadkitError(
                f"unknown --loss {self.loss!r}; choose one of {', '.join(LOSS_NAMES)}"
            )
        if (self.val is None) != (self.annotations is None):
            raise VadkitError("--val and --annotations go together: validation needs ground truth")
        self._validate_model_args(cls)

    def _validate_model_args(self, cls: type) -> None:
        for key in self.model_args:
            if key in LOOP_ARGS:
                raise VadkitError(
                    f"--model-arg {key}: {key} is taken from {LOOP_ARGS[key]}, not set by hand"
                )
        # the model's own checks on every value, with a placeholder for what the data will say
        cls.make_config(**self.model_kwargs())


__all__ = ["LOOP_ARGS", "TrainConfig"]
