"""Where tensors run: one parser of `--device` for every command.

`auto` picks the GPU of this process (under torchrun, the one of its `LOCAL_RANK`), else Apple's
`mps`, else the CPU; it says once on stderr when a GPU machine has a CPU-only torch. Explicit
names are `cpu`, `cuda`, `cuda:N` and `mps`; asking for a device this machine lacks is an error.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import TYPE_CHECKING

from vadkit.errors import VadkitError

if TYPE_CHECKING:  # torch is imported on first use: the CLI reads DEVICE_HELP torch-free
    import torch

DEVICE_HELP = "auto|cpu|cuda|cuda:N|mps (auto: this process's GPU if any, else the CPU)."

_warned = False


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _warn_cpu_only_torch() -> None:
    """A machine with an NVIDIA driver but a CPU build of torch runs on the CPU: say so once."""
    global _warned
    import torch

    if _warned or torch.version.cuda is not None or shutil.which("nvidia-smi") is None:
        return
    _warned = True
    print(
        "vadkit: this machine has an NVIDIA GPU but torch is a CPU-only build; running on the "
        "CPU (install a CUDA build of torch to use the GPU)",
        file=sys.stderr,
    )


def resolve_device(name: str = "auto") -> torch.device:
    """`auto`, `cpu`, `cuda`, `cuda:N` or `mps` → a `torch.device` that exists here."""
    import torch

    name = str(name).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", "0"))
            return torch.device("cuda", local % torch.cuda.device_count())
        if _mps_available():
            return torch.device("mps")
        _warn_cpu_only_torch()
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not _mps_available():
            raise VadkitError("--device mps but this torch has no MPS (Apple GPU) support; use cpu")
        return torch.device("mps")
    if name == "cuda" or name.startswith("cuda:"):
        return _cuda(name)
    raise VadkitError(f"unknown device {name!r}; choose auto, cpu, cuda, cuda:N or mps")


def _cuda(name: str) -> torch.device:
    import torch

    index = None
    if name != "cuda":
        text = name.partition(":")[2]
        if not text.isdigit():
            raise VadkitError(f"unknown device {name!r}; a GPU is cuda or cuda:N (N = 0, 1, …)")
        index = int(text)
    if not torch.cuda.is_available():
        raise VadkitError(f"--device {name} but no CUDA device is available; use --device cpu")
    count = torch.cuda.device_count()
    if index is not None and index >= count:
        raise VadkitError(f"--device {name} but this machine has {count} CUDA device(s)")
    return torch.device("cuda", index) if index is not None else torch.device("cuda")


__all__ = ["DEVICE_HELP", "resolve_device"]
