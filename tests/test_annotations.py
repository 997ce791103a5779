"""Ground-truth readers: the real published files in ../shared and small synthetic ones."""

from __future__ import annotations

import numpy as np
import pytest

from vadkit.errors import VadkitError
from vadkit.io.annotations import (
    DEFAULT_CONVENTIONS,
    check_list_file,
    detect_format,
    mask_to_intervals,
    read_annotations,
)


@pytest.fixture(scope="module")
def ann_dir(shared_dir):
    return shared_dir / "data" / "annotations"


# -- real files ----------------------------------------------------------------------------------
def test_ucf_shooting022_marks_frames_2850_to_3300_inclusive(ann_dir):
    a = read_annotations(ann_dir / "ucf_crime_temporal_anomaly_annotation.txt")
    assert a.format == "ucf"
    assert len(a) == 290
    labels = a.labels("Shooting022_x264", 4554)
    assert labels.dtype == np.uint8 and labels.shape == (4554,)
    on = np.flatnonzero(labels)
    assert on[0] == 2850 and on[-1] == 3300 and on.size == 3300 - 2850 + 1
    assert a.video_class("Shooting022_x264") == "Shooting"
    assert a.intervals("Shooting022_x264") == [(2850, 3301)]


def test_ucf_conventions_are_options(ann_dir):
    path = ann_dir / "ucf_crime_temporal_anomaly_annotation.txt"
    one = read_annotations(path, one_based=True).labels("Shooting022_x264", 4554)
    assert np.flatnonzero(one)[[0, -1]].tolist() == [2849, 3299]
    excl = read_annotations(path, end_inclusive=False).labels("Shooting022_x264", 4554)
    assert np.flatnonzero(excl)[[0, -1]].tolist() == [2850, 3299]
    assert DEFAULT_CONVENTIONS["ucf"] == (False, True)


def test_ucf_normal_videos_and_two_intervals(ann_dir):
    a = read_annotations(ann_dir / "ucf_crime_temporal_anomaly_annotation.txt")
    normal = [v for v in a.videos if a.video_class(v) == "Normal"]
    assert len(normal) == 150
    assert not a.is_anomalous(normal[0]) and a.labels(normal[0], 100).sum() == 0
    two = [v for v in a.videos if len(a.intervals(v)) == 2]
    assert two, "the UCF-Crime file has videos with two intervals"
    # unknown videos are errors: the UCF file lists every test video
    with pytest.raises(VadkitError, match="Nope001"):
        a.labels("Nope001_x264", 10)
    # names from feature files (RTFM's _i3d suffix, a path, an extension) find the video
    assert "Shooting022_x264_i3d" in a and "x/Shooting022_x264.npy" in a


def test_ucf_frames_knows_frame_counts_and_agrees_with_ucf(ann_dir):
    b = read_annotations(ann_dir / "ucf_crime_annotation_with_frame_counts.txt")
    a = read_annotations(ann_dir / "ucf_crime_temporal_anomaly_annotation.txt")
    assert b.format == "ucf-frames" and set(a.videos) == set(b.videos)
    assert b.frame_count("Shooting022_x264") == 4554
    for v in b.videos:  # every interval fits (ends past the last frame are clipped)
        n = b.frame_count(v)
        assert np.array_equal(b.labels(v), a.labels(v, n)), v
    with pytest.raises(VadkitError, match="4554 frames in the annotation but 4000"):
        b.labels("Shooting022_x264", 4000)


def test_xd_unlisted_videos_are_normal(ann_dir):
    x = read_annotations(ann_dir / "xd_violence_annotations.txt")
    assert x.format == "xd" and x.unlisted_normal and len(x) == 500
    v = "Fast.Five.2011__#00-32-56_00-33-26_label_B2-0-0"  # dots in the name are kept
    assert x.intervals(v) == [(155, 301), (450, 687)]
    assert x.video_classes(v) == ("Shooting",)
    assert x.labels(v, 722).sum() == (301 - 155) + (687 - 450)
    normal = "Some.Movie__#00-00-00_00-00-10_label_A"
    assert normal not in x and not x.is_anomalous(normal)
    assert x.labels(normal, 50).sum() == 0 and x.video_class(normal) == "Normal"
    multi = [w for w in x.videos if len(x.video_classes(w)) > 1]
    assert multi and all(c != "Normal" for c in x.video_classes(multi[0]))


def test_shanghaitech_masks(ann_dir):
    d = ann_dir / "shanghaitech_test_frame_mask"
    s = read_annotations(d)
    assert s.format == "shanghaitech" and len(s) == 107 and s.unlisted_normal
    m = np.load(d / "01_0015.npy")
    assert np.array_equal(s.labels("01_0015"), m)
    assert s.frame_count("01_0015") == m.size
    assert s.intervals("01_0015") == mask_to_intervals(m)
    assert s.labels("01_0015_i3d").size == m.size  # RTFM feature naming finds the mask
    with pytest.raises(VadkitError, match="frames in the annotation"):
        s.labels("01_0015", m.size + 1)


