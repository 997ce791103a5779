"""Snippets per second of Inception-I3D feature extraction: a plain forward vs vadkit's path.

(a) plain:  the exact (unfused) network, float32, contiguous NCDHW input, one crop at a time;
(b) vadkit: `vadkit.extractor.Extractor.features` (BatchNorm folded into the convolutions,
            channels-last-3d activations, batched crops, inference mode), on the same clip;
(c) vadkit with `--dtype bfloat16` (autocast), and its feature error against float32.

Run: `python benchmarks/bench_extract.py [--crops 10] [--size 224] [--snippets 2] [--weights P]`.
Uses the fetched Kinetics-400 weights when available (else random weights, said in the output);
prints one JSON object on stdout.

`--memory` instead measures the peak RSS of extracting a 30-second and a 5-minute synthetic
video (64x48, 25 fps, random weights, tiny crops), each in a fresh process: decoding streams,
so the two should be close; what grows is only the output arrays (t, n, d) held until written.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vadkit.errors import VadkitError
from vadkit.extract import ExtractOptions
from vadkit.extractor import Extractor
from vadkit.features import load_backbone
from vadkit.features.i3d import InceptionI3d, fuse_batch_norm


def _clip(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """A smooth random clip (n crops, 16 frames) so activations look like a video's."""
    base = rng.integers(0, 256, (n, 16, size // 8, size // 8, 3)).astype(np.float32)
    up = base.repeat(8, axis=2).repeat(8, axis=3)
    return np.clip(up + rng.normal(0, 8, up.shape), 0, 255).astype(np.uint8)


_MEMORY_CHILD = """
import resource, sys
from vadkit.extract import ExtractOptions, extract_videos
opts = ExtractOptions(random_weights=True, crops=int(sys.argv[3]), short_side=32, crop_size=32,
                      patches=sys.argv[4] == "1", patch_frame=(128, 224))
s = extract_videos([sys.argv[1]], sys.argv[2], opts)
assert not s.failed, s.failed
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def memory(crops: int, patches: bool) -> dict:
    from vadkit.opencv import cv2

    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (6, 8, 3)).astype(np.uint8).repeat(8, 0).repeat(8, 1)
    out: dict = {"crops": crops, "patches": patches, "frame": "64x48 @ 25 fps"}
    with tempfile.TemporaryDirectory() as tmp:
        for label, seconds in (("30s", 30), ("5min", 300)):
            path = Path(tmp) / f"{label}.mp4"
            vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (64, 48))
            for i in range(seconds * 25):
                vw.write(np.roll(base, i, axis=1))
            vw.release()
            t0 = time.perf_counter()
            r = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    _MEMORY_CHILD,
                    str(path),
                    str(Path(tmp) / label),
                    str(crops),
                    "1" if patches else "0",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            out[f"peak_rss_mib_{label}"] = round(int(r.stdout.split()[-1]) / 1024, 1)
            out[f"seconds_{label}"] = round(time.perf_counter() - t0, 1)
    out["ratio_5min_over_30s"] = round(out["peak_rss_mib_5min"] / out["peak_rss_mib_30s"], 3)
    return out


def _parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crops", type=int, default=10)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--snippets", type=int, default=2, help="timed snippets per variant")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--memory", action="store_true", help="peak RSS: 5-minute vs 30-second video")
    ap.add_argument("--no-patches", action="store_true", help="with --memory: clip crops only")
    return ap.parse_args()


def _backbone(weights: str | None):
    """The unfused Inception-I3D and a description of its weights."""
    try:
        bb = load_backbone("i3d-inception", weights=weights, fuse=False)
        return bb, bb.weights_sha256
    except VadkitError:
        bb = load_backbone("i3d-inception", random_weights=True, fuse=False)
        return bb, "random (Kinetics-400 weights unavailable)"


def _variants(bb, args: argparse.Namespace) -> dict:
    """name -> function (crops, T, h, w, 3) uint8 -> (crops, d) features."""
    plain: InceptionI3d = copy.deepcopy(bb.model)
    spec = bb.spec

    # (a) plain float32 NCDHW, one crop at a time
    def plain_snippet(clip: np.ndarray) -> np.ndarray:
        out = []
        with torch.no_grad():
            for crop in clip:
                x = torch.from_numpy(crop).float() * spec.pixel_scale + spec.pixel_offset
                x = x.permute(3, 0, 1, 2).contiguous()[None]  # (1, 3, T, h, w) NCDHW
                out.append(plain(x)[0])
        return torch.stack(out).numpy()

    def make(dtype: str) -> Extractor:
        fused = dataclasses.replace(bb, model=fuse_batch_norm(copy.deepcopy(bb.model)))
        opts = ExtractOptions(crops=args.crops, batch_size=args.batch_size, dtype=dtype)
        return Extractor(opts, fused)

    return {
        "plain": plain_snippet,
        "vadkit": make("float32").features,
        "vadkit_bf16": make("bfloat16").features,
    }


def _time(variants: dict, clips: list[np.ndarray]) -> tuple[dict, dict]:
    """Seconds and outputs of each variant over `clips[1:]` (`clips[0]` warms up)."""
    seconds = dict.fromkeys(variants, 0.0)
    outs: dict[str, list[np.ndarray]] = {k: [] for k in variants}
    for fn in variants.values():
        fn(clips[0])  # warm-up
    # interleaved, batch by batch, so that other load on the machine hits every variant alike
    for clip in clips[1:]:
        for name, fn in variants.items():
            t0 = time.perf_counter()
            outs[name].append(fn(clip))
            seconds[name] += time.perf_counter() - t0
    return seconds, outs


def _err(a: list[np.ndarray], b: list[np.ndarray]) -> dict[str, float]:
    a, b = np.stack(a), np.stack(b)
    d = np.abs(a - b)
    rel = np.linalg.norm(a - b, axis=-1) / np.maximum(np.linalg.norm(b, axis=-1), 1e-12)
    return {"max_abs": float(d.max()), "mean_abs": float(d.mean()), "max_rel_l2": float(rel.max())}


def main() -> None:
    args = _parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory:
        print(json.dumps(memory(args.crops, not args.no_patches), indent=1))
        return
    bb, weights = _backbone(args.weights)
    # vadkit batches max(1, batch_size // crops) snippets per forward (Extractor.extract does)
    per_batch = max(1, args.batch_size // args.crops)
    groups = -(-args.snippets // per_batch)
    timed_snippets = groups * per_batch
    rng = np.random.default_rng(0)
    clips = [
        np.concatenate([_clip(rng, args.crops, args.size) for _ in range(per_batch)])
        for _ in range(groups + 1)
    ]  # (per_batch · crops, T, h, w, 3) each; the first is the warm-up
    seconds, outs = _time(_variants(bb, args), clips)
    rate = {k: timed_snippets / v for k, v in seconds.items()}
    ref, got, got_bf16 = outs["plain"], outs["vadkit"], outs["vadkit_bf16"]
    result = {
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "weights": weights,
        "crops_per_snippet": args.crops,
        "crop_size": args.size,
        "snippets_timed": timed_snippets,
        "snippets_per_vadkit_batch": per_batch,
        "plain_snippets_per_s": round(rate["plain"], 4),
        "vadkit_snippets_per_s": round(rate["vadkit"], 4),
        "speedup": round(rate["vadkit"] / rate["plain"], 3),
        "vadkit_bf16_snippets_per_s": round(rate["vadkit_bf16"], 4),
        "vadkit_vs_plain_error": _err(got, ref),
        "bf16_vs_float32_error": _err(got_bf16, got),
        "feature_abs_mean": float(np.abs(np.stack(ref)).mean()),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
