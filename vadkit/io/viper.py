"""ViPER-GT XML ground truth (the Mini-drone Video Dataset's format, NIST F4DE's TRECVID files).

A ViPER file has a `<config>` declaring descriptors (`FILE` Information, `OBJECT` kinds and
their typed attributes) and a `<data>` with one `<sourcefile filename=...>` per video:

- the video id is the `filename` without a `file:` prefix, directory or extension;
- its frame count is the `Information` file's `NUMFRAMES` (`FRAMERATE` is kept as `fps`);
- every `<object name= id= framespan=>` is one instance of an OBJECT descriptor; a framespan is
  space-separated `start:end` pairs, **1-based and inclusive** (`"1:5 8:12"` = 10 frames);
- attribute values (`<data:bbox framespan= x= y= width= height=>`, `<data:svalue value=>`, ...)
  carry their own framespans when the attribute is dynamic.

The anomalous frames of a video are the union of the spans of the selected objects: every
OBJECT descriptor by default, or those named in `objects`. A `where` filter `NAME=VALUE` keeps
only the frames at which an object's attribute NAME has the value VALUE (a value without a
framespan holds over the whole object; an object without the attribute is dropped): datasets
that put the behaviour in an attribute (`Action=Fighting`) are read this way. The bounding
boxes of the selected objects are kept (`VideoTruth.boxes`, `Annotations.boxes(video, frame)`).

Only the standard library parses the XML (expat, the parser under `xml.etree`). Entity
declarations are refused before parsing (a billion-laughs file never expands), no DTD or
external entity is ever fetched, and a malformed file is one error naming the file, line and
element.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

from vadkit.errors import VadkitError

# (one_based, end_inclusive) of ViPER framespans
VIPER_CONVENTION = (True, True)
_SPAN = re.compile(r"^(\d+):(\d+)$")


@dataclass(frozen=True)
class Box:
    """One bounding box of an object over frames `[start, stop)` (0-based, half-open)."""

    start: int
    stop: int
    x: int
    y: int
    width: int
    height: int
    object: str  # the OBJECT descriptor (`PERSON`, `ObjectPut`)
    object_id: str
    attribute: str  # the bbox attribute (`LOCATION`, `BoundingBox`)


@dataclass
class ViperVideo:
    video: str
    source: str  # "file:line" of its <sourcefile>
    frame_count: int | None
    fps: float | None
    intervals: list[tuple[int, int]]  # 0-based half-open, merged
    classes: tuple[str, ...]  # the selected OBJECT descriptors that mark frames
    boxes: list[Box] = field(default_factory=list)


@dataclass
class _Node:
    tag: str  # local name, namespace dropped
    attrs: dict[str, str]
    line: int
    children: list[_Node] = field(default_factory=list)

    def find(self, tag: str) -> list[_Node]:
        return [c for c in self.children if c.tag == tag]

    def describe(self) -> str:
        keys = [f"{k}={self.attrs[k]!r}" for k in ("name", "id", "filename") if k in self.attrs]
        return "<" + " ".join([self.tag, *keys]) + ">"


# -- XML -----------------------------------------------------------------------------------------
def parse_xml(path: Path) -> _Node:
    """The element tree of `path` with line numbers, or one error naming line and element."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise VadkitError(f"{path}: unreadable ViPER file ({e.strerror})") from None
    if re.search(rb"<!ENTITY", data, re.IGNORECASE):
        raise VadkitError(
            f"{path}: the XML declares entities (<!ENTITY ...>); ViPER files have none and "
            f"entity expansion is refused"
        )
    parser = expat.ParserCreate(namespace_separator="}")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack: list[_Node] = [_Node("#document", {}, 0)]

    def start(name: str, attrs: dict[str, str]) -> None:
        node = _Node(name.rsplit("}", 1)[-1], attrs, parser.CurrentLineNumber)
        stack[-1].children.append(node)
        stack.append(node)

    def end(_name: str) -> None:
        stack.pop()

    def refuse_entity(*_args) -> None:
        raise VadkitError(f"{path}:{parser.CurrentLineNumber}: XML entity declarations are refused")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.EntityDeclHandler = refuse_entity
    try:
        parser.Parse(data, True)
    except expat.ExpatError as e:
        inside = f" inside {stack[-1].describe()} opened on line {stack[-1].line}"
        raise VadkitError(
            f"{path}:{e.lineno}: malformed XML: {expat.ErrorString(e.code)} (column "
            f"{e.offset + 1}){inside if len(stack) > 1 else ''}"
        ) from None
    roots = stack[0].children
    if not roots or roots[0].tag != "viper":
        tag = roots[0].tag if roots else "(none)"
        raise VadkitError(f"{path}: not a ViPER-GT file (root element <{tag}>, expected <viper>)")
    return roots[0]


