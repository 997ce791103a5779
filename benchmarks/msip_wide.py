"""RTFM vs MSIP vs MGFN where multi-scale patches should matter: distant, small anomalies.

`vadkit synth --preset wide` (MSIP's 840x480 frame; every event's box under 2 % of the frame)
-> `vadkit extract` at the paper's patch geometry (2x3, 3x5, 4x7 grids on the 480x840 frame)
-> per training seed: `vadkit train` RTFM (stage 1), MSIP (stage 2 on that RTFM run), MGFN
-> `vadkit score` (last checkpoint) -> `vadkit eval` on the test split. Prints frame-level ROC
AUC and AP as mean ± std over the seeds, and the seconds of each stage. Everything runs
through the CLI as README.md documents it.

The defaults are sized for about half an hour on a 2-core CPU: extraction of 12 videos of 3
snippets, where the exact patches at 480x840 (49 I3D passes per snippet, ~40-75 s per snippet
on a shared 2-core Xeon) are most of it (`--patch-mode roi` cuts that ~3.5x), then 3 seeds x
3 models of training as in the quickstart. A meaningful comparison wants more videos:

    python benchmarks/msip_wide.py [--out DIR] [--videos-train 8] [--videos-test 4]
        [--frames 48] [--seeds 0,1,2] [--patch-mode exact|roi] [--crops 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = ("rtfm", "msip", "mgfn")


def _parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="work directory (default: a temp dir)")
    ap.add_argument("--videos-train", type=int, default=8)
    ap.add_argument("--videos-test", type=int, default=4)
    ap.add_argument("--frames", type=int, default=48, help="frames per video (16 per snippet)")
    ap.add_argument("--data-seed", type=int, default=0, help="seed of the synthetic videos")
    ap.add_argument("--seeds", default="0,1,2", help="training seeds, comma-separated")
    ap.add_argument("--crops", default="1", choices=("1", "5", "10"))
    ap.add_argument("--patch-mode", default="exact", choices=("exact", "roi", "roi-4f"))
    ap.add_argument("--patch-frame-size", default="840x480", help="WxH (the paper's: 840x480)")
    ap.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16"))
    ap.add_argument("--random-weights", action="store_true", help="tests only: no Kinetics weights")
    ap.add_argument("--batch-size", type=int, default=None, help="videos per step (default: fit)")
    ap.add_argument("--rtfm-steps", type=int, default=300)
    ap.add_argument("--msip-steps", type=int, default=200)
    ap.add_argument("--mgfn-steps", type=int, default=200)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    return ap.parse_args()


class _Runner:
    """Runs `vadkit ...` commands, timing them by stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, stage: str, *args: str) -> None:
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "vadkit", *args]
        r = subprocess.run(cmd, capture_output=True, text=True)
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t0
        if r.returncode != 0:
            sys.exit(f"msip_wide: {' '.join(cmd[2:])} failed ({r.returncode}):\n{r.stderr[-3000:]}")
        print(
            f"[{sum(self.seconds.values()):7.1f} s] {stage}: {' '.join(args[:2])}", file=sys.stderr
        )


def _extract(run: _Runner, a: argparse.Namespace, data: Path, feats: Path) -> None:
    opts = ["--crops", a.crops, "--patch-frame-size", a.patch_frame_size]
    opts += ["--patch-mode", a.patch_mode, "--dtype", a.dtype, "--device", a.device, "-q"]
    if a.random_weights:
        opts.append("--random-weights")
    for split in ("train", "test"):
        run("extract", "extract", str(data / f"{split}.csv"), "-o", str(feats / split), *opts)


