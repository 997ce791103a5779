"""`vadkit render`: a video with its scores drawn on it, as an mp4 for review.

Each output frame is the source frame, with a red alert banner while an alert is active and,
when the scores come with evidence (`vadkit score --evidence`), the heatmap of the frame's
snippet alpha-blended on it, above a timeline strip: the whole score curve, the threshold,
the alert segments shaded and a cursor at the current frame. Alerts are
`vadkit.alerts.alert_segments` of the frame scores, so they are the ones `vadkit watch` and
`vadkit report` show for the same rule.

The strip is drawn once and copied per frame, so rendering costs one decode, one blend and
one encode per frame; memory is one frame whatever the video's length. The mp4 is written to a
temporary file beside the output and renamed onto it when complete.

The helpers shared with `vadkit.report` (finding a video's scores, evidence, the heatmap
colours) live here.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import vadkit.evidence as evidence_mod
from vadkit.alerts import Alert, AlertRule, alert_segments
from vadkit.errors import VadkitError
from vadkit.io import scores as scores_io
from vadkit.io.atomic import atomic_path
from vadkit.io.features import SNIPPET_LENGTH
from vadkit.io.scores import ScoreMeta
from vadkit.opencv import cv2
from vadkit.video import WRITER_FOURCCS, FrameReader, open_writer

# container -> fourcc OpenCV's FFmpeg backend writes into it
STILLS = (".png", ".jpg", ".jpeg")  # one rendered frame as an image
MIN_WIDTH = 480  # smaller videos are scaled up to this width, so that the text stays legible
HEAT_ALPHA = 0.5  # opacity of the heatmap where the evidence is highest
# timeline colours (BGR)
_BG, _CURVE, _THRESH, _ALERT, _CURSOR = (
    (32, 32, 32),
    (80, 220, 255),
    (60, 60, 230),
    (60, 50, 120),
    (255, 255, 255),
)


@dataclass
class VideoScores:
    """One video's frame scores and what is known about how they were made."""

    video: str
    scores: np.ndarray
    meta: ScoreMeta | None
    evidence: np.ndarray | None = None  # (snippets, P)
    regions: np.ndarray | None = None  # (P, 4) fractional boxes

    @property
    def snippet_length(self) -> int:
        return self.meta.snippet_length if self.meta is not None else SNIPPET_LENGTH

    def snippet_of(self, frame: int) -> int:
        """The snippet (evidence row) frame `frame` of the native video belongs to; features
        extracted at a resampled fps cut their snippets from `frames_used` frames."""
        n = self.scores.shape[0]
        used = self.meta.frames_used if self.meta is not None and self.meta.frames_used else n
        return int(frame * used / n) // self.snippet_length


def read_batch(scores_dir: str | os.PathLike) -> dict[str, VideoScores]:
    """Every video of a score directory (`vadkit.io.scores.read_scores`), without evidence."""
    return {v: VideoScores(v, a, m) for v, (a, m) in scores_io.read_scores(scores_dir).items()}


def with_evidence(scores_dir: str | os.PathLike, vs: VideoScores) -> VideoScores:
    """`vs` with its evidence attached when the score directory has some for it."""
    found = evidence_mod.read_evidence(scores_dir, vs.video)
    if found is not None:
        vs.evidence, vs.regions = np.asarray(found[0], dtype=np.float32), np.asarray(found[1])
    return vs


def find_scores(scores_dir: str | os.PathLike, video: str | os.PathLike) -> VideoScores:
    """The scores of `video` (matched by file stem) in `scores_dir`, with evidence if any."""
    stem = Path(video).stem
    batch = read_batch(scores_dir)
    if stem not in batch:
        shown = ", ".join(list(batch)[:5]) + (", ..." if len(batch) > 5 else "")
        raise VadkitError(
            f"{video}: no scores for video '{stem}' in {scores_dir} (it holds {shown}); "
            f"score the video first (`vadkit score`) or pass the matching score directory"
        )
    return with_evidence(scores_dir, batch[stem])


def heat_strength(score: float, alpha: float = HEAT_ALPHA) -> float:
    """The heatmap's opacity at its hottest pixel for a snippet scored `score`: the overlay
    says *where* within the snippet (its evidence scaled to its own maximum) and, by its
    strength, *how anomalous* the snippet is, so quiet snippets stay almost untouched."""
    return alpha * min(max(float(score), 0.0), 1.0)


