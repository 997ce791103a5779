"""What a training run is asked to do: `TrainConfig`, its validation, and where its values come
from (`TrainConfig.from_sources`: defaults < a recipe < a config file < explicit flags). No torch
here, so the CLI takes its defaults and choices from it at start-up (docs/DESIGN.md, Training).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import tomllib

from vadkit.errors import VadkitError
from vadkit.models import LOSS_NAMES, model_class
from vadkit.recipes import RECIPE_FIELDS, get_recipe
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
# how the training batches are ordered (`vadkit.data.make_sampler`)
BATCH_ORDERS = ("random", "epoch-shuffle", "fixed")
# vadkit: evaluate every `eval_every` steps; official: at the model's official cadence
PROTOCOLS = ("vadkit", "official")
# the validation metric that picks `best`
SELECT_METRICS = ("roc_auc", "pr_auc_trapezoid", "average_precision")
# config-file spellings of fields whose flag differs from the field name
KEY_ALIASES = {"from": "from_run", "model_arg": "model_args", "train_manifest": "train"}
# fields a config file may hold that a new run does not take from it
IGNORED_KEYS = ("run_id",)
DEFAULT_ORIGIN = "vadkit default"


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
    batch_order: str = "random"  # BATCH_ORDERS; random: independent draws every step
    protocol: str = "vadkit"  # PROTOCOLS; official: validate at the official cadence
    select_metric: str = "roc_auc"  # SELECT_METRICS: what picks `best`
    recipe: str | None = None  # the recipe the run started from (recorded only)
    run_id: str | None = None  # set by `train` when the run directory is made

    @classmethod
    def from_json(cls, obj: dict[str, Any], *, source: str = "training config") -> TrainConfig:
        """Read a saved `config.json` (unknown keys are ignored; wrong types are an error)."""
        if not isinstance(obj, dict):
            raise VadkitError(f"{source}: expected a JSON object, got {type(obj).__name__}")
        known = {f.name for f in fields(cls)}
        return build_config(cls, {k: v for k, v in obj.items() if k in known}, what=source)

    @classmethod
    def from_sources(
        cls,
        flags: Mapping[str, Any],
        *,
        recipe: str | None = None,
        config: str | Path | None = None,
    ) -> tuple[TrainConfig, dict[str, str]]:
        """The configuration from, lowest first: the defaults, the recipe (`recipe`, else the
        config file's `recipe` key), the config file, then `flags` (the values given
        explicitly, keyed by field). Returns it and, per field, where its value came from."""
        values: dict[str, Any] = {}
        origins: dict[str, str] = {}
        file_values = {} if config is None else read_config_file(config)
        recipe = recipe if recipe is not None else file_values.pop("recipe", None)
        file_values.pop("recipe", None)
        if recipe is not None:
            for key, v in get_recipe(recipe).settings.items():
                values[key], origins[key] = v.value, f"recipe {recipe}: {v.source}"
        for key, value in file_values.items():
            values[key], origins[key] = value, f"config {config}"
        for key, value in flags.items():
            values[key], origins[key] = value, "command line"
        values["recipe"] = recipe
        missing = [k for k in ("model", "train", "out") if values.get(k) is None]
        if missing:
            what = {"model": "model", "train": "training manifest", "out": "run directory"}
            raise VadkitError(
                f"no {' and no '.join(what[k] for k in missing)} given: pass "
                + ", ".join(_FLAG.get(k, f"--{k}") for k in missing)
                + " (or set it in a --config file; a --recipe names the model)"
            )
        return build_config(cls, values, what="training configuration"), origins

    def settings(self, origins: Mapping[str, str] | None = None) -> list[tuple[str, Any, str]]:
        """`(field, effective value, origin)` of each training hyperparameter: what a run
        prints at its start. `batch_size` and `loss` left to the model show the model's."""
        origins = origins or {}
        cls = model_class(self.model)
        own = {f.name: f.default for f in fields(cls.Config)}
        rows = []
        for key in (*RECIPE_FIELDS, "seed", "eval_every", "protocol"):
            value, origin = getattr(self, key), origins.get(key, DEFAULT_ORIGIN)
            if value is None and key == "batch_size":
                value, origin = cls.default_batch_size, f"model {self.model}'s default"
            elif value is None and key == "loss":
                value, origin = own.get("loss"), f"model {self.model}'s own code"
            rows.append((key, value, origin))
        return rows

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
        self._validate_choices()
        self._validate_model_args(cls)

    def _validate_choices(self) -> None:
        for name, choices in (
            ("batch_order", BATCH_ORDERS),
            ("protocol", PROTOCOLS),
            ("select_metric", SELECT_METRICS),
        ):
            if getattr(self, name) not in choices:
                raise VadkitError(
                    f"unknown --{name.replace('_', '-')} {getattr(self, name)!r}; choose one "
                    f"of {', '.join(choices)}"
                )
        if self.recipe is not None:
            get_recipe(self.recipe)
        if self.protocol == "official" and self.val is None:
            raise VadkitError(
                "--protocol official evaluates on the list passed as --val at the official "
                "cadence and keeps the best on it: pass --val and -a/--annotations"
            )

    def _validate_model_args(self, cls: type) -> None:
        for key in self.model_args:
            if key in LOOP_ARGS:
                raise VadkitError(
                    f"--model-arg {key}: {key} is taken from {LOOP_ARGS[key]}, not set by hand"
                )
        # the model's own checks on every value, with a placeholder for what the data will say
        cls.make_config(**self.model_kwargs())


_FLAG = {"train": "--train", "out": "-o/--out", "model": "--model"}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The settings of a TOML config file (a `.json` file, e.g. a run's `config.json`, is read
    as JSON): keys are TrainConfig fields or their flags' spellings (`batch-size`, `from`,
    `model-arg`); relative paths are relative to the file's directory. Unknown keys are an
    error naming them; `run_id` is dropped (a new run gets its own)."""
    p = Path(path)
    obj = _parse_config(p)
    known = {f.name for f in fields(TrainConfig)}
    out: dict[str, Any] = {}
    unknown = []
    for raw, value in obj.items():
        key = raw.replace("-", "_")
        key = KEY_ALIASES.get(key, key)
        if key in IGNORED_KEYS:
            continue
        if key not in known:
            unknown.append(raw)
            continue
        if key in PATH_FIELDS and isinstance(value, str):
            value = str(p.parent / value) if not Path(value).is_absolute() else value
        out[key] = value
    if unknown:
        raise VadkitError(
            f"{p}: unknown setting(s) {', '.join(sorted(unknown))}; the settings are "
            f"{', '.join(sorted(known - set(IGNORED_KEYS)))}"
        )
    return out


def _parse_config(p: Path) -> dict[str, Any]:
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VadkitError(f"{p}: config file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise VadkitError(f"{p}: unreadable config file ({e})") from None
    try:
        obj = json.loads(text) if p.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        kind = "JSON" if p.suffix.lower() == ".json" else "TOML"
        raise VadkitError(f"{p}: not a valid {kind} config file ({e})") from None
    if not isinstance(obj, dict):
        raise VadkitError(f"{p}: a config file holds settings by name, got {type(obj).__name__}")
    return obj


__all__ = [
    "BATCH_ORDERS",
    "LOOP_ARGS",
    "PROTOCOLS",
    "SELECT_METRICS",
    "TrainConfig",
    "read_config_file",
]
