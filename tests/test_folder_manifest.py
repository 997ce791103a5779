"""`vadkit manifest DIR --labels ...`: labels from folders, a seeded split, paths the reader finds."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from vadkit.cli import app
from vadkit.errors import VadkitError
from vadkit.io.folders import parse_labels, scan, split
from vadkit.io.manifest import read_manifest

runner = CliRunner()
LABELS = "normal=0,suspicious=1,illicit=1"


def _tree(tmp_path, extra: str | None = None):
    """Mini-drone-like: 5 normal, 3 suspicious, 2 illicit videos (one nested deeper)."""
    root = tmp_path / "minidrone"
    names = {"Normal": 5, "Suspicious": 3, "illicit": 2}
    for folder, n in names.items():
        for i in range(n):
            sub = root / folder / ("night" if folder == "illicit" and i else "")
            sub.mkdir(parents=True, exist_ok=True)
            (sub / f"{folder.lower()}_{i:02d}.mp4").write_bytes(b"")
    (root / "Normal" / "readme.txt").write_text("not a video")
    if extra:
        (root / extra).mkdir()
        (root / extra / "odd_00.avi").write_bytes(b"")
    return root


def test_labels_from_folders_and_paths_relative_to_the_csv(tmp_path):
    root = _tree(tmp_path)
    out = tmp_path / "lists" / "all.csv"
    r = runner.invoke(app, ["manifest", str(root), "--labels", LABELS, "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "10 videos: 5 normal, 5 abnormal" in r.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "video,label,path,class"
    assert "illicit_01,1,../minidrone/illicit/night/illicit_01.mp4,illicit" in lines
    entries = read_manifest(out)
    assert len(entries) == 10 and all(e.path.is_file() for e in entries)
    assert {e.video: e.label for e in entries}["normal_03"] == 0


def test_seeded_split_keeps_label_proportions(tmp_path):
    root = _tree(tmp_path)
    args = ["manifest", str(root), "--labels", LABELS, "--split", "0.8", "-o"]
    r = runner.invoke(app, [*args, str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    train, test = (
        read_manifest(tmp_path / "a" / "train.csv"),
        read_manifest(tmp_path / "a" / "test.csv"),
    )
    assert len(train) == 8 and len(test) == 2  # round(0.8·5) = 4 of each label
    assert sum(e.label for e in train) == 4 and sum(e.label for e in test) == 1
    assert not {e.video for e in train} & {e.video for e in test}
    runner.invoke(app, [*args, str(tmp_path / "b")])
    same = (tmp_path / "a" / "test.csv").read_text() == (tmp_path / "b" / "test.csv").read_text()
    assert same  # the same seed, the same split
    runner.invoke(app, [*args, str(tmp_path / "c"), "--seed", "3"])
    tests = {(tmp_path / d / "test.csv").read_text() for d in "ac"}
    assert len(tests) == 2 or len(test) == 0  # another seed draws another split
    r = runner.invoke(app, [*args, str(tmp_path / "x.csv")])
    assert r.exit_code == 2 and "-o is a directory" in r.output


def test_unknown_folders_are_refused_unless_ignored(tmp_path):
    root = _tree(tmp_path, extra="unsorted")
    base = ["manifest", str(root), "--labels", LABELS, "-o", str(tmp_path / "m.csv")]
    r = runner.invoke(app, base)
    assert r.exit_code == 1
    assert r.stderr.startswith("Error: 1 video(s) under") and "in unsorted" in r.stderr
    r = runner.invoke(app, [*base, "--ignore-unknown"])
    assert r.exit_code == 0 and "skipped 1 video(s)" in r.stderr
    assert len(read_manifest(tmp_path / "m.csv")) == 10


def test_bad_labels_duplicates_and_features(tmp_path):
    root = _tree(tmp_path)
    r = runner.invoke(app, ["manifest", str(root), "--labels", "normal=2", "-o", "m.csv"])
    assert r.exit_code == 2 and "FOLDER=0 (normal) or FOLDER=1" in r.output
    with pytest.raises(VadkitError, match="given twice"):
        parse_labels("normal=0,Normal=1")
    (root / "Suspicious" / "normal_00.avi").write_bytes(b"")
    with pytest.raises(VadkitError, match="video normal_00 is in two places"):
        scan(root, parse_labels(LABELS))
    feats = tmp_path / "feats" / "normal"
    feats.mkdir(parents=True)
    for name in ("v.npy", "v_patch23.npy", "v_patch35.npy", "v.json"):
        (feats / name).write_bytes(b"")
    entries, _ = scan(tmp_path / "feats", {"normal": 0}, extensions=["npy"])
    assert [e.video for e in entries] == ["v"]
    with pytest.raises(VadkitError, match="leaves the test split empty"):
        split(entries, 0.8)
