"""Official RTFM / MGFN checkpoints → vadkit runs that `vadkit score` uses.

The authors publish their trained models as a `torch.save`d state dict under their own key names
(`.pkl` / `.pth`; RTFM's `main.py` and MGFN's save `model.state_dict()`). This module reads one
with `torch.load(..., weights_only=True)` only (plain tensors, no code is unpickled), unwraps a
`{"state_dict": ...}`-style wrapper and DataParallel's `module.` prefix, renames the keys with
the tables below, infers the model's sizes from the tensor shapes and writes a run directory.
Unknown or missing keys are an error that names them.

Key tables (`*` is the rest of the key; `{S}` a stage, `{L}` a layer, `{D}` the depth of stage
`{S}`, i.e. its number of layers): the first row that matches wins.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from vadkit.errors import VadkitError
from vadkit.io.features import SNIPPET_LENGTH
from vadkit.io.hashing import sha256_file
from vadkit.models import create_model

# Where each model's official code lives (recorded in the converted run).
OFFICIAL_CODE = {"rtfm": "tianyu0207/RTFM", "mgfn": "carolchenyx/MGFN."}

# official key → vadkit key
RTFM_KEYS: tuple[tuple[str, str], ...] = (
    ("Aggregate.non_local.W.0.*", "ctr.non_local.out.*"),
    ("Aggregate.non_local.W.1.*", "ctr.non_local.bn.*"),
    ("Aggregate.*", "ctr.*"),
    ("fc1.*", "classifier.1.*"),
    ("fc2.*", "classifier.4.*"),
    ("fc3.*", "classifier.7.*"),
)
MGFN_KEYS: tuple[tuple[str, str], ...] = (
    ("to_tokens.*", "to_tokens.*"),
    ("to_mag.*", "to_mag.*"),
    ("stages.{S}.0.layers.{L}.0.*", "layers.{S}.{L}.conv.*"),
    ("stages.{S}.0.layers.{L}.1.*", "layers.{S}.{L}.block.*"),
    ("stages.{S}.0.layers.{L}.2.*", "layers.{S}.{L}.ff.*"),
    ("stages.{S}.1.*", "layers.{S}.{D}.*"),
    ("to_logits.0.*", "norm.*"),
    ("fc.*", "fc.*"),
)
KEY_TABLES = {"rtfm": RTFM_KEYS, "mgfn": MGFN_KEYS}

# The features RTFM and MGFN were trained on: I3D-ResNet50, 10 crops, 2048-d, 16-frame snippets.
OFFICIAL_FEATURES: dict[str, Any] = {
    "backbone": "i3d-r50",
    "feature_dim": 2048,
    "crops": 10,
    "snippet_length": SNIPPET_LENGTH,
    "patch_grids": None,
}
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "state")
CONVERTED_NOTE = "converted from official checkpoint"


def _compile(pattern: str) -> re.Pattern[str]:
    rx = re.escape(pattern)
    for token, group in (("\\{S\\}", r"(?P<S>\d+)"), ("\\{L\\}", r"(?P<L>\d+)")):
        rx = rx.replace(token, group)
    return re.compile(rx.replace("\\*", r"(?P<rest>.+)") + "$")


_COMPILED = {m: [(_compile(a), b) for a, b in rows] for m, rows in KEY_TABLES.items()}


def map_key(name: str, model: str, depths: dict[int, int] | None = None) -> str | None:
    """The vadkit name of official key `name` of `model` (None when no table row matches).
    `depths` (stage → number of layers) places MGFN's between-stage projections."""
    for rx, template in _COMPILED[_check_model(model)]:
        m = rx.match(name)
        if m is None:
            continue
        g = m.groupdict()
        out = template.replace("*", g.get("rest", ""))
        if "S" in g:
            out = out.replace("{S}", g["S"])
        if "L" in g:
            out = out.replace("{L}", g["L"])
        if "{D}" in out:
            out = out.replace("{D}", str((depths or {}).get(int(g["S"]), 0)))
        return out
    return None


def _check_model(model: str) -> str:
    if model not in KEY_TABLES:
        raise VadkitError(f"no official checkpoint format for model {model!r}; choose rtfm or mgfn")
    return model


# ---------------------------------------------------------------- reading


def _load(path: Path) -> Any:
    if not path.is_file():
        raise VadkitError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise VadkitError(
            f"{path}: not a plain PyTorch state dict (read with weights_only=True: {first})"
        ) from None


