"""Training and scoring inputs: which feature file belongs to a manifest entry, validation of the
whole set before any step, and the in-memory training set (docs/DESIGN.md, Training).

Each training video's snippets `(t, n, d)` are resampled once to a fixed number of segments by
averaging the snippets of `floor(linspace(0, t, S + 1))` bins (RTFM's `process_feat`; an empty
bin copies its snippet) and kept in memory, optionally as float16, so a training step never
touches the disk. RTFM's own loader re-reads and resamples every sampled file at every step.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vadkit.errors import VadkitError
from vadkit.io.features import (
    PATCH_GRIDS,
    FeatureMeta,
    FeatureSpec,
    load_clip,
    load_patches,
    patch_path,
)
from vadkit.io.manifest import Entry
from vadkit.models.common import CLIP, PATCHES

Bag = dict[str, torch.Tensor]


@dataclass
class Source:
    """One video's feature file (`VID.npy`), its label when known, its metadata when present."""

    video: str
    path: Path
    label: int | None = None
    meta: FeatureMeta | None = None


def feature_path(entry: Entry, features: str | os.PathLike | None) -> Path:
    """`entry.path` when it is a `.npy` file, else `FEATS/VIDEO.npy`."""
    if entry.path is not None and entry.path.suffix == ".npy":
        return entry.path
    if features is None:
        where = f" (its path {entry.path} is not a feature file)" if entry.path else ""
        raise VadkitError(
            f"video {entry.video}: no feature file{where}; pass --features FEATS, the directory "
            "`vadkit extract` wrote"
        )
    return Path(features) / f"{entry.video}.npy"


def sources_from_manifest(
    entries: Sequence[Entry], features: str | os.PathLike | None
) -> list[Source]:
    return [Source(e.video, feature_path(e, features), e.label) for e in entries]


def spec_of(meta: FeatureMeta | None, crops: int, feature_dim: int) -> FeatureSpec:
    """What a model depends on. Features without metadata (e.g. RTFM's public `.npy`) only tell
    their shape."""
    return FeatureSpec.of(meta, crops, feature_dim)


def resample_segments(x: np.ndarray, segments: int) -> np.ndarray:
    """Average `(t, ...)` into `(segments, ...)` over `floor(linspace(0, t, segments + 1))` bins;
    an empty bin (t < segments) takes the snippet at its start, as RTFM's `process_feat` does."""
    t = x.shape[0]
    edges = np.linspace(0, t, segments + 1).astype(np.int64)
    # reduceat sums x[e_i:e_{i+1}], and returns x[e_i] itself where e_i == e_{i+1}: the RTFM rule
    sums = np.add.reduceat(x, edges[:-1], axis=0, dtype=np.float64)
    counts = np.maximum(np.diff(edges), 1).reshape(-1, *([1] * (x.ndim - 1)))
    return (sums / counts).astype(np.float32)


