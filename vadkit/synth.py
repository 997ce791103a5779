"""A synthetic surveillance world with known ground truth, for the quickstart, examples and tests.

A fixed camera looks at a textured pedestrian area (paving, a road, buildings, trees, benches).
Small figures walk along straight paths at ordinary speeds or stand in small groups; the sensor adds
noise and the light drifts slowly. An anomalous video contains one local event that covers a small
part of the frame for part of the video:

- ``running``:  a person dashes across the scene, about ten times a walking pace;
- ``fighting``: two people who stood talking start to jostle and flail at each other;
- ``falling``:  a walker falls to the ground, struggles there, gets up and walks on;
- ``vehicle``:  a car speeds along the road through the pedestrian area.

Every event is a strong, local motion event, so a motion backbone (I3D) can see it, while the
whole-frame statistics (mean brightness, mean frame difference) are dominated by what varies between
normal videos (lighting level, sensor noise, crowd size). As in MSIP's motivation, the anomaly is
small relative to the frame.

Everything is drawn from seeded generators: the same settings and seed give identical frames, and
(with the same OpenCV build) identical `.mp4` files. Each video has its own generator derived from
``(seed, video index)``, so one video does not depend on how many others are made.

Outputs of `synthesize(out_dir, config)`:

- ``videos/*.mp4``           mp4v-encoded RGB videos, checked to decode back with OpenCV;
- ``train.csv``, ``test.csv``  manifests ``video,label,path`` (1 = contains an anomaly; path relative);
- ``annotations.csv``        ``video,start,end,class`` for the test videos: 0-based inclusive
                             frames, one row per anomalous interval, one row with empty start/end
                             per normal video;
- ``Temporal_Anomaly_Annotation.txt``  the same test ground truth in UCF-Crime's format;
- ``boxes.csv``              ``video,frame,x0,y0,x1,y1``: where the event is, for every frame of
                             every anomalous video (train and test) in which its figures are on
                             screen: the bounding box of their pixels, 0-based, x1/y1 exclusive;
- ``synth.json``             settings, seed, vadkit version and a description of every video.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vadkit import __version__
from vadkit.errors import VadkitError
from vadkit.io.atomic import atomic_path, save_json, save_text
from vadkit.opencv import cv2
from vadkit.video import open_writer

EVENT_CLASSES: dict[str, str] = {
    # CLI name -> class name written to the annotations (UCF-Crime style capitalised names)
    "running": "Running",
    "fighting": "Fighting",
    "falling": "Falling",
    "vehicle": "Vehicle",
}
NORMAL_CLASS = "Normal"
FORMAT = "vadkit.synth"
FORMAT_VERSION = 1

# The world is designed at 160x120 and scales with the frame height.
_DESIGN_HEIGHT = 120.0
_SHIFT = 4  # OpenCV fixed-point drawing: coordinates in 1/16 px, so slow motion is smooth
_ONE = 1 << _SHIFT


@dataclass(frozen=True)
class SynthConfig:
    """Settings of one synthetic dataset. The defaults are the quickstart's preset."""

    videos_train: int = 48
    videos_test: int = 12
    width: int = 160
    height: int = 120
    frames: int = 128
    fps: float = 25.0
    seed: int = 0
    anomaly_fraction: float = 0.5  # share of the videos of each split that contain an event
    classes: tuple[str, ...] = tuple(EVENT_CLASSES)
    # event duration as a fraction of the video: long enough that a video-level label says
    # something about most of its snippets, short enough that every anomalous video also has
    # normal stretches to tell apart (with 24 anomalous training videos, 6 per class, 0.25-0.6 left
    # RTFM at 0.81-0.83 test ROC AUC after 300 steps; 0.4-0.8 reached 0.85-0.90)
    event_length: tuple[float, float] = (0.4, 0.8)
    # size of the figures (people, cars) relative to the scene: 1 is the quickstart's close
    # camera; the wide preset's distant figures are smaller (events under 2 % of the frame)
    figure_scale: float = 1.0

    def validate(self) -> None:
        if self.videos_train < 2 or self.videos_test < 2:
            raise VadkitError(
                f"need at least 2 training and 2 test videos (one normal, one anomalous each), "
                f"got {self.videos_train} and {self.videos_test}"
            )
        if self.width < 32 or self.height < 32 or self.width % 2 or self.height % 2:
            raise VadkitError(
                f"frame size {self.width}x{self.height} is not supported: width and height must be "
                "even and at least 32 (the mp4v encoder needs even sizes)"
            )
        if self.frames < 16:
            raise VadkitError(f"--frames {self.frames}: videos need at least 16 frames")
        if not 0 < self.fps <= 240:
            raise VadkitError(f"--fps {self.fps}: expected a frame rate in (0, 240]")
        if not 0 < self.anomaly_fraction < 1:
            raise VadkitError(
                f"--anomaly-fraction {self.anomaly_fraction}: expected a value strictly between "
                "0 and 1 (both splits need normal and anomalous videos)"
            )
        if not self.classes:
            raise VadkitError("no event classes given; choose from " + ", ".join(EVENT_CLASSES))
        for c in self.classes:
            if c not in EVENT_CLASSES:
                raise VadkitError(
                    f"unknown event class {c!r}; choose from {', '.join(EVENT_CLASSES)}"
                )
        if not 0.1 <= self.figure_scale <= 2:
            raise VadkitError(f"--figure-scale {self.figure_scale:g}: expected 0.1 to 2")
        lo, hi = self.event_length
        if not 0 < lo <= hi <= 1:
            raise VadkitError(
                f"--event-length {lo:g},{hi:g}: expected MIN,MAX with 0 < MIN <= MAX <= 1"
            )

    def settings(self) -> dict[str, Any]:
        d = asdict(self)
        d["classes"] = list(self.classes)
        d["event_length"] = list(self.event_length)
        return d


