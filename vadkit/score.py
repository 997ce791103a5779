"""Checkpoints and scoring: a trained run → per-frame anomaly scores for every video (SPEC §5).

A checkpoint is a safetensors file whose metadata (`vadkit` key, JSON) says what built it:
model name and constructor arguments, the feature spec it was trained on, the training config,
stage and step. Scoring runs the model in eval mode on each video's full snippet sequence,
repeats every snippet score over its frames and trims to the true frame count.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from vadkit import __version__
from vadkit.data import Source, full_length_bag, load_source, spec_mismatch, spec_of
from vadkit.devices import resolve_device
from vadkit.errors import VadkitError
from vadkit.io.atomic import atomic_path
from vadkit.io.features import SNIPPET_LENGTH, FeatureMeta, read_meta
from vadkit.io.hashing import sha256_file
from vadkit.io.manifest import read_manifest
from vadkit.io.scores import ScoreMeta, write_scores
from vadkit.models import create_model

CHECKPOINT_FORMAT = "vadkit.checkpoint"
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
MANIFEST_SUFFIXES = (".csv", ".list", ".txt")


# ---------------------------------------------------------------- frame scores


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


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, meta: dict[str, Any]) -> None:
    """Weights (and BN statistics) as safetensors with `meta` as JSON metadata; atomic."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    info = {"format": CHECKPOINT_FORMAT, "vadkit_version": __version__, **meta}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"vadkit": json.dumps(info)})


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    p = Path(path)
    if not p.is_file():
        raise VadkitError(f"{p}: checkpoint not found")
    try:
        with safe_open(str(p), framework="pt") as f:
            raw = (f.metadata() or {}).get("vadkit")
        state = load_file(str(p))
    except (SafetensorError, OSError, ValueError) as e:
        raise VadkitError(f"{p}: unreadable checkpoint ({e})") from None
    if raw is None:
        raise VadkitError(f"{p}: not a vadkit checkpoint (no 'vadkit' metadata)")
    meta = json.loads(raw)
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise VadkitError(f"{p}: not a vadkit checkpoint (format {meta.get('format')!r})")
    return state, meta


@dataclass
class Run:
    """A trained model ready to score: the model (eval mode) and what its checkpoint says."""

    model: torch.nn.Module
    meta: dict[str, Any]
    path: Path
    sha256: str
    device: torch.device

    @property
    def spec(self) -> dict[str, Any]:
        return self.meta["feature_spec"]

    @property
    def label(self) -> str:
        stage = self.meta.get("stage", 1)
        return f"{self.meta['model']}" + (f" (stage {stage})" if stage != 1 else "")


def checkpoint_path(run: str | os.PathLike, checkpoint: str = "best") -> Path:
    p = Path(run)
    if p.is_file():
        return p
    if not p.is_dir():
        raise VadkitError(f"{p}: run directory not found")
    if checkpoint not in ("best", "last"):
        raise VadkitError(f"unknown checkpoint {checkpoint!r}; choose best or last")
    return p / f"{checkpoint}.safetensors"


