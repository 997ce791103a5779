"""`vadkit extract`: videos in, RTFM-compatible I3D feature files out (docs/DESIGN.md, Features).

Per video: decode (a background thread, bounded queue) -> 16-frame snippets -> clip crops and
MSIP patches -> backbone, batched by input size -> `VID.npy`, `VID_patch*.npy`, `VID.json`
written atomically. A video whose outputs are complete is skipped (resume after a crash);
a bad video is reported and the others still run; a failed write (full disk) stops the run
with the video it was on named.

This module imports no torch: the network side is `vadkit.extractor.Extractor`, loaded when
there is a video to extract (`Extractor` is importable from here too).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import math
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vadkit.errors import VadkitError
from vadkit.features import BACKBONES
from vadkit.io import artifacts
from vadkit.io.atomic import TMP_PREFIX, remove_if_abandoned
from vadkit.io.features import (
    FORMAT as FEATURES_FORMAT,
)
from vadkit.io.features import (
    PATCH_FRAME_SIZE,
    PATCH_GRIDS,
    FeatureMeta,
    clip_path,
    is_complete,
    meta_path,
    patch_path,
    read_meta,
    write_features,
)
from vadkit.video import check_crops, find_videos, patch_layout, probe, snippet_count

if TYPE_CHECKING:
    from vadkit.extractor import Extractor
    from vadkit.features import LoadedBackbone

COMPUTE_DTYPES = ("float32", "bfloat16")
# --dtype choices: "auto" is bfloat16 where the hardware computes it natively (a CPU with AMX or
# AVX512-BF16, a CUDA GPU with bf16), else float32; the metadata records the dtype used.
DTYPE_CHOICES = ("auto", *COMPUTE_DTYPES)
# --patch-mode -> the I3D endpoint whose whole-frame map is pooled per patch (None: exact, one
# network pass per patch); see `vadkit.features.roi`.
PATCH_MODES: dict[str, str | None] = {"exact": None, "roi": "Mixed_5c", "roi-4f": "Mixed_4f"}
# The keys of an extraction record (what a training run stores to extract new videos the same
# way): `ExtractOptions.record`, `extraction_record(meta)`, `ExtractOptions.from_record`.
RECORD_KEYS = (
    "backbone",
    "crops",
    "short_side",
    "crop_size",
    "patches",
    "patch_frame_size",
    "patch_mode",
    "fps",
    "padding",
    "compute_dtype",
    "weights_sha256",
    "weights_source",
)
RANDOM_WEIGHTS_SEED = 0  # `load_backbone`'s default seed, recorded as "random (seed 0)"


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
    # the library's default is exact float32; `vadkit extract` defaults to "auto"
    dtype: str = "float32"
    patch_mode: str = "exact"
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
        check_crops(self.crops)
        if not 32 <= self.crop_size <= self.short_side:
            raise VadkitError(
                f"crop size {self.crop_size} must be at least 32 and at most the short side "
                f"{self.short_side}"
            )
        if self.patches:
            patch_layout(tuple(self.patch_frame))
        if self.fps is not None and not (self.fps > 0 and math.isfinite(self.fps)):
            raise VadkitError(f"fps must be positive, got {self.fps}")
        if self.dtype not in DTYPE_CHOICES:
            raise VadkitError(
                f"dtype must be one of {', '.join(DTYPE_CHOICES)}, got {self.dtype!r}"
            )
        self._validate_patch_mode()
        if self.batch_size < 1:
            raise VadkitError(f"batch size must be at least 1, got {self.batch_size}")
        if self.threads is not None and self.threads < 1:
            raise VadkitError(f"threads must be at least 1, got {self.threads}")
        if self.weights and self.random_weights:
            raise VadkitError("--weights and --random-weights exclude each other; pick one")

    def _validate_patch_mode(self) -> None:
        if self.patch_mode not in PATCH_MODES:
            raise VadkitError(
                f"patch mode must be one of {', '.join(PATCH_MODES)}, got {self.patch_mode!r}"
            )
        if self.patch_mode != "exact" and self.backbone != "i3d-inception":
            raise VadkitError(
                f"patch mode {self.patch_mode} pools Inception-I3D maps; backbone "
                f"{self.backbone} supports only the exact patch mode"
            )

    def compute_dtype(self) -> str:
        """The dtype the network runs in: `dtype`, with "auto" resolved for `device`."""
        if self.dtype != "auto":
            return self.dtype
        from vadkit.devices import resolve_device
        from vadkit.extractor import resolve_dtype

        return resolve_dtype("auto", resolve_device(self.device))

    @property
    def padding(self) -> str:
        return "drop-last" if self.drop_last else "loop"

    def record(self, backbone: LoadedBackbone | None = None) -> dict[str, Any]:
        """The extraction record of these options (`RECORD_KEYS`).

        The weights' identity (sha256, source) is known once they are loaded: pass the loaded
        backbone, except with `random_weights` (recorded as sha256 None)."""
        if backbone is not None:
            sha, source = backbone.weights_sha256, backbone.weights_source
        elif self.random_weights:
            sha, source = None, f"random (seed {RANDOM_WEIGHTS_SEED})"
        else:
            raise VadkitError(
                "the record of an extraction names its weights by sha256, known once they are "
                "loaded: pass the loaded backbone"
            )
        return {
            "backbone": backbone.spec.name if backbone is not None else self.backbone,
            "crops": self.crops,
            "short_side": self.short_side,
            "crop_size": self.crop_size,
            "patches": self.patches,
            "patch_frame_size": list(self.patch_frame) if self.patches else None,
            "patch_mode": self.patch_mode if self.patches else None,
            "fps": self.fps,
            "padding": self.padding,
            "compute_dtype": self.compute_dtype(),
            "weights_sha256": sha,
            "weights_source": source,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any], **overrides: Any) -> ExtractOptions:
        """Options that extract the way `record` says; `overrides` set any other field
        (`device`, `weights`, `patches`, ...). A record with weights sha256 None means random
        weights, unless `weights=` names a file."""
        if not isinstance(record, dict):
            raise VadkitError(f"an extraction record is a JSON object, got {type(record).__name__}")
        optional = ("patches", "fps", "patch_mode")
        missing = [k for k in RECORD_KEYS if k not in record and k not in optional]
        if missing:
            raise VadkitError(f"the extraction record lacks {', '.join(missing)}")
        frame = record.get("patch_frame_size")
        try:
            opts = cls(
                backbone=record["backbone"],
                random_weights=record["weights_sha256"] is None,
                crops=int(record["crops"]),
                short_side=int(record["short_side"]),
                crop_size=int(record["crop_size"]),
                patches=bool(record.get("patches", frame is not None)),
                patch_frame=(int(frame[0]), int(frame[1])) if frame else PATCH_FRAME_SIZE,
                fps=None if record.get("fps") is None else float(record["fps"]),
                drop_last=record["padding"] == "drop-last",
                dtype=record["compute_dtype"],
                patch_mode=record.get("patch_mode") or "exact",
            )
        except (TypeError, ValueError, IndexError) as e:
            raise VadkitError(f"the extraction record has a malformed value ({e})") from None
        if overrides.get("weights") is not None:
            overrides.setdefault("random_weights", False)
        opts = dataclasses.replace(opts, **overrides)
        opts.validate()
        return opts

    @classmethod
    def from_meta(cls, meta: FeatureMeta, **overrides: Any) -> ExtractOptions:
        """Options that extract a new video the way `meta`'s features were made."""
        return cls.from_record(extraction_record(meta), **overrides)


