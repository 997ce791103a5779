"""Snippets per second of Inception-I3D extraction: float32 vs bfloat16 clips, exact vs roi patches.

All variants run in one process on the same snippets, interleaved snippet by snippet (other load
on the machine hits every variant alike), after one warm-up snippet:

- clip crops: `fp32` (vadkit's float32 path: BatchNorm folded, channels-last-3d, batched crops),
  `bf16` (the same network with weights and activations in bfloat16, not autocast), and with
  `--plain` the unfused float32 NCDHW network one crop at a time;
- MSIP patches on the patch frame (default 840x480): `exact` (I3D on each of the 49 patches,
  float32), `roi` (one pass over the frame, each patch pooled from the Mixed_5c map) and
  `roi-4f` (the frame to Mixed_4f, the last blocks per patch); `--patch-dtype bfloat16` runs
  the roi variants in bf16 and adds `exact_bf16` (a whole snippet, crops + patches, in bf16).

Errors: bf16 vs fp32 clip features and roi vs exact patch features, as max abs, relative L2
(max, mean) and cosine per feature vector (min, mean), per grid for patches.

Run: `python benchmarks/bench_extract.py [--video PATH] [--snippets 1] [--crops 10] [--size 224]`.
Uses the fetched Kinetics-400 weights when available (else random weights, said in the output);
prints one JSON object on stdout. `--memory`: peak RSS of a 30-second vs a 5-minute video.
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
from vadkit.video import FrameReader, clip_crops, frame_patches, iter_snippets, resize_frames


def _synthetic_snippets(n: int, h: int, w: int) -> list[np.ndarray]:
    """Smooth random snippets (16, h, w, 3), so that activations look like a video's."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        base = rng.integers(0, 256, (16, -(-h // 8), -(-w // 8), 3)).astype(np.float32)
        up = base.repeat(8, axis=1).repeat(8, axis=2)[:, :h, :w]
        out.append(np.clip(up + rng.normal(0, 8, up.shape), 0, 255).astype(np.uint8))
    return out


