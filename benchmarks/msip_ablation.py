"""MSIP's ablations on a quickstart output, in the layout of the MSIP poster's two tables.

Trains MSIP stage 2 on the quickstart's RTFM run (`OUT/runs/rtfm/last.safetensors`) once per
variant and seed, through the CLI (`vadkit train`, `vadkit score --checkpoint last`,
`vadkit eval`), with the quickstart's MSIP settings (200 steps, `--model-arg graph_dim=128`,
batch 8 normal + 8 abnormal videos, 8 segments, evaluation every 50 steps):

- the seven non-empty subsets of the patch scales 2×3, 3×5, 4×7 (`--model-arg scales=23,47`);
- MPSR without its hierarchical graph convolution (`--model-arg hgc=false`, all three scales);

and scores the RTFM run itself (stage 1: no patches, no MPSR) for the components table. Prints
frame-level ROC AUC and AP on the test split as mean ± std over the seeds (sample std; none
with one seed) and the seconds each run took (train + score + eval). The quickstart's test split
has 12 videos: differences of a point or two are within what another seed moves.

    python benchmarks/msip_ablation.py [OUT] [--seeds 0,1,2] [--steps 200] [--device auto]
        [--work OUT/ablation] [--json]

`OUT` (default `quickstart-out`) is what `examples/quickstart.sh` writes: `feats/train`,
`feats/test`, `data/{train,test,annotations}.csv`, `runs/rtfm`. Runs go under `--work`
(default `OUT/ablation`), which is replaced when an earlier ablation made it, and refused
otherwise; `results.json` there holds every run's numbers.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

MARK = ".vadkit-msip-ablation"  # marks a --work directory this script may replace
SCALES = (23, 35, 47)
SCALE_LABELS = {23: "2×3", 35: "3×5", 47: "4×7"}
# (name, model args) of every MSIP variant: the scale subsets, coarse first, then no HGC
SUBSETS = [
    (s,) for s in SCALES
] + [(23, 35), (23, 47), (35, 47), SCALES]  # fmt: skip
VARIANTS = [("+".join(map(str, s)), {"scales": ",".join(map(str, s))}) for s in SUBSETS] + [
    ("no-hgc", {"hgc": "false"})
]


def vadkit(*args: str | Path) -> None:
    """Run one `vadkit` command; its output is shown only when it fails."""
    cmd = [sys.executable, "-m", "vadkit", *map(str, args)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise SystemExit(f"msip_ablation: failed: {' '.join(cmd[2:])}")


def score_and_eval(run: Path, dest: Path, out: Path, a: argparse.Namespace) -> dict:
    """Score run `run`'s `last` checkpoint on the test features into `dest`, evaluate."""
    scores, metrics = dest / "scores", dest / "metrics.json"
    vadkit("score", run, out / "feats/test", "-o", scores, "--checkpoint", "last",
           "--device", a.device)  # fmt: skip
    vadkit("eval", scores, "-a", out / "data/annotations.csv", "-o", metrics)
    m = json.loads(metrics.read_text())
    return {"roc_auc": m["roc_auc"], "average_precision": m["average_precision"]}


def train_variant(out: Path, run: Path, args: dict, seed: int, a: argparse.Namespace) -> dict:
    start = time.perf_counter()
    model_args = [x for k, v in {"graph_dim": a.graph_dim, **args}.items()
                  for x in ("--model-arg", f"{k}={v}")]  # fmt: skip
    vadkit(
        "train", "--model", "msip", "--stage", "2",
        "--from", out / "runs/rtfm/last.safetensors", "-o", run,
        "--train", out / "data/train.csv", "--features", out / "feats/train",
        "--val", out / "data/test.csv", "--val-features", out / "feats/test",
        "--annotations", out / "data/annotations.csv",
        "--batch-size", a.batch_size, "--segments", a.segments, "--eval-every", a.eval_every,
        "--steps", a.steps, "--seed", seed, "--device", a.device, *model_args,
    )  # fmt: skip
    result = score_and_eval(run, run, out, a)
    return {**result, "seconds": time.perf_counter() - start}


def summarise(runs: list[dict]) -> dict:
    def spread(key: str) -> tuple[float, float | None]:
        xs = [r[key] for r in runs]
        return statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else None

    return {
        "roc_auc": spread("roc_auc"),
        "average_precision": spread("average_precision"),
        "seconds": statistics.mean(r["seconds"] for r in runs),
        "runs": runs,
    }