def _train_and_score(run: _Runner, a: argparse.Namespace, work: Path, seed: int) -> dict:
    data, feats, runs = work / "data", work / "feats", work / f"runs{seed}"
    segments = -(-a.frames // 16)
    batch = a.batch_size or max(1, min(8, round(a.videos_train * 0.5) // 2))
    common = [
        "--train", str(data / "train.csv"), "--features", str(feats / "train"),
        "--val", str(data / "test.csv"), "--val-features", str(feats / "test"),
        "--annotations", str(data / "annotations.csv"), "--batch-size", str(batch),
        "--segments", str(segments), "--seed", str(seed), "--device", a.device,
    ]  # fmt: skip
    steps = {"rtfm": a.rtfm_steps, "msip": a.msip_steps, "mgfn": a.mgfn_steps}
    extra = {  # as examples/quickstart.sh, for the same reasons
        "rtfm": ["--stage", "1"],
        "msip": ["--stage", "2", "--from", str(runs / "rtfm" / "last.safetensors"),
                 "--model-arg", "graph_dim=128"],
        "mgfn": ["--lr", "1e-4"],
    }  # fmt: skip
    out = {}
    for model in MODELS:
        every = str(max(1, steps[model] // 2))  # validation is not free: twice per run
        run(f"train {model}", "train", "--model", model, "-o", str(runs / model), *common,
            "--steps", str(steps[model]), "--eval-every", every, *extra[model])  # fmt: skip
        scores, metrics = work / f"scores{seed}" / model, work / f"metrics{seed}_{model}.json"
        run("score", "score", str(runs / model), str(feats / "test"), "-o", str(scores),
            "--checkpoint", "last", "--device", a.device)  # fmt: skip
        run("eval", "eval", str(scores), "-a", str(data / "annotations.csv"), "-o", str(metrics))
        m = json.loads(metrics.read_text())
        out[model] = {"roc_auc": m["roc_auc"], "ap": m["average_precision"]}
    return out


def _summary(per_seed: dict[int, dict]) -> dict:
    res = {}
    for model in MODELS:
        row = {}
        for key in ("roc_auc", "ap"):
            vals = [r[model][key] for r in per_seed.values()]
            row[key] = {
                "mean": statistics.fmean(vals),
                "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
                "values": vals,
            }
        res[model] = row
    return res


def _print_table(res: dict, a: argparse.Namespace, seeds: list[int], seconds: dict) -> None:
    names = {"rtfm": "RTFM (stage 1)", "msip": "MSIP (stage 2)", "mgfn": "MGFN"}
    print(
        f"wide synth: {a.videos_train} train + {a.videos_test} test videos, 840x480, "
        f"{a.frames} frames; patches {a.patch_mode} on {a.patch_frame_size}; crops {a.crops}; "
        f"training seeds {','.join(map(str, seeds))}"
    )
    print(f"| {'model':<15} | ROC AUC         | AP              |")
    print(f"|{'-' * 17}|-----------------|-----------------|")
    for model in MODELS:
        r = res[model]
        auc, ap = r["roc_auc"], r["ap"]
        print(
            f"| {names[model]:<15} | {auc['mean']:.4f} ± {auc['std']:.4f} "
            f"| {ap['mean']:.4f} ± {ap['std']:.4f} |"
        )
    total = sum(seconds.values())
    print(
        "seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()) + f"; total {total:.0f}"
    )


def main() -> None:
    a = _parse_args()
    seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    work = a.out or Path(tempfile.mkdtemp(prefix="msip-wide-"))
    run = _Runner()
    try:
        run("synth", "synth", "-o", str(work / "data"), "--preset", "wide", "-q",
            "--videos-train", str(a.videos_train), "--videos-test", str(a.videos_test),
            "--frames", str(a.frames), "--seed", str(a.data_seed))  # fmt: skip
        _extract(run, a, work / "data", work / "feats")
        per_seed = {s: _train_and_score(run, a, work, s) for s in seeds}
    finally:
        if a.out is None:
            shutil.rmtree(work, ignore_errors=True)
    res = _summary(per_seed)
    if a.json:
        print(json.dumps({"settings": vars(a) | {"out": str(a.out)}, "results": res,
                          "seconds": run.seconds}, indent=1))  # fmt: skip
    else:
        _print_table(res, a, seeds, run.seconds)


if __name__ == "__main__":
    main()