def heat_layer(
    row: np.ndarray, regions: np.ndarray, width: int, height: int, alpha: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """(alpha-weighted jet colours (h, w, 3), 1 - alpha (h, w, 1)) of one snippet's evidence
    `row`, the map (`vadkit.evidence.heatmap`: the grids averaged) scaled to its own highest
    pixel: opaque up to `alpha` where the patches raise the score most, transparent where
    none does. None when no patch raises it (or `alpha` is 0).

    Each snippet is scaled to its own maximum because what the heatmap answers is where in
    the frame, and a score near 1 leaves little to drop (its evidence is small but still
    ranks the patches)."""
    if alpha <= 0:
        return None
    heat = evidence_mod.heatmap(row, regions, width, height)
    top = float(heat.max()) if heat.size else 0.0
    if not (top > 0 and math.isfinite(top)):
        return None
    heat = np.clip(heat / top, 0.0, 1.0)
    colours = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)
    colours = cv2.cvtColor(colours, cv2.COLOR_BGR2RGB).astype(np.float32)
    a = (alpha * heat)[..., None]
    return colours * a + 0.5, 1.0 - a


def blend_heatmap(
    frame: np.ndarray, row: np.ndarray, regions: np.ndarray, alpha: float = HEAT_ALPHA
) -> np.ndarray:
    """RGB `frame` with one snippet's evidence `row` overlaid (see `heat_layer`); the frame
    itself when no patch raises the score."""
    h, w = frame.shape[:2]
    layer = heat_layer(row, regions, w, h, alpha)
    return frame if layer is None else _apply(frame, layer)


