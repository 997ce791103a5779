"""A run killed at any moment resumes to the weights and log of an uninterrupted run (issue 12
item 3); damaged or foreign state and checkpoints are refused with one line (items 6, 8)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_train import config, make_dataset
from typer.testing import CliRunner

from vadkit.checkpointer import KILL_AFTER_WRITES_ENV
from vadkit.cli import app
from vadkit.train import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")
runner = CliRunner()
STEPS, EVAL_EVERY = 4, 2  # evaluations at 2 and 4


@pytest.fixture(scope="module")
def ds(tmp_path_factory) -> dict[str, Path]:
    return make_dataset(tmp_path_factory.mktemp("ds"), train=(3, 3), val=(2, 2), t_range=(6, 14))


def _args(ds: dict, out: Path, *, val: bool) -> list[str]:
    args = [
        "train", "--model", "rtfm", "--train", ds["train"], "--features", ds["features"],
        "-o", out, "--steps", STEPS, "--eval-every", EVAL_EVERY, "--batch-size", 2,
        "--segments", 12, "--device", "cpu", "--model-arg", "hidden=8",
    ]  # fmt: skip
    if val:
        args += ["--val", ds["val"], "-a", ds["annotations"]]
    return [str(a) for a in args]


def _cli(*args) -> object:
    return runner.invoke(app, [str(a) for a in args])


def _log(run: Path) -> list[dict]:
    records = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    for r in records:
        r.pop("seconds")
    return records


def _same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a)), load_file(str(b))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), (a.name, k)


@pytest.mark.parametrize("val", [True, False], ids=["validation", "no-validation"])
def test_a_kill_after_any_file_write_resumes_to_the_uninterrupted_run(ds, tmp_path, val):
    ref = tmp_path / "ref"
    r = _cli(*_args(ds, ref, val=val))
    assert r.exit_code == 0, r.output
    expected_log = _log(ref)
    assert [rec["step"] for rec in expected_log] == [2, 4]
    assert {rec["device"] for rec in expected_log} == {"cpu"} and expected_log[0]["lr"] == 1e-3
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    n, killed = 0, 0
    while True:
        n += 1
        run = tmp_path / f"kill{n}"
        env[KILL_AFTER_WRITES_ENV] = str(n)
        proc = subprocess.run(
            [sys.executable, "-m", "vadkit", *_args(ds, run, val=val)],
            capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip
        if proc.returncode == 0:
            break  # the run made fewer than n writes: every kill point is covered
        assert proc.returncode == -9, proc.stderr[-2000:]
        killed += 1
        r = _cli("train", "-o", run, "--resume", "--device", "cpu")
        assert r.exit_code == 0, (n, r.output)
        assert _log(run) == expected_log, n  # each evaluation once, the same loss means
        _same_weights(ref / "last.safetensors", run / "last.safetensors")
        _same_weights(ref / "best.safetensors", run / "best.safetensors")
    assert killed >= (7 if val else 8)  # config + 2 × (state, log, last[, best]) [+ best]


def test_resume_takes_a_new_step_count_and_records_it(ds, tmp_path):
    run = tmp_path / "run"
    assert _cli(*_args(ds, run, val=False)).exit_code == 0
    r = _cli("train", "-o", run, "--resume", "--steps", 7, "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert json.loads((run / "config.json").read_text())["steps"] == 7
    assert [rec["step"] for rec in _log(run)] == [2, 4, 6, 7]


def _one_error_line(result, *needles: str) -> str:
    err = getattr(result, "stderr", "") or result.output
    assert result.exit_code == 1, err
    assert err.startswith("Error: ") and len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    assert "weights_only" not in err and "Traceback" not in err
    return err


@pytest.fixture(scope="module")
def finished(ds, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("finished") / "run"
    train(config(ds, run, steps=2, eval_every=2, model_args={"hidden": 8}))
    return run


def _copy(run: Path, dest: Path) -> Path:
    dest.mkdir()
    for p in run.iterdir():
        (dest / p.name).write_bytes(p.read_bytes())
    return dest


def _flip(path: Path, offset: int, count: int = 4096) -> None:
    data = bytearray(path.read_bytes())
    for i in range(offset, min(offset + count, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_damaged_state_is_one_error_line(finished, tmp_path):
    run = _copy(finished, tmp_path / "run")
    _flip(run / "state.pt", 1000)
    r = _cli("train", "-o", run, "--resume", "--steps", 3, "--device", "cpu")
    _one_error_line(r, "state.pt", "damaged training state")
    (run / "state.pt").write_bytes(b"\x80\x04not a pickle at all")
    _one_error_line(_cli("train", "-o", run, "--resume", "--steps", 3), "damaged training state")


def test_a_state_file_from_another_run_is_refused(finished, ds, tmp_path):
    other = tmp_path / "other"
    train(config(ds, other, steps=2, eval_every=2, model_args={"hidden": 8}))
    run = _copy(finished, tmp_path / "run")
    (run / "state.pt").write_bytes((other / "state.pt").read_bytes())
    r = _cli("train", "-o", run, "--resume", "--steps", 3, "--device", "cpu")
    _one_error_line(r, "belongs to another run")


@pytest.mark.parametrize(
    "text, needle",
    [("{not json", "damaged run configuration"), ("[1, 2]", "expected a JSON object"),
     ('{"model": "rtfm", "train": "t", "out": "o", "steps": "many"}', "steps must be an integer")],
)  # fmt: skip
def test_damaged_config_json_is_one_error_line(finished, tmp_path, text, needle):
    run = _copy(finished, tmp_path / "run")
    (run / "config.json").write_text(text)
    _one_error_line(_cli("train", "-o", run, "--resume", "--device", "cpu"), needle)


def test_flipped_checkpoint_bytes_are_refused_everywhere(finished, ds, tmp_path):
    run = _copy(finished, tmp_path / "run")
    size = (run / "best.safetensors").stat().st_size
    _flip(run / "best.safetensors", size - 4096)  # inside the weights, not the header
    r = _cli("score", run, ds["features"], "-o", tmp_path / "scores", "--device", "cpu")
    _one_error_line(r, "best.safetensors", "damaged checkpoint")
    assert not (tmp_path / "scores").exists()
    r = _cli("train", "--model", "msip", "--stage", 2, "--from", run, "--train", ds["train"],
             "--features", ds["features"], "-o", tmp_path / "s2", "--device", "cpu")  # fmt: skip
    _one_error_line(r, "damaged checkpoint")
    _flip(run / "last.safetensors", 8, 64)  # the JSON header
    r = _cli("score", run, ds["features"], "-o", tmp_path / "s", "--checkpoint", "last")
    _one_error_line(r, "last.safetensors", "unreadable checkpoint")


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--lr", "-1"], "--lr must be a positive number"),
        (["--lr", "nan"], "--lr must be a positive number"),
        (["--weight-decay", "-1"], "--weight-decay must be 0 or more"),
        (["--model-arg", "feature_dim=7"], "feature_dim is taken from the training features"),
        (["--model-arg", "hiden=7"], "model rtfm has no setting hiden"),
        (["--model-arg", "hidden=wide"], "hidden must be an integer"),
    ],
)
def test_bad_settings_fail_before_a_run_directory_is_made(ds, tmp_path, extra, needle):
    out = tmp_path / "run"
    _one_error_line(_cli(*_args(ds, out, val=False), *extra), needle)
    assert not out.exists()


def test_a_validation_video_missing_from_the_annotations_fails_before_step_1(ds, tmp_path):
    ann = tmp_path / "ann.csv"
    lines = Path(ds["annotations"]).read_text().splitlines()
    ann.write_text("\n".join(ln for ln in lines if not ln.startswith("val00")) + "\n")
    out = tmp_path / "run"
    args = _args(ds, out, val=False) + ["--val", str(ds["val"]), "-a", str(ann), "-f", "csv"]
    _one_error_line(_cli(*args), "val00_nor", "not in the annotation")
    assert not out.exists()


def test_sampling_with_replacement_is_said_once_at_the_start(ds, tmp_path):
    r = _cli(*_args(ds, tmp_path / "run", val=False), "--batch-size", 4, "--json")
    assert r.exit_code == 0, r.output
    err = r.stderr
    assert err.count("drawn with replacement") == 1, err
    assert "normal (3)" in err and "abnormal (3)" in err


def test_checkpoints_get_the_umask_mode_like_every_other_artifact(finished):
    mask = os.umask(0)
    os.umask(mask)
    for name in ("best.safetensors", "last.safetensors", "state.pt", "log.jsonl"):
        assert (finished / name).stat().st_mode & 0o777 == 0o666 & ~mask, name


def test_the_train_and_score_commands_import_no_torch():
    code = (
        "import sys; from vadkit.cli import load_commands; load_commands(['train']); "
        "assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_full_disk_is_one_error_line_and_the_run_stays_resumable(ds, tmp_path, monkeypatch):
    """ENOSPC at the Nth file write (issue 12 item 4): one `Error:` line naming the file; once
    there is room again, `--resume` ends with the weights and log of an uninterrupted run."""
    import errno

    import vadkit.io.atomic as atomic

    ref = tmp_path / "ref"
    assert _cli(*_args(ds, ref, val=True)).exit_code == 0
    real_fsync = os.fsync
    for n in (1, 3, 5):
        calls = {"n": 0}

        def full_disk(fd, calls=calls, n=n):
            calls["n"] += 1
            if calls["n"] >= n:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_fsync(fd)

        run = tmp_path / f"full{n}"
        monkeypatch.setattr(atomic.os, "fsync", full_disk)
        r = _cli(*_args(ds, run, val=True))
        monkeypatch.setattr(atomic.os, "fsync", real_fsync)
        assert r.exit_code == 1, (n, r.output)
        lines = [x for x in r.output.strip().splitlines() if x.startswith("Error:")]
        assert len(lines) == 1 and "No space left on device" in lines[0], (n, r.output)
        assert str(run) in lines[0], lines[0]
        if (run / "config.json").exists():
            resumed = _cli("train", "-o", run, "--resume", "--device", "cpu")
        else:  # the disk was full before the run existed: the same command starts it
            resumed = _cli(*_args(ds, run, val=True))
        assert resumed.exit_code == 0, (n, resumed.output)
        assert _log(run) == _log(ref), n
        _same_weights(ref / "last.safetensors", run / "last.safetensors")