def extraction_record(meta: FeatureMeta) -> dict[str, Any]:
    """The extraction record (`RECORD_KEYS`) of a video's features, from their metadata."""
    return {
        "backbone": meta.backbone,
        "crops": meta.crops,
        "short_side": meta.short_side,
        "crop_size": meta.crop_size,
        "patches": meta.has_patches,
        "patch_frame_size": meta.patch_frame_size,
        "patch_mode": meta.patch_mode,
        "fps": None if meta.fps_used == meta.fps_native else meta.fps_used,
        "padding": meta.padding,
        "compute_dtype": meta.compute_dtype,
        "weights_sha256": meta.weights_sha256,
        "weights_source": meta.weights_source,
    }


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
    aborted: str | None = None  # why the run stopped early (a failed write), else None
    not_attempted: int = 0  # videos left when it stopped

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
            "videos": len(self.results) + self.not_attempted,
            "done": self.count("done"),
            "skipped": self.count("skipped"),
            "failed": self.count("failed"),
            "not_attempted": self.not_attempted,
            "aborted": self.aborted,
            "snippets": snippets,
            "seconds": round(seconds, 3),
            "snippets_per_second": round(snippets / seconds, 3) if seconds > 0 else None,
            "results": [asdict(r) for r in self.results],
        }

    @classmethod
    def merge(cls, parts: Sequence[dict[str, Any]], out_dir: str) -> Summary:
        """One summary of several ranks' `to_json()`."""
        merged = cls(shard=f"all {len(parts)} ranks", out_dir=out_dir)
        for part in parts:
            merged.results += [VideoResult(**r) for r in part["results"]]
            merged.not_attempted += part.get("not_attempted", 0)
            merged.aborted = merged.aborted or part.get("aborted")
        merged.results.sort(key=lambda r: r.path)
        return merged


class Progress:
    """Callbacks `extract_videos` reports to (the CLI draws them); no-ops here."""

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


