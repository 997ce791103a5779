"""Adversarial inputs to `score` and the readers under it (issue "Nothing lost, nothing escapes").

Grouped by the issue's item numbers. Each case is what a careless or hostile file does to a
command: it must end in one `Error:` line (exit 1) or a note, never a traceback, never a write
outside `-o`, never a lost input.
"""

from __future__ import annotations

import io
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from test_train import config, make_dataset
from typer.testing import CliRunner

from vadkit.cli import app
from vadkit.errors import VadkitError
from vadkit.features.weights import load_numpy_pickle, load_weights
from vadkit.io.artifacts import check_video_name, foreign_artifact, name_problem
from vadkit.io.checkpoint import read_checkpoint
from vadkit.io.features import FeatureMeta, load_clip, load_patches, write_features
from vadkit.io.manifest import read_manifest
from vadkit.io.scores import read_scores
from vadkit.score import Run, load_run, resolve_inputs, score_to_dir
from vadkit.train import train

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("adv")
    ds = make_dataset(root, train=(3, 3), val=(1, 1))
    run = train(config(ds, root / "run", steps=1, segments=32)).out
    return ds, run


def score(*args) -> tuple[int, str, str]:
    """Exit code, stdout, stderr of `vadkit score ARGS`; a traceback fails the test."""
    r = runner.invoke(app, ["score", *[str(a) for a in args], "--device", "cpu"])
    assert r.exception is None or isinstance(r.exception, SystemExit), (
        f"traceback: {r.exception!r}\n{r.output}"
    )
    return r.exit_code, r.stdout, r.stderr


def feature(d: Path, video: str, t: int = 5, *, value: float | None = None) -> Path:
    arr = np.random.default_rng(len(video)).standard_normal((t, 2, 32)).astype(np.float32)
    if value is not None:
        arr[:] = value
    meta = FeatureMeta(video, "i3d-inception", 32, 2, t, 16 * t, 25.0, 25.0, 16 * t)
    write_features(d, meta, arr)
    return d / f"{video}.npy"


