"""Score files: vadkit's VID.npy + VID.json, and bare arrays written by other tools."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vadkit.errors import VadkitError
from vadkit.io.scores import ScoreMeta, read_scores, write_scores


def test_roundtrip_with_metadata(tmp_path):
    s = np.linspace(0, 1, 40)
    p = write_scores(tmp_path, ScoreMeta("Abuse028_x264", 40, 16, 3, model="rtfm"), s)
    assert p == tmp_path / "Abuse028_x264.npy"
    assert np.load(p).dtype == np.float32
    got = read_scores(tmp_path)
    arr, meta = got["Abuse028_x264"]
    assert arr.dtype == np.float64 and np.allclose(arr, s, atol=1e-7)
    assert meta.frame_count == 40 and meta.snippets == 3 and meta.model == "rtfm"
    assert not list(tmp_path.glob(".tmp-*"))


def test_bare_arrays_and_column_vectors_are_accepted(tmp_path):
    np.save(tmp_path / "b.npy", np.zeros((5, 1), np.float32))
    np.save(tmp_path / "a.npy", np.ones(3))
    (tmp_path / "a.json").write_text('{"some": "other tool"}')
    got = read_scores(tmp_path)
    assert list(got) == ["a", "b"]
    assert got["a"][1] is None and got["b"][0].shape == (5,)


def test_write_refuses_wrong_length(tmp_path):
    with pytest.raises(VadkitError, match="3 frame scores but frame count 4"):
        write_scores(tmp_path, ScoreMeta("v", 4, 16, 1), np.zeros(3))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda d: np.save(d / "v.npy", np.array([0.1, np.inf, np.nan])),
            r"v\.npy: 2 non-finite .* frame 1",
        ),
        (
            lambda d: np.save(d / "v.npy", np.zeros((3, 4))),
            r"v\.npy: expected a 1-D array .* \(3, 4\)",
        ),
        (lambda d: (d / "v.npy").write_bytes(b"not numpy"), r"v\.npy: unreadable score file"),
    ],
)
def test_bad_score_files_name_the_file(tmp_path, make, match):
    make(tmp_path)
    with pytest.raises(VadkitError, match=match):
        read_scores(tmp_path)


def test_metadata_that_disagrees_or_is_broken(tmp_path):
    write_scores(tmp_path, ScoreMeta("v", 4, 16, 1), np.zeros(4))
    meta = json.loads((tmp_path / "v.json").read_text())
    meta["frame_count"] = 7
    (tmp_path / "v.json").write_text(json.dumps(meta))
    with pytest.raises(VadkitError, match=r"v\.npy: 4 frame scores but v\.json says frame_count 7"):
        read_scores(tmp_path)
    del meta["frame_count"]
    (tmp_path / "v.json").write_text(json.dumps(meta))
    with pytest.raises(VadkitError, match=r"v\.json: incomplete score metadata"):
        read_scores(tmp_path)
    (tmp_path / "v.json").write_text("{broken")
    with pytest.raises(VadkitError, match=r"v\.json: unreadable score metadata"):
        read_scores(tmp_path)


def test_missing_or_empty_directory(tmp_path):
    with pytest.raises(VadkitError, match="score directory not found"):
        read_scores(tmp_path / "none")
    with pytest.raises(VadkitError, match=r"no score files \(\*\.npy\)"):
        read_scores(tmp_path)