def cell(value: tuple[float, float | None]) -> str:
    mean, std = value
    return f"{100 * mean:.1f}" + (f" ± {100 * std:.1f}" if std is not None else "")


def print_tables(results: dict, a: argparse.Namespace) -> None:
    seeds = ",".join(map(str, a.seeds))
    print(f"MSIP stage 2 on runs/rtfm: {a.steps} steps, graph_dim {a.graph_dim}, batch "
          f"{a.batch_size}, {a.segments} segments; seeds {seeds}; test ROC AUC / AP in %")  # fmt: skip
    print()
    head = " | ".join(SCALE_LABELS.values())
    print(f"| {head} | ROC AUC | AP | s |")
    print("|" + "-----|" * (len(SCALES) + 3))
    for subset in SUBSETS:
        r = results["+".join(map(str, subset))]
        marks = " | ".join(" ✓ " if s in subset else "   " for s in SCALES)
        row = f"{cell(r['roc_auc'])} | {cell(r['average_precision'])} | {r['seconds']:.0f}"
        print(f"| {marks} | {row} |")
    print()
    print("| components | ROC AUC | AP | s |")
    print("|------------|-----|-----|-----|")
    rows = [
        ("RTFM stage 1 (no patches, no MPSR)", "rtfm"),
        ("+ MPSR without HGC (per-scale attention pooling)", "no-hgc"),
        ("+ MPSR with HGC (MSIP, all three scales)", "+".join(map(str, SCALES))),
    ]
    for label, key in rows:
        r = results[key]
        row = f"{cell(r['roc_auc'])} | {cell(r['average_precision'])} | {r['seconds']:.0f}"
        print(f"| {label} | {row} |")


def prepare(a: argparse.Namespace) -> Path:
    out = Path(a.out)
    needed = ["feats/train", "feats/test", "data/train.csv", "data/test.csv",
              "data/annotations.csv", "runs/rtfm/last.safetensors"]  # fmt: skip
    missing = [n for n in needed if not (out / n).exists()]
    if missing:
        raise SystemExit(
            f"msip_ablation: {out} is not a quickstart output (missing {', '.join(missing)}); "
            "run examples/quickstart.sh first"
        )
    work = Path(a.work) if a.work else out / "ablation"
    if work.exists():
        if not (work / MARK).is_file():
            raise SystemExit(f"msip_ablation: {work} exists and is not an earlier ablation")
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / MARK).touch()
    return work


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", default="quickstart-out", help="quickstart output")
    ap.add_argument("--seeds", default="0", help="training seeds, comma-separated (0,1,2)")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--graph-dim", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--segments", type=int, default=8)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--work", default=None, help="where the runs go (default OUT/ablation)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    a = ap.parse_args(argv)
    try:
        a.seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--seeds: expected integers such as 0,1,2, got {a.seeds!r}")
    if not a.seeds:
        ap.error("--seeds: name at least one seed")
    a.eval_every = min(a.eval_every, a.steps)
    return a


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    work = prepare(a)
    out = Path(a.out)
    start = time.perf_counter()
    results = {"rtfm": summarise([rtfm_row(out, work, a)])}
    for name, args in VARIANTS:
        runs = []
        for seed in a.seeds:
            print(f"[{time.perf_counter() - start:5.0f} s] {name} seed {seed}", file=sys.stderr)
            runs.append(train_variant(out, work / name / f"seed{seed}", args, seed, a))
        results[name] = summarise(runs)
    (work / "results.json").write_text(json.dumps(results, indent=1))
    if a.json:
        print(json.dumps(results, indent=1))
    else:
        print_tables(results, a)
    print(f"\ntotal {time.perf_counter() - start:.0f} s; runs and results.json in {work}")


def rtfm_row(out: Path, work: Path, a: argparse.Namespace) -> dict:
    """The stage-1 row: the quickstart's RTFM run, scored from its `last` checkpoint."""
    start = time.perf_counter()
    (work / "rtfm").mkdir()
    result = score_and_eval(out / "runs/rtfm", work / "rtfm", out, a)
    return {**result, "seconds": time.perf_counter() - start}


if __name__ == "__main__":
    main()