def load_source(
    src: Source, *, patches: bool | Sequence[str], mmap: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """Clip `(t, n, d)` and, if asked, patches `(t, p, d)` of one video, with its metadata
    filled in on `src`; errors name the file.

    `patches`: False for none; True for every grid the metadata lists (all of PATCH_GRIDS
    without metadata); or the grid names to read (`("patch23", "patch47")`, MSIP's `scales`),
    and then only those files are opened. Grids are concatenated in PATCH_GRIDS order."""
    clip, meta = load_clip(src.path, mmap=mmap)
    src.meta = meta
    patch = None
    if patches:
        if meta is not None and not meta.has_patches:
            raise VadkitError(
                f"{src.path}: extracted without patches, but this model needs MSIP's multi-scale "
                "patch features; re-extract without --no-patches"
            )
        parts = _read_patches(src, patches, mmap=mmap)
        for grid, arr in parts.items():
            if arr.shape[0] != clip.shape[0] or arr.shape[2] != clip.shape[2]:
                raise VadkitError(
                    f"{src.path}: {grid} patches have shape {arr.shape}, expected "
                    f"({clip.shape[0]}, {arr.shape[1]}, {clip.shape[2]}) to match the clip features"
                )
        patch = np.concatenate(list(parts.values()), axis=1)
    return clip, patch


def _read_patches(
    src: Source, patches: bool | Sequence[str], *, mmap: bool
) -> dict[str, np.ndarray]:
    """The patch arrays `load_source` asked for, by grid name in PATCH_GRIDS order."""
    listed = list(src.meta.patch_grids) if src.meta is not None else list(PATCH_GRIDS)
    names = listed if patches is True else list(patches)
    unknown = [g for g in names if g not in PATCH_GRIDS or g not in listed]
    if unknown:
        raise VadkitError(
            f"{src.path}: no {', '.join(unknown)} patch features (extracted with "
            f"{', '.join(listed)}); choose the model's scales among those"
        )
    if set(names) == set(PATCH_GRIDS):
        return load_patches(src.path, mmap=mmap)
    out = {}
    for grid in (g for g in PATCH_GRIDS if g in names):
        q = patch_path(src.path.parent, src.path.name[: -len(".npy")], grid)
        if not q.is_file():
            raise VadkitError(f"{q}: feature file not found (the {grid} patch features)")
        rows, cols = PATCH_GRIDS[grid][:2]
        try:
            arr = np.load(q, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise VadkitError(f"{q}: unreadable .npy ({e})") from None
        if arr.ndim != 3 or arr.shape[1] != rows * cols:
            raise VadkitError(f"{q}: expected shape (t, {rows * cols}, d), got {arr.shape}")
        out[grid] = arr
    return out


def check_finite(src: Source, *arrays: np.ndarray | None) -> None:
    for arr in arrays:
        if arr is not None and not np.isfinite(arr).all():
            raise VadkitError(
                f"video {src.video} ({src.path}): features contain NaN or inf; re-extract it or "
                "remove it from the manifest"
            )


class TrainingSet:
    """All training videos resampled to `segments` and held in memory.

    `clips` `(V, n, S, d)`, `patches` `(V, S, p, d)` or None, `labels` `(V,)`.
    """

    def __init__(
        self,
        sources: list[Source],
        clips: torch.Tensor,
        patches: torch.Tensor | None,
        spec: FeatureSpec,
        lengths: list[int] | None = None,
    ) -> None:
        self.sources = sources
        self.clips = clips
        self.patches = patches
        self.spec = spec
        self.lengths = lengths or []  # snippets of each video before resampling
        labels = torch.tensor([s.label for s in sources])
        self.normal = torch.nonzero(labels == 0).flatten()
        self.abnormal = torch.nonzero(labels == 1).flatten()

    @property
    def metas(self) -> list[FeatureMeta]:
        return [s.meta for s in self.sources if s.meta is not None]

    def classes_short_of(self, batch_size: int) -> list[str]:
        """The classes with fewer videos than `batch_size` (drawn with replacement)."""
        pools = (("normal", self.normal), ("abnormal", self.abnormal))
        return [f"{name} ({len(pool)})" for name, pool in pools if len(pool) < batch_size]

    def require_snippets(self, least: int, *, why: str, name: str = "training manifest") -> None:
        """Refuse a video with fewer than `least` snippets (before resampling)."""
        for src, t in zip(self.sources, self.lengths, strict=False):
            if t < least:
                raise VadkitError(
                    f"video {src.video} ({src.path}) has {t} snippet(s), fewer than the "
                    f"{least} {why}; remove it from the {name}"
                )

    @classmethod
    def load(
        cls,
        sources: list[Source],
        *,
        segments: int,
        min_snippets: int = 1,
        patches: bool | Sequence[str] = False,
        float16: bool = False,
        name: str = "training manifest",
        progress: Any = None,
    ) -> TrainingSet:
        """Read, check and resample every video. Raises VadkitError before any training step:
        one class only, a video shorter than `min_snippets`, mismatched dims/crops, NaN.
        `patches` as `load_source` takes it (True, or the grid names to read)."""
        _check_labels(sources, name)
        dtype = torch.float16 if float16 else torch.float32
        clips = patch_store = None
        spec: FeatureSpec | None = None
        lengths: list[int] = []
        for i, src in enumerate(sources):
            clip, patch = load_source(src, patches=patches)
            t, n, d = clip.shape
            here = spec_of(src.meta, n, d)
            if spec is None:
                spec = here
                clips = torch.empty(len(sources), n, segments, d, dtype=dtype)
                if patch is not None:
                    patch_store = torch.empty(
                        len(sources), segments, patch.shape[1], d, dtype=dtype
                    )
            else:
                _check_same(spec, here, sources[0], src, patches=bool(patches), name=name)
            check_finite(src, clip, patch)
            lengths.append(t)
            clips[i] = torch.from_numpy(resample_segments(clip, segments)).transpose(0, 1)
            if patch_store is not None:
                patch_store[i] = torch.from_numpy(resample_segments(patch, segments))
            if progress is not None:
                progress(i + 1, len(sources))
        data = cls(sources, clips, patch_store, spec, lengths)
        data.require_snippets(min_snippets, why="the model needs", name=name)
        return data

    def sample(
        self,
        batch_size: int,
        generator: torch.Generator,
        *,
        inputs: Iterable[str],
        device: torch.device,
        shard: tuple[int, int] = (0, 1),
        sampler: Sampler | None = None,
        step: int = 0,
    ) -> tuple[Bag, Bag]:
        """`batch_size` normal and `batch_size` abnormal videos for the step after `step`.

        Without a `sampler` (batch order `random`) they are drawn with `generator`: without
        replacement when a class has enough videos, with replacement otherwise. A `Sampler`
        gives them as a pure function of its seed and `step` instead.

        `shard=(rank, world)`: every rank draws the same global batch (same generator state or
        step) and keeps its `batch_size / world` rows of each class."""
        rank, world = shard
        per = batch_size // world
        if sampler is None:
            picks = [_draw(pool, batch_size, generator) for pool in (self.normal, self.abnormal)]
        else:
            rows = sampler.rows(step)
            picks = [pool[r] for pool, r in zip((self.normal, self.abnormal), rows, strict=True)]
        bags = []
        for pick in picks:
            pick = pick[rank * per : (rank + 1) * per]
            bag = {CLIP: self.clips[pick]}
            if PATCHES in inputs:
                bag[PATCHES] = self.patches[pick]
            bags.append({k: v.to(device=device, dtype=torch.float32) for k, v in bag.items()})
        return bags[0], bags[1]


def _draw(pool: torch.Tensor, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    if len(pool) >= batch_size:
        return pool[torch.randperm(len(pool), generator=generator)[:batch_size]]
    return pool[torch.randint(len(pool), (batch_size,), generator=generator)]


class Sampler:
    """The batch order of the official loaders, as a pure function of `(seed, step)`: the rows
    (positions within the normal and the abnormal videos, in manifest order) of the batch that
    step `step + 1` trains on. Resuming at any step therefore continues the same order.

    - `epoch-shuffle` (RTFM's `main.py`): each class is its own shuffled, drop-last loader of
      `len(class) // b` batches, restarted with a new shuffle when exhausted; the two classes'
      epochs run independently. The shuffle of epoch `e` of a class is seeded by
      `(seed, class, e)`.
    - `fixed` (MGFN's `main.py`): unshuffled drop-last loaders zipped together, so an epoch is
      `min(len(normal), len(abnormal)) // b` steps and every epoch has the same batches in
      the same order (the manifest's); the seed plays no part.
    """

    def __init__(self, order: str, counts: tuple[int, int], batch_size: int, seed: int) -> None:
        short = [
            f"{name} ({n})" for name, n in zip(("normal", "abnormal"), counts, strict=True)
            if n < batch_size
        ]  # fmt: skip
        if short:
            raise VadkitError(
                f"--batch-order {order} needs at least --batch-size {batch_size} videos of each "
                f"class (its loaders drop an incomplete last batch); fewer in: "
                f"{', '.join(short)}; lower --batch-size or use --batch-order random"
            )
        self.order, self.counts, self.batch_size = order, counts, batch_size
        self.seed = seed % 2**64  # SeedSequence takes non-negative integers
        self.batches = tuple(n // batch_size for n in counts)  # per class and epoch

    @property
    def steps_per_epoch(self) -> int:
        return min(self.batches)

    def rows(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        b = self.batch_size
        if self.order == "fixed":
            j = step % self.steps_per_epoch
            return (torch.arange(j * b, (j + 1) * b),) * 2
        out = []
        for cls, (n, per_epoch) in enumerate(zip(self.counts, self.batches, strict=True)):
            epoch, j = divmod(step, per_epoch)
            perm = np.random.default_rng([self.seed, cls, epoch]).permutation(n)
            out.append(torch.from_numpy(perm[j * b : (j + 1) * b]))
        return out[0], out[1]


def make_sampler(order: str, data: TrainingSet, batch_size: int, seed: int) -> Sampler | None:
    """The sampler of batch order `order` (None for `random`: `TrainingSet.sample` draws)."""
    if order == "random":
        return None
    if order not in ("epoch-shuffle", "fixed"):
        raise VadkitError(
            f"unknown --batch-order {order!r}; choose one of random, epoch-shuffle, fixed"
        )
    return Sampler(order, (len(data.normal), len(data.abnormal)), batch_size, seed)


def steps_per_epoch(data: TrainingSet, batch_size: int) -> int:
    """Steps of one epoch of two zipped drop-last loaders (MGFN's), at least 1."""
    return max(1, min(len(data.normal), len(data.abnormal)) // batch_size)


def _check_labels(sources: list[Source], name: str) -> None:
    if not sources:
        raise VadkitError(f"{name} lists no videos")
    labels = {s.label for s in sources}
    if labels != {0, 1}:
        have = "normal (label 0)" if labels == {0} else "abnormal (label 1)"
        raise VadkitError(
            f"{name} has only {have} videos ({len(sources)}); training needs both normal "
            "(label 0) and abnormal (label 1) videos"
        )


def _check_same(
    spec: FeatureSpec, here: FeatureSpec, first: Source, src: Source, *, patches: bool, name: str
) -> None:
    bad = spec.mismatch(here, patches=patches)
    if bad:
        key, want, have = bad
        raise VadkitError(
            f"{src.path} has {key} {have} but {first.path} has {key} {want}; every "
            f"video of the {name} must come from the same extraction"
        )


def full_length_bag(clip: np.ndarray, patch: np.ndarray | None, device: torch.device) -> Bag:
    """One video at full length for inference: `clip` `(1, n, t, d)`, `patches` `(1, t, p, d)`."""
    bag = {CLIP: torch.from_numpy(np.array(clip, np.float32)).transpose(0, 1)[None]}
    if patch is not None:
        bag[PATCHES] = torch.from_numpy(np.array(patch, np.float32))[None]
    return {k: v.to(device) for k, v in bag.items()}
