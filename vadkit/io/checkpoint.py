"""Checkpoint files: a model's weights as safetensors with a JSON description of what built them.

The safetensors metadata key `vadkit` holds a JSON object: `format` ("vadkit.checkpoint"),
`vadkit_version`, `model` and `model_args` (the model's config), `feature_spec`, `stage`,
`step`, `train_config`, ... and `tensors_sha256`, a content hash of every tensor (name, dtype,
shape, bytes) recorded when the file is written and verified when it is read: a damaged file is
refused instead of silently scoring garbage. Files written before the hash existed still load.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from vadkit import __version__
from vadkit.errors import VadkitError
from vadkit.io.atomic import atomic_path

CHECKPOINT_FORMAT = "vadkit.checkpoint"
REQUIRED_KEYS = ("model", "model_args")


def tensors_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def state_of(model_or_state: torch.nn.Module | Mapping[str, torch.Tensor]) -> dict:
    state = (
        model_or_state.state_dict()
        if isinstance(model_or_state, torch.nn.Module)
        else model_or_state
    )
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def save_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module | Mapping[str, torch.Tensor],
    meta: dict[str, Any],
) -> None:
    """Weights (and BN statistics) of `model` (or a state dict) with `meta`; atomic, and with
    the file mode every other artifact gets (the umask's)."""
    state = state_of(model)
    info = {
        "format": CHECKPOINT_FORMAT,
        "vadkit_version": __version__,
        **meta,
        "tensors_sha256": tensors_sha256(state),
    }
    data = save_bytes(state, metadata={"vadkit": json.dumps(info)})
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """`(state dict, metadata)` of a checkpoint; anything damaged or foreign is a VadkitError."""
    p = Path(path)
    if not p.is_file():
        raise VadkitError(f"{p}: checkpoint not found")
    try:
        data = p.read_bytes()
        state = load_bytes(data)
        raw = _metadata(data)
        meta = json.loads(raw) if raw is not None else None
    except (SafetensorError, OSError, ValueError, UnicodeDecodeError, AttributeError) as e:
        raise VadkitError(f"{p}: unreadable checkpoint ({e})") from None
    if meta is None:
        raise VadkitError(f"{p}: not a vadkit checkpoint (no 'vadkit' metadata)")
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise VadkitError(f"{p}: not a vadkit checkpoint (format {got!r})")
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise VadkitError(f"{p}: incomplete checkpoint metadata (missing {', '.join(missing)})")
    bad = _meta_problem(meta)
    if bad:
        raise VadkitError(f"{p}: malformed checkpoint metadata: {bad}")
    want = meta.get("tensors_sha256")
    if want is not None and tensors_sha256(state) != want:
        raise VadkitError(
            f"{p}: damaged checkpoint (its weights do not match the content hash recorded when "
            "it was written); copy it again or retrain"
        )
    return state, meta


def _meta_problem(meta: dict[str, Any]) -> str | None:
    """What in a checkpoint's metadata has the wrong type (first one), or None."""
    checks = (
        ("model", lambda v: isinstance(v, str), "a string"),
        ("model_args", lambda v: isinstance(v, dict), "a JSON object"),
        ("stage", lambda v: v in (1, 2) and not isinstance(v, bool), "1 or 2"),
        # null: a checkpoint that no vadkit run trained (`vadkit convert` of an official one)
        (
            "step",
            lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)),
            "an integer or null",
        ),
        ("feature_spec", lambda v: v is None or isinstance(v, dict), "a JSON object"),
        ("extraction", lambda v: v is None or isinstance(v, dict), "a JSON object"),
        ("tensors_sha256", lambda v: v is None or isinstance(v, str), "a string"),
    )
    for key, ok, what in checks:
        if key in meta and not ok(meta[key]):
            return f"{key} must be {what}, got {meta[key]!r}"
    return None


def _metadata(data: bytes) -> str | None:
    """The `vadkit` metadata string of safetensors bytes (8-byte header length, JSON header)."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    raw = (header.get("__metadata__") or {}).get("vadkit")
    if raw is not None and not isinstance(raw, str):
        raise ValueError("its 'vadkit' metadata is not a string")
    return raw


__all__ = ["CHECKPOINT_FORMAT", "read_checkpoint", "save_checkpoint", "tensors_sha256"]
