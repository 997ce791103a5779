"""`vadkit watch`: score a live stream (a file, an http(s)/rtsp URL, a camera) as frames arrive.

Pipeline: a reader thread decodes frames, cuts them into 16-frame snippets (the run's recorded
frame rate and padding) and hands them over through a bounded mailbox; the main thread extracts
each snippet's features with the run's recorded extraction settings
(`vadkit.extractor.Extractor.snippet_features`, the same computation as `vadkit extract`),
scores the last W snippets with the model and emits the newest snippet's score, feeds the score
to `vadkit.alerts.AlertTracker`, runs `--on-alert` hooks and writes alert clips.

Decoding uses OpenCV's FFmpeg backend (`cv2.VideoCapture`), not PyAV: it is already the decoder
of `vadkit extract`, so a live snippet is decoded by the same FFmpeg build and converted to RGB
the same way as the offline features the model was trained on (bit-identical frames for files),
it reads files, http(s)/rtsp URLs and cameras (V4L2) through one API, it has open and read
timeouts for network streams, and it adds no dependency (PyAV would be a second FFmpeg build
in the environment).

Keeping up: the mailbox holds at most `max_lag` seconds of snippets. On a live source (URL,
camera, or a file with `realtime`), when the model is slower than the stream the oldest waiting
snippet is dropped (reported: a `dropped` line, a warning, the summary count), so the lag stays
bounded; a file read as fast as possible is never dropped from, the reader waits instead.

Window: offline `vadkit score` runs the model on a video's whole snippet sequence (RTFM's and
MSIP's non-local block relates all snippets, MGFN's attention too). Live, the model sees the
last W snippets (fewer at the start) and the newest one's score is emitted, so a score depends
only on the past. The default W is the number of snippets per training sequence of the run
(`segments`), at least the model's `min_snippets`. The newest snippet of a window is its edge
(the temporal convolutions of RTFM's and MSIP's CTR block pad there), where live and offline
scores differ most: `lookahead` L > 0 scores the snippet L places before the newest instead,
emitted L snippets later. On the quickstart's MSIP run (benchmarks/bench_watch.py: its 8-snippet
synthetic test videos and a 31-snippet ShanghaiTech clip) the median Pearson r with offline
`score` is 0.78 at L = 0 and 0.96 at L = 1 (largest difference 0.92 -> 0.37); W beyond the
training length changes nothing measurable. The default stays L = 0: with L > 0 a snippet's
score also reflects the L snippets after it, so an alert can start up to L snippets before the
event it reacts to (measured on the synthetic test_abn_002 at L = 1: the alert covered the
snippet before the event), and after dropped snippets the context after a snippet can lie
seconds later.

Warm-up: the first `warmup` (2) snippets are scored and printed (`"warmup": true`) but raise no
alert: their windows of 1 and 2 snippets are mostly padding (a 1-snippet window scores 0.0; on
the quickstart's RTFM run the second snippet of two synthetic test videos scored 0.52 and 0.65,
a second before their events start, against 0.25 and 0.46 offline).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import math
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vadkit.alerts import Alert, AlertEvent, AlertRule, AlertTracker
from vadkit.errors import VadkitError
from vadkit.io.atomic import atomic_path
from vadkit.io.features import PATCH_GRIDS, SNIPPET_LENGTH
from vadkit.opencv import cv2
from vadkit.video import open_writer, resample, snippet_groups

URL_SCHEMES = ("http", "https", "rtsp", "rtsps", "rtmp", "udp", "tcp", "srt")
FALLBACK_FPS = 25.0  # a stream that reports no usable frame rate (say so, or pass --fps)
MAX_SANE_FPS = 240.0  # rtsp streams sometimes report their 90 kHz clock as fps


# ---------------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class SourceSpec:
    """What SOURCE names: `kind` is "file", "url" or "camera"; `target` what OpenCV opens."""

    kind: str
    target: str | int
    label: str  # a short name for clip files and messages


def parse_source(text: str) -> SourceSpec:
    """A camera index ("0"), a URL (`rtsp://`, `http://`, ...) or a video file path."""
    text = str(text).strip()
    if re.fullmatch(r"\d{1,3}", text):
        return SourceSpec("camera", int(text), f"camera{text}")
    m = re.match(r"([a-zA-Z][a-zA-Z0-9+.-]*)://", text)
    if m:
        if m[1].lower() not in URL_SCHEMES:
            raise VadkitError(
                f"{text}: unsupported URL scheme {m[1]!r}; use one of {', '.join(URL_SCHEMES)}"
            )
        tail = text[m.end() :].split("?")[0].rstrip("/")
        label = re.sub(r"[^A-Za-z0-9_.-]+", "_", tail.rsplit("/", 1)[-1] or "stream")
        return SourceSpec("url", text, Path(label).stem or "stream")
    p = Path(text)
    if not p.is_file():
        raise VadkitError(
            f"{text}: no such video file (SOURCE is a video file, an rtsp:// or http:// URL, "
            "or a camera index such as 0)"
        )
    return SourceSpec("file", str(p), p.stem)


def open_capture(spec: SourceSpec, timeout: float) -> cv2.VideoCapture:
    """Open SOURCE with OpenCV (FFmpeg for files and URLs); VadkitError when it cannot."""
    ms = int(max(timeout, 0.1) * 1000)
    if spec.kind == "camera":
        cap = cv2.VideoCapture(spec.target)
    elif spec.kind == "url":
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        cap = cv2.VideoCapture(spec.target, cv2.CAP_FFMPEG, params)
    else:
        cap = cv2.VideoCapture(spec.target, cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        what = {"camera": "the camera", "url": "the stream", "file": "the video"}[spec.kind]
        raise VadkitError(f"{spec.target}: OpenCV cannot open {what}")
    return cap


def capture_fps(cap: cv2.VideoCapture, override: float | None) -> tuple[float, bool]:
    """(fps, reported): the frame rate to time frames by, and whether the source reported it."""
    if override is not None:
        return float(override), True
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    if math.isfinite(fps) and 0 < fps <= MAX_SANE_FPS:
        return fps, True
    return FALLBACK_FPS, False


# ---------------------------------------------------------------------------------- snippets


@dataclass
class Snippet:
    """16 frames ready for the network. Frame numbers count source frames from the first one
    read (continuing across reconnections); `end_frame` is exclusive."""

    index: int
    start_frame: int
    end_frame: int
    frames: np.ndarray  # (16, h, w, 3) uint8 RGB, loop-padded when `real` < 16
    real: int  # frames that are not padding
    arrived: float  # perf_counter() when its last frame was read
    wall: float  # time.time() then


@dataclass
class Dropped:
    """A snippet the reader had to drop (the model was behind by `max_lag`)."""

    index: int
    start_frame: int
    end_frame: int


@dataclass
class Note:
    """Something about the stream itself: `kind` is "end", "reconnect", "stall", "error"."""

    kind: str
    message: str
    fields: dict[str, Any] = field(default_factory=dict)


class Mailbox:
    """Snippets from the reader thread to the scorer, at most `capacity` waiting.

    `put` on a full box either waits (files read as fast as possible) or drops the oldest
    waiting snippet, leaving a `Dropped` marker in its place (live sources). Notes and markers
    do not count against the capacity and are never dropped."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self.items: collections.deque = collections.deque()
        self.waiting = 0  # Snippets in `items`
        self.dropped = 0
        self.cond = threading.Condition()
        self.closed = False

    def put(self, item: Snippet | Note, *, drop: bool = False) -> None:
        with self.cond:
            if isinstance(item, Snippet):
                while self.waiting >= self.capacity and not self.closed:
                    if drop:
                        self._drop_oldest()
                    else:
                        self.cond.wait(0.1)
                self.waiting += 1
            self.items.append(item)
            self.cond.notify_all()

    def _drop_oldest(self) -> None:
        for i, old in enumerate(self.items):
            if isinstance(old, Snippet):
                self.items[i] = Dropped(old.index, old.start_frame, old.end_frame)
                self.waiting -= 1
                self.dropped += 1
                return

    def get(self, timeout: float) -> Snippet | Dropped | Note | None:
        """The next item, or None after `timeout` seconds without one."""
        with self.cond:
            if not self.items and not self.cond.wait_for(lambda: self.items, timeout):
                return None
            item = self.items.popleft()
            if isinstance(item, Snippet):
                self.waiting -= 1
            self.cond.notify_all()
            return item

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


