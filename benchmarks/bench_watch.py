"""`vadkit watch` on this machine: latency, sustained fps, drops, alert timing, and how the
windowed live scores relate to offline `vadkit score` on the same videos.

    python benchmarks/bench_watch.py --qs QUICKSTART_OUT --video ../shared/data/videos/01_002.avi

QUICKSTART_OUT is what `examples/quickstart.sh` wrote (runs/, feats/test, data/). Parts:

- agreement: per video, the live scores (snippet i scored as the newest of the last W
  snippets, `vadkit.watch.window_scores`) against offline `score` (the whole sequence), for
  several W: Pearson r, max and mean |difference|. Live features equal offline ones
  (tests/test_watch.py checks it), so this is what `watch` prints. The real clip is extracted
  once with the run's settings into OUT/feats.
- timing: `watch --realtime` (the library's Watcher) on the real clip and on the quickstart's
  anomalous test videos: per-snippet latency (snippet end -> score), sustained and capacity
  fps, drops, and when the first alert fired against the annotated event start.

Writes OUT/bench_watch.json and prints markdown tables. CPU numbers depend on the load of the
machine; the load average is recorded.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

import numpy as np


def agreement(run, sources, windows, lookaheads) -> list[dict]:
    from vadkit.data import load_source
    from vadkit.score import source_scores
    from vadkit.watch import WindowScorer, window_scores

    scorer = WindowScorer(run, 1, lookahead=0)  # only its score_arrays is used
    rows = []
    files = run.model.patch_files(run.model.stage, run.model.config) if scorer.patches else ()
    for src in sources:
        offline = source_scores(run.model, src, spec=run.spec, device=run.device)
        clip, patch = load_source(src, patches=files or scorer.patches)
        for w in windows:
            for la in (x for x in lookaheads if x < w):
                live = window_scores(scorer, clip, patch, w, la)
                d = np.abs(live - offline)
                ok = live.std() > 0 and offline.std() > 0
                r = float(np.corrcoef(live, offline)[0, 1]) if ok else None
                rows.append({"video": src.video, "snippets": int(clip.shape[0]), "window": w,
                             "lookahead": la, "r": r, "max_abs": float(d.max()),
                             "mean_abs": float(d.mean())})  # fmt: skip
    return rows


def agreement_summary(rows: list[dict]) -> list[dict]:
    """Per (window, lookahead): median r over the quickstart's test videos, r on the real
    clip, the largest and the mean |live - offline|."""
    out = []
    for key in sorted({(r["window"], r["lookahead"]) for r in rows}):
        sel = [r for r in rows if (r["window"], r["lookahead"]) == key]
        synth = [r["r"] for r in sel if r["video"].startswith("test_") and r["r"] is not None]
        real = [r["r"] for r in sel if not r["video"].startswith("test_")]
        out.append({"window": key[0], "lookahead": key[1],
                    "median_r_synthetic": float(np.median(synth)) if synth else None,
                    "r_real": real[0] if real else None,
                    "max_abs": max(r["max_abs"] for r in sel),
                    "mean_abs": float(np.mean([r["mean_abs"] for r in sel]))})  # fmt: skip
    return out


def extract_real(run, video: Path, out: Path):
    from vadkit.data import Source
    from vadkit.extract import ExtractOptions, extract_videos
    from vadkit.models.common import PATCHES

    opts = ExtractOptions.from_record(
        run.meta["extraction"], device="cpu", patches=PATCHES in run.model.inputs
    )
    summary = extract_videos([video], out, opts)
    if summary.failed:
        raise SystemExit(summary.failed[0].error)
    return Source(video.stem, out / f"{video.stem}.npy")


def watch(run, extractor, video: Path, *, realtime: bool, threshold: float, max_lag: float) -> dict:
    from vadkit.alerts import AlertRule
    from vadkit.watch import ReaderOptions, Watcher, WatchOptions, parse_source

    opts = WatchOptions(
        rule=AlertRule(threshold, 0.0, 2.0),
        reader=ReaderOptions(realtime=realtime, max_lag=max_lag),
    )
    w = Watcher(run, extractor, parse_source(str(video)), opts)
    lines: list[dict] = []
    w.run_loop(lines.append, lambda m: None)
    summary = w.finish()
    starts = [x for x in lines if x["event"] == "alert_start"]
    summary["first_alert"] = starts[0] if starts else None
    summary["scores"] = [x["score"] for x in lines if x["event"] == "snippet"]
    return summary


def events(qs: Path) -> dict[str, tuple[int, int]]:
    with open(qs / "data" / "annotations.csv", newline="") as f:
        return {
            r["video"]: (int(r["start"]), int(r["end"])) for r in csv.DictReader(f) if r["start"]
        }


def timing(run, extractor, qs: Path, video: Path, threshold: float) -> list[dict]:
    """--realtime with the default --max-lag (4 s) on the real clip and the anomalous test
    videos, then on the test videos again with --max-lag 600 (nothing dropped: every alert the
    offline model would raise, at the lag this machine needs)."""
    rows = []
    gt = events(qs)
    abn = sorted((qs / "data" / "videos").glob("test_abn_*.mp4"))
    runs = [(v, 4.0) for v in [video, *abn]] + [(v, 600.0) for v in abn]
    for v, max_lag in runs:
        s = watch(run, extractor, v, realtime=True, threshold=threshold, max_lag=max_lag)
        a, ev = s["first_alert"], gt.get(v.stem)
        row = {k: s[k] for k in ("snippets", "dropped", "frames", "fps", "capacity_fps",
                                 "seconds_per_snippet", "latency_p50", "latency_p95",
                                 "latency_max", "alerts")}  # fmt: skip
        row["video"], row["max_lag"] = v.stem, max_lag
        if ev is not None:
            row["event_start_frame"], row["event_end_frame"] = ev
            row["alert_start_frame"] = a and a["start_frame"]
            row["alert_fired_time"] = a and a["fired_time"]
            row["before_event"] = bool(a and a["start_frame"] + 16 <= ev[0])
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def markdown(rows: list[dict], keys: list[str]) -> str:
    head = "| " + " | ".join(keys) + " |\n|" + "---|" * len(keys) + "\n"

    def fmt(v):
        return f"{v:.3f}" if isinstance(v, float) else ("" if v is None else str(v))

    return head + "\n".join("| " + " | ".join(fmt(r.get(k)) for k in keys) + " |" for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--qs", type=Path, required=True, help="the quickstart's output directory")
    ap.add_argument("--video", type=Path, required=True, help="a real clip (01_002.avi)")
    ap.add_argument("--out", type=Path, default=Path("bench-watch-out"))
    ap.add_argument("--models", nargs="+", default=["msip", "rtfm"])
    ap.add_argument("--windows", nargs="+", type=int, default=[4, 8, 16])
    ap.add_argument("--lookaheads", nargs="+", type=int, default=[0, 1, 4])
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--skip-timing", action="store_true")
    args = ap.parse_args()
    from vadkit.data import Source
    from vadkit.score import load_run
    from vadkit.watch import load_extractor

    result = {"load_average_start": os.getloadavg(), "cpus": os.cpu_count(), "models": {}}
    for name in args.models:
        run = load_run(args.qs / "runs" / name, device="cpu")
        test = sorted((args.qs / "feats" / "test").glob("test_*.npy"))
        sources = [Source(p.stem, p) for p in test if "_patch" not in p.name]
        sources.append(extract_real(run, args.video, args.out / "feats"))
        agree = agreement(run, sources, args.windows, args.lookaheads)
        summary = agreement_summary(agree)
        print(f"## {name}: live (window W, lookahead L) vs offline score\n", flush=True)
        keys = ["window", "lookahead", "median_r_synthetic", "r_real", "max_abs", "mean_abs"]
        print(markdown(summary, keys), flush=True)
        entry = {"agreement": agree, "agreement_summary": summary, "default_window": None}
        if not args.skip_timing:
            t0 = time.time()
            extractor = load_extractor(run, device="cpu")
            entry["timing"] = timing(run, extractor, args.qs, args.video, args.threshold)
            entry["timing_seconds"] = time.time() - t0
            keys = ["video", "max_lag", "snippets", "dropped", "fps", "capacity_fps",
                    "latency_p50", "latency_p95", "event_start_frame", "alert_start_frame",
                    "alert_fired_time"]  # fmt: skip
            print(f"\n## {name}: watch --realtime\n")
            print(markdown(entry["timing"], keys))
        from vadkit.watch import default_window

        entry["default_window"] = default_window(run.meta, run.model.min_snippets)
        result["models"][name] = entry
    result["load_average_end"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_watch.json").write_text(json.dumps(result, indent=1))
    print(f"\nload average {result['load_average_start']} -> {result['load_average_end']}")


if __name__ == "__main__":
    main()
