"""A model on whole videos: snippet scores, per-frame scores. Shared by scoring and by the
validation of a training run (docs/DESIGN.md, Scoring).

A model runs in eval mode on each video's full snippet sequence; every snippet score is repeated
over its frames and the curve trimmed to the video's true frame count.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from vadkit.data import Source, check_finite, full_length_bag, load_source, spec_of
from vadkit.errors import VadkitError
from vadkit.io.features import SNIPPET_LENGTH, FeatureMeta, FeatureSpec
from vadkit.models.common import PATCHES


def snippet_to_frame_scores(
    snippet_scores: np.ndarray, meta: FeatureMeta | None = None
) -> np.ndarray:
    """Per-frame scores `(frame_count,)` from snippet scores `(t,)`.

    Each snippet score covers its `snippet_length` frames. When the features were extracted at a
    resampled fps, native frame i maps to resampled frame `floor(i · fps_used / fps_native)`.
    The curve is trimmed to the true frame count (a loop-padded last snippet), or extended with
    the last snippet's score when frames were dropped (`drop-last`). Without metadata the frame
    count is `snippet_length · t`.
    """
    s = np.asarray(snippet_scores, dtype=np.float32).reshape(-1)
    t = s.shape[0]
    if meta is None:
        return np.repeat(s, SNIPPET_LENGTH)
    length = meta.snippet_length
    frames = np.arange(meta.frame_count, dtype=np.int64)
    if meta.fps_used and meta.fps_native and abs(meta.fps_used - meta.fps_native) > 1e-9:
        frames = np.floor(frames * (meta.fps_used / meta.fps_native)).astype(np.int64)
    return s[np.minimum(frames // length, t - 1)]


def check_features(
    src: Source, clip_shape: tuple[int, ...], spec: FeatureSpec, *, what: str, patches: bool
) -> None:
    """Refuse features that do not fit `spec`, naming both values."""
    got = spec_of(src.meta, clip_shape[1], clip_shape[2])
    bad = spec.mismatch(got, patches=patches)
    if bad:
        key, expected, actual = bad
        raise VadkitError(
            f"{src.path} has {key} {actual} but {what} expects {expected}; re-extract the "
            "features with the same settings or use a checkpoint trained on these features"
        )


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """`model` in eval mode inside the block; its train/eval mode is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def source_bag(
    model: torch.nn.Module,
    src: Source,
    *,
    spec: FeatureSpec,
    device: torch.device,
    what: str = "the checkpoint",
) -> dict[str, torch.Tensor]:
    """One video's full-length bag of the inputs `model` reads (its patch grids only), with
    `src.meta` filled in. A file that cannot be read, does not fit `spec` or holds NaN/inf is
    a VadkitError naming it."""
    patches = PATCHES in model.inputs
    files = model.patch_files(model.stage, model.config) if patches else ()
    clip, patch = load_source(src, patches=files or patches)  # only the grids the model reads
    check_features(src, clip.shape, spec, what=what, patches=patches)
    check_finite(src, clip, patch)
    return full_length_bag(clip, patch, device)


@torch.no_grad()
def source_scores(
    model: torch.nn.Module,
    src: Source,
    *,
    spec: FeatureSpec,
    device: torch.device,
    what: str = "the checkpoint",
) -> np.ndarray:
    """Snippet scores `(t,)` of one video on the full snippet sequence (the caller puts the
    model in eval mode); errors as `source_bag`."""
    bag = source_bag(model, src, spec=spec, device=device, what=what)
    return model.scores(bag)[0].float().cpu().numpy()


def snippet_scores(
    model: torch.nn.Module,
    sources: Sequence[Source],
    *,
    spec: FeatureSpec,
    device: torch.device,
    what: str = "the checkpoint",
) -> Iterator[tuple[Source, np.ndarray]]:
    """Yield `(source, scores (t,))` for every video: model in eval mode, full-length sequence.

    The caller's train/eval mode is restored afterwards."""
    with eval_mode(model):
        for src in sources:
            yield src, source_scores(model, src, spec=spec, device=device, what=what)


def frame_scores(
    model: torch.nn.Module,
    sources: Sequence[Source],
    *,
    spec: FeatureSpec,
    device: torch.device,
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """`{video: per-frame scores}` and `{video: frame count}` of every source."""
    scores, counts = {}, {}
    for src, s in snippet_scores(model, sources, spec=spec, device=device):
        scores[src.video] = snippet_to_frame_scores(s, src.meta)
        counts[src.video] = scores[src.video].shape[0]
    return scores, counts


__all__ = [
    "check_features",
    "eval_mode",
    "frame_scores",
    "snippet_scores",
    "snippet_to_frame_scores",
    "source_bag",
    "source_scores",
]
