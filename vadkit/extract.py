"""`vadkit extract`: videos in, RTFM-compatible I3D feature files out (SPEC §2).

Per video: decode (a background thread, bounded queue) -> 16-frame snippets -> clip crops and
MSIP patches -> backbone, batched by input size -> `VID.npy`, `VID_patch*.npy`, `VID.json`
written atomically. A video whose outputs are complete is skipped (resume after a crash);
a bad video is reported and the others still run.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from vadkit.devices import resolve_device
from vadkit.errors import VadkitError
from vadkit.features import BACKBONES, LoadedBackbone, load_backbone
from vadkit.io.atomic import TMP_PREFIX
from vadkit.io.features import (
    PATCH_FRAME_SIZE,
    PATCH_GRIDS,
    SNIPPET_LENGTH,
    FeatureMeta,
    clip_path,
    is_complete,
    meta_path,
    patch_path,
    read_meta,
    write_features,
)
from vadkit.video import (
    FrameReader,
    clip_crops,
    find_videos,
    frame_patches,
    iter_snippets,
    patch_layout,
    probe,
    resample,
    snippet_count,
)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass
class ExtractOptions:
    backbone: str = "i3d-inception"
    weights: str | None = None  # None: fetch the default weights (Inception-I3D)
    random_weights: bool = False
    crops: int = 10
    short_side: int = 256
    crop_size: int = 224
    patches: bool = True
    patch_frame: tuple[int, int] = PATCH_FRAME_SIZE  # (h, w) the frame is resized to for patches
    fps: float | None = None  # None: native frame rate
    drop_last: bool = False
    dtype: str = "float32"
    batch_size: int = 16  # network inputs per forward pass
    device: str = "auto"
    force: bool = False
    threads: int | None = None  # torch intra-op threads; None: torch's default
    prefetch: int = 2  # snippets decoded ahead of the network

    def validate(self) -> None:
        if self.backbone not in BACKBONES:
            raise VadkitError(
                f"unknown backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}"
            )
        if self.crops not in (1, 5, 10):
            raise VadkitError(f"crops must be 10, 5 or 1, got {self.crops}")
        if not 32 <= self.crop_size <= self.short_side:
            raise VadkitError(
                f"crop size {self.crop_size} must be at least 32 and at most the short side "
                f"{self.short_side}"
            )
        if self.patches:
            patch_layout(tuple(self.patch_frame))
        if self.fps is not None and not (self.fps > 0 and math.isfinite(self.fps)):
            raise VadkitError(f"fps must be positive, got {self.fps}")
        if self.dtype not in DTYPES:
            raise VadkitError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.batch_size < 1:
            raise VadkitError(f"batch size must be at least 1, got {self.batch_size}")
        if self.weights and self.random_weights:
            raise VadkitError("--weights and --random-weights exclude each other; pick one")


@dataclass
class VideoResult:
    video: str
    path: str
    status: str  # "done" | "skipped" | "failed"
    snippets: int = 0
    seconds: float = 0.0
    error: str | None = None


@dataclass
class Summary:
    results: list[VideoResult] = field(default_factory=list)
    shard: str | None = None
    out_dir: str = ""

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def failed(self) -> list[VideoResult]:
        return [r for r in self.results if r.status == "failed"]

    def to_json(self) -> dict[str, Any]:
        snippets = sum(r.snippets for r in self.results if r.status == "done")
        seconds = sum(r.seconds for r in self.results if r.status == "done")
        return {
            "out_dir": self.out_dir,
            "shard": self.shard,
            "videos": len(self.results),
            "done": self.count("done"),
            "skipped": self.count("skipped"),
            "failed": self.count("failed"),
            "snippets": snippets,
            "seconds": round(seconds, 3),
            "snippets_per_second": round(snippets / seconds, 3) if seconds > 0 else None,
            "results": [asdict(r) for r in self.results],
        }


class Progress:
    """Callbacks `extract_videos` reports to (the CLI draws them with rich); no-ops here."""

    def start(self, videos: int, snippets_estimate: int) -> None: ...

    def video_started(self, video: str, snippets_estimate: int) -> None: ...

    def snippets_done(self, n: int) -> None: ...

    def video_done(self, result: VideoResult) -> None: ...


# --------------------------------------------------------------------------------------------
# Sharding


def parse_shard(text: str) -> tuple[int, int]:
    """'i/N' -> (i, N) with 0 <= i < N."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise VadkitError(f"shard {text!r} is not of the form i/N (e.g. 0/4)") from None
    if n < 1 or not 0 <= i < n:
        raise VadkitError(f"shard {text!r}: need 0 <= i < N")
    return i, n


