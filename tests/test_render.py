"""`vadkit render`: the timeline strip, alert banner and evidence heatmap drawn on a tiny video,
its errors, and the atomic output."""

from __future__ import annotations

import json

import numpy as np
import pytest
from review_data import Clip, make_batch
from typer.testing import CliRunner

from vadkit.alerts import AlertRule
from vadkit.cli import app
from vadkit.errors import VadkitError
from vadkit.io.scores import ScoreMeta
from vadkit.opencv import cv2
from vadkit.render import (
    Timeline,
    VideoScores,
    blend_heatmap,
    frame_size,
    heat_strength,
    render_video,
)

runner = CliRunner()
EVENT = (16, 32)  # frames of the event (and of the high scores) in the 40-frame clip


def _frames(path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return out


def _red_band(frame: np.ndarray) -> bool:
    band = frame[: frame.shape[0] // 20].reshape(-1, 3).mean(0)
    return band[0] > band[1] + 60 and band[0] > band[2] + 60


def test_render_draws_timeline_cursor_and_banner(tmp_path):
    sdir, vdir, _ = make_batch(tmp_path, [Clip("abn", EVENT)])
    out = tmp_path / "out" / "abn.mp4"
    r = runner.invoke(
        app, ["render", str(vdir / "abn.mp4"), "-s", str(sdir), "-o", str(out), "--json", "-q"]
    )
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["frames"] == 40 and summary["evidence"] is False
    (alert,) = summary["alerts"]
    assert (alert["start_frame"], alert["end_frame"]) == EVENT
    frames = _frames(out)
    assert len(frames) == 40
    h, w = frames[0].shape[:2]
    assert w == 480 and h > 360  # scaled up to 480 wide, the strip below the 360-pixel frame
    assert [i for i in range(40) if _red_band(frames[i])] == list(range(*EVENT))
    # the cursor: the brightest column of the strip moves with the frame
    strip_top = 360 + 3
    for i in (0, 20, 39):
        cols = frames[i][strip_top:, :, :].astype(int).sum(axis=(0, 2))
        assert abs(int(np.argmax(cols)) - round(i * (w - 1) / 39)) <= 3
    assert sorted(p.name for p in out.parent.iterdir()) == ["abn.mp4"]  # nothing else written


def test_render_one_frame_as_an_image(tmp_path):
    sdir, vdir, _ = make_batch(tmp_path, [Clip("abn", EVENT)])
    base = ["render", str(vdir / "abn.mp4"), "-s", str(sdir), "--json"]
    r = runner.invoke(app, [*base, "-o", str(tmp_path / "peak.png")])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["frame"] == EVENT[0]  # the alert's peak (its first top score)
    img = cv2.cvtColor(cv2.imread(str(tmp_path / "peak.png")), cv2.COLOR_BGR2RGB)
    assert img.shape[1] == 480 and _red_band(img)
    r = runner.invoke(app, [*base, "-o", str(tmp_path / "calm.jpg"), "--frame", "3"])
    assert r.exit_code == 0, r.output
    assert not _red_band(cv2.cvtColor(cv2.imread(str(tmp_path / "calm.jpg")), cv2.COLOR_BGR2RGB))
    r = runner.invoke(app, [*base, "-o", str(tmp_path / "x.png"), "--frame", "40"])
    assert r.exit_code == 1 and "frame 40 is out of range" in r.stderr
    r = runner.invoke(app, [*base, "-o", str(tmp_path / "x.mp4"), "--frame", "3"])
    assert r.exit_code == 2 and "--frame" in r.output
    assert sorted(p.name for p in tmp_path.glob("*.*")) == [
        "annotations.csv",
        "calm.jpg",
        "peak.png",
    ]


def test_render_overlays_evidence_on_the_event_quarter(tmp_path, monkeypatch):
    sdir, vdir, _ = make_batch(tmp_path, [Clip("abn", EVENT)], evidence=True)
    rule = AlertRule()
    with_ev = render_video(vdir / "abn.mp4", sdir, tmp_path / "e.mp4", rule, width=64)
    assert with_ev["evidence"] is True
    sdir2, vdir2, _ = make_batch(tmp_path / "plain", [Clip("abn", EVENT)])
    render_video(vdir2 / "abn.mp4", sdir2, tmp_path / "p.mp4", rule, width=64)
    e, p = _frames(tmp_path / "e.mp4"), _frames(tmp_path / "p.mp4")

    def diff(i):
        return np.abs(e[i].astype(int) - p[i].astype(int)).sum(axis=2)

    during, before = diff(20), diff(4)  # scores 0.9 (the event) and 0.1
    assert during[28:44, 36:60].mean() > 40  # the heatmap covers the bottom-right quarter
    assert during[14:20, 4:28].mean() < 10  # and leaves the top-left as it was
    assert before[28:44, 36:60].mean() < during[28:44, 36:60].mean() / 3  # faint when quiet


def test_blend_heatmap_and_sizes():
    frame = np.full((20, 40, 3), 100, np.uint8)
    regions = np.array([[0, 0, 0.5, 1], [0.5, 0, 1, 1]])
    out = blend_heatmap(frame, np.array([0.0, 2.0]), regions)
    assert (out[:, :20] == 100).all() and (out[:, 20:] != 100).any()
    # scaled to the snippet's own maximum: a tiny evidence draws as strongly as a large one
    assert (blend_heatmap(frame, np.array([0.0, 2e-5]), regions) == out).all()
    assert blend_heatmap(frame, np.array([0.0, -1.0]), regions) is frame
    assert blend_heatmap(frame, np.array([0.0, 2.0]), regions, alpha=0.0) is frame
    assert heat_strength(0.1) < heat_strength(0.9) < heat_strength(5.0) == heat_strength(1.0)
    assert frame_size(160, 120) == (480, 360) and frame_size(856, 480) == (856, 480)
    assert frame_size(856, 480, 321) == (320, 180)
    t = Timeline(np.linspace(0, 1, 50), [], AlertRule(), 100)
    assert t.base.shape == (t.height, 100, 3) and t.x(49) == 99 and t.y(1.0) < t.y(0.0)


def test_snippet_of_native_and_resampled_frames():
    native = VideoScores("v", np.zeros(100), ScoreMeta("v", 100, 16, 7))
    assert [native.snippet_of(i) for i in (0, 15, 16, 99)] == [0, 0, 1, 6]
    # features cut from 50 frames (extract --fps at half the rate): frame 32 is used frame 16
    half = VideoScores("v", np.zeros(100), ScoreMeta("v", 100, 16, 4, frames_used=50))
    assert [half.snippet_of(i) for i in (0, 31, 32, 99)] == [0, 0, 1, 3]
    assert VideoScores("v", np.zeros(40), None).snippet_of(39) == 2  # bare arrays: 16 frames


def test_render_errors_name_both_files(tmp_path):
    sdir, vdir, _ = make_batch(tmp_path, [Clip("abn", EVENT)])
    out = tmp_path / "out" / "x.mp4"
    r = runner.invoke(app, ["render", str(tmp_path / "nope.mp4"), "-s", str(sdir), "-o", str(out)])
    assert r.exit_code == 1 and r.stderr.startswith("Error:") and "nope.mp4" in r.stderr
    other = tmp_path / "other.mp4"
    (vdir / "abn.mp4").rename(other)
    r = runner.invoke(app, ["render", str(other), "-s", str(sdir), "-o", str(out)])
    assert r.exit_code == 1 and len(r.stderr.strip().splitlines()) == 1
    assert "'other'" in r.stderr and str(sdir) in r.stderr and "abn" in r.stderr
    short = tmp_path / "short" / "abn.mp4"
    short.parent.mkdir()
    from review_data import write_video

    write_video(short, 37, 10.0)
    r = runner.invoke(app, ["render", str(short), "-s", str(sdir), "-o", str(out)])
    assert r.exit_code == 1 and "37 frames" in r.stderr and "cover 40" in r.stderr
    assert str(short) in r.stderr and "abn.npy" in r.stderr
    assert not out.parent.exists() or not list(out.parent.iterdir())  # no output, no temp file
    r = runner.invoke(app, ["render", str(short), "-s", str(sdir), "-o", str(tmp_path / "x.gif")])
    assert r.exit_code == 2 and ".mp4" in r.output
    r = runner.invoke(app, ["render", str(short), "-s", str(sdir), "-o", str(tmp_path)])
    assert r.exit_code == 2 and "is a directory" in r.output
    with pytest.raises(VadkitError, match="min-duration and cooldown"):
        AlertRule(cooldown=-1)
    r = runner.invoke(
        app, ["render", str(short), "-s", str(sdir), "-o", str(out), "--cooldown", "-1"]
    )
    assert r.exit_code == 2
