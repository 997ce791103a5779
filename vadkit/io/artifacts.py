"""What kind of vadkit artifact a directory holds, and the checks every writer makes on its
output directory and on the video names that become file names in it.

Every vadkit artifact says what it is: features, scores and synthetic datasets write JSON with
a `format` key (`vadkit.features`, `vadkit.scores`, `vadkit.synth`); a training run holds
`*.safetensors` checkpoints and `log.jsonl`. A command writing one kind refuses a directory
holding another, so that `score … -o FEATS` cannot replace features with scores, and refuses a
video name that is not a plain file name, so that a manifest cannot make it write elsewhere.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path, PureWindowsPath

from vadkit.errors import VadkitError
from vadkit.io.atomic import TMP_PREFIX

KINDS = {
    "vadkit.features": "features",
    "vadkit.scores": "scores",
    "vadkit.synth": "a synthetic dataset",
}


def _reason(e: OSError) -> str:
    return (e.strerror or type(e).__name__).lower()


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a file name inside an output directory, or None when it can."""
    if not name:
        return "is empty"
    if "\0" in name:
        return "holds a NUL byte"
    if "/" in name or "\\" in name:
        return "holds a path separator"
    if name.startswith(".."):
        return "starts with '..'"
    if name == "." or PureWindowsPath(name).drive or os.path.isabs(name):
        return "is a path, not a name"
    return None


def check_video_name(name: str, where: str = "") -> str:
    """`name`, or a VadkitError (prefixed with `where`, e.g. `list.csv:3: `) when it is not a
    plain file name: a video name becomes `OUT/NAME.npy`, and must stay inside `OUT`."""
    bad = name_problem(name)
    if bad is not None:
        raise VadkitError(
            f"{where}video name {name!r} {bad}; a video name becomes the output file name "
            "(NAME.npy, NAME.json) and must be a plain file name"
        )
    return name


def _json_format(p: Path) -> str | None:
    try:
        obj = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    fmt = obj.get("format") if isinstance(obj, dict) else None
    return fmt if isinstance(fmt, str) else None


def artifacts_in(directory: str | os.PathLike) -> Iterable[tuple[str, str]]:
    """`(kind, description)` of each vadkit artifact file directly in `directory`: kind is a
    `format` (`vadkit.scores`, …) or `run`; description is like `scores (v.json, format
    vadkit.scores)`. Temporary files of a writer are not artifacts."""
    d = Path(directory)
    try:
        entries = sorted(os.scandir(d), key=lambda e: e.name)
    except OSError as e:
        raise VadkitError(f"{d}: cannot read the output directory ({_reason(e)})") from None
    for entry in entries:
        name = entry.name
        if name.startswith(TMP_PREFIX):
            continue
        if name.endswith(".safetensors") or name == "log.jsonl":
            yield "run", f"a training run or checkpoint ({name})"
        elif name.endswith(".json"):
            fmt = _json_format(Path(entry.path))
            if fmt and fmt.startswith("vadkit."):
                yield fmt, f"{KINDS.get(fmt, 'another vadkit artifact')} ({name}, format {fmt})"


def foreign_artifact(directory: str | os.PathLike, own: str) -> str | None:
    """The description of the first artifact in `directory` of another kind than `own` (a
    format such as `vadkit.features`), or None."""
    for kind, description in artifacts_in(directory):
        if kind != own:
            return description
    return None


def same_dir(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except (OSError, RuntimeError):
        return False


def prepare_output_dir(
    out: str | os.PathLike,
    *,
    own: str,
    what: str,
    inputs: Iterable[tuple[str | os.PathLike, str]] = (),
) -> Path:
    """Create `out` for artifacts of format `own` (`what` names them: "scores"), or raise a
    VadkitError naming it: a file; the same directory as one of `inputs` (`(directory,
    description)` pairs); a directory holding another kind of vadkit artifact; one that cannot
    be created or written."""
    out = Path(out)
    for directory, description in inputs:
        if same_dir(out, directory):
            raise VadkitError(
                f"{out}: the output directory is also an input ({description}); writing {what} "
                "there would overwrite it; choose another -o"
            )
    if out.exists() and not out.is_dir():
        raise VadkitError(f"{out}: exists and is not a directory; -o names the {what} directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VadkitError(f"{out}: cannot create the output directory ({_reason(e)})") from None
    foreign = foreign_artifact(out, own)
    if foreign is not None:
        raise VadkitError(
            f"{out}: holds {foreign}, not {what}; writing {what} there would mix with or "
            "overwrite it; choose another -o"
        )
    if not os.access(out, os.W_OK | os.X_OK):
        raise VadkitError(f"{out}: cannot write into the output directory (permission denied)")
    return out


__all__ = [
    "artifacts_in",
    "check_video_name",
    "foreign_artifact",
    "name_problem",
    "prepare_output_dir",
    "same_dir",
]
