"""Figures: score curves of videos, training curves, ROC / PR curves, views of a feature file.

Each figure is computed first and drawn second: `video_curve` (scores and labels aligned with
`vadkit eval`'s own `metrics.align_video`) → `draw_curves`; `read_training_log` →
`draw_training`; `pooled_frames` + `metrics.roc_curve`/`pr_curve` → `draw_roc_pr`;
`feature_views` → `draw_features`. Drawing uses matplotlib's `Figure` on an Agg canvas directly
(no pyplot, no global state, no display) and writes PNG, JPEG, SVG or PDF, chosen by the file
extension, atomically.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vadkit.errors import VadkitError
from vadkit.io.annotations import Annotations, mask_to_intervals
from vadkit.io.atomic import atomic_path
from vadkit.io.features import FORMAT as FEATURES_FORMAT
from vadkit.io.features import SNIPPET_LENGTH, load_clip
from vadkit.io.scores import ScoreMeta
from vadkit.metrics import (
    align_video,
    average_precision,
    frame_scores,
    match_annotations,
    pr_auc_trapezoid,
    pr_curve,
    roc_auc,
    roc_curve,
    video_roc_auc,
)

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
    fps: float | None = None  # frames per second of the scores: the x axis is in seconds


def video_curve(
    video: str,
    scores: np.ndarray,
    annotations: Annotations | None,
    *,
    frame_count: int | None = None,
    snippet_length: int | None = SNIPPET_LENGTH,
    pad_scores: bool | None = None,
    fps: float | None = None,
) -> Curve:
    """Scores and labels of one video aligned exactly as `vadkit eval` aligns them
    (`pad_scores` None: the annotation's own rule, as in `metrics.evaluate`); without
    annotations, the scores alone."""
    if annotations is None:
        return Curve(video, frame_scores(video, scores), None, [], None, fps=fps)
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
    intervals = mask_to_intervals(a.labels)
    return Curve(video, a.scores, a.labels, intervals, video_roc_auc(a), note, fps)


def video_fps(meta: ScoreMeta | None, scores_dir: str | os.PathLike | None = None) -> float | None:
    """Frames per second of a video's per-frame scores, when known: `extra["fps"]` of the score
    metadata, else `fps_native` of the vadkit feature description (`VID.json`) beside the
    feature file the metadata names (as written, or relative to the score directory).
    Per-frame scores count the video's native frames, also when features were resampled."""
    if meta is None:
        return None
    fps = _positive(meta.extra.get("fps")) if isinstance(meta.extra, dict) else None
    if fps is not None or not meta.features:
        return fps
    feats = Path(meta.features)
    candidates = [feats] + (
        [Path(scores_dir) / feats] if scores_dir and not feats.is_absolute() else []
    )
    for f in candidates:
        j = f / f"{meta.video}.json" if f.is_dir() else f.with_suffix(".json")
        if j.is_file():
            try:
                obj = json.loads(j.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                return None
            if isinstance(obj, dict) and obj.get("format") == FEATURES_FORMAT:
                return _positive(obj.get("fps_native"))
    return None


def _positive(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x) if math.isfinite(x) and x > 0 else None


# -- drawing helpers ---------------------------------------------------------------------------
def _figure(width: float, height: float, *, layout: str = "constrained"):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout=layout)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Write `fig` to `path` atomically in the format its extension names."""
    out = Path(path)
    fmt = figure_format(out)
    with atomic_path(out) as tmp:
        extra = {"pil_kwargs": {"quality": 92}} if fmt == "jpeg" else {}
        fig.savefig(tmp, format=fmt, dpi=120, **extra)
    return out


def short_labels(paths: Sequence[str | os.PathLike]) -> list[str]:
    """The shortest trailing parts of each path that tell them apart (`runs/rtfm`, `rtfm`)."""
    parts = [Path(p).resolve().parts for p in paths]
    for n in range(1, max((len(p) for p in parts), default=1) + 1):
        labels = ["/".join(p[-n:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [str(p) for p in paths]


# -- score curves of videos --------------------------------------------------------------------
def _curve_panel(ax, curve: Curve, threshold: float | None) -> None:
    step = 1.0 / curve.fps if curve.fps else 1.0
    x = np.arange(curve.scores.size) * step
    for i, (a, b) in enumerate(curve.intervals):
        ax.axvspan(
            a * step,
            (b - 1) * step,
            color="tab:red",
            alpha=0.18,
            lw=0,
            label="anomalous" if i == 0 else None,
        )
    ax.plot(x, curve.scores, color="tab:blue", lw=1.2, label="score")
    if threshold is not None:
        ax.axhline(threshold, color="0.35", ls="--", lw=1.0, label=f"threshold {threshold:g}")
    ax.set_xlim(0, max(curve.scores.size - 1, 1) * step)
    lo, hi = float(curve.scores.min()), float(curve.scores.max())
    top = max(1.0, hi, threshold if threshold is not None else 0.0)
    ax.set_ylim(min(0.0, lo, threshold if threshold is not None else 0.0), top * 1.02)
    ax.set_xlabel("time (s)" if curve.fps else "frame")
    ax.set_ylabel("anomaly score")
    title = curve.video
    if curve.roc_auc is not None:
        title += f"  (ROC AUC {curve.roc_auc:.4f})"
    elif curve.labels is not None and not curve.intervals:
        title += "  (normal: no anomalous frames)"
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize="small", framealpha=0.85)
    ax.grid(alpha=0.3)


def draw_curves(
    curves: Sequence[Curve],
    path: str | os.PathLike,
    *,
    threshold: float | None = None,
    width: float = 10.0,
) -> Path:
    """One panel per video, stacked: the score curve over its shaded anomalous intervals,
    the x axis in seconds where the fps is known; an optional threshold line."""
    figure_format(path)
    if not curves:
        raise VadkitError("no videos to plot")
    n = len(curves)
    fig = _figure(width, 3.2 if n == 1 else 2.7 * n + 0.3)
    axes = fig.subplots(n, 1, squeeze=False)[:, 0]
    for ax, c in zip(axes, curves, strict=True):
        _curve_panel(ax, c, threshold)
    return save_figure(fig, path)


def draw_curve(curve: Curve, path: str | os.PathLike, *, width: float = 10.0) -> Path:
    """Draw one video's score curve with shaded anomalous intervals (see `draw_curves`)."""
    return draw_curves([curve], path, width=width)


# -- training curves ---------------------------------------------------------------------------
@dataclass
class TrainingLog:
    run: Path
    label: str
    model: str
    records: list[dict] = field(default_factory=list)  # log.jsonl lines, in order


def read_training_log(run: str | os.PathLike, label: str | None = None) -> TrainingLog:
    """A run directory's `log.jsonl` (one JSON object per evaluation), or refuse naming the line."""
    d = Path(run)
    log = d / "log.jsonl" if d.is_dir() else d
    if not log.is_file():
        raise VadkitError(
            f"{d}: no training log (log.jsonl) here; give a `vadkit train -o` directory"
        )
    records = []
    for lineno, line in enumerate(log.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise VadkitError(f"{log}:{lineno}: not a JSON line ({e.msg})") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("step"), int):
            raise VadkitError(f"{log}:{lineno}: expected an object with an integer 'step'")
        records.append(rec)
    if not records:
        raise VadkitError(f"{log}: the training log has no evaluations yet")
    model = ""
    cfg = log.parent / "config.json"
    if cfg.is_file():
        try:
            model = str(json.loads(cfg.read_text()).get("model", ""))
        except (OSError, json.JSONDecodeError, AttributeError):
            model = ""
    return TrainingLog(log.parent, label or log.parent.name, model, records)


TRAINING_COLUMNS = ("roc_auc", "average_precision", "pr_auc_trapezoid", "seconds")


def training_table(logs: Sequence[TrainingLog]) -> list[dict]:
    """One row per evaluation of every run: run, model, step, the validation metrics (None
    where not logged), seconds and the mean loss parts since the previous evaluation."""
    rows = []
    for g in logs:
        for r in g.records:
            row = {"run": g.label, "model": g.model, "step": r["step"]}
            row.update({k: r.get(k) for k in TRAINING_COLUMNS})
            row["loss"] = dict(r.get("loss") or {})
            rows.append(row)
    return rows


_STYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1)), (0, (1, 3)))


