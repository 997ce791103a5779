"""vadkit: weakly-supervised video anomaly detection from videos to per-frame scores.

The public API, imported on first use (`import vadkit` stays light; torch loads only with the
function that needs it)::

    import vadkit

    cfg = vadkit.TrainConfig(model="rtfm", train="train.csv", features="feats", out="runs/rtfm",
                             val="val.csv", annotations="annotations.csv", steps=500)
    result = vadkit.train(cfg)
    run = vadkit.load_run(result.out)
    ...
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    "extract_videos": "vadkit.extract",
    "ExtractOptions": "vadkit.extract",
    "train": "vadkit.train",
    "TrainConfig": "vadkit.train_config",
    "load_run": "vadkit.score",
    "resolve_inputs": "vadkit.score",
    "score_to_dir": "vadkit.score",
    "evaluate": "vadkit.metrics",
    "read_annotations": "vadkit.io.annotations",
    "create_model": "vadkit.models",
    "list_models": "vadkit.models",
    "register_model": "vadkit.models",
    "VadkitError": "vadkit.errors",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'vadkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
