"""Frame-level metrics of weakly-supervised video anomaly detection.

All metrics are computed on the frames of all test videos concatenated (the protocol of RTFM,
MGFN, MSIP and every UCF-Crime / ShanghaiTech / XD-Violence paper):

- `roc_auc`: area under the ROC curve (= `sklearn.metrics.roc_auc_score`).
- `average_precision`: sklearn's average precision, the step-function sum
  `Σ (R_n − R_{n−1}) P_n` (= `sklearn.metrics.average_precision_score`).
- `pr_auc_trapezoid`: the trapezoid area under sklearn's precision-recall curve,
  `auc(recall, precision)`: the "AP" / "PR AUC" that RTFM and MGFN print for XD-Violence. It is
  a different number from `average_precision` (usually a little higher), hence its own name.
- `roc_auc_abnormal`: ROC AUC on the frames of the anomalous videos only (a video is anomalous
  if any of its frames is labelled 1).
- `false_alarm_rate`: the fraction of frames of the normal videos whose score is >= the
  threshold (0.5), i.e. the false-positive rate at that threshold restricted to normal videos.
- `per_class`: for each anomaly class named by the annotation, the ROC AUC on the frames of that
  class's anomalous videos together with all normal videos (a video with several classes,
  as in XD-Violence, counts in each of them).

`evaluate` is built from the steps below, each usable on its own: `align_video` (one video's
scores and labels made the same length; `vadkit plot` uses it too), `split_frames` (all scores
sorted once, split into anomalous frames, normal frames of anomalous videos and frames of
normal videos), `per_class_auc`, `false_alarms`, `per_video_rows` and `build_report`.

Every metric comes from sorted score arrays and binary searches over them, one chunk of
positive frames at a time (no per-frame Python, no curve arrays as long as the data), so the
memory beyond the scores is one sorted copy of them (in their own dtype: float32 scores stay
float32) plus a byte per frame of labels, and a million frames take a fraction of a second.
Results equal sklearn's to floating-point rounding (≤ 1e-12).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from vadkit.errors import VadkitError
from vadkit.io.annotations import NORMAL, Annotations
from vadkit.io.features import SNIPPET_LENGTH

__all__ = [
    "FALSE_ALARM_THRESHOLD",
    "SNIPPET_LENGTH",
    "AlignedVideo",
    "SplitFrames",
    "align_scores_labels",
    "align_video",
    "average_precision",
    "build_report",
    "check_threshold",
    "evaluate",
    "false_alarm_rate",
    "false_alarms",
    "frame_scores",
    "match_annotations",
    "per_class_auc",
    "per_video_rows",
    "pr_auc_trapezoid",
    "pr_curve",
    "roc_auc",
    "roc_curve",
    "split_frames",
    "video_roc_auc",
]

FALSE_ALARM_THRESHOLD = 0.5
_CHUNK = 1 << 16  # positive frames per step of the curve sums (bounds the temporaries)


# -- checks ------------------------------------------------------------------------------------
def check_threshold(threshold: float) -> float:
    """The false-alarm threshold as a float, or refuse NaN/inf."""
    t = float(threshold)
    if not math.isfinite(t):
        raise VadkitError(f"{threshold}: expected a finite number")
    return t


def _check(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true).reshape(-1)
    s = np.asarray(y_score, dtype=np.float64).reshape(-1)
    if t.shape != s.shape:
        raise VadkitError(f"y_true has {t.shape[0]} entries but y_score has {s.shape[0]}")
    if t.size == 0:
        raise VadkitError("no frames to evaluate")
    if not np.isfinite(s).all():
        raise VadkitError(f"y_score holds {int((~np.isfinite(s)).sum())} NaN/inf value(s)")
    if t.dtype != bool and not np.isin(t, (0, 1)).all():
        raise VadkitError("y_true must hold only 0 (normal) and 1 (anomalous)")
    return t.astype(bool), s


def _need_both(n_pos: int, n_neg: int, what: str) -> None:
    if n_pos == 0 or n_neg == 0:
        only = "normal (0)" if n_pos == 0 else "anomalous (1)"
        raise VadkitError(
            f"{what} needs both normal and anomalous frames, but all {n_pos + n_neg} "
            f"frames are {only}"
        )


def _at_least(threshold: float, dtype: np.dtype) -> np.generic:
    """The smallest value of `dtype` >= `threshold`: `x >= it` in `dtype` is exactly the real
    comparison `x >= threshold` (float32 scores are compared without a float64 copy)."""
    kind = np.dtype(dtype).type
    with np.errstate(over="ignore"):
        t = kind(threshold)
    if float(t) < threshold:
        t = np.nextafter(t, kind(np.inf))
    return t


# -- curves from sorted scores -------------------------------------------------------------------
def _curve_areas(
    pos: np.ndarray, negs: Sequence[np.ndarray], *, pr: bool = True
) -> tuple[float, float, float]:
    """(ROC AUC, average precision, trapezoid PR AUC) of ascending positive scores against
    ascending negatives (given in parts that need not be merged). With `pr=False` only the ROC
    AUC is computed (the other two are NaN).

    sklearn's curves have one point per distinct score t, with precision(t) = #pos >= t /
    #scores >= t. Summed over the positive frames x (frames tied at a point share it):
      ROC AUC  = mean over x of (#neg < x + #neg <= x) / 2N  (Mann-Whitney: a tie counts half),
      AP       = mean over x of precision(x),
      PR trap. = mean over x of (precision(x) + precision just above x) / 2,
    "just above x" being the next higher distinct score (precision 1 at recall 0 if none).
    """
    n_pos = pos.size
    n_neg = sum(n.size for n in negs)
    twice, ap, trap = 0, 0.0, 0.0  # twice = 2 × (pairs won + ½ ties), an exact integer
    for i in range(0, n_pos, _CHUNK):
        c = pos[i : i + _CHUNK]
        neg_lt = sum(np.searchsorted(n, c, "left") for n in negs)
        neg_le = sum(np.searchsorted(n, c, "right") for n in negs)
        twice += int(np.sum(neg_lt)) + int(np.sum(neg_le))
        if not pr:
            continue
        pos_ge = n_pos - np.searchsorted(pos, c, "left")
        pos_gt = n_pos - np.searchsorted(pos, c, "right")
        precision = pos_ge / (pos_ge + (n_neg - neg_lt))
        above = pos_gt + (n_neg - neg_le)
        before = np.divide(pos_gt, above, out=np.ones(c.size), where=above > 0)
        ap += float(precision.sum())
        trap += float((precision + before).sum())
    roc = twice / (2.0 * n_pos * n_neg)
    if not pr:
        return roc, math.nan, math.nan
    return roc, ap / n_pos, trap / (2.0 * n_pos)


def _population(y_true, y_score, what: str) -> tuple[np.ndarray, np.ndarray]:
    t, s = _check(y_true, y_score)
    pos, neg = np.sort(s[t]), np.sort(s[~t])
    _need_both(pos.size, neg.size, what)
    return pos, neg


def roc_auc(y_true, y_score) -> float:
    """Area under the ROC curve (equals `sklearn.metrics.roc_auc_score`)."""
    pos, neg = _population(y_true, y_score, "ROC AUC")
    return _curve_areas(pos, [neg], pr=False)[0]


def average_precision(y_true, y_score) -> float:
    """sklearn's average precision `Σ (R_n − R_{n−1}) P_n`."""
    pos, neg = _population(y_true, y_score, "average precision")
    return _curve_areas(pos, [neg])[1]


def pr_auc_trapezoid(y_true, y_score) -> float:
    """Trapezoid area under the precision-recall curve (RTFM/MGFN's reported PR AUC)."""
    pos, neg = _population(y_true, y_score, "PR AUC")
    return _curve_areas(pos, [neg])[2]


def _cumulative_counts(y_true, y_score, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positives, true positives, threshold) at each distinct score, highest first."""
    t, s = _check(y_true, y_score)
    _need_both(int(t.sum()), int((~t).sum()), what)
    order = np.argsort(-s, kind="stable")
    s, t = s[order], t[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # last frame of each distinct score
    tps = np.cumsum(t, dtype=np.int64)[last]
    return (last + 1) - tps, tps, s[last]


def roc_curve(y_true, y_score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false-positive rate, true-positive rate, threshold): the ROC curve's points, one per
    distinct score from the highest down, after a first point (0, 0) at threshold +inf
    (`sklearn.metrics.roc_curve` without dropping collinear points). The trapezoid area under
    it is `roc_auc`."""
    fps, tps, thr = _cumulative_counts(y_true, y_score, "a ROC curve")
    return np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]], np.r_[np.inf, thr]


