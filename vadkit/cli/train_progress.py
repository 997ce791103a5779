"""What `vadkit train` shows while it runs, drawn from the training loop's events.

Everything goes to stderr through the shared `ProgressReporter`: a bar on a terminal, else a
plain line every `interval` seconds (10 by default; `VADKIT_PROGRESS_INTERVAL` overrides it),
such as

    load features: 96/128 videos, 12 s elapsed, ~4 s left
    train: 120/500 steps, 45 s elapsed, ~140 s left, loss 0.8312, val AUC 0.9120

(the loading line only when loading takes longer than one interval). Each evaluation is one
line (`train: step 200/500: val ROC AUC 0.9120, AP 0.8011, loss 0.8312`), each note of the
loop one `note: …` line. `quiet` prints none of it except the notes,
which say something about the run itself (sampling with replacement, no validation list).
Nothing here imports torch.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from typing import Any

from vadkit.cli.progress import ProgressReporter

INTERVAL_ENV = "VADKIT_PROGRESS_INTERVAL"
RECENT_STEPS = 20  # the loss shown is the mean of this many latest steps


def progress_interval(default: float = 10.0) -> float:
    """Seconds between plain progress lines: `VADKIT_PROGRESS_INTERVAL`, else `default`."""
    raw = os.environ.get(INTERVAL_ENV)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        return default
    return value if value >= 0 else default


class _StepReporter(ProgressReporter):
    """The shared reporter, its lines ending with the recent loss and the last val AUC."""

    info = ""

    def line(self, item: str | None = None, *, final: bool = False) -> str:
        text = super().line(item, final=final)
        return f"{text}, {self.info}" if self.info else text


class TrainDisplay:
    """A callback for `vadkit.train.train`: call it with each `Event`; `close()` at the end."""

    def __init__(
        self,
        *,
        quiet: bool = False,
        interval: float | None = None,
        stream=None,
        settings: str | None = None,
    ):
        self.quiet = quiet
        self.settings = settings  # the effective values, printed once when the run starts
        self.interval = progress_interval() if interval is None else interval
        self.stream = stream if stream is not None else sys.stderr
        self.loading: ProgressReporter | None = None
        self.training: _StepReporter | None = None
        self.losses: deque[float] = deque(maxlen=RECENT_STEPS)
        self.auc: float | None = None

    def __call__(self, event: Any) -> None:
        handler = getattr(self, f"_on_{event.kind}", None)
        if handler is not None:
            handler(event)

    def close(self, *, failed: bool = False) -> None:
        """End the display; `failed`: without a final line, so an error stays the one line."""
        for reporter in (self.loading, self.training):
            if reporter is not None:
                if failed:
                    reporter.quiet = True  # a bar still stops; no closing plain line
                reporter.close()

    # ---------------------------------------------------------------------------- events

    def _on_start(self, event: Any) -> None:
        if self.settings:
            self._say(self.settings)

    def _on_note(self, event: Any) -> None:
        self._say(f"note: {event.message}", always=True)

    def _on_load(self, event: Any) -> None:
        if self.loading is None:
            self.loading = self._reporter(ProgressReporter, "load features", event.steps, "videos")
        self.loading.advance(event.step - self.loading.done)
        if event.step >= event.steps:
            self._end_loading()

    def _on_step(self, event: Any) -> None:
        reporter = self._training(event)
        if event.loss is not None:
            self.losses.append(event.loss)
        reporter.info = self._info()
        reporter.describe(f"train {reporter.info}")
        reporter.advance(event.step - reporter.done)

    def _on_eval(self, event: Any) -> None:
        record = event.record or {}
        if record.get("roc_auc") is not None:
            self.auc = record["roc_auc"]
        self._training(event).info = self._info()
        parts = [f"train: step {event.step}/{event.steps}:"]
        if record.get("roc_auc") is not None:
            ap = record.get("average_precision")
            parts.append(f"val ROC AUC {record['roc_auc']:.4f}, AP {ap:.4f},")
        total = (record.get("loss") or {}).get("total")
        parts.append("no loss yet" if total is None else f"loss {total:.4f}")
        self._say(" ".join(parts))

    # ---------------------------------------------------------------------------- helpers

    def _training(self, event: Any) -> _StepReporter:
        if self.training is None:
            self._end_loading()
            # a resumed run starts at its saved step: counted, not in the rate
            start = event.step - 1 if event.kind == "step" else event.step
            self.training = self._reporter(
                _StepReporter, "train", event.steps, "steps", initial=max(start, 0)
            )
        return self.training

    def _end_loading(self) -> None:
        """Close the loading display; a load shorter than one interval leaves no line."""
        loading = self.loading
        if loading is None:
            return
        if not loading.tty and loading.elapsed() < loading.interval:
            loading.quiet = True
        loading.close()

    def _reporter(self, cls: type, label: str, total: int, unit: str, **kw: Any):
        return cls(
            label, total, unit, quiet=self.quiet, interval=self.interval, stream=self.stream, **kw
        )

    def _info(self) -> str:
        parts = []
        if self.losses:
            parts.append(f"loss {sum(self.losses) / len(self.losses):.4f}")
        if self.auc is not None:
            parts.append(f"val AUC {self.auc:.4f}")
        return ", ".join(parts)

    def _say(self, text: str, *, always: bool = False) -> None:
        """One line above the bar (or plain); quiet drops it unless `always`."""
        current = self.training or self.loading
        if current is not None and not current.quiet:
            current.message(text)
        elif always or not self.quiet:
            print(text, file=self.stream, flush=True)
