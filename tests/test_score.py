"""`vadkit score`: snippet → frame mapping, score files, refusal of unfit features, video inputs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from test_train import config, make_dataset
from typer.testing import CliRunner

from vadkit.cli import app
from vadkit.data import Source, full_length_bag, load_source
from vadkit.io.features import FeatureMeta, write_features
from vadkit.io.scores import read_scores
from vadkit.score import load_run, sha256_file, snippet_to_frame_scores
from vadkit.train import train

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def meta(t: int, frames: int, *, fps_native: float = 25.0, fps_used: float = 25.0, **kw):
    used = round(frames * fps_used / fps_native)
    return FeatureMeta("v", "i3d-inception", 8, 1, t, frames, fps_native, fps_used, used, **kw)


def test_frames_repeat_each_snippet_and_trim_to_the_true_count():
    s = np.array([0.1, 0.5, 0.9], np.float32)
    f = snippet_to_frame_scores(s, meta(3, 40))  # last snippet loop-padded: 48 → 40 frames
    assert f.shape == (40,)
    assert (f[:16] == s[0]).all() and (f[16:32] == s[1]).all() and (f[32:] == s[2]).all()
    assert snippet_to_frame_scores(s).shape == (48,)  # no metadata: 16·t


def test_frames_drop_last_extends_the_last_snippet():
    s = np.array([0.2, 0.7], np.float32)
    f = snippet_to_frame_scores(s, meta(2, 40, padding="drop-last"))
    assert f.shape == (40,) and (f[32:] == s[1]).all()


def test_frames_map_native_frames_through_the_resampled_fps():
    # 50 fps video extracted at 25 fps: 100 native frames = 50 used frames = 4 snippets
    s = np.arange(4, dtype=np.float32)
    f = snippet_to_frame_scores(s, meta(4, 100, fps_native=50.0, fps_used=25.0))
    assert f.shape == (100,)
    assert (f[:32] == 0).all() and (f[32:64] == 1).all() and f[-1] == 3


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("score")
    ds = make_dataset(root, train=(3, 3), val=(2, 2))
    result = train(config(ds, root / "run", steps=2, segments=32))  # top-k k = 3
    return ds, result.out


def test_score_cli_writes_frame_curves_with_metadata(trained, tmp_path):
    ds, run = trained
    out = tmp_path / "scores"
    r = runner.invoke(app, ["score", str(run), str(ds["val"]), "--features", str(ds["features"]),
                            "-o", str(out), "--device", "cpu", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["sha256"] == sha256_file(run / "best.safetensors")
    got = read_scores(out)
    assert sorted(got) == sorted(v["video"] for v in summary["videos"]) and len(got) == 4
    loaded = load_run(run, device="cpu")
    for video, (frames, m) in got.items():
        src = Source(video, ds["features"] / f"{video}.npy")
        clip, _ = load_source(src, patches=False)
        assert frames.shape == (src.meta.frame_count,) and m.frame_count == src.meta.frame_count
        assert m.snippets == clip.shape[0] and m.checkpoint_sha256 == summary["sha256"]
        with torch.no_grad():
            expected = loaded.model.scores(full_length_bag(clip, None, torch.device("cpu")))[0]
        np.testing.assert_allclose(frames[::16], expected.numpy()[: len(frames[::16])], rtol=1e-6)


def test_score_accepts_npy_files_dirs_and_short_videos(trained, tmp_path):
    ds, run = trained
    feats = tmp_path / "feats"
    rng = np.random.default_rng(1)
    write_features(
        feats,
        FeatureMeta("tiny", "i3d-inception", 32, 2, 2, 25, 25.0, 25.0, 25),
        rng.standard_normal((2, 2, 32)).astype(np.float32),
    )  # 2 snippets: fewer than the k = 3 training needs
    r = runner.invoke(app, ["score", str(run), str(feats / "tiny.npy"), "-o", str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    frames, m = read_scores(tmp_path / "a")["tiny"]
    assert frames.shape == (25,) and np.isfinite(frames).all()
    r = runner.invoke(app, ["score", str(run), str(feats), "-o", str(tmp_path / "b")])
    assert r.exit_code == 0 and list(read_scores(tmp_path / "b")) == ["tiny"]


@pytest.mark.parametrize(
    "shape, backbone, message",
    [
        ((5, 2, 16), "i3d-inception", "has feature_dim 16 but the checkpoint expects 32"),
        ((5, 3, 32), "i3d-inception", "has crops 3 but the checkpoint expects 2"),
        ((5, 2, 32), "i3d-r50", "has backbone i3d-r50 but the checkpoint expects i3d-inception"),
    ],
)
def test_score_refuses_features_that_do_not_fit(trained, tmp_path, shape, backbone, message):
    _, run = trained
    t, n, d = shape
    write_features(
        tmp_path / "f",
        FeatureMeta("bad", backbone, d, n, t, 16 * t, 25.0, 25.0, 16 * t),
        np.zeros(shape, np.float32),
    )
    r = runner.invoke(app, ["score", str(run), str(tmp_path / "f"), "-o", str(tmp_path / "s")])
    assert r.exit_code == 1
    err = getattr(r, "stderr", "") or r.output
    assert message in err and "bad.npy" in err, err


def test_score_missing_run_and_bad_input_are_clear(tmp_path, trained):
    _, run = trained
    r = runner.invoke(app, ["score", str(tmp_path / "nope"), str(tmp_path), "-o", str(tmp_path)])
    assert r.exit_code == 1 and "run directory not found" in (r.stderr or r.output)
    (tmp_path / "x.bin").write_bytes(b"")
    r = runner.invoke(app, ["score", str(run), str(tmp_path / "x.bin"), "-o", str(tmp_path / "o")])
    assert r.exit_code == 1 and "not a feature file" in (r.stderr or r.output)


def _write_video(path: Path, frames: int, w: int = 64, h: int = 48) -> Path:
    rng = np.random.default_rng(0)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (w, h))
    for i in range(frames):
        vw.write(np.roll(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), i, axis=1))
    vw.release()
    return path


def test_score_a_video_file_extracts_it_with_the_runs_settings(tmp_path):
    """A run trained on (random-weight, 1-crop, 32-px) Inception features scores a raw video."""
    feats = tmp_path / "feats"
    rng = np.random.default_rng(0)
    rows = ["video,label"]
    for i in range(4):
        m = FeatureMeta(
            f"v{i}", "i3d-inception", 1024, 1, 6, 96, 25.0, 25.0, 96, short_side=32, crop_size=32
        )
        write_features(feats, m, rng.standard_normal((6, 1, 1024)).astype(np.float32))
        rows.append(f"v{i},{i % 2}")
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    ds = {"train": tmp_path / "train.csv", "features": feats}
    run = train(config(ds, tmp_path / "run", steps=1, segments=6, model_args={"hidden": 8})).out
    video = _write_video(tmp_path / "clip.mp4", 20)
    out = tmp_path / "scores"
    r = runner.invoke(app, ["score", str(run), str(video), "-o", str(out), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    frames, m = read_scores(out)["clip"]
    assert frames.shape == (20,) and m.snippets == 2
    # said loudly before it starts, and the features are kept inside -o for the next run
    assert "1 video input(s) have no features yet" in r.stderr and str(out / "features") in r.stderr
    assert "clip features only" in r.stderr and not list((out / "features").glob("*_patch*"))
    assert (out / "features" / "clip.npy").is_file() and (out / "features" / "clip.json").is_file()
    assert m.features == str(out / "features" / "clip.npy")
    out2 = tmp_path / "scores2"
    r = runner.invoke(app, ["score", str(run), str(video), "-o", str(out2), "--device", "cpu",
                            "--discard-features", "-q"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert r.stderr == "" and sorted(p.name for p in out2.iterdir()) == ["clip.json", "clip.npy"]
    np.testing.assert_array_equal(read_scores(out2)["clip"][0], frames)
    # an unreadable video is named at the end; the others are scored (exit 1)
    (tmp_path / "bad.mp4").write_bytes(b"not a video at all")
    out3 = tmp_path / "scores3"
    r = runner.invoke(app, ["score", str(run), str(video), str(tmp_path / "bad.mp4"), "-o",
                            str(out3), "--device", "cpu", "-q"])  # fmt: skip
    assert r.exit_code == 1 and "failed bad" in r.stderr and "extraction failed" in r.stderr
    assert list(read_scores(out3)) == ["clip"]
