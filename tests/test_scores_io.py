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
    assert arr.dtype == np.float32 and np.array_equal(arr, np.load(p))  # as stored, no copy
    assert np.allclose(arr, s, atol=1e-7)
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


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.array([0.1 + 1j, 0.2]), r"v\.npy: scores must be real numbers, .* complex128"),
        (np.array(["0.1", "0.2"]), r"v\.npy: scores must be real numbers, .* <U3"),
    ],
)
def test_complex_and_string_scores_are_refused(tmp_path, array, match):
    np.save(tmp_path / "v.npy", array)
    with pytest.raises(VadkitError, match=match):
        read_scores(tmp_path)


def test_integer_and_half_scores_are_widened(tmp_path):
    np.save(tmp_path / "i.npy", np.array([0, 1, 1], np.int64))
    np.save(tmp_path / "h.npy", np.array([0.5, 1.0], np.float16))
    got = read_scores(tmp_path)
    assert got["i"][0].dtype == np.float64 and got["h"][0].dtype == np.float32


def _meta(tmp_path, **changes):
    write_scores(tmp_path, ScoreMeta("v", 18, 16, 2), np.zeros(18))
    meta = json.loads((tmp_path / "v.json").read_text())
    meta.update(changes)
    (tmp_path / "v.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        # a snippet length that would let eval accept any length difference
        (
            {"snippet_length": 100000},
            r"v\.json: frame_count 18 cannot come from 2 snippet\(s\) of ",
        ),
        ({"snippets": 3}, r"frame_count 18 cannot come from 3 snippet\(s\) of 16 .* at least 33"),
        ({"snippet_length": "x"}, r"v\.json: snippet_length must be a positive integer, got 'x'"),
        ({"snippets": 1.5}, r"v\.json: snippets must be a positive integer, got 1\.5"),
        ({"frame_count": True}, r"v\.json: frame_count must be a positive integer, got True"),
        ({"model": 3}, r"v\.json: model must be a string"),
        ({"extra": []}, r"v\.json: extra must be a JSON object"),
        ({"frames_used": 60}, r"frames_used 60 cannot come from 2 snippet\(s\) .* 17 to 47"),
    ],
)
def test_metadata_must_agree_with_itself(tmp_path, changes, match):
    _meta(tmp_path, **changes)
    with pytest.raises(VadkitError, match=match):
        read_scores(tmp_path)


def test_consistent_metadata_is_accepted(tmp_path):
    _meta(tmp_path, frames_used=20)  # e.g. resampled features: 20 frames, 2 snippets
    assert read_scores(tmp_path)["v"][1].frames_used == 20
    _meta(tmp_path, snippets=1)  # drop-last: 18 frames, one whole snippet
    assert read_scores(tmp_path)["v"][1].snippets == 1


@pytest.mark.parametrize("text", ["[1, 2]", '"scores"', "3"])
def test_metadata_that_is_not_an_object(tmp_path, text):
    np.save(tmp_path / "v.npy", np.zeros(3))
    (tmp_path / "v.json").write_text(text)
    with pytest.raises(VadkitError, match=r"v\.json: score metadata must be a JSON object"):
        read_scores(tmp_path)
