"""The README's "On your own videos" commands, run as written on tiny synthetic videos.

The test reads the bash blocks of that README section and runs every `vadkit` command in them,
in order, through the CLI in a directory laid out as the README describes (videos/, train.csv,
val.csv + val_annotations.csv, test.csv + Temporal_Anomaly_Annotation.txt, new_camera.mp4),
made here with `vadkit synth`. What differs from the README, and why (nothing else does):

- `vadkit weights fetch` is skipped and every `extract` gets `--random-weights`: no download
  (runs, scores and the raw-video extraction of `score` then all use the seeded random weights);
- sizes: `--crops 10` becomes `--crops 1 --short-side 32 --crop-size 32`, and an extraction with
  patches gets `--patch-frame-size 224x128` (the smallest allowed) instead of 840x480;
- steps: every `train` runs `--steps 4 --eval-every 2 --batch-size 2 --segments 10` (one-snippet
  videos allow RTFM's top-k of 1), MSIP's graph is `--model-arg graph_dim=16`, on `--device cpu`;
- the plotted video is one of the synthetic test videos instead of UCF-Crime's Shooting022_x264.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vadkit.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "### On your own videos"
PLOTTED = "Shooting022_x264"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def workflow_blocks() -> list[list[list[str]]]:
    """The section's bash blocks, each a list of commands (argument lists), comments dropped
    and continuation lines joined."""
    text = README.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start)
    section = text[start : end if end >= 0 else None]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    return [
        [shlex.split(line, comments=True) for line in block.replace("\\\n", " ").splitlines()]
        for block in blocks
    ]


def _replace(args: list[str], option: str, new: list[str]) -> list[str]:
    if option in args:
        i = args.index(option)
        return args[:i] + new + args[i + 2 :]
    return args + new


def substitute(cmd: list[str]) -> list[str] | None:
    """The README command with the test's sizes and steps (see the module docstring)."""
    assert cmd[0] == "vadkit", cmd
    args = cmd[1:]
    if args[:2] == ["weights", "fetch"]:
        return None
    if args[0] == "extract":
        args = _replace(
            args, "--crops", ["--crops", "1", "--short-side", "32", "--crop-size", "32"]
        )
        args += ["--random-weights", "--device", "cpu"]
        if "--no-patches" not in args:
            args += ["--patch-frame-size", "224x128"]
    elif args[0] == "train":
        args = _replace(args, "--steps", ["--steps", "4"])
        args += ["--eval-every", "2", "--batch-size", "2", "--segments", "10", "--device", "cpu"]
        if "msip" in args:
            args += ["--model-arg", "graph_dim=16"]
    elif args[0] == "plot":
        args = [("test_abn_001" if a == PLOTTED else a) for a in args]
    return args


def _csv_rows(path: Path, keep) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], *[ln for ln in lines[1:] if keep(ln)]]) + "\n")


def make_user_files(root: Path) -> None:
    """What the README asks a user to have, from one synthetic dataset: 2 training videos;
    test videos *_000 become the validation split, *_001 the test split."""
    invoke("synth", "-o", root, "--videos-train", 2, "--videos-test", 4, "--size", "64x48",
           "--frames", 16, "--seed", 3, "-q")  # fmt: skip
    shutil.copy(root / "test.csv", root / "val.csv")
    shutil.copy(root / "annotations.csv", root / "val_annotations.csv")
    for name in ("val.csv", "val_annotations.csv"):
        _csv_rows(root / name, lambda ln: ln.split(",")[0].endswith("_000"))
    _csv_rows(root / "test.csv", lambda ln: ln.split(",")[0].endswith("_001"))
    ucf = root / "Temporal_Anomaly_Annotation.txt"
    ucf.write_text("".join(ln for ln in ucf.read_text().splitlines(True) if "_001" in ln))
    shutil.copy(root / "videos" / "test_nrm_001.mp4", root / "new_camera.mp4")
    (root / "annotations.csv").unlink()


def invoke(*args) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, f"vadkit {' '.join(map(str, args))}\n{result.output}"
    return result.stdout


def _roc_auc(table: str) -> float:
    found = re.search(r"roc_auc\s*│\s*([0-9.]+)\s*│", table)
    assert found, table
    return float(found.group(1))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("own-videos")
    make_user_files(root)
    return root


def run_block(block: list[list[str]], root: Path, monkeypatch) -> list[tuple[list, str]]:
    monkeypatch.chdir(root)
    ran = []
    for cmd in block:
        args = substitute(cmd)
        if args is not None:
            ran.append((args, invoke(*args)))
    return ran


def test_readme_has_the_two_workflow_blocks():
    blocks = workflow_blocks()
    assert len(blocks) == 2
    clip, msip = blocks
    extract = next(c for c in clip if c[1] == "extract")
    assert "--no-patches" in extract  # RTFM / MGFN: no patches
    assert any(c[1] == "score" and "test.csv" in c for c in clip)  # the test manifest
    assert any(c[1] == "score" and c[3].endswith(".mp4") for c in clip)  # a raw video
    assert "--no-patches" not in next(c for c in msip if c[1] == "extract")


def test_own_videos_workflow_runs_as_written(workdir, monkeypatch):
    clip, _ = workflow_blocks()
    ran = run_block(clip, workdir, monkeypatch)
    assert [a[0] for a, _ in ran] == ["extract", "train", "score", "eval", "plot", "score"]
    assert not list((workdir / "feats").glob("*_patch*.npy"))
    assert {p.stem for p in (workdir / "scores").glob("*.npy")} == {"test_abn_001", "test_nrm_001"}
    auc = _roc_auc(ran[3][1])
    assert 0.0 <= auc <= 1.0
    assert (workdir / "shooting022.png").read_bytes()[:4] == b"\x89PNG"
    meta = json.loads((workdir / "scores-new" / "new_camera.json").read_text())
    assert meta["video"] == "new_camera" and meta["frame_count"] == 16
    run = json.loads((workdir / "runs" / "rtfm" / "config.json").read_text())
    assert Path(run["val"]) == workdir / "val.csv" and run["steps"] == 4


@pytest.mark.slow
def test_own_videos_msip_block_runs_as_written(workdir, monkeypatch):
    if not (workdir / "runs" / "rtfm" / "best.safetensors").is_file():
        pytest.skip("needs the RTFM run of test_own_videos_workflow_runs_as_written")
    _, msip = workflow_blocks()
    ran = run_block(msip, workdir, monkeypatch)
    assert [a[0] for a, _ in ran] == ["extract", "train", "score", "eval"]
    assert len(list((workdir / "feats-msip").glob("*_patch47.npy"))) == 6
    assert 0.0 <= _roc_auc(ran[-1][1]) <= 1.0