def plan_videos(
    inputs: Iterable[str | os.PathLike], *, shard: tuple[int, int] | None = None
) -> list[Path]:
    videos = sorted(find_videos(inputs), key=str)
    if not videos:
        raise VadkitError("no videos given: nothing to extract")
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


# --------------------------------------------------------------------------------------------
# The output directory


def _reason(e: OSError) -> str:
    return (e.strerror or type(e).__name__).lower()


def prepare_output_dir(out: Path, inputs: Sequence[str | os.PathLike] = ()) -> None:
    """Create `out` and check that features may go there, or raise VadkitError naming it.

    Refused (`vadkit.io.artifacts.prepare_output_dir`): a path that is a file, a directory that
    is one of the inputs, a directory that holds another kind of vadkit artifact (scores, a
    training run, a synthetic dataset); then one that cannot really be written."""
    dirs = [(p, str(p)) for p in map(Path, inputs) if p.is_dir()]
    artifacts.prepare_output_dir(out, own=FEATURES_FORMAT, what="features", inputs=dirs)
    try:
        fd, probe_name = tempfile.mkstemp(prefix=TMP_PREFIX + "write-check.", dir=out)
    except OSError as e:
        raise VadkitError(f"{out}: cannot write into the output directory ({_reason(e)})") from None
    os.close(fd)
    os.unlink(probe_name)


def _clean_stale_tmp(out: Path, videos: Sequence[str]) -> int:
    """Remove the `.tmp-*` leftovers of killed writers of these videos' files.

    Only these videos' files (ranks of a sharded run share `out`), and only abandoned ones:
    a writer holds a lock on its temporary file while it writes (`vadkit.io.atomic`), so the
    in-flight file of another process on the same directory is never touched. Temporary names
    are `.tmp-<final name>.<random>`."""
    mine = set()
    for v in videos:
        mine |= {clip_path(out, v).name, meta_path(out, v).name}
        mine |= {patch_path(out, v, g).name for g in PATCH_GRIDS}
    n = 0
    for p in out.glob(TMP_PREFIX + "*"):
        final = p.name[len(TMP_PREFIX) :].rpartition(".")[0]
        if final in mine and remove_if_abandoned(p):
            n += 1
    return n


# --------------------------------------------------------------------------------------------
# Many videos


def _settings_mismatch(meta: FeatureMeta, opts: ExtractOptions) -> str | None:
    have = extraction_record(meta)
    want = {
        "backbone": opts.backbone,
        "crops": opts.crops,
        "crop_size": opts.crop_size,
        "short_side": opts.short_side,
        "padding": opts.padding,
    }
    if opts.patches:
        want["patch_frame_size"] = list(opts.patch_frame)
        want["patch_mode"] = opts.patch_mode
    if opts.dtype != "auto":  # auto: whatever this machine computes best, made earlier or now
        want["compute_dtype"] = opts.dtype
    for key, value in want.items():
        if have[key] != value:
            return f"{key} {have[key]!r} (asked for {value!r})"
    if opts.fps and not math.isclose(meta.fps_used, opts.fps, rel_tol=1e-6):
        return f"fps_used {meta.fps_used} (asked for {opts.fps})"
    return None


def _estimate_snippets(path: Path, opts: ExtractOptions) -> int:
    try:
        info = probe(path)
    except VadkitError:
        return 0
    frames = info.frame_count_hint
    if opts.fps:
        frames = int(frames * opts.fps / info.fps)
    return snippet_count(frames, drop_last=opts.drop_last)


def _plan_work(
    out: Path, videos: Sequence[Path], opts: ExtractOptions, summary: Summary
) -> list[tuple[Path, int]]:
    """The videos to extract, with snippet estimates; complete ones go into `summary` as
    skipped (or failed, when made with other settings)."""
    todo: list[tuple[Path, int]] = []
    for p in videos:
        meta = None
        with contextlib.suppress(VadkitError):
            meta = read_meta(out, p.stem)
        if opts.force or meta is None or not is_complete(out, p.stem, patches=opts.patches):
            todo.append((p, _estimate_snippets(p, opts)))
            continue
        mismatch = _settings_mismatch(meta, opts)
        if mismatch is None:
            summary.results.append(VideoResult(p.stem, str(p), "skipped", meta.snippets))
        else:
            error = (
                f"{out / p.stem}.json exists with {mismatch}; pass --force to overwrite it or "
                "extract into another directory"
            )
            summary.results.append(VideoResult(p.stem, str(p), "failed", error=error))
    return todo