@dataclass
class ReaderOptions:
    fps: float | None = None  # override the source's frame rate
    resample_fps: float | None = None  # the run's extraction fps (None: native)
    drop_last: bool = False  # the run's padding: drop a partial last snippet, else loop-pad
    realtime: bool = False  # pace a file at its fps
    max_lag: float = 4.0  # seconds of snippets that may wait for the model
    timeout: float = 10.0  # open/read timeout of URLs, seconds
    reconnect: bool = False
    reconnect_limit: int = 10  # consecutive failed attempts before giving up
    reconnect_delay: float = 1.0  # seconds before the first retry (doubling, at most 30)


class Reader:
    """The decode thread: frames -> snippets -> `mailbox`; notes for ends and reconnections."""

    def __init__(self, spec: SourceSpec, options: ReaderOptions) -> None:
        self.spec, self.options = spec, options
        self.stop_event = threading.Event()
        self.cap = self._open_first()
        # a stream of unknown length (camera, rtsp, a live http stream) runs at its own pace
        # and is dropped from; a file, or a URL of a file (its frame count known), is waited for
        known_length = (self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) > 0
        self.live = options.realtime or spec.kind == "camera" or not known_length
        self.fps, self.fps_reported = capture_fps(self.cap, options.fps)
        self.width = int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        self.height = int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        self.snippet_seconds = SNIPPET_LENGTH / (options.resample_fps or self.fps)
        self.mailbox = Mailbox(math.ceil(options.max_lag / self.snippet_seconds - 1e-6))
        self.frames_read = 0
        self.last_frame = time.perf_counter()  # when the newest frame was read
        self.snippets = 0
        self.reconnects = 0
        self.pending: collections.deque = collections.deque()  # waiting for their lookahead
        self._stall_frame = -1  # frames_read when the last stall was reported
        self.thread = threading.Thread(target=self._run, name="vadkit-watch-read", daemon=True)

    def _open_first(self) -> cv2.VideoCapture:
        try:
            return open_capture(self.spec, self.options.timeout)
        except VadkitError as e:
            if not (self.options.reconnect and self.spec.kind != "file"):
                raise
            cap = self._reopen(str(e), notify=False)
            if cap is None:
                raise VadkitError(
                    f"{e}; gave up after {self.options.reconnect_limit} attempt(s)"
                ) from None
            return cap

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.mailbox.close()
        if self.thread.ident is not None:
            self.thread.join(timeout=5)
        else:  # never started: the first capture is still open
            self.cap.release()

    # -- the thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self.stop_event.is_set():
                why = self._session(self.cap)
                self.cap.release()
                if self.stop_event.is_set():
                    return
                if not (self.options.reconnect and self.spec.kind != "file"):
                    self._note("end", why, reason=why)
                    return
                self.cap = self._reopen(why)
                if self.cap is None:
                    self._note("end", f"{why}; gave up reconnecting", reason="gave up")
                    return
                self.reconnects += 1
                self._note("reconnect", "reconnected", reconnects=self.reconnects)
        except Exception as e:  # noqa: BLE001  (any failure must reach the scorer, never hang it)
            self._note("error", f"{self.spec.target}: reading failed ({type(e).__name__}: {e})")

    def _reopen(self, why: str, *, notify: bool = True) -> cv2.VideoCapture | None:
        """Retry opening the source with a doubling delay; None after `reconnect_limit`."""
        delay = self.options.reconnect_delay
        for attempt in range(1, self.options.reconnect_limit + 1):
            if self.stop_event.wait(delay):
                return None
            if notify:
                self._note("reconnecting", f"{why}; reconnecting (attempt {attempt})",
                           attempt=attempt)  # fmt: skip
            try:
                return open_capture(self.spec, self.options.timeout)
            except VadkitError as e:
                why = str(e)
            delay = min(delay * 2, 30.0)
        return None

    def _note(self, kind: str, message: str, **fields: Any) -> None:
        self.mailbox.put(Note(kind, message, fields))

    def _frames(self, cap: cv2.VideoCapture) -> Iterator[tuple[int, np.ndarray, float]]:
        """(source frame number, RGB frame, arrival) until the session ends; paced at the
        source's fps with `realtime`."""
        t0, first = time.perf_counter(), self.frames_read
        pace = self.spec.kind == "file" and self.options.realtime
        while not self.stop_event.is_set():
            if pace:
                due = t0 + (self.frames_read - first) / self.fps
                if self.stop_event.wait(max(0.0, due - time.perf_counter())):
                    return
            ok, bgr = cap.read()
            if not ok or bgr is None:
                return
            n = self.frames_read
            self.frames_read += 1
            self.last_frame = time.perf_counter()
            yield n, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), time.perf_counter()

    def _session(self, cap: cv2.VideoCapture) -> str:
        """Read one connection to its end; return why it ended."""
        frames: Iterator = self._frames(cap)
        if self.options.resample_fps:
            frames = resample(frames, self.fps, self.options.resample_fps)
        start_count, last = self.frames_read, time.perf_counter()
        groups = snippet_groups(frames, length=SNIPPET_LENGTH, drop_last=self.options.drop_last)
        for group, real in groups:
            last = group[real - 1][2]
            self._emit(group, real)
        got = self.frames_read - start_count
        if self.spec.kind == "file":
            return f"the video ended after {self.frames_read} frames"
        if time.perf_counter() - last >= 0.9 * self.options.timeout:
            return f"the stream stalled (no frame for {self.options.timeout:g} s)"
        return f"the stream ended ({got} frames on this connection)"

    def _emit(self, group: list[tuple[int, np.ndarray, float]], real: int) -> None:
        """One snippet: `group` its SNIPPET_LENGTH (frame number, frame, arrival) items, the
        first `real` of them read (the rest loop-padding)."""
        frames = np.stack([item[1] for item in group])
        last = group[real - 1]
        snippet = Snippet(
            self.snippets, group[0][0], last[0] + 1, frames, real, last[2], time.time()
        )
        self.snippets += 1
        self.mailbox.put(snippet, drop=self.live)


