"""Options shared by the commands that read ground truth (`vadkit eval`, `vadkit plot ...`).

Not a command module: it registers nothing. A library check of a single option value runs as
that option's callback (`usage`), so that a bad value is a usage error (exit 2) rather than a
data error (exit 1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from vadkit.errors import VadkitError
from vadkit.io.annotations import Annotations, check_list_file, read_annotations
from vadkit.io.scores import ScoreMeta, read_scores


class AnnotationFormat(str, Enum):
    auto = "auto"
    ucf = "ucf"
    ucf_frames = "ucf-frames"
    xd = "xd"
    shanghaitech = "shanghaitech"
    csv = "csv"
    viper = "viper"
    legacy = "legacy"


def usage(check: Callable[[Any], Any], hint: str | None = None) -> Callable[[Any], Any]:
    """An option callback running the library's `check` on the value: exit 2 if it refuses."""

    def callback(value: Any) -> Any:
        if value is not None:
            try:
                check(value)
            except VadkitError as e:
                raise typer.BadParameter(str(e), param_hint=hint) from None
        return value

    return callback


_FORMAT_HELP = (
    "Ground-truth format. auto: a directory is shanghaitech (VID.npy 0/1 frame masks) or, "
    "holding *.xml files, viper; a .xml file is viper (ViPER-GT XML, the Mini-drone "
    "dataset's format); a .npy is legacy (concatenated RTFM/MGFN gt, needs --list), a .csv is "
    "csv (video,start,end[,class][,frames]); a text file is ucf ('name class s1 e1 s2 e2'), "
    "ucf-frames ('Class/name.mp4 nframes class s1 e1 s2 e2') or xd ('name s1 e1 [s2 e2 ...]', "
    "unlisted videos are normal) by its first line."
)
_ONE_BASED_HELP = (
    "Frame numbers in the annotation count from 1 (--one-based) or 0 (--zero-based). Default: "
    "zero-based for every interval format but viper, whose framespans are one-based."
)
_INCLUSIVE_HELP = (
    "Whether an interval's end frame is anomalous too. Default for every interval format: "
    "end-inclusive (UCF-Crime's 'Shooting022 ... 2850 3300' marks frames 2850-3300)."
)

AnnotationsHelp = "Ground truth: an annotation file, or a directory of frame masks or ViPER files."
AnnotationsOpt = Annotated[
    Path,
    typer.Option("--annotations", "-a", help=AnnotationsHelp, show_default=False),
]
OptionalAnnotationsOpt = Annotated[
    Path | None,
    typer.Option(
        "--annotations",
        "-a",
        help=AnnotationsHelp + " Optional: without it nothing is shaded.",
        show_default=False,
    ),
]
FormatOpt = Annotated[
    AnnotationFormat,
    typer.Option("--annotations-format", "-f", help=_FORMAT_HELP, case_sensitive=False),
]
# the old spelling, still accepted, not listed by --help
FormatAliasOpt = Annotated[
    AnnotationFormat | None,
    typer.Option(
        "--format", hidden=True, case_sensitive=False, help="Old spelling of --annotations-format."
    ),
]
ListOpt = Annotated[
    Path | None,
    typer.Option(
        "--list",
        help="legacy format: the test-feature list in gt order; each line a feature path, "
        "optionally followed by its snippet count t (the gt holds 16·t entries per video).",
    ),
]
OneBasedOpt = Annotated[bool | None, typer.Option("--one-based/--zero-based", help=_ONE_BASED_HELP)]
InclusiveOpt = Annotated[
    bool | None, typer.Option("--end-inclusive/--end-exclusive", help=_INCLUSIVE_HELP)
]
ViperObjectsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--viper-objects",
        help="viper format: the OBJECT descriptors whose framespans are anomalous "
        "(NAME,NAME,... or the option repeated; default: all of them).",
        metavar="NAME,...",
        show_default=False,
    ),
]
ViperWhereOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--viper-where",
        help="viper format: keep only the frames at which an object's attribute has this "
        "value, ATTRIBUTE=VALUE (e.g. Action=Fighting; repeat for several, all must hold).",
        metavar="ATTRIBUTE=VALUE",
        show_default=False,
    ),
]


@dataclass
class GroundTruth:
    """The ground-truth options of a command, gathered."""

    path: Path
    format: AnnotationFormat = AnnotationFormat.auto
    list_file: Path | None = None
    one_based: bool | None = None
    end_inclusive: bool | None = None
    viper_objects: list[str] | None = None
    viper_where: list[str] | None = None

    def read(self, snippets: dict[str, int] | None = None) -> Annotations:
        usage(lambda f: check_list_file(self.path, self.format.value, f), "--list")(self.list_file)
        return read_annotations(
            self.path,
            format=self.format.value,
            one_based=self.one_based,
            end_inclusive=self.end_inclusive,
            list_file=self.list_file,
            snippets=snippets,
            viper_objects=self.viper_objects,
            viper_where=self.viper_where,
        )


def load_scores(scores_dir: Path) -> tuple[dict, dict[str, ScoreMeta]]:
    """({video: frame scores}, {video: metadata}) of a score directory."""
    scored = read_scores(scores_dir)
    metas = {v: m for v, (_, m) in scored.items() if m is not None}
    return {v: a for v, (a, _) in scored.items()}, metas


def load(scores_dir: Path, gt: GroundTruth) -> tuple[dict, dict[str, ScoreMeta], Annotations]:
    """Scores, their metadata and the ground truth (the legacy gt told the snippet counts)."""
    usage(lambda f: check_list_file(gt.path, gt.format.value, f), "--list")(gt.list_file)
    arrays, metas = load_scores(scores_dir)
    ann = gt.read({v: m.snippets for v, m in metas.items()})
    return arrays, metas, ann
