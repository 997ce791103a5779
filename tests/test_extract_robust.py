"""Extraction under adverse conditions (#12): overlapping processes, write errors, nothing to do,
unreadable inputs, foreign output directories, file modes; and the extraction record (#10)."""

from __future__ import annotations

import builtins
import errno
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from test_extract import TINY, write_video
from typer.testing import CliRunner

from vadkit.cli import app
from vadkit.errors import VadkitError
from vadkit.extract import (
    RECORD_KEYS,
    ExtractOptions,
    extract_videos,
    extraction_record,
    plan_videos,
)
from vadkit.io.atomic import atomic_path, remove_if_abandoned, respect_umask, save_json
from vadkit.io.features import is_complete, read_meta
from vadkit.video import find_videos, probe

REPO = Path(__file__).resolve().parents[1]


def _opts(**kw) -> ExtractOptions:
    base = dict(random_weights=True, crops=1, short_side=32, crop_size=32, patch_frame=(128, 224))
    return ExtractOptions(**{**base, **kw})


def _cli(args: list[str]):
    return CliRunner().invoke(app, ["extract", *args], catch_exceptions=False)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Error:")]


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """One tiny video and its complete features (random weights, no patches)."""
    d = tmp_path_factory.mktemp("x")
    video = write_video(d / "v.mp4", 20)
    out = d / "feats"
    opts = _opts(patches=False, fps=10.0, drop_last=False)
    summary = extract_videos([video], out, opts)
    assert summary.count("done") == 1
    return video, out, opts


# --------------------------------------------------------------------------- the record (#10)


def test_record_round_trips_through_the_metadata(extracted):
    _, out, opts = extracted
    meta = read_meta(out, "v")
    record = extraction_record(meta)
    assert tuple(record) == RECORD_KEYS
    assert record == opts.record()  # what the options say == what the files say
    back = ExtractOptions.from_record(record)
    for name in ("backbone", "crops", "short_side", "crop_size", "patches", "fps", "drop_last"):
        assert getattr(back, name) == getattr(opts, name), name
    assert back.dtype == opts.dtype and back.random_weights
    assert ExtractOptions.from_meta(meta) == back
    # overrides: another device; a weights file turns random weights off
    o = ExtractOptions.from_record(record, device="cpu", weights="w.safetensors", patches=True)
    assert (o.device, o.weights, o.random_weights, o.patches) == (
        "cpu",
        "w.safetensors",
        False,
        True,
    )
    assert o.patch_frame == ExtractOptions().patch_frame  # none recorded: the default


def test_record_has_exactly_the_keys_a_training_run_stores(extracted):
    from vadkit.train import _extraction

    meta = read_meta(extracted[1], "v")
    assert _extraction(SimpleNamespace(metas=[meta])) == extraction_record(meta)


def test_record_needs_loaded_weights_and_a_complete_record():
    with pytest.raises(VadkitError, match="loaded backbone"):
        ExtractOptions(weights="w.safetensors").record()
    rec = _opts().record()
    assert rec["patch_frame_size"] == [128, 224] and rec["weights_sha256"] is None
    assert ExtractOptions.from_record(rec).patch_frame == (128, 224)
    with pytest.raises(VadkitError, match="lacks crops"):
        ExtractOptions.from_record({k: v for k, v in rec.items() if k != "crops"})
    with pytest.raises(VadkitError, match="crops must be"):
        ExtractOptions.from_record({**rec, "crops": 3})
    with pytest.raises(VadkitError, match="malformed"):
        ExtractOptions.from_record({**rec, "short_side": "x"})
    with pytest.raises(VadkitError, match="JSON object"):
        ExtractOptions.from_record([1, 2])


# --------------------------------------------------------------------------- #12 item 5