# ---------------------------------------------------------------------------------- scoring


def default_window(meta: dict[str, Any], min_snippets: int = 1) -> int:
    """The run's snippets per training sequence (`segments`), at least `min_snippets`."""
    args = meta.get("model_args") or {}
    segments = args.get("segments") or (meta.get("train_config") or {}).get("segments") or 32
    return max(int(segments), int(min_snippets), 1)


DEFAULT_LOOKAHEAD = 0  # snippets: see the module docstring
DEFAULT_WARMUP = 2  # snippets: see the module docstring


class WindowScorer:
    """The model on the last `window` snippets' features. `push` returns the score of the
    snippet `lookahead` places before the newest (None until there is one), so that snippet
    has `lookahead` snippets of context after it; `flush` scores the rest at the end."""

    def __init__(
        self, run: Any, window: int | None = None, lookahead: int = DEFAULT_LOOKAHEAD
    ) -> None:
        from vadkit.models.common import PATCHES

        model = run.model
        self.run, self.model = run, model
        self.window = window or max(default_window(run.meta, model.min_snippets), lookahead + 1)
        if self.window < 1:
            raise VadkitError(f"the window must hold at least 1 snippet, got {self.window}")
        if not 0 <= lookahead < self.window:
            raise VadkitError(
                f"the lookahead must be at least 0 and below the window ({self.window} "
                f"snippets), got {lookahead}"
            )
        self.lookahead = lookahead
        self.pushed = 0
        self.flushed = False
        self.patches = PATCHES in model.inputs
        files = model.patch_files(model.stage, model.config) if self.patches else ()
        self.grids = tuple(g for g in PATCH_GRIDS if not files or g in files)
        self.clips: collections.deque = collections.deque(maxlen=self.window)
        self.patch_rows: collections.deque = collections.deque(maxlen=self.window)

    def push(self, clip: np.ndarray, patches: dict[str, np.ndarray] | None) -> float | None:
        """Add one snippet's features (`(crops, d)`, `{grid: (p, d)}`); score the window."""
        self.clips.append(np.asarray(clip, np.float32))
        if self.patches:
            if not patches:
                raise VadkitError("the model reads MSIP patches but the snippet has none")
            self.patch_rows.append(np.concatenate([patches[g] for g in self.grids]))
        self.pushed += 1
        if self.pushed <= self.lookahead:
            return None
        return float(self._score_window()[-1 - self.lookahead])

    def flush(self) -> list[float]:
        """The stream ended: scores of the snippets `push` has not returned yet, in order."""
        left = min(self.lookahead, self.pushed)
        if self.flushed or not left:
            return []
        self.flushed = True
        return [float(x) for x in self._score_window()[-left:]]

    def _score_window(self) -> np.ndarray:
        clip_w = np.stack(self.clips)
        patch_w = np.stack(self.patch_rows) if self.patches else None
        return self.score_arrays(clip_w, patch_w)

    def score_arrays(self, clip: np.ndarray, patch: np.ndarray | None) -> np.ndarray:
        """Snippet scores `(t,)` of clip `(t, crops, d)` and patches `(t, P, d)`."""
        import torch

        from vadkit.data import full_length_bag

        with torch.no_grad():
            bag = full_length_bag(clip, patch, self.run.device)
            return self.model.scores(bag)[0].float().cpu().numpy()