def build_model(meta: dict[str, Any], state: dict[str, torch.Tensor], *, source: str):
    model = create_model(meta["model"], **meta["model_args"])
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise VadkitError(
            f"{source}: weights do not fit model {meta['model']} "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return model


def load_run(run: str | os.PathLike, *, checkpoint: str = "best", device: str = "auto") -> Run:
    """Load `RUN/best.safetensors` (or `last`, or a checkpoint file) in eval mode."""
    p = checkpoint_path(run, checkpoint)
    state, meta = read_checkpoint(p)
    model = build_model(meta, state, source=str(p))
    dev = resolve_device(device)
    model.to(dev).eval()
    return Run(model, meta, p, sha256_file(p), dev)


# ---------------------------------------------------------------- scoring


def check_features(
    src: Source, clip_shape: tuple[int, ...], spec: dict[str, Any], *, what: str, patches: bool
) -> None:
    """Refuse features that do not fit `spec`, naming both values."""
    got = spec_of(src.meta, clip_shape[1], clip_shape[2])
    bad = spec_mismatch(spec, got, patches=patches)
    if bad:
        key, expected, actual = bad
        raise VadkitError(
            f"{src.path} has {key} {actual} but {what} expects {expected}; re-extract the "
            "features with the same settings or use a checkpoint trained on these features"
        )


@torch.no_grad()
def snippet_scores(
    model: torch.nn.Module,
    sources: Sequence[Source],
    *,
    spec: dict[str, Any],
    device: torch.device,
    what: str = "the checkpoint",
) -> Iterator[tuple[Source, np.ndarray]]:
    """Yield `(source, scores (t,))` for every video: model in eval mode, full-length sequence.

    The caller's train/eval mode is restored afterwards."""
    was_training = model.training
    model.eval()
    patches = "patches" in model.inputs
    try:
        for src in sources:
            clip, patch = load_source(src, patches=patches)
            check_features(src, clip.shape, spec, what=what, patches=patches)
            if not np.isfinite(clip).all() or (patch is not None and not np.isfinite(patch).all()):
                raise VadkitError(f"video {src.video} ({src.path}): features contain NaN or inf")
            bag = full_length_bag(clip, patch, device)
            yield src, model.scores(bag)[0].float().cpu().numpy()
    finally:
        model.train(was_training)


def frame_scores(
    model: torch.nn.Module,
    sources: Sequence[Source],
    *,
    spec: dict[str, Any],
    device: torch.device,
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """`{video: per-frame scores}` and `{video: frame count}` of every source."""
    scores, counts = {}, {}
    for src, s in snippet_scores(model, sources, spec=spec, device=device):
        scores[src.video] = snippet_to_frame_scores(s, src.meta)
        counts[src.video] = scores[src.video].shape[0]
    return scores, counts


def _feature_files(directory: Path) -> list[Path]:
    return sorted(
        p
        for p in directory.glob("*.npy")
        if not p.name.startswith(".") and not any(p.name.endswith(f"_{g}.npy") for g in _GRIDS)
    )


_GRIDS = ("patch23", "patch35", "patch47")


def resolve_inputs(
    inputs: Sequence[str | os.PathLike], *, features: str | os.PathLike | None = None
) -> tuple[list[Source], list[Path]]:
    """Feature sources and video files named by `inputs`: feature `.npy` files, directories of
    them (or of videos), manifests (CSV / `.list` / `.txt`; a video path is looked up in
    `features` when given, else it is a video to extract)."""
    sources: list[Source] = []
    videos: list[Path] = []
    for raw in inputs:
        p = Path(raw)
        if not p.exists():
            raise VadkitError(f"{p}: no such file or directory")
        if p.is_dir():
            files = _feature_files(p)
            found = [q for q in sorted(p.rglob("*")) if q.suffix.lower() in VIDEO_SUFFIXES]
            if not files and not found:
                raise VadkitError(f"{p}: no feature files (*.npy) or videos found")
            sources += [Source(q.name[:-4], q) for q in files]
            videos += found if not files else []
        elif p.suffix == ".npy":
            sources.append(Source(p.name[:-4], p))
        elif p.suffix.lower() in VIDEO_SUFFIXES:
            videos.append(p)
        elif p.suffix.lower() in MANIFEST_SUFFIXES:
            # labels do not matter for scoring: a label-less list is read as all normal
            for e in read_manifest(p, abnormal_first=0, naming="ucf"):
                if e.path is not None and e.path.suffix == ".npy":
                    sources.append(Source(e.video, e.path))
                elif features is not None and (Path(features) / f"{e.video}.npy").exists():
                    sources.append(Source(e.video, Path(features) / f"{e.video}.npy"))
                elif e.path is not None and e.path.suffix.lower() in VIDEO_SUFFIXES:
                    videos.append(e.path)
                else:
                    raise VadkitError(
                        f"{p}: video {e.video} has no feature file; pass --features FEATS "
                        "(the directory `vadkit extract` wrote)"
                    )
        else:
            raise VadkitError(
                f"{p}: not a feature file (.npy), a video ({', '.join(VIDEO_SUFFIXES[:4])}, …), "
                "a manifest (.csv, .list, .txt) or a directory"
            )
    seen: dict[str, Path] = {}
    for s in sources:
        if s.video in seen and seen[s.video] != s.path:
            raise VadkitError(f"video {s.video} is given twice: {seen[s.video]} and {s.path}")
        seen[s.video] = s.path
    unique = list({s.video: s for s in sources}.values())
    return unique, videos


def score_to_dir(
    run: Run,
    sources: Sequence[Source],
    out: str | os.PathLike,
    *,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[dict[str, Any]]:
    """Write `OUT/VID.npy` + `OUT/VID.json` per video; return one summary row per video."""
    rows = []
    for i, (src, s) in enumerate(
        snippet_scores(run.model, sources, spec=run.spec, device=run.device)
    ):
        frames = snippet_to_frame_scores(s, src.meta)
        meta = ScoreMeta(
            video=src.video,
            frame_count=int(frames.shape[0]),
            snippet_length=src.meta.snippet_length if src.meta else SNIPPET_LENGTH,
            snippets=int(s.shape[0]),
            model=run.label,
            checkpoint_sha256=run.sha256,
            features=str(src.path),
            extra={"checkpoint": str(run.path), "step": run.meta.get("step")},
        )
        path = write_scores(out, meta, frames)
        rows.append(
            {
                "video": src.video,
                "path": str(path),
                "snippets": meta.snippets,
                "frames": meta.frame_count,
                "max_score": float(frames.max()) if frames.size else None,
            }
        )
        if progress is not None:
            progress(i + 1, len(sources), src.video)
    return rows


def extract_for_run(
    run: Run,
    videos: Sequence[Path],
    out: str | os.PathLike,
    *,
    device: str = "auto",
    weights: str | None = None,
) -> list[Source]:
    """Extract `videos` into `out` with the settings recorded in the run's checkpoint (the
    extraction of its training features), so scoring a raw video needs one command."""
    from vadkit.extract import ExtractOptions, extract_videos

    ex = run.meta.get("extraction")
    if not ex:
        raise VadkitError(
            f"{run.path} records no extraction settings (it was trained on features without "
            "vadkit metadata); extract the videos with `vadkit extract` and score the features"
        )
    random_weights = ex["weights_sha256"] is None
    opts = ExtractOptions(
        backbone=ex["backbone"],
        weights=weights,
        random_weights=random_weights and weights is None,
        crops=ex["crops"],
        short_side=ex["short_side"],
        crop_size=ex["crop_size"],
        patches="patches" in run.model.inputs,
        fps=ex["fps"],
        drop_last=ex["padding"] == "drop-last",
        dtype=ex["compute_dtype"],
        device=device,
    )
    if opts.patches and ex.get("patch_frame_size"):
        opts.patch_frame = tuple(ex["patch_frame_size"])
    summary = extract_videos(videos, out, opts)
    if summary.failed:
        first = summary.failed[0]
        raise VadkitError(
            f"{len(summary.failed)} video(s) failed to extract; first {first.path}: {first.error}"
        )
    sources = [Source(p.stem, Path(out) / f"{p.stem}.npy") for p in videos]
    for src in sources:
        meta = read_meta(Path(out), src.video)
        if meta is not None and meta.weights_sha256 != ex["weights_sha256"]:
            raise VadkitError(
                f"{src.path}: extracted with weights {meta.weights_sha256} but the run was trained "
                f"on features of weights {ex['weights_sha256']} ({ex['weights_source']}); pass "
                "--weights with the same file"
            )
    return sources
