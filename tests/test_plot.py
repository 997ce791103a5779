"""`vadkit plot`: video matching, curve computation, and PNG/SVG/PDF output."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from vadkit.cli import app
from vadkit.errors import VadkitError
from vadkit.io.annotations import read_annotations
from vadkit.io.scores import ScoreMeta, write_scores
from vadkit.plot import draw_curve, match_video, video_curve

runner = CliRunner()
NAMES = ["Shooting022_x264", "Shooting002_x264", "Shooting02", "Abuse028_x264"]


def test_match_video_rules():
    assert match_video("shooting022", NAMES) == "Shooting022_x264"
    assert match_video("Shooting02", NAMES) == "Shooting02"  # exact wins over prefix
    assert match_video("shooting02", NAMES) == "Shooting02"  # case-insensitive exact too
    with pytest.raises(VadkitError, match="several videos: Shooting002_x264, Shooting02, "):
        match_video("shoot", NAMES)
    with pytest.raises(VadkitError, match=r"no scored video matches 'arson'; available \(4\)"):
        match_video("arson", NAMES)


def _setup(tmp_path):
    ann = tmp_path / "gt.txt"
    ann.write_text(
        "Shooting022_x264.mp4 Shooting 20 39 -1 -1\nNormal_Videos_001_x264.mp4 Normal -1 -1 -1 -1\n"
    )
    d = tmp_path / "scores"
    s = np.r_[np.full(20, 0.1), np.full(20, 0.9), np.full(24, 0.2)]
    write_scores(d, ScoreMeta("Shooting022_x264", 64, 16, 4), s)
    write_scores(d, ScoreMeta("Normal_Videos_001_x264", 32, 16, 2), np.full(32, 0.3))
    return ann, d


def test_video_curve_aligns_like_eval(tmp_path):
    ann, _ = _setup(tmp_path)
    a = read_annotations(ann)
    c = video_curve(
        "Shooting022_x264", np.r_[np.zeros(20), np.ones(20), np.zeros(30)], a, frame_count=64
    )
    assert c.scores.size == 64 and c.intervals == [(20, 40)] and c.roc_auc == 1.0
    assert "trimmed scores" in c.note
    n = video_curve("Normal_Videos_001_x264", np.zeros(32), a)
    assert n.roc_auc is None and n.intervals == []


@pytest.mark.parametrize(
    ("ext", "magic"),
    [("png", b"\x89PNG"), ("jpg", b"\xff\xd8\xff"), ("svg", b"<?xml"), ("pdf", b"%PDF")],
)
def test_plot_command_writes_each_format(tmp_path, ext, magic):
    ann, d = _setup(tmp_path)
    out = tmp_path / f"fig.{ext}"
    r = runner.invoke(
        app, ["plot", "shooting022", "--scores", str(d), "--annotations", str(ann), "-o", str(out)]
    )
    assert r.exit_code == 0, r.output
    assert out.read_bytes().startswith(magic)
    assert "Shooting022_x264" in r.stderr and "ROC AUC 1.0000" in r.stderr
    if ext == "svg":
        assert "Shooting022_x264" in out.read_text()  # the title names the video


def test_plot_errors(tmp_path):
    ann, d = _setup(tmp_path)
    base = ["--scores", str(d), "--annotations", str(ann)]
    r = runner.invoke(app, ["plot", "shooting022", *base, "-o", str(tmp_path / "x.gif")])
    assert r.exit_code == 2 and "png, .jpg, .svg or .pdf" in r.output
    assert not (tmp_path / "x.gif").exists()
    r = runner.invoke(app, ["plot", "shooting022", *base])
    assert r.exit_code == 2 and "--out" in r.output
    r = runner.invoke(app, ["plot", "abuse", *base, "-o", str(tmp_path / "x.png")])
    assert r.exit_code == 1 and r.stderr.startswith("Error: no scored video matches 'abuse'")
    assert "Normal_Videos_001_x264" in r.stderr
    assert not (tmp_path / "x.png").exists()


def test_draw_curve_refuses_unknown_extension(tmp_path):
    ann, _ = _setup(tmp_path)
    c = video_curve("Normal_Videos_001_x264", np.zeros(32), read_annotations(ann))
    with pytest.raises(VadkitError, match="unsupported plot format 'gif'"):
        draw_curve(c, tmp_path / "a.gif")


# -- vadkit plot scores: several videos, seconds, threshold, no ground truth --------------------
def _feature_json(tmp_path, video: str, fps: float):
    """A vadkit feature description beside a (not needed) feature file; returns the .npy path."""
    from vadkit.io.atomic import save_json
    from vadkit.io.features import FeatureMeta, meta_path

    d = tmp_path / "feats"
    m = FeatureMeta(video, "i3d-inception", 8, 1, 4, 64, fps, fps, 64)
    save_json(meta_path(d, video), m.to_json())
    return d / f"{video}.npy"


def test_options_before_the_video_and_a_video_named_like_a_subcommand(tmp_path):
    ann, d = _setup(tmp_path)
    out = tmp_path / "a.svg"
    r = runner.invoke(app, ["plot", "-s", str(d), "-a", str(ann), "shooting022", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "Shooting022_x264" in out.read_text()
    write_scores(d, ScoreMeta("training", 32, 16, 2), np.full(32, 0.4))
    r = runner.invoke(app, ["plot", "scores", "training", "-s", str(d), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "<!-- training -->" in out.read_text()
    r = runner.invoke(app, ["plot", "training", "-s", str(d), "-o", str(out)])
    assert r.exit_code == 2  # `training` is the sub-command, which has no -s


def test_several_videos_one_figure_or_one_file_each(tmp_path):
    ann, d = _setup(tmp_path)
    out = tmp_path / "two.svg"
    args = ["-s", str(d), "-a", str(ann)]
    r = runner.invoke(app, ["plot", "shooting022", "normal", *args, "-o", str(out)])
    assert r.exit_code == 0, r.output
    svg = out.read_text()
    assert (
        "Shooting022_x264  (ROC AUC 1.0000)" in svg
        and "<!-- Normal_Videos_001_x264  (normal: no anomalous frames) -->" in svg
    )
    assert svg.count("<!-- anomaly score -->") == 2  # one panel each
    r = runner.invoke(
        app, ["plot", "shooting022", "normal", *args, "-o", str(tmp_path / "each") + "/"]
    )
    assert r.exit_code == 0, r.output
    made = sorted(p.name for p in (tmp_path / "each").iterdir())
    assert made == ["Normal_Videos_001_x264.png", "Shooting022_x264.png"]


def test_no_ground_truth_threshold_and_seconds_axis(tmp_path):
    d = tmp_path / "scores"
    feats = _feature_json(tmp_path, "v", 25.0)
    write_scores(d, ScoreMeta("v", 64, 16, 4, features=str(feats)), np.linspace(0, 1, 64))
    write_scores(d, ScoreMeta("w", 64, 16, 4), np.linspace(1, 0, 64))
    out = tmp_path / "v.svg"
    r = runner.invoke(app, ["plot", "v", "-s", str(d), "-o", str(out), "--threshold", "0.5"])
    assert r.exit_code == 0, r.output
    svg = out.read_text()
    assert "<!-- time (s) -->" in svg and "<!-- threshold 0.5 -->" in svg
    assert "anomalous" not in svg and "ROC AUC" not in svg
    r = runner.invoke(app, ["plot", "w", "-s", str(d), "-o", str(out)])
    assert r.exit_code == 0 and "<!-- frame -->" in out.read_text()  # fps unknown


def test_video_fps_sources(tmp_path):
    from vadkit.plot import video_fps

    feats = _feature_json(tmp_path, "v", 30.0)
    assert video_fps(ScoreMeta("v", 64, 16, 4, features=str(feats))) == 30.0
    assert video_fps(ScoreMeta("v", 64, 16, 4, features=str(feats.parent))) == 30.0
    (tmp_path / "scores").mkdir()
    rel = ScoreMeta("v", 64, 16, 4, features="../feats/v.npy")  # relative to the score dir
    assert video_fps(rel, tmp_path / "scores") == 30.0
    assert video_fps(ScoreMeta("v", 64, 16, 4, features=str(feats), extra={"fps": 12.5})) == 12.5
    assert video_fps(ScoreMeta("v", 64, 16, 4, features="/nowhere/v.npy")) is None
    assert video_fps(ScoreMeta("v", 64, 16, 4)) is None and video_fps(None) is None


# -- ROC / PR curves ---------------------------------------------------------------------------
def test_curve_points_integrate_to_the_metrics_and_match_sklearn():
    from sklearn.metrics import roc_curve as sk_roc

    from vadkit.metrics import pr_auc_trapezoid, pr_curve, roc_auc, roc_curve

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 3000)
    s = np.round(rng.random(3000) + 0.4 * y, 2)  # ties
    fpr, tpr, thr = roc_curve(y, s)
    assert abs(np.trapezoid(tpr, fpr) - roc_auc(y, s)) < 1e-12
    f2, t2, _ = sk_roc(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, f2) and np.testing.assert_allclose(tpr, t2)
    assert thr[0] == np.inf and np.all(np.diff(thr[1:]) < 0)
    recall, precision, _ = pr_curve(y, s)
    assert recall[0] == 0 and precision[0] == 1 and recall[-1] == 1
    assert abs(np.trapezoid(precision, recall) - pr_auc_trapezoid(y, s)) < 1e-12
    with pytest.raises(VadkitError, match="needs both normal and anomalous"):
        roc_curve(np.zeros(5), np.arange(5))


def test_plot_curves_roc_and_pr_of_two_score_dirs(tmp_path):
    ann, d = _setup(tmp_path)
    worse = tmp_path / "worse"
    s = np.r_[np.full(20, 0.5), np.full(20, 0.4), np.full(24, 0.2)]
    write_scores(worse, ScoreMeta("Shooting022_x264", 64, 16, 4), s)
    write_scores(worse, ScoreMeta("Normal_Videos_001_x264", 32, 16, 2), np.full(32, 0.45))
    out = tmp_path / "roc.svg"
    r = runner.invoke(app, ["plot", "curves", str(d), str(worse), "-a", str(ann), "-o", str(out)])
    assert r.exit_code == 0, r.output
    ev = runner.invoke(app, ["eval", str(worse), "-a", str(ann), "--json"])
    auc = __import__("json").loads(ev.stdout)["roc_auc"]
    assert f"worse: ROC AUC {auc:.4f}" in r.stderr and "scores: ROC AUC 1.0000" in r.stderr
    assert f"worse (ROC AUC {auc:.4f})" in out.read_text()
    r = runner.invoke(
        app, ["plot", "curves", str(d), "-a", str(ann), "--kind", "pr", "-o", str(out)]
    )
    assert r.exit_code == 0 and "AP 1.0000, PR AUC 1.0000" in r.stderr
    assert "<!-- recall -->" in out.read_text()


# -- training curves ---------------------------------------------------------------------------
def _run(tmp_path, name: str, with_val: bool = True):
    import json

    d = tmp_path / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model": "rtfm"}))
    lines = []
    for step in (50, 100, 150):
        rec = {"step": step, "loss": {"total": 2.0 / step, "mil": 1.0 / step, "smooth": 0.01}}
        if with_val:
            rec.update(roc_auc=0.5 + step / 400, average_precision=0.4 + step / 500)
        rec["seconds"] = step / 10
        lines.append(json.dumps(rec))
    (d / "log.jsonl").write_text("\n".join(lines) + "\n")
    return d


def test_plot_training_overlays_runs_and_prints_the_table(tmp_path):
    import json

    a, b = _run(tmp_path, "rtfm"), _run(tmp_path, "mgfn", with_val=False)
    out = tmp_path / "curves.svg"
    r = runner.invoke(app, ["plot", "training", str(a), str(b), "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert len(rows) == 6 and rows[0]["run"] == "rtfm" and rows[0]["model"] == "rtfm"
    assert rows[2]["roc_auc"] == 0.5 + 150 / 400 and rows[2]["pr_auc_trapezoid"] is None
    assert rows[3]["roc_auc"] is None and rows[3]["loss"]["mil"] == 1 / 50
    svg = out.read_text()
    assert "<!-- rtfm: AP -->" in svg and "<!-- mgfn: smooth -->" in svg
    assert "<!-- validation ROC AUC -->" in svg and "<!-- rtfm -->" in svg
    assert "Wrote" in r.stderr and "2 run(s), 6 evaluation(s)" in r.stderr
    r = runner.invoke(app, ["plot", "training", str(a), "--json"])  # no figure: table only
    assert r.exit_code == 0 and len(json.loads(r.stdout)) == 3
    r = runner.invoke(app, ["plot", "training", str(a)])
    assert r.exit_code == 2 and "--out" in r.output


def test_plot_training_errors(tmp_path):
    r = runner.invoke(app, ["plot", "training", str(tmp_path), "-o", str(tmp_path / "x.png")])
    assert r.exit_code == 1 and "no training log (log.jsonl)" in r.stderr
    (tmp_path / "log.jsonl").write_text('{"step": 1, "loss": {}}\n{"step": oops}\n')
    r = runner.invoke(app, ["plot", "training", str(tmp_path), "-o", str(tmp_path / "x.png")])
    assert r.exit_code == 1 and f"{tmp_path / 'log.jsonl'}:2: not a JSON line" in r.stderr


# -- feature views -----------------------------------------------------------------------------
def test_feature_views_and_plot(tmp_path):
    from vadkit.plot import feature_views

    rng = np.random.default_rng(1)
    x = rng.normal(size=(12, 3, 8)).astype(np.float32)
    np.save(tmp_path / "v.npy", x)
    v = feature_views(tmp_path / "v.npy", slice_index=-1)
    assert v.image.shape == (12, 8) and v.slice_index == 11
    np.testing.assert_allclose(v.image, x.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(v.crop_means, x.mean(axis=2).T, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(v.magnitude[2], np.linalg.norm(x[:, 2], axis=1), rtol=1e-6)
    np.testing.assert_allclose(v.slice_values, x[11], rtol=1e-6)
    assert feature_views(tmp_path / "v.npy").slice_index == 6
    out = tmp_path / "f.png"
    r = runner.invoke(app, ["plot", "features", str(tmp_path / "v.npy"), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_bytes().startswith(b"\x89PNG") and "12 snippets, 3 crop(s), 8 dims" in r.stderr
    r = runner.invoke(
        app, ["plot", "features", str(tmp_path / "v.npy"), "--slice", "12", "-o", str(out)]
    )
    assert r.exit_code == 1 and "has 12 snippets (0 to 11)" in r.stderr
    np.save(tmp_path / "bad.npy", np.zeros(4))
    r = runner.invoke(app, ["plot", "features", str(tmp_path / "bad.npy"), "-o", str(out)])
    assert r.exit_code == 1 and r.stderr.startswith("Error:") and "(t, n, d)" in r.stderr


def test_plot_help_lists_subcommands_and_the_default_options():
    r = runner.invoke(app, ["plot", "--help"])
    assert r.exit_code == 0
    for word in ("scores", "training", "curves", "features", "--scores", "--threshold"):
        assert word in r.stdout
