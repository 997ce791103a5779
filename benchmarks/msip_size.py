"""Parameters and FLOPs of vadkit's MSIP next to the paper's (75.2 M, 17.0 G) and RTFM's.

FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` for one inference forward pass
over one video of `--segments` segments with `--crops` clip crops and 49 patches per segment.
The counter counts a multiply-add as 2 FLOPs. The papers' "FLOPs" are multiply-adds (MACs): RTFM's
published 7.9 G is exactly the MAC count of vadkit's RTFM here, so compare the MACs column.

    python benchmarks/msip_size.py [--feature-dim 2048] [--segments 32] [--crops 10] [--json]
"""

from __future__ import annotations

import argparse
import json

import torch
from torch.utils.flop_counter import FlopCounterMode

from vadkit.models import create_model
from vadkit.models.common import CLIP, PATCHES

PAPER = {  # (parameters, FLOPs) as the MSIP and RTFM papers publish them
    "msip": (75.2e6, 17.0e9),
    "rtfm": (24.7e6, 7.9e9),
}


def measure(name: str, *, feature_dim: int, segments: int, crops: int, **kw) -> dict:
    model = create_model(name, feature_dim=feature_dim, segments=segments, **kw).eval()
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.trainable_parameters())
    bag = {CLIP: torch.zeros(1, crops, segments, feature_dim)}
    if PATCHES in model.inputs:
        grids = model.config.get("patch_grids") or []
        bag[PATCHES] = torch.zeros(1, segments, sum(r * c for r, c, *_ in grids), feature_dim)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.scores(bag)
    flops = counter.get_total_flops()
    paper = PAPER.get(name)
    return {
        "model": name + (f" stage {kw['stage']}" if "stage" in kw else ""),
        "feature_dim": feature_dim,
        "parameters": params,
        "trainable_parameters": trainable,
        "flops": flops,
        "macs": flops // 2,
        "paper_parameters": paper[0] if paper else None,
        "paper_flops": paper[1] if paper else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--feature-dim", type=int, default=2048)
    ap.add_argument("--segments", type=int, default=32)
    ap.add_argument("--crops", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    common = dict(feature_dim=a.feature_dim, segments=a.segments, crops=a.crops)
    rows = [
        measure("msip", stage=2, **common),
        measure("rtfm", **common),
        measure("mgfn", **common),
    ]
    if a.json:
        print(json.dumps(rows, indent=1))
        return
    print(
        f"per video of {a.segments} segments × {a.crops} crops (+49 patches per segment for "
        f"MSIP), d = {a.feature_dim}"
    )
    print(f"{'model':14} {'params':>10} {'trainable':>10} {'FLOPs':>9} {'MACs':>9}   paper")
    for r in rows:
        paper = (
            f"{r['paper_parameters'] / 1e6:.1f} M / {r['paper_flops'] / 1e9:.1f} G"
            if r["paper_parameters"]
            else "-"
        )
        print(
            f"{r['model']:14} {r['parameters'] / 1e6:8.2f} M {r['trainable_parameters'] / 1e6:8.2f} M"
            f" {r['flops'] / 1e9:7.2f} G {r['macs'] / 1e9:7.2f} G   {paper}"
        )


if __name__ == "__main__":
    main()