def env_shard() -> tuple[int, int] | None:
    """(RANK, WORLD_SIZE) from torchrun's environment when it describes several workers."""
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    except (KeyError, ValueError):
        return None
    return (rank, world) if world > 1 and 0 <= rank < world else None


def shard_videos(paths: Sequence[Path], index: int, count: int) -> list[Path]:
    """Deterministic, disjoint split balanced by file size.

    Largest file first (ties: path order) onto the shard with the least bytes so far (ties: lowest
    shard); each shard's list is returned in path order. Every worker computes the same split.
    """
    ordered = sorted(paths, key=str)

    def size(p: Path) -> int:
        try:
            return p.stat().st_size
        except OSError:
            return 0

    sizes = {p: size(p) for p in ordered}
    loads = [0] * count
    owner: dict[Path, int] = {}
    for p in sorted(ordered, key=lambda q: (-sizes[q], str(q))):
        k = min(range(count), key=lambda j: (loads[j], j))
        owner[p] = k
        loads[k] += sizes[p]
    return [p for p in ordered if owner[p] == index]


# --------------------------------------------------------------------------------------------
# The extractor


@dataclass
class _Item:
    crops: np.ndarray  # (n, T, c, c, 3) uint8
    patches: dict[str, np.ndarray] | None  # grid -> (p, T, ph, pw, 3) uint8


class _End:
    def __init__(self, frames_used: int):
        self.frames_used = frames_used


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


