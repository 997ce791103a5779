"""`vadkit train --tensorboard DIR`: the training loop's events as TensorBoard scalars.

Written only when the `tensorboard` package is installed (vadkit does not depend on it; torch's
`torch.utils.tensorboard` writer needs it). Scalars, by global step:

- `loss/<part>` every step: the total and each part the model's loss reports;
- `lr` every step: the optimizer's learning rate;
- `val/roc_auc`, `val/average_precision` at every evaluation with a validation list.

A resumed run appends to the same directory (TensorBoard shows the steps it repeats, if any,
as a second curve over the first).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vadkit.errors import VadkitError

INSTALL_HINT = "pip install tensorboard"


def open_writer(directory: str | Path) -> Any:
    """A `SummaryWriter` on `directory`, or a VadkitError saying how to get one."""
    try:
        import tensorboard  # noqa: F401  (torch's writer imports it lazily and fails late)
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise VadkitError(
            f"--tensorboard needs the tensorboard package, which is not installed: "
            f"{INSTALL_HINT} (or leave out --tensorboard: log.jsonl records the losses and metrics per evaluation)"
        ) from None
    return SummaryWriter(log_dir=str(directory))


class TensorBoardCallback:
    """Call with each training `Event`; `close()` flushes the event file."""

    def __init__(self, writer: Any):
        self.writer = writer

    def __call__(self, event: Any) -> None:
        if event.kind == "step":
            for name, value in (event.losses or {}).items():
                self.writer.add_scalar(f"loss/{name}", value, event.step)
            if event.lr is not None:
                self.writer.add_scalar("lr", event.lr, event.step)
        elif event.kind == "eval":
            record = event.record or {}
            for key in ("roc_auc", "average_precision"):
                if record.get(key) is not None:
                    self.writer.add_scalar(f"val/{key}", record[key], event.step)
            self.writer.flush()

    def close(self) -> None:
        self.writer.close()
