"""Per-video score curves: the frame scores of one video with its anomalous intervals shaded.

Computing (`match_video`, `video_curve`, which aligns scores and labels with `vadkit eval`'s own
`metrics.align_video`) is separate from drawing (`draw_curve`), which uses matplotlib's Agg
canvas directly (no pyplot, no display) and writes PNG, JPEG, SVG or PDF atomically.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vadkit.errors import VadkitError
from vadkit.io.annotations import Annotations, mask_to_intervals
from vadkit.io.atomic import atomic_path
from vadkit.io.features import SNIPPET_LENGTH
from vadkit.metrics import align_video, frame_scores, video_roc_auc

# file extension -> matplotlib format
PLOT_FORMATS = {"png": "png", "jpg": "jpeg", "jpeg": "jpeg", "svg": "svg", "pdf": "pdf"}


def figure_format(path: str | os.PathLike) -> str:
    """The matplotlib format of a figure file, from its extension, or refuse."""
    ext = Path(path).suffix.lower().lstrip(".")
    if ext not in PLOT_FORMATS:
        raise VadkitError(
            f"{path}: unsupported plot format {ext or '(none)'!r}; use .png, .jpg, .svg or .pdf"
        )
    return PLOT_FORMATS[ext]


def match_video(query: str, candidates: Iterable[str]) -> str:
    """The candidate `query` names: an exact match wins, then a case-insensitive exact match,
    then a unique case-insensitive prefix (`shooting022` finds `Shooting022_x264`)."""
    names = sorted(set(candidates))
    if query in names:
        return query
    q = query.lower()
    exact = [n for n in names if n.lower() == q]
    if len(exact) == 1:
        return exact[0]
    hits = exact or [n for n in names if n.lower().startswith(q)]
    if len(hits) == 1:
        return hits[0]
    if hits:
        shown = ", ".join(hits[:10]) + (f", ... ({len(hits)} in all)" if len(hits) > 10 else "")
        raise VadkitError(f"{query!r} matches several videos: {shown}; give more of the name")
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    raise VadkitError(f"no scored video matches {query!r}; available ({len(names)}): {shown}")


@dataclass
class Curve:
    video: str
    scores: np.ndarray  # (frames,) float
    labels: np.ndarray | None  # (frames,) uint8, None when the video has no ground truth
    intervals: list[tuple[int, int]]  # anomalous frames, 0-based half-open
    roc_auc: float | None  # None unless the video has both normal and anomalous frames
    note: str = ""


def video_curve(
    video: str,
    scores: np.ndarray,
    annotations: Annotations | None,
    *,
    frame_count: int | None = None,
    snippet_length: int | None = SNIPPET_LENGTH,
    pad_scores: bool | None = None,
) -> Curve:
    """Scores and labels of one video aligned exactly as `vadkit eval` aligns them
    (`pad_scores` None: the annotation's own rule, as in `metrics.evaluate`)."""
    if annotations is None:
        return Curve(video, frame_scores(video, scores), None, [], None)
    pad = annotations.pad_short_scores if pad_scores is None else pad_scores
    a = align_video(
        video,
        scores,
        annotations,
        frame_count=frame_count,
        snippet_length=snippet_length,
        pad_scores=pad,
    )
    info = a.aligned
    note = f"{info['action']} ({info['scores']} scores, {info['labels']} labels)" if info else ""
    return Curve(video, a.scores, a.labels, mask_to_intervals(a.labels), video_roc_auc(a), note)


def draw_curve(curve: Curve, path: str | os.PathLike, *, width: float = 10.0) -> Path:
    """Draw the score curve with shaded anomalous intervals; the extension picks the format."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(path)
    fmt = figure_format(out)
    fig = Figure(figsize=(width, 3.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    frames = np.arange(curve.scores.size)
    for i, (a, b) in enumerate(curve.intervals):
        ax.axvspan(
            a, b - 1, color="tab:red", alpha=0.18, lw=0, label="anomalous" if i == 0 else None
        )
    ax.plot(frames, curve.scores, color="tab:blue", lw=1.2, label="score")
    ax.set_xlim(0, max(curve.scores.size - 1, 1))
    lo, hi = float(curve.scores.min()), float(curve.scores.max())
    ax.set_ylim(min(0.0, lo), max(1.0, hi) * 1.02)
    ax.set_xlabel("frame")
    ax.set_ylabel("anomaly score")
    title = curve.video
    if curve.roc_auc is not None:
        title += f"  (ROC AUC {curve.roc_auc:.4f})"
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize="small", framealpha=0.85)
    ax.grid(alpha=0.3)
    with atomic_path(out) as tmp:
        extra = {"pil_kwargs": {"quality": 92}} if fmt == "jpeg" else {}
        fig.savefig(tmp, format=fmt, dpi=120, **extra)
    return out
