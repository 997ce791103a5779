"""Alert hysteresis: level and time, streaming and offline the same."""

import numpy as np
import pytest

from vadkit.alerts import AlertRule, AlertTracker, alert_segments, track
from vadkit.errors import VadkitError


def frames(*runs):
    """(value, count) runs -> a frame-level curve."""
    return np.concatenate([np.full(n, v, dtype=float) for v, n in runs])


def spans(curve, fps=10.0, **rule):
    return [(a.start_frame, a.end_frame) for a in alert_segments(curve, fps, AlertRule(**rule))]


def test_single_event_start_is_first_crossing_and_end_last_high():
    curve = frames((0.1, 20), (0.9, 15), (0.1, 40))
    alerts = alert_segments(curve, 10.0, AlertRule(threshold=0.5, min_duration=1.0, cooldown=1.0))
    assert len(alerts) == 1
    a = alerts[0]
    assert (a.start_frame, a.end_frame) == (20, 35)
    assert a.start_time == pytest.approx(2.0) and a.end_time == pytest.approx(3.5)
    assert a.fired_time == pytest.approx(3.0)  # 1 s after the crossing
    assert a.peak == pytest.approx(0.9) and a.as_dict()["mean"] == pytest.approx(0.9)
    assert a.duration == pytest.approx(1.5)


def test_blip_shorter_than_min_duration_raises_nothing():
    curve = frames((0.1, 20), (0.9, 9), (0.1, 20))
    assert spans(curve, threshold=0.5, min_duration=1.0) == []
    assert spans(curve, threshold=0.5, min_duration=0.9) == [(20, 29)]
    assert spans(frames((0.1, 3), (0.9, 1), (0.1, 3)), min_duration=0.0) == [(3, 4)]


def test_dip_shorter_than_cooldown_does_not_split():
    curve = frames((0.1, 10), (0.9, 10), (0.2, 5), (0.9, 10), (0.1, 50))
    assert spans(curve, cooldown=1.0) == [(10, 35)]
    assert spans(curve, cooldown=0.4) == [(10, 20), (25, 35)]
    # the dip's scores belong to the event's mean, the cooldown tail's do not
    a = alert_segments(curve, 10.0, AlertRule(cooldown=1.0))[0]
    assert a.as_dict()["mean"] == pytest.approx((20 * 0.9 + 5 * 0.2) / 25)


def test_release_level_is_hysteresis_in_level():
    curve = frames((0.1, 10), (0.9, 10), (0.45, 10), (0.1, 40))
    assert spans(curve, threshold=0.5, cooldown=0.5) == [(10, 20)]
    assert spans(curve, threshold=0.5, release=0.4, cooldown=0.5) == [(10, 30)]
    with pytest.raises(VadkitError, match="release level 0.7 is above the threshold 0.5"):
        AlertRule(threshold=0.5, release=0.7)


def test_stream_end_closes_open_alert_and_nan_is_low():
    curve = frames((0.1, 5), (0.9, 10))
    assert spans(curve) == [(5, 15)]
    curve = frames((0.9, 10), (np.nan, 30), (0.1, 5))
    assert spans(curve, cooldown=1.0) == [(0, 10)]


def test_streaming_snippets_match_events_and_offline_segments():
    rule = AlertRule(threshold=0.5, min_duration=1.0, cooldown=1.0)
    snippet = [0.1, 0.2, 0.8, 0.9, 0.7, 0.1, 0.1, 0.1, 0.6]
    tracker = AlertTracker(rule)
    events = []
    for i, s in enumerate(snippet):  # 16-frame snippets at 16 fps: 1 s each
        events += [(e.kind, i) for e in tracker.update(i, i + 1.0, s, 16 * i, 16 * i + 16)]
    events += [(e.kind, "close") for e in tracker.close()]
    assert events == [("start", 2), ("end", 5), ("start", 8), ("end", "close")]
    offline = alert_segments(np.repeat(snippet, 16), 16.0, rule)
    assert [(a.start_frame, a.end_frame) for a in offline] == [(32, 80), (128, 144)]
    d = next(track([(0, 1, 0.9, 0, 16)], rule)).as_dict()
    assert d["event"] == "alert_start" and d["end_time"] is None and d["peak"] == 0.9


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        ({"cooldown": -1}, "must be >= 0"),
        ({"threshold": float("nan")}, "threshold must be finite"),
    ],
)
def test_bad_rules_are_errors(kwargs, msg):
    with pytest.raises(VadkitError, match=msg):
        AlertRule(**kwargs)
    with pytest.raises(VadkitError, match="fps"):
        alert_segments(np.zeros(3), 0.0, AlertRule())


def _tracked(curve, fps, rule):
    samples = ((i / fps, (i + 1) / fps, curve[i], i, i + 1) for i in range(len(curve)))
    return [e.alert.as_dict() for e in track(samples, rule) if e.kind == "end"]


@pytest.mark.parametrize("seed", range(40))
def test_offline_segments_equal_the_streaming_tracker(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    # smooth-ish curves with plateaus, spikes and NaN holes
    curve = np.repeat(rng.random(n // 4 + 1), rng.integers(1, 8))[:n]
    curve[rng.random(curve.shape[0]) < 0.03] = np.nan
    fps = float(rng.choice([1.0, 10.0, 24.0, 25.0, 29.97]))
    rule = AlertRule(
        threshold=float(rng.uniform(0.3, 0.8)),
        min_duration=float(rng.choice([0.0, 0.1, 0.5, 1.0])),
        cooldown=float(rng.choice([0.0, 0.2, 1.0, 3.0])),
        release=None if rng.random() < 0.5 else float(rng.uniform(0.1, 0.3)),
    )
    fast = [a.as_dict() for a in alert_segments(curve, fps, rule)]
    assert fast == _tracked(curve, fps, rule)
