"""`vadkit report`: one self-contained HTML page to review a batch of scored videos.

The page needs nothing but itself: CSS and JavaScript are inline, every image is a `data:` URI
and each score timeline is inline SVG, so it can be mailed, archived or opened offline. At the
top: the frame-level metrics when ground truth is given (`vadkit.metrics.evaluate`, the numbers
`vadkit eval` prints) and a table of every video, sortable, highest peak score first; then one
section per video: its timeline (score curve, threshold, alerts shaded and numbered, ground
truth underneath) and its alerts ranked by peak (or mean) score, each with the peak frame as a
thumbnail when the source video is found under `--videos` (the evidence heatmap overlaid when
the scores have evidence).

Alerts are `vadkit.alerts.alert_segments` of the frame scores, as in `vadkit render` and
`vadkit watch`. Their times need the video's frame rate: the source video's, else the one the
score metadata or its features record (`vadkit.plot.video_fps`), else `default_fps` (the page
says which).
"""

from __future__ import annotations

import base64
import html
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vadkit.alerts import Alert, AlertRule, alert_segments
from vadkit.errors import VadkitError
from vadkit.io.annotations import Annotations
from vadkit.io.atomic import TMP_PREFIX, save_text
from vadkit.opencv import cv2
from vadkit.render import (
    VideoScores,
    blend_heatmap,
    heat_strength,
    read_batch,
    with_evidence,
    writing,
)
from vadkit.video import VIDEO_EXTENSIONS, probe

RANKINGS = ("peak", "mean")
THUMB_WIDTH = 240
DEFAULT_FPS = 30.0


@dataclass
class VideoEntry:
    """What the page shows of one video."""

    vs: VideoScores
    fps: float
    fps_from: str  # "video", "metadata" or "assumed"
    source: Path | None
    alerts: list[Alert]  # ranked
    thumbs: dict[int, str] = field(default_factory=dict)  # alert index -> data: URI
    gt: list[tuple[int, int]] | None = None
    anomalous: bool | None = None
    roc_auc: float | None = None

    @property
    def name(self) -> str:
        return self.vs.video

    @property
    def peak(self) -> float:
        return float(np.max(self.vs.scores))


def index_videos(videos_dir: str | os.PathLike) -> dict[str, Path]:
    """{file stem: path} of every video under `videos_dir` (recursively; the first path in
    sorted order wins a stem found twice)."""
    d = Path(videos_dir)
    if not d.is_dir():
        raise VadkitError(f"{d}: video directory not found")
    found: dict[str, Path] = {}
    for p in sorted(d.rglob("*")):
        if p.suffix.lower() in VIDEO_EXTENSIONS and not p.name.startswith(TMP_PREFIX):
            found.setdefault(p.stem, p)
    return found


def video_fps(vs: VideoScores, source: Path | None, scores_dir, default_fps: float):
    """(fps, where it came from) of a video's scores."""
    if source is not None:
        return probe(source).fps, "video"
    from vadkit.plot import video_fps as recorded_fps

    fps = recorded_fps(vs.meta, scores_dir)
    return (fps, "metadata") if fps else (default_fps, "assumed")


def rank_alerts(alerts: Sequence[Alert], by: str) -> list[Alert]:
    """Alerts, highest `by` ("peak" or "mean" score) first, earlier first among equals."""
    if by not in RANKINGS:
        raise VadkitError(f"alerts are ranked by one of {', '.join(RANKINGS)}, not {by!r}")
    if by == "peak":
        return sorted(alerts, key=lambda a: (-a.peak, a.start_time))
    return sorted(alerts, key=lambda a: (-float(np.mean(a.scores or [a.peak])), a.start_time))


def keyframes(path: Path, frames: set[int]) -> dict[int, np.ndarray]:
    """The RGB frames numbered `frames` (0-based) of a video, decoded in one pass."""
    out: dict[int, np.ndarray] = {}
    if not frames:
        return out
    cap = cv2.VideoCapture(str(path))
    try:
        for i in range(max(frames) + 1):
            if not cap.grab():
                break
            if i in frames:
                ok, bgr = cap.retrieve()
                if ok and bgr is not None:
                    out[i] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()
    return out