def window_scores(
    scorer: WindowScorer,
    clip: np.ndarray,
    patch: np.ndarray | None,
    window: int,
    lookahead: int = 0,
) -> np.ndarray:
    """What `watch` emits for a whole video's features (offline, for comparisons): snippet i
    scored in the window of `window` snippets ending `lookahead` snippets after it (at the
    video's end, the last window)."""
    t = clip.shape[0]
    out = np.empty(t, np.float32)
    for i in range(t):
        hi = min(t, i + lookahead + 1)
        lo = max(0, hi - window)
        p = None if patch is None else patch[lo:hi]
        out[i] = scorer.score_arrays(clip[lo:hi], p)[i - lo]
    return out


def load_extractor(run: Any, *, device: str = "auto", weights: str | None = None) -> Any:
    """The `Extractor` of the run's recorded extraction settings, its weights checked."""
    from vadkit.extractor import Extractor
    from vadkit.score import run_extract_options

    opts = run_extract_options(
        run, device=device, weights=weights,
        otherwise="live frames cannot be extracted the same way",
    )  # fmt: skip
    ex = run.meta["extraction"]
    extractor = Extractor.load(opts)
    if extractor.backbone.weights_sha256 != ex["weights_sha256"]:
        raise VadkitError(
            f"the backbone weights {extractor.backbone.weights_sha256} are not the run's "
            f"({ex['weights_sha256']}, {ex['weights_source']}); pass --weights with that file"
        )
    return extractor