def _series(g: TrainingLog, key: str) -> tuple[list[int], list[float]]:
    pts = [(r["step"], r[key]) for r in g.records if isinstance(r.get(key), int | float)]
    return [p[0] for p in pts], [float(p[1]) for p in pts]


def _auc_panel(ax, logs: Sequence[TrainingLog], keys: Sequence[tuple[str, str]], title: str):
    drawn = False
    for i, g in enumerate(logs):
        color = f"C{i % 10}"
        for j, (key, name) in enumerate(keys):
            steps, vals = _series(g, key)
            if steps:
                label = f"{g.label}: {name}" if len(logs) > 1 else name
                label = g.label if len(logs) > 1 and len(keys) == 1 else label
                ax.plot(steps, vals, color=color, ls=_STYLES[j], marker="o", ms=3, label=label)
                drawn = True
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize="small", framealpha=0.85)
    else:
        ax.text(
            0.5,
            0.5,
            "not logged (no validation)",
            ha="center",
            va="center",
            transform=ax.transAxes,
            color="0.4",
        )


def _loss_panel(ax, logs: Sequence[TrainingLog]) -> list[list]:
    """Draw every run's loss parts; return the lines, one list per run."""
    lines = []
    for i, g in enumerate(logs):
        parts = list(dict.fromkeys(k for r in g.records for k in (r.get("loss") or {})))
        parts.sort(key=lambda k: (k != "total", k))
        lines.append([])
        for j, part in enumerate(parts):
            pts = [(r["step"], r["loss"][part]) for r in g.records if part in (r.get("loss") or {})]
            (line,) = ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                color=f"C{i % 10}",
                ls=_STYLES[j % len(_STYLES)],
                lw=2.0 if part == "total" else 1.2,
                label=f"{g.label}: {part}" if len(logs) > 1 else part,
            )
            lines[-1].append(line)
    values = [v for line in ax.get_lines() for v in line.get_ydata()]
    if values and min(values) > 0:  # parts can differ by orders of magnitude
        ax.set_yscale("log")
    ax.set_title("training loss (mean since the previous evaluation)")
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    return lines