def test_cleanup_never_removes_a_temporary_file_being_written(extracted, tmp_path):
    """Another process writing v.json right now: our start-up cleanup must leave its file."""
    video, out, opts = extracted
    text = (out / "v.json").read_text()
    abandoned = out / ".tmp-v.npy.killed1"
    abandoned.write_bytes(b"partial")  # a killed writer's leftover: no lock on it
    with atomic_path(out / "v.json") as tmp:
        tmp.write_text(text)
        summary = extract_videos([video], out, opts)  # complete: skipped; cleanup ran
        assert summary.count("skipped") == 1
        assert tmp.exists(), "an in-flight temporary file was deleted"
        assert not remove_if_abandoned(tmp)
    assert (out / "v.json").read_text() == text  # the other writer's rename succeeded
    assert not abandoned.exists()
    assert not list(out.glob(".tmp-*"))


def test_a_locked_file_of_another_process_is_kept(tmp_path):
    """The same across processes: a child holds a temporary file open for writing."""
    target = tmp_path / "a.json"
    code = (
        "import sys, time\n"
        "from vadkit.io.atomic import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_text('{}'); print(tmp, flush=True); sys.stdin.readline()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        tmp = Path(child.stdout.readline().strip())
        assert tmp.exists()
        assert not remove_if_abandoned(tmp) and tmp.exists()
    finally:
        child.communicate("\n", timeout=60)
    assert child.returncode == 0 and target.read_text() == "{}"


# --------------------------------------------------------------------------- #12 item 4


def test_a_full_disk_names_the_video_and_ends_in_one_error_line(tmp_path, monkeypatch):
    vids = tmp_path / "videos"
    vids.mkdir()
    for i in range(3):
        write_video(vids / f"v{i}.mp4", 16, seed=i)
    out = tmp_path / "feats"

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    r = _cli([str(vids), "-o", str(out), "--no-patches", "--json", *TINY])
    assert r.exit_code == 1
    errors = _error_lines(r.stderr)
    assert len(errors) == 1 and r.stderr.strip().splitlines()[-1] == errors[0]
    assert str(out) in errors[0] and "v0" in errors[0] and "no space left" in errors[0]
    assert "Traceback" not in r.output
    summary = json.loads(r.stdout)
    assert (summary["failed"], summary["not_attempted"], summary["videos"]) == (1, 2, 3)
    assert "2 not attempted of 3 videos" in r.stderr
    assert not list(out.glob("*.npy")) and not list(out.glob(".tmp-*"))


def test_an_output_path_that_is_a_file_is_one_error_line(tmp_path):
    video = write_video(tmp_path / "v.mp4", 16)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for out, words in ((a_file, "not a directory"), (a_file / "sub", "cannot create")):
        r = _cli([str(video), "-o", str(out), *TINY])
        assert r.exit_code == 1, r.output
        errors = _error_lines(r.stderr)
        assert len(errors) == 1 and str(out) in errors[0] and words in errors[0], r.stderr
    assert a_file.read_text() == "x"


def test_a_read_only_output_directory_is_one_error_line(tmp_path, monkeypatch):
    """chmod does not stop root (the tests' user): refuse writes there at the OS call."""
    video = write_video(tmp_path / "v.mp4", 16)
    out = tmp_path / "ro"
    out.mkdir()
    real_open = os.open

    def read_only(path, flags, *a, **k):
        if Path(path).parent == out and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", read_only)
    r = _cli([str(video), "-o", str(out), *TINY])
    assert r.exit_code == 1
    errors = _error_lines(r.stderr)
    assert len(errors) == 1 and str(out) in errors[0] and "permission denied" in errors[0]


# --------------------------------------------------------------------------- #12 item 10


def test_nothing_to_do_is_an_error(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not a video")
    lst = tmp_path / "none.txt"
    lst.write_text("# only a comment\n\n")
    csv = tmp_path / "m.csv"
    csv.write_text("video,label,path\na,0,a.mp4\nb,1,\n")
    for inp, words in ((empty, "holds no videos"), (lst, "names no videos")):
        with pytest.raises(VadkitError, match=words):
            find_videos([inp])
        r = _cli([str(inp), "-o", str(tmp_path / "f"), *TINY])
        assert r.exit_code == 1 and "0 of 0" not in r.output
        assert len(_error_lines(r.stderr)) == 1 and str(inp) in r.stderr
    with pytest.raises(VadkitError, match=r"m\.csv, line 3: the row has an empty path"):
        find_videos([csv])
    with pytest.raises(VadkitError, match="no videos given"):
        plan_videos([])
    assert not (tmp_path / "f").exists()  # refused before anything was created

    real_scandir = os.scandir

    def unreadable(path="."):
        if Path(path) == empty:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", unreadable)
    with pytest.raises(VadkitError, match="cannot read the directory .permission denied"):
        find_videos([empty])


def test_a_csv_saved_by_a_spreadsheet_is_read(tmp_path):
    """A UTF-8 byte-order mark before the header must not hide the path column."""
    csv = tmp_path / "m.csv"
    csv.write_bytes("\ufeffvideo,label,path\na,0,a.mp4\n".encode())
    assert find_videos([csv]) == [tmp_path / "a.mp4"]
    binary = tmp_path / "l.txt"
    binary.write_bytes(bytes(range(128, 256)))
    with pytest.raises(VadkitError, match="not a text file"):
        find_videos([binary])


def test_a_failed_synth_write_is_one_error_naming_the_directory(tmp_path, monkeypatch):
    import vadkit.synth as synth

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(synth, "save_text", full)
    out = tmp_path / "s"
    args = ["synth", "-o", str(out), "--videos-train", "2", "--videos-test", "2"]
    r = CliRunner().invoke(app, [*args, "--size", "32x32", "--frames", "16"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    errors = _error_lines(r.stderr)
    assert len(errors) == 1 and str(out) in errors[0] and "no space left" in errors[0]


# --------------------------------------------------------------------------- #12 item 11


def test_an_unreadable_video_is_not_called_corrupt(tmp_path, monkeypatch):
    video = write_video(tmp_path / "v.mp4", 16)
    if os.geteuid() == 0:  # root reads anything: refuse at open()
        real_open = builtins.open

        def denied(file, *a, **k):
            if isinstance(file, (str, os.PathLike)) and Path(file) == video:
                raise PermissionError(errno.EACCES, "Permission denied", str(file))
            return real_open(file, *a, **k)

        monkeypatch.setattr(builtins, "open", denied)
    else:
        video.chmod(0)
    with pytest.raises(VadkitError) as e:
        probe(video)
    assert "permission denied" in str(e.value) and "corrupt" not in str(e.value)


def test_ffmpeg_says_nothing_before_vadkits_own_error(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    code = (
        "import sys\nfrom vadkit.errors import VadkitError\nfrom vadkit.video import probe\n"
        "try:\n    probe(sys.argv[1])\nexcept VadkitError as e:\n    print('Error:', e, file=sys.stderr)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCV_")}
    env["PYTHONPATH"] = str(REPO)
    r = subprocess.run(
        [sys.executable, "-c", code, str(junk)], capture_output=True, text=True, env=env
    )
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "junk.mp4" in lines[0], lines


# --------------------------------------------------------------------------- #12 item 2


def test_refuses_an_output_directory_that_is_an_input_or_holds_other_artifacts(tmp_path):
    vids = tmp_path / "videos"
    vids.mkdir()
    write_video(vids / "v.mp4", 16)
    with pytest.raises(VadkitError, match="also an input") as e:
        extract_videos([vids], vids, _opts())
    assert str(vids) in str(e.value)
    cases = {
        "scores": ("v.json", json.dumps({"format": "vadkit.scores", "video": "v"}), "scores"),
        "run": ("last.safetensors", "x", "training run"),
        "synth": ("synth.json", json.dumps({"format": "vadkit.synth"}), "synthetic dataset"),
    }
    for name, (file, text, words) in cases.items():
        out = tmp_path / name
        out.mkdir()
        (out / file).write_text(text)
        with pytest.raises(VadkitError, match=words) as e:
            extract_videos([vids], out, _opts())
        assert str(out) in str(e.value) and file in str(e.value)
        assert (out / file).read_text() == text and sorted(os.listdir(out)) == [file]
    r = _cli([str(vids), "-o", str(tmp_path / "scores"), *TINY])
    assert r.exit_code == 1 and len(_error_lines(r.stderr)) == 1


def test_a_features_directory_is_accepted(extracted):
    video, out, opts = extracted
    assert extract_videos([video], out, opts).count("skipped") == 1
    assert is_complete(out, "v", patches=False)


# --------------------------------------------------------------------------- #12 item 13


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600)])
def test_every_artifact_gets_the_umask_mode(tmp_path, umask, mode):
    from safetensors.numpy import save_file

    from vadkit.synth import SynthConfig, synthesize

    old = os.umask(umask)
    try:
        save_json(tmp_path / "a.json", {})
        with atomic_path(tmp_path / "w.safetensors") as tmp:  # a writer that replaces our file
            save_file({"x": np.zeros(2, np.float32)}, str(tmp))
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.unlink()
            os.close(os.open(tmp, os.O_CREAT | os.O_WRONLY, 0o600))
        late = tmp_path / "late.bin"
        os.close(os.open(late, os.O_CREAT | os.O_WRONLY, 0o600))
        respect_umask(late)
        cfg = SynthConfig(videos_train=2, videos_test=2, width=32, height=32, frames=16)
        synthesize(tmp_path / "synth", cfg)
    finally:
        os.umask(old)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) >= 12 and any(p.suffix == ".mp4" for p in files)
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == mode, p


