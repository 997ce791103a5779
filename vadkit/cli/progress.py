"""One progress reporter for every long-running command, on stderr only.

On a terminal it draws a Rich bar; when stderr is not a terminal (a log file, a pipe, a batch
job) it prints a plain line every `interval` seconds, and at the end, such as

    extract: 12/48 videos, 95 s elapsed, ~280 s left (3.10 snippets/s)

With `per_item=True` it also prints a line for every finished item (`extract: 13/48 videos,
video_013, 99 s elapsed, ~270 s left`). `quiet=True` prints nothing at all (the command's
`--quiet`). Results (tables, JSON, paths) belong on stdout and never go through here.

Usage in a command body::

    from vadkit.cli.progress import ProgressReporter

    with ProgressReporter("extract", total=len(videos), unit="videos",
                          work_total=snippet_estimate, work_unit="snippets",
                          quiet=quiet) as progress:
        for video in videos:
            progress.describe(video.name)          # shown in the bar
            for batch in ...:
                progress.add_work(len(batch))      # snippets: rate and time left
            progress.advance(item=video.name)      # one video finished
            if failed:
                progress.message(f"failed {video}: {err}")   # a line above the bar

API (all methods are cheap no-ops when `quiet`):

- `ProgressReporter(label, total=None, unit="items", *, work_total=None, work_unit=None,
  initial=0, quiet=False, interval=10.0, per_item=False, stream=None, tty=None,
  clock=time.monotonic)`: `total` items of `unit` (None: unknown, no time left shown).
  `work_total`/`work_unit`: a finer measure of the work (snippets, frames) that the rate and
  the time left are computed from when given; else they come from the items. `initial`: items
  already done before this run (a resumed training run's steps): counted, not in the rate. `stream` defaults to `sys.stderr`; `tty` overrides
  terminal detection; `clock` is for tests.
- `advance(n=1, *, item=None, work=0)`: `n` more items finished (`item` names the last one);
  `work` more units of work done.
- `add_work(n)`: work done inside the current item (no item finished).
- `set_total(total=None, *, work_total=None)`: the totals once known or corrected.
- `describe(text)`: what is being worked on now (the bar's description; not printed in lines).
- `message(text)`: one line on stderr, printed above the bar on a terminal.
- `close()` (or leaving the `with` block): a final plain line (non-terminal) or the bar's end.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["ExtractionDisplay", "ProgressReporter", "format_seconds"]


def format_seconds(seconds: float) -> str:
    """`95 s`, `12 min`, `3.4 h`: short and plain for progress lines."""
    seconds = max(0.0, seconds)
    if seconds < 600:
        return f"{seconds:.0f} s"
    if seconds < 36_000:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class ProgressReporter:
    """Progress of one command on stderr: a Rich bar on a terminal, else plain timed lines."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        unit: str = "items",
        *,
        work_total: int | None = None,
        work_unit: str | None = None,
        initial: int = 0,
        quiet: bool = False,
        interval: float = 10.0,
        per_item: bool = False,
        stream: TextIO | None = None,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.label, self.unit, self.work_unit = label, unit, work_unit
        self.total, self.work_total = total, work_total
        self.quiet, self.interval, self.per_item = quiet, interval, per_item
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.done = self.initial = initial
        self.work = 0
        self.start = clock()
        self._last_line = self.start
        self._closed = False
        self._bar = None
        self._task = None
        if tty is None:
            tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.tty = tty
        if tty and not quiet:
            self._start_bar()

    # ---------------------------------------------------------------------------- public API

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        # leaving on an error: its one `Error:` line says what happened, no "stopped" line first
        self.close(final_line=exc_type is None)

    def advance(self, n: int = 1, *, item: str | None = None, work: int = 0) -> None:
        """`n` more items finished (the last one named `item`), `work` more units of work."""
        self.done += n
        self.work += work
        if self.quiet:
            return
        if self._bar is not None:
            self._refresh_bar()
        elif self.per_item and n:
            self._print_line(item)
        else:
            self._maybe_line()

    def add_work(self, n: int) -> None:
        """Work done within the current item (no item finished yet)."""
        self.advance(0, work=n)

    def set_total(self, total: int | None = None, *, work_total: int | None = None) -> None:
        if total is not None:
            self.total = total
        if work_total is not None:
            self.work_total = work_total
        if self._bar is not None:
            self._refresh_bar()

    def describe(self, text: str) -> None:
        """What is being worked on now: the bar's description (plain lines keep the label)."""
        if self._bar is not None:
            self._bar.update(self._task, description=text[:40])

    def message(self, text: str) -> None:
        """One line on stderr (above the bar on a terminal); nothing when quiet."""
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.console.print(text, highlight=False, soft_wrap=True, markup=False)
        else:
            print(text, file=self.stream, flush=True)

    def close(self, *, final_line: bool = True) -> None:
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._refresh_bar()
            self._bar.stop()
        elif not self.quiet and final_line:
            self._print_line(None, final=True)

    # ------------------------------------------------------------------------------- the line

    def elapsed(self) -> float:
        return self.clock() - self.start

    def remaining(self) -> float | None:
        """Seconds left, from the work rate when a work total is known, else the item rate."""
        elapsed = self.elapsed()
        if self.work_total and self.work > 0:
            return elapsed * max(self.work_total - self.work, 0) / self.work
        if self.total and self.done > self.initial:
            return elapsed * max(self.total - self.done, 0) / (self.done - self.initial)
        return None

    def line(self, item: str | None = None, *, final: bool = False) -> str:
        """`label: 12/48 videos[, item], 95 s elapsed, ~280 s left[ (3.10 snippets/s)]`."""
        count = f"{self.done}/{self.total}" if self.total is not None else f"{self.done}"
        parts = [f"{self.label}: {count} {self.unit}"]
        if item:
            parts.append(item)
        parts.append(f"{format_seconds(self.elapsed())} elapsed")
        left = self.remaining()
        if final:
            parts.append("done" if self.total is None or self.done >= self.total else "stopped")
        elif left is not None:
            parts.append(f"~{format_seconds(left)} left")
        text = ", ".join(parts)
        elapsed = self.elapsed()
        if self.work_unit and self.work and elapsed > 0:
            text += f" ({self.work / elapsed:.2f} {self.work_unit}/s)"
        return text

    def _maybe_line(self) -> None:
        if self.clock() - self._last_line >= self.interval:
            self._print_line(None)

    def _print_line(self, item: str | None, *, final: bool = False) -> None:
        print(self.line(item, final=final), file=self.stream, flush=True)
        self._last_line = self.clock()

    # -------------------------------------------------------------------------------- the bar

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        console = Console(file=self.stream, force_terminal=True)
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[count]}"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task = self._bar.add_task(self.label, total=None, count="", rate="")
        self._bar.start()
        self._refresh_bar()

    def _refresh_bar(self) -> None:
        count = f"{self.done}/{self.total} {self.unit}" if self.total is not None else ""
        elapsed = self.elapsed()
        rate = ""
        if self.work_unit and self.work and elapsed > 0:
            rate = f"{self.work / elapsed:.2f} {self.work_unit}/s"
        if self.work_total:
            total, completed = self.work_total, self.work
        else:
            total, completed = self.total, self.done
        self._bar.update(self._task, total=total, completed=completed, count=count, rate=rate)


class ExtractionDisplay:
    """`vadkit.extract.Progress` callbacks drawn by a ProgressReporter (extract, and score's
    extraction of raw videos). `failures_inline`: say each failed video as it fails (else only
    the final summary names them)."""

    def __init__(self, reporter: ProgressReporter, *, failures_inline: bool = True) -> None:
        self.reporter = reporter
        self.failures_inline = failures_inline

    def start(self, videos: int, snippets_estimate: int) -> None:
        self.reporter.set_total(videos, work_total=max(snippets_estimate, 1))

    def video_started(self, video: str, snippets_estimate: int) -> None:
        self.reporter.describe(video)

    def snippets_done(self, n: int) -> None:
        self.reporter.add_work(n)

    def video_done(self, result: Any) -> None:
        self.reporter.advance(item=result.video)
        if result.status == "failed" and self.failures_inline:
            self.reporter.message(f"failed {result.path}: {result.error}")
