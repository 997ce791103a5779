"""Does the batch size of I3D passes matter on this CPU? Throughput of the quickstart's two
network inputs at several batch sizes: the clip (1 crop of 112 px) and the roi patch frame
(224x128), 16-frame inputs of random pixels through the real Inception-I3D.

    python benchmarks/bench_i3d_batch.py [--inputs 16] [--repeats 2]

Prints inputs per second, best of --repeats, per batch size.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from vadkit.extract import ExtractOptions
from vadkit.extractor import Extractor
from vadkit.features.roi import trunk


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    opts = ExtractOptions(
        crops=1, short_side=128, crop_size=112, patch_frame=(128, 224), patch_mode="roi"
    )
    ex = Extractor.load(opts)
    rng = np.random.default_rng(0)
    n = a.inputs
    frames = rng.integers(0, 255, (n, 16, 128, 224, 3), dtype=np.uint8)
    clips = rng.integers(0, 255, (n, 16, 112, 112, 3), dtype=np.uint8)

    def roi(step: int) -> None:
        with torch.inference_mode():
            for i in range(0, n, step):
                trunk(ex.model, ex._input(frames[i : i + step]), "Mixed_5c")

    def clip(step: int) -> None:
        for i in range(0, n, step):
            ex._forward(clips[i : i + step])

    for name, run, sizes in (
        ("roi frame 224x128", roi, (2, 4, 8, 16)),
        ("clip 112", clip, (4, 8, 16)),
    ):
        run(sizes[-1])  # warm-up
        for size in sizes:
            best = float("inf")
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                run(size)
                best = min(best, time.perf_counter() - t0)
            print(f"{name:<18} batch {size:>2}: {n / best:6.2f} inputs/s")


if __name__ == "__main__":
    main()
