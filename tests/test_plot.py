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
