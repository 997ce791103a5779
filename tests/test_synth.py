"""`vadkit synth`: determinism, decodable videos, consistent ground truth, local events."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from vadkit.cli import app
from vadkit.errors import VadkitError
from vadkit.io.annotations import read_annotations
from vadkit.io.manifest import read_manifest
from vadkit.synth import SynthConfig, count_frames, plan_dataset, render_video, synthesize

TINY = SynthConfig(videos_train=4, videos_test=4, width=64, height=48, frames=24, seed=3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "a"
    synthesize(out, TINY)
    return out


def _files(d):
    return {
        p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()
    }


def test_same_seed_gives_identical_files_and_another_seed_does_not(tiny, tmp_path):
    again = tmp_path / "b"
    synthesize(again, TINY)
    a, b = _files(tiny), _files(again)
    assert sorted(a) == sorted(b)
    assert len([k for k in a if k.endswith(".mp4")]) == 8
    assert all(a[k] == b[k] for k in a)
    other = tmp_path / "c"
    synthesize(other, SynthConfig(**{**TINY.settings(), "classes": TINY.classes, "seed": 4}))
    c = _files(other)
    assert sum(a[k] != c[k] for k in a if k.endswith(".mp4")) == 8


def test_videos_decode_with_the_expected_frames_and_size(tiny):
    for p in sorted((tiny / "videos").glob("*.mp4")):
        assert count_frames(p) == TINY.frames
        cap = cv2.VideoCapture(str(p))
        ok, frame = cap.read()
        cap.release()
        assert ok and frame.shape == (TINY.height, TINY.width, 3)
    assert not list(tiny.rglob(".tmp-*"))


def test_manifests_and_annotations_agree(tiny):
    meta = json.loads((tiny / "synth.json").read_text())
    assert meta["seed"] == TINY.seed and meta["settings"]["frames"] == TINY.frames
    assert meta["vadkit_version"]
    by_name = {v["video"]: v for v in meta["videos"]}
    train = read_manifest(tiny / "train.csv")
    test = read_manifest(tiny / "test.csv")
    assert len(train) == TINY.videos_train and len(test) == TINY.videos_test
    assert (tiny / "test.csv").read_text().splitlines()[0] == "video,label,path"
    for e in train + test:
        assert e.path == tiny / "videos" / f"{e.video}.mp4" and e.path.exists()
        v = by_name[e.video]
        assert v["label"] == e.label == int(bool(v["intervals"]))
        assert (v["class"] == "Normal") == (e.label == 0)
        for s, t in v["intervals"]:
            assert 0 <= s <= t < TINY.frames
    assert {e.label for e in train} == {0, 1} and {e.label for e in test} == {0, 1}

    csv_truth = read_annotations(tiny / "annotations.csv", format="csv")
    ucf_truth = read_annotations(tiny / "Temporal_Anomaly_Annotation.txt", format="ucf")
    assert sorted(csv_truth.videos) == sorted(e.video for e in test)
    for e in test:
        labels = csv_truth.labels(e.video, TINY.frames)
        np.testing.assert_array_equal(labels, ucf_truth.labels(e.video, TINY.frames))
        expected = np.zeros(TINY.frames, dtype=np.uint8)
        for s, t in by_name[e.video]["intervals"]:
            expected[s : t + 1] = 1
        np.testing.assert_array_equal(labels, expected)
        assert csv_truth.video_class(e.video) == by_name[e.video]["class"]


def test_events_are_local_and_whole_frame_statistics_do_not_separate_the_videos():
    config = SynthConfig(videos_train=2, videos_test=40, width=80, height=60, frames=48, seed=0)
    plans = [p for p in plan_dataset(config) if p.split == "test"]
    labels, brightness, motion = [], [], []
    for plan in plans:
        frames, masks = zip(*render_video(plan, config), strict=True)
        video = np.stack(frames).astype(np.float32)
        labels.append(plan.label)
        brightness.append(video.mean())
        motion.append(np.abs(np.diff(video, axis=0)).mean())
        on = np.array([m.any() for m in masks])
        if not plan.label:
            assert not on.any()
            continue
        (s, e) = plan.intervals[0]
        assert not on[:s].any() and not on[e + 1 :].any()
        assert on[s : e + 1].mean() > 0.75, (plan.video, plan.event)  # mostly in view
        for m in masks:
            if m.any():
                ys, xs = np.nonzero(m)
                box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
                assert box < 0.1 * m.size, (plan.video, plan.event, box / m.size)
    assert sum(labels) == 20
    assert {p.event for p in plans if p.label} == set(config.classes)
    # The anomaly is a small local event: a whole-frame statistic is close to chance.
    assert 0.3 < roc_auc_score(labels, brightness) < 0.7
    assert 0.3 < roc_auc_score(labels, motion) < 0.7


def test_refuses_a_foreign_directory_and_replaces_its_own_output(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(VadkitError, match="not a vadkit synth output"):
        synthesize(foreign, TINY)
    assert (foreign / "notes.txt").read_text() == "keep me"

    out = tmp_path / "s"
    synthesize(out, SynthConfig(videos_train=3, videos_test=3, width=32, height=32, frames=16))
    synthesize(out, SynthConfig(videos_train=2, videos_test=2, width=32, height=32, frames=16))
    assert len(list((out / "videos").glob("*.mp4"))) == 4


def test_invalid_settings_are_named():
    with pytest.raises(VadkitError, match="even"):
        SynthConfig(width=63).validate()
    with pytest.raises(VadkitError, match="unknown event class 'juggling'"):
        SynthConfig(classes=("juggling",)).validate()


def test_cli_writes_the_dataset_and_reports_json(tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    args = ["synth", "-o", str(out), "--videos-train", "2", "--videos-test", "2"]
    args += ["--size", "32x32", "--frames", "32", "--seed", "7", "--event-length", "0.25,0.5"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["videos"] == 4 and summary["anomalous_videos"] == 2
    assert summary["settings"]["seed"] == 7
    assert summary["settings"]["event_length"] == [0.25, 0.5]
    assert summary["boxes"].endswith("boxes.csv") and (out / "boxes.csv").is_file()
    meta = json.loads((out / "synth.json").read_text())
    for v in meta["videos"]:
        for s, e in v["intervals"]:
            assert 8 <= e - s + 1 <= 16  # 0.25-0.5 of 32 frames
    for name in ("train.csv", "test.csv", "annotations.csv", "Temporal_Anomaly_Annotation.txt"):
        assert (out / name).is_file()

    bad = runner.invoke(app, ["synth", "-o", str(tmp_path / "x"), "--size", "33x20"])
    assert bad.exit_code == 2
    bad = runner.invoke(app, ["synth", "-o", str(tmp_path / "x"), "--classes", "juggling"])
    assert bad.exit_code == 2 and "running" in bad.output
    for length in ("0.8,0.4", "0,0.5", "0.5", "a,b"):
        bad = runner.invoke(app, ["synth", "-o", str(tmp_path / "x"), "--event-length", length])
        assert bad.exit_code == 2 and "--event-length" in bad.output, length
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "f").write_text("x")
    busy = runner.invoke(app, ["synth", "-o", str(tmp_path / "busy")])
    assert busy.exit_code == 1 and "Error:" in busy.output


def _event_boxes(plan, cfg) -> list[float]:
    """Per frame with the event on screen: its bounding box as a fraction of the frame."""
    boxes = []
    for _, mask in render_video(plan, cfg):
        if mask.any():
            ys, xs = np.nonzero(mask)
            boxes.append((np.ptp(ys) + 1) * (np.ptp(xs) + 1) / mask.size)
    return boxes


@pytest.mark.parametrize("event", ["running", "fighting", "falling", "vehicle"])
def test_wide_preset_events_cover_at_most_two_percent_of_the_frame(event):
    from vadkit.synth import preset_config

    cfg = preset_config(
        "wide", videos_train=2, videos_test=2, frames=20, classes=(event,), event_length=(0.9, 0.9)
    )
    assert (cfg.width, cfg.height) == (840, 480)
    plan = next(p for p in plan_dataset(cfg) if p.label)
    boxes = _event_boxes(plan, cfg)
    assert len(boxes) >= 10  # the event is on screen for most of its interval
    assert 0.001 < max(boxes) <= 0.02, max(boxes)
    # the same event seen by the quickstart's close camera is several times larger
    close = dataclasses.replace(cfg, figure_scale=1.0)
    assert max(_event_boxes(plan, close)) > 2 * max(boxes)


def test_preset_cli_sets_size_and_options_override_it(tmp_path):
    out = tmp_path / "w"
    args = ["synth", "-o", str(out), "--preset", "wide", "--videos-train", "2", "--videos-test"]
    r = CliRunner().invoke(app, [*args, "2", "--frames", "16", "--size", "280x160", "--json"])
    assert r.exit_code == 0, r.output
    settings = json.loads((out / "synth.json").read_text())["settings"]
    assert (settings["width"], settings["height"], settings["figure_scale"]) == (280, 160, 0.5)
    r = CliRunner().invoke(app, ["synth", "-o", str(tmp_path / "x"), "--figure-scale", "5"])
    assert r.exit_code == 2 and "figure-scale" in r.output


def test_boxes_mark_the_event_in_every_frame_that_shows_it(tiny):
    from vadkit.synth import mask_box, read_boxes

    boxes = read_boxes(tiny / "boxes.csv")
    meta = json.loads((tiny / "synth.json").read_text())
    assert meta["boxes"].startswith("boxes.csv")
    plans = {p.video: p for p in plan_dataset(TINY)}
    abnormal = {v for v, p in plans.items() if p.label}
    assert set(boxes) == abnormal and {plans[v].split for v in boxes} == {"train", "test"}
    for video, frames in boxes.items():
        ((start, end),) = plans[video].intervals
        assert all(start <= f <= end for f in frames)
        for x0, y0, x1, y1 in frames.values():
            assert 0 <= x0 < x1 <= TINY.width and 0 <= y0 < y1 <= TINY.height
    video = sorted(abnormal)[0]
    want = {}
    for t, (_, mask) in enumerate(render_video(plans[video], TINY)):
        if mask.any():
            want[t] = mask_box(mask)
            ys, xs = np.nonzero(mask)
            assert want[t] == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert boxes[video] == want and len(want) >= 3
    assert mask_box(np.zeros((4, 4), bool)) is None
    with pytest.raises(VadkitError, match="not a synth boxes file"):
        read_boxes(tiny / "annotations.csv")
