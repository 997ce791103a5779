"""Interim progress reporter for `extract` and `synth`, with the API of the shared
`vadkit.cli.progress.ProgressReporter` (label, totals, `describe`, `add_work`, `advance`,
`message`, `set_total`, `close`, `tty`, `quiet`) so that switching to it is one import line.

A Rich bar on stderr when stderr is a terminal; nothing otherwise, nothing when `quiet`.
"""

from __future__ import annotations

import sys
from typing import TextIO


class ProgressReporter:
    def __init__(
        self,
        label: str,
        total: int | None = None,
        unit: str = "items",
        *,
        work_total: int | None = None,
        work_unit: str | None = None,
        quiet: bool = False,
        stream: TextIO | None = None,
        tty: bool | None = None,
    ):
        self.label, self.unit, self.work_unit = label, unit, work_unit
        self.total, self.work_total = total, work_total
        self.quiet = quiet
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(self.stream.isatty()) if tty is None else tty
        self.done = self.work = 0
        self._bar = self._task = None
        if self.tty and not quiet:
            self._start_bar()

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def advance(self, n: int = 1, *, item: str | None = None, work: int = 0) -> None:
        self.done += n
        self.work += work
        self._refresh()

    def add_work(self, n: int) -> None:
        self.advance(0, work=n)

    def set_total(self, total: int | None = None, *, work_total: int | None = None) -> None:
        if total is not None:
            self.total = total
        if work_total is not None:
            self.work_total = work_total
        self._refresh()

    def describe(self, text: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=text[:40])

    def message(self, text: str) -> None:
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.console.print(text, highlight=False, soft_wrap=True, markup=False)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._refresh()
            self._bar.stop()
            self._bar = None

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[count]}"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(file=self.stream, force_terminal=True),
        )
        self._task = self._bar.add_task(self.label, total=None, count="", rate="")
        self._bar.start()

    def _refresh(self) -> None:
        if self._bar is None:
            return
        count = f"{self.done}/{self.total} {self.unit}" if self.total is not None else ""
        elapsed = self._bar.tasks[0].elapsed or 0.0
        rate = f"{self.work / elapsed:.2f} {self.work_unit}/s" if self.work_unit and elapsed else ""
        total, completed = (
            (self.work_total, self.work) if self.work_total else (self.total, self.done)
        )
        self._bar.update(self._task, total=total, completed=completed, count=count, rate=rate)
