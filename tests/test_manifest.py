"""Manifests: CSV with labels/paths, RTFM .list files with --abnormal-first or naming rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from vadkit.errors import VadkitError
from vadkit.io.manifest import Entry, label_from_name, read_manifest, video_id, write_manifest


def test_csv_manifest_with_relative_paths(tmp_path):
    (tmp_path / "sub").mkdir()
    p = tmp_path / "sub" / "test.csv"
    p.write_text("\nvideo,label,path\nA001,1,feats/A001.npy\nN001,0,/abs/N001.npy\n\n")
    e = read_manifest(p)
    assert e == [
        Entry("A001", 1, tmp_path / "sub" / "feats" / "A001.npy"),
        Entry("N001", 0, Path("/abs/N001.npy")),
    ]


def test_csv_roundtrip(tmp_path):
    entries = [
        Entry("A001", 1, tmp_path / "f" / "A001.npy"),
        Entry("N001", 0, tmp_path / "f" / "N001.npy"),
    ]
    write_manifest(tmp_path / "m.csv", entries)
    assert (tmp_path / "m.csv").read_text().splitlines()[1] == "A001,1,f/A001.npy"
    assert read_manifest(tmp_path / "m.csv") == entries
    write_manifest(tmp_path / "n.csv", [Entry("x", 0), Entry("y", 1)])
    assert read_manifest(tmp_path / "n.csv") == [Entry("x", 0), Entry("y", 1)]


def test_csv_naming_rule_instead_of_labels(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("video\nNormal_Videos_001_x264\nAbuse001_x264\n")
    assert [e.label for e in read_manifest(p, naming="ucf")] == [0, 1]
    with pytest.raises(VadkitError, match=r"m\.csv:1: CSV manifest has no 'label' column"):
        read_manifest(p)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("video,label\nA,2\n", r":2: label must be 0 \(normal\) or 1"),
        ("video,label\nA,1,extra\n", r":2: expected 2 fields"),
        ("video,label\n,1\n", r":2: empty video name"),
        ("video,label\nA,1\nA,0\n", "listed twice"),
        ("video,label\n", "lists no videos"),
    ],
)
def test_csv_errors(tmp_path, text, match):
    p = tmp_path / "m.csv"
    p.write_text(text)
    with pytest.raises(VadkitError, match=match):
        read_manifest(p)


def test_list_manifest_abnormal_first_and_naming(tmp_path):
    p = tmp_path / "ucf-i3d-test.list"
    p.write_text(
        "/data/UCF/Abuse028_x264_i3d.npy\n/data/UCF/Arrest001_x264_i3d.npy\n"
        "/data/UCF/Normal_Videos_003_x264_i3d.npy\n"
    )
    e = read_manifest(p, abnormal_first=2)
    assert [x.label for x in e] == [1, 1, 0] and e[0].video == "Abuse028_x264_i3d"
    assert [x.label for x in read_manifest(p, naming="ucf")] == [1, 1, 0]
    with pytest.raises(VadkitError, match="has no labels"):
        read_manifest(p)
    with pytest.raises(VadkitError, match="--abnormal-first 5 but the list has 3 lines"):
        read_manifest(p, abnormal_first=5)


def test_xd_names_keep_their_dots():
    name = "Fast.Five.2011__#00-32-56_00-33-26_label_B2-0-0"
    assert video_id(f"/feats/{name}.npy") == name
    assert video_id(name) == name
    assert video_id(f"videos/{name}.mp4") == name
    assert label_from_name("v=x__#1_label_A", "xd") == 0
    assert label_from_name(name, "xd") == 1
    with pytest.raises(VadkitError, match="unknown naming rule 'kinetics'"):
        label_from_name(name, "kinetics")


def test_missing_manifest(tmp_path):
    with pytest.raises(VadkitError, match="manifest not found"):
        read_manifest(tmp_path / "none.csv")