def _is_state(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The state dict inside `obj`: itself, or under a usual wrapper key; `module.` stripped."""
    if not _is_state(obj) and isinstance(obj, dict):
        for key in WRAPPER_KEYS:
            if _is_state(obj.get(key)):
                obj = obj[key]
                break
    if not _is_state(obj):
        what = f"keys {sorted(map(str, obj))[:5]}" if isinstance(obj, dict) else type(obj).__name__
        raise VadkitError(f"{path}: no state dict of tensors found ({what})")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return dict(obj)


def _mgfn_depths(state: dict[str, torch.Tensor]) -> dict[int, int]:
    depths: dict[int, int] = {}
    for k in state:
        m = re.match(r"stages\.(\d+)\.0\.layers\.(\d+)\.", k)
        if m:
            s, layer = int(m.group(1)), int(m.group(2))
            depths[s] = max(depths.get(s, 0), layer + 1)
    return depths


def _shape(state: dict[str, torch.Tensor], key: str, path: Path) -> torch.Size:
    if key not in state:
        raise VadkitError(f"{path}: missing key {key} (needed to infer the model's sizes)")
    return state[key].shape


def infer_config(state: dict[str, torch.Tensor], model: str, path: Path) -> dict[str, Any]:
    """The vadkit constructor arguments that fit the official tensors' shapes."""
    if _check_model(model) == "rtfm":
        return {
            "feature_dim": int(_shape(state, "fc1.weight", path)[1]),
            "hidden": int(_shape(state, "Aggregate.conv_1.0.weight", path)[0]),
        }
    depths = _mgfn_depths(state)
    if not depths or sorted(depths) != list(range(len(depths))):
        raise VadkitError(f"{path}: no MGFN stages found (keys stages.S.0.layers.L.*)")
    stages = range(len(depths))
    dims = [int(_shape(state, f"stages.{s}.0.layers.0.0.weight", path)[0]) for s in stages]
    blocks = [
        "glance" if f"stages.{s}.0.layers.0.1.to_qkv.weight" in state else "focus" for s in stages
    ]
    config: dict[str, Any] = {
        "feature_dim": int(_shape(state, "to_tokens.weight", path)[1]),
        "dims": dims,
        "depths": [depths[s] for s in stages],
        "blocks": blocks,
        "ff_mult": int(_shape(state, "stages.0.0.layers.0.2.1.weight", path)[0]) // dims[0],
    }
    if "focus" in blocks:
        s = blocks.index("focus")
        heads, _, kernel = _shape(state, f"stages.{s}.0.layers.0.1.rel_pos.weight", path)
        config["dim_head"] = int(_shape(state, f"stages.{s}.0.layers.0.1.to_v.weight", path)[0])
        config["dim_head"] //= int(heads)
        config["kernel"] = int(kernel)
    return config


def _rename(
    state: dict[str, torch.Tensor], model: str, expected: dict[str, torch.Tensor], path: Path
) -> dict[str, torch.Tensor]:
    depths = _mgfn_depths(state) if model == "mgfn" else None
    out, unknown, wrong = {}, [], []
    for k, v in state.items():
        name = map_key(k, model, depths)
        if name is None or name not in expected:
            unknown.append(k)
        elif tuple(v.shape) != tuple(expected[name].shape):
            wrong.append(f"{k} {tuple(v.shape)} (vadkit {name} {tuple(expected[name].shape)})")
        else:
            out[name] = v.to(expected[name].dtype).contiguous()
    missing = sorted(set(expected) - set(out) - {map_key(k, model, depths) for k in state})
    problems = []
    if unknown:
        problems.append(f"unknown keys {', '.join(unknown[:8])}" + _more(unknown, 8))
    if missing:
        problems.append(f"missing keys (vadkit names) {', '.join(missing[:8])}" + _more(missing, 8))
    if wrong:
        problems.append(f"shapes that do not fit {'; '.join(wrong[:4])}" + _more(wrong, 4))
    if problems:
        raise VadkitError(f"{path}: not an official {model} checkpoint: " + "; ".join(problems))
    return out


def _more(items: list, shown: int) -> str:
    return f" (and {len(items) - shown} more)" if len(items) > shown else ""


def read_official_checkpoint(
    path: str | os.PathLike, model: str
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """`(vadkit state dict, constructor arguments)` of an official RTFM or MGFN checkpoint.

    Floating tensors come back in float32 (vadkit's dtype), counters as int64."""
    p = Path(path)
    _check_model(model)
    state = _unwrap(_load(p), p)
    config = infer_config(state, model, p)
    with torch.device("meta"):  # names, shapes and dtypes only: no memory, no initialisation
        expected = create_model(model, **config).state_dict()
    return _rename(state, model, expected, p), config


# ---------------------------------------------------------------- writing a run


def feature_spec(config: dict[str, Any], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """RTFM/MGFN's feature layout with `feature_dim` from the weights and `overrides` applied
    (None values ignored); a `feature_dim` override must agree with the weights."""
    spec = {**OFFICIAL_FEATURES, "feature_dim": config["feature_dim"]}
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in spec:
            raise VadkitError(f"unknown feature-spec field {key!r}; use one of {', '.join(spec)}")
        spec[key] = value
    if spec["feature_dim"] != config["feature_dim"]:
        raise VadkitError(
            f"--feature-dim {spec['feature_dim']} does not fit the checkpoint, whose weights "
            f"take {config['feature_dim']}-d features"
        )
    return spec


def convert_run(
    path: str | os.PathLike,
    model: str,
    out: str | os.PathLike,
    features: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the run `OUT/best.safetensors` (what `vadkit score` reads by default) from official
    checkpoint `path`; `features` overrides the feature spec (backbone, crops, feature_dim,
    snippet_length; None values are ignored). Returns the checkpoint metadata."""
    from vadkit.io.checkpoint import save_checkpoint

    src = Path(path).resolve()
    state, config = read_official_checkpoint(src, model)
    net = create_model(model, **config)
    net.load_state_dict(state)
    n_params = sum(p.numel() for p in net.parameters())
    meta = {
        "model": model,
        "model_args": net.config,
        "stage": 1,
        "feature_spec": feature_spec(config, features),
        "extraction": None,
        "train_config": None,
        "trainable_parameters": n_params,
        "parameters": n_params,
        "step": None,
        "metrics": None,
        "source": {
            "file": str(src),
            "sha256": sha256_file(src),
            "official_code": OFFICIAL_CODE[model],
            "note": CONVERTED_NOTE,
        },
    }
    run = Path(out)
    if run.exists() and not run.is_dir():
        raise VadkitError(f"{run}: exists and is not a directory")
    run.mkdir(parents=True, exist_ok=True)
    save_checkpoint(run / "best.safetensors", net, meta)
    return meta


__all__ = [
    "KEY_TABLES",
    "MGFN_KEYS",
    "OFFICIAL_FEATURES",
    "RTFM_KEYS",
    "convert_run",
    "feature_spec",
    "infer_config",
    "map_key",
    "read_official_checkpoint",
]
