"""A training run's files, written so that a kill at any moment resumes exactly.

The run's resumable state is ONE file, `state.pt`, replaced atomically: the weights, optimizer,
RNG states, step, the loss sums since the last log line, every log record, the best checkpoint
so far (its weights and record) and the run id of `config.json`. Everything else is an export
of that state, rewritten from it on `--resume`:

- `log.jsonl`: the records, one JSON line per evaluation;
- `last.safetensors`: the weights at the saved step (for scoring);
- `best.safetensors`: the weights with the best validation ROC AUC (`last` without validation).

The state is written first, the exports after it; a kill between any two writes leaves a
state that `--resume` continues from to the same weights and log as an uninterrupted run.
The state is loaded with `weights_only=True` (no pickled code runs) and checked against the
content digest it records and against the run id of the run directory it is in.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from vadkit.errors import VadkitError
from vadkit.io.atomic import atomic_path, save_json, save_text
from vadkit.io.checkpoint import save_checkpoint, state_of

STATE_FILE = "state.pt"
LEGACY_STATE_FILE = "last.state.pt"
# Test hook: SIGKILL this process right after its Nth file write of a run (kill-window tests).
KILL_AFTER_WRITES_ENV = "VADKIT_TEST_KILL_AFTER_WRITES"


@dataclass
class Progress:
    """Where the loop is; all of it goes into the state file."""

    step: int = 0
    sums: dict[str, float] = field(default_factory=dict)  # loss parts since the last log line
    count: int = 0  # steps summed in `sums`
    records: list[dict[str, Any]] = field(default_factory=list)  # the log lines so far
    best_step: int | None = None
    best_record: dict[str, Any] | None = None
    seconds: float = 0.0  # training time before this process

    @property
    def best_roc_auc(self) -> float | None:
        return None if self.best_record is None else self.best_record["roc_auc"]

    @property
    def last_record(self) -> dict[str, Any] | None:
        return self.records[-1] if self.records else None

    def add(self, loss: float, parts: dict[str, float]) -> None:
        self.sums["total"] = self.sums.get("total", 0.0) + loss
        for k, v in parts.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.count += 1

    def take_means(self) -> dict[str, float]:
        means = {k: v / self.count for k, v in self.sums.items()} if self.count else {}
        self.sums, self.count = {}, 0
        return means


class Checkpointer:
    """Writes (rank 0 only) and restores the files of run directory `out`."""

    def __init__(self, out: Path, *, run_id: str, meta: dict[str, Any], main: bool = True):
        self.out = out
        self.run_id = run_id
        self.meta = meta  # what every exported checkpoint records besides step and metrics
        self.main = main
        self.best_weights: dict[str, torch.Tensor] | None = None
        self._writes = 0
        self._kill_after = int(os.environ.get(KILL_AFTER_WRITES_ENV, "0") or 0)

    # ------------------------------------------------------------------ writing

    def _write(self, path: Path, writer: Callable[[Path], None]) -> None:
        try:
            writer(path)
        except OSError as e:
            raise VadkitError(
                f"{path}: cannot write ({e.strerror or e}); the run so far is kept and "
                f"continues with: vadkit train --resume -o {self.out}"
            ) from None
        self._writes += 1
        if self._writes == self._kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    def write_config(self, config: dict[str, Any]) -> None:
        if self.main:
            self._write(self.out / "config.json", lambda p: save_json(p, config))

    def save(self, model: torch.nn.Module, optimizer, generator, progress: Progress) -> None:
        """Replace the state, then the exports (best only when this step is the best)."""
        if not self.main:
            return
        weights = state_of(model)
        new_best = progress.best_step == progress.step and progress.best_record is not None
        if new_best:  # a copy: `weights` may share memory with the parameters (CPU)
            self.best_weights = {k: v.clone() for k, v in weights.items()}
        obj = _state_object(self.run_id, weights, optimizer, generator, progress, self.best_weights)
        self._write(self.out / STATE_FILE, lambda p: _save_state(p, obj))
        self._export(weights, progress, best=new_best)

    def _export(self, weights: dict, progress: Progress, *, best: bool) -> None:
        lines = "".join(json.dumps(r) + "\n" for r in progress.records)
        self._write(self.out / "log.jsonl", lambda p: save_text(p, lines))
        self._export_weights("last", weights, progress.step, progress.last_record)
        if best and self.best_weights is not None:
            self._export_weights(
                "best", self.best_weights, progress.best_step, progress.best_record
            )

    def _export_weights(self, name: str, weights: dict, step: int | None, record: Any) -> None:
        meta = {**self.meta, "step": step, "metrics": record}
        self._write(self.out / f"{name}.safetensors", lambda p: save_checkpoint(p, weights, meta))

    def finish(self, model: torch.nn.Module, progress: Progress) -> None:
        """Without validation `best` is the last checkpoint."""
        if self.main and progress.best_record is None:
            self._export_weights("best", state_of(model), progress.step, progress.last_record)

    # ------------------------------------------------------------------ resuming

    def restore(self, model: torch.nn.Module, optimizer, generator) -> Progress | None:
        """Load the saved state into `model`, `optimizer`, the RNGs; rewrite the exports from
        it. None when the run was cut before its first save (it starts from step 0)."""
        path = self.out / STATE_FILE
        if not path.exists():
            if (self.out / LEGACY_STATE_FILE).exists():
                raise VadkitError(
                    f"{self.out}: written by an older vadkit whose resumable state "
                    f"({LEGACY_STATE_FILE}) this version does not continue; its checkpoints "
                    "still score, or start a new run"
                )
            return None
        obj = _load_state(path, self.run_id)
        try:
            model.load_state_dict(obj["model"])
            optimizer.load_state_dict(obj["optimizer"])
            torch.set_rng_state(obj["torch_rng"])
            generator.set_state(obj["sampler_rng"])
            if obj["cuda_rng"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(obj["cuda_rng"])
            progress = Progress(**obj["progress"])
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise VadkitError(f"{path}: training state does not fit this run ({e})") from None
        self.best_weights = obj["best_model"]
        if self.main:
            self._export(state_of(model), progress, best=True)
        return progress


def _state_object(run_id, weights, optimizer, generator, progress, best) -> dict[str, Any]:
    obj = {
        "run_id": run_id,
        "model": weights,
        "best_model": best,
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "sampler_rng": generator.get_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "progress": asdict(progress),
    }
    obj["digest"] = _digest(obj)
    return obj


def _save_state(path: Path, obj: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _load_state(path: Path, run_id: str) -> dict[str, Any]:
    try:
        with warnings.catch_warnings():  # torch warns about odd pickles, naming weights_only
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch's messages suggest turning weights_only off: never pass that on
        raise VadkitError(
            f"{path}: damaged training state (not a readable vadkit state file); the run "
            "cannot be resumed, but its last.safetensors and best.safetensors still score"
        ) from None
    if not isinstance(obj, dict) or obj.get("digest") != _digest(obj):
        raise VadkitError(
            f"{path}: damaged training state (its content does not match the digest recorded "
            "when it was written); the run cannot be resumed"
        )
    if obj.get("run_id") != run_id:
        raise VadkitError(
            f"{path}: this training state belongs to another run (run id {obj.get('run_id')}, "
            f"config.json says {run_id}); it was copied here from elsewhere"
        )
    return obj


def _digest(obj: Any) -> str:
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in obj.items() if k != "digest"} if isinstance(obj, dict) else obj)
    return h.hexdigest()


def _feed(h, obj: Any) -> None:
    """Hash `obj` (dicts, lists, tensors, scalars) by content."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().to("cpu").contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(b"{")
        for k in sorted(obj, key=str):
            h.update(repr(k).encode())
            _feed(h, obj[k])
        h.update(b"}")
    elif isinstance(obj, list | tuple):
        h.update(b"[")
        for v in obj:
            _feed(h, v)
        h.update(b"]")
    elif isinstance(obj, float) and math.isnan(obj):
        h.update(b"nan")
    else:
        h.update(repr(obj).encode())


__all__ = ["KILL_AFTER_WRITES_ENV", "STATE_FILE", "Checkpointer", "Progress"]
