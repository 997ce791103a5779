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

Curves come from plain sorts and binary searches (no per-frame Python, no argsort), so a
million frames take a fraction of a second; results equal sklearn's to floating-point rounding (≤ 1e-12).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from vadkit.errors import VadkitError
from vadkit.io.annotations import NORMAL, Annotations

SNIPPET_LENGTH = 16  # default padding tolerance: one I3D snippet of frames
FALSE_ALARM_THRESHOLD = 0.5


# -- curves from a descending sort -------------------------------------------------------------
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


def _counts(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True/false positive counts at each distinct score, highest first (sklearn's binary
    classification curve), from two plain sorts instead of an argsort (4x faster)."""
    all_sorted = np.sort(y_score)
    pos_sorted = np.sort(y_score[y_true])
    first = np.flatnonzero(np.r_[True, all_sorted[1:] != all_sorted[:-1]])  # distinct, ascending
    at_least = all_sorted.size - first  # frames scored >= each distinct value
    pos_at_least = pos_sorted.size - np.searchsorted(pos_sorted, all_sorted[first], "left")
    tps = pos_at_least[::-1].astype(np.float64)
    fps = (at_least - pos_at_least)[::-1].astype(np.float64)
    return tps, fps


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1])) / 2.0)


def _need_both(tps: np.ndarray, fps: np.ndarray, what: str) -> None:
    if tps[-1] == 0 or fps[-1] == 0:
        only = "normal (0)" if tps[-1] == 0 else "anomalous (1)"
        raise VadkitError(
            f"{what} needs both normal and anomalous frames, but all {int(tps[-1] + fps[-1])} "
            f"frames are {only}"
        )


def _roc_auc(tps: np.ndarray, fps: np.ndarray) -> float:
    fpr = np.concatenate([[0.0], fps / fps[-1]])
    tpr = np.concatenate([[0.0], tps / tps[-1]])
    return _trapezoid(tpr, fpr)


def _pr(tps: np.ndarray, fps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sklearn's `precision_recall_curve` (recall decreasing, ending at recall 0, precision 1)."""
    precision = np.concatenate([(tps / (tps + fps))[::-1], [1.0]])
    recall = np.concatenate([(tps / tps[-1])[::-1], [0.0]])
    return precision, recall


def _ap(precision: np.ndarray, recall: np.ndarray) -> float:
    return float(max(0.0, -np.sum(np.diff(recall) * precision[:-1])))


def _pr_trapezoid(precision: np.ndarray, recall: np.ndarray) -> float:
    return -_trapezoid(precision, recall)


def _mann_whitney_auc(pos: np.ndarray, negs: list[np.ndarray], n_neg: int) -> float:
    """ROC AUC as P(pos > neg) + ½ P(pos = neg), negatives given as ascending sorted arrays."""
    twice = 0  # 2 × (pairs won + ½ ties), an exact integer
    for neg in negs:
        lo = np.searchsorted(neg, pos, "left")
        hi = np.searchsorted(neg, pos, "right")
        twice += int(lo.sum()) + int(hi.sum())
    return twice / (2.0 * pos.size * n_neg)


def roc_auc(y_true, y_score) -> float:
    """Area under the ROC curve (equals `sklearn.metrics.roc_auc_score`)."""
    t, s = _check(y_true, y_score)
    tps, fps = _counts(t, s)
    _need_both(tps, fps, "ROC AUC")
    return _roc_auc(tps, fps)


def average_precision(y_true, y_score) -> float:
    """sklearn's average precision `Σ (R_n − R_{n−1}) P_n`."""
    t, s = _check(y_true, y_score)
    tps, fps = _counts(t, s)
    _need_both(tps, fps, "average precision")
    return _ap(*_pr(tps, fps))


def pr_auc_trapezoid(y_true, y_score) -> float:
    """Trapezoid area under the precision-recall curve (RTFM/MGFN's reported PR AUC)."""
    t, s = _check(y_true, y_score)
    tps, fps = _counts(t, s)
    _need_both(tps, fps, "PR AUC")
    return _pr_trapezoid(*_pr(tps, fps))


def false_alarm_rate(y_true, y_score, *, threshold: float = FALSE_ALARM_THRESHOLD) -> float:
    """Fraction of the normal (label 0) frames scored >= `threshold`."""
    t, s = _check(y_true, y_score)
    neg = ~t
    if not neg.any():
        raise VadkitError("false-alarm rate needs normal frames, but every frame is anomalous")
    return float(np.count_nonzero(s[neg] >= threshold) / np.count_nonzero(neg))


# -- aligning scores with labels ---------------------------------------------------------------
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
        scores = np.concatenate([scores, np.full(nl - ns, scores[-1])])
    else:
        action = "trimmed labels"
        labels = labels[:ns]
    return scores, labels, {"video": video, "scores": ns, "labels": nl, "action": action}


# -- the evaluation ---------------------------------------------------------------------------
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

    Each video's label length is the annotation's frame count when it has one, else
    `frame_counts[video]` (the score metadata's true frame count), else the score length.
    A score/label length difference of up to one snippet (`snippet_lengths[video]`, default 16)
    is padding: the longer side is trimmed (or, with `pad_scores`, the default for the legacy
    format, short scores are padded with their last value) and the video is listed under
    `trimmed`. A larger difference is an error naming the video and both lengths.

    Videos with scores but no annotation are an error unless the format says unlisted videos
    are normal (XD-Violence, ShanghaiTech masks); they are then listed under `missing_labels`.
    Annotated videos without scores are listed under `missing_scores` (the caller warns).

    `per_video=True` adds `per_video`: {video: frames, anomalous_frames, roc_auc (null unless
    the video has both kinds of frames), mean_score, max_score, alarm_rate (share of frames
    scored >= threshold)} to find the videos that drag a result down.
    """
    frame_counts = frame_counts or {}
    snippet_lengths = snippet_lengths or {}
    if pad_scores is None:
        pad_scores = annotations.format == "legacy"
    if not scores:
        raise VadkitError("no score files to evaluate")

    unknown = [v for v in scores if v not in annotations]
    if unknown and not annotations.unlisted_normal:
        shown = ", ".join(sorted(unknown)[:5]) + (", ..." if len(unknown) > 5 else "")
        raise VadkitError(
            f"{len(unknown)} scored video(s) are not in the annotation {annotations.path} "
            f"(format {annotations.format}, which lists every test video): {shown}; evaluate "
            f"the right score directory or annotation file"
        )
    keys: dict[str, str] = {}
    for v in scores:
        k = annotations.key(v) or v
        if k in keys:
            raise VadkitError(f"scores {keys[k]!r} and {v!r} are both for video {k}")
        keys[k] = v
    missing_scores = [v for v in annotations.videos if v not in keys]

    names = sorted(scores)
    y_scores, y_labels, trimmed, lengths = [], [], [], []
    anomalous = np.zeros(len(names), dtype=bool)
    for i, v in enumerate(names):
        s = np.asarray(scores[v], dtype=np.float64).reshape(-1)
        if s.size == 0:
            raise VadkitError(f"{v}: empty score array")
        if not np.isfinite(s).all():
            bad = ~np.isfinite(s)
            raise VadkitError(
                f"{v}: {int(bad.sum())} non-finite score(s) (NaN/inf), first at frame "
                f"{int(np.argmax(bad))}"
            )
        truth = annotations.truth(v)
        n = truth.frame_count
        if n is None:
            n = int(frame_counts.get(v) or s.size)
        labels = annotations.labels(v, None if truth.frame_count is not None else n)
        tol = int(snippet_lengths.get(v) or SNIPPET_LENGTH)
        s, labels, note = align_scores_labels(
            v, s, labels, tolerance=tol, pad_scores=pad_scores, source=truth.source
        )
        if note:
            trimmed.append(note)
        y_scores.append(s)
        y_labels.append(labels)
        lengths.append(s.size)
        anomalous[i] = bool(labels.any())

    y_score = np.concatenate(y_scores)
    y_true = np.concatenate(y_labels).astype(bool)
    frame_video = np.repeat(np.arange(len(names)), lengths)
    tps, fps = _counts(y_true, y_score)
    _need_both(tps, fps, f"evaluating {len(names)} video(s) against {annotations.path}: ROC AUC")
    precision, recall = _pr(tps, fps)
    notes: list[str] = []

    # Sub-populations (anomalous videos only; one class + all normal videos) are scored with the
    # Mann-Whitney form of ROC AUC, P(score_pos > score_neg) + ½ P(tie), from sorted negatives:
    # the normal videos' frames are shared by every class, so they are sorted once, and each
    # class only costs a sort of its own frames.
    normal = ~anomalous
    frame_anom = anomalous[frame_video]
    neg_normal = y_score[~frame_anom]  # all frames of normal videos are negatives
    neg_normal.sort()

    def subset_auc(videos_mask: np.ndarray, with_normal: bool, what: str) -> float | None:
        m = videos_mask[frame_video]
        pos = np.sort(y_score[m & y_true])  # sorted keys make searchsorted cache-friendly
        neg = [np.sort(y_score[m & ~y_true])]
        if with_normal:
            neg.append(neg_normal)
        n_neg = sum(x.size for x in neg)
        if pos.size == 0 or n_neg == 0:
            notes.append(f"{what}: undefined (only one class of frames)")
            return None
        return _mann_whitney_auc(pos, neg, n_neg)

    per_class: dict[str, dict] = {}
    classes = [annotations.video_classes(v) for v in names]
    for c in sorted({c for cs in classes for c in cs if c != NORMAL}):
        members = np.array([c in cs for cs in classes]) & anomalous
        if not members.any():
            continue
        sel = members | normal
        per_class[c] = {
            "roc_auc": subset_auc(members, True, f"per_class[{c}]"),
            "videos": int(members.sum()),
            "normal_videos": int(normal.sum()),
            "frames": int(np.asarray(lengths)[sel].sum()),
        }

    far = None
    if neg_normal.size:
        far = (
            float(neg_normal.size - np.searchsorted(neg_normal, threshold, "left"))
            / neg_normal.size
        )
    else:
        notes.append("false_alarm_rate: no normal videos among the scored videos")

    if unknown:
        notes.append(
            f"{len(unknown)} scored video(s) are not in the annotation and were taken as normal "
            f"(format {annotations.format} lists only anomalous videos)"
        )
    if missing_scores:
        notes.append(f"{len(missing_scores)} annotated video(s) have no scores and were skipped")
    if trimmed:
        notes.append(
            f"{len(trimmed)} video(s) differed from their labels by at most one snippet of "
            f"padding and were aligned (see 'trimmed')"
        )

    result = {
        "roc_auc": _roc_auc(tps, fps),
        "average_precision": _ap(precision, recall),
        "pr_auc_trapezoid": _pr_trapezoid(precision, recall),
        "roc_auc_abnormal": subset_auc(anomalous, False, "roc_auc_abnormal"),
        "false_alarm_rate": far,
        "per_class": per_class,
        "videos": len(names),
        "frames": int(y_true.size),
        "abnormal_videos": int(anomalous.sum()),
        "normal_videos": int(normal.sum()),
        "anomalous_frames": int(y_true.sum()),
        "threshold": threshold,
        "annotations": annotations.describe(),
        "missing_scores": missing_scores,
        "missing_labels": sorted(unknown),
        "trimmed": trimmed,
        "notes": notes,
    }
    if per_video:
        rows = {}
        for v, sv, lv in zip(names, y_scores, y_labels, strict=True):
            pos = int(np.count_nonzero(lv))
            auc_v = None
            if 0 < pos < lv.size:
                neg = np.sort(sv[lv == 0])
                auc_v = _mann_whitney_auc(np.sort(sv[lv != 0]), [neg], neg.size)
            rows[v] = {
                "frames": int(sv.size),
                "anomalous_frames": pos,
                "roc_auc": auc_v,
                "mean_score": float(sv.mean()),
                "max_score": float(sv.max()),
                "alarm_rate": float(np.count_nonzero(sv >= threshold) / sv.size),
            }
        result["per_video"] = rows
    return result