# -- values --------------------------------------------------------------------------------------
def parse_framespan(
    text: str, where: str, convention: tuple[bool, bool] = VIPER_CONVENTION
) -> list[tuple[int, int]]:
    """`"1:5 8:12"` → `[(0, 5), (7, 12)]`: 0-based half-open ranges (ViPER's spans are 1-based
    inclusive unless `convention` (one_based, end_inclusive) says otherwise)."""
    one_based, inclusive = convention
    out = []
    for part in text.split():
        m = _SPAN.match(part)
        if not m:
            raise VadkitError(
                f"{where}: bad framespan {text!r}; expected 'start:end' pairs such as '1:5 8:12'"
            )
        s, e = int(m.group(1)), int(m.group(2))
        if e < s:
            raise VadkitError(f"{where}: framespan {part!r} ends before it starts")
        a = s - 1 if one_based else s
        b = (e if inclusive else e - 1) + (0 if one_based else 1)
        if a < 0:
            raise VadkitError(f"{where}: frame 0 in framespan {text!r}, but ViPER counts from 1")
        out.append((a, max(a, b)))
    return out


def merge(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Union of half-open ranges, sorted, touching ranges joined."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(s for s in spans if s[1] > s[0]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def intersect(x: list[tuple[int, int]], y: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Intersection of two merged lists of half-open ranges."""
    out = []
    for a, b in x:
        for c, d in y:
            lo, hi = max(a, c), min(b, d)
            if hi > lo:
                out.append((lo, hi))
    return merge(out)


def parse_where(clauses: Sequence[str] | None) -> list[tuple[str, str]]:
    """`["Action=Fighting"]` → `[("Action", "Fighting")]`, or refuse a clause without `=`."""
    out = []
    for c in clauses or ():
        for part in c.split(","):
            name, eq, value = part.partition("=")
            if not eq or not name.strip():
                raise VadkitError(
                    f"--viper-where {part!r}: expected ATTRIBUTE=VALUE, e.g. Action=Fighting"
                )
            out.append((name.strip(), value.strip()))
    return out


def _int_attr(node: _Node, key: str, where: str) -> int:
    raw = node.attrs.get(key, "")
    try:
        return int(float(raw))
    except ValueError:
        raise VadkitError(f"{where}: {node.describe()} {key}={raw!r} is not a number") from None


# -- descriptors ---------------------------------------------------------------------------------
@dataclass
class _Selection:
    objects: set[str] | None  # lower-cased descriptor names; None: all OBJECT descriptors
    where: list[tuple[str, str]]
    convention: tuple[bool, bool]


def _object_descriptors(root: _Node) -> set[str]:
    names = set()
    for config in root.find("config"):
        for d in config.find("descriptor"):
            if d.attrs.get("type", "").upper() == "OBJECT":
                names.add(d.attrs.get("name", ""))
    return names


def _information(sf: _Node, where: str) -> tuple[int | None, float | None]:
    """(NUMFRAMES, FRAMERATE) of a sourcefile's Information file."""
    frames, fps = None, None
    for f in sf.find("file"):
        for attr in f.find("attribute"):
            values = attr.children
            if not values:
                continue
            v = values[0]
            src = f"{where.rsplit(':', 1)[0]}:{v.line}"
            if attr.attrs.get("name") == "NUMFRAMES":
                frames = _int_attr(v, "value", src)
                if frames <= 0:
                    raise VadkitError(f"{src}: NUMFRAMES must be positive, got {frames}")
            elif attr.attrs.get("name") == "FRAMERATE":
                try:
                    fps = float(v.attrs.get("value", ""))
                except ValueError:
                    fps = None
    return frames, fps


def _value_spans(
    value: _Node, whole: list[tuple[int, int]], file: str, conv: tuple[bool, bool]
) -> list[tuple[int, int]]:
    span = value.attrs.get("framespan")
    if span is None:
        return whole
    return merge(parse_framespan(span, f"{file}:{value.line}: {value.describe()}", conv))


def _object_frames(obj: _Node, sel: _Selection, file: str) -> list[tuple[int, int]]:
    """The frames `obj` marks under the selection's `where` filter (empty: not selected)."""
    where = f"{file}:{obj.line}: {obj.describe()}"
    if "framespan" not in obj.attrs:
        raise VadkitError(f"{where}: the object has no framespan")
    frames = merge(parse_framespan(obj.attrs["framespan"], where, sel.convention))
    attrs = {a.attrs.get("name", "").lower(): a for a in obj.find("attribute")}
    for name, wanted in sel.where:
        attr = attrs.get(name.lower())
        if attr is None:
            return []
        hits = [
            s
            for v in attr.children
            if v.attrs.get("value", "").lower() == wanted.lower()
            for s in _value_spans(v, frames, file, sel.convention)
        ]
        frames = intersect(frames, merge(hits))
    return frames


def _boxes(obj: _Node, file: str, conv: tuple[bool, bool]) -> list[Box]:
    whole = merge(parse_framespan(obj.attrs["framespan"], f"{file}:{obj.line}", conv))
    out = []
    for attr in obj.find("attribute"):
        for v in attr.find("bbox"):
            where = f"{file}:{v.line}"
            x, y, w, h = (_int_attr(v, k, where) for k in ("x", "y", "width", "height"))
            for a, b in _value_spans(v, whole, file, conv):
                name, oid, an = (
                    obj.attrs.get("name", ""),
                    obj.attrs.get("id", ""),
                    attr.attrs["name"],
                )
                out.append(Box(a, b, x, y, w, h, name, oid, an))
    return out


def _video(sf: _Node, file: Path, sel: _Selection) -> ViperVideo:
    from vadkit.io.manifest import video_id

    src = f"{file}:{sf.line}"
    name = sf.attrs.get("filename", "").strip()
    if not name:
        raise VadkitError(f"{src}: <sourcefile> has no filename")
    vid = video_id(name[len("file:") :] if name.lower().startswith("file:") else name)
    frames, fps = _information(sf, src)
    spans: list[tuple[int, int]] = []
    classes: set[str] = set()
    boxes: list[Box] = []
    for obj in sf.find("object"):
        kind = obj.attrs.get("name", "")
        if sel.objects is not None and kind.lower() not in sel.objects:
            continue
        marked = _object_frames(obj, sel, str(file))
        if marked:
            spans += marked
            classes.add(kind)
            boxes += _boxes(obj, str(file), sel.convention)
    return ViperVideo(vid, src, frames, fps, merge(spans), tuple(sorted(classes)), boxes)


# -- files ---------------------------------------------------------------------------------------
def viper_files(path: Path) -> list[Path]:
    """`path` itself, or the `*.xml` files of a directory (sorted)."""
    if not path.is_dir():
        return [path]
    files = sorted(f for f in path.glob("*.xml") if not f.name.startswith("."))
    if not files:
        raise VadkitError(f"{path}: no ViPER-GT files (*.xml) in the directory")
    return files


def read_viper(
    path: str | Path,
    *,
    objects: Sequence[str] | None = None,
    where: Sequence[str] | None = None,
    convention: tuple[bool, bool] = VIPER_CONVENTION,
) -> list[ViperVideo]:
    """Every video of a ViPER file or a directory of them (see the module docstring).

    `objects`: the OBJECT descriptors whose spans are anomalous (names, case-insensitive; None
    or empty: all); a name declared in no file is an error. `where`: `NAME=VALUE` attribute
    filters, all of which must hold. A video described by two files is an error.
    """
    wanted = [o.strip() for s in objects or () for o in s.split(",") if o.strip()]
    sel = _Selection({o.lower() for o in wanted} or None, parse_where(where), convention)
    videos: dict[str, ViperVideo] = {}
    declared: set[str] = set()
    for f in viper_files(Path(path)):
        root = parse_xml(f)
        declared |= _object_descriptors(root)
        for data in root.find("data"):
            for sf in data.find("sourcefile"):
                v = _video(sf, f, sel)
                if v.video in videos:
                    raise VadkitError(
                        f"{v.source}: video {v.video} is already described at "
                        f"{videos[v.video].source}"
                    )
                videos[v.video] = v
    if not videos:
        raise VadkitError(f"{path}: the ViPER-GT data describes no <sourcefile>")
    unknown = [o for o in wanted if o.lower() not in {d.lower() for d in declared}]
    if unknown:
        raise VadkitError(
            f"--viper-objects {','.join(unknown)}: no such OBJECT descriptor in {path}; declared: "
            f"{', '.join(sorted(declared)) or '(none)'}"
        )
    return list(videos.values())
