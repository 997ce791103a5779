"""Model registry (timm / torchvision style): `register_model`, `list_models`, `create_model`.

The registry is lazy: the built-in names map to the module that defines them, imported on first
use, so `list_models()` (and the model choices of `vadkit --help`) never import torch. A model
defined anywhere else registers itself with `@register_model` when its module is imported.

What a model is — its config dataclass, inputs, stages, minimum snippet count — is written down
in `vadkit.models.common.VadModel`. Tests are parametrised over `list_models()` with each
model's own `tiny_config()`, so a newly registered model is tested the moment it exists.
"""

from __future__ import annotations

import importlib
from typing import Any

from vadkit.errors import VadkitError

# built-in model name -> the module that registers it
BUILTIN_MODELS = {
    "mgfn": "vadkit.models.mgfn",
    "i3d-lstm": "vadkit.models.i3d_lstm",
    "msip": "vadkit.models.msip",
    "rtfm": "vadkit.models.rtfm",
}
# forms of the sparsity / smoothness regularisers (`vadkit.models.common.sparsity`)
# Loss variants by name: the sparsity/smoothness forms of each source (every model accepts every
# variant; each model defaults to its own source's). One line each for `--help` and man pages.
# Here (torch-free) so the CLI lists them without importing torch; the forms are in common.py.
LOSS_VARIANTS: dict[str, str] = {
    "rtfm": "RTFM's code: L2 sparsity of all abnormal scores, smoothness across the flattened "
    "abnormal batch",
    "mgfn": "MGFN's code as published with the paper (ded0ef6): RTFM's forms on the abnormal half",
    "mgfn-current": "MGFN's code since a6588e1 (third-party): L2 sparsity of the normal scores, "
    "smoothness within each of all 2B videos",
    "msip": "the MSIP paper: L1 sparsity sum and smoothness per abnormal video, averaged",
}
# Older names that stay accepted.
LOSS_ALIASES: dict[str, str] = {"rtfm-code": "rtfm"}
# Every name `loss=` accepts (variants first, then aliases).
LOSS_NAMES: tuple[str, ...] = (*LOSS_VARIANTS, *LOSS_ALIASES)

_MODELS: dict[str, type] = {}


def register_model(cls: type) -> type:
    """Class decorator: make `cls` available to `create_model(cls.name)`.

    A name can be registered once: a second class under a taken name (a built-in one included)
    is an error, not a silent replacement."""
    name = getattr(cls, "name", "")
    if not name:
        raise ValueError(f"{cls.__name__} needs a non-empty `name` to be registered")
    taken = _MODELS.get(name)
    builtin = BUILTIN_MODELS.get(name)
    if (taken is not None and taken is not cls) or (builtin and cls.__module__ != builtin):
        where = taken.__module__ if taken is not None else builtin
        raise ValueError(f"model name {name!r} is already registered (by {where})")
    _MODELS[name] = cls
    return cls


def unregister_model(name: str) -> None:
    """Forget a model registered by `register_model` (a throw-away model of a test)."""
    if name in BUILTIN_MODELS:
        raise ValueError(f"{name!r} is a built-in model")
    _MODELS.pop(name, None)


def list_models() -> list[str]:
    """Names of every model: the built-in ones and those registered so far (no torch import)."""
    return sorted(set(BUILTIN_MODELS) | set(_MODELS))


def model_class(name: str) -> type:
    if name not in _MODELS and name in BUILTIN_MODELS:
        importlib.import_module(BUILTIN_MODELS[name])
    if name not in _MODELS:
        raise VadkitError(f"unknown model {name!r}; choose one of {', '.join(list_models())}")
    return _MODELS[name]


def create_model(name: str, **kwargs: Any):
    """Build registered model `name` from keyword arguments (its checkpoint `model_args`).

    The arguments are checked against the model's config dataclass first: an unknown name, a
    wrong type or a bad value is a VadkitError naming it. Errors raised while the model itself
    is being built are not relabelled."""
    cls = model_class(name)
    return cls(cls.make_config(**kwargs))


__all__ = [
    "BUILTIN_MODELS",
    "LOSS_ALIASES",
    "LOSS_NAMES",
    "LOSS_VARIANTS",
    "create_model",
    "list_models",
    "model_class",
    "register_model",
    "unregister_model",
]
