"""Tiny synthetic batches for the render and report tests (not a test module).

`make_batch` writes short videos (a bright square that appears in the anomalous ones), their
scores as `vadkit score` writes them, optionally evidence files following the contract of
`vadkit score --evidence` (`VID_evidence.npy` `(snippets, P)` plus `extra["evidence"]` in
`VID.json`), and a CSV annotation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

import vadkit.evidence as ev
from vadkit.io.scores import ScoreMeta, write_scores
from vadkit.opencv import cv2

GRIDS = {"patch23": [2, 3, 64, 74], "patch35": [3, 5, 42, 44], "patch47": [4, 7, 32, 32]}
PATCH_FRAME = [128, 224]  # h, w
P = 49


@dataclass
class Clip:
    name: str
    event: tuple[int, int] | None  # frames [a, b) with the event, None: a normal video


def write_video(path: Path, frames: int, fps: float, size=(64, 48), event=None) -> None:
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    for i in range(frames):
        img = np.full((h, w, 3), 60 + (i % 8) * 4, np.uint8)
        if event is not None and event[0] <= i < event[1]:
            img[h // 2 :, w // 2 :] = (40, 230, 250)  # the event: the bottom-right quarter
        writer.write(img)
    writer.release()


def curve(frames: int, event) -> np.ndarray:
    s = np.full(frames, 0.1, np.float32)
    if event is not None:
        s[event[0] : event[1]] = 0.9
    return s


def evidence_rows(snippets: int) -> np.ndarray:
    """Evidence that points at the bottom-right quarter: its patches get 1, others 0."""
    regions = ev.patch_regions(GRIDS, PATCH_FRAME)
    centre = (regions[:, :2] + regions[:, 2:]) / 2
    row = ((centre[:, 0] > 0.5) & (centre[:, 1] > 0.5)).astype(np.float32)
    return np.tile(row, (snippets, 1))


def make_batch(
    root: Path,
    clips: list[Clip],
    *,
    frames: int = 40,
    fps: float = 10.0,
    size=(64, 48),
    evidence: bool = False,
    videos: bool = True,
) -> tuple[Path, Path, Path]:
    """(scores dir, videos dir, annotations.csv) of `clips` under `root`."""
    sdir, vdir = root / "scores", root / "videos"
    sdir.mkdir(parents=True, exist_ok=True)
    vdir.mkdir(parents=True, exist_ok=True)
    lines = ["video,start,end,class"]
    snippets = -(-frames // 16)
    for c in clips:
        extra = {}
        if evidence:
            np.save(sdir / f"{c.name}_evidence.npy", evidence_rows(snippets))
            extra["evidence"] = {
                "file": f"{c.name}_evidence.npy",
                "method": "test",
                "patch_grids": GRIDS,
                "patch_frame_size": PATCH_FRAME,
                "snippet_length": 16,
            }
        meta = ScoreMeta(c.name, frames, 16, snippets, model="test", extra=extra)
        write_scores(sdir, meta, curve(frames, c.event))
        if videos:
            write_video(vdir / f"{c.name}.mp4", frames, fps, size, c.event)
        ev_text = f"{c.event[0]},{c.event[1] - 1},Fighting" if c.event else ",,Normal"
        lines.append(f"{c.name},{ev_text}")
    ann = root / "annotations.csv"
    ann.write_text("\n".join(lines) + "\n")
    return sdir, vdir, ann
