"""`vadkit train`: the training loop, checkpoints, resume, interrupts, bad inputs, convergence."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from vadkit.cli import app
from vadkit.errors import VadkitError
from vadkit.io.features import PATCH_GRIDS, FeatureMeta, write_features
from vadkit.io.manifest import Entry, write_manifest
from vadkit.models import list_models, model_class
from vadkit.models.common import PATCHES
from vadkit.score import load_run
from vadkit.train import Event, TrainConfig, train

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_dataset(
    root: Path,
    *,
    train=(6, 6),
    val=(4, 4),
    d: int = 32,
    crops: int = 2,
    t_range=(12, 40),
    patches: bool = False,
    shift: float = 3.0,
    seed: int = 0,
) -> dict[str, Path]:
    """Synthetic features: noise, plus `shift` along one fixed direction on the anomalous
    snippets of abnormal videos (clip and patches alike). Writes FEATS, train.csv, val.csv and
    annotations.csv (0-based inclusive frames)."""
    rng = np.random.default_rng(seed)
    direction = rng.standard_normal(d).astype(np.float32)
    direction /= np.linalg.norm(direction)
    feats = root / "feats"
    ann = ["video,start,end"]
    out = {"features": feats, "annotations": root / "annotations.csv"}
    for split, (n_norm, n_abn) in (("train", train), ("val", val)):
        entries = []
        for i in range(n_norm + n_abn):
            label = int(i >= n_norm)
            vid = f"{split}{i:02d}_{'abn' if label else 'nor'}"
            t = int(rng.integers(*t_range))
            frames = 16 * t - int(rng.integers(0, 16))
            clip = rng.standard_normal((t, crops, d)).astype(np.float32)
            pat = (
                {
                    g: rng.standard_normal((t, r * c, d)).astype(np.float32)
                    for g, (r, c, _, _) in PATCH_GRIDS.items()
                }
                if patches
                else None
            )
            if label:
                s = int(rng.integers(0, t // 2))
                e = s + max(3, t // 4)
                clip[s:e] += shift * direction
                for arr in (pat or {}).values():
                    arr[s:e] += shift * direction
                ann.append(f"{vid},{16 * s},{min(16 * e, frames) - 1}")
            else:
                ann.append(f"{vid},,")
            meta = FeatureMeta(
                video=vid,
                backbone="i3d-inception",
                feature_dim=d,
                crops=crops,
                snippets=t,
                frame_count=frames,
                fps_native=25.0,
                fps_used=25.0,
                frames_used=frames,
                patch_grids={g: list(v) for g, v in PATCH_GRIDS.items()} if patches else None,
            )
            write_features(feats, meta, clip, pat)
            entries.append(Entry(vid, label))
        write_manifest(root / f"{split}.csv", entries)
        out[split] = root / f"{split}.csv"
    (root / "annotations.csv").write_text("\n".join(ann) + "\n")
    return out


def config(ds: dict, out: Path, model: str = "rtfm", **kw) -> TrainConfig:
    args = dict(
        model=model,
        train=str(ds["train"]),
        features=str(ds["features"]),
        out=str(out),
        steps=4,
        batch_size=2,
        eval_every=2,
        device="cpu",
        segments=12,
        model_args=dict(model_class(model).tiny_config()),  # seconds on a CPU
    )
    args.update(kw)
    return TrainConfig(**args)


def run_cli(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def error_line(result) -> str:
    return getattr(result, "stderr", "") or result.output


@pytest.fixture(scope="module")
def ds(tmp_path_factory) -> dict[str, Path]:
    return make_dataset(tmp_path_factory.mktemp("ds"), patches=True)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def test_cli_train_writes_a_self_describing_run(ds, tmp_path):
    run = tmp_path / "run"
    r = run_cli(
        "train", "--model", "rtfm", "--train", ds["train"], "--features", ds["features"],
        "-o", run, "--steps", 3, "--batch-size", 2, "--eval-every", 2, "--device", "cpu",
        "--segments", 12, "--json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 3 and summary["best_roc_auc"] is None
    assert any("best.safetensors is the last" in n for n in summary["notes"])
    for name in ("best.safetensors", "last.safetensors", "state.pt", "config.json"):
        assert (run / name).is_file(), name
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [rec["step"] for rec in log] == [2, 3]
    assert set(log[0]["loss"]) >= {"total", "bce", "feature_magnitude", "sparsity", "smoothness"}
    run_ = load_run(run, device="cpu")
    meta = run_.meta
    assert meta["model"] == "rtfm" and meta["stage"] == 1 and meta["step"] == 3
    assert meta["model_args"]["feature_dim"] == 32 and meta["model_args"]["segments"] == 12
    assert meta["feature_spec"]["crops"] == 2
    assert meta["feature_spec"]["backbone"] == "i3d-inception"
    assert meta["train_config"]["weight_decay"] == 5e-4
    assert "reads no test data" in meta["validation"]["note"]
    assert meta["extraction"]["crops"] == 2
    assert weights(run / "best.safetensors").keys() == weights(run / "last.safetensors").keys()


def test_resume_after_interrupt_matches_an_uninterrupted_run(ds, tmp_path):
    kw = dict(steps=6, eval_every=2, model_args={"hidden": 16})
    full = train(config(ds, tmp_path / "full", **kw))
    assert full.step == 6

    def interrupt(e: Event) -> None:
        if e.kind == "step" and e.step == 3:
            raise KeyboardInterrupt

    cut = config(ds, tmp_path / "cut", **kw)
    with pytest.raises(VadkitError, match="interrupted at step 3 .*--resume"):
        train(cut, callback=interrupt)
    assert load_run(tmp_path / "cut", checkpoint="last").meta["step"] == 3
    with pytest.raises(VadkitError, match="already holds a run"):
        train(cut)
    train(cut, resume=True)
    a = weights(tmp_path / "full" / "last.safetensors")
    b = weights(tmp_path / "cut" / "last.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k

    def log(run: str) -> list[dict]:  # the loss means of step 4 span the interruption
        lines = (tmp_path / run / "log.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in lines]

    assert log("cut") == log("full") and [r["step"] for r in log("full")] == [2, 4, 6]


def test_ctrl_c_while_validating_logs_that_evaluation_once_after_resume(ds, tmp_path, monkeypatch):
    import vadkit.train as loop

    kw = dict(
        steps=4, eval_every=2, model_args={"hidden": 8}, val=str(ds["val"]),
        annotations=str(ds["annotations"]),
    )  # fmt: skip
    train(config(ds, tmp_path / "full", **kw))
    real, calls = loop.validate, []

    def validate_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the evaluation at step 4
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "validate", validate_then_interrupt)
    with pytest.raises(VadkitError, match="interrupted at step 4"):
        train(config(ds, tmp_path / "cut", **kw))
    monkeypatch.setattr(loop, "validate", real)
    train(config(ds, tmp_path / "cut", **kw), resume=True)

    def log(run: str) -> list[dict]:
        lines = (tmp_path / run / "log.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in lines]

    assert log("cut") == log("full") and [r["step"] for r in log("cut")] == [2, 4]
    a = weights(tmp_path / "full" / "best.safetensors")
    b = weights(tmp_path / "cut" / "best.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cli_resume_extends_a_run(ds, tmp_path):
    run = tmp_path / "run"
    train(config(ds, run, steps=2, model_args={"hidden": 16}))
    r = run_cli("train", "-o", run, "--resume", "--steps", 4, "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert load_run(run, checkpoint="last").meta["step"] == 4


def test_stage2_trains_mpsr_on_a_frozen_stage1_run(ds, tmp_path):
    s1 = train(config(ds, tmp_path / "s1", "msip", steps=2))
    train(config(ds, tmp_path / "s2", "msip", stage=2, from_run=str(s1.out), steps=3))
    a = weights(tmp_path / "s1" / "last.safetensors")
    b = weights(tmp_path / "s2" / "last.safetensors")
    for k, v in a.items():  # CTR + classifier weights and BN statistics untouched
        assert torch.equal(b[k], v), k
    assert any(k.startswith("mpsr.") for k in b) and b["gate"].item() != 0.0
    meta = load_run(tmp_path / "s2").meta
    assert meta["stage"] == 2 and meta["stage1"].endswith("best.safetensors")
    assert meta["trainable_parameters"] < meta["parameters"]


def _manifest(path: Path, rows: list[tuple[str, int]]) -> Path:
    path.write_text("video,label\n" + "".join(f"{v},{lab}\n" for v, lab in rows))
    return path


def _feature(feats: Path, video: str, arr: np.ndarray) -> None:
    t, n, d = arr.shape
    meta = FeatureMeta(video, "i3d-inception", d, n, t, 16 * t, 25.0, 25.0, 16 * t)
    write_features(feats, meta, arr)


def _train_args(manifest: Path, feats: Path, out: Path, *extra) -> list:
    return [
        "train", "--model", "rtfm", "--train", manifest, "--features", feats, "-o", out,
        "--steps", 1, "--device", "cpu", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(
    "case, message",
    [
        ("empty", "lists no videos"),
        ("one-class", "has only normal \\(label 0\\) videos"),
        ("dims", "b.npy has feature_dim 16 but .*a.npy has feature_dim 32"),
        ("crops", "b.npy has crops 3 but .*a.npy has crops 2"),
        ("short", "video b .* has 2 snippet\\(s\\), fewer than the 3"),
        ("nan", "video b .*NaN"),
        ("stage2", "pass --from RUN_STAGE1"),
        ("val", "--val and --annotations go together"),
        ("rtfm-stage2", "model rtfm trains in stage\\(s\\) 1, not --stage 2"),
    ],
)
def test_bad_inputs_fail_before_the_first_step(tmp_path, case, message):
    feats = tmp_path / "feats"
    rng = np.random.default_rng(0)
    a = rng.standard_normal((20, 2, 32)).astype(np.float32)
    b = {
        "dims": rng.standard_normal((20, 2, 16)),
        "crops": rng.standard_normal((20, 3, 32)),
        "short": rng.standard_normal((2, 2, 32)),
        "nan": np.where(np.arange(20)[:, None, None] == 7, np.nan, a),
    }.get(case, a)
    _feature(feats, "a", a)
    _feature(feats, "b", np.asarray(b, np.float32))
    rows = {"empty": [], "one-class": [("a", 0), ("b", 0)]}.get(case, [("a", 0), ("b", 1)])
    manifest = _manifest(tmp_path / "train.csv", rows)
    extra = {
        "stage2": ["--model", "msip", "--stage", "2"],
        "val": ["--val", manifest],
        "rtfm-stage2": ["--stage", "2"],
    }.get(case, [])
    r = run_cli(*_train_args(manifest, feats, tmp_path / "run", *extra))
    assert r.exit_code == 1, r.output
    err = error_line(r)
    assert err.startswith("Error: ") and len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err
    assert not (tmp_path / "run" / "last.safetensors").exists()


def test_bad_cli_arguments_exit_2(ds, tmp_path):
    r = run_cli(*_train_args(ds["train"], ds["features"], tmp_path / "r", "--loss", "l2"))
    assert r.exit_code == 2
    r = run_cli("train", "-o", tmp_path / "r", "--train", ds["train"])
    assert r.exit_code == 2 and "--model" in error_line(r)


@pytest.mark.parametrize("name", list_models())
def test_converges_on_shifted_anomalies(tmp_path_factory, name):
    """Anomalous snippets are shifted along one direction: each model must find them
    (validation frame-level ROC AUC ≥ 0.95) within seconds of CPU, through `train()`; a model
    with several stages trains each on the run of the one before."""
    cls = model_class(name)
    root = tmp_path_factory.mktemp(f"conv-{name}")
    patches = any(PATCHES in cls.input_names(s) for s in cls.stages)
    ds = make_dataset(
        root, train=(16, 16), val=(8, 8), t_range=(16, 33), patches=patches, shift=4.0
    )
    common = dict(
        val=str(ds["val"]), annotations=str(ds["annotations"]), segments=32, batch_size=4,
        eval_every=10, seed=0,
    )  # fmt: skip
    prior = None
    for stage in cls.stages:
        steps = CONVERGE_STEPS if prior is None else LATER_STAGE_STEPS
        kw = dict(stage=stage, from_run=None if prior is None else str(prior.out))
        result = prior = train(config(ds, root / f"s{stage}", name, steps=steps, **kw, **common))
    assert load_run(result.out).meta["stage"] == cls.stages[-1]
    log = [json.loads(line) for line in (result.out / "log.jsonl").read_text().splitlines()]
    print(name, [round(rec["roc_auc"], 4) for rec in log])
    assert result.best_roc_auc >= 0.95


CONVERGE_STEPS = 40  # first stage (RTFM with its feature dropout: 0.69, 0.84, 0.93 at 10-30)
LATER_STAGE_STEPS = 10


def test_ddp_on_two_processes_matches_one_process(ds, tmp_path):
    """torchrun, 2 Gloo processes, global batch split in two: same weights as one process with
    the same global batch (dropout off so both runs draw the same numbers). The loss variant is
    msip's, whose regularisers are per-video means: RTFM's own L2 sparsity norm and flattened
    smoothness span the whole batch and are computed per rank (README, torchrun)."""
    margs = {"hidden": 16, "dropout": 0.0, "topk_dropout": 0.0}
    train(config(ds, tmp_path / "one", steps=3, batch_size=4, loss="msip", model_args=margs))
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "vadkit", "train", "--model", "rtfm", "--train", ds["train"],
        "--features", ds["features"], "-o", tmp_path / "two", "--steps", "3", "--batch-size", "4",
        "--eval-every", "2", "--device", "cpu", "--segments", "12", "--loss", "msip",
        *[a for k, v in margs.items() for a in ("--model-arg", f"{k}={v}")],
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=240, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = weights(tmp_path / "one" / "last.safetensors")
    b = weights(tmp_path / "two" / "last.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        diff = (a[k].double() - b[k].double()).abs()
        # Float rounding differs between the two reductions; Adam turns a gradient that is ~0
        # in both runs into a step of up to lr either way, so single weights may differ by
        # lr per step while the tensor as a whole must agree closely.
        assert diff.mean() < 2e-5, (k, diff.mean())
        assert diff.max() <= 3 * 1e-3 + 1e-6, (k, diff.max())
    # the 2-process run resumes in one process
    train(config(ds, tmp_path / "two", steps=4), resume=True)
    assert load_run(tmp_path / "two", checkpoint="last").meta["step"] == 4


def test_float16_cache_holds_half_and_feeds_float32(ds):
    from vadkit.data import TrainingSet, sources_from_manifest
    from vadkit.io.manifest import read_manifest

    sources = sources_from_manifest(read_manifest(ds["train"]), ds["features"])
    half = TrainingSet.load(sources, segments=8, min_snippets=1, float16=True)
    full = TrainingSet.load(sources, segments=8, min_snippets=1)
    assert half.clips.dtype == torch.float16 and half.clips.shape == (12, 2, 8, 32)
    n, a = half.sample(3, torch.Generator().manual_seed(0), inputs=("clip",), device="cpu")
    assert n["clip"].dtype == torch.float32 and n["clip"].shape == (3, 2, 8, 32)
    torch.testing.assert_close(half.clips.float(), full.clips, rtol=1e-3, atol=1e-3)
    assert half.patches is None  # patches are only read for a model that needs them


def test_ctrl_c_saves_last_and_exits_nonzero(ds, tmp_path):
    run = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "vadkit", "train", "--model", "rtfm", "--train", ds["train"],
        "--features", ds["features"], "-o", run, "--steps", "1000000", "--eval-every", "1000000",
        "--batch-size", "2", "--segments", "12", "--device", "cpu", "--model-arg", "hidden=8",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([str(c) for c in cmd], stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while not (run / "config.json").exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # config.json is written just before the first step
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err  # interrupted: the shell convention
    assert "interrupted at step" in err and "--resume" in err
    step = load_run(run, checkpoint="last").meta["step"]
    assert step >= 1 and (run / "state.pt").is_file()
