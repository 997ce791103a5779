"""Metrics against sklearn, and evaluate()'s handling of lengths, missing videos and classes."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

from vadkit import metrics
from vadkit.errors import VadkitError
from vadkit.io.annotations import read_annotations


@pytest.mark.parametrize("decimals", [None, 2])  # continuous scores, and many ties
def test_curve_metrics_equal_sklearn(decimals):
    rng = np.random.default_rng(3)
    y = rng.random(5000) < 0.2
    s = rng.random(5000) + 0.3 * y
    if decimals is not None:
        s = np.round(s, decimals)
    p, r, _ = precision_recall_curve(y, s)
    assert metrics.roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert metrics.average_precision(y, s) == pytest.approx(
        average_precision_score(y, s), abs=1e-12
    )
    assert metrics.pr_auc_trapezoid(y, s) == pytest.approx(auc(r, p), abs=1e-12)
    assert metrics.pr_auc_trapezoid(y, s) != metrics.average_precision(y, s)
    assert metrics.false_alarm_rate(y, s) == pytest.approx(np.mean(s[~y] >= 0.5))


def test_curve_metrics_refuse_bad_input():
    with pytest.raises(VadkitError, match="all 3 frames are normal"):
        metrics.roc_auc([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(VadkitError, match="NaN"):
        metrics.roc_auc([0, 1], [0.1, np.nan])
    with pytest.raises(VadkitError, match="only 0"):
        metrics.roc_auc([0, 2], [0.1, 0.2])
    with pytest.raises(VadkitError, match="2 entries"):
        metrics.average_precision([0, 1], [0.1, 0.2, 0.3])


def _ucf(tmp_path, lines):
    p = tmp_path / "gt.txt"
    p.write_text("\n".join(lines) + "\n")
    return read_annotations(p)


LINES = [
    "Abuse001_x264.mp4 Abuse 10 29 -1 -1",
    "Abuse002_x264.mp4 Abuse 0 7 40 47",
    "Fight001_x264.mp4 Fighting 16 31 -1 -1",
    "Normal_Videos_001_x264.mp4 Normal -1 -1 -1 -1",
    "Normal_Videos_002_x264.mp4 Normal -1 -1 -1 -1",
]
LENGTHS = {
    "Abuse001_x264": 64,
    "Abuse002_x264": 48,
    "Fight001_x264": 40,
    "Normal_Videos_001_x264": 80,
    "Normal_Videos_002_x264": 32,
}


def _arrays(a, scores):
    names = sorted(scores)
    y = np.concatenate([a.labels(v, scores[v].size) for v in names])
    s = np.concatenate([scores[v] for v in names])
    return names, y, s


def test_evaluate_equals_sklearn_on_every_population(tmp_path):
    a = _ucf(tmp_path, LINES)
    rng = np.random.default_rng(0)
    scores = {v: rng.random(n) for v, n in LENGTHS.items()}
    r = metrics.evaluate(scores, a)
    names, y, s = _arrays(a, scores)
    p, rec, _ = precision_recall_curve(y, s)
    assert r["roc_auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert r["average_precision"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert r["pr_auc_trapezoid"] == pytest.approx(auc(rec, p), abs=1e-12)
    assert r["videos"] == 5 and r["frames"] == sum(LENGTHS.values())
    assert r["abnormal_videos"] == 3 and r["normal_videos"] == 2
    assert r["anomalous_frames"] == 20 + 16 + 16

    abn = [v for v in names if not v.startswith("Normal")]
    ya = np.concatenate([a.labels(v, scores[v].size) for v in abn])
    sa = np.concatenate([scores[v] for v in abn])
    assert r["roc_auc_abnormal"] == pytest.approx(roc_auc_score(ya, sa), abs=1e-12)

    normal = np.concatenate([scores[v] for v in names if v.startswith("Normal")])
    assert r["false_alarm_rate"] == pytest.approx(np.mean(normal >= 0.5), abs=1e-15)

    # per class = that class's anomalous videos + all normal videos
    assert set(r["per_class"]) == {"Abuse", "Fighting"}
    sel = ["Abuse001_x264", "Abuse002_x264", "Normal_Videos_001_x264", "Normal_Videos_002_x264"]
    yc = np.concatenate([a.labels(v, scores[v].size) for v in sel])
    sc = np.concatenate([scores[v] for v in sel])
    assert r["per_class"]["Abuse"]["roc_auc"] == pytest.approx(roc_auc_score(yc, sc), abs=1e-12)
    assert r["per_class"]["Abuse"]["videos"] == 2
    assert r["per_class"]["Abuse"]["frames"] == 64 + 48 + 80 + 32
    assert r["missing_scores"] == [] and r["missing_labels"] == [] and r["trimmed"] == []


def test_perfect_scores(tmp_path):
    a = _ucf(tmp_path, LINES)
    scores = {v: a.labels(v, n).astype(float) for v, n in LENGTHS.items()}
    r = metrics.evaluate(scores, a)
    for k in ("roc_auc", "average_precision", "pr_auc_trapezoid", "roc_auc_abnormal"):
        assert r[k] == 1.0, k
    assert r["false_alarm_rate"] == 0.0
    assert all(c["roc_auc"] == 1.0 for c in r["per_class"].values())


def test_padding_is_trimmed_and_reported_larger_mismatch_is_an_error(tmp_path):
    b = tmp_path / "frames.txt"
    b.write_text(
        "Abuse/Abuse001_x264.mp4 60 Abuse 10 29 -1 -1\nNormal/N_x264.mp4 50 Normal -1 -1 -1 -1\n"
    )
    a = read_annotations(b)
    scores = {
        "Abuse001_x264": np.r_[np.zeros(10), np.ones(20), np.zeros(34)],
        "N_x264": np.zeros(40),
    }
    r = metrics.evaluate(scores, a)
    assert r["frames"] == 60 + 40
    acts = {t["video"]: (t["scores"], t["labels"], t["action"]) for t in r["trimmed"]}
    assert acts == {
        "Abuse001_x264": (64, 60, "trimmed scores"),
        "N_x264": (40, 50, "trimmed labels"),
    }
    assert r["roc_auc"] == 1.0
    scores["N_x264"] = np.zeros(33)  # 17 frames short: more than one snippet
    with pytest.raises(VadkitError, match=r"N_x264: 33 frame scores .* gives 50 frames"):
        metrics.evaluate(scores, a)
    # a snippet length from the score metadata widens or narrows the tolerance
    r = metrics.evaluate(scores, a, snippet_lengths={"N_x264": 32})
    assert r["frames"] == 60 + 33


def test_frame_counts_from_score_metadata_set_the_label_length(tmp_path):
    a = _ucf(tmp_path, ["A001.mp4 Abuse 0 9 -1 -1", "N001.mp4 Normal -1 -1 -1 -1"])
    scores = {"A001": np.r_[np.ones(10), np.zeros(22)], "N001": np.zeros(16)}
    r = metrics.evaluate(scores, a, frame_counts={"A001": 20})
    assert r["trimmed"] == [
        {"video": "A001", "scores": 32, "labels": 20, "action": "trimmed scores"}
    ]


def test_unknown_videos_are_an_error_unless_unlisted_means_normal(tmp_path):
    a = _ucf(tmp_path, LINES)
    scores = {v: np.random.default_rng(1).random(n) for v, n in LENGTHS.items()}
    scores["Stranger001_x264"] = np.zeros(20)
    with pytest.raises(VadkitError, match=r"1 scored video\(s\) are not in .*Stranger001_x264"):
        metrics.evaluate(scores, a)

    x = tmp_path / "xd.txt"
    x.write_text("A.B__#1_label_B1-0-0 4 11\n")
    xd = read_annotations(x)
    r = metrics.evaluate(
        {
            "A.B__#1_label_B1-0-0": np.r_[np.zeros(4), np.ones(8), np.zeros(4)],
            "C__#2_label_A": np.zeros(16),
        },
        xd,
    )
    assert r["missing_labels"] == ["C__#2_label_A"] and r["normal_videos"] == 1
    assert r["roc_auc"] == 1.0 and r["per_class"]["Fighting"]["roc_auc"] == 1.0
    assert any("taken as normal" in n for n in r["notes"])


def test_annotated_videos_without_scores_are_listed(tmp_path):
    a = _ucf(tmp_path, LINES)
    rng = np.random.default_rng(2)
    scores = {v: rng.random(n) for v, n in LENGTHS.items() if v != "Fight001_x264"}
    r = metrics.evaluate(scores, a)
    assert r["missing_scores"] == ["Fight001_x264"] and r["videos"] == 4
    assert "Fighting" not in r["per_class"]


def test_degenerate_and_bad_scores(tmp_path):
    a = _ucf(tmp_path, LINES)
    normal_only = {"Normal_Videos_001_x264": np.zeros(10)}
    with pytest.raises(VadkitError, match="needs both normal and anomalous frames"):
        metrics.evaluate(normal_only, a)
    with pytest.raises(VadkitError, match=r"Abuse001_x264: 1 non-finite score"):
        metrics.evaluate({"Abuse001_x264": np.r_[np.zeros(63), np.nan]}, a)
    with pytest.raises(VadkitError, match="no score files"):
        metrics.evaluate({}, a)


def test_legacy_pads_short_scores_with_the_last_snippet(tmp_path):
    np.save(tmp_path / "gt.npy", np.r_[np.zeros(20), np.ones(12), np.zeros(16)].astype(np.uint8))
    (tmp_path / "t.list").write_text("/x/A_i3d.npy 2\n/x/N_i3d.npy 1\n")
    a = read_annotations(tmp_path / "gt.npy", list_file=tmp_path / "t.list")
    r = metrics.evaluate({"A_i3d": np.r_[np.zeros(20), np.ones(9)], "N_i3d": np.zeros(16)}, a)
    assert r["trimmed"] == [
        {"video": "A_i3d", "scores": 29, "labels": 32, "action": "padded scores"}
    ]
    assert r["roc_auc"] == 1.0 and r["frames"] == 48


def test_per_video_rows(tmp_path):
    a = _ucf(tmp_path, LINES)
    rng = np.random.default_rng(5)
    scores = {v: rng.random(n) for v, n in LENGTHS.items()}
    assert "per_video" not in metrics.evaluate(scores, a)
    r = metrics.evaluate(scores, a, per_video=True, threshold=0.7)
    rows = r["per_video"]
    assert set(rows) == set(LENGTHS)
    y = a.labels("Abuse002_x264", 48)
    s = scores["Abuse002_x264"]
    assert rows["Abuse002_x264"]["roc_auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert rows["Abuse002_x264"]["anomalous_frames"] == 16
    n = scores["Normal_Videos_001_x264"]
    assert rows["Normal_Videos_001_x264"]["roc_auc"] is None
    assert rows["Normal_Videos_001_x264"]["alarm_rate"] == pytest.approx(np.mean(n >= 0.7))
    assert rows["Normal_Videos_001_x264"]["max_score"] == n.max()


def test_float32_scores_equal_sklearn_and_the_threshold_is_exact(tmp_path):
    a = _ucf(tmp_path, LINES)
    rng = np.random.default_rng(11)
    scores = {v: np.round(rng.random(n), 2).astype(np.float32) for v, n in LENGTHS.items()}
    scores["Normal_Videos_002_x264"][:5] = np.float32(0.7)  # 0.699999988 < 0.7: no alarm
    r = metrics.evaluate(scores, a, threshold=0.7, per_video=True)
    wide = {v: s.astype(np.float64) for v, s in scores.items()}
    names, y, s = _arrays(a, wide)
    p, rec, _ = precision_recall_curve(y, s)
    assert r["roc_auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert r["average_precision"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert r["pr_auc_trapezoid"] == pytest.approx(auc(rec, p), abs=1e-12)
    normal = np.concatenate([wide[v] for v in names if v.startswith("Normal")])
    assert r["false_alarm_rate"] == np.count_nonzero(normal >= 0.7) / normal.size
    row = r["per_video"]["Normal_Videos_002_x264"]
    assert row["alarm_rate"] == np.mean(wide["Normal_Videos_002_x264"] >= 0.7)
    assert row["mean_score"] == pytest.approx(wide["Normal_Videos_002_x264"].mean(), abs=1e-15)
    w = metrics.evaluate(wide, a, threshold=0.7, per_video=True)
    for key in ("roc_auc", "average_precision", "pr_auc_trapezoid", "roc_auc_abnormal"):
        assert r[key] == w[key], key  # the same counts, whatever the dtype
    assert r["per_class"] == w["per_class"] and r["false_alarm_rate"] == w["false_alarm_rate"]


def test_evaluate_memory_stays_near_the_data_size(tmp_path):
    # float32 scores take 4 bytes a frame; evaluate used to take ~85 more (float64 copies,
    # boolean label arrays, concatenations). Now: labels (1 byte) and one sorted copy (4).
    import tracemalloc

    n, per = 40, 50_000
    lines = [
        f"A{i}.mp4 Abuse 100 20000 -1 -1" if i % 2 else f"N{i}.mp4 Normal -1 -1 -1 -1"
        for i in range(n)
    ]
    a = _ucf(tmp_path, lines)
    rng = np.random.default_rng(0)
    scores = {ln.split(".")[0]: rng.random(per, dtype=np.float32) for ln in lines}
    tracemalloc.start()
    try:
        metrics.evaluate(scores, a, per_video=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak / (n * per) < 12, peak / (n * per)


def test_align_video_is_what_evaluate_and_plot_use(tmp_path):
    from vadkit.plot import video_curve

    a = _ucf(tmp_path, LINES)
    s = np.r_[np.zeros(10), np.ones(20), np.zeros(40)].astype(np.float32)
    v = metrics.align_video("Abuse001_x264", s, a, frame_count=64)
    assert v.frames == 64 and v.positives == 20 and v.scores.dtype == np.float32
    assert v.aligned == {
        "video": "Abuse001_x264",
        "scores": 70,
        "labels": 64,
        "action": "trimmed scores",
    }
    r = metrics.evaluate(
        {"Abuse001_x264": s, "Normal_Videos_002_x264": np.zeros(32)},
        a,
        frame_counts={"Abuse001_x264": 64},
    )
    assert r["trimmed"] == [v.aligned]
    c = video_curve("Abuse001_x264", s, a, frame_count=64)
    assert np.array_equal(c.scores, v.scores) and np.array_equal(c.labels, v.labels)
    assert c.roc_auc == metrics.video_roc_auc(v) == 1.0


def test_bad_scores_and_threshold_are_refused(tmp_path):
    a = _ucf(tmp_path, LINES)
    with pytest.raises(VadkitError, match="Abuse001_x264: scores must be real numbers"):
        metrics.evaluate({"Abuse001_x264": np.zeros(64, complex)}, a)
    with pytest.raises(VadkitError, match="expected a finite number"):
        metrics.evaluate({"Abuse001_x264": np.zeros(64)}, a, threshold=float("nan"))


def test_the_caller_can_overrule_the_legacy_padding(tmp_path):
    np.save(tmp_path / "gt.npy", np.r_[np.zeros(20), np.ones(12), np.zeros(16)].astype(np.uint8))
    (tmp_path / "t.list").write_text("/x/A_i3d.npy 2\n/x/N_i3d.npy 1\n")
    a = read_annotations(tmp_path / "gt.npy", list_file=tmp_path / "t.list")
    scores = {"A_i3d": np.r_[np.zeros(20), np.ones(9)], "N_i3d": np.zeros(16)}
    r = metrics.evaluate(scores, a, pad_scores=False)
    assert r["trimmed"][0]["action"] == "trimmed labels" and r["frames"] == 45