class _Rows:
    """A float32 array grown along its first axis, preallocated from the container's frame
    count, so that a video's features are held once (no list of rows plus a stacked copy)."""

    def __init__(self, capacity: int, row_shape: tuple[int, ...]):
        self.data = np.empty((max(capacity, 1), *row_shape), np.float32)
        self.count = 0

    def extend(self, rows: np.ndarray) -> None:
        need = self.count + len(rows)
        if need > len(self.data):
            grown = np.empty((max(need, len(self.data) * 3 // 2), *self.data.shape[1:]), "f4")
            grown[: self.count] = self.data[: self.count]
            self.data = grown
        self.data[self.count : need] = rows
        self.count = need

    def array(self) -> np.ndarray:
        return self.data[: self.count]


class Extractor:
    """A loaded backbone and the options it runs with; `extract(path)` does one video."""

    def __init__(self, options: ExtractOptions, backbone: LoadedBackbone):
        self.options = options
        self.backbone = backbone
        self.device = resolve_device(options.device)
        self.model = backbone.model.to(self.device)
        self.layouts = patch_layout(tuple(options.patch_frame)) if options.patches else {}
        self.scale = backbone.spec.pixel_scale
        self.offset = backbone.spec.pixel_offset
        # Deep in the network small maps can reach subnormal floats, which x86 CPUs compute
        # ~100x slower; flushing them to zero changes features by < 1e-37.
        torch.set_flush_denormal(True)

    # -- network -------------------------------------------------------------------------------
    def features(self, clips: np.ndarray) -> np.ndarray:
        """(b, T, h, w, 3) uint8 -> (b, d) float32, in chunks of `batch_size` inputs."""
        out = []
        bs = self.options.batch_size
        for i in range(0, len(clips), bs):
            out.append(self._forward(clips[i : i + bs]))
        return np.concatenate(out) if out else np.zeros((0, self.backbone.feature_dim), "f4")

    def _forward(self, clips: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(clips)).to(self.device)
        # (b, T, h, w, 3) -> (b, 3, T, h, w): a view that is exactly channels-last-3d
        x = x.float().mul_(self.scale).add_(self.offset).permute(0, 4, 1, 2, 3)
        x = x.contiguous(memory_format=torch.channels_last_3d)
        bf16 = self.options.dtype == "bfloat16"
        with (
            torch.inference_mode(),
            torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16),
        ):
            y = self.model(x)
        return y.float().cpu().numpy()

    # -- one video -------------------------------------------------------------------------------
    def extract(
        self, path: str | os.PathLike, *, on_snippets: Callable[[int], None] | None = None
    ) -> tuple[FeatureMeta, np.ndarray, dict[str, np.ndarray] | None]:
        opts = self.options
        reader = FrameReader(path)
        info = reader.info
        fps_used = opts.fps or info.fps
        q: queue.Queue = queue.Queue(maxsize=max(1, opts.prefetch))
        stop = threading.Event()
        worker = threading.Thread(
            target=self._produce, args=(reader, q, stop), name="vadkit-decode", daemon=True
        )
        worker.start()
        hint = reader.info.frame_count_hint
        if opts.fps:
            hint = int(hint * opts.fps / info.fps)
        cap = snippet_count(hint, drop_last=opts.drop_last) + 1
        d = self.backbone.feature_dim
        clips = _Rows(cap, (opts.crops, d))
        patches = {g: _Rows(cap, (r * c, d)) for g, (r, c, _, _) in self.layouts.items()}
        # a fixed number of snippets per batch keeps the batching, hence the rounding of the
        # results, identical from run to run (resumed runs write byte-identical files)
        per_batch = max(1, opts.batch_size // opts.crops)
        frames_used = None
        try:
            pending: list[_Item] = []
            while frames_used is None:
                msg = q.get()
                if isinstance(msg, _Failure):
                    raise msg.error
                if isinstance(msg, _End):
                    frames_used = msg.frames_used
                else:
                    pending.append(msg)
                if pending and (len(pending) == per_batch or frames_used is not None):
                    self._run_batch(pending, clips, patches)
                    if on_snippets:
                        on_snippets(len(pending))
                    pending = []
        finally:
            stop.set()
            with contextlib.suppress(queue.Empty):
                while True:
                    q.get_nowait()
            worker.join(timeout=10)
        t = clips.count
        if t == 0:
            raise VadkitError(
                f"{path}: {frames_used} frames give no complete {SNIPPET_LENGTH}-frame snippet "
                "with --drop-last; drop that flag to loop-pad short videos"
            )
        meta = FeatureMeta(
            video=Path(path).stem,
            backbone=self.backbone.spec.name,
            feature_dim=self.backbone.feature_dim,
            crops=opts.crops,
            snippets=t,
            frame_count=reader.count,
            fps_native=info.fps,
            fps_used=float(fps_used),
            frames_used=frames_used,
            snippet_length=SNIPPET_LENGTH,
            padding="drop-last" if opts.drop_last else "loop",
            patch_grids={g: list(v) for g, v in self.layouts.items()} or None,
            patch_frame_size=list(opts.patch_frame) if opts.patches else None,
            short_side=opts.short_side,
            crop_size=opts.crop_size,
            pixel_scaling=self.backbone.spec.pixel_scaling,
            weights_sha256=self.backbone.weights_sha256,
            weights_source=self.backbone.weights_source,
            compute_dtype=opts.dtype,
            dtype="float32",
            source=str(path),
            source_size=Path(path).stat().st_size,
            extra={
                "frame_size": [info.height, info.width],
                "random_weights": self.backbone.weights_sha256 is None,
                "resize": "bilinear (OpenCV INTER_LINEAR)",
                "crop_order": "torchvision TenCrop: tl, tr, bl, br, centre, then the same "
                "boxes of the horizontally flipped frame",
                "fps_resampling": "nearest earlier frame" if opts.fps else None,
            },
        )
        clip = clips.array()  # (t, n, d)
        patch_arrays = {g: v.array() for g, v in patches.items()} or None
        return meta, clip, patch_arrays

    def _produce(self, reader: FrameReader, q: queue.Queue, stop: threading.Event) -> None:
        opts = self.options

        def put(msg) -> bool:
            while not stop.is_set():
                try:
                    q.put(msg, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            counted = [0]
            frames: Iterator[np.ndarray] = iter(reader)
            if opts.fps:
                frames = resample(frames, reader.info.fps, opts.fps)

            def counting(it):
                for f in it:
                    counted[0] += 1
                    yield f

            for snippet in iter_snippets(counting(frames), drop_last=opts.drop_last):
                item = _Item(
                    clip_crops(
                        snippet,
                        short_side=opts.short_side,
                        crop_size=opts.crop_size,
                        crops=opts.crops,
                    ),
                    frame_patches(snippet, self.layouts, tuple(opts.patch_frame))
                    if self.layouts
                    else None,
                )
                if not put(item):
                    return
            reader.check()
            put(_End(counted[0]))
        except Exception as e:  # any decode failure must reach the consumer, never hang it
            if not isinstance(e, VadkitError):
                e = VadkitError(f"{reader.info.path}: decoding failed ({type(e).__name__}: {e})")
            put(_Failure(e))

    def _run_batch(self, items: list[_Item], clips: _Rows, patches: dict[str, _Rows]) -> None:
        k, n = len(items), self.options.crops
        x = np.concatenate([it.crops for it in items])  # (k·n, T, c, c, 3)
        clips.extend(self.features(x).reshape(k, n, -1))  # (k, n, d)
        for grid in patches:
            x = np.concatenate([it.patches[grid] for it in items])  # (k·p, T, ph, pw, 3)
            patches[grid].extend(self.features(x).reshape(k, -1, self.backbone.feature_dim))


# --------------------------------------------------------------------------------------------
# Many videos


def _settings_mismatch(meta: FeatureMeta, opts: ExtractOptions) -> str | None:
    want = {
        "backbone": opts.backbone,
        "crops": opts.crops,
        "crop_size": opts.crop_size,
        "short_side": opts.short_side,
        "padding": "drop-last" if opts.drop_last else "loop",
    }
    for key, value in want.items():
        if getattr(meta, key) != value:
            return f"{key} {getattr(meta, key)!r} (asked for {value!r})"
    if opts.fps and not math.isclose(meta.fps_used, opts.fps, rel_tol=1e-6):
        return f"fps_used {meta.fps_used} (asked for {opts.fps})"
    if opts.patches and meta.patch_frame_size != list(opts.patch_frame):
        return f"patch_frame_size {meta.patch_frame_size} (asked for {list(opts.patch_frame)})"
    return None


def plan_videos(
    inputs: Iterable[str | os.PathLike], *, shard: tuple[int, int] | None = None
) -> list[Path]:
    videos = sorted(find_videos(inputs), key=str)
    stems: dict[str, Path] = {}
    for p in videos:
        if p.stem in stems:
            raise VadkitError(
                f"two videos would write the same feature files {p.stem}.npy: {stems[p.stem]} and "
                f"{p}; rename one or extract them into different directories"
            )
        stems[p.stem] = p
    if shard is not None:
        videos = shard_videos(videos, *shard)
    return videos


def extract_videos(
    inputs: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    options: ExtractOptions | None = None,
    *,
    shard: tuple[int, int] | None = None,
    progress: Progress | None = None,
    backbone: LoadedBackbone | None = None,
) -> Summary:
    """Extract features of every input video into `out_dir`; never raises for one bad video.

    Raises VadkitError only for problems of the whole run (bad options, no weights, no videos).
    """
    opts = options or ExtractOptions()
    opts.validate()
    progress = progress or Progress()
    out = Path(out_dir)
    videos = plan_videos(inputs, shard=shard)
    summary = Summary(shard=f"{shard[0]}/{shard[1]}" if shard else None, out_dir=str(out))
    out.mkdir(parents=True, exist_ok=True)
    _clean_stale_tmp(out, [p.stem for p in videos])

    todo: list[tuple[Path, int]] = []
    for p in videos:
        meta = None
        with contextlib.suppress(VadkitError):
            meta = read_meta(out, p.stem)
        if not opts.force and meta is not None and is_complete(out, p.stem, patches=opts.patches):
            mismatch = _settings_mismatch(meta, opts)
            if mismatch is None:
                summary.results.append(VideoResult(p.stem, str(p), "skipped", meta.snippets))
                continue
            summary.results.append(
                VideoResult(
                    p.stem,
                    str(p),
                    "failed",
                    error=f"{out / p.stem}.json exists with {mismatch}; pass --force to "
                    "overwrite it or extract into another directory",
                )
            )
            continue
        todo.append((p, _estimate_snippets(p, opts)))
    progress.start(len(videos), sum(n for _, n in todo))
    for r in summary.results:
        progress.video_done(r)
    if not todo:
        return summary

    if opts.threads:
        torch.set_num_threads(opts.threads)
    cv2.setNumThreads(1)  # decoding/resizing runs beside the network; leave the cores to torch
    if backbone is None:
        backbone = load_backbone(
            opts.backbone, weights=opts.weights, random_weights=opts.random_weights
        )
    extractor = Extractor(opts, backbone)
    for p, estimate in todo:
        progress.video_started(p.stem, estimate)
        t0 = time.perf_counter()
        try:
            meta, clip, patches = extractor.extract(p, on_snippets=progress.snippets_done)
            # overwriting (--force): drop the old completion marker first, so that a crash
            # between the array writes never leaves new arrays under an old description
            meta_path(out, meta.video).unlink(missing_ok=True)
            write_features(out, meta, clip, patches)
            result = VideoResult(p.stem, str(p), "done", meta.snippets, time.perf_counter() - t0)
        except (VadkitError, RuntimeError) as e:  # RuntimeError: torch (e.g. out of memory)
            result = VideoResult(p.stem, str(p), "failed", 0, time.perf_counter() - t0, str(e))
        summary.results.append(result)
        progress.video_done(result)
    summary.results.sort(key=lambda r: r.path)
    return summary


def _clean_stale_tmp(out: Path, videos: Sequence[str]) -> int:
    """Remove the `.tmp-*` leftovers of killed writers of these videos' files only: ranks of a
    sharded run share `out`, and one rank must never delete another rank's in-flight temporary
    file (its rename would then fail). Temporary names are `.tmp-<final name>.<random>`."""
    mine = set()
    for v in videos:
        mine |= {clip_path(out, v).name, meta_path(out, v).name}
        mine |= {patch_path(out, v, g).name for g in PATCH_GRIDS}
    n = 0
    for p in out.glob(TMP_PREFIX + "*"):
        final = p.name[len(TMP_PREFIX) :].rpartition(".")[0]
        if final in mine:
            with contextlib.suppress(OSError):
                p.unlink()
                n += 1
    return n


def _estimate_snippets(path: Path, opts: ExtractOptions) -> int:
    try:
        info = probe(path)
    except VadkitError:
        return 0
    frames = info.frame_count_hint
    if opts.fps:
        frames = int(frames * opts.fps / info.fps)
    return snippet_count(frames, drop_last=opts.drop_last)


def gather_summary(summary: Summary) -> Summary | None:
    """Under an initialised torch.distributed group: rank 0 gets every rank's results merged,
    the other ranks get None. Without a group: the summary itself."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return summary
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, summary.to_json())
    if dist.get_rank() != 0:
        return None
    merged = Summary(shard=f"all {len(parts)} ranks", out_dir=summary.out_dir)
    for part in parts:
        merged.results += [VideoResult(**r) for r in part["results"]]
    merged.results.sort(key=lambda r: r.path)
    return merged


__all__ = [
    "ExtractOptions",
    "Extractor",
    "Progress",
    "Summary",
    "VideoResult",
    "env_shard",
    "extract_videos",
    "gather_summary",
    "parse_shard",
    "plan_videos",
    "shard_videos",
]