def _loss_legend(fig, lines: list[list]) -> None:
    """Below the panels, one row per run (a loss has several parts, each run its own)."""
    from matplotlib.lines import Line2D

    width = max((len(r) for r in lines), default=0)
    if not width:
        return
    blank = Line2D([], [], alpha=0)
    rows = [r + [blank] * (width - len(r)) for r in lines]
    handles = [rows[i][j] for j in range(width) for i in range(len(rows))]  # column-major fill
    labels = [h.get_label() if h is not blank else "" for h in handles]
    fig.legend(handles, labels, loc="outside lower center", ncol=width, fontsize="small")


def draw_training(logs: Sequence[TrainingLog], path: str | os.PathLike) -> Path:
    """ROC AUC, PR AUC (average precision and, where logged, the trapezoid form) and the loss
    parts over training steps, one colour per run."""
    figure_format(path)
    fig = _figure(15.0, 4.6 + 0.25 * len(logs))
    ax_roc, ax_pr, ax_loss = fig.subplots(1, 3)
    _auc_panel(ax_roc, logs, [("roc_auc", "ROC AUC")], "validation ROC AUC")
    pr = [("average_precision", "AP"), ("pr_auc_trapezoid", "PR AUC (trapezoid)")]
    _auc_panel(ax_pr, logs, pr, "validation PR AUC")
    _loss_legend(fig, _loss_panel(ax_loss, logs))
    return save_figure(fig, path)


