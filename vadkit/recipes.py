"""Named training recipes: the settings each paper's own code trains with, every value with
where it comes from (docs/DESIGN.md, Training). No torch here: `vadkit recipes` and the CLI's
start-up read it.

A recipe sets `TrainConfig` fields (model, stage, lr, weight_decay, batch_size, steps, segments,
loss, batch_order, select_metric) and states three things the run checks or uses but does not
set: the official evaluation cadence (used by `protocol="official"`), the feature layout the
paper trained on (checked against the training features: a mismatch is a note naming both, as
the run still trains), and how the official list files carry their labels.

Values were read from the official code: RTFM (tianyu0207/RTFM: option.py, main.py, train.py,
dataset.py) and MGFN (carolchenyx/MGFN.: option.py, main.py, train.py, dataset.py). MSIP's code
is not public; its unpublished settings are vadkit's choices and say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vadkit.errors import VadkitError

# the TrainConfig fields a recipe sets, in the order they are listed
RECIPE_FIELDS = (
    "model",
    "stage",
    "lr",
    "weight_decay",
    "batch_size",
    "steps",
    "segments",
    "loss",
    "batch_order",
    "select_metric",
)
EPOCH = "epoch"  # a cadence of one evaluation per epoch of the fixed batch order


@dataclass(frozen=True)
class Value:
    value: Any
    source: str


@dataclass(frozen=True)
class Cadence:
    """Evaluate at steps `s > after` with `s % every == 0`; `every="epoch"`: once per epoch
    (`min(normal, abnormal) // batch_size` steps, as a zip of two drop-last loaders has)."""

    every: int | str
    after: int = 0

    def describe(self) -> str:
        every = "every epoch" if self.every == EPOCH else f"every {self.every} steps"
        return every + (f" after step {self.after}" if self.after else "")

    def to_json(self) -> dict[str, Any]:
        return {"every": self.every, "after": self.after}


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    settings: dict[str, Value]  # TrainConfig field -> value and source
    cadence: Value  # a Cadence: the official evaluation cadence
    features: Value  # {"crops", "feature_dim", "backbone"}; None = any
    labels: Value  # how the official list gives the labels (informational)
    notes: tuple[str, ...] = field(default_factory=tuple)

    def values(self) -> dict[str, Any]:
        """The TrainConfig fields this recipe sets."""
        return {k: v.value for k, v in self.settings.items()}

    def to_json(self) -> dict[str, Any]:
        def entry(v: Value) -> dict[str, Any]:
            value = v.value.to_json() if isinstance(v.value, Cadence) else v.value
            return {"value": value, "source": v.source}

        return {
            "name": self.name,
            "description": self.description,
            "settings": {k: entry(v) for k, v in self.settings.items()},
            "eval_cadence": entry(self.cadence),
            "features": entry(self.features),
            "labels": entry(self.labels),
            "notes": list(self.notes),
        }

    def feature_mismatch(self, crops: int, feature_dim: int, backbone: str | None) -> str | None:
        """A sentence naming what the recipe expects and what the features have, or None."""
        want = self.features.value
        have = {"crops": crops, "feature_dim": feature_dim, "backbone": backbone}
        bad = [k for k, v in want.items() if v is not None and have[k] is not None and have[k] != v]
        if not bad:
            return None
        return (
            f"recipe {self.name} expects {_layout(want)} ({self.features.source}); the "
            f"training features have {_layout(have)}: the run trains, but not in the paper's "
            "setting"
        )


def _layout(d: dict[str, Any]) -> str:
    parts = [f"{d['crops']} crop(s)" if d["crops"] else "any crops"]
    parts.append(f"{d['feature_dim']}-d" if d["feature_dim"] else "any dimension")
    if d.get("backbone"):
        parts.append(str(d["backbone"]))
    return ", ".join(parts)


# ---------------------------------------------------------------------- the recipes

_RTFM = "RTFM"
_MGFN = "MGFN"
_MSIP = "vadkit's choice (MSIP unpublished)"


def _rtfm_settings(model: str, loss: Value, *, msip: bool) -> dict[str, Value]:
    """RTFM's training settings; MSIP (whose stage 1 is RTFM) takes them as vadkit's choice."""

    def src(text: str) -> str:
        return f"{_MSIP}: RTFM's code, which MSIP's stage 1 is ({text})" if msip else text

    return {
        "model": Value(model, "the recipe's model"),
        "stage": Value(
            1,
            f"{_MSIP}: stage 1 (CTR + classifier); stage 2: the same recipe with --stage 2 "
            "--from RUN"
            if msip
            else "RTFM trains in one stage",
        ),
        "lr": Value(1e-3, src("RTFM option.py default --lr '[0.001]*15000', constant")),
        "weight_decay": Value(
            5e-3, src("RTFM main.py: Adam weight_decay=0.005; the paper says 5e-4")
        ),
        "batch_size": Value(32, src("RTFM option.py default --batch-size 32, per class")),
        "steps": Value(15000, src("RTFM option.py default --max-epoch 15000 iterations")),
        "segments": Value(32, src("RTFM dataset.py: process_feat(feature, 32)")),
        "loss": loss,
        "batch_order": Value(
            "epoch-shuffle",
            src("RTFM main.py: a shuffled drop-last loader per class, restarted when exhausted"),
        ),
        "select_metric": Value("roc_auc", src("RTFM main.py keeps the best test AUC")),
    }


def _rtfm_cadence(msip: bool) -> Value:
    text = "RTFM main.py: test when step % 5 == 0 and step > 200, keep the best"
    return Value(Cadence(5, 200), f"{_MSIP}: RTFM's ({text})" if msip else text)


_R50_10 = {"crops": 10, "feature_dim": 2048, "backbone": "i3d-r50"}


def _rtfm(name: str, dataset: str, labels: Value) -> Recipe:
    loss = Value("rtfm", "RTFM train.py: its sparsity and smoothness terms")
    return Recipe(
        name,
        f"RTFM on {dataset} as its official code trains it",
        _rtfm_settings("rtfm", loss, msip=False),
        _rtfm_cadence(False),
        Value(
            dict(_R50_10),
            f"RTFM's public {dataset} features: I3D-ResNet50, 10 crops, option.py "
            "--feature-size 2048",
        ),
        labels,
    )


def _msip(name: str, dataset: str, labels: Value) -> Recipe:
    loss = Value("msip", "the MSIP paper's sparsity and smoothness terms")
    return Recipe(
        name,
        f"MSIP on {dataset}: RTFM's training settings (vadkit's choice; MSIP's are unpublished)",
        _rtfm_settings("msip", loss, msip=True),
        _rtfm_cadence(True),
        Value(
            dict(_R50_10),
            f"{_MSIP}: RTFM's feature layout, extracted by vadkit with MSIP's patches (RTFM's "
            "public features have none)",
        ),
        labels,
        ("stage 2 trains MPSR on a stage-1 run: --recipe NAME --stage 2 --from RUN",),
    )


def _mgfn(name: str, dataset: str, *, steps: Value, select: Value, features: Value, labels):
    return Recipe(
        name,
        f"MGFN on {dataset} as its code published with the paper trains it",
        {
            "model": Value("mgfn", "the recipe's model"),
            "stage": Value(1, "MGFN trains in one stage"),
            "lr": Value(1e-3, "MGFN option.py default --lr '[0.001]*15000', constant"),
            "weight_decay": Value(5e-4, "MGFN main.py: Adam weight_decay=0.0005"),
            "batch_size": Value(16, "MGFN option.py default --batch_size 16, per class"),
            "steps": steps,
            "segments": Value(32, "MGFN option.py default --seg_length 32"),
            "loss": Value("mgfn", "MGFN train.py as published with the paper (ded0ef6)"),
            "batch_order": Value(
                "fixed",
                "MGFN main.py: unshuffled drop-last loaders, zipped: the same batches in the "
                "same order every epoch",
            ),
            "select_metric": select,
        },
        Value(Cadence(EPOCH), "MGFN main.py: test after every epoch, keep the best"),
        features,
        labels,
    )


def _build() -> dict[str, Recipe]:
    ucf_labels = Value(
        "ucf-i3d.list: the first 810 lines are abnormal (--abnormal-first 810)",
        "RTFM / MGFN dataset.py: list[:810] abnormal for UCF-Crime",
    )
    sh_labels = Value(
        "shanghai-i3d-train-10crop.list: the first 63 lines are abnormal (--abnormal-first 63)",
        "RTFM dataset.py: list[:63] abnormal; option.py default --rgb-list",
    )
    xd_labels = Value(
        "one line per crop file (5 per video), abnormal first; names with label_A are normal "
        "(--naming xd)",
        "MGFN dataset.py: list[:9525] abnormal for XD-Violence",
    )
    recipes = [
        _rtfm("rtfm-ucf", "UCF-Crime", ucf_labels),
        _rtfm("rtfm-sh", "ShanghaiTech", sh_labels),
        _mgfn(
            "mgfn-ucf",
            "UCF-Crime",
            steps=Value(
                50000,
                "MGFN option.py --max-epoch 1000 epochs x floor(800/16) = 50 steps (train.py "
                "zips the two drop-last loaders)",
            ),
            select=Value("roc_auc", "MGFN main.py keeps the best test AUC for UCF"),
            features=Value(
                dict(_R50_10), "MGFN option.py --feature_size 2048: RTFM's public UCF features"
            ),
            labels=ucf_labels,
        ),
        _mgfn(
            "mgfn-xd",
            "XD-Violence",
            steps=Value(
                595000,
                "MGFN option.py --max-epoch 1000 epochs x min(floor(10245/16), floor(9525/16)) "
                "= 595 steps of XD's crop-file list",
            ),
            select=Value(
                "pr_auc_trapezoid",
                "MGFN main.py keeps the best test PR AUC for XD (sklearn auc(recall, precision))",
            ),
            features=Value(
                {"crops": 1, "feature_dim": 1024, "backbone": None},
                "MGFN option.py --feature_size 1024 for XD: XD-Violence's public I3D features, "
                "each crop its own file",
            ),
            labels=xd_labels,
        ),
        _msip("msip-ucf", "UCF-Crime", ucf_labels),
        _msip("msip-sh", "ShanghaiTech", sh_labels),
    ]
    return {r.name: r for r in recipes}


RECIPES: dict[str, Recipe] = _build()

# the official cadence of each model's code, used by protocol="official" without a recipe
OFFICIAL_CADENCE: dict[str, Value] = {
    "rtfm": _rtfm_cadence(False),
    "msip": _rtfm_cadence(True),
    "mgfn": Value(Cadence(EPOCH), "MGFN main.py: test after every epoch, keep the best"),
}


def list_recipes() -> list[str]:
    return list(RECIPES)


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise VadkitError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    return RECIPES[name]


def official_cadence(model: str, recipe: str | None = None) -> Value:
    """The recipe's official cadence, else that of the model's own code."""
    if recipe is not None:
        return get_recipe(recipe).cadence
    if model not in OFFICIAL_CADENCE:
        raise VadkitError(
            f"model {model} has no official evaluation cadence; --protocol official is for "
            f"{', '.join(OFFICIAL_CADENCE)}"
        )
    return OFFICIAL_CADENCE[model]


__all__ = [
    "EPOCH",
    "OFFICIAL_CADENCE",
    "RECIPES",
    "RECIPE_FIELDS",
    "Cadence",
    "Recipe",
    "Value",
    "get_recipe",
    "list_recipes",
    "official_cadence",
]