def snapshot(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


# ------------------------------------------------- 1: a video name must stay inside -o


def test_1_a_csv_id_with_dot_dots_cannot_overwrite_a_file_outside_out(trained, tmp_path):
    ds, run = trained
    victim = tmp_path / "victim" / "settings.json"
    victim.parent.mkdir()
    victim.write_text('{"keep": true}\n')
    feats = tmp_path / "a" / "b"
    feature(feats, "x")
    (tmp_path / "a" / "b" / "m.csv").write_text("video,label,path\n../../victim/settings,0,x.npy\n")
    out = tmp_path / "a" / "b" / "scores"
    code, _, err = score(run, feats / "m.csv", "-o", out)
    assert code == 1 and "m.csv:2:" in err and "path separator" in err, err
    assert victim.read_text() == '{"keep": true}\n'
    assert not list(tmp_path.rglob("settings.npy"))


def test_1_an_absolute_id_is_refused_naming_the_line(trained, tmp_path):
    _, run = trained
    feature(tmp_path / "f", "x")
    target = tmp_path / "elsewhere" / "abs"
    (tmp_path / "m.csv").write_text(f"video,label,path\nok,0,f/x.npy\n{target},1,f/x.npy\n")
    code, _, err = score(run, tmp_path / "m.csv", "-o", tmp_path / "s")
    assert code == 1 and "m.csv:3:" in err, err
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize(
    "name", ["a/b", "a\\b", "..", "..x", "x\0y", "/abs", "C:x", "", "."], ids=repr
)
def test_1_names_that_are_not_plain_file_names_are_refused(name):
    assert name_problem(name) is not None
    with pytest.raises(VadkitError, match="plain file name"):
        check_video_name(name, "m.csv:2: ")


@pytest.mark.parametrize("name", ["Abuse028_x264", ".cam1", "a..b", "Fast.Five.2011__#00-32"])
def test_1_ordinary_names_pass(name):
    assert check_video_name(name) == name


def test_1_a_list_line_naming_dot_dot_is_refused_with_its_line(tmp_path):
    (tmp_path / "m.list").write_text("a.npy\n# comment\nfeats/..\n")
    with pytest.raises(VadkitError, match=r"m\.list:3: video name '\.\.'"):
        read_manifest(tmp_path / "m.list", abnormal_first=0)


def test_1_feature_writers_refuse_an_escaping_name(tmp_path):
    meta = FeatureMeta("../x", "i3d-inception", 4, 1, 1, 16, 25.0, 25.0, 16)
    with pytest.raises(VadkitError, match="path separator"):
        write_features(tmp_path / "f", meta, np.zeros((1, 1, 4), np.float32))
    assert not (tmp_path / "x.npy").exists()


# ------------------------------------------------- 2: -o onto an input or another artifact


def test_2_out_onto_the_feature_directory_is_refused_and_nothing_changes(trained, tmp_path):
    ds, run = trained
    feats = tmp_path / "feats"
    shutil.copytree(ds["features"], feats)
    before = snapshot(feats)
    code, _, err = score(run, feats, "-o", feats)
    assert code == 1 and "also an input" in err and str(feats) in err, err
    code, _, err = score(run, feats / "val00_nor.npy", "-o", feats)
    assert code == 1 and "also an input" in err, err
    code, _, err = score(run, ds["val"], "--features", feats, "-o", feats)
    assert code == 1 and "--features" in err, err
    assert snapshot(feats) == before


def test_2_out_onto_a_run_or_a_synth_dataset_is_refused(trained, tmp_path):
    ds, run = trained
    before = snapshot(run)
    code, _, err = score(run, ds["val"], "--features", ds["features"], "-o", run)
    assert code == 1 and "run" in err, err
    assert snapshot(run) == before
    synth = tmp_path / "data"
    synth.mkdir()
    (synth / "synth.json").write_text(json.dumps({"format": "vadkit.synth"}))
    code, _, err = score(run, ds["val"], "--features", ds["features"], "-o", synth)
    assert code == 1 and "synthetic dataset (synth.json" in err, err
    assert sorted(p.name for p in synth.iterdir()) == ["synth.json"]


def test_2_a_features_dir_as_out_is_refused_even_when_not_an_input(trained, tmp_path):
    ds, run = trained
    other = tmp_path / "other_feats"
    feature(other, "y")
    code, _, err = score(run, ds["val"], "--features", ds["features"], "-o", other)
    assert code == 1 and "holds features (y.json, format vadkit.features)" in err, err


def test_2_rescoring_into_scores_and_nesting_are_fine(trained, tmp_path):
    ds, run = trained
    feats = tmp_path / "feats"
    shutil.copytree(ds["features"], feats)
    for out in (tmp_path / "scores", tmp_path / "scores", feats / "scores"):
        code, _, err = score(run, ds["val"], "--features", feats, "-o", out)
        assert code == 0, err
        assert len(read_scores(out)) == 2


def test_2_the_detector_extract_shares_names_scores_in_a_feature_dir(tmp_path):
    (tmp_path / "v.json").write_text(json.dumps({"format": "vadkit.scores"}))
    assert foreign_artifact(tmp_path, "vadkit.features") == "scores (v.json, format vadkit.scores)"
    assert foreign_artifact(tmp_path, "vadkit.scores") is None
    (tmp_path / "last.safetensors").write_bytes(b"")
    assert "training run" in foreign_artifact(tmp_path, "vadkit.scores")


# ------------------------------------------------- 7: one bad video does not stop the batch


def test_7_bad_videos_are_named_at_the_end_and_the_rest_scored(trained, tmp_path):
    _, run = trained
    feats = tmp_path / "f"
    feature(feats, "good")
    feature(feats, "nan", value=float("nan"))
    feature(feats, "garbled")
    (feats / "garbled.npy").write_bytes(b"\x93NUMPY garbage")
    code, out, err = score(run, feats, "-o", tmp_path / "s", "--json")
    assert code == 1, err
    summary = json.loads(out.splitlines()[0])
    assert summary["scored"] == 1 and summary["failed"] == 2
    assert list(read_scores(tmp_path / "s")) == ["good"]
    assert "failed nan" in err and "NaN" in err and "failed garbled" in err, err
    assert "2 of 3 video(s) could not be scored" in err.splitlines()[-1]


def test_7_a_missing_feature_file_of_a_manifest_is_one_failure(trained, tmp_path):
    ds, run = trained
    (tmp_path / "m.csv").write_text("video,label\nval00_nor,0\nnot_extracted,1\n")
    code, _, err = score(
        run, tmp_path / "m.csv", "--features", ds["features"], "-o", tmp_path / "s"
    )
    assert code == 1 and "not_extracted.npy: feature file not found" in err, err
    assert list(read_scores(tmp_path / "s")) == ["val00_nor"]


def test_7_the_library_raises_unless_asked_to_keep_going(trained, tmp_path):
    _, run = trained
    feature(tmp_path / "f", "a", value=float("inf"))
    feature(tmp_path / "f", "b")
    loaded = load_run(run, device="cpu")
    sources, _ = resolve_inputs([tmp_path / "f"])
    with pytest.raises(VadkitError, match="NaN or inf"):
        score_to_dir(loaded, sources, tmp_path / "s")
    rows = score_to_dir(loaded, sources, tmp_path / "s2", keep_going=True)
    assert [r["status"] for r in rows] == ["failed", "scored"]


# ------------------------------------------------- 8: an Error line, never a traceback


@pytest.mark.parametrize(
    "meta_json, message",
    [
        ("[1, 2]", "not an object"),
        ('{"format": "vadkit.features"}', "incomplete feature description"),
        ("SNIPPETS_X", "snippets must be a non-negative integer"),
        ("FPS_TEXT", "fps_native must be a positive number"),
        ("GRIDS_LIST", "patch_grids must be a JSON object"),
        ('{"format": "vadkit.features", "format_version": "1"}', "format_version"),
    ],
)
def test_8_malformed_feature_json_is_one_error(trained, tmp_path, meta_json, message):
    _, run = trained
    npy = feature(tmp_path / "f", "v")
    good = json.loads(npy.with_suffix(".json").read_text())
    edits = {
        "SNIPPETS_X": {"snippets": "x"},
        "FPS_TEXT": {"fps_native": "25"},
        "GRIDS_LIST": {"patch_grids": [1]},
    }
    text = json.dumps({**good, **edits[meta_json]}) if meta_json in edits else meta_json
    npy.with_suffix(".json").write_text(text)
    with pytest.raises(VadkitError, match=message):
        load_clip(npy)
    code, _, err = score(run, npy, "-o", tmp_path / "s")
    assert code == 1 and message in err, err


def _checkpoint(path: Path, meta) -> Path:
    save_file({"w": torch.zeros(2)}, str(path), metadata={"vadkit": json.dumps(meta)})
    return path


@pytest.mark.parametrize(
    "meta, message",
    [
        ([1], "not a vadkit checkpoint"),
        ({"format": "vadkit.checkpoint", "model": "rtfm"}, "missing model_args"),
        ({"format": "vadkit.checkpoint", "model": 3, "model_args": {}}, "model must be a string"),
        ({"format": "vadkit.checkpoint", "model": "rtfm", "model_args": []}, "model_args must"),
        ({"format": "vadkit.checkpoint", "model": "rtfm", "model_args": {}, "stage": "2"}, "stage"),
        (
            {"format": "vadkit.checkpoint", "model": "rtfm", "model_args": {}, "feature_spec": 1},
            "feature_spec must",
        ),
    ],
)
def test_8_malformed_checkpoint_json_is_one_error(tmp_path, meta, message):
    p = _checkpoint(tmp_path / "c.safetensors", meta)
    with pytest.raises(VadkitError, match=message):
        read_checkpoint(p)
    code, _, err = score(p, tmp_path, "-o", tmp_path / "s")
    assert code == 1 and message in err, err


def test_8_weights_that_do_not_fit_the_model_are_one_error(trained, tmp_path):
    _, run = trained
    _, meta = read_checkpoint(run / "best.safetensors")
    meta.pop("tensors_sha256")
    p = tmp_path / "c.safetensors"
    save_file({"ctr.w": torch.zeros(2)}, str(p), metadata={"vadkit": json.dumps(meta)})
    code, _, err = score(p, tmp_path, "-o", tmp_path / "s")
    assert code == 1 and "weights do not fit model rtfm" in err, err


@pytest.mark.parametrize(
    "name, data",
    [
        ("l.txt", b"a\x00b\n"),
        ("l.csv", b"video,label\n\xff\xfe,0\n"),
        ("l.list", b"\x89PNG\r\n\x1a\n\x00"),
    ],
)
def test_8_binary_lists_are_one_error(trained, tmp_path, name, data):
    _, run = trained
    (tmp_path / name).write_bytes(data)
    code, _, err = score(run, tmp_path / name, "-o", tmp_path / "s")
    assert code == 1 and "not a text manifest" in err, err


def test_8_zero_snippets_are_named(trained, tmp_path):
    _, run = trained
    np.save(tmp_path / "empty.npy", np.zeros((0, 2, 32), np.float32))
    with pytest.raises(VadkitError, match="holds 0 snippets"):
        load_clip(tmp_path / "empty.npy")
    code, _, err = score(run, tmp_path / "empty.npy", "-o", tmp_path / "s")
    assert code == 1 and "0 snippets" in err, err


# ------------------------------------------------- 9: non-finite scores are never written


def test_9_nan_weights_are_refused_before_scoring(trained, tmp_path):
    ds, run = trained
    state, meta = read_checkpoint(run / "best.safetensors")
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = torch.full_like(state[name], float("nan"))
    from vadkit.io.checkpoint import save_checkpoint

    meta = {k: v for k, v in meta.items() if k not in ("format", "tensors_sha256")}
    save_checkpoint(tmp_path / "nan.safetensors", state, meta)  # a genuine hash of NaN weights
    code, _, err = score(tmp_path / "nan.safetensors", ds["val"], "--features", ds["features"],
                         "-o", tmp_path / "s")  # fmt: skip
    assert code == 1 and "hold NaN or inf" in err and name in err, err
    assert not (tmp_path / "s").exists() or not list((tmp_path / "s").glob("*.npy"))


def test_9_a_model_that_outputs_nan_writes_nothing(trained, tmp_path):
    ds, run = trained
    loaded = load_run(run, device="cpu")
    broken = Run(loaded.model, loaded.meta, loaded.path, loaded.sha256, loaded.device)
    broken.model.scores = lambda bag: torch.full((1, bag["clip"].shape[2]), float("nan"))
    sources, _ = resolve_inputs([ds["val"]], features=ds["features"])
    rows = score_to_dir(broken, sources, tmp_path / "s", keep_going=True)
    assert all(r["status"] == "failed" and "non-finite" in r["error"] for r in rows)
    assert not list((tmp_path / "s").glob("*.npy")) if (tmp_path / "s").exists() else True


# ------------------------------------------------- 10: nothing to do is an error


@pytest.mark.parametrize("name, text", [("e.txt", ""), ("e.list", "# only a comment\n\n"),
                                        ("e.csv", "video,label,path\n")])  # fmt: skip
def test_10_an_empty_list_is_an_error(trained, tmp_path, name, text):
    _, run = trained
    (tmp_path / name).write_text(text)
    code, _, err = score(run, tmp_path / name, "-o", tmp_path / "s")
    assert code == 1 and "lists no videos" in err, err
    with pytest.raises(VadkitError, match="lists no videos"):
        read_manifest(tmp_path / name, abnormal_first=0)  # what train reads


def test_10_an_empty_directory_is_an_error(trained, tmp_path):
    _, run = trained
    (tmp_path / "empty").mkdir()
    code, _, err = score(run, tmp_path / "empty", "-o", tmp_path / "s")
    assert code == 1 and "no feature files" in err, err


def test_10_an_unreadable_directory_is_an_error_not_empty(tmp_path, monkeypatch):
    # the CLI's argument type refuses it before (a usage error); the library says so too
    feature(tmp_path / "f", "a")
    monkeypatch.setattr("vadkit.score.os.access", lambda path, mode: Path(path).name != "f")
    with pytest.raises(VadkitError, match="cannot read the directory"):
        resolve_inputs([tmp_path / "f"])


def test_10_a_row_with_an_empty_path_is_not_skipped(trained, tmp_path):
    _, run = trained
    feature(tmp_path / "f", "a")
    (tmp_path / "m.csv").write_text("video,label,path\na,0,f/a.npy\nb,1,\n")
    code, _, err = score(run, tmp_path / "m.csv", "-o", tmp_path / "s")
    assert code == 1 and "video b has no path" in err, err


# ------------------------------------------------- 11: messages that say what is wrong


def test_11_a_pickle_asking_for_a_huge_array_is_malformed_not_out_of_memory(tmp_path):
    from numpy._core.multiarray import _reconstruct

    class Huge:
        def __reduce__(self):
            return _reconstruct, (np.ndarray, (2**50,), b"b")

    data = pickle.dumps({"params": Huge()}, protocol=4)
    with pytest.raises(VadkitError, match="malformed checkpoint"):
        load_numpy_pickle(data, name="w.ckpt")
    (tmp_path / "w.ckpt").write_bytes(data)
    with pytest.raises(VadkitError, match="malformed"):
        load_weights(tmp_path / "w.ckpt")


def test_11_a_malformed_tree_is_refused_naming_the_file(tmp_path):
    buf = io.BytesIO()
    pickle.dump({"params": {"Conv3d_1a_7x7": np.zeros(3)}}, buf, protocol=4)
    (tmp_path / "w.ckpt").write_bytes(buf.getvalue())
    with pytest.raises(VadkitError, match=r"w\.ckpt: .*(malformed|unexpected)"):
        load_weights(tmp_path / "w.ckpt")


def test_11_a_spreadsheet_csv_with_a_byte_order_mark_is_a_csv(tmp_path):
    (tmp_path / "m.csv").write_bytes("\ufeffvideo,label\r\nA,1\r\nB,0\r\n".encode())
    assert [(e.video, e.label) for e in read_manifest(tmp_path / "m.csv")] == [("A", 1), ("B", 0)]


# ------------------------------------------------- 14: dot-named videos are not lost


def test_14_a_dot_named_feature_file_is_scored_but_temporaries_are_not(trained, tmp_path):
    _, run = trained
    feature(tmp_path / "f", ".cam1")
    feature(tmp_path / "f", "cam2")
    (tmp_path / "f" / ".tmp-cam3.npy.x").write_bytes(b"")
    shutil.copy(tmp_path / "f" / "cam2.npy", tmp_path / "f" / ".tmp-cam4.npy")
    code, _, err = score(run, tmp_path / "f", "-o", tmp_path / "s", "--json")
    assert code == 0, err
    assert (tmp_path / "s" / ".cam1.npy").is_file() and (tmp_path / "s" / "cam2.npy").is_file()
    assert not (tmp_path / "s" / ".tmp-cam4.npy").exists()


# ------------------------------------------------- issue 14, item 11: patch files


def test_i14_11_clip_only_features_for_a_patch_model_say_re_extract(tmp_path):
    np.save(tmp_path / "v.npy", np.zeros((3, 1, 8), np.float32))  # RTFM-style, no JSON
    with pytest.raises(VadkitError, match="re-extract the videos with patches"):
        load_patches(tmp_path / "v.npy")


def test_i14_11_patch_files_in_a_naive_list_are_skipped_with_a_note(trained, tmp_path):
    _, run = trained
    lines = ["f/A.npy", "f/A_patch23.npy", "f/A_patch35.npy", "f/A_patch47.npy", "f/N.npy"]
    (tmp_path / "l.list").write_text("\n".join(lines) + "\n")
    notes: list[str] = []
    entries = read_manifest(tmp_path / "l.list", abnormal_first=1, notes=notes)
    assert [(e.video, e.label) for e in entries] == [("A", 1), ("N", 0)]
    assert len(notes) == 1 and "skipped 3 line(s)" in notes[0] and "line 2" in notes[0]
    feature(tmp_path / "f", "A")
    feature(tmp_path / "f", "N")
    code, _, err = score(run, tmp_path / "l.list", "-o", tmp_path / "s")
    assert code == 0 and "note:" in err and "patch files" in err, err
    assert sorted(read_scores(tmp_path / "s")) == ["A", "N"]


# ------------------------------------------------- progress: plain lines, --quiet


def test_progress_lines_when_not_a_terminal_and_quiet_silences_them(trained, tmp_path):
    ds, run = trained
    code, _, err = score(run, ds["val"], "--features", ds["features"], "-o", tmp_path / "a")
    assert code == 0 and "score: 2/2 videos" in err, err
    code, _, err = score(run, ds["val"], "--features", ds["features"], "-o", tmp_path / "b", "-q")
    assert code == 0 and err.strip() == "", err