class _WriteFailed(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _write(out: Path, meta: FeatureMeta, clip, patches) -> None:
    try:
        # overwriting (--force): drop the old completion marker first, so that a crash
        # between the array writes never leaves new arrays under an old description
        meta_path(out, meta.video).unlink(missing_ok=True)
        write_features(out, meta, clip, patches)
    except OSError as e:
        raise _WriteFailed(
            f"{out}: cannot write the features of {meta.video} ({_reason(e)})"
        ) from None


def _extract_one(extractor: Extractor, p: Path, out: Path, progress: Progress) -> VideoResult:
    t0 = time.perf_counter()
    try:
        meta, clip, patches = extractor.extract(p, on_snippets=progress.snippets_done)
        _write(out, meta, clip, patches)
    except (VadkitError, RuntimeError) as e:  # RuntimeError: torch (e.g. out of memory)
        return VideoResult(p.stem, str(p), "failed", 0, time.perf_counter() - t0, str(e))
    except OSError as e:  # the video vanished or became unreadable while it was read
        error = f"{p}: cannot read the video ({_reason(e)})"
        return VideoResult(p.stem, str(p), "failed", 0, time.perf_counter() - t0, error)
    return VideoResult(p.stem, str(p), "done", meta.snippets, time.perf_counter() - t0)


def _run(
    todo: Sequence[tuple[Path, int]],
    out: Path,
    extractor: Extractor,
    summary: Summary,
    progress: Progress,
) -> None:
    for i, (p, estimate) in enumerate(todo):
        progress.video_started(p.stem, estimate)
        try:
            result = _extract_one(extractor, p, out, progress)
        except _WriteFailed as e:  # a full disk fails every video after it: stop here
            result = VideoResult(p.stem, str(p), "failed", error=e.message)
            summary.aborted = e.message
            summary.not_attempted = len(todo) - i - 1
        summary.results.append(result)
        progress.video_done(result)
        if summary.aborted:
            return


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

    Raises VadkitError only for problems of the whole run (bad options, no weights, no videos,
    an output directory that cannot take features). A write that fails mid-run (full disk)
    stops the run: `summary.aborted` says why and names the video it was on.
    """
    opts = options or ExtractOptions()
    opts.validate()
    progress = progress or Progress()
    inputs = list(inputs)
    out = Path(out_dir)
    videos = plan_videos(inputs, shard=shard)
    prepare_output_dir(out, inputs)
    _clean_stale_tmp(out, [p.stem for p in videos])
    summary = Summary(shard=f"{shard[0]}/{shard[1]}" if shard else None, out_dir=str(out))
    todo = _plan_work(out, videos, opts, summary)
    progress.start(len(videos), sum(n for _, n in todo))
    for r in summary.results:
        progress.video_done(r)
    if todo:
        from vadkit.extractor import Extractor

        _run(todo, out, Extractor.load(opts, backbone), summary, progress)
    summary.results.sort(key=lambda r: r.path)
    return summary


def extract_job(
    inputs: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    options: ExtractOptions | None = None,
    *,
    shard: tuple[int, int] | None = None,
    progress: Progress | None = None,
    timeout: datetime.timedelta = datetime.timedelta(hours=12),
) -> tuple[Summary, Summary | None]:
    """`extract_videos`, also as one rank of a `torchrun` job.

    Returns (this process's summary, the summary to show): under torchrun (no explicit
    `shard`) each rank extracts its shard and the main rank gets every rank's results merged
    (None on the others); otherwise both are the same summary. The process group is created
    and destroyed here."""
    if shard is not None or env_shard() is None:
        summary = extract_videos(inputs, out_dir, options, shard=shard, progress=progress)
        return summary, summary
    from vadkit.distributed import Distributed

    try:
        group = Distributed.from_env(timeout=timeout)
    except (RuntimeError, ValueError):  # no rendezvous (MASTER_ADDR): shard without a group
        summary = extract_videos(inputs, out_dir, options, shard=env_shard(), progress=progress)
        return summary, summary
    try:
        try:
            summary = extract_videos(
                inputs, out_dir, options, shard=(group.rank, group.world), progress=progress
            )
        except VadkitError as e:
            group.gather({"error": str(e)})  # the other ranks must not wait for us forever
            raise
        parts = group.gather(summary.to_json())
    finally:
        group.close()
    if parts is None:
        return summary, None
    errors = [p["error"] for p in parts if "error" in p]
    if errors:
        raise VadkitError(f"{len(errors)} rank(s) failed; first: {errors[0]}")
    return summary, Summary.merge(parts, summary.out_dir)


def __getattr__(name: str):
    if name == "Extractor":  # the torch side, imported on first use
        from vadkit.extractor import Extractor

        return Extractor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "COMPUTE_DTYPES",
    "DTYPE_CHOICES",
    "PATCH_MODES",
    "RECORD_KEYS",
    "ExtractOptions",
    "Extractor",
    "Progress",
    "Summary",
    "VideoResult",
    "env_shard",
    "extract_job",
    "extract_videos",
    "extraction_record",
    "parse_shard",
    "plan_videos",
    "prepare_output_dir",
    "shard_videos",
]