# --preset name -> the SynthConfig fields it sets (explicit settings override them).
# wide: MSIP's 840x480 frame seen by a distant camera; every event's box (the bounding box of
# its figures in a frame) stays under 2 % of the frame (at most ~1.4 % measured).
PRESETS: dict[str, dict[str, Any]] = {
    "quickstart": {},
    "wide": {"width": 840, "height": 480, "figure_scale": 0.5},
}


def preset_config(name: str, **settings: Any) -> SynthConfig:
    """The SynthConfig of preset `name`, with `settings` (None values ignored) on top."""
    if name not in PRESETS:
        raise VadkitError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    given = {k: v for k, v in settings.items() if v is not None}
    return SynthConfig(**{**PRESETS[name], **given})


@dataclass
class VideoPlan:
    """What one video shows: drawn from the dataset seed before any pixel is rendered."""

    video: str
    index: int
    split: str  # "train" | "test"
    label: int  # 1 = contains an anomalous event
    event: str | None  # key of EVENT_CLASSES, None for a normal video
    intervals: list[tuple[int, int]] = field(default_factory=list)  # 0-based inclusive frames
    scene: int = 0
    walkers: int = 0
    standers: int = 0
    brightness: float = 1.0
    noise_sigma: float = 0.0

    @property
    def class_name(self) -> str:
        return EVENT_CLASSES[self.event] if self.event else NORMAL_CLASS

    def describe(self) -> dict[str, Any]:
        return {
            "video": self.video,
            "split": self.split,
            "label": self.label,
            "class": self.class_name,
            "intervals": [list(iv) for iv in self.intervals],
            "scene": self.scene,
            "walkers": self.walkers,
            "standers": self.standers,
            "brightness": round(self.brightness, 4),
            "noise_sigma": round(self.noise_sigma, 4),
        }


# --------------------------------------------------------------------------- planning


_N_SCENES = 4  # camera views; train and test share them, as in ShanghaiTech


def plan_dataset(config: SynthConfig) -> list[VideoPlan]:
    """Decide every video's content (labels, event classes and intervals, crowd, light, noise)."""
    config.validate()
    plans: list[VideoPlan] = []
    index = 0
    for split, count in (("train", config.videos_train), ("test", config.videos_test)):
        n_abn = min(count - 1, max(1, round(count * config.anomaly_fraction)))
        split_rng = np.random.default_rng([config.seed, 1 if split == "train" else 2])
        # classes cycle through a shuffled order so every class appears in both splits
        order = list(config.classes)
        split_rng.shuffle(order)
        events = [order[i % len(order)] for i in range(n_abn)]
        split_rng.shuffle(events)
        for k in range(count):
            abnormal = k < n_abn
            name = f"{split}_{'abn' if abnormal else 'nrm'}_{(k if abnormal else k - n_abn):03d}"
            rng = np.random.default_rng([config.seed, 0, index])
            plan = VideoPlan(
                video=name,
                index=index,
                split=split,
                label=int(abnormal),
                event=events[k] if abnormal else None,
                scene=int(rng.integers(_N_SCENES)),
                walkers=int(rng.integers(3, 7)),
                standers=int(rng.integers(0, 3)) * 2,
                brightness=float(rng.uniform(0.6, 1.25)),
                noise_sigma=float(rng.uniform(1.0, 8.0)),
            )
            if abnormal:
                lo, hi = config.event_length
                length = int(round(rng.uniform(lo, hi) * config.frames))
                length = max(8, min(config.frames - 2, length))
                start = int(rng.integers(1, config.frames - length + 1))
                plan.intervals = [(start, start + length - 1)]
            plans.append(plan)
            index += 1
    return plans


# --------------------------------------------------------------------------- the scene


@dataclass(frozen=True)
class _Scene:
    background: np.ndarray  # (h, w, 3) uint8 RGB
    ground_top: float  # y where the walkable ground starts (buildings above)
    road: tuple[float, float]  # y range of the road band

    def scale_at(self, y: float, unit: float) -> float:
        return _depth_scale(y, self.ground_top, self.background.shape[0], unit)


# Size of a figure relative to the design units: a person is about 17 * _PERSON design px tall at
# mid depth, so a fight or a car stays well under a tenth of the frame while I3D still sees it.
_PERSON = 1.5


