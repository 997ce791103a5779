"""Alert events from a score curve, with hysteresis in level and time.

One state machine serves a live stream (`vadkit watch` feeds it a snippet at a time) and a
finished score file (`alert_segments`, used by `render` and `report`), so an alert means the same
thing in all three.

An alert *opens* when the score has stayed at or above `threshold` for `min_duration` seconds
(its start is the moment the score first crossed, not the moment it fired). It *closes* when the
score has stayed below `release` (default: `threshold`) for `cooldown` seconds; its end is the
moment the score last was at or above `release`. A dip shorter than `cooldown` therefore does not
split one event into two, and a blip shorter than `min_duration` raises nothing. A stream that ends
while an alert is open closes it there, at the end of its last sample at or above `release`.

Each sample covers a time interval `[start, end)` (a snippet, or one frame of a frame-level
curve), so a single sample above threshold lasts its own length and `min_duration=0` fires on it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from vadkit.errors import VadkitError


@dataclass(frozen=True)
class AlertRule:
    """When a score curve raises an alert (see the module docstring)."""

    threshold: float = 0.5
    min_duration: float = 0.0  # seconds at or above threshold before the alert opens
    cooldown: float = 2.0  # seconds below release before it closes
    release: float | None = None  # the lower level that ends an alert; None: threshold

    def __post_init__(self) -> None:
        for name in ("threshold", "min_duration", "cooldown"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise VadkitError(f"alert {name.replace('_', '-')} must be finite, got {value}")
        if self.min_duration < 0 or self.cooldown < 0:
            raise VadkitError(
                f"alert min-duration and cooldown must be >= 0 seconds, got "
                f"{self.min_duration} and {self.cooldown}"
            )
        if self.release is not None and self.release > self.threshold:
            raise VadkitError(
                f"alert release level {self.release} is above the threshold {self.threshold}; "
                "it must be at or below it"
            )

    @property
    def release_level(self) -> float:
        return self.threshold if self.release is None else self.release


@dataclass
class Alert:
    """One alert event. `end_*` are None while it is open; `peak_*` is its highest sample."""

    index: int
    start_time: float
    start_frame: int
    fired_time: float  # when the rule let it open (start_time + min_duration, at the latest)
    peak: float
    peak_time: float
    peak_frame: int
    end_time: float | None = None
    end_frame: int | None = None
    scores: list[float] = field(default_factory=list, repr=False)

    @property
    def duration(self) -> float | None:
        return None if self.end_time is None else self.end_time - self.start_time

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        scores = [v for v in d.pop("scores") if math.isfinite(v)]  # a NaN dip is no score
        d["duration"] = self.duration
        d["mean"] = float(np.mean(scores)) if scores else None
        return d


@dataclass(frozen=True)
class AlertEvent:
    """What `AlertTracker.update` reports: `kind` is "start" or "end"."""

    kind: str
    alert: Alert

    def as_dict(self) -> dict[str, Any]:
        return {"event": f"alert_{self.kind}", **self.alert.as_dict()}


class AlertTracker:
    """Feed samples in time order with `update`; it returns the events they cause."""

    def __init__(self, rule: AlertRule) -> None:
        self.rule = rule
        self.active: Alert | None = None
        self.count = 0
        self._above: tuple[float, int] | None = None  # (time, frame) the score first crossed
        self._pending: list[tuple[float, float, int]] = []  # samples since then, for the peak
        self._last_high: tuple[float, int] | None = None  # end of the last sample >= release
        self._cooling: list[float] = []  # scores of the current dip below release

    def update(
        self, start: float, end: float, score: float, frame: int, end_frame: int | None = None
    ) -> list[AlertEvent]:
        """One sample covering `[start, end)` seconds from frame `frame` (to `end_frame`,
        exclusive; default `frame + 1`). A non-finite score counts as below every level."""
        if end < start:
            raise VadkitError(f"alert sample ends ({end}) before it starts ({start})")
        end_frame = frame + 1 if end_frame is None else end_frame
        score = float(score) if math.isfinite(score) else -math.inf
        if self.active is not None:
            return self._update_active(start, end, score, frame, end_frame)
        return self._update_idle(start, end, score, frame, end_frame)

    def close(self) -> list[AlertEvent]:
        """The stream ended: close an open alert at the end of its last high sample."""
        if self.active is None:
            return []
        assert self._last_high is not None
        return [self._finish(*self._last_high)]

    def _update_idle(
        self, start: float, end: float, score: float, frame: int, end_frame: int
    ) -> list[AlertEvent]:
        if score < self.rule.threshold:
            self._above, self._pending = None, []
            return []
        if self._above is None:
            self._above = (start, frame)
        self._pending.append((score, start, frame))
        if end - self._above[0] + 1e-9 < self.rule.min_duration:
            return []
        peak, peak_time, peak_frame = max(self._pending, key=lambda p: p[0])
        self.active = Alert(
            index=self.count,
            start_time=self._above[0],
            start_frame=self._above[1],
            fired_time=end,
            peak=peak,
            peak_time=peak_time,
            peak_frame=peak_frame,
            scores=[p[0] for p in self._pending],
        )
        self.count += 1
        self._last_high, self._cooling = (end, end_frame), []
        self._above, self._pending = None, []
        return [AlertEvent("start", self.active)]

    def _update_active(
        self, start: float, end: float, score: float, frame: int, end_frame: int
    ) -> list[AlertEvent]:
        alert = self.active
        assert alert is not None
        if score >= self.rule.release_level:
            self._last_high = (end, end_frame)
            alert.scores.extend(self._cooling)  # a dip shorter than cooldown is part of it
            alert.scores.append(score)
            self._cooling = []
            if score > alert.peak:
                alert.peak, alert.peak_time, alert.peak_frame = score, start, frame
            return []
        assert self._last_high is not None
        if end - self._last_high[0] + 1e-9 < self.rule.cooldown:
            self._cooling.append(score)
            return []
        return [self._finish(*self._last_high)]

    def _finish(self, end_time: float, end_frame: int) -> AlertEvent:
        alert = self.active
        assert alert is not None
        alert.end_time, alert.end_frame = end_time, end_frame
        # the samples of the dip after the last high one are not part of the event
        self.active, self._last_high, self._cooling = None, None, []
        return AlertEvent("end", alert)


def track(
    samples: Iterable[tuple[float, float, float, int, int]], rule: AlertRule
) -> Iterator[AlertEvent]:
    """Every event of a finite stream of `(start, end, score, frame, end_frame)` samples."""
    tracker = AlertTracker(rule)
    for start, end, score, frame, end_frame in samples:
        yield from tracker.update(start, end, score, frame, end_frame)
    yield from tracker.close()


def alert_segments(frame_scores: np.ndarray, fps: float, rule: AlertRule) -> list[Alert]:
    """The closed alerts of a frame-level score curve (as `vadkit score` writes), in time order;
    each frame is a sample of length 1/fps. Frame numbers are 0-based, `end_frame` exclusive.

    The same events as feeding every frame to `AlertTracker` (a test holds them equal), found
    with array searches instead of a Python step per frame: a batch of long videos is mostly
    quiet frames, which this skips."""
    if not (fps > 0 and math.isfinite(fps)):
        raise VadkitError(f"fps must be a positive number, got {fps}")
    s = np.asarray(frame_scores, dtype=np.float64).reshape(-1)
    s = np.where(np.isfinite(s), s, -np.inf)
    t = np.arange(s.shape[0] + 1, dtype=np.float64) / fps  # t[i]: start of frame i
    high, held = _Mask(s >= rule.threshold), _Mask(s >= rule.release_level)
    alerts: list[Alert] = []
    i = 0
    while (fired := _next_firing(high, t, i, rule.min_duration)) is not None:
        start, m = fired
        last = _last_held(held, t, m, rule.cooldown)  # the alert's last frame
        alerts.append(_segment(len(alerts), s, t, start, m, last))
        i = _close_frame(held, t, last, rule.cooldown) + 1
    return alerts


class _Mask:
    """A boolean array with O(log n) "next index where it is True/False" lookups."""

    def __init__(self, mask: np.ndarray) -> None:
        self.shape = mask.shape
        self._where = {True: np.flatnonzero(mask), False: np.flatnonzero(~mask)}

    def next(self, i: int, value: bool = True) -> int:
        """The first index >= i where the mask == value, or len(mask)."""
        idx = self._where[value]
        k = int(np.searchsorted(idx, i))
        return int(idx[k]) if k < idx.shape[0] else self.shape[0]


def _next_firing(high: _Mask, t: np.ndarray, i: int, min_duration: float):
    """(first frame, firing frame) of the next run above threshold that lasts min_duration."""
    n = high.shape[0]
    while (j := high.next(i)) < n:
        k = high.next(j, False)  # the run is j..k-1
        long_enough = t[j + 1 : k + 1] - t[j] + 1e-9 >= min_duration
        if long_enough.any():
            return j, j + int(np.argmax(long_enough))
        i = k
    return None


def _last_held(held: _Mask, t: np.ndarray, last: int, cooldown: float) -> int:
    """From a held frame `last`, the last held frame before a dip that outlasts cooldown."""
    n = held.shape[0]
    while (p := held.next(last + 1, False)) < n:  # a dip starts at p
        h = held.next(p)
        if (t[p + 1 : h + 1] - t[p] + 1e-9 >= cooldown).any() or h == n:
            return p - 1
        last = held.next(h, False) - 1
    return n - 1


def _close_frame(held: _Mask, t: np.ndarray, last: int, cooldown: float) -> int:
    """The frame whose sample closes an alert whose last held frame is `last`."""
    n = held.shape[0]
    dip = t[last + 2 : n + 1] - t[last + 1] + 1e-9 >= cooldown
    return last + 1 + int(np.argmax(dip)) if dip.any() else n


def _segment(index: int, s: np.ndarray, t: np.ndarray, start: int, m: int, last: int) -> Alert:
    part = s[start : last + 1]
    peak = start + int(np.argmax(part))
    return Alert(
        index=index,
        start_time=float(t[start]),
        start_frame=start,
        fired_time=float(t[m + 1]),
        peak=float(s[peak]),
        peak_time=float(t[peak]),
        peak_frame=peak,
        end_time=float(t[last + 1]),
        end_frame=last + 1,
        scores=part.tolist(),
    )
