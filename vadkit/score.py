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

import numpy as np
import torch

from vadkit.data import Source
from vadkit.devices import resolve_device
from vadkit.errors import VadkitError
from vadkit.evidence import (
    compute_evidence,
    evidence_name,
    evidence_record,
    is_evidence_file,
    write_evidence,
)
from vadkit.inference import (  # noqa: F401  (re-exported: the scoring API)
    check_features,
    eval_mode,
    frame_scores,
    snippet_scores,
    snippet_to_frame_scores,
    source_bag,
    source_scores,
)
from vadkit.io.artifacts import check_video_name, prepare_output_dir
from vadkit.io.atomic import TMP_PREFIX
from vadkit.io.checkpoint import (  # noqa: F401  (re-exported)
    CHECKPOINT_FORMAT,
    read_checkpoint,
    save_checkpoint,
)
from vadkit.io.features import SNIPPET_LENGTH, FeatureSpec, read_meta
from vadkit.io.hashing import sha256_file
from vadkit.io.manifest import MANIFEST_SUFFIXES, VIDEO_SUFFIXES, is_patch_file, read_manifest
from vadkit.io.scores import FORMAT as SCORES_FORMAT
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
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # a tensor of the wrong shape
        first = " ".join(str(e).split())[:300]
        raise VadkitError(f"{source}: weights do not fit model {meta['model']} ({first})") from None
    if missing or unexpected:
        raise VadkitError(
            f"{source}: weights do not fit model {meta['model']} "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return model


def check_finite_weights(state: dict[str, torch.Tensor], *, source: str) -> None:
    """Refuse weights holding NaN or inf: they score every video NaN (a diverged run)."""
    bad = [k for k, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise VadkitError(
            f"{source}: {len(bad)} of {len(state)} weight tensors hold NaN or inf (first "
            f"{bad[0]}): the training diverged; score with an earlier checkpoint (--checkpoint "
            "best or last) or retrain, e.g. with a smaller --lr"
        )


def load_run(run: str | os.PathLike, *, checkpoint: str = "best", device: str = "auto") -> Run:
    """Load `RUN/best.safetensors` (or `last`, or a checkpoint file) in eval mode."""
    p = checkpoint_path(run, checkpoint)
    state, meta = read_checkpoint(p)
    check_finite_weights(state, source=str(p))
    model = build_model(meta, state, source=str(p))
    dev = resolve_device(device)
    model.to(dev).eval()
    loaded = Run(model, meta, p, sha256_file(p), dev)
    loaded.spec  # noqa: B018  (a malformed feature_spec is refused here, not mid-batch)
    return loaded


# ---------------------------------------------------------------- inputs


def _feature_files(directory: Path) -> list[Path]:
    """Clip feature files of a directory: `VID.npy`, dot-named ones (`.cam1.npy`, as extract
    writes for `.cam1.mp4`) included; not patch files or a writer's temporary files."""
    return sorted(
        p
        for p in directory.glob("*.npy")
        if not p.name.startswith(TMP_PREFIX) and not is_patch_file(p.name)
    )


def _is_video(p: Path) -> bool:
    return p.suffix.lower() in VIDEO_SUFFIXES


class Inputs:
    """What `collect_inputs` found: feature sources, videos to extract, notes for the user
    (skipped patch files) and the input directories an output must not be."""

    def __init__(self, features: str | os.PathLike | None) -> None:
        self.features = None if features is None else Path(features)
        self.sources: list[Source] = []
        self.videos: list[Path] = []
        self.notes: list[str] = []
        self.dirs: list[tuple[Path, str]] = []
        if self.features is not None:
            self.dirs.append((self.features, f"--features {self.features}"))

    def add(self, p: Path) -> None:
        if not p.exists():
            raise VadkitError(f"{p}: no such file or directory")
        if p.is_dir():
            self.add_dir(p)
        elif p.suffix == ".npy":
            self.add_npy(p)
        elif _is_video(p):
            self.videos.append(p)
        elif p.suffix.lower() in MANIFEST_SUFFIXES:
            self.add_manifest(p)
        else:
            raise VadkitError(
                f"{p}: not a feature file (.npy), a video ({', '.join(VIDEO_SUFFIXES[:4])}, …), "
                "a manifest (.csv, .list, .txt) or a directory"
            )

    def add_npy(self, p: Path) -> None:
        if is_patch_file(p.name):
            self.notes.append(
                f"{p}: skipped, an MSIP patch file (its video's VID.npy names the video; "
                "the patch files beside it are read from there)"
            )
            return
        self.sources.append(Source(p.name[:-4], p))

    def add_dir(self, p: Path) -> None:
        self.dirs.append((p, f"input directory {p}"))
        if not os.access(p, os.R_OK | os.X_OK):
            raise VadkitError(f"{p}: cannot read the directory (permission denied)")
        files = _feature_files(p)
        found = [q for q in sorted(p.rglob("*")) if _is_video(q)] if not files else []
        if not files and not found:
            raise VadkitError(f"{p}: no feature files (*.npy) or videos found")
        self.sources += [Source(q.name[:-4], q) for q in files]
        self.videos += found

    def add_manifest(self, p: Path) -> None:
        # labels do not matter for scoring: a label-less list is read as all normal
        for e in read_manifest(p, abnormal_first=0, naming="ucf", notes=self.notes):
            looked_up = None if self.features is None else self.features / f"{e.video}.npy"
            if e.path is not None and e.path.suffix == ".npy":
                self.sources.append(Source(e.video, e.path))
            elif looked_up is not None and (looked_up.exists() or e.path is None):
                self.sources.append(Source(e.video, looked_up))  # missing: named when scored
            elif e.path is not None and _is_video(e.path):
                self.videos.append(e.path)
            else:
                what = "has no path" if e.path is None else f"has path {e.path}, not a video"
                raise VadkitError(
                    f"{p}: video {e.video} {what} and no feature file; pass --features FEATS "
                    "(the directory `vadkit extract` wrote)"
                )

    def unique_sources(self) -> list[Source]:
        seen: dict[str, Path] = {}
        for s in self.sources:
            if s.video in seen and seen[s.video] != s.path:
                raise VadkitError(f"video {s.video} is given twice: {seen[s.video]} and {s.path}")
            seen[s.video] = s.path
        return list({s.video: s for s in self.sources}.values())

    def input_dirs(self) -> list[tuple[Path, str]]:
        """Every directory holding an input: the output must be none of them."""
        out = list(self.dirs)
        parents = {str(s.path.parent): s.path for s in self.sources}
        out += [(Path(d), f"the directory of {path}") for d, path in parents.items()]
        return out


def collect_inputs(
    inputs: Sequence[str | os.PathLike], *, features: str | os.PathLike | None = None
) -> Inputs:
    """`Inputs` of feature `.npy` files, directories of them (or of videos), manifests (CSV /
    `.list` / `.txt`; a video path is looked up in `features` when given, else it is a video
    to extract)."""
    found = Inputs(features)
    for raw in inputs:
        found.add(Path(raw))
    found.sources = found.unique_sources()
    return found


def resolve_inputs(
    inputs: Sequence[str | os.PathLike], *, features: str | os.PathLike | None = None
) -> tuple[list[Source], list[Path]]:
    """Feature sources and video files named by `inputs` (see `collect_inputs`)."""
    found = collect_inputs(inputs, features=features)
    return found.sources, found.videos


def prepare_score_dir(
    out: str | os.PathLike, run: Run | None = None, inputs: Inputs | None = None
) -> Path:
    """Create `out` for scores, or refuse (VadkitError naming both) when it is the run's
    directory or a directory holding inputs, or holds another kind of vadkit artifact
    (features, a run, a synthetic dataset). A directory inside an input directory (or one
    containing it) is fine: every score file is a plain file name directly in `out`."""
    dirs = [] if inputs is None else inputs.input_dirs()
    if run is not None:
        dirs.append((run.path.parent, f"the run {run.path.parent}"))
    return prepare_output_dir(out, own=SCORES_FORMAT, what="scores", inputs=dirs)


# ---------------------------------------------------------------- scoring


def score_source(
    run: Run, src: Source, out: Path, *, evidence: str | None = None
) -> dict[str, Any]:
    """Score one video and write `OUT/VID.npy` + `OUT/VID.json` (and, with an `evidence`
    method, `OUT/VID_evidence.npy`, see `vadkit.evidence`); its summary row. Bad input is a
    VadkitError; a failed write is a `WriteError` (it stops a batch)."""
    check_video_name(src.video, f"{src.path}: ")
    if evidence is None:
        s, ev = source_scores(run.model, src, spec=run.spec, device=run.device), None
    else:
        s, ev = video_evidence(run, src, out, evidence)
    bad = int((~np.isfinite(s)).sum())
    if bad:
        raise VadkitError(
            f"video {src.video} ({src.path}): the model gave {bad} non-finite score(s) (NaN/inf) "
            f"of {s.shape[0]}; nothing written (check the checkpoint {run.path})"
        )
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
    try:
        if ev is not None:
            meta.extra["evidence"] = ev.record
            write_evidence(out, src.video, ev.values)  # before VID.json, which points at it
        path = write_scores(out, meta, frames)
        if ev is None:
            _drop_stale_evidence(out, src.video)
    except OSError as e:
        raise WriteError(
            f"{e.filename or out}: cannot write the scores of {src.video} "
            f"({(e.strerror or str(e)).lower()})"
        ) from None
    row = {
        "video": src.video,
        "status": "scored",
        "path": str(path),
        "snippets": meta.snippets,
        "frames": meta.frame_count,
        "max_score": float(frames.max()) if frames.size else None,
    }
    if ev is not None:
        row["evidence"] = str(out / evidence_name(src.video))
        row["evidence_seconds"] = round(ev.seconds, 4)
    return row


@dataclass
class Evidence:
    """One video's evidence `(t, P)`, its `extra["evidence"]` record and its cost."""

    values: np.ndarray
    record: dict[str, Any]
    seconds: float


def check_evidence_run(run: Run) -> None:
    """Refuse `--evidence` for a model that reads no patches, naming it."""
    if PATCHES not in run.model.inputs:
        raise VadkitError(
            f"--evidence needs a run whose model reads MSIP's patch features (msip stage 2); "
            f"{run.label} ({run.path}) reads clip features only, so there is no patch to "
            "measure"
        )


def video_evidence(run: Run, src: Source, out: Path, method: str) -> tuple[np.ndarray, Evidence]:
    """Snippet scores `(t,)` and the `Evidence` of one video (see `vadkit.evidence`)."""
    from time import perf_counter

    check_evidence_run(run)
    taken = out / evidence_name(src.video)
    if taken.with_suffix(".json").exists():
        raise VadkitError(
            f"video {src.video}: {taken} is the score file of another video ({taken.stem}); "
            "score these videos into separate directories"
        )
    bag = source_bag(run.model, src, spec=run.spec, device=run.device)
    meta = src.meta
    if meta is None or not meta.patch_grids or not meta.patch_frame_size:
        raise VadkitError(
            f"{src.path}: no feature metadata with the patch geometry (patch_grids, "
            "patch_frame_size), so evidence cannot be placed in the frame; extract the video "
            "with `vadkit extract`"
        )
    start = perf_counter()
    with torch.no_grad():
        s = run.model.scores(bag)[0].float().cpu().numpy()
    values, units = compute_evidence(run.model, bag, method=method)
    if not np.isfinite(values).all():
        raise VadkitError(
            f"video {src.video} ({src.path}): the evidence holds NaN or inf; nothing written "
            f"(check the checkpoint {run.path})"
        )
    grids = {
        g: meta.patch_grids[g] for g in run.model.patch_files(run.model.stage, run.model.config)
    }
    record = evidence_record(
        src.video, method, grids, meta.patch_frame_size, meta.snippet_length, units=units
    )
    return s, Evidence(values, record, perf_counter() - start)


def _drop_stale_evidence(out: Path, video: str) -> None:
    """Scored without --evidence: an earlier run's `VID_evidence.npy` no longer matches."""
    stale = out / evidence_name(video)
    if is_evidence_file(stale):
        stale.unlink()


class WriteError(VadkitError):
    """Writing into the output directory failed (full disk, permissions): the whole run stops."""


def failed_row(video: str, path: str | os.PathLike, error: str) -> dict[str, Any]:
    return {"video": video, "status": "failed", "path": str(path), "error": error}


def score_to_dir(
    run: Run,
    sources: Sequence[Source],
    out: str | os.PathLike,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    keep_going: bool = False,
    evidence: str | None = None,
) -> list[dict[str, Any]]:
    """Write `OUT/VID.npy` + `OUT/VID.json` per video (and `OUT/VID_evidence.npy` with an
    `evidence` method, a name of `vadkit.evidence.METHODS`; refused at once for a model that
    reads no patches); return one summary row per video.

    With `keep_going`, a video that cannot be scored (unreadable or unfit features, NaN)
    gets a row with `"status": "failed"` and its `error`, and the others are scored; without
    it the first such VadkitError is raised. A failed write always stops the run."""
    if evidence is not None:
        check_evidence_run(run)
    rows = []
    with eval_mode(run.model):
        for i, src in enumerate(sources):
            try:
                rows.append(score_source(run, src, Path(out), evidence=evidence))
            except WriteError:
                raise
            except VadkitError as e:
                if not keep_going:
                    raise
                rows.append(failed_row(src.video, src.path, str(e)))
            if progress is not None:
                progress(i + 1, len(sources), src.video)
    return rows


def run_extract_options(run: Run, *, device: str, weights: str | None, otherwise: str):
    """The `ExtractOptions` of the extraction the run's training features were made with (an
    error saying `otherwise`, what to do instead, when the run records none)."""
    from vadkit.extract import ExtractOptions

    ex = run.meta.get("extraction")
    if not ex:
        raise VadkitError(
            f"{run.path} records no extraction settings (it was trained on features without "
            f"vadkit metadata); {otherwise}"
        )
    return ExtractOptions.from_record(
        ex, weights=weights, device=device, patches=PATCHES in run.model.inputs
    )


def extract_for_run(
    run: Run,
    videos: Sequence[Path],
    out: str | os.PathLike,
    *,
    device: str = "auto",
    weights: str | None = None,
    progress: Any = None,
    failed: list[dict[str, Any]] | None = None,
) -> list[Source]:
    """Extract `videos` into `out` with the settings recorded in the run's checkpoint (the
    extraction of its training features), so scoring a raw video needs one command.

    A video that fails to extract is a VadkitError, or, when a `failed` list is given, a
    `failed_row` appended to it while the others are extracted. `progress` takes
    `vadkit.extract.Progress` callbacks."""
    from vadkit.extract import extract_videos

    ex = run.meta.get("extraction")
    opts = run_extract_options(
        run, device=device, weights=weights,
        otherwise="extract the videos with `vadkit extract` and score the features",
    )  # fmt: skip
    summary = extract_videos(videos, out, opts, progress=progress)
    if summary.aborted:
        raise VadkitError(summary.aborted)
    bad = {r.path: r for r in summary.failed}
    if bad and failed is None:
        first = summary.failed[0]
        raise VadkitError(
            f"{len(bad)} video(s) failed to extract; first {first.path}: {first.error}"
        )
    for r in summary.failed:
        failed.append(failed_row(r.video, r.path, f"extraction failed: {r.error}"))
    ok = [p for p in videos if str(p) not in bad]
    sources = [Source(p.stem, Path(out) / f"{p.stem}.npy") for p in ok]
    for src in sources:
        _check_weights(src, Path(out), ex)
    return sources


def _check_weights(src: Source, out: Path, ex: dict[str, Any]) -> None:
    meta = read_meta(out, src.video)
    if meta is not None and meta.weights_sha256 != ex["weights_sha256"]:
        raise VadkitError(
            f"{src.path}: extracted with weights {meta.weights_sha256} but the run was trained "
            f"on features of weights {ex['weights_sha256']} ({ex['weights_source']}); pass "
            "--weights with the same file"
        )
