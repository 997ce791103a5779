"""The network side of `vadkit extract`: one video's frames in, its feature arrays out.

A background thread decodes the video and cuts snippets into clip crops and MSIP patches
(bounded queue, so memory holds a few snippets whatever the video's length); this thread runs
the backbone on fixed-size batches and collects the rows.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import os
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vadkit.devices import resolve_device
from vadkit.errors import VadkitError
from vadkit.extract import PATCH_MODES, ExtractOptions
from vadkit.features import LoadedBackbone, load_backbone
from vadkit.io.features import SNIPPET_LENGTH, FeatureMeta
from vadkit.opencv import cv2
from vadkit.video import (
    FrameReader,
    clip_crops,
    frame_patches,
    iter_snippets,
    patch_layout,
    resample,
    resize_frames,
    snippet_count,
)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})  # /proc/cpuinfo: native bf16 dot products


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def bf16_is_native(device: torch.device) -> bool:
    """Whether `device` computes bfloat16 convolutions natively (so faster than float32).

    A CPU without AMX or AVX512-BF16 emulates bf16 through float32: on an AVX-512 Ice Lake
    Xeon (2 cores) bf16 Inception-I3D ran at 0.27x float32's rate on 224-px crops, 0.69x on
    MSIP's small patches."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(cpu_flags() & BF16_CPU_FLAGS)
    return False


def resolve_dtype(name: str, device: torch.device) -> str:
    """--dtype auto|float32|bfloat16 -> the compute dtype used on `device`."""
    if name != "auto":
        return name
    return "bfloat16" if bf16_is_native(device) else "float32"


@dataclass
class _Item:
    crops: np.ndarray  # (n, T, c, c, 3) uint8
    patches: dict[str, np.ndarray] | None  # grid -> (p, T, ph, pw, 3) uint8
    frame: np.ndarray | None = None  # (T, fh, fw, 3) uint8 patch frame (roi patch mode)


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


class _Decoder:
    """The decode thread's side: frames -> snippets -> clip crops and patches, into a queue."""

    def __init__(self, options: ExtractOptions, layouts: dict[str, tuple[int, int, int, int]]):
        self.options = options
        self.layouts = layouts

    def items(self, reader: FrameReader, counted: list[int]) -> Iterator[_Item]:
        """The video's snippets as network inputs; `counted[0]` counts the frames used."""
        opts = self.options
        frames: Iterator[np.ndarray] = iter(reader)
        if opts.fps:
            frames = resample(frames, reader.info.fps, opts.fps)

        def counting(it):
            for f in it:
                counted[0] += 1
                yield f

        for snippet in iter_snippets(counting(frames), drop_last=opts.drop_last):
            yield self.item(snippet)

    def item(self, snippet: np.ndarray) -> _Item:
        """One snippet `(T, h, w, 3)` uint8 RGB as network inputs: clip crops, and patches
        (exact mode) or the resized patch frame (roi modes)."""
        opts = self.options
        crops = clip_crops(
            snippet, short_side=opts.short_side, crop_size=opts.crop_size, crops=opts.crops
        )
        if not self.layouts:
            return _Item(crops, None)
        if opts.patch_mode == "exact":
            return _Item(crops, frame_patches(snippet, self.layouts, tuple(opts.patch_frame)))
        return _Item(crops, None, resize_frames(snippet, tuple(opts.patch_frame)))

    def produce(self, reader: FrameReader, q: queue.Queue, stop: threading.Event) -> None:
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
            for item in self.items(reader, counted):
                if not put(item):
                    return
            reader.check()
            put(_End(counted[0]))
        except Exception as e:  # any decode failure must reach the consumer, never hang it
            if not isinstance(e, VadkitError):
                e = VadkitError(f"{reader.info.path}: decoding failed ({type(e).__name__}: {e})")
            put(_Failure(e))