def test_detect_format(ann_dir, tmp_path):
    assert detect_format(ann_dir / "ucf_crime_temporal_anomaly_annotation.txt") == "ucf"
    assert detect_format(ann_dir / "ucf_crime_annotation_with_frame_counts.txt") == "ucf-frames"
    assert detect_format(ann_dir / "xd_violence_annotations.txt") == "xd"
    assert detect_format(ann_dir / "shanghaitech_test_frame_mask") == "shanghaitech"
    (tmp_path / "a.txt").write_text("video,start,end\nv1,1,2\n")
    assert detect_format(tmp_path / "a.txt") == "csv"
    (tmp_path / "b.txt").write_text("what is this\n")
    with pytest.raises(VadkitError, match=r"b\.txt:1: cannot tell"):
        read_annotations(tmp_path / "b.txt")


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fmt", "text", "line"),
    [
        ("ucf", "A001_x264.mp4 Abuse 1 5 -1 -1\nA002_x264.mp4 Abuse 1 five -1 -1\n", 2),
        ("ucf", "A001_x264.mp4 Abuse 1 5 -1\n", 1),
        ("ucf-frames", "Abuse/A001.mp4 100 Abuse 1 5 -1 -1\nAbuse/A002.mp4 x Abuse 1 5 -1 -1\n", 2),
        ("xd", "v1_label_B1-0-0 1 5\n\nv2_label_B1-0-0 1 5 7\n", 3),
        ("ucf", "A001_x264.mp4 Abuse 9 5 -1 -1\n", 1),
        ("ucf", "A001_x264.mp4 Abuse -3 5 -1 -1\n", 1),
        ("ucf", "A001.mp4 Abuse 1 5 -1 -1\nA001.mp4 Abuse 1 5 -1 -1\n", 2),
    ],
)
def test_malformed_lines_name_file_line_and_text(tmp_path, fmt, text, line):
    p = tmp_path / "gt.txt"
    p.write_text(text)
    with pytest.raises(VadkitError) as e:
        read_annotations(p, format=fmt)
    msg = str(e.value)
    assert f"{p}:{line}:" in msg
    bad_line = text.splitlines()[line - 1].split()[0]
    assert bad_line in msg


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(VadkitError, match="not found"):
        read_annotations(tmp_path / "nope.txt")
    (tmp_path / "x.txt").write_text("a 1 2\n")
    with pytest.raises(VadkitError, match="unknown annotation format 'bogus'"):
        read_annotations(tmp_path / "x.txt", format="bogus")


def test_one_based_rejects_frame_zero(tmp_path):
    p = tmp_path / "gt.txt"
    p.write_text("v1_label_B1-0-0 0 5\n")
    with pytest.raises(VadkitError, match=r"gt\.txt:1: frame 0 .* one-based"):
        read_annotations(p, one_based=True)


def test_interval_past_the_video_is_clipped_but_a_start_past_it_is_an_error(tmp_path):
    p = tmp_path / "gt.txt"
    p.write_text("A001.mp4 Abuse 5 12 20 30\n")
    a = read_annotations(p)
    assert a.labels("A001", 25).tolist() == [0] * 5 + [1] * 8 + [0] * 7 + [1] * 5
    with pytest.raises(VadkitError, match=r"gt\.txt:1: interval of A001 starts at frame 20"):
        a.labels("A001", 18)


# -- csv -------------------------------------------------------------------------------------
def test_csv_intervals_classes_normals_and_frames(tmp_path):
    p = tmp_path / "annotations.csv"
    p.write_text(
        "video,start,end,class,frames\n"
        "fight_000,3,5,fighting,20\n"
        "fight_000,10,11,fighting,20\n"
        "walk_001,,,,16\n"
        "fall_002,0,0,falling,\n"
    )
    a = read_annotations(p)
    assert a.format == "csv" and not a.unlisted_normal
    assert a.videos == ["fight_000", "walk_001", "fall_002"]
    assert np.flatnonzero(a.labels("fight_000")).tolist() == [3, 4, 5, 10, 11]
    assert a.frame_count("walk_001") == 16 and not a.is_anomalous("walk_001")
    assert a.labels("fall_002", 4).tolist() == [1, 0, 0, 0]
    assert a.video_class("fight_000") == "fighting" and a.video_class("walk_001") is None
    with pytest.raises(VadkitError, match="not in the annotation"):
        a.labels("other", 5)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("video,begin\nv,1\n", r":1: CSV annotation needs a header"),
        ("video,start,end\nv,1,2\nw,1\n", r":3: expected 3 fields"),
        ("video,start,end\nv,1,x\n", r":2: start and end must be frame numbers"),
        ("video,start,end\nv,4,2\n", r":2: interval end 2 is before its start 4"),
    ],
)
def test_csv_errors(tmp_path, text, match):
    p = tmp_path / "a.csv"
    p.write_text(text)
    with pytest.raises(VadkitError, match=match):
        read_annotations(p)