def _depth_scale(y: float, ground_top: float, h: int, unit: float) -> float:
    """Perspective: things near the bottom of the frame are drawn larger."""
    depth = float(np.clip((y - ground_top) / max(1.0, h - ground_top), 0.0, 1.0))
    return unit * _PERSON * (0.65 + 0.55 * depth)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    grid = rng.standard_normal((cells + 1, max(2, round(cells * w / h)) + 1)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _make_scene(seed: int, scene: int, w: int, h: int) -> _Scene:
    rng = np.random.default_rng([seed, 1000, scene])
    u = h / _DESIGN_HEIGHT
    img, texture = _paving(rng, w, h, u)
    ground_top = float(rng.uniform(0.25, 0.34) * h)
    road = _draw_road(img, texture, rng, w, h, u)
    _draw_buildings(img, texture, rng, w, h, u, ground_top)
    img = np.clip(img, 0, 255).astype(np.uint8)
    _draw_street_furniture(img, rng, w, h, u, ground_top, road)
    return _Scene(background=img, ground_top=ground_top, road=road)


def _paving(rng, w: int, h: int, u: float) -> tuple[np.ndarray, np.ndarray]:
    """Float (h, w, 3) paving with joints, and the (h, w) texture the other surfaces reuse."""
    ground = np.array(rng.uniform(95, 150, 3), dtype=np.float32)
    ground = ground * 0.7 + ground.mean() * 0.3  # greyish paving, a different tint per camera
    texture = (
        _smooth_noise(rng, h, w, 3) * 10
        + _smooth_noise(rng, h, w, 12) * 6
        + rng.standard_normal((h, w)).astype(np.float32) * 4
    )
    img = ground[None, None, :] + texture[:, :, None]
    # paving joints
    tile = max(4, int(round(rng.uniform(9, 15) * u)))
    ys, xs = np.mgrid[0:h, 0:w]
    joints = ((ys % tile) == 0) | (((xs + (ys // tile) * (tile // 2)) % (2 * tile)) == 0)
    img[joints] *= 0.86
    return img, texture


def _draw_road(img, texture, rng, w: int, h: int, u: float) -> tuple[float, float]:
    """A horizontal road with kerbs and a dashed centre line; returns its y range."""
    road_mid = float(rng.uniform(0.55, 0.7) * h)
    road_half = 0.1 * h
    road = (road_mid - road_half, road_mid + road_half)
    r0, r1 = int(round(road[0])), int(round(road[1]))
    asphalt = float(rng.uniform(55, 80))
    img[r0:r1] = asphalt + texture[r0:r1, :, None] * 0.5
    img[r0 : r0 + max(1, round(u))] = 170  # kerbs
    img[r1 - max(1, round(u)) : r1] = 170
    dash = max(3, int(round(8 * u)))
    mid = int(round(road_mid))
    for x0 in range(int(rng.integers(0, 2 * dash)), w, 2 * dash):
        img[mid : mid + max(1, round(u)), x0 : x0 + dash] = (210, 200, 120)
    return road


def _draw_buildings(img, texture, rng, w: int, h: int, u: float, ground_top: float) -> None:
    """Buildings along the top edge, with rows of windows."""
    x = -int(rng.integers(0, 20))
    while x < w:
        bw = int(rng.uniform(28, 60) * u)
        top = int(rng.uniform(0.0, 0.12) * h)
        color = rng.uniform(70, 190, 3)
        bottom = int(ground_top)
        img[top:bottom, max(0, x) : x + bw] = color + texture[top:bottom, max(0, x) : x + bw, None]
        win = max(2, int(round(4 * u)))
        wc = rng.uniform(30, 90, 3) if rng.random() < 0.5 else rng.uniform(150, 230, 3)
        for wy in range(top + win, bottom - 2 * win, 3 * win):
            for wx in range(x + win, x + bw - win, 3 * win):
                if 0 <= wx < w:
                    img[wy : wy + win + win // 2, wx : min(w, wx + win)] = wc
        x += bw + int(rng.integers(0, 8))


def _draw_street_furniture(img, rng, w, h, u, ground_top: float, road) -> None:
    """Static structures on the ground: trees, benches, lamp posts (never on the road)."""

    def ground_y() -> float:
        while True:
            y = float(rng.uniform(ground_top + 6 * u, h - 4 * u))
            if not road[0] - 6 * u < y < road[1] + 10 * u:
                return y

    for _ in range(int(rng.integers(2, 5))):  # trees
        tx, ty = float(rng.uniform(0, w)), ground_y()
        s = _depth_scale(ty, ground_top, h, u)
        _line(img, None, (tx, ty), (tx, ty - 12 * s), (80, 60, 40), 2.2 * s)
        green = (int(rng.integers(30, 70)), int(rng.integers(80, 130)), int(rng.integers(30, 60)))
        _disc(img, None, (tx, ty - 16 * s), 6.5 * s, green)
        _disc(img, None, (tx - 2 * s, ty - 18 * s), 3.5 * s, tuple(min(255, c + 25) for c in green))
    for _ in range(int(rng.integers(1, 4))):  # benches
        bx, by = float(rng.uniform(0, w)), ground_y()
        s = _depth_scale(by, ground_top, h, u)
        _line(img, None, (bx - 7 * s, by - 3 * s), (bx + 7 * s, by - 3 * s), (110, 75, 45), 2.5 * s)
        _line(img, None, (bx - 6 * s, by - 2 * s), (bx - 6 * s, by), (60, 60, 60), 1)
        _line(img, None, (bx + 6 * s, by - 2 * s), (bx + 6 * s, by), (60, 60, 60), 1)
    for _ in range(int(rng.integers(1, 3))):  # lamp posts
        lx, ly = float(rng.uniform(0, w)), ground_y()
        s = _depth_scale(ly, ground_top, h, u)
        _line(img, None, (lx, ly), (lx, ly - 24 * s), (50, 50, 55), 1.2 * s)
        _disc(img, None, (lx, ly - 24 * s), 1.8 * s, (235, 230, 190))


# --------------------------------------------------------------------------- drawing


def _fix(p: tuple[float, float]) -> tuple[int, int]:
    return int(round(p[0] * _ONE)), int(round(p[1] * _ONE))


def _line(img, mask, a, b, color, width) -> None:
    t = max(1, int(round(width)))
    cv2.line(img, _fix(a), _fix(b), color, t, cv2.LINE_AA, _SHIFT)
    if mask is not None:
        cv2.line(mask, _fix(a), _fix(b), 255, t, cv2.LINE_8, _SHIFT)


def _disc(img, mask, c, r, color) -> None:
    rr = max(_ONE // 2, int(round(r * _ONE)))
    cv2.circle(img, _fix(c), rr, color, -1, cv2.LINE_AA, _SHIFT)
    if mask is not None:
        cv2.circle(mask, _fix(c), rr, 255, -1, cv2.LINE_8, _SHIFT)


def _poly(img, mask, pts, color) -> None:
    arr = np.array([_fix(p) for p in pts], dtype=np.int32)
    cv2.fillConvexPoly(img, arr, color, cv2.LINE_AA, _SHIFT)
    if mask is not None:
        cv2.fillConvexPoly(mask, arr, 255, cv2.LINE_8, _SHIFT)


@dataclass
class _Look:
    shirt: tuple[int, int, int]
    pants: tuple[int, int, int]
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]

    @classmethod
    def draw(cls, rng: np.random.Generator) -> _Look:
        def col(lo, hi):
            return tuple(int(v) for v in rng.integers(lo, hi, 3))

        skin = (int(rng.integers(120, 235)),) * 1
        skin = (skin[0], int(skin[0] * 0.78), int(skin[0] * 0.62))
        return cls(shirt=col(20, 240), pants=col(15, 110), skin=skin, hair=col(10, 80))


@dataclass
class _Pose:
    x: float  # feet position
    y: float
    scale: float
    tilt: float = 0.0  # rotation of the whole body about the feet (radians, + = clockwise)
    legs: float = 0.0  # horizontal offset of the feet from the hips (design px, signed)
    arm_l: float = 0.15  # arm angles from hanging straight down (radians)
    arm_r: float = -0.15


def _draw_person(img, mask, pose: _Pose, look: _Look) -> None:
    s, c, n = pose.scale, math.cos(pose.tilt), math.sin(pose.tilt)

    def at(lx: float, ly: float) -> tuple[float, float]:
        return pose.x + s * (lx * c - ly * n), pose.y + s * (lx * n + ly * c)

    hip, shoulder = at(0, -6.5), at(0, -11.5)
    _line(img, mask, hip, at(pose.legs, 0), look.pants, 1.7 * s)
    _line(img, mask, hip, at(-pose.legs, 0), look.pants, 1.7 * s)
    _line(img, mask, hip, shoulder, look.shirt, 4.2 * s)
    for a in (pose.arm_l, pose.arm_r):
        hand = at(5.2 * math.sin(a), -11.5 + 5.2 * math.cos(a))
        _line(img, mask, shoulder, hand, look.shirt, 1.4 * s)
        _disc(img, mask, hand, 0.8 * s, look.skin)
    _disc(img, mask, at(0, -15.0), 2.4 * s, look.skin)
    _disc(img, mask, at(0, -15.9), 1.8 * s, look.hair)


def _draw_car(img, mask, x: float, y: float, s: float, heading: int, color) -> None:
    """A car whose rear-wheel contact point is at (x, y); heading +1 drives right."""
    L, H = 24.0 * s, 7.0 * s
    x0 = x - L / 2
    _poly(img, mask, [(x0, y - 2 * s), (x0 + L, y - 2 * s), (x0 + L, y - H), (x0, y - H)], color)
    cab0 = x0 + (L * 0.25 if heading > 0 else L * 0.2)
    cab = [(cab0, y - H), (cab0 + L * 0.55, y - H), (cab0 + L * 0.45, y - H - 5 * s)]
    cab.append((cab0 + L * 0.1, y - H - 5 * s))
    _poly(img, mask, cab, tuple(int(v * 0.8) for v in color))
    glass = [(cab0 + L * 0.14, y - H - 0.5 * s), (cab0 + L * 0.5, y - H - 0.5 * s)]
    glass += [(cab0 + L * 0.42, y - H - 4.2 * s), (cab0 + L * 0.17, y - H - 4.2 * s)]
    _poly(img, mask, glass, (150, 185, 205))
    for wx in (x0 + 5 * s, x0 + L - 5 * s):
        _disc(img, mask, (wx, y - 2 * s), 2.4 * s, (25, 25, 25))
    light = (x0 + L - s, y - H + 1.5 * s) if heading > 0 else (x0 + s, y - H + 1.5 * s)
    _disc(img, mask, light, 1.1 * s, (255, 245, 200))


# --------------------------------------------------------------------------- actors


class _Walker:
    """Walks straight across the ground at an ordinary pace; re-enters on a new path when out."""

    def __init__(self, rng, scene: _Scene, w: int, h: int, unit: float, placed: bool = True):
        self.rng, self.scene, self.w, self.h, self.u = rng, scene, w, h, unit
        self.look = _Look.draw(rng)
        self.speed = float(rng.uniform(0.4, 0.8))  # design px per frame (about 1-2 m/s)
        self.phase = float(rng.uniform(0, 2 * math.pi))
        self._new_path(placed)

    def _new_path(self, placed: bool) -> None:
        rng, w, h, top = self.rng, self.w, self.h, self.scene.ground_top
        margin = 12 * self.u
        if rng.random() < 0.7:  # across, left <-> right
            side = 1 if rng.random() < 0.5 else -1
            a = (-margin if side > 0 else w + margin, rng.uniform(top + 8 * self.u, h))
            b = (w + margin if side > 0 else -margin, rng.uniform(top + 8 * self.u, h))
        else:  # up or down the frame
            a = (rng.uniform(0, w), h + margin)
            b = (rng.uniform(0, w), top + 4 * self.u)
            if rng.random() < 0.5:
                a, b = b, a
        self.a, self.b = np.array(a, dtype=np.float64), np.array(b, dtype=np.float64)
        self.length = float(np.linalg.norm(self.b - self.a))
        self.dist = float(rng.uniform(0, self.length)) if placed else 0.0

    def position(self) -> tuple[float, float]:
        p = self.a + (self.b - self.a) * (self.dist / self.length)
        return float(p[0]), float(p[1])

    def step(self) -> None:
        x, y = self.position()
        s = self.scene.scale_at(y, self.u)
        self.dist += self.speed * s
        self.phase += 2 * math.pi * self.speed / 7.0
        if self.dist >= self.length:
            self._new_path(placed=False)

    def pose(self) -> _Pose:
        x, y = self.position()
        s = self.scene.scale_at(y, self.u)
        swing = math.sin(self.phase)
        return _Pose(x, y, s, legs=2.4 * swing, arm_l=0.35 * swing, arm_r=-0.35 * swing)


class _Stander:
    """Stands and talks: small, slow sways and gestures."""

    def __init__(self, rng, x: float, y: float, s: float, facing: int):
        self.look = _Look.draw(rng)
        self.x, self.y, self.s, self.facing = x, y, s, facing
        self.phase = float(rng.uniform(0, 2 * math.pi))
        self.rate = float(rng.uniform(0.03, 0.08))

    def pose(self, t: int) -> _Pose:
        p = self.phase + self.rate * t
        return _Pose(
            self.x + 0.3 * self.s * math.sin(p),
            self.y,
            self.s,
            tilt=0.03 * math.sin(0.7 * p),
            legs=0.8,
            arm_l=0.15 + 0.25 * max(0.0, math.sin(1.3 * p)) * self.facing,
            arm_r=-0.15,
        )


def _bounce(x: float, lo: float, hi: float) -> tuple[float, int]:
    """Position on a back-and-forth track of [lo, hi] after travelling x; and the heading."""
    span = hi - lo
    k, r = divmod(x, span)
    return (lo + r, 1) if int(k) % 2 == 0 else (hi - r, -1)


class _Event:
    """One anomalous event; `draw(t, img, mask)` draws it (the mask marks its pixels)."""

    def __init__(self, kind: str, interval: tuple[int, int], rng, scene: _Scene, w, h, unit):
        self.kind, (self.start, self.end) = kind, interval
        self.rng, self.scene, self.w, self.h, self.u = rng, scene, w, h, unit
        self.looks = [_Look.draw(rng), _Look.draw(rng)]
        # events happen in the middle of the view, where even a single centre crop sees them
        self.x = float(rng.uniform(0.32, 0.68) * w)
        y = float(rng.uniform(0.5, 0.85) * h)
        road = scene.road
        if road[0] - 6 * unit < y < road[1] + 14 * unit:
            y = min(h - 2 * unit, road[1] + 14 * unit)
        self.y = y
        self.s = scene.scale_at(self.y, unit)
        if (
            kind == "fighting"
        ):  # the widest event: capped so that it stays under a tenth of the frame
            self.s = min(self.s, 0.95 * _PERSON * unit)
        self.direction = 1 if rng.random() < 0.5 else -1
        self.walk = float(rng.uniform(0.45, 0.8))
        # design px per frame, times the depth scale; walkers do 0.4-0.8. The dash is faster than
        # a real sprint: at 3.5-5 the I3D features of a runner stayed close to a walker's
        # (running was the hardest class, ROC AUC 0.79 where the others reached 0.90-0.98)
        self.speed = {"running": rng.uniform(4.9, 7.0), "vehicle": rng.uniform(5.0, 7.0)}.get(
            kind, 0.0
        )
        self.color = tuple(int(v) for v in rng.integers(40, 240, 3))
        self.run_y = float(rng.uniform(scene.road[1] + 10 * unit, h - 2 * unit))

    def active(self, t: int) -> bool:
        return self.start <= t <= self.end

    def drawables(self, t: int) -> list[tuple[float, Callable[[Any, Any], None]]]:
        """(depth y, draw function) pairs for frame t; the caller sorts them by depth."""
        if self.kind == "fighting":
            return self._fighting(t)
        if self.kind == "falling":
            return self._falling(t)
        if not self.active(t):
            return []
        return self._crossing(t)

    def _fighting(self, t: int) -> list[tuple[float, Callable[[Any, Any], None]]]:
        rng, s = self.rng, self.s
        out = []
        for i, side in enumerate((-1, 1)):
            pose = _Pose(self.x + side * 4.0 * s, self.y, s, legs=0.8, arm_l=0.15)
            if self.active(t):
                # shoves and stumbles, bounded so that the pair stays a local event
                pose.x += float(np.clip(rng.normal(0, 3.0), -3.0, 3.0)) * s
                pose.y += float(np.clip(rng.normal(0, 1.2), -2.0, 2.0)) * s
                pose.tilt = float(np.clip(rng.normal(0, 0.35), -0.6, 0.6))
                pose.legs = float(rng.normal(0, 2.5))
                pose.arm_l = -side * float(rng.uniform(0.8, 2.8))
                pose.arm_r = -side * float(rng.uniform(0.3, 2.8))
            else:
                pose.arm_l = -side * (0.2 + 0.15 * math.sin(0.05 * t + i))
            out.append((pose.y, _person_drawer(pose, self.looks[i], self.active(t))))
        return out

    def _falling(self, t: int) -> list[tuple[float, Callable[[Any, Any], None]]]:
        rng, s = self.rng, self.s
        walk = self.walk * s
        if t < self.start:
            x, tilt, legs = self.x - self.direction * walk * (self.start - t), 0.0, None
        elif t > self.end:
            x, tilt, legs = self.x + self.direction * walk * (t - self.end), 0.0, None
        else:
            # thrashing on the ground: the body rolls and jerks, the limbs flail
            x = self.x + float(np.clip(rng.normal(0, 1.5), -2.5, 2.5)) * s
            k = min(t - self.start, self.end - t)  # frames since the fall / before getting up
            down = min(1.0, k / 4.0)
            tilt = self.direction * (math.pi / 2) * down + float(rng.normal(0, 0.3)) * down
            legs = float(np.clip(rng.normal(0, 4.0), -6.0, 6.0)) * down
        if legs is None:
            phase = 2 * math.pi * self.walk * t / 7.0
            legs = 2.4 * math.sin(phase)
            arms = (0.35 * math.sin(phase), -0.35 * math.sin(phase))
        else:
            arms = (float(rng.uniform(-2.5, 2.5)), float(rng.uniform(-2.5, 2.5)))
        pose = _Pose(x, self.y, s, tilt=tilt, legs=legs, arm_l=arms[0], arm_r=arms[1])
        return [(self.y, _person_drawer(pose, self.looks[0], self.active(t)))]

    def _crossing(self, t: int) -> list[tuple[float, Callable[[Any, Any], None]]]:
        """Running or vehicle: a fast crossing of the view while the event is on."""
        s = self.s
        # turn round just out of view, so the event is on screen for (almost) all its interval
        margin = (6.0 if self.kind == "running" else 13.0) * s
        travelled = self.speed * s * (t - self.start) + 2 * s
        if self.direction < 0:
            travelled += self.w + 2 * margin  # start from the right-hand edge
        x, heading = _bounce(travelled, -margin, self.w + margin)
        if self.kind == "running":
            phase = 2 * math.pi * travelled / (11.0 * s)
            swing = math.sin(phase)
            y = self.run_y + 2 * s * math.sin(travelled / (40 * s))
            sy = self.scene.scale_at(y, self.u)
            pose = _Pose(x, y, sy, tilt=0.3 * heading, legs=4.5 * swing, arm_l=1.1 * swing)
            pose.arm_r = -1.1 * swing
            return [(y, _person_drawer(pose, self.looks[0], True))]
        # vehicle: on the road, the far lane when heading left
        r0, r1 = self.scene.road
        y = r1 - 0.15 * (r1 - r0) if heading > 0 else r0 + 0.55 * (r1 - r0)
        sy = self.scene.scale_at(y, self.u)
        color = self.color

        def draw(img, mask):
            _draw_car(img, mask, x, y, sy, heading, color)

        return [(y, draw)]


def _person_drawer(pose: _Pose, look: _Look, anomalous: bool):
    def draw(img, mask):
        _draw_person(img, mask if anomalous else None, pose, look)

    return draw


# --------------------------------------------------------------------------- rendering


def render_video(plan: VideoPlan, config: SynthConfig) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield `(frame, event_mask)` per frame: RGB uint8 `(h, w, 3)` and bool `(h, w)`.

    The mask marks the pixels of the anomalous event's figures while the event is on (all False in
    normal videos and outside the annotated interval).
    """
    w, h = config.width, config.height
    unit = config.height / _DESIGN_HEIGHT * config.figure_scale  # the actors' unit
    scene = _make_scene(config.seed, plan.scene, w, h)
    rng = np.random.default_rng([config.seed, 1, plan.index])
    walkers = [_Walker(rng, scene, w, h, unit) for _ in range(plan.walkers)]
    standers: list[_Stander] = []
    for _ in range(plan.standers // 2):
        x = float(rng.uniform(0.1, 0.9) * w)
        y = float(rng.uniform(scene.ground_top + 10 * unit, h - 2 * unit))
        s = scene.scale_at(y, unit)
        standers += [_Stander(rng, x - 4.5 * s, y, s, 1), _Stander(rng, x + 4.5 * s, y, s, -1)]
    event = None
    if plan.event is not None:
        event = _Event(plan.event, plan.intervals[0], rng, scene, w, h, unit)

    # light: a level per video, a slow drift over the video, a slight colour cast; sensor noise
    drift = float(rng.uniform(0.03, 0.1))
    period = float(rng.uniform(2.0, 5.0)) * config.frames
    phase = float(rng.uniform(0, 2 * math.pi))
    tint = (1.0 + rng.normal(0, 0.04, 3)).astype(np.float32)
    noise_rng = np.random.default_rng([config.seed, 2, plan.index])
    background = scene.background
    for t in range(config.frames):
        img = background.copy()
        mask = np.zeros((h, w), dtype=np.uint8)
        items: list[tuple[float, Callable[[Any, Any], None]]] = []
        for p in standers:
            pose = p.pose(t)
            items.append((pose.y, _person_drawer(pose, p.look, False)))
        for wk in walkers:
            pose = wk.pose()
            items.append((pose.y, _person_drawer(pose, wk.look, False)))
            wk.step()
        if event is not None:
            items += event.drawables(t)
        for _, draw in sorted(items, key=lambda it: it[0]):
            draw(img, mask)
        gain = plan.brightness * (1.0 + drift * math.sin(2 * math.pi * t / period + phase))
        frame = img.astype(np.float32) * (gain * tint)
        frame += noise_rng.standard_normal((h, w, 3), dtype=np.float32) * plan.noise_sigma
        yield np.clip(frame + 0.5, 0, 255).astype(np.uint8), mask > 0


def _write_mp4(path: Path, frames: Iterator[np.ndarray], fps: float, size: tuple[int, int]) -> int:
    """Encode RGB frames to `path` atomically; decode it back to check it; return frame count.

    cv2.VideoWriter picks the container from the file extension, so the temporary file ends in
    `.mp4`; the file gets the umask's mode like every other artifact.
    """
    with atomic_path(path, suffix=".mp4") as tmp:
        writer = open_writer(tmp, path, fps, size)
        written = 0
        try:
            for frame in frames:
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                written += 1
        finally:
            writer.release()
        decoded = count_frames(tmp)
        if decoded != written:
            raise VadkitError(
                f"{path}: wrote {written} frames but OpenCV decodes {decoded} back; the local "
                "OpenCV/FFmpeg build cannot round-trip mp4v (or the disk is full)"
            )
    return written


def count_frames(path: str | os.PathLike) -> int:
    """Number of frames OpenCV decodes from a video (read through, not the header's claim)."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VadkitError(f"{path}: OpenCV cannot open this video")
        n = 0
        while cap.grab():
            n += 1
        return n
    finally:
        cap.release()


# --------------------------------------------------------------------------- the dataset


def _check_out_dir(out: Path) -> list[str]:
    """Refuse to write into a non-empty directory that is not a previous synth output.

    Returns the videos a previous output listed (so stale ones can be removed).
    """
    if out.exists() and not out.is_dir():
        raise VadkitError(f"{out}: exists and is not a directory; choose another output path")
    meta = out / "synth.json"
    if out.is_dir() and any(out.iterdir()) and not meta.exists():
        raise VadkitError(
            f"{out}: directory is not empty and holds no synth.json (not a vadkit synth output); "
            "choose a new or empty directory"
        )
    if meta.exists():
        try:
            old = json.loads(meta.read_text())
            return [v["video"] for v in old.get("videos", [])]
        except (ValueError, KeyError, TypeError) as e:
            raise VadkitError(
                f"{meta}: unreadable synth metadata ({e}); remove the directory"
            ) from None
    return []


def annotation_rows(plans: Sequence[VideoPlan]) -> tuple[str, str]:
    """The test split's ground truth as (annotations.csv text, UCF-style annotation text)."""
    csv_lines, ucf_lines = ["video,start,end,class"], []
    for p in plans:
        if p.split != "test":
            continue
        if p.label:
            for s, e in p.intervals:
                csv_lines.append(f"{p.video},{s},{e},{p.class_name}")
        else:
            csv_lines.append(f"{p.video},,,{p.class_name}")
        ivs = [v for iv in p.intervals[:2] for v in iv]
        ivs += [-1] * (4 - len(ivs))
        ucf_lines.append(f"{p.video}.mp4  {p.class_name}  " + "  ".join(str(v) for v in ivs))
    return "\n".join(csv_lines) + "\n", "\n".join(ucf_lines) + "\n"


def synthesize(
    out_dir: str | os.PathLike,
    config: SynthConfig,
    *,
    on_video: Callable[[VideoPlan], None] | None = None,
) -> dict[str, Any]:
    """Write the dataset described in the module docstring; return a summary dict.

    `on_video(plan)` is called after each video is written (for progress display). A failed
    write (full disk, read-only directory) is a VadkitError naming the output directory.
    """
    config.validate()
    out = Path(out_dir)
    previous = _check_out_dir(out)
    plans = plan_dataset(config)
    try:
        boxes = _write_videos(out / "videos", plans, config, previous, on_video)
        _write_ground_truth(out, plans, config, boxes)
    except OSError as e:
        reason = (e.strerror or type(e).__name__).lower()
        raise VadkitError(f"{out}: cannot write the synthetic dataset ({reason})") from None
    return {
        "out": str(out),
        "videos": len(plans),
        "train": str(out / "train.csv"),
        "test": str(out / "test.csv"),
        "annotations": str(out / "annotations.csv"),
        "ucf_annotations": str(out / "Temporal_Anomaly_Annotation.txt"),
        "boxes": str(out / "boxes.csv"),
        "metadata": str(out / "synth.json"),
        "train_videos": sum(p.split == "train" for p in plans),
        "test_videos": sum(p.split == "test" for p in plans),
        "anomalous_videos": sum(p.label for p in plans),
        "settings": config.settings(),
    }


BOXES_HEADER = "video,frame,x0,y0,x1,y1"


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box `(x0, y0, x1, y1)` (x1/y1 exclusive) of a mask's True pixels; None if none."""
    cols, rows = np.flatnonzero(mask.any(0)), np.flatnonzero(mask.any(1))
    if cols.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _frames_and_boxes(
    plan: VideoPlan, config: SynthConfig, boxes: list[str]
) -> Iterator[np.ndarray]:
    """The frames of `plan`, appending a `boxes.csv` row per frame that shows its event."""
    for t, (frame, mask) in enumerate(render_video(plan, config)):
        box = mask_box(mask) if plan.label else None
        if box is not None:
            boxes.append(f"{plan.video},{t}," + ",".join(map(str, box)))
        yield frame


def read_boxes(path: str | os.PathLike) -> dict[str, dict[int, tuple[int, int, int, int]]]:
    """`boxes.csv` as `{video: {frame: (x0, y0, x1, y1)}}` (pixels, x1/y1 exclusive)."""
    p = Path(path)
    try:
        lines = p.read_text().splitlines()
    except OSError as e:
        raise VadkitError(f"{p}: cannot read the event boxes ({e.strerror or e})") from None
    if not lines or lines[0] != BOXES_HEADER:
        raise VadkitError(f"{p}: not a synth boxes file (header {BOXES_HEADER!r})")
    out: dict[str, dict[int, tuple[int, int, int, int]]] = {}
    for n, line in enumerate(lines[1:], start=2):
        video, *rest = line.split(",")
        try:
            frame, x0, y0, x1, y1 = (int(v) for v in rest)
        except ValueError:
            raise VadkitError(f"{p}:{n}: expected {BOXES_HEADER}, got {line!r}") from None
        out.setdefault(video, {})[frame] = (x0, y0, x1, y1)
    return out


def _write_videos(
    videos: Path,
    plans: Sequence[VideoPlan],
    config: SynthConfig,
    previous: Sequence[str],
    on_video: Callable[[VideoPlan], None] | None,
) -> list[str]:
    """Write every video; the `boxes.csv` rows of their events."""
    boxes: list[str] = []
    for plan in plans:
        n = _write_mp4(
            videos / f"{plan.video}.mp4",
            _frames_and_boxes(plan, config, boxes),
            config.fps,
            (config.width, config.height),
        )
        if n != config.frames:
            raise VadkitError(f"{plan.video}: rendered {n} frames, expected {config.frames}")
        if on_video is not None:
            on_video(plan)
    current = {p.video for p in plans}
    for stale in previous:
        if stale not in current:
            with contextlib.suppress(OSError):
                (videos / f"{stale}.mp4").unlink()
    return boxes


def _write_ground_truth(
    out: Path, plans: Sequence[VideoPlan], config: SynthConfig, boxes: Sequence[str]
) -> None:
    """The manifests, both annotation files, the event boxes and synth.json (written last: it
    marks the directory as a complete synth output)."""
    from vadkit.io.manifest import Entry, write_manifest

    videos = out / "videos"
    for split in ("train", "test"):
        entries = [
            Entry(p.video, p.label, videos / f"{p.video}.mp4") for p in plans if p.split == split
        ]
        write_manifest(out / f"{split}.csv", entries)
    csv_text, ucf_text = annotation_rows(plans)
    save_text(out / "annotations.csv", csv_text)
    save_text(out / "Temporal_Anomaly_Annotation.txt", ucf_text)
    save_text(out / "boxes.csv", "\n".join([BOXES_HEADER, *boxes]) + "\n")
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "vadkit_version": __version__,
        "seed": config.seed,
        "settings": config.settings(),
        "frame_indexing": "0-based, inclusive intervals (annotations.csv and the UCF-style file)",
        "boxes": "boxes.csv: video,frame,x0,y0,x1,y1 per frame showing an event (pixels, 0-based, "
        "x1/y1 exclusive; train and test)",
        "videos": [dict(p.describe(), frames=config.frames) for p in plans],
    }
    save_json(out / "synth.json", meta)
