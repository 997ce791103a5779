"""Does `vadkit score --evidence` point at the event? A hit-rate measurement on synthetic videos.

For every anomalous snippet of the synthetic videos (a snippet of 16 frames that overlaps the
annotated event interval and shows the event's figures in at least one of its frames), the
*event region* is the union of the per-frame event boxes of its frames (`boxes.csv` of
`vadkit synth`, pixels of the video). The snippet is a **hit** when its highest-evidence patch
overlaps that region (shares at least one pixel with it, the patch's box mapped onto the video
frame as `vadkit.evidence.patch_regions` does).

Chance is what a patch picked without looking at the evidence scores:

- `chance`: the mean over the same snippets of the share of the P patches that overlap the
  region: the expected hit rate of a uniformly random patch (the baseline of the hit rate);
- `area`: the mean share of the patch *area* (summed over the three grids) that belongs to
  overlapping patches: the expected hit rate of a patch drawn in proportion to its area (a
  coarse patch is larger and overlaps more often);
- `auc`: a threshold-free check over all patches: per snippet, the ROC AUC of the evidence
  separating the overlapping patches from the others, averaged (chance 0.5).

Per scale (`2x3`, `3x5`, `4x7`): the same hit rate with the top patch taken within one grid,
against that grid's chance; then the same per event class. Rows for every evidence method
(`vadkit.evidence.METHODS`), on the test split and, with `--split both`, the training split
too (the model saw those videos, but only with video-level labels: never where an event is).

    python benchmarks/evidence_hit.py OUT [--synth DATA] [--split test|train|both]
        [--units logit|score] [--checkpoint last] [--device cpu] [--json]

`--units`: evidence as the drop in the snippet score's log-odds (vadkit's default) or in the
score itself (where a confident snippet's score saturates and every drop rounds to 0).

`OUT` is a quickstart output (`runs/msip`, `feats/{train,test}`, `data/videos`); `DATA`
(default `OUT/data`, which has `boxes.csv` when this vadkit made it) a `vadkit synth` output
with `boxes.csv`, made with the quickstart's settings (`vadkit synth -o
DATA --videos-train 48 --videos-test 12 --size 160x120 --frames 128 --seed 0`); its videos
must be byte-identical to `OUT/data/videos` (checked), so that the boxes are those of the
videos the features were extracted from.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from vadkit.data import Source
from vadkit.evidence import GRID_ORDER, METHODS, compute_evidence, patch_regions, pixel_boxes
from vadkit.inference import eval_mode, source_bag
from vadkit.io.hashing import sha256_file
from vadkit.score import load_run
from vadkit.synth import read_boxes

SCALE_LABELS = {"patch23": "2x3", "patch35": "3x5", "patch47": "4x7"}


def check_same_videos(ours: Path, theirs: Path) -> int:
    """Refuse unless both directories hold the same .mp4 files, byte for byte; their count."""
    a = {p.name: p for p in ours.glob("*.mp4")}
    b = {p.name: p for p in theirs.glob("*.mp4")}
    if not a or set(a) != set(b):
        raise SystemExit(f"evidence_hit: {ours} and {theirs} hold different videos")
    for name in sorted(a):
        if sha256_file(a[name]) != sha256_file(b[name]):
            raise SystemExit(f"evidence_hit: {name} differs between {ours} and {theirs}")
    return len(a)


def event_masks(video_boxes: dict, intervals, frames: int, snippets: int, w: int, h: int):
    """Per snippet, the union of its frames' event boxes as a (h, w) mask, or None when the
    snippet does not overlap the interval or shows no event."""
    out = []
    for i in range(snippets):
        lo, hi = 16 * i, min(16 * i + 15, frames - 1)
        if not any(s <= hi and lo <= e for s, e in intervals):
            out.append(None)
            continue
        mask = np.zeros((h, w), bool)
        for f in range(lo, hi + 1):
            if f in video_boxes:
                x0, y0, x1, y1 = video_boxes[f]
                mask[y0:y1, x0:x1] = True
        out.append(mask if mask.any() else None)
    return out


def overlaps(boxes: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.array([mask[y0:y1, x0:x1].any() for x0, y0, x1, y1 in boxes])


def auc(values: np.ndarray, positive: np.ndarray) -> float | None:
    pos, neg = values[positive], values[~positive]
    if not pos.size or not neg.size:
        return None
    greater = (pos[:, None] > neg[None]).mean()
    ties = (pos[:, None] == neg[None]).mean()
    return float(greater + 0.5 * ties)


class Tally:
    """Hits and chances of one (split, method) over its snippets."""

    def __init__(self, grids: list[tuple[str, slice]]) -> None:
        self.grids = grids
        self.n = 0
        self.hits = 0
        self.chance = 0.0
        self.area = 0.0
        self.aucs: list[float] = []
        self.scale = {g: [0, 0.0] for g, _ in grids}
        self.seconds: list[float] = []

    def add(self, ev: np.ndarray, hit: np.ndarray, areas: np.ndarray) -> None:
        self.n += 1
        self.hits += bool(hit[int(np.argmax(ev))])
        self.chance += float(hit.mean())
        self.area += float(areas[hit].sum() / areas.sum())
        a = auc(ev, hit)
        if a is not None:
            self.aucs.append(a)
        for g, sl in self.grids:
            self.scale[g][0] += bool(hit[sl][int(np.argmax(ev[sl]))])
            self.scale[g][1] += float(hit[sl].mean())

    def row(self) -> dict:
        n = max(1, self.n)
        return {
            "snippets": self.n,
            "hit": self.hits / n,
            "chance": self.chance / n,
            "area": self.area / n,
            "auc": float(np.mean(self.aucs)) if self.aucs else None,
            "scales": {
                SCALE_LABELS[g]: {"hit": h / n, "chance": c / n} for g, (h, c) in self.scale.items()
            },
            "seconds_per_video": float(np.mean(self.seconds)) if self.seconds else None,
        }


def measure(run, feats: Path, synth: dict, boxes: dict, split: str, methods, size, units) -> dict:
    """{method: Tally} over the anomalous videos of `split`."""
    w, h = size
    tallies: dict[str, Tally] = {}
    skipped = [0, 0]  # anomalous snippets without a visible event; anomalous videos
    for v in synth["videos"]:
        if v["split"] != split or not v["label"]:
            continue
        skipped[1] += 1
        src = Source(v["video"], feats / f"{v['video']}.npy")
        bag = source_bag(run.model, src, spec=run.spec, device=run.device)
        grids = {g: src.meta.patch_grids[g] for g in GRID_ORDER if g in src.meta.patch_grids}
        regions = patch_regions(grids, src.meta.patch_frame_size)
        px = pixel_boxes(regions, w, h)
        areas = (px[:, 2] - px[:, 0]) * (px[:, 3] - px[:, 1]).astype(np.float64)
        sl, start = [], 0
        for g, (rows, cols, _, _) in grids.items():
            sl.append((g, slice(start, start + rows * cols)))
            start += rows * cols
        t = int(bag["clip"].shape[2])
        masks = event_masks(boxes.get(v["video"], {}), v["intervals"], v["frames"], t, w, h)
        skipped[0] += sum(
            m is None and any(s <= 16 * i + 15 and 16 * i <= e for s, e in v["intervals"])
            for i, m in enumerate(masks)
        )
        for method in methods:
            t0 = time.perf_counter()
            ev, _ = compute_evidence(run.model, bag, method=method, units=units)
            seconds = time.perf_counter() - t0
            for key in (method, f"{method} {v['class']}"):
                tally = tallies.setdefault(key, Tally(sl))
                tally.seconds.append(seconds)
                for i, mask in enumerate(masks):
                    if mask is not None:
                        tally.add(ev[i], overlaps(px, mask), areas)
    return {"tallies": tallies, "no_visible_event": skipped[0], "videos": skipped[1]}


def _row_order(item) -> tuple:
    """All classes first, then per class; methods in METHODS order."""
    method, _, cls = item[0].partition(" ")
    return (bool(cls), cls, list(METHODS).index(method) if method in METHODS else len(METHODS))


def print_table(results: dict) -> None:
    head = (
        f"{'split':<6} {'method':<13} {'snip':>4} {'hit':>6} {'chance':>6} {'area':>6} {'auc':>5}"
    )
    head += "".join(f"  {s:>5} hit/chance" for s in SCALE_LABELS.values()) + "   s/video"
    print(head)
    for split, res in results.items():
        rows = sorted(res["rows"].items(), key=_row_order)
        for method, row in rows:
            cells = f"{split:<6} {method:<22} {row['snippets']:>4} {row['hit']:>6.3f} "
            cells += f"{row['chance']:>6.3f} {row['area']:>6.3f} "
            cells += f"{row['auc']:>5.3f}" if row["auc"] is not None else "    -"
            for s in row["scales"].values():
                cells += f"  {s['hit']:>6.3f}/{s['chance']:.3f}    "
            cells += f" {row['seconds_per_video']:.3f}"
            print(cells)
        print(
            f"{split}: {res['videos']} anomalous videos; {res['no_visible_event']} snippet(s) "
            "overlapping an event interval show none of its figures and are left out"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="quickstart output (runs/msip, feats/, data/)")
    ap.add_argument(
        "--synth", type=Path, help="vadkit synth output with boxes.csv [OUT/data]", default=None
    )
    ap.add_argument("--split", choices=("test", "train", "both"), default="test")
    ap.add_argument("--checkpoint", default="last", choices=("best", "last"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument(
        "--units", choices=("logit", "score"), default="logit", help="drops in log-odds or scores"
    )
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    a.synth = a.synth or a.out / "data"
    if not (a.synth / "boxes.csv").is_file():
        raise SystemExit(
            f"evidence_hit: {a.synth / 'boxes.csv'} not found; regenerate the synthetic data with "
            "this vadkit (same settings and seed) and pass it as --synth"
        )
    n = check_same_videos(a.synth / "videos", a.out / "data" / "videos")
    synth = json.loads((a.synth / "synth.json").read_text())
    size = (synth["settings"]["width"], synth["settings"]["height"])
    boxes = read_boxes(a.synth / "boxes.csv")
    run = load_run(a.out / "runs" / "msip", checkpoint=a.checkpoint, device=a.device)
    methods = [m for m in a.methods.split(",") if m]
    splits = ("test", "train") if a.split == "both" else (a.split,)
    results = {}
    with eval_mode(run.model):
        for split in splits:
            feats = a.out / "feats" / split
            res = measure(run, feats, synth, boxes, split, methods, size, a.units)
            rows = {m: t.row() for m, t in res.pop("tallies").items()}
            results[split] = {**res, "rows": rows}
    if a.json:
        head = {"videos_identical": n, "checkpoint": str(run.path), "units": a.units}
        print(json.dumps({**head, **results}, indent=1))
    else:
        print(f"{n} videos identical to {a.out / 'data/videos'}; run {run.path} ({run.label})")
        print(f"evidence in {a.units} units (drop in the snippet's {a.units})")
        print_table(results)
    return 0


if __name__ == "__main__":
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    sys.exit(main())
