"""`vadkit eval` end to end: sklearn agreement, perfect scores, output files, one-line errors."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score
from typer.testing import CliRunner

from vadkit.cli import app
from vadkit.io.scores import ScoreMeta, write_scores

runner = CliRunner()

GT = [
    ("Abuse001_x264", "Abuse", (10, 40), 70),
    ("Arson002_x264", "Arson", (0, 15), 33),
    ("Arson003_x264", "Arson", (20, 50), 51),
    ("Normal_Videos_001_x264", "Normal", None, 64),
    ("Normal_Videos_002_x264", "Normal", None, 20),
]


def _annotation(tmp_path):
    p = tmp_path / "Temporal_Anomaly_Annotation.txt"
    lines = []
    for v, c, iv, _ in GT:
        s, e = iv if iv else (-1, -1)
        lines.append(f"{v}.mp4  {c}  {s}  {e}  -1  -1  ")
    p.write_text("\n".join(lines) + "\n")
    return p


def _labels(v):
    for name, _, iv, n in GT:
        if name == v:
            y = np.zeros(n, np.uint8)
            if iv:
                y[iv[0] : iv[1] + 1] = 1
            return y
    raise KeyError(v)


def _score_dir(tmp_path, make, *, meta=True):
    d = tmp_path / "scores"
    for v, _, _, n in GT:
        s = make(v, n)
        if meta:
            write_scores(d, ScoreMeta(v, n, 16, -(-n // 16)), s)
        else:
            d.mkdir(exist_ok=True)
            np.save(d / f"{v}.npy", np.asarray(s, np.float32))
    return d


def _ok(result):
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize("meta", [True, False])
def test_random_scores_match_sklearn(tmp_path, meta):
    rng = np.random.default_rng(7)
    d = _score_dir(tmp_path, lambda v, n: rng.random(n), meta=meta)
    ann = _annotation(tmp_path)
    r = _ok(runner.invoke(app, ["eval", str(d), "--annotations", str(ann), "--json"]))
    got = json.loads(r.stdout)
    for key in (
        "roc_auc",
        "average_precision",
        "pr_auc_trapezoid",
        "roc_auc_abnormal",
        "false_alarm_rate",
        "per_class",
        "videos",
        "frames",
    ):
        assert key in got
    names = sorted(v for v, *_ in GT)
    # the arrays exactly as stored (float32 on disk)
    s = np.concatenate([np.load(d / f"{v}.npy").astype(np.float64) for v in names])
    y = np.concatenate([_labels(v) for v in names])
    assert abs(got["roc_auc"] - roc_auc_score(y, s)) <= 1e-12
    assert abs(got["average_precision"] - average_precision_score(y, s)) <= 1e-12
    assert got["videos"] == 5 and got["frames"] == y.size
    assert set(got["per_class"]) == {"Abuse", "Arson"}


def test_perfect_scores_print_one_and_no_false_alarms(tmp_path):
    d = _score_dir(tmp_path, lambda v, n: _labels(v).astype(float))
    r = _ok(runner.invoke(app, ["eval", str(d), "-a", str(_annotation(tmp_path))]))
    out = r.stdout
    for key in ("roc_auc", "average_precision", "pr_auc_trapezoid", "roc_auc_abnormal"):
        line = next(ln for ln in out.splitlines() if f" {key} " in ln)
        assert "1.0000" in line, line
    far = next(ln for ln in out.splitlines() if "false_alarm_rate" in ln)
    assert "0.0000" in far
    j = json.loads(
        _ok(runner.invoke(app, ["eval", str(d), "-a", str(_annotation(tmp_path)), "--json"])).stdout
    )
    assert j["roc_auc"] == j["average_precision"] == j["roc_auc_abnormal"] == 1.0
    assert j["false_alarm_rate"] == 0.0


def test_output_file_and_missing_scores_warning(tmp_path):
    rng = np.random.default_rng(1)
    d = _score_dir(tmp_path, lambda v, n: rng.random(n))
    (d / "Arson003_x264.npy").unlink()
    out = tmp_path / "m" / "metrics.json"
    r = _ok(runner.invoke(app, ["eval", str(d), "-a", str(_annotation(tmp_path)), "-o", str(out)]))
    assert "Warning: 1 annotated video(s) have no scores" in r.stderr
    assert "Arson003_x264" in r.stderr
    saved = json.loads(out.read_text())
    assert saved["missing_scores"] == ["Arson003_x264"] and saved["videos"] == 4
    assert "roc_auc" in r.stdout  # the table still goes to stdout
    r = _ok(runner.invoke(app, ["eval", str(d), "-a", str(_annotation(tmp_path)), "--per-video"]))
    assert "per video" in r.stdout and "Normal_Videos_002_x264" in r.stdout
    assert not list(out.parent.glob(".tmp-*"))


def _one_error_line(result, *needles):
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.output
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def test_error_missing_annotation_file(tmp_path):
    d = _score_dir(tmp_path, lambda v, n: np.zeros(n))
    missing = tmp_path / "nope.txt"
    r = runner.invoke(app, ["eval", str(d), "-a", str(missing)])
    _one_error_line(r, str(missing), "not found")


def test_error_missing_score_dir(tmp_path):
    r = runner.invoke(app, ["eval", str(tmp_path / "none"), "-a", str(_annotation(tmp_path))])
    _one_error_line(r, str(tmp_path / "none"), "not found")


def test_error_malformed_annotation_line(tmp_path):
    d = _score_dir(tmp_path, lambda v, n: np.zeros(n))
    ann = _annotation(tmp_path)
    lines = ann.read_text().splitlines()
    lines[2] = "Arson003_x264.mp4  Arson  20  fifty  -1  -1"
    ann.write_text("\n".join(lines) + "\n")
    r = runner.invoke(app, ["eval", str(d), "-a", str(ann)])
    _one_error_line(r, f"{ann}:3:", "fifty")


def test_error_nan_scores(tmp_path):
    d = _score_dir(tmp_path, lambda v, n: np.zeros(n))
    s = np.zeros(51, np.float32)
    s[7] = np.nan
    np.save(d / "Arson003_x264.npy", s)
    r = runner.invoke(app, ["eval", str(d), "-a", str(_annotation(tmp_path))])
    _one_error_line(r, "Arson003_x264.npy", "NaN", "frame 7")


def test_error_unknown_video(tmp_path):
    d = _score_dir(tmp_path, lambda v, n: np.zeros(n))
    np.save(d / "Mystery042_x264.npy", np.zeros(30, np.float32))
    r = runner.invoke(app, ["eval", str(d), "-a", str(_annotation(tmp_path))])
    _one_error_line(r, "Mystery042_x264", str(_annotation(tmp_path)))


def test_error_length_mismatch(tmp_path):
    d = _score_dir(tmp_path, lambda v, n: np.zeros(n))
    b = tmp_path / "frames.txt"
    b.write_text(
        "\n".join(
            f"{c}/{v}.mp4 {n + (40 if v.startswith('Abuse') else 0)} {c} "
            + (f"{iv[0]} {iv[1]}" if iv else "-1 -1")
            + " -1 -1"
            for v, c, iv, n in GT
        )
        + "\n"
    )
    r = runner.invoke(app, ["eval", str(d), "-a", str(b)])
    _one_error_line(r, "Abuse001_x264", "70 frame scores", "110 frames")


def test_format_option_and_conventions(tmp_path):
    d = _score_dir(tmp_path, lambda v, n: _labels(v).astype(float))
    ann = _annotation(tmp_path)
    base = ["eval", str(d), "-a", str(ann), "--json", "--format", "ucf"]
    assert json.loads(_ok(runner.invoke(app, base)).stdout)["roc_auc"] == 1.0
    shifted = json.loads(_ok(runner.invoke(app, [*base, "--end-exclusive"])).stdout)
    assert shifted["roc_auc"] < 1.0 and shifted["annotations"]["end_inclusive"] is False
    r = runner.invoke(app, [*base, "--one-based"])  # Arson002 starts at frame 0
    _one_error_line(r, f"{ann}:2:", "one-based")
    r = runner.invoke(app, ["eval", str(d), "-a", str(ann), "--format", "xd"])
    _one_error_line(r, f"{ann}:1:", "malformed xd annotation line")
    r = runner.invoke(app, ["eval", str(d), "-a", str(ann), "--format", "bogus"])
    assert r.exit_code == 2


def test_real_shanghaitech_masks_and_xd_annotations(tmp_path, shared_dir):
    ann = shared_dir / "data" / "annotations"
    masks = sorted((ann / "shanghaitech_test_frame_mask").glob("*.npy"))[:6]
    d = tmp_path / "sht"
    d.mkdir()
    for m in masks:  # perfect scores, one snippet of padding on top (trimmed, reported)
        y = np.load(m).astype(np.float32)
        np.save(d / m.name, np.r_[y, np.zeros(9, np.float32)])
    np.save(d / "13_normal_video.npy", np.zeros(100, np.float32))  # unlisted = normal
    j = json.loads(
        _ok(
            runner.invoke(
                app, ["eval", str(d), "-a", str(ann / "shanghaitech_test_frame_mask"), "--json"]
            )
        ).stdout
    )
    assert j["roc_auc"] == 1.0 and j["false_alarm_rate"] == 0.0
    assert j["annotations"]["format"] == "shanghaitech" and len(j["trimmed"]) == 6
    assert j["missing_labels"] == ["13_normal_video"] and len(j["missing_scores"]) == 101

    x = tmp_path / "xd"
    x.mkdir()
    v = "Fast.Five.2011__#00-32-56_00-33-26_label_B2-0-0"
    y = np.zeros(722, np.float32)
    y[155:301] = y[450:687] = 1
    np.save(x / f"{v}.npy", y)
    np.save(x / "Some.Film__#00-01-00_00-01-30_label_A.npy", np.full(500, 0.2, np.float32))
    j = json.loads(
        _ok(
            runner.invoke(
                app, ["eval", str(x), "-a", str(ann / "xd_violence_annotations.txt"), "--json"]
            )
        ).stdout
    )
    assert j["roc_auc"] == 1.0 and j["per_class"]["Shooting"]["roc_auc"] == 1.0
    assert j["normal_videos"] == 1 and j["annotations"]["format"] == "xd"


def test_bad_arguments_exit_2(tmp_path):
    d = _score_dir(tmp_path, lambda v, n: np.zeros(n))
    ann = str(_annotation(tmp_path))
    r = runner.invoke(app, ["eval", str(d), "-a", ann, "--list", ann])
    assert r.exit_code == 2 and "--list is for the legacy gt format" in r.output
    r = runner.invoke(app, ["eval", str(d), "-a", ann, "--threshold", "nan"])
    assert r.exit_code == 2 and "finite" in r.output


def test_option_spellings_and_hidden_aliases(tmp_path):
    d = _score_dir(tmp_path, lambda v, n: _labels(v).astype(float))
    ann = str(_annotation(tmp_path))
    for spelling in (["-f", "ucf"], ["--annotations-format", "ucf"], ["--format", "ucf"]):
        r = _ok(runner.invoke(app, ["eval", str(d), "-a", ann, "--json", *spelling]))
        assert json.loads(r.stdout)["annotations"]["format"] == "ucf"
    out = tmp_path / "old.json"
    _ok(runner.invoke(app, ["eval", str(d), "-a", ann, "--output", str(out)]))
    assert json.loads(out.read_text())["roc_auc"] == 1.0
    for cmd in ("eval", "plot"):
        text = _ok(runner.invoke(app, [cmd, "--help"])).stdout
        assert "--annotations-format" in text and "--out" in text
        assert not re.search(r"(^|[\s,])--(format|output)\b", text), text


def test_out_dash_writes_the_json_to_stdout(tmp_path):
    d = _score_dir(tmp_path, lambda v, n: _labels(v).astype(float))
    r = _ok(runner.invoke(app, ["eval", str(d), "-a", str(_annotation(tmp_path)), "-o", "-"]))
    got = json.loads(r.stdout)  # the JSON only: no table
    assert got["roc_auc"] == 1.0 and got["videos"] == 5
    assert not (tmp_path / "-").exists()


def test_bad_score_files_are_one_error_line(tmp_path):
    ann = _annotation(tmp_path)
    d = _score_dir(tmp_path, lambda v, n: np.zeros(n))
    np.save(d / "Arson003_x264.npy", np.zeros(51, np.complex64))
    _one_error_line(
        runner.invoke(app, ["eval", str(d), "-a", str(ann)]), "Arson003_x264.npy", "complex64"
    )
    np.save(d / "Arson003_x264.npy", np.zeros(51, np.float32))
    j = d / "Arson003_x264.json"
    meta = json.loads(j.read_text())
    for bad in ({"snippet_length": 100000}, {"snippet_length": "x"}):
        j.write_text(json.dumps({**meta, **bad}))
        _one_error_line(runner.invoke(app, ["eval", str(d), "-a", str(ann)]), str(j))
    j.write_text("[]")
    _one_error_line(runner.invoke(app, ["eval", str(d), "-a", str(ann)]), str(j), "JSON object")


def test_legacy_list_naming_a_0d_array_is_one_error_line(tmp_path):
    d = tmp_path / "scores"
    write_scores(d, ScoreMeta("A", 32, 16, 2), np.zeros(32))
    np.save(tmp_path / "gt.npy", np.zeros(32, np.uint8))
    np.save(tmp_path / "A.npy", np.float32(1.0))
    (tmp_path / "t.list").write_text("A.npy\n")
    r = runner.invoke(
        app, ["eval", str(d), "-a", str(tmp_path / "gt.npy"), "--list", str(tmp_path / "t.list")]
    )
    _one_error_line(r, "t.list:1", "0-d array")