def pr_curve(y_true, y_score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(recall, precision, threshold): the precision-recall curve from recall 0 (precision 1,
    threshold +inf) up, one point per distinct score (sklearn's `precision_recall_curve`
    reversed, without cutting it at full recall). The trapezoid area under it is
    `pr_auc_trapezoid`."""
    fps, tps, thr = _cumulative_counts(y_true, y_score, "a PR curve")
    return np.r_[0.0, tps / tps[-1]], np.r_[1.0, tps / (tps + fps)], np.r_[np.inf, thr]


def false_alarm_rate(y_true, y_score, *, threshold: float = FALSE_ALARM_THRESHOLD) -> float:
    """Fraction of the normal (label 0) frames scored >= `threshold`."""
    t, s = _check(y_true, y_score)
    neg = ~t
    if not neg.any():
        raise VadkitError("false-alarm rate needs normal frames, but every frame is anomalous")
    return float(np.count_nonzero(s[neg] >= threshold) / np.count_nonzero(neg))


# -- aligning scores with labels ---------------------------------------------------------------
def frame_scores(video: str, scores) -> np.ndarray:
    """One video's scores as a non-empty 1-D array of finite real numbers, or refuse.

    float32 stays float32 (no float64 copy of every frame); other real dtypes become float64.
    """
    s = np.asarray(scores)
    if s.dtype.kind not in "biuf":
        raise VadkitError(f"{video}: scores must be real numbers, got an array of dtype {s.dtype}")
    s = s.reshape(-1)
    if s.dtype != np.float32:
        s = s.astype(np.float64, copy=False)
    if s.size == 0:
        raise VadkitError(f"{video}: empty score array")
    bad = ~np.isfinite(s)
    if bad.any():
        raise VadkitError(
            f"{video}: {int(bad.sum())} non-finite score(s) (NaN/inf), first at frame "
            f"{int(np.argmax(bad))}"
        )
    return s


def align_scores_labels(
    video: str,
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    tolerance: int,
    pad_scores: bool,
    source: str,
) -> tuple[np.ndarray, np.ndarray, dict | None]:
    """Make one video's scores and labels the same length, or refuse.

    Up to `tolerance` frames (one snippet of padding) the longer side is trimmed, or short scores
    are padded with their last value when `pad_scores` (the legacy 16·t gt). Returns the aligned
    pair and a record of what was done (None when the lengths already agreed).
    """
    ns, nl = scores.shape[0], labels.shape[0]
    if ns == nl:
        return scores, labels, None
    if abs(ns - nl) > tolerance:
        raise VadkitError(
            f"{video}: {ns} frame scores but the annotation ({source}) gives {nl} frames; they "
            f"differ by {abs(ns - nl)}, more than one snippet ({tolerance} frames) of padding. "
            f"Are the scores from another video, frame rate or feature set, or per snippet "
            f"rather than per frame (`vadkit score` writes per-frame scores)?"
        )
    if ns > nl:
        action = "trimmed scores"
        scores = scores[:nl]
    elif pad_scores:
        # The legacy gt counts 16 frames per snippet: the legacy protocol repeats the last
        # snippet's score over the padding, which is what padding with the last value gives.
        action = "padded scores"
        scores = np.concatenate([scores, np.full(nl - ns, scores[-1], dtype=scores.dtype)])
    else:
        action = "trimmed labels"
        labels = labels[:ns]
    return scores, labels, {"video": video, "scores": ns, "labels": nl, "action": action}


@dataclass
class AlignedVideo:
    """One video's scores and 0/1 labels, made the same length by `align_video`."""

    video: str
    scores: np.ndarray  # (frames,) float32 or float64
    labels: np.ndarray  # (frames,) uint8
    classes: tuple[str, ...]
    positives: int  # frames labelled 1
    aligned: dict | None = None  # {video, scores, labels, action} when the lengths differed

    @property
    def frames(self) -> int:
        return int(self.scores.size)


def align_video(
    video: str,
    scores,
    annotations: Annotations,
    *,
    frame_count: int | None = None,
    snippet_length: int | None = None,
    pad_scores: bool = False,
) -> AlignedVideo:
    """One video's scores and labels, aligned as `vadkit eval` and `vadkit plot` align them.

    The label length is the annotation's frame count when it has one, else `frame_count` (the
    score metadata's true frame count), else the score length. A difference of up to one
    snippet (`snippet_length`, default 16 frames) is padding and is aligned by
    `align_scores_labels`; a larger one is an error naming the video and both lengths.
    """
    s = frame_scores(video, scores)
    truth = annotations.truth(video)
    asked = None if truth.frame_count is not None else int(frame_count or s.size)
    labels = annotations.labels(video, asked)
    tolerance = int(snippet_length or SNIPPET_LENGTH)
    s, labels, note = align_scores_labels(
        video, s, labels, tolerance=tolerance, pad_scores=pad_scores, source=truth.source
    )
    return AlignedVideo(video, s, labels, truth.classes, int(np.count_nonzero(labels)), note)


def match_annotations(videos: Sequence[str], annotations: Annotations) -> tuple[list, list]:
    """(scored videos the annotation does not list, sorted; annotated videos without scores).

    Unlisted videos are an error unless the format says they are normal (XD-Violence,
    ShanghaiTech masks); two score names for one annotated video are an error.
    """
    unknown = sorted(v for v in videos if v not in annotations)
    if unknown and not annotations.unlisted_normal:
        shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise VadkitError(
            f"{len(unknown)} scored video(s) are not in the annotation {annotations.path} "
            f"(format {annotations.format}, which lists every test video): {shown}; evaluate "
            f"the right score directory or annotation file"
        )
    keys: dict[str, str] = {}
    for v in videos:
        k = annotations.key(v) or v
        if k in keys:
            raise VadkitError(f"scores {keys[k]!r} and {v!r} are both for video {k}")
        keys[k] = v
    return unknown, [v for v in annotations.videos if v not in keys]


# -- populations -------------------------------------------------------------------------------
def _dtype(videos: Sequence[AlignedVideo]) -> np.dtype:
    same = all(v.scores.dtype == np.float32 for v in videos)
    return np.dtype(np.float32 if same else np.float64)


def _gather(videos: Sequence[AlignedVideo], positive: bool | None, dtype) -> np.ndarray:
    """Ascending scores of the anomalous (True), normal (False) or all (None) frames of
    `videos`, filled into one array of the final size (no concatenation of copies)."""
    if positive is None:
        sizes = [v.frames for v in videos]
    else:
        sizes = [v.positives if positive else v.frames - v.positives for v in videos]
    out = np.empty(sum(sizes), dtype)
    at = 0
    for v, n in zip(videos, sizes, strict=True):
        if n:
            out[at : at + n] = (
                v.scores if positive is None else v.scores[(v.labels != 0) == positive]
            )
        at += n
    out.sort()
    return out


@dataclass
class SplitFrames:
    """All scores, sorted once and split three ways: what every population's metric needs."""

    pos: np.ndarray  # anomalous frames (all in anomalous videos), ascending
    neg_abnormal: np.ndarray  # normal frames of anomalous videos, ascending
    neg_normal: np.ndarray  # every frame of the normal videos, ascending


def split_frames(videos: Sequence[AlignedVideo]) -> SplitFrames:
    dtype = _dtype(videos)
    anomalous = [v for v in videos if v.positives]
    normal = [v for v in videos if not v.positives]
    return SplitFrames(
        _gather(anomalous, True, dtype),
        _gather(anomalous, False, dtype),
        _gather(normal, None, dtype),
    )


def _subset_auc(pos: np.ndarray, negs: list[np.ndarray], what: str, notes: list) -> float | None:
    if pos.size == 0 or sum(n.size for n in negs) == 0:
        notes.append(f"{what}: undefined (only one class of frames)")
        return None
    return _curve_areas(pos, negs, pr=False)[0]


def per_class_auc(
    videos: Sequence[AlignedVideo], neg_normal: np.ndarray, notes: list[str]
) -> dict[str, dict]:
    """ROC AUC of each annotated class: its anomalous videos' frames with all normal videos'
    frames (`neg_normal`, sorted). Classes whose ROC AUC is undefined get a note."""
    normal = [v for v in videos if not v.positives]
    normal_frames = sum(v.frames for v in normal)
    dtype = _dtype(videos)
    out: dict[str, dict] = {}
    for c in sorted({c for v in videos for c in v.classes if c != NORMAL}):
        members = [v for v in videos if v.positives and c in v.classes]
        if not members:
            continue
        pos, neg = _gather(members, True, dtype), _gather(members, False, dtype)
        out[c] = {
            "roc_auc": _subset_auc(pos, [neg, neg_normal], f"per_class[{c}]", notes),
            "videos": len(members),
            "normal_videos": len(normal),
            "frames": sum(v.frames for v in members) + normal_frames,
        }
    return out


def false_alarms(neg_normal: np.ndarray, threshold: float, notes: list[str]) -> float | None:
    """Share of the normal videos' frames (sorted) scored >= threshold; None (and a note)
    without normal videos."""
    if not neg_normal.size:
        notes.append("false_alarm_rate: no normal videos among the scored videos")
        return None
    t = _at_least(threshold, neg_normal.dtype)
    return float(neg_normal.size - np.searchsorted(neg_normal, t, "left")) / neg_normal.size


def video_roc_auc(video: AlignedVideo) -> float | None:
    """One video's own ROC AUC; None unless it has both normal and anomalous frames."""
    if not 0 < video.positives < video.frames:
        return None
    on = video.labels != 0
    return _curve_areas(np.sort(video.scores[on]), [np.sort(video.scores[~on])], pr=False)[0]


def per_video_rows(videos: Sequence[AlignedVideo], threshold: float) -> dict[str, dict]:
    """{video: frames, anomalous_frames, roc_auc, mean_score, max_score, alarm_rate}."""
    rows = {}
    for v in videos:
        t = _at_least(threshold, v.scores.dtype)
        rows[v.video] = {
            "frames": v.frames,
            "anomalous_frames": v.positives,
            "roc_auc": video_roc_auc(v),
            "mean_score": float(v.scores.mean(dtype=np.float64)),
            "max_score": float(v.scores.max()),
            "alarm_rate": float(np.count_nonzero(v.scores >= t) / v.frames),
        }
    return rows


# -- the evaluation ---------------------------------------------------------------------------
def _coverage_notes(unknown: list, missing_scores: list, trimmed: list, fmt: str) -> list[str]:
    notes = []
    if unknown:
        notes.append(
            f"{len(unknown)} scored video(s) are not in the annotation and were taken as normal "
            f"(format {fmt} lists only anomalous videos)"
        )
    if missing_scores:
        notes.append(f"{len(missing_scores)} annotated video(s) have no scores and were skipped")
    if trimmed:
        notes.append(
            f"{len(trimmed)} video(s) differed from their labels by at most one snippet of "
            f"padding and were aligned (see 'trimmed')"
        )
    return notes


def build_report(
    videos: Sequence[AlignedVideo],
    annotations: Annotations,
    *,
    threshold: float = FALSE_ALARM_THRESHOLD,
    unknown: Sequence[str] = (),
    missing_scores: Sequence[str] = (),
    per_video: bool = False,
) -> dict:
    """The metrics dict of `evaluate` from aligned videos (see `evaluate` for its keys)."""
    frames = split_frames(videos)
    n_neg = frames.neg_abnormal.size + frames.neg_normal.size
    what = f"evaluating {len(videos)} video(s) against {annotations.path}: ROC AUC"
    _need_both(frames.pos.size, n_neg, what)
    roc, ap, trap = _curve_areas(frames.pos, [frames.neg_normal, frames.neg_abnormal])
    notes: list[str] = []
    per_class = per_class_auc(videos, frames.neg_normal, notes)
    far = false_alarms(frames.neg_normal, threshold, notes)
    trimmed = [v.aligned for v in videos if v.aligned]
    notes += _coverage_notes(list(unknown), list(missing_scores), trimmed, annotations.format)
    abnormal = sum(1 for v in videos if v.positives)
    result = {
        "roc_auc": roc,
        "average_precision": ap,
        "pr_auc_trapezoid": trap,
        "roc_auc_abnormal": _subset_auc(
            frames.pos, [frames.neg_abnormal], "roc_auc_abnormal", notes
        ),
        "false_alarm_rate": far,
        "per_class": per_class,
        "videos": len(videos),
        "frames": int(frames.pos.size + n_neg),
        "abnormal_videos": abnormal,
        "normal_videos": len(videos) - abnormal,
        "anomalous_frames": int(frames.pos.size),
        "threshold": threshold,
        "annotations": annotations.describe(),
        "missing_scores": list(missing_scores),
        "missing_labels": sorted(unknown),
        "trimmed": trimmed,
        "notes": notes,
    }
    if per_video:
        result["per_video"] = per_video_rows(videos, threshold)
    return result


def evaluate(
    scores: Mapping[str, np.ndarray],
    annotations: Annotations,
    *,
    frame_counts: Mapping[str, int] | None = None,
    snippet_lengths: Mapping[str, int] | None = None,
    threshold: float = FALSE_ALARM_THRESHOLD,
    pad_scores: bool | None = None,
    per_video: bool = False,
) -> dict:
    """Frame-level metrics of per-frame `scores` ({video: (frames,)}) against `annotations`.

    Each video is aligned by `align_video` (label length from the annotation, else
    `frame_counts[video]`, else the score length; up to one snippet, `snippet_lengths[video]`,
    default 16, of padding trimmed and listed under `trimmed`, a larger difference an error).
    `pad_scores` pads short scores with their last value instead of trimming the labels; None
    takes the annotation's own rule (`Annotations.pad_short_scores`, True for the legacy gt).

    Videos with scores but no annotation are an error unless the format says unlisted videos
    are normal (XD-Violence, ShanghaiTech masks); they are then listed under `missing_labels`.
    Annotated videos without scores are listed under `missing_scores` (the caller warns).

    `per_video=True` adds `per_video`: {video: frames, anomalous_frames, roc_auc (null unless
    the video has both kinds of frames), mean_score, max_score, alarm_rate (share of frames
    scored >= threshold)} to find the videos that drag a result down.
    """
    check_threshold(threshold)
    if not scores:
        raise VadkitError("no score files to evaluate")
    unknown, missing = match_annotations(list(scores), annotations)
    pad = annotations.pad_short_scores if pad_scores is None else pad_scores
    frame_counts, snippet_lengths = frame_counts or {}, snippet_lengths or {}
    videos = [
        align_video(
            v,
            scores[v],
            annotations,
            frame_count=frame_counts.get(v),
            snippet_length=snippet_lengths.get(v),
            pad_scores=pad,
        )
        for v in sorted(scores)
    ]
    return build_report(
        videos,
        annotations,
        threshold=threshold,
        unknown=unknown,
        missing_scores=missing,
        per_video=per_video,
    )
