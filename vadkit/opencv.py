"""OpenCV, imported with its own and FFmpeg's console logging silenced.

A video OpenCV cannot open makes FFmpeg print lines such as `[mov,mp4,... @ 0x...] moov atom not
found` on stderr, before (and unlike) vadkit's own one-line error. The levels are read once, when
cv2 is first imported, so every vadkit module imports cv2 from here. A user who wants the
library's messages back sets OPENCV_FFMPEG_LOGLEVEL / OPENCV_LOG_LEVEL (kept when set).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

import cv2  # noqa: E402

__all__ = ["cv2"]
