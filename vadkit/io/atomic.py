"""Atomic writes: a file appears under its final name complete, or not at all.

Every writer goes through `atomic_path`: write to a temporary file in the same directory, flush
and fsync, then `os.replace` it onto the final name. A killed process leaves at most a
`.tmp-*` file behind, never a truncated file that a later run would take for a finished one.

While a temporary file is being written its writer holds an advisory lock (`flock`) on it, so
that a process cleaning up the leftovers of killed writers (`remove_if_abandoned`) can tell a
file whose writer died (no lock) from one another process is writing right now (locked).

Every artifact gets the mode an ordinary `open()` would give it (0666 less the umask), also when
a third-party writer (safetensors, cv2.VideoWriter) replaced the temporary file with its own.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

try:
    import fcntl
except ImportError:  # not POSIX (Windows): no locks, and cleanup then removes nothing
    fcntl = None

TMP_PREFIX = ".tmp-"


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux `/proc`)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: the classic swap (briefly visible to other threads)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode an ordinary `open(path, "w")` gives a new file: 0666 less the umask."""
    return 0o666 & ~current_umask()


def respect_umask(path: str | os.PathLike) -> None:
    """Give a file written by another library (safetensors, cv2.VideoWriter, a mkstemp-based
    writer: all may leave 0600) the mode of an ordinary new file, 0666 less the umask."""
    os.chmod(path, file_mode())


def _locked_temp(path: Path, suffix: str) -> tuple[int, Path]:
    """A new temporary file beside `path` and an fd holding an exclusive lock on it.

    A cleaner may lock and remove the file in the instant between its creation and our lock;
    then the name no longer leads to our file and we simply make another one."""
    while True:
        fd, name = tempfile.mkstemp(
            prefix=TMP_PREFIX + path.name + ".", suffix=suffix, dir=path.parent
        )
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a filesystem without locks: cleaners cannot lock it either
            return fd, Path(name)
        try:
            if os.stat(name).st_ino == os.fstat(fd).st_ino:
                return fd, Path(name)
        except FileNotFoundError:
            pass
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success fsync it and rename it onto `path`.

    `suffix` ends the temporary name (writers such as cv2.VideoWriter pick the container from
    it). The writer inside the block may replace the temporary file with its own; the final
    file still gets the umask's mode."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _locked_temp(path, suffix)
    try:
        os.fchmod(fd, file_mode())
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        respect_umask(tmp)  # a third-party writer may have replaced our file (safetensors)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.close(fd)


def remove_if_abandoned(tmp: str | os.PathLike) -> bool:
    """Remove a temporary file of `atomic_path` only if no live process is writing it.

    Its writer holds an exclusive `flock` while it writes; a file we can lock has no live
    writer (killed writers release their locks) and is removed. Returns True if removed."""
    tmp = Path(tmp)
    if fcntl is None:
        return False  # no way to tell a live writer's file from a dead one's: keep it
    try:
        fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False  # a live writer holds it
            raise
        if os.stat(tmp).st_ino != os.fstat(fd).st_ino:
            return False  # the name now leads to another file
        tmp.unlink()
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)


def save_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, sort_keys=False) + "\n")


def save_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