# --------------------------------------------------------------------------- the CLI


def test_cli_modules_import_no_torch_and_share_the_device_help():
    import vadkit.cli.extract as cli_extract
    from vadkit.devices import DEVICE_HELP

    assert cli_extract.DEVICE_HELP == DEVICE_HELP
    code = "import sys, vadkit.cli.extract, vadkit.cli.synth; print('torch' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.stdout.strip() == "False", r.stderr


def test_patch_frame_size_is_width_by_height_and_the_old_spelling_still_works(tmp_path):
    video = write_video(tmp_path / "v.mp4", 16)
    base = [a for a in TINY if a not in ("--patch-frame", "128x224")]
    assert len(base) == len(TINY) - 2
    for i, flag in enumerate((["--patch-frame-size", "224x128"], ["--patch-frame", "128x224"])):
        out = tmp_path / f"f{i}"
        r = _cli([str(video), "-o", str(out), *base, *flag])
        assert r.exit_code == 0, r.output
        assert read_meta(out, "v").patch_frame_size == [128, 224]  # stored (h, w)
    both = ["--patch-frame-size", "224x128", "--patch-frame", "128x224"]
    assert _cli([str(video), "-o", str(tmp_path / "g"), *base, *both]).exit_code == 2
    r = _cli([str(video), "-o", str(tmp_path / "g"), *base, "--crops", "3"])
    assert r.exit_code == 2 and "10" in r.output and "5" in r.output
    help_text = _cli(["--help"]).output
    assert "--patch-frame-size" in help_text and "--patch-frame " not in help_text
    assert "--quiet" in help_text


def test_a_torchrun_environment_without_a_rendezvous_still_shards(extracted, monkeypatch):
    from vadkit.extract import extract_job

    video, out, opts = extracted
    for key in ("MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    own, shown = extract_job([video], out, opts)
    assert own is shown and own.shard == "0/2" and own.count("skipped") == 1
    monkeypatch.delenv("RANK")
    own, shown = extract_job([video], out, opts)
    assert own is shown and own.shard is None