# ---------------------------------------------------------------------------------- alerts


class Hooks:
    """`--on-alert CMD`: run CMD (by the shell) once per alert event, the event's JSON line
    on its stdin and its name in $VADKIT_EVENT; its output goes to stderr. Not waited for
    while the stream runs (a slow hook never stalls scoring)."""

    def __init__(self, command: str | None, log: Callable[[str], None]) -> None:
        self.command, self.log = command, log
        self.running: list[subprocess.Popen] = []
        self.failed = 0
        self.count = 0

    def fire(self, event: dict[str, Any]) -> None:
        if not self.command:
            return
        env = {**os.environ, "VADKIT_EVENT": str(event.get("event"))}
        try:
            # the hook's output goes to our stderr (fd 2): stdout carries JSON lines only
            proc = subprocess.Popen(
                self.command, shell=True, stdin=subprocess.PIPE, stdout=2, env=env
            )
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write((json.dumps(event) + "\n").encode())
                proc.stdin.close()
        except OSError as e:
            self.failed += 1
            self.log(f"warning: --on-alert could not run ({e})")
            return
        self.count += 1
        self.running.append(proc)
        self.reap()

    def reap(self, timeout: float | None = None) -> None:
        still = []
        for proc in self.running:
            try:
                code = proc.wait(timeout) if timeout is not None else proc.poll()
            except subprocess.TimeoutExpired:
                code = None
            if code is None:
                still.append(proc)
            elif code != 0:
                self.failed += 1
                self.log(f"warning: --on-alert exited with status {code}")
        self.running = still


@dataclass
class _Clip:
    alert: int
    path: Path
    stack: contextlib.ExitStack
    writer: Any
    size: tuple[int, int]
    first_frame: int
    last_frame: int = 0
    frames: int = 0
    until: int | None = None  # write snippets starting before this frame, then finish


