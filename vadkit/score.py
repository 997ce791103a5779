"""Scoring: a trained run → per-frame anomaly scores for every video (docs/DESIGN.md, Scoring).

`load_run` reads a checkpoint (`vadkit.io.checkpoint`) and builds its model; `resolve_inputs`
turns feature files, directories, manifests and videos into sources; `score_to_dir` runs the
model on each (`vadkit.inference`) and writes one score file per video.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vadkit.data import Source
from vadkit.devices import resolve_device
from vadkit.errors import VadkitError
from vadkit.inference import (  # noqa: F401  (re-exported: the scoring API)
    check_features,
    frame_scores,
    snippet_scores,
    snippet_to_frame_scores,
)
from vadkit.io.checkpoint import (  # noqa: F401  (re-exported)
    CHECKPOINT_FORMAT,
    read_checkpoint,
    save_checkpoint,
)
from vadkit.io.features import PATCH_GRIDS, SNIPPET_LENGTH, FeatureSpec, read_meta
from vadkit.io.hashing import sha256_file
from vadkit.io.manifest import MANIFEST_SUFFIXES, VIDEO_SUFFIXES, read_manifest
from vadkit.io.scores import ScoreMeta, write_scores
from vadkit.models import create_model
from vadkit.models.common import PATCHES


@dataclass
class Run:
    """A trained model ready to score: the model (eval mode) and what its checkpoint says."""

    model: torch.nn.Module
    meta: dict[str, Any]
    path: Path
    sha256: str
    device: torch.device

    @property
    def spec(self) -> FeatureSpec:
        return FeatureSpec.from_dict(self.meta.get("feature_spec"), source=str(self.path))

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


def _feature_files(directory: Path) -> list[Path]:
    return sorted(
        p
        for p in directory.glob("*.npy")
        if not p.name.startswith(".") and not any(p.name.endswith(f"_{g}.npy") for g in PATCH_GRIDS)
    )


def _is_video(p: Path) -> bool:
    return p.suffix.lower() in VIDEO_SUFFIXES


class _Inputs:
    """What `resolve_inputs` collects: feature sources and videos to extract."""

    def __init__(self, features: str | os.PathLike | None) -> None:
        self.features = None if features is None else Path(features)
        self.sources: list[Source] = []
        self.videos: list[Path] = []

    def add(self, p: Path) -> None:
        if not p.exists():
            raise VadkitError(f"{p}: no such file or directory")
        if p.is_dir():
            self.add_dir(p)
        elif p.suffix == ".npy":
            self.sources.append(Source(p.name[:-4], p))
        elif _is_video(p):
            self.videos.append(p)
        elif p.suffix.lower() in MANIFEST_SUFFIXES:
            self.add_manifest(p)
        else:
            raise VadkitError(
                f"{p}: not a feature file (.npy), a video ({', '.join(VIDEO_SUFFIXES[:4])}, …), "
                "a manifest (.csv, .list, .txt) or a directory"
            )

    def add_dir(self, p: Path) -> None:
        files = _feature_files(p)
        found = [q for q in sorted(p.rglob("*")) if _is_video(q)]
        if not files and not found:
            raise VadkitError(f"{p}: no feature files (*.npy) or videos found")
        self.sources += [Source(q.name[:-4], q) for q in files]
        self.videos += found if not files else []

    def add_manifest(self, p: Path) -> None:
        # labels do not matter for scoring: a label-less list is read as all normal
        for e in read_manifest(p, abnormal_first=0, naming="ucf"):
            looked_up = None if self.features is None else self.features / f"{e.video}.npy"
            if e.path is not None and e.path.suffix == ".npy":
                self.sources.append(Source(e.video, e.path))
            elif looked_up is not None and looked_up.exists():
                self.sources.append(Source(e.video, looked_up))
            elif e.path is not None and _is_video(e.path):
                self.videos.append(e.path)
            else:
                raise VadkitError(
                    f"{p}: video {e.video} has no feature file; pass --features FEATS "
                    "(the directory `vadkit extract` wrote)"
                )

    def unique_sources(self) -> list[Source]:
        seen: dict[str, Path] = {}
        for s in self.sources:
            if s.video in seen and seen[s.video] != s.path:
                raise VadkitError(f"video {s.video} is given twice: {seen[s.video]} and {s.path}")
            seen[s.video] = s.path
        return list({s.video: s for s in self.sources}.values())


def resolve_inputs(
    inputs: Sequence[str | os.PathLike], *, features: str | os.PathLike | None = None
) -> tuple[list[Source], list[Path]]:
    """Feature sources and video files named by `inputs`: feature `.npy` files, directories of
    them (or of videos), manifests (CSV / `.list` / `.txt`; a video path is looked up in
    `features` when given, else it is a video to extract)."""
    found = _Inputs(features)
    for raw in inputs:
        found.add(Path(raw))
    return found.unique_sources(), found.videos


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
    opts = ExtractOptions.from_record(
        ex, weights=weights, device=device, patches=PATCHES in run.model.inputs
    )
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
