"""Training-step input pipeline: vadkit's in-memory set vs RTFM's re-read-and-resample loader.

Writes UCF-Crime-shaped synthetic features as RTFM's `.npy` files (`(t, 10, 2048)` float32, t
around 200 snippets; the real training set is 1,610 videos, about 26 GB) and measures, per step
of b normal + b abnormal videos:

- `vadkit`: `TrainingSet` (every video resampled to 32 segments once, held in memory) → sample;
- `rtfm`:   what RTFM's `Dataset.__getitem__` does for every sampled video at every step:
            `np.load` the file, transpose to crops first, `process_feat` each crop to 32 segments.

Both produce the same `(b, 10, 32, 2048)` bags. `--model rtfm` also times whole training steps
(forward + backward + Adam) with each pipeline. The files are read through the OS page cache
once written, which flatters the re-reading loader; on a cold cache or a network disk its cost
grows. The default is a scaled-down set; `--videos 1610` writes the full 26 GB.

    python benchmarks/bench_train.py [--videos 96] [--steps 5] [--batch-size 32] [--model rtfm]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

from vadkit.data import Source, TrainingSet
from vadkit.models import create_model, model_class
from vadkit.models.common import CLIP


def process_feat(feat: np.ndarray, length: int) -> np.ndarray:
    """RTFM's `utils.process_feat`, verbatim in behaviour."""
    new_feat = np.zeros((length, feat.shape[1]), dtype=np.float32)
    r = np.linspace(0, len(feat), length + 1, dtype=int)
    for i in range(length):
        if r[i] != r[i + 1]:
            new_feat[i, :] = np.mean(feat[r[i] : r[i + 1], :], 0)
        else:
            new_feat[i, :] = feat[r[i], :]
    return new_feat


def rtfm_item(path: Path, segments: int) -> np.ndarray:
    """RTFM `Dataset.__getitem__` (training branch): load, (t,10,d) → (10,t,d), resample crops."""
    features = np.load(path, allow_pickle=False).astype(np.float32)
    features = features.transpose(1, 0, 2)
    return np.array([process_feat(f, segments) for f in features], dtype=np.float32)


def write_set(root: Path, videos: int, crops: int, dim: int, mean_t: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    sources = []
    for i in range(videos):
        label = int(i < videos // 2)  # RTFM's list: abnormal first
        t = int(np.clip(rng.normal(mean_t, mean_t / 3), 16, 3 * mean_t))
        p = root / f"v{i:04d}_{'abn' if label else 'nor'}_i3d.npy"
        np.save(p, rng.standard_normal((t, crops, dim), dtype=np.float32))
        sources.append(Source(p.stem, p, label))
    return sources


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=96, help="videos to write (UCF-Crime: 1610)")
    ap.add_argument("--crops", type=int, default=10)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--snippets", type=int, default=200, help="mean snippets per video")
    ap.add_argument("--segments", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=32, help="per class (RTFM: 32)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--model", default=None, help="also time whole training steps of this model")
    ap.add_argument("--model-steps", type=int, default=2)
    ap.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp dir)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    return ap.parse_args()


def per_step(make, steps: int) -> float:
    make()  # warm-up
    t = time.perf_counter()
    for _ in range(steps):
        make()
    return (time.perf_counter() - t) / steps


class Pipelines:
    """The two ways of making a step's bags from the written set."""

    def __init__(self, a: argparse.Namespace, sources: list, data: TrainingSet) -> None:
        self.a, self.data = a, data
        self.gen = torch.Generator().manual_seed(a.seed)
        self.rng = np.random.default_rng(a.seed)
        self.normal = [s for s in sources if s.label == 0]
        self.abnormal = [s for s in sources if s.label == 1]

    def vadkit(self):
        return self.data.sample(self.a.batch_size, self.gen, inputs=(CLIP,), device="cpu")

    def rtfm(self):
        bags = []
        for pool in (self.normal, self.abnormal):
            b = self.a.batch_size
            pick = self.rng.choice(len(pool), b, replace=len(pool) < b)
            arr = np.stack([rtfm_item(pool[j].path, self.a.segments) for j in pick])
            bags.append({CLIP: torch.from_numpy(arr)})
        return bags[0], bags[1]


def time_model(a: argparse.Namespace, pipes: Pipelines) -> dict:
    """Seconds per whole training step (forward + backward + Adam) with each pipeline."""
    torch.manual_seed(a.seed)
    declared = {f.name for f in fields(model_class(a.model).Config)}
    extra = {"segments": a.segments} if "segments" in declared else {}
    model = create_model(a.model, feature_dim=a.dim, **extra).train()
    opt = torch.optim.Adam(model.trainable_parameters(), lr=1e-3, weight_decay=5e-4)

    def step(make):
        def run():
            n, ab = make()
            total, _ = model.loss(n, ab)
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()

        return run

    out = {
        "vadkit_step_s": per_step(step(pipes.vadkit), a.model_steps),
        "rtfm_step_s": per_step(step(pipes.rtfm), a.model_steps),
    }
    out["step_ratio"] = out["rtfm_step_s"] / out["vadkit_step_s"]
    return out


def measure(a: argparse.Namespace, root: Path) -> dict:
    t0 = time.perf_counter()
    sources = write_set(root, a.videos, a.crops, a.dim, a.snippets, a.seed)
    gb = sum(s.path.stat().st_size for s in sources) / 1e9
    write_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    data = TrainingSet.load(sources, segments=a.segments, min_snippets=1)
    load_s = time.perf_counter() - t0
    pipes = Pipelines(a, sources, data)
    result = {
        "videos": a.videos,
        "crops": a.crops,
        "dim": a.dim,
        "mean_snippets": a.snippets,
        "batch_size": a.batch_size,
        "gigabytes": round(gb, 2),
        "write_seconds": round(write_s, 1),
        "vadkit_load_seconds": round(load_s, 2),
        "vadkit_data_s_per_step": per_step(pipes.vadkit, a.steps),
        "rtfm_data_s_per_step": per_step(pipes.rtfm, a.steps),
    }
    result["data_ratio"] = result["rtfm_data_s_per_step"] / result["vadkit_data_s_per_step"]
    if a.model:
        result.update(time_model(a, pipes))
    return result


def report(a: argparse.Namespace, result: dict) -> None:
    print(
        f"{a.videos} videos × {a.crops} crops × ~{a.snippets} snippets × {a.dim} "
        f"({result['gigabytes']:.1f} GB), b = {a.batch_size} normal + {a.batch_size} abnormal "
        "per step"
    )
    print(f"vadkit: one-time load + resample {result['vadkit_load_seconds']:.1f} s")
    for k in ("vadkit_data_s_per_step", "rtfm_data_s_per_step", "data_ratio"):
        print(f"{k:24} {result[k]:.4f}")
    for k in ("vadkit_step_s", "rtfm_step_s", "step_ratio"):
        if k in result:
            print(f"{k:24} {result[k]:.3f}")


def main() -> None:
    a = parse_args()
    root = a.dir or Path(tempfile.mkdtemp(prefix="vadkit-bench-train-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        result = measure(a, root)
        if a.json:
            print(json.dumps(result, indent=1))
        else:
            report(a, result)
    finally:
        if a.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