class ClipRecorder:
    """`--save-clips DIR`: each alert's frames as `DIR/LABEL-alertNNN-STAMP.mp4`, from
    `context` seconds before its start to `context` seconds after its end (at least to the
    moment it closed), written atomically (complete, or absent)."""

    def __init__(self, directory: Path, label: str, fps: float, context: float, keep: float):
        self.dir, self.label, self.fps = Path(directory), label, fps
        self.context = max(0, round(context * fps))
        self.keep = self.context + round(keep * fps) + SNIPPET_LENGTH
        self.recent: collections.deque = collections.deque()  # Snippets, newest last
        self.open: list[_Clip] = []
        self.dir.mkdir(parents=True, exist_ok=True)

    def push(self, s: Snippet) -> list[dict[str, Any]]:
        """Add a scored snippet: to the context buffer and to every clip being written."""
        self.recent.append(s)
        while sum(x.real for x in self.recent) - self.recent[0].real > self.keep:
            self.recent.popleft()
        done = []
        for clip in list(self.open):
            if clip.until is not None and s.start_frame >= clip.until:
                done.append(self._finish(clip))
            else:
                self._write(clip, s)
        return done

    def start(self, alert: Alert, wall: float) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(wall))
        path = self.dir / f"{self.label}-alert{alert.index:03d}-{stamp}.mp4"
        first = self.recent[-1].frames[0]
        h, w = first.shape[:2]
        stack = contextlib.ExitStack()
        tmp = stack.enter_context(atomic_path(path, suffix=".mp4"))
        try:
            writer = open_writer(tmp, path, self.fps, (w, h))
        except VadkitError:
            stack.close()
            raise
        clip = _Clip(alert.index, path, stack, writer, (w, h), alert.start_frame)
        for s in self.recent:
            if s.end_frame > alert.start_frame - self.context:
                self._write(clip, s)
        self.open.append(clip)

    def end(self, alert: Alert) -> list[dict[str, Any]]:
        done = []
        for clip in list(self.open):
            if clip.alert == alert.index:
                clip.until = (alert.end_frame or clip.last_frame) + self.context
                if clip.last_frame >= clip.until:
                    done.append(self._finish(clip))
        return done

    def close(self) -> list[dict[str, Any]]:
        return [self._finish(c) for c in list(self.open)]

    def _write(self, clip: _Clip, s: Snippet) -> None:
        for f in s.frames[: s.real]:
            if (f.shape[1], f.shape[0]) != clip.size:
                f = cv2.resize(f, clip.size, interpolation=cv2.INTER_AREA)
            clip.writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        clip.frames += s.real
        clip.first_frame = min(clip.first_frame, s.start_frame)
        clip.last_frame = s.end_frame

    def _finish(self, clip: _Clip) -> dict[str, Any]:
        self.open.remove(clip)
        clip.writer.release()
        clip.stack.close()  # fsync + rename onto the final name
        return {
            "event": "alert_clip",
            "index": clip.alert,
            "path": str(clip.path),
            "frames": clip.frames,
            "start_frame": clip.first_frame,
            "end_frame": clip.last_frame,
        }


# ---------------------------------------------------------------------------------- the loop


@dataclass
class WatchOptions:
    rule: AlertRule = field(default_factory=AlertRule)
    window: int | None = None
    lookahead: int = DEFAULT_LOOKAHEAD
    warmup: int = DEFAULT_WARMUP  # first snippets scored but kept out of alerts
    reader: ReaderOptions = field(default_factory=ReaderOptions)
    max_snippets: int | None = None  # stop after this many snippets (None: until the end)
    on_alert: str | None = None
    save_clips: Path | None = None
    clip_context: float = 2.0  # seconds of video before and after an alert in its clip