class Extractor:
    """A loaded backbone and the options it runs with; `extract(path)` does one video."""

    def __init__(self, options: ExtractOptions, backbone: LoadedBackbone):
        self.device = resolve_device(options.device)
        # the options with the dtype actually used (what the metadata records)
        self.options = dataclasses.replace(options, dtype=resolve_dtype(options.dtype, self.device))
        self.backbone = backbone
        self.dtype = DTYPES[self.options.dtype]
        if self.dtype == torch.float32:
            self.model = backbone.model.to(self.device)
        else:  # weights and activations in bf16 (BatchNorm folded first, by load_backbone)
            self.model = copy.deepcopy(backbone.model).to(self.device, self.dtype)
        self.layouts = patch_layout(tuple(options.patch_frame)) if options.patches else {}
        self.scale = backbone.spec.pixel_scale
        self.offset = backbone.spec.pixel_offset
        # Deep in the network small maps can reach subnormal floats, which x86 CPUs compute
        # ~100x slower; flushing them to zero changes features by < 1e-37.
        torch.set_flush_denormal(True)

    @classmethod
    def load(cls, options: ExtractOptions, backbone: LoadedBackbone | None = None) -> Extractor:
        """Set the thread counts and load the backbone `options` name (unless given)."""
        if options.threads:
            torch.set_num_threads(options.threads)
        cv2.setNumThreads(1)  # decoding/resizing runs beside the network; leave the cores to torch
        if backbone is None:
            backbone = load_backbone(
                options.backbone, weights=options.weights, random_weights=options.random_weights
            )
        return cls(options, backbone)

    # -- network -------------------------------------------------------------------------------
    def features(self, clips: np.ndarray) -> np.ndarray:
        """(b, T, h, w, 3) uint8 -> (b, d) float32, in chunks of `batch_size` inputs."""
        out = []
        bs = self.options.batch_size
        for i in range(0, len(clips), bs):
            out.append(self._forward(clips[i : i + bs]))
        return np.concatenate(out) if out else np.zeros((0, self.backbone.feature_dim), "f4")

    def _input(self, clips: np.ndarray) -> torch.Tensor:
        """(b, T, h, w, 3) uint8 -> the network's (b, 3, T, h, w) channels-last-3d input."""
        x = torch.from_numpy(np.ascontiguousarray(clips)).to(self.device)
        # (b, T, h, w, 3) -> (b, 3, T, h, w): a view that is exactly channels-last-3d
        x = x.float().mul_(self.scale).add_(self.offset).to(self.dtype).permute(0, 4, 1, 2, 3)
        return x.contiguous(memory_format=torch.channels_last_3d)

    def _forward(self, clips: np.ndarray) -> np.ndarray:
        x = self._input(clips)
        with torch.inference_mode():
            if hasattr(self.model, "mixed_5c"):  # pool in float32 whatever the compute dtype
                y = self.model.mixed_5c(x).float().mean(dim=(2, 3, 4))
            else:
                y = self.model(x)
        return y.float().cpu().numpy()

    def roi_features(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """(k, T, fh, fw, 3) uint8 patch frames -> {grid: (k, patches, d) float32}: one
        network pass per frame clip, each patch pooled from the frame's map
        (`vadkit.features.roi`)."""
        from vadkit.features.roi import pool_regions, trunk

        split = PATCH_MODES[self.options.patch_mode] or "Mixed_5c"
        out: dict[str, list[np.ndarray]] = {g: [] for g in self.layouts}
        # one 480x840 frame clip is about 8 crops of 224² in pixels
        step = max(1, self.options.batch_size // 8)
        with torch.inference_mode():
            for i in range(0, len(frames), step):
                fmap = trunk(self.model, self._input(frames[i : i + step]), split)
                for g, v in pool_regions(self.model, fmap, self.layouts, split).items():
                    out[g].append(v.float().cpu().numpy())
        return {g: np.concatenate(v) for g, v in out.items()}

    # -- one snippet (live streams) ----------------------------------------------------------------
    def snippet_features(
        self, snippet: np.ndarray
    ) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
        """Features of one in-memory snippet `(T, h, w, 3)` uint8 RGB: clip `(crops, d)` and
        `{grid: (patches, d)}` (None without patches), computed as `extract` computes each
        snippet of a file (the same crops, patches and network; only the batching differs,
        which changes float rounding only)."""
        if snippet.ndim != 4 or snippet.shape[0] != SNIPPET_LENGTH or snippet.shape[3] != 3:
            raise VadkitError(
                f"a snippet is ({SNIPPET_LENGTH}, h, w, 3) uint8 RGB, got {snippet.shape}"
            )
        d = self.backbone.feature_dim
        clips = _Rows(1, (self.options.crops, d))
        patches = {g: _Rows(1, (r * c, d)) for g, (r, c, _, _) in self.layouts.items()}
        self._run_batch([_Decoder(self.options, self.layouts).item(snippet)], clips, patches)
        return clips.array()[0], ({g: v.array()[0] for g, v in patches.items()} or None)

    # -- one video -------------------------------------------------------------------------------
    def extract(
        self, path: str | os.PathLike, *, on_snippets: Callable[[int], None] | None = None
    ) -> tuple[FeatureMeta, np.ndarray, dict[str, np.ndarray] | None]:
        opts = self.options
        reader = FrameReader(path)
        hint = reader.info.frame_count_hint
        if opts.fps:
            hint = int(hint * opts.fps / reader.info.fps)
        cap = snippet_count(hint, drop_last=opts.drop_last) + 1
        d = self.backbone.feature_dim
        clips = _Rows(cap, (opts.crops, d))
        patches = {g: _Rows(cap, (r * c, d)) for g, (r, c, _, _) in self.layouts.items()}
        frames_used = self._consume(reader, clips, patches, on_snippets)
        if clips.count == 0:
            raise VadkitError(
                f"{path}: {frames_used} frames give no complete {SNIPPET_LENGTH}-frame snippet "
                "with --drop-last; drop that flag to loop-pad short videos"
            )
        meta = self._meta(Path(path), reader, frames_used, clips.count)
        patch_arrays = {g: v.array() for g, v in patches.items()} or None
        return meta, clips.array(), patch_arrays

    def _meta(self, path: Path, reader: FrameReader, frames_used: int, t: int) -> FeatureMeta:
        opts, info, spec = self.options, reader.info, self.backbone.spec
        record = opts.record(self.backbone)
        shared = {k: record[k] for k in record if k in FeatureMeta.__dataclass_fields__}
        return FeatureMeta(
            **shared,
            video=path.stem,
            feature_dim=self.backbone.feature_dim,
            snippets=t,
            frame_count=reader.count,
            fps_native=info.fps,
            fps_used=float(opts.fps or info.fps),
            frames_used=frames_used,
            snippet_length=SNIPPET_LENGTH,
            patch_grids={g: list(v) for g, v in self.layouts.items()} or None,
            pixel_scaling=spec.pixel_scaling,
            dtype="float32",
            source=str(path),
            source_size=path.stat().st_size,
            extra={
                "frame_size": [info.height, info.width],
                "random_weights": self.backbone.weights_sha256 is None,
                "resize": "bilinear (OpenCV INTER_LINEAR)",
                "crop_order": "torchvision TenCrop: tl, tr, bl, br, centre, then the same "
                "boxes of the horizontally flipped frame",
                "fps_resampling": "nearest earlier frame" if opts.fps else None,
                "patch_mode": opts.patch_mode if self.layouts else None,
            },
        )

    def _consume(self, reader: FrameReader, clips: _Rows, patches: dict[str, _Rows], on_snippets):
        """Run the decoder thread and the network until the video ends; return frames used."""
        q: queue.Queue = queue.Queue(maxsize=max(1, self.options.prefetch))
        stop = threading.Event()
        worker = threading.Thread(
            target=_Decoder(self.options, self.layouts).produce,
            args=(reader, q, stop),
            name="vadkit-decode",
            daemon=True,
        )
        worker.start()
        try:
            return self._drain(q, clips, patches, on_snippets)
        finally:
            stop.set()
            with contextlib.suppress(queue.Empty):
                while True:
                    q.get_nowait()
            worker.join(timeout=10)

    def _drain(self, q: queue.Queue, clips: _Rows, patches: dict[str, _Rows], on_snippets) -> int:
        # a fixed number of snippets per batch keeps the batching, hence the rounding of the
        # results, identical from run to run (resumed runs write byte-identical files)
        per_batch = max(1, self.options.batch_size // self.options.crops)
        pending: list[_Item] = []
        while True:
            msg = q.get()
            if isinstance(msg, _Failure):
                raise msg.error
            end = isinstance(msg, _End)
            if not end:
                pending.append(msg)
            if pending and (len(pending) == per_batch or end):
                self._run_batch(pending, clips, patches)
                if on_snippets:
                    on_snippets(len(pending))
                pending = []
            if end:
                return msg.frames_used

    def _run_batch(self, items: list[_Item], clips: _Rows, patches: dict[str, _Rows]) -> None:
        k, n = len(items), self.options.crops
        x = np.concatenate([it.crops for it in items])  # (k·n, T, c, c, 3)
        clips.extend(self.features(x).reshape(k, n, -1))  # (k, n, d)
        if patches and items[0].frame is not None:  # roi: one pass per frame clip
            pooled = self.roi_features(np.stack([it.frame for it in items]))
            for grid in patches:
                patches[grid].extend(pooled[grid])
            return
        for grid in patches:
            x = np.concatenate([it.patches[grid] for it in items])  # (k·p, T, ph, pw, 3)
            patches[grid].extend(self.features(x).reshape(k, -1, self.backbone.feature_dim))


__all__ = ["DTYPES", "Extractor", "bf16_is_native", "cpu_flags", "resolve_dtype"]
