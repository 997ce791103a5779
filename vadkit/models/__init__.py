"""Model registry (timm / torchvision style): `register_model`, `list_models`, `create_model`.

Each model file registers its classes at the bottom; tests are parametrised over `list_models()`
so a newly registered model is tested the moment it exists.
"""

from __future__ import annotations

from typing import Any

from vadkit.errors import VadkitError

_MODELS: dict[str, type] = {}


def register_model(cls: type) -> type:
    """Class decorator: make `cls` available to `create_model(cls.name)`."""
    if not getattr(cls, "name", ""):
        raise ValueError(f"{cls.__name__} needs a non-empty `name` to be registered")
    _MODELS[cls.name] = cls
    return cls


def list_models() -> list[str]:
    return sorted(_MODELS)


def model_class(name: str) -> type:
    if name not in _MODELS:
        raise VadkitError(f"unknown model {name!r}; choose one of {', '.join(list_models())}")
    return _MODELS[name]


def create_model(name: str, **kwargs: Any):
    """Build registered model `name` with keyword arguments (its checkpoint `config`)."""
    cls = model_class(name)
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise VadkitError(f"model {name}: bad arguments {kwargs} ({e})") from None


from vadkit.models import mgfn, msip, rtfm  # noqa: E402,F401  (register the models)

__all__ = ["create_model", "list_models", "model_class", "register_model"]
