#!/usr/bin/env python3
"""Time `vadkit eval` end to end on a UCF-Crime-sized test set, or measure its peak memory.

    python benchmarks/bench_eval.py [--videos 290] [--frames 1100000] [--repeat 3] [--budget 2.0]
    python benchmarks/bench_eval.py --memory [--frames 10000000]

Builds, in a temporary directory, a score directory of `--videos` per-frame score files (with
vadkit metadata) totalling `--frames` frames, and a UCF-Crime style
Temporal_Anomaly_Annotation.txt for them (about half the videos anomalous, 13 classes, one or
two intervals each). Then runs `python -m vadkit eval SCORES --annotations FILE --json` as a
subprocess `--repeat` times and reports the wall time (interpreter start and imports included),
plus the in-process time of reading and evaluating. Exit status 1 if the best end-to-end time is
over `--budget` seconds.

`--memory` instead runs the command once and reports its peak resident set size, that of a
process that only imports the eval command, and the difference per frame (the scores take 4
bytes per frame on disk, float32).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vadkit.io.annotations import read_annotations
from vadkit.io.scores import ScoreMeta, read_scores, write_scores
from vadkit.metrics import evaluate

CLASSES = [
    "Abuse", "Arrest", "Arson", "Assault", "Burglary", "Explosion", "Fighting",
    "RoadAccidents", "Robbery", "Shooting", "Shoplifting", "Stealing", "Vandalism",
]  # fmt: skip
SNIPPET = 16
IMPORT_ONLY = "from vadkit.cli import load_commands; load_commands(['eval'])"


def build(root: Path, videos: int, frames: int, seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    weights = rng.lognormal(0.0, 0.8, videos)
    counts = np.maximum(SNIPPET * 4, np.floor(weights / weights.sum() * frames)).astype(int)
    counts[-1] += frames - counts.sum()
    scores_dir = root / "scores"
    lines = []
    for i, n in enumerate(counts):
        n = int(n)
        if i < videos // 2:
            cls = CLASSES[i % len(CLASSES)]
            vid = f"{cls}{i:03d}_x264"
            a = int(rng.integers(0, n // 2))
            b = int(rng.integers(a + 1, n))
            iv = f"{a}  {b}  -1  -1" if i % 3 else f"{a}  {(a + b) // 2}  {b}  {n - 1}"
            label = np.zeros(n)
            label[a : b + 1] = 1
        else:
            cls, vid, iv, label = "Normal", f"Normal_Videos_{i:03d}_x264", "-1  -1  -1  -1", 0
        lines.append(f"{vid}.mp4  {cls}  {iv}  ")
        s = np.clip(rng.normal(0.3 + 0.3 * label, 0.2, n), 0, 1)
        write_scores(scores_dir, ScoreMeta(vid, n, SNIPPET, -(-n // SNIPPET), model="bench"), s)
    ann = root / "Temporal_Anomaly_Annotation.txt"
    ann.write_text("\n".join(lines) + "\n")
    return scores_dir, ann


def _peak_rss_mb(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    """Peak RSS of one child process, in MB (each measurement in a fresh intermediate process,
    since RUSAGE_CHILDREN keeps the maximum over all children ever waited for)."""
    probe = (
        "import json, resource, subprocess, sys\n"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(json.dumps([peak, r.returncode, r.stdout, r.stderr]))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True)
    peak_kb, rc, stdout, stderr = json.loads(out.stdout)
    return peak_kb / 1024.0, subprocess.CompletedProcess(cmd, rc, stdout, stderr)


def memory(scores_dir: Path, ann: Path, frames: int) -> int:
    cmd = [sys.executable, "-m", "vadkit", "eval", str(scores_dir), "-a", str(ann), "--json"]
    peak, r = _peak_rss_mb(cmd)
    if r.returncode:
        print(r.stderr, file=sys.stderr)
        return 2
    base, _ = _peak_rss_mb([sys.executable, "-c", IMPORT_ONLY])
    report = {
        "frames": json.loads(r.stdout)["frames"],
        "peak_rss_mb": round(peak, 1),
        "import_only_peak_rss_mb": round(base, 1),
        "bytes_per_frame": round((peak - base) * 2**20 / frames, 1),
        "data_bytes_per_frame": 4,
    }
    print(json.dumps(report, indent=1))
    return 0


def timing(scores_dir: Path, ann: Path, repeat: int, budget: float) -> int:
    cmd = [sys.executable, "-m", "vadkit", "eval", str(scores_dir), "-a", str(ann), "--json"]
    walls = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        walls.append(time.perf_counter() - t0)
        if r.returncode:
            print(r.stderr, file=sys.stderr)
            return 2
    result = json.loads(r.stdout)
    t0 = time.perf_counter()
    scored = read_scores(scores_dir)
    t1 = time.perf_counter()
    annotations = read_annotations(ann)
    t2 = time.perf_counter()
    evaluate({v: s for v, (s, _) in scored.items()}, annotations)
    t3 = time.perf_counter()
    subprocess.run([sys.executable, "-c", IMPORT_ONLY], check=True)
    t_import = time.perf_counter() - t3
    report = {
        "videos": result["videos"],
        "frames": result["frames"],
        "roc_auc": round(result["roc_auc"], 4),
        "cli_wall_s": {"best": round(min(walls), 3), "all": [round(w, 3) for w in walls]},
        "in_process_s": {
            "read_scores": round(t1 - t0, 3),
            "read_annotations": round(t2 - t1, 3),
            "evaluate": round(t3 - t2, 3),
        },
        "python_start_and_import_eval_command_s": round(t_import, 3),
        "budget_s": budget,
    }
    print(json.dumps(report, indent=1))
    return 0 if min(walls) <= budget else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=290)
    ap.add_argument("--frames", type=int, default=None, help="default 1.1 M (10 M with --memory)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--budget", type=float, default=2.0)
    ap.add_argument("--memory", action="store_true", help="measure peak RSS instead of time")
    a = ap.parse_args()
    frames = a.frames or (10_000_000 if a.memory else 1_100_000)
    with tempfile.TemporaryDirectory(prefix="vadkit-bench-") as tmp:
        scores_dir, ann = build(Path(tmp), a.videos, frames)
        if a.memory:
            return memory(scores_dir, ann, frames)
        return timing(scores_dir, ann, a.repeat, a.budget)


if __name__ == "__main__":
    sys.exit(main())