# -- legacy ------------------------------------------------------------------------------------
def _legacy(tmp_path, ts=(3, 2, 4)):
    feats = tmp_path / "feats"
    feats.mkdir()
    gt, lines = [], []
    for i, t in enumerate(ts):
        np.save(feats / f"vid{i}_i3d.npy", np.zeros((t, 2, 4), np.float32))
        g = np.zeros(16 * t, np.uint8)
        if i != 1:
            g[5 + i : 20 + i] = 1
        gt.append(g)
        lines.append(f"feats/vid{i}_i3d.npy")
    np.save(tmp_path / "gt-test.npy", np.concatenate(gt))
    return tmp_path / "gt-test.npy", lines, gt


def test_legacy_with_readable_feature_files(tmp_path):
    gt_path, lines, gt = _legacy(tmp_path)
    (tmp_path / "test.list").write_text("\n".join(lines) + "\n")
    a = read_annotations(gt_path, list_file=tmp_path / "test.list")
    assert a.format == "legacy" and a.videos == ["vid0", "vid1", "vid2"]
    for i, v in enumerate(a.videos):
        assert np.array_equal(a.labels(v), gt[i])
    assert not a.is_anomalous("vid1") and a.frame_count("vid2") == 64


def test_legacy_counts_from_list_or_snippets_and_crop_files(tmp_path):
    gt_path, _, gt = _legacy(tmp_path)
    # absolute paths from another machine: counts after the path, crop files collapse
    (tmp_path / "a.list").write_text(
        "/elsewhere/vid0__0.npy 3\n/elsewhere/vid0__1.npy 3\n/elsewhere/vid1__0.npy 2\n"
        "/elsewhere/vid2__0.npy 4\n"
    )
    a = read_annotations(gt_path, list_file=tmp_path / "a.list")
    assert a.videos == ["vid0", "vid1", "vid2"] and np.array_equal(a.labels("vid2"), gt[2])
    (tmp_path / "b.list").write_text(
        "/elsewhere/vid0.npy\n/elsewhere/vid1.npy\n/elsewhere/vid2.npy\n"
    )
    with pytest.raises(VadkitError, match=r"b\.list:1: cannot tell how many snippets vid0"):
        read_annotations(gt_path, list_file=tmp_path / "b.list")
    b = read_annotations(
        gt_path, list_file=tmp_path / "b.list", snippets={"vid0_i3d": 3, "vid1": 2, "vid2": 4}
    )
    assert np.array_equal(b.labels("vid0"), gt[0])
    with pytest.raises(
        VadkitError, match=r"gt has 144 entries but the 3 videos .* account for 160"
    ):
        read_annotations(
            gt_path, list_file=tmp_path / "b.list", snippets={"vid0": 3, "vid1": 3, "vid2": 4}
        )
    with pytest.raises(VadkitError, match="needs the list file"):
        read_annotations(gt_path)


def test_legacy_list_naming_a_0d_array_is_an_error(tmp_path):
    gt_path, lines, _ = _legacy(tmp_path)
    np.save(tmp_path / "feats" / "vid1_i3d.npy", np.float32(3.0))  # a single number
    (tmp_path / "test.list").write_text("\n".join(lines) + "\n")
    with pytest.raises(VadkitError, match=r"test\.list:2: feature file .*vid1_i3d\.npy .*0-d"):
        read_annotations(gt_path, list_file=tmp_path / "test.list")


def test_only_the_legacy_gt_pads_short_scores_and_takes_a_list(tmp_path):
    gt_path, lines, _ = _legacy(tmp_path)
    (tmp_path / "test.list").write_text("\n".join(lines) + "\n")
    assert read_annotations(gt_path, list_file=tmp_path / "test.list").pad_short_scores
    ucf = tmp_path / "gt.txt"
    ucf.write_text("A.mp4 Abuse 0 3 -1 -1\n")
    assert not read_annotations(ucf).pad_short_scores
    with pytest.raises(VadkitError, match=r"--list is for the legacy gt format, but .* is ucf"):
        read_annotations(ucf, list_file=tmp_path / "test.list")
    with pytest.raises(VadkitError, match="is shanghaitech"):
        check_list_file(tmp_path / "feats", "auto", tmp_path / "test.list")
    check_list_file(gt_path, "auto", tmp_path / "test.list")  # a .npy is the legacy gt
    check_list_file(tmp_path / "missing.txt", "auto", "x.list")  # read_annotations says so