class Stats:
    """Counts and timings for the summary line."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.busy = 0.0  # seconds spent extracting and scoring
        self.scored = self.dropped = self.frames = self.alerts = self.clips = 0
        self.first: float | None = None
        self.last: float | None = None
        self.stalls = 0

    def snippet(self, s: Snippet, busy: float, done: float) -> float:
        latency = done - s.arrived
        self.latencies.append(latency)
        self.busy += busy
        self.scored += 1
        self.frames += s.real
        self.last = done
        return latency

    def summary(self, snippet_seconds: float) -> dict[str, Any]:
        lat = np.asarray(self.latencies or [math.nan])
        span = (self.last - self.first) if self.first is not None and self.last else 0.0

        def r(x: float, nd: int = 3) -> float | None:
            return round(float(x), nd) if math.isfinite(x) else None

        return {
            "snippets": self.scored,
            "dropped": self.dropped,
            "frames": self.frames,
            "fps": r(self.frames / span, 2) if span > 0 else None,
            "capacity_fps": r(self.scored * SNIPPET_LENGTH / self.busy, 2) if self.busy else None,
            "seconds_per_snippet": r(self.busy / self.scored) if self.scored else None,
            "snippet_seconds": r(snippet_seconds),
            "latency_p50": r(np.percentile(lat, 50)),
            "latency_p95": r(np.percentile(lat, 95)),
            "latency_max": r(lat.max()),
            "alerts": self.alerts,
            "clips": self.clips,
            "stalls": self.stalls,
        }


class Watcher:
    """One watch session: `run(emit, log)` until the stream ends, `max_snippets`, or Ctrl-C
    (KeyboardInterrupt in the caller's thread); `summary()` afterwards."""

    def __init__(self, run: Any, extractor: Any, source: SourceSpec, options: WatchOptions):
        self.run, self.extractor, self.source, self.options = run, extractor, source, options
        ex = run.meta.get("extraction") or {}
        reader_opts = dataclasses.replace(
            options.reader, resample_fps=ex.get("fps"), drop_last=ex.get("padding") == "drop-last"
        )
        self.scorer = WindowScorer(run, options.window, options.lookahead)
        self.reader = Reader(source, reader_opts)
        self.tracker = AlertTracker(options.rule)
        self.stats = Stats()
        self.ended: str | None = None
        self.failed = False  # the stream failed (a read error, reconnection given up)
        self.reconnects = 0
        self.pending: collections.deque = collections.deque()  # waiting for their lookahead
        self._stall_frame = -1  # frames_read when the last stall was reported
        self._last_warning = -math.inf
        self.emit: Callable[[dict[str, Any]], None] = lambda d: None
        self.log: Callable[[str], None] = lambda m: None
        self.hooks = Hooks(options.on_alert, self._log)
        self.clips = None
        if options.save_clips is not None:
            fps = reader_opts.resample_fps or self.reader.fps
            keep = options.clip_context + options.rule.min_duration
            self.clips = ClipRecorder(
                options.save_clips, source.label, fps, options.clip_context, keep
            )

    def _log(self, message: str) -> None:
        self.log(message)

    def start_line(self) -> dict[str, Any]:
        r = self.reader
        return {
            "event": "start",
            "source": str(self.source.target),
            "kind": self.source.kind,
            "fps": r.fps,
            "fps_reported": r.fps_reported,
            "fps_used": r.options.resample_fps or r.fps,
            "size": f"{r.width}x{r.height}",
            "model": self.run.label,
            "checkpoint": str(self.run.path),
            "window": self.scorer.window,
            "lookahead": self.scorer.lookahead,
            "live": r.live,
            "max_lag_snippets": r.mailbox.capacity,
            "threshold": self.options.rule.threshold,
        }

    def run_loop(self, emit: Callable[[dict], None], log: Callable[[str], None]) -> None:
        """Emit the start line, then one line per snippet and event until the end."""
        self.emit, self.log = emit, log
        emit(self.start_line())
        if not self.reader.fps_reported:
            log(f"warning: the source reports no frame rate; timing frames at {FALLBACK_FPS} fps "
                "(pass --fps)")  # fmt: skip
        self.stats.first = time.perf_counter()
        self.reader.start()
        timeout = self.options.reader.timeout
        while self.ended is None:
            item = self.reader.mailbox.get(timeout)
            if item is None:
                self._stalled(timeout)
            elif isinstance(item, Note):
                self._note(item)
            elif isinstance(item, Dropped) or self._late(item):
                self._dropped(item)
            else:
                self._snippet(item)
                limit = self.options.max_snippets
                if limit is not None and self.scorer.pushed >= limit:
                    self.ended = f"stopped after {limit} snippets (--max-snippets)"

    def _late(self, s: Snippet) -> bool:
        """A live snippet that waited longer than --max-lag while a newer one waits: skip it,
        so the lag stays within max-lag plus the time to score one snippet."""
        age = time.perf_counter() - s.arrived
        return (
            self.reader.live
            and age > self.options.reader.max_lag
            and self.reader.mailbox.waiting > 0
        )

    def _stalled(self, timeout: float) -> None:
        """Nothing to score for `timeout` s: a stall if no frame came either (reported once
        per stall; a slow --realtime file that still delivers frames is no stall)."""
        quiet = time.perf_counter() - self.reader.last_frame
        if quiet < timeout or self._stall_frame == self.reader.frames_read:
            return
        self._stall_frame = self.reader.frames_read
        self.stats.stalls += 1
        msg = f"no frame for {quiet:.0f} s: the stream is stalled"
        self.log(f"warning: {msg}")
        self.emit({"event": "stall", "message": msg, "frame": self.reader.frames_read})

    def _note(self, note: Note) -> None:
        self.emit({"event": note.kind, "message": note.message, **note.fields})
        if note.kind in ("end", "error"):
            self.ended = note.message
            self.failed = note.kind == "error" or note.fields.get("reason") == "gave up"
        elif note.kind == "reconnect":
            self.reconnects += 1
            self.log(note.message)
        else:
            self.log(note.message)

    def _dropped(self, d: Dropped | Snippet) -> None:
        self.stats.dropped += 1
        d = Dropped(d.index, d.start_frame, d.end_frame)
        if self.pending:  # after the snippets still waiting for their lookahead
            self.pending.append(d)
        else:
            self._emit_dropped(d)
        self._warn_slow()

    def _emit_dropped(self, d: Dropped) -> None:
        fps = self.reader.fps
        self.emit({"event": "snippet", "snippet": d.index, "frame": d.start_frame,
                   "end_frame": d.end_frame, "time": round(d.start_frame / fps, 3),
                   "end_time": round(d.end_frame / fps, 3), "score": None,
                   "alert": self.tracker.active is not None, "dropped": True})  # fmt: skip

    def _warn_slow(self) -> None:
        now = time.perf_counter()
        if now - self._last_warning >= 10:
            self._last_warning = now
            per = self.stats.busy / max(self.stats.scored, 1)
            self.log(
                f"warning: cannot keep up: a snippet takes {per:.2f} s to score and the stream "
                f"brings one every {self.reader.snippet_seconds:.2f} s; dropped "
                f"{self.stats.dropped} snippet(s) so far to keep the lag within "
                f"{self.options.reader.max_lag:g} s (--max-lag)"
            )

    def _snippet(self, s: Snippet) -> None:
        t0 = time.perf_counter()
        clip, patches = self.extractor.snippet_features(s.frames)
        score = self.scorer.push(clip, patches)
        self.pending.append(s)
        if score is not None:
            self._release([score], t0)

    def _release(self, scores: list[float], t0: float) -> None:
        """Emit the oldest pending snippets with `scores` (dropped ones in between, in order)."""
        busy = time.perf_counter() - t0
        for score in scores:
            while self.pending and isinstance(self.pending[0], Dropped):
                self._emit_dropped(self.pending.popleft())
            if not self.pending:  # interrupted between scoring and queueing
                break
            self._scored(self.pending.popleft(), score, busy)
            busy = 0.0
        while self.pending and isinstance(self.pending[0], Dropped):
            self._emit_dropped(self.pending.popleft())

    def _scored(self, s: Snippet, score: float, busy: float) -> None:
        done = time.perf_counter()
        latency = self.stats.snippet(s, busy, done)
        fps = self.reader.fps
        start, end = s.start_frame / fps, s.end_frame / fps
        # the first snippets' windows are mostly the CTR's zero padding: shown, never alerting
        warm = self.stats.scored <= self.options.warmup
        events = [] if warm else self.tracker.update(start, end, score, s.start_frame, s.end_frame)
        line = {"event": "snippet", "snippet": s.index, "frame": s.start_frame,
                "end_frame": s.end_frame, "time": round(start, 3), "end_time": round(end, 3),
                "score": round(score, 6), "alert": self.tracker.active is not None,
                "latency": round(latency, 4), "window": len(self.scorer.clips),
                "wall": round(s.wall, 3)}  # fmt: skip
        if s.real < SNIPPET_LENGTH:
            line["padded"] = SNIPPET_LENGTH - s.real
        if warm:
            line["warmup"] = True
        self.emit(line)
        clip_lines = self.clips.push(s) if self.clips else []
        for ev in events:
            clip_lines += self._alert(ev, s.wall)
        for d in clip_lines:
            self._clip_done(d)
        self.hooks.reap()

    def _alert(self, ev: AlertEvent, wall: float) -> list[dict[str, Any]]:
        d = ev.as_dict()
        self.emit(d)
        self.hooks.fire(d)
        if ev.kind == "start":
            self.stats.alerts += 1
            self.log(f"alert {ev.alert.index} at {ev.alert.start_time:.2f} s "
                     f"(peak {ev.alert.peak:.3f})")  # fmt: skip
            if self.clips:
                self.clips.start(ev.alert, wall)
            return []
        return self.clips.end(ev.alert) if self.clips else []

    def _clip_done(self, d: dict[str, Any]) -> None:
        self.stats.clips += 1
        self.emit(d)
        self.hooks.fire(d)

    def finish(self, reason: str | None = None) -> dict[str, Any]:
        """Stop the reader, close an open alert and its clip, wait for hooks; the summary."""
        self.reader.stop()
        self.ended = reason or self.ended or "stopped"
        t0 = time.perf_counter()
        self._release(self.scorer.flush(), t0)
        done: list[dict[str, Any]] = []
        for ev in self.tracker.close():
            done += self._alert(ev, time.time())
        for d in done + (self.clips.close() if self.clips else []):
            self._clip_done(d)
        self.hooks.reap(timeout=10)
        summary = {
            "event": "summary",
            "ended": self.ended,
            "failed": self.failed,
            **self.stats.summary(self.reader.snippet_seconds),
            "frames_read": self.reader.frames_read,
            "reconnects": self.reconnects,
            "hooks": self.hooks.count,
            "hooks_failed": self.hooks.failed,
        }
        self.emit(summary)
        return summary


__all__ = [
    "ClipRecorder",
    "Hooks",
    "Mailbox",
    "Reader",
    "ReaderOptions",
    "SourceSpec",
    "WatchOptions",
    "Watcher",
    "WindowScorer",
    "default_window",
    "load_extractor",
    "open_capture",
    "parse_source",
    "window_scores",
]
