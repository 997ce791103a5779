"""`vadkit train`'s output while it runs: plain progress lines off a terminal, one line per
evaluation, `--quiet`, and `--tensorboard` (its scalars, or the error without the package)."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_train import make_dataset
from typer.testing import CliRunner

from vadkit.cli import app
from vadkit.cli.tensorboard import TensorBoardCallback
from vadkit.cli.train_progress import INTERVAL_ENV, TrainDisplay, progress_interval
from vadkit.train import Event

pytestmark = pytest.mark.usefixtures("one_torch_thread")
HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None


@pytest.fixture(scope="module")
def ds(tmp_path_factory) -> dict[str, Path]:
    return make_dataset(tmp_path_factory.mktemp("ds"), train=(2, 2), val=(2, 2), t_range=(12, 16))


def _args(ds, out: Path, *extra) -> list[str]:
    args = ["train", "--model", "rtfm", "--train", ds["train"], "--features", ds["features"],
            "--val", ds["val"], "--annotations", ds["annotations"], "-o", out, "--steps", 4,
            "--eval-every", 2, "--batch-size", 2, "--segments", 12, "--device", "cpu",
            "--model-arg", "hidden=8", *extra]  # fmt: skip
    return [str(a) for a in args]


def _train_subprocess(ds, out: Path, *extra, interval="0") -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", INTERVAL_ENV: interval}
    cmd = [sys.executable, "-m", "vadkit", *_args(ds, out, *extra)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def test_progress_lines_on_a_pipe(ds, tmp_path):
    """stderr is a pipe: plain lines (no bar escapes), loading, steps with the loss and the
    last val AUC, one line per evaluation; the summary alone on stdout."""
    proc = _train_subprocess(ds, tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith(f"{tmp_path / 'run'}: 4 steps, best ROC AUC")
    err = proc.stderr.splitlines()
    assert "\x1b" not in proc.stderr and "\r" not in proc.stderr, proc.stderr
    loads = [ln for ln in err if ln.startswith("load features: ")]
    assert loads[0].startswith("load features: 1/4 videos, ") and err[0] == loads[0], err
    assert loads[-1].startswith("load features: 4/4 videos") and loads[-1].endswith("done")
    steps = [ln for ln in err if re.match(r"train: \d/4 steps, ", ln)]
    step_line = r"train: (\d)/4 steps, \d+ s elapsed, (~\d+ s left|done), loss \d+\.\d{4}"
    assert all(re.match(step_line, ln) for ln in steps), steps
    assert [int(re.match(step_line, ln).group(1)) for ln in steps] == [1, 2, 3, 4, 4]
    assert "val AUC" not in steps[0] and "val AUC" in steps[2]  # the AUC once evaluated
    assert steps[-1].split(", ")[2] == "done"
    evals = [ln for ln in err if ln.startswith("train: step ")]
    assert len(evals) == 2, err
    eval_line = r"train: step 2/4: val ROC AUC \d\.\d{4}, AP \d\.\d{4}, loss \d+\.\d{4}"
    assert re.fullmatch(eval_line, evals[0]), evals
    log = [json.loads(ln) for ln in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert f"val ROC AUC {log[-1]['roc_auc']:.4f}" in evals[-1]


def test_quiet_prints_only_the_summary(ds, tmp_path):
    result = CliRunner().invoke(app, _args(ds, tmp_path / "run", "--quiet"))
    assert result.exit_code == 0, result.output
    assert result.stderr == "" and result.stdout.count("\n") == 1


def test_interval_from_the_environment(monkeypatch):
    monkeypatch.setenv(INTERVAL_ENV, "2.5")
    assert progress_interval() == 2.5
    for bad in ("", "soon", "-1"):
        monkeypatch.setenv(INTERVAL_ENV, bad)
        assert progress_interval() == 10.0


def test_notes_print_even_when_quiet_and_a_resumed_run_counts_from_its_step():
    stream = io.StringIO()
    display = TrainDisplay(quiet=True, stream=stream)
    display(Event("note", message="no --val given: best.safetensors is the last checkpoint"))
    display(Event("step", 3, 4, loss=1.0))
    display.close()
    assert stream.getvalue() == "note: no --val given: best.safetensors is the last checkpoint\n"
    stream = io.StringIO()
    display = TrainDisplay(interval=1e9, stream=stream)
    display(Event("step", 11, 20, loss=2.0))  # resumed at step 10
    assert display.training.initial == 10 and display.training.done == 11
    display(Event("eval", 12, 20, record={"step": 12, "loss": {"total": 1.5}}))
    display.close()
    assert stream.getvalue().splitlines() == [
        "train: step 12/20: loss 1.5000",
        display.training.line(final=True),
    ]
    assert display.training.line(final=True).endswith("stopped, loss 2.0000")


@pytest.mark.skipif(HAS_TENSORBOARD, reason="tensorboard is installed")
def test_tensorboard_without_the_package_is_one_error_line(ds, tmp_path):
    result = CliRunner().invoke(app, _args(ds, tmp_path / "run", "--tensorboard", tmp_path / "tb"))
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: --tensorboard needs the tensorboard")
    assert "pip install tensorboard" in lines[0]
    assert not (tmp_path / "run").exists()  # refused before any work


class _FakeWriter:
    def __init__(self):
        self.scalars: list[tuple[str, float, int]] = []
        self.closed = False

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def flush(self):
        pass

    def close(self):
        self.closed = True


def test_tensorboard_callback_writes_losses_lr_and_validation():
    writer = _FakeWriter()
    cb = TensorBoardCallback(writer)
    cb(Event("note", message="x"))
    cb(Event("step", 1, 2, loss=0.5, losses={"total": 0.5, "bce": 0.25}, lr=1e-3))
    cb(Event("eval", 1, 2, record={"roc_auc": 0.75, "average_precision": 0.5}))
    cb(Event("eval", 2, 2, record={"loss": {}}))  # no validation list: nothing to write
    cb.close()
    assert writer.scalars == [
        ("loss/total", 0.5, 1), ("loss/bce", 0.25, 1), ("lr", 1e-3, 1),
        ("val/roc_auc", 0.75, 1), ("val/average_precision", 0.5, 1),
    ]  # fmt: skip
    assert writer.closed


@pytest.mark.skipif(not HAS_TENSORBOARD, reason="the tensorboard package is not installed")
def test_tensorboard_writes_event_files(ds, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = CliRunner().invoke(app, _args(ds, tmp_path / "run", "--tensorboard", tmp_path / "tb"))
    assert result.exit_code == 0, result.output
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"loss/total", "lr", "val/roc_auc", "val/average_precision"} <= tags
    assert [e.step for e in acc.Scalars("loss/total")] == [1, 2, 3, 4]
    assert [e.step for e in acc.Scalars("val/roc_auc")] == [2, 4]


def test_an_error_is_the_only_line(ds, tmp_path):
    """A failure after loading started: no closing progress line before the one `Error:`."""
    bad = tmp_path / "train.csv"
    bad.write_text(ds["train"].read_text() + "missing_video,1\n")
    proc = _train_subprocess({**ds, "train": bad}, tmp_path / "run")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert [ln for ln in lines if not ln.startswith("load features: ")] == lines[-1:], lines
    assert lines[-1].startswith("Error: ") and "missing_video" in lines[-1]