def _apply(frame: np.ndarray, layer: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    colours, keep = layer
    return (frame.astype(np.float32) * keep + colours).astype(np.uint8)


def fired_frame(alert: Alert, fps: float) -> int:
    """The frame at which `alert` fired (its rule was met), at or after its start."""
    return max(alert.start_frame, int(round(alert.fired_time * fps)) - 1)


class Timeline:
    """The strip under the video: drawn once (`base`), a cursor added per frame (`at`)."""

    def __init__(self, scores: np.ndarray, alerts: Sequence[Alert], rule: AlertRule, width: int):
        self.n = scores.shape[0]
        self.width = width
        self.height = max(36, min(120, width // 6))
        self.pad = max(2, self.height // 12)
        self.base = self._draw(scores, alerts, rule)

    def x(self, frame: float) -> int:
        return int(round(frame * (self.width - 1) / max(self.n - 1, 1)))

    def y(self, score: float) -> int:
        inner = self.height - 2 * self.pad
        return self.pad + int(round((1.0 - min(max(score, 0.0), 1.0)) * inner))

    def _draw(self, scores: np.ndarray, alerts: Sequence[Alert], rule: AlertRule) -> np.ndarray:
        img = np.empty((self.height, self.width, 3), np.uint8)
        img[:] = _BG
        for a in alerts:
            end = a.end_frame if a.end_frame is not None else self.n
            cv2.rectangle(
                img, (self.x(a.start_frame), 0), (self.x(end - 1), self.height - 1), _ALERT, -1
            )
        ty = self.y(rule.threshold)
        for x0 in range(0, self.width, 8):  # a dashed threshold line
            cv2.line(img, (x0, ty), (min(x0 + 4, self.width - 1), ty), _THRESH, 1)
        # one point per column (the column's highest score keeps short peaks visible)
        cols = np.linspace(0, self.n, self.width + 1).astype(np.int64)
        ys = [
            self.y(float(scores[a : max(b, a + 1)].max()))
            for a, b in zip(cols[:-1], cols[1:], strict=True)
        ]
        pts = np.array([[i, y] for i, y in enumerate(ys)], np.int32).reshape(-1, 1, 2)
        cv2.polylines(img, [pts], False, _CURVE, 1 if self.width < 400 else 2, cv2.LINE_AA)
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def at(self, frame: int) -> np.ndarray:
        img = self.base.copy()
        x = self.x(frame)
        cv2.line(img, (x, 0), (x, self.height - 1), _CURSOR, 1 if self.width < 400 else 2)
        return img


def _text(img: np.ndarray, text: str, org: tuple[int, int], height: int, max_width: int) -> None:
    """White `text` on a dark box, its baseline at `org`, about `height` pixels tall and at
    most `max_width` wide (in place)."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = height / 22
    (w, h), base = cv2.getTextSize(text, font, scale, 1)
    if w > max_width:
        scale *= max_width / w
    thick = max(1, int(round(scale * 1.6)))
    (w, h), base = cv2.getTextSize(text, font, scale, thick)
    x, y = org
    box = img[max(0, y - h - 2) : y + base, max(0, x - 2) : x + w + 2]
    box[:] = (box.astype(np.float32) * 0.4).astype(np.uint8)
    cv2.putText(img, text, (x, y), font, scale, (255, 255, 255), thick, cv2.LINE_AA)


def draw_banner(frame: np.ndarray, alert: Alert, score: float) -> None:
    """A red band across the top of RGB `frame` (in place) saying which alert is active."""
    h, w = frame.shape[:2]
    band = max(16, h // 9)
    top = frame[:band].astype(np.float32)
    frame[:band] = (top * 0.3 + np.array([210, 20, 20], np.float32) * 0.7).astype(np.uint8)
    label = f"ALERT {alert.index + 1}  score {score:.2f}  since {alert.start_time:.1f} s"
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, band / 36
    thick = max(1, int(round(scale * 1.8)))
    (tw, th), _ = cv2.getTextSize(label, font, scale, thick)
    while tw > w - 8 and scale > 0.1:  # shrink to fit the width (the stroke stays)
        scale *= 0.97 * (w - 8) / tw
        (tw, th), _ = cv2.getTextSize(label, font, scale, thick)
    cv2.putText(
        frame, label, (4, (band + th) // 2), font, scale, (255, 255, 255), thick, cv2.LINE_AA
    )


def _score_label(frame: np.ndarray, i: int, score: float, fps: float) -> None:
    h, w = frame.shape[:2]
    _text(frame, f"{i / fps:.2f} s  score {score:.2f}", (4, h - 5), max(12, h // 14), w // 2)


@dataclass
class _Plan:
    """Everything a frame needs, decided before the first one is decoded."""

    vs: VideoScores
    fps: float
    alerts: list[Alert]
    timeline: Timeline
    size: tuple[int, int]  # (width, height) of the frame part of the output
    _layer: tuple[int, tuple[np.ndarray, np.ndarray] | None] | None = None  # (snippet, layer)

    def active(self, i: int) -> Alert | None:
        for a in self.alerts:
            if fired_frame(a, self.fps) <= i < (a.end_frame or self.vs.scores.shape[0]):
                return a
        return None

    def heat(self, i: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The heatmap layer of frame `i`'s snippet (made once per snippet), or None."""
        vs = self.vs
        if vs.evidence is None or vs.regions is None:
            return None
        k = min(vs.snippet_of(i), vs.evidence.shape[0] - 1)
        if self._layer is None or self._layer[0] != k:
            alpha = heat_strength(vs.scores[i])
            self._layer = (k, heat_layer(vs.evidence[k], vs.regions, *self.size, alpha))
        return self._layer[1]

    def compose(self, frame: np.ndarray, i: int) -> np.ndarray:
        score = float(self.vs.scores[i])
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_LINEAR)
        layer = self.heat(i)
        frame = frame.copy() if layer is None else _apply(frame, layer)
        alert = self.active(i)
        if alert is not None:
            draw_banner(frame, alert, score)
        _score_label(frame, i, score, self.fps)
        return np.vstack([frame, self.timeline.at(i)])


def _mismatch(video: Path, vs: VideoScores, scores_dir, decoded: str) -> VadkitError:
    return VadkitError(
        f"{video}: the video has {decoded} frames but its scores "
        f"{Path(scores_dir) / vs.video}.npy cover {vs.scores.shape[0]}; are these the scores "
        f"of this video?"
    )


def frame_size(width: int, height: int, out_width: int | None = None) -> tuple[int, int]:
    """(width, height) of the drawn frame: `out_width` wide (default: the video's width, or
    `MIN_WIDTH` if it is narrower), the video's aspect kept, both even (what encoders like)."""
    if width <= 0 or height <= 0:
        raise VadkitError(f"the video reports no frame size ({width}x{height})")
    w = out_width if out_width is not None else max(width, MIN_WIDTH)
    if w < 16:
        raise VadkitError(f"output width must be at least 16 pixels, got {w}")
    h = max(2, int(round(height * w / width)))
    return w - w % 2, h - h % 2


@contextlib.contextmanager
def writing(out: Path) -> Iterator[None]:
    """Turn the OS refusing to write `out` (a directory there, no permission, a full disk)
    into one VadkitError naming it."""
    if out.is_dir():
        raise VadkitError(f"{out}: is a directory; give the file to write")
    try:
        yield
    except OSError as e:
        raise VadkitError(f"{out}: cannot write ({e.strerror or e})") from None


def check_output(out: str | os.PathLike) -> Path:
    """The output path, if its extension names a container `render` can write."""
    p = Path(out)
    if p.is_dir():
        raise VadkitError(f"{p}: is a directory; give the video file to write")
    if p.suffix.lower() not in (*WRITER_FOURCCS, *STILLS):
        raise VadkitError(
            f"{p}: the output must end in one of {', '.join([*WRITER_FOURCCS, *STILLS])} (got "
            f"{p.suffix or 'no extension'!r})"
        )
    return p


def _encode(reader: FrameReader, plan: _Plan, writer, video: Path, scores_dir, progress) -> int:
    n = plan.vs.scores.shape[0]
    written = 0
    for i, frame in enumerate(reader):
        if i >= n:
            raise _mismatch(video, plan.vs, scores_dir, f"more than {n}")
        writer.write(cv2.cvtColor(plan.compose(frame, i), cv2.COLOR_RGB2BGR))
        written += 1
        if progress is not None:
            progress(written)
    reader.check()
    if written != n:
        raise _mismatch(video, plan.vs, scores_dir, str(written))
    return written


def _prepare(video: Path, scores_dir, rule: AlertRule, width: int | None):
    """(frame reader, plan) of a render: the scores found and checked, alerts, timeline."""
    reader = FrameReader(video)
    info = reader.info
    vs = find_scores(scores_dir, video)
    hint = info.frame_count_hint
    if hint > 0 and abs(hint - vs.scores.shape[0]) > vs.snippet_length:  # fail before decoding
        raise _mismatch(video, vs, scores_dir, f"about {hint}")
    alerts = alert_segments(vs.scores, info.fps, rule)
    fsize = frame_size(info.width, info.height, width)
    timeline = Timeline(vs.scores, alerts, rule, fsize[0])
    return reader, _Plan(vs, info.fps, alerts, timeline, fsize)


def _summary(plan: _Plan, video: Path, out: Path, frames: int, seconds: float) -> dict[str, Any]:
    w, h = plan.size
    return {
        "video": plan.vs.video,
        "source": str(video),
        "out": str(out),
        "frames": frames,
        "fps": plan.fps,
        "size": f"{w}x{h + plan.timeline.height}",
        "evidence": plan.vs.evidence is not None,
        "alerts": [a.as_dict() for a in plan.alerts],
        "seconds": round(seconds, 3),
        "render_fps": round(frames / seconds, 1) if seconds > 0 else None,
    }


def render_video(
    video: str | os.PathLike,
    scores_dir: str | os.PathLike,
    out: str | os.PathLike,
    rule: AlertRule,
    *,
    width: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Write `out` (an .mp4, .m4v, .mov or .avi): `video` with its scores from `scores_dir`
    drawn on it, `width` pixels wide (see `frame_size`). Returns a summary (frames, fps,
    alerts, evidence, timing). One frame as an image is `render_still`'s."""
    video, out = Path(video), check_output(out)
    if out.suffix.lower() not in WRITER_FOURCCS:
        raise VadkitError(f"{out}: not a video file name; an image is written by render_still")
    reader, plan = _prepare(video, scores_dir, rule, width)
    size = (plan.size[0], plan.size[1] + plan.timeline.height)
    start = time.monotonic()
    with writing(out), atomic_path(out, suffix=out.suffix) as tmp:
        writer = open_writer(tmp, out, plan.fps, size)
        try:
            frames = _encode(reader, plan, writer, video, scores_dir, progress)
        finally:
            writer.release()
    return _summary(plan, video, out, frames, time.monotonic() - start)


def default_frame(plan: _Plan) -> int:
    """The frame a still shows by default: the highest alert's peak, else the highest score."""
    if plan.alerts:
        return max(plan.alerts, key=lambda a: (a.peak, -a.start_time)).peak_frame
    return int(np.argmax(plan.vs.scores))


def render_still(
    video: str | os.PathLike,
    scores_dir: str | os.PathLike,
    out: str | os.PathLike,
    rule: AlertRule,
    *,
    frame: int | None = None,
    width: int | None = None,
) -> dict[str, Any]:
    """Write one rendered frame of `video` (0-based `frame`, default `default_frame`) as the
    image `out` (.png or .jpg): a thumbnail, or a figure for a document."""
    video, out = Path(video), check_output(out)
    reader, plan = _prepare(video, scores_dir, rule, width)
    n = plan.vs.scores.shape[0]
    i = default_frame(plan) if frame is None else frame
    if not 0 <= i < n:
        raise VadkitError(f"{video}: frame {i} is out of range; the scores cover frames 0-{n - 1}")
    start = time.monotonic()
    for k, rgb in enumerate(reader):
        if k == i:
            image = cv2.cvtColor(plan.compose(rgb, i), cv2.COLOR_RGB2BGR)
            break
    else:
        raise _mismatch(video, plan.vs, scores_dir, str(reader.count))
    with writing(out), atomic_path(out, suffix=out.suffix) as tmp:
        if not cv2.imwrite(str(tmp), image):
            raise VadkitError(f"{out}: OpenCV could not write the image")
    summary = _summary(plan, video, out, 1, time.monotonic() - start)
    summary["frame"] = i
    return summary