def data_uri(rgb: np.ndarray, width: int = THUMB_WIDTH) -> str:
    """A JPEG `data:` URI of an RGB frame scaled to `width` pixels."""
    h, w = rgb.shape[:2]
    if w != width:
        rgb = cv2.resize(rgb, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85]
    )
    if not ok:
        raise VadkitError("OpenCV could not encode a thumbnail as JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def add_thumbnails(entry: VideoEntry, limit: int) -> None:
    """Thumbnails of the peak frame of the first `limit` ranked alerts (with the heatmap of the
    peak's snippet when the scores have evidence)."""
    if entry.source is None or limit <= 0:
        return
    chosen = entry.alerts[:limit]
    frames = keyframes(entry.source, {a.peak_frame for a in chosen})
    vs = entry.vs
    for a in chosen:
        frame = frames.get(a.peak_frame)
        if frame is None:
            continue
        if vs.evidence is not None and vs.regions is not None:
            row = vs.evidence[min(vs.snippet_of(a.peak_frame), vs.evidence.shape[0] - 1)]
            frame = blend_heatmap(frame, row, vs.regions, heat_strength(a.peak))
        entry.thumbs[a.index] = data_uri(frame)


def _metrics(entries: Mapping[str, VideoEntry], ann: Annotations, threshold: float) -> dict:
    """`vadkit eval`'s metrics of the batch, and each video's ground truth on its entry."""
    from vadkit.metrics import evaluate

    metas = {v: e.vs.meta for v, e in entries.items() if e.vs.meta is not None}
    result = evaluate(
        {v: e.vs.scores for v, e in entries.items()},
        ann,
        frame_counts={v: m.frame_count for v, m in metas.items()},
        snippet_lengths={v: m.snippet_length for v, m in metas.items()},
        threshold=threshold,
        per_video=True,
    )
    for v, e in entries.items():
        e.gt = ann.intervals(v) if (v in ann or ann.unlisted_normal) else []
        e.anomalous = bool(e.gt)
        e.roc_auc = result["per_video"].get(v, {}).get("roc_auc")
    return result


@dataclass
class Batch:
    """Everything the page shows."""

    scores_dir: Path
    videos_dir: Path | None
    rule: AlertRule
    rank_by: str
    entries: dict[str, VideoEntry]
    metrics: dict | None = None
    annotations: str | None = None


def gather(
    scores_dir: str | os.PathLike,
    *,
    rule: AlertRule,
    videos_dir: str | os.PathLike | None = None,
    annotations: Annotations | None = None,
    rank_by: str = "peak",
    default_fps: float = DEFAULT_FPS,
    thumbnails: int = 8,
    progress: Callable[[str], None] | None = None,
) -> Batch:
    """Read a score directory (and videos, ground truth) into what the page shows."""
    rank_alerts([], rank_by)  # checks the ranking before any work
    batch = read_batch(scores_dir)
    sources = index_videos(videos_dir) if videos_dir is not None else {}
    entries: dict[str, VideoEntry] = {}
    for name, vs in batch.items():
        vs = with_evidence(scores_dir, vs)
        source = sources.get(name)
        fps, fps_from = video_fps(vs, source, scores_dir, default_fps)
        alerts = rank_alerts(alert_segments(vs.scores, fps, rule), rank_by)
        entries[name] = VideoEntry(vs, fps, fps_from, source, alerts)
        add_thumbnails(entries[name], thumbnails)
        if progress is not None:
            progress(name)
    out = Batch(
        Path(scores_dir), None if videos_dir is None else Path(videos_dir), rule, rank_by, entries
    )
    if annotations is not None:
        out.metrics = _metrics(entries, annotations, rule.threshold)
        out.annotations = str(annotations.path)
    return out


def write_report(batch: Batch, out: str | os.PathLike) -> dict[str, Any]:
    """Write the page to `out` atomically; return a summary of it."""
    from vadkit.report_html import page

    start = time.monotonic()
    text = page(batch)
    with writing(Path(out)):
        save_text(out, text)
    entries = batch.entries.values()
    return {
        "out": str(out),
        "videos": len(batch.entries),
        "alerts": sum(len(e.alerts) for e in entries),
        "videos_with_source": sum(e.source is not None for e in entries),
        "videos_with_evidence": sum(e.vs.evidence is not None for e in entries),
        "bytes": len(text.encode("utf-8")),
        "seconds_html": round(time.monotonic() - start, 3),
        "metrics": None if batch.metrics is None else {k: batch.metrics[k] for k in _METRIC_KEYS},
    }


_METRIC_KEYS = (
    "roc_auc",
    "average_precision",
    "pr_auc_trapezoid",
    "roc_auc_abnormal",
    "false_alarm_rate",
)


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"
