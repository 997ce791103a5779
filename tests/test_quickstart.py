"""The quickstart pipeline in miniature, through the CLI: synth -> extract -> train (RTFM stage 1,
MSIP stage 2, MGFN) -> score -> eval -> plot. Random I3D weights and tiny sizes keep it under a
minute; the real numbers come from examples/quickstart.sh."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vadkit.cli import app

QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart.sh"


def _run(*args: str) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, f"vadkit {' '.join(map(str, args))}\n{result.output}"
    return result.stdout


@pytest.mark.slow
def test_miniature_quickstart_pipeline(tmp_path):
    data, feats, runs = tmp_path / "data", tmp_path / "feats", tmp_path / "runs"
    _run("synth", "-o", data, "--videos-train", 4, "--videos-test", 2, "--size", "64x48",
         "--frames", 32, "--seed", 1)  # fmt: skip
    extract = ["--random-weights", "--crops", 1, "--short-side", 32, "--crop-size", 32,
               "--patch-frame-size", "224x128", "--patch-mode", "roi", "--device", "cpu"]  # fmt: skip
    for split in ("train", "test"):
        summary = json.loads(
            _run("extract", data / f"{split}.csv", "-o", feats / split, *extract, "--json")
        )
        assert {r["status"] for r in summary["results"]} == {"done"}
    # 20 segments: top-k takes k = 2, which the 2-snippet videos allow
    common = ["--train", data / "train.csv", "--features", feats / "train",
              "--val", data / "test.csv", "--val-features", feats / "test",
              "--annotations", data / "annotations.csv",
              "--steps", 4, "--batch-size", 2, "--eval-every", 2, "--device", "cpu",
              "--segments", 20]  # fmt: skip
    # the quickstart's per-model flags: stage 2 on RTFM's last checkpoint (best is picked on the
    # test split there), a narrower MPSR graph, MGFN's lower learning rate
    _run("train", "--model", "rtfm", "--stage", 1, "-o", runs / "rtfm", *common)
    _run("train", "--model", "msip", "--stage", 2, "--from", runs / "rtfm" / "last.safetensors",
         "-o", runs / "msip", "--model-arg", "graph_dim=16", *common)  # fmt: skip
    _run("train", "--model", "mgfn", "-o", runs / "mgfn", "--lr", "1e-4", *common)
    msip = json.loads((runs / "msip" / "config.json").read_text())
    assert msip["from_run"].endswith("last.safetensors") and msip["model_args"]["graph_dim"] == 16

    for model in ("rtfm", "msip", "mgfn"):
        assert (runs / model / "last.safetensors").is_file()
        scores = tmp_path / "scores" / model
        _run("score", runs / model, feats / "test", "-o", scores, "--checkpoint", "last",
             "--device", "cpu")  # fmt: skip
        for video in ("test_abn_000", "test_nrm_000"):
            s = np.load(scores / f"{video}.npy")
            assert s.shape == (32,) and np.isfinite(s).all()
        metrics_file = tmp_path / "metrics" / f"{model}.json"
        printed = json.loads(
            _run("eval", scores, "-a", data / "annotations.csv", "--json", "-o", metrics_file)
        )
        written = json.loads(metrics_file.read_text())
        for m in (printed, written):
            assert 0.0 <= m["roc_auc"] <= 1.0 and math.isfinite(m["average_precision"])
        assert printed["roc_auc"] == written["roc_auc"]

    png = tmp_path / "plot.png"
    _run("plot", "test_abn_000", "-s", tmp_path / "scores" / "msip",
         "-a", data / "annotations.csv", "-o", png)  # fmt: skip
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quickstart_script_is_valid_bash_and_uses_existing_commands():
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash not found")
    subprocess.run([bash, "-n", str(QUICKSTART)], check=True)
    text = QUICKSTART.read_text()
    assert text.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in text
    commands = {ln.split()[1] for ln in text.splitlines() if ln.strip().startswith("vadkit ")}
    registered = {c.name or c.callback.__name__ for c in app.registered_commands}
    registered |= {g.name for g in app.registered_groups}
    assert commands <= registered, commands - registered


def test_quickstart_refuses_a_directory_it_did_not_make(tmp_path):
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash not found")
    (tmp_path / "precious.txt").write_text("keep")
    result = subprocess.run([bash, str(QUICKSTART), str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 1 and "not a quickstart output" in result.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep"