def _video_snippets(path: str, n: int) -> list[np.ndarray]:
    out = []
    for snippet in iter_snippets(iter(FrameReader(path)), drop_last=True):
        out.append(snippet)
        if len(out) == n:
            break
    if len(out) < n:
        raise VadkitError(f"{path}: fewer than {n} snippets of 16 frames")
    return out


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
            args = [str(path), str(Path(tmp) / label), str(crops), "1" if patches else "0"]
            r = subprocess.run(
                [sys.executable, "-c", _MEMORY_CHILD, *args],
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
    ap.add_argument("--video", default=None, help="real video to take the snippets from")
    ap.add_argument("--crops", type=int, default=10)
    ap.add_argument("--size", type=int, default=224, help="crop size (short side: size·8/7)")
    ap.add_argument("--snippets", type=int, default=1, help="timed snippets per variant")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--patch-frame-size", default="840x480", help="WxH of the patch frame")
    ap.add_argument("--no-patches", action="store_true", help="clip crops only")
    ap.add_argument("--no-clips", action="store_true", help="patches only")
    ap.add_argument("--no-bf16", action="store_true", help="skip the bfloat16 clip variant")
    ap.add_argument("--patch-dtype", default="float32", choices=("float32", "bfloat16"))
    ap.add_argument("--plain", action="store_true", help="also the unfused NCDHW network")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--memory", action="store_true", help="peak RSS: 5-minute vs 30-second video")
    return ap.parse_args()


def _backbone(weights: str | None):
    """The unfused Inception-I3D and a description of its weights."""
    try:
        bb = load_backbone("i3d-inception", weights=weights, fuse=False)
        return bb, bb.weights_sha256
    except VadkitError:
        bb = load_backbone("i3d-inception", random_weights=True, fuse=False)
        return bb, "random (Kinetics-400 weights unavailable)"


def _plain(bb):
    """(crops, T, h, w, 3) -> features: the unfused float32 NCDHW network, one crop at a time."""
    plain: InceptionI3d = copy.deepcopy(bb.model)
    spec = bb.spec

    def run(clip: np.ndarray) -> np.ndarray:
        out = []
        with torch.no_grad():
            for crop in clip:
                x = torch.from_numpy(crop).float() * spec.pixel_scale + spec.pixel_offset
                out.append(plain(x.permute(3, 0, 1, 2).contiguous()[None])[0])
        return torch.stack(out).numpy()

    return run


def _variants(bb, args: argparse.Namespace) -> dict:
    """name -> function of one snippet (16, H, W, 3) -> features (array, or {grid: array})."""
    fused = dataclasses.replace(bb, model=fuse_batch_norm(copy.deepcopy(bb.model)))
    fw, fh = (int(v) for v in args.patch_frame_size.lower().split("x"))

    def make(dtype: str, mode: str = "exact") -> Extractor:
        opts = ExtractOptions(
            crops=args.crops,
            short_side=args.size * 8 // 7,
            crop_size=args.size,
            patch_frame=(fh, fw),
            batch_size=args.batch_size,
            dtype=dtype,
            patch_mode=mode,
        )
        return Extractor(opts, fused)

    out: dict = {}
    if not args.no_clips:
        fp32 = make("float32")

        def crops_of(ex):
            def run(s):
                o = ex.options
                return ex.features(clip_crops(s, short_side=o.short_side, crop_size=o.crop_size,
                                              crops=o.crops))  # fmt: skip

            return run

        if args.plain:
            plain = _plain(bb)
            out["plain"] = lambda s: plain(clip_crops(s, short_side=args.size * 8 // 7,
                                                      crop_size=args.size, crops=args.crops))  # fmt: skip
        out["fp32"] = crops_of(fp32)
        if not args.no_bf16:
            out["bf16"] = crops_of(make("bfloat16"))
    if not args.no_patches:
        exact = make("float32")

        def run_exact(s):
            cut = frame_patches(s, exact.layouts, (fh, fw))
            return {g: exact.features(p) for g, p in cut.items()}

        out["exact"] = run_exact
        if args.patch_dtype != "float32":
            exact_bf16 = make(args.patch_dtype)

            def run_exact_bf16(s):
                cut = frame_patches(s, exact_bf16.layouts, (fh, fw))
                return {g: exact_bf16.features(p) for g, p in cut.items()}

            out["exact_bf16"] = run_exact_bf16
        for mode in ("roi", "roi-4f"):
            ex = make(args.patch_dtype, mode)
            out[mode] = lambda s, ex=ex: {
                g: v[0] for g, v in ex.roi_features(resize_frames(s, (fh, fw))[None]).items()
            }
    return out


def _time(variants: dict, snippets: list[np.ndarray]) -> tuple[dict, dict]:
    """Seconds and outputs of each variant over `snippets[1:]` (`snippets[0]` warms up)."""
    seconds = dict.fromkeys(variants, 0.0)
    outs: dict[str, list] = {k: [] for k in variants}
    for fn in variants.values():
        fn(snippets[0])
    for s in snippets[1:]:  # interleaved, snippet by snippet
        for name, fn in variants.items():
            t0 = time.perf_counter()
            outs[name].append(fn(s))
            seconds[name] += time.perf_counter() - t0
    return seconds, outs


def feature_error(got: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Errors of feature vectors `got` against `ref` (last axis = feature)."""
    a, b = got.reshape(-1, got.shape[-1]), ref.reshape(-1, ref.shape[-1])
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    rel = np.linalg.norm(a - b, axis=1) / np.maximum(nb, 1e-12)
    cos = (a * b).sum(1) / np.maximum(na * nb, 1e-24)
    return {
        "max_abs": float(np.abs(a - b).max()),
        "rel_l2_max": float(rel.max()),
        "rel_l2_mean": float(rel.mean()),
        "cosine_min": float(cos.min()),
        "cosine_mean": float(cos.mean()),
        "vectors": len(a),
    }


def _grid_errors(got: list[dict], ref: list[dict]) -> dict:
    return {g: feature_error(np.stack([o[g] for o in got]), np.stack([o[g] for o in ref]))
            for g in ref[0]}  # fmt: skip


def _report(outs: dict, seconds: dict, n: int) -> dict:
    rate = {k: round(n / v, 4) for k, v in seconds.items()}
    res: dict = {"snippets_per_s": rate}
    ratios, errors = {}, {}
    if "fp32" in outs:
        fp32 = np.stack(outs["fp32"])
        if "bf16" in outs:
            ratios["bf16_over_fp32"] = round(rate["bf16"] / rate["fp32"], 3)
            errors["bf16_vs_fp32"] = feature_error(np.stack(outs["bf16"]), fp32)
        if "plain" in outs:
            ratios["fp32_over_plain"] = round(rate["fp32"] / rate["plain"], 3)
            errors["fp32_vs_plain"] = feature_error(fp32, np.stack(outs["plain"]))
    if "exact_bf16" in outs:
        ratios["exact_bf16_over_exact"] = round(rate["exact_bf16"] / rate["exact"], 3)
        errors["exact_bf16_vs_exact"] = _grid_errors(outs["exact_bf16"], outs["exact"])
    if "fp32" in outs and "exact" in outs:  # a whole snippet: clip crops + patches
        whole = {"fp32": 1 / (1 / rate["fp32"] + 1 / rate["exact"])}
        whole["fp32_roi"] = 1 / (1 / rate["fp32"] + 1 / rate["roi"])
        if "bf16" in outs and "exact_bf16" in outs:
            whole["bf16"] = 1 / (1 / rate["bf16"] + 1 / rate["exact_bf16"])
        res["snippet_with_patches_per_s"] = {k: round(v, 4) for k, v in whole.items()}
    if "exact" in outs:
        for mode in ("roi", "roi-4f"):
            ratios[f"{mode}_over_exact"] = round(rate[mode] / rate["exact"], 3)
            errors[f"{mode}_vs_exact"] = _grid_errors(outs[mode], outs["exact"])
    res["ratios"] = ratios
    res["errors"] = errors
    return res


def main() -> None:
    args = _parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory:
        print(json.dumps(memory(args.crops, not args.no_patches), indent=1))
        return
    torch.set_flush_denormal(True)
    bb, weights = _backbone(args.weights)
    n = args.snippets + 1  # the first warms up
    fw, fh = (int(v) for v in args.patch_frame_size.lower().split("x"))
    snippets = _video_snippets(args.video, n) if args.video else _synthetic_snippets(n, fh, fw)
    seconds, outs = _time(_variants(bb, args), snippets)
    result = {
        "device": "cpu",
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "weights": weights,
        "input": args.video or f"synthetic {fw}x{fh}",
        "crops_per_snippet": args.crops,
        "crop_size": args.size,
        "patch_frame_size": args.patch_frame_size,
        "patch_dtype": args.patch_dtype,
        "snippets_timed": args.snippets,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        **_report(outs, seconds, args.snippets),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