# -- ROC / PR curves of score directories --------------------------------------------------------
def pooled_frames(
    scores: Mapping[str, np.ndarray],
    annotations: Annotations,
    metas: Mapping[str, ScoreMeta] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, scores) of every frame of every video, aligned as `vadkit eval` aligns them."""
    if not scores:
        raise VadkitError("no score files")
    match_annotations(list(scores), annotations)
    metas = metas or {}
    labels, values = [], []
    for v in sorted(scores):
        m = metas.get(v)
        a = align_video(
            v,
            scores[v],
            annotations,
            frame_count=m.frame_count if m else None,
            snippet_length=m.snippet_length if m else None,
            pad_scores=annotations.pad_short_scores,
        )
        labels.append(a.labels)
        values.append(a.scores.astype(np.float64, copy=False))
    return np.concatenate(labels), np.concatenate(values)


@dataclass
class RocPr:
    label: str
    x: np.ndarray  # false-positive rate (roc) or recall (pr)
    y: np.ndarray  # true-positive rate (roc) or precision (pr)
    area: dict[str, float]  # roc: {"ROC AUC"}; pr: {"AP", "PR AUC"}
    positive_rate: float  # share of anomalous frames (the PR chance level)


def roc_pr(label: str, labels: np.ndarray, scores: np.ndarray, kind: str) -> RocPr:
    """One curve (kind `roc` or `pr`) with its areas from `vadkit.metrics`."""
    if kind == "roc":
        x, y, _ = roc_curve(labels, scores)
        area = {"ROC AUC": roc_auc(labels, scores)}
    elif kind == "pr":
        x, y, _ = pr_curve(labels, scores)
        area = {"AP": average_precision(labels, scores), "PR AUC": pr_auc_trapezoid(labels, scores)}
    else:
        raise VadkitError(f"unknown curve kind {kind!r}; choose roc or pr")
    return RocPr(label, x, y, area, float(np.mean(labels)))


def _thin(x: np.ndarray, y: np.ndarray, n: int = 20000) -> tuple[np.ndarray, np.ndarray]:
    if x.size <= n:
        return x, y
    keep = np.unique(np.r_[np.linspace(0, x.size - 1, n).astype(np.int64), x.size - 1])
    return x[keep], y[keep]


def draw_roc_pr(curves: Sequence[RocPr], kind: str, path: str | os.PathLike) -> Path:
    """ROC (false-positive vs true-positive rate) or PR (recall vs precision) curves overlaid,
    their areas in the legend, the chance level dotted."""
    figure_format(path)
    fig = _figure(5.6, 5.2)
    ax = fig.add_subplot()
    for i, c in enumerate(curves):
        x, y = _thin(c.x, c.y)
        areas = ", ".join(f"{k} {v:.4f}" for k, v in c.area.items())
        ax.plot(x, y, color=f"C{i % 10}", lw=1.6, label=f"{c.label} ({areas})")
    if kind == "roc":
        ax.plot([0, 1], [0, 1], color="0.5", ls=":", lw=1, label="chance")
        ax.set_xlabel("false-positive rate")
        ax.set_ylabel("true-positive rate")
        ax.set_title("frame-level ROC curve")
    else:
        base = curves[0].positive_rate if curves else 0.0
        ax.axhline(base, color="0.5", ls=":", lw=1, label=f"chance ({base:.3f})")
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title("frame-level precision-recall curve")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right" if kind == "roc" else "lower left", fontsize="small")
    return save_figure(fig, path)


# -- views of a feature file -------------------------------------------------------------------
@dataclass
class FeatureViews:
    name: str
    image: np.ndarray  # (t, d) features averaged over crops
    crop_means: np.ndarray  # (n, t) mean over the feature dimension, per crop
    slice_index: int
    slice_values: np.ndarray  # (n, d) the features of snippet `slice_index`, per crop
    magnitude: np.ndarray  # (n, t) L2 norm over the feature dimension, per crop
    fps: float | None = None
    snippet_length: int = SNIPPET_LENGTH


def feature_views(path: str | os.PathLike, slice_index: int | None = None) -> FeatureViews:
    """The views of a `(t, n, d)` (or `(t, d)`) feature file: `slice_index` is the snippet
    shown on its own (default: the middle one; negative counts from the end)."""
    arr, meta = load_clip(path, mmap=True)
    x = np.asarray(arr, dtype=np.float32)
    t = x.shape[0]
    if t == 0:
        raise VadkitError(f"{path}: the feature file has no snippets")
    i = t // 2 if slice_index is None else int(slice_index)
    if not -t <= i < t:
        raise VadkitError(f"--slice {i}: {path} has {t} snippets (0 to {t - 1})")
    i %= t
    x64 = x.astype(np.float64)
    return FeatureViews(
        Path(path).name,
        x64.mean(axis=1),
        x64.mean(axis=2).T,
        i,
        x64[i],
        np.linalg.norm(x64, axis=2).T,
        meta.fps_used if meta else None,  # a snippet is 16 frames at the fps they were cut at
        meta.snippet_length if meta else SNIPPET_LENGTH,
    )


def _per_crop(ax, values: np.ndarray, x: np.ndarray, what: str) -> None:
    """Lines per crop (up to 10 crops), or the crop mean with a min-max band beyond that."""
    n = values.shape[0]
    if n <= 10:
        for k in range(n):
            ax.plot(x, values[k], lw=1.0, label=f"crop {k}" if n > 1 else what)
    else:
        ax.fill_between(x, values.min(0), values.max(0), alpha=0.25, lw=0, label="crop min-max")
        ax.plot(x, values.mean(0), lw=1.2, label="crop mean")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small", ncol=2 if n > 5 else 1, framealpha=0.85)


def draw_features(views: FeatureViews, path: str | os.PathLike) -> Path:
    """2 × 2 views: the array as an image (snippets × dims, crop mean), the mean over the
    feature dimension per crop, one snippet's values, the feature magnitude per snippet."""
    figure_format(path)
    fig = _figure(13.0, 8.0)
    (a_img, a_mean), (a_slice, a_mag) = fig.subplots(2, 2)
    t, d = views.image.shape
    im = a_img.imshow(views.image, aspect="auto", cmap="viridis", interpolation="nearest")
    fig.colorbar(im, ax=a_img, label="value")
    a_img.set_title(f"{views.name}: {t} snippets × {d} dims (mean over crops)")
    a_img.set_xlabel("feature dimension")
    a_img.set_ylabel("snippet")
    a_img.axhline(views.slice_index, color="white", ls=":", lw=1)
    snippets = np.arange(t)
    x_label = "snippet"
    if views.fps:
        x_label += f" ({views.snippet_length} frames = {views.snippet_length / views.fps:.2f} s)"
    _per_crop(a_mean, views.crop_means, snippets, "mean")
    a_mean.set_title("mean over the feature dimension")
    _per_crop(a_slice, views.slice_values, np.arange(d), f"snippet {views.slice_index}")
    a_slice.set_title(f"snippet {views.slice_index}: feature values")
    a_slice.set_xlabel("feature dimension")
    _per_crop(a_mag, views.magnitude, snippets, "‖x‖₂")
    a_mag.set_title("feature magnitude (L2 norm over the feature dimension)")
    for ax in (a_mean, a_mag):
        ax.axvline(views.slice_index, color="0.5", ls=":", lw=1)
        ax.set_xlabel(x_label)
    return save_figure(fig, path)
