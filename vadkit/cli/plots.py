"""`vadkit plot`: figures of scores, training runs, ROC / PR curves and feature files.

`vadkit plot VIDEO... -s SCORES -o x.png` is `vadkit plot scores VIDEO...`: a first argument
that names no sub-command is a video (`vadkit plot scores training` plots a video called
`training`). The commands only parse options and print; computing and drawing are
`vadkit.plot`'s. torch is never imported.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from typer.core import TyperGroup

from vadkit.cli.base import app
from vadkit.cli.gt import (
    AnnotationFormat,
    AnnotationsOpt,
    FormatAliasOpt,
    FormatOpt,
    GroundTruth,
    InclusiveOpt,
    ListOpt,
    OneBasedOpt,
    OptionalAnnotationsOpt,
    ViperObjectsOpt,
    ViperWhereOpt,
    load,
    load_scores,
    usage,
)
from vadkit.plot import figure_format


class _PlotGroup(TyperGroup):
    """A group whose first argument, when it names no sub-command, is a video of `scores`."""

    default = "scores"

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default, *args]
        return super().parse_args(ctx, args)

    def format_help(self, ctx, formatter):
        super().format_help(ctx, formatter)
        cmd = self.commands[self.default]
        sub = cmd.context_class(cmd, info_name=self.default, parent=ctx)
        formatter.write_paragraph()
        formatter.write_text(f"vadkit plot VIDEO... is vadkit plot {self.default} VIDEO...:")
        cmd.format_options(sub, formatter)


plot_app = typer.Typer(
    cls=_PlotGroup,
    name="plot",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Figures: a video's scores over its ground truth (the default: vadkit plot VIDEO... "
    "-s SCORES -o x.png), training curves, ROC / PR curves, views of a feature file.\n\n"
    "Every figure is .png, .jpg, .svg or .pdf, by the extension of -o. A video named like a "
    "sub-command (training, curves, features, scores) is plotted as vadkit plot scores NAME.",
)
app.add_typer(plot_app, name="plot")


def _is_dir(out: str) -> bool:
    """A path ending in / (kept as text: `Path` drops the slash) or an existing directory."""
    return out.endswith(("/", "\\")) or Path(out).is_dir()


def _out_check(value: str) -> None:
    if not _is_dir(value):
        figure_format(value)


PlotOutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="Figure file (required): .png, .jpg, .svg or .pdf, by its extension.",
        callback=usage(figure_format),
        show_default=False,
    ),
]
PlotOutAliasOpt = Annotated[
    Path | None,
    typer.Option(
        "--output", hidden=True, callback=usage(figure_format), help="Old spelling of --out."
    ),
]


def _need_out(out: Path | None) -> Path:
    if out is None:
        raise typer.BadParameter(
            "missing; give the figure file to write (.png, .jpg, .svg or .pdf)",
            param_hint="'-o' / '--out'",
        )
    return out


def _say(text: str) -> None:
    Console(stderr=True, soft_wrap=True).print(text, markup=False, highlight=False)


# -- vadkit plot scores ----------------------------------------------------------------------------
VideosArg = Annotated[
    list[str],
    typer.Argument(
        help="Video ids, or case-insensitive prefixes of them (shooting022 finds "
        "Shooting022_x264); an exact name always wins.",
        metavar="VIDEO",
        show_default=False,
    ),
]
ScoresOpt = Annotated[
    Path,
    typer.Option("--scores", "-s", help="Score directory (VID.npy per video).", show_default=False),
]
VideoOutOpt = Annotated[
    str | None,
    typer.Option(
        "--out",
        "-o",
        help="Figure file (required): .png, .jpg, .svg or .pdf, by its extension; several "
        "videos are one panel each. A directory (an existing one, or a path ending in /): one "
        "VIDEO.png per video.",
        callback=usage(_out_check),
        show_default=False,
    ),
]
LineOpt = Annotated[
    float | None,
    typer.Option("--threshold", help="Draw a horizontal line at this score.", show_default=False),
]


def _video_outputs(out: str, names: list[str]) -> list[tuple[Path, list[str]]]:
    """[(figure, videos on it)]: one figure, or one VIDEO.png per video in a directory."""
    if _is_dir(out):
        return [(Path(out) / f"{n}.png", [n]) for n in names]
    return [(Path(out), names)]


@plot_app.command("scores")
def scores_cmd(
    videos: VideosArg,
    scores: ScoresOpt,
    annotations: OptionalAnnotationsOpt = None,
    out: VideoOutOpt = None,
    threshold: LineOpt = None,
    annotations_format: FormatOpt = AnnotationFormat.auto,
    list_file: ListOpt = None,
    one_based: OneBasedOpt = None,
    end_inclusive: InclusiveOpt = None,
    viper_objects: ViperObjectsOpt = None,
    viper_where: ViperWhereOpt = None,
    format_alias: FormatAliasOpt = None,
    output_alias: PlotOutAliasOpt = None,
) -> None:
    """Plot videos' per-frame scores with their anomalous intervals shaded.

    The x axis is in seconds when the frame rate is known (the score metadata, or the feature
    description it names), else in frames. The title gives the video id and, when the video
    has both normal and anomalous frames, its own ROC AUC. Without -a the scores are drawn
    alone.
    """
    from vadkit.plot import draw_curves, match_video, video_curve, video_fps

    out = str(_need_out(out or output_alias))
    if annotations is None:
        arrays, metas = load_scores(scores)
        ann = None
    else:
        gt = GroundTruth(
            annotations,
            format_alias or annotations_format,
            list_file,
            one_based,
            end_inclusive,
            viper_objects,
            viper_where,
        )
        arrays, metas, ann = load(scores, gt)
    names = list(dict.fromkeys(match_video(v, arrays) for v in videos))
    curves = {}
    for name in names:
        meta = metas.get(name)
        curves[name] = video_curve(
            name,
            arrays[name],
            ann,
            frame_count=meta.frame_count if meta else None,
            snippet_length=meta.snippet_length if meta else None,
            pad_scores=ann.pad_short_scores if ann else None,
            fps=video_fps(meta, scores),
        )
        if curves[name].note:
            _say(f"Note: {name}: {curves[name].note}")
    for path, group in _video_outputs(out, names):
        draw_curves([curves[n] for n in group], path, threshold=threshold)
        aucs = [f"ROC AUC {curves[n].roc_auc:.4f}" for n in group if curves[n].roc_auc is not None]
        detail = ", ".join(group) + (f", {', '.join(aucs)}" if len(group) == 1 and aucs else "")
        _say(f"Wrote {path} ({detail})")


# -- vadkit plot training -------------------------------------------------------------------------
@plot_app.command("training")
def training_cmd(
    runs: Annotated[
        list[Path],
        typer.Argument(
            help="Run directories of vadkit train (their log.jsonl), overlaid.",
            metavar="RUN",
            show_default=False,
        ),
    ],
    out: PlotOutOpt = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print the per-evaluation table (run, step, roc_auc, average_precision, "
            "pr_auc_trapezoid, seconds, loss parts) as JSON on stdout; -o is then optional.",
        ),
    ] = False,
) -> None:
    """Plot ROC AUC, PR AUC and the loss parts over training steps of one or more runs.

    Reads each run's log.jsonl (one line per evaluation: the mean loss parts since the previous
    one, the validation ROC AUC and average precision, and the trapezoid PR AUC where the run
    logged it). One colour per run.
    """
    from vadkit.plot import draw_training, read_training_log, short_labels, training_table

    if out is None and not as_json:
        _need_out(out)
    labels = short_labels(runs)
    logs = [read_training_log(r, label) for r, label in zip(runs, labels, strict=True)]
    if out is not None:
        draw_training(logs, out)
        n = sum(len(g.records) for g in logs)
        _say(f"Wrote {out} ({len(logs)} run(s), {n} evaluation(s))")
    if as_json:
        typer.echo(json.dumps(training_table(logs), indent=1))


# -- vadkit plot curves ---------------------------------------------------------------------------
class CurveKind(str, Enum):
    roc = "roc"
    pr = "pr"


@plot_app.command("curves")
def curves_cmd(
    scores: Annotated[
        list[Path],
        typer.Argument(
            help="Score directories (one per model), overlaid.",
            metavar="SCORES",
            show_default=False,
        ),
    ],
    annotations: AnnotationsOpt,
    out: PlotOutOpt = None,
    kind: Annotated[
        CurveKind,
        typer.Option(
            "--kind",
            help="roc: true- against false-positive rate; pr: precision against recall.",
            case_sensitive=False,
        ),
    ] = CurveKind.roc,
    annotations_format: FormatOpt = AnnotationFormat.auto,
    list_file: ListOpt = None,
    one_based: OneBasedOpt = None,
    end_inclusive: InclusiveOpt = None,
    viper_objects: ViperObjectsOpt = None,
    viper_where: ViperWhereOpt = None,
    format_alias: FormatAliasOpt = None,
) -> None:
    """Plot the frame-level ROC or PR curves of one or more score directories.

    The frames of all videos are pooled as vadkit eval pools them; the legend gives each
    curve's ROC AUC (roc) or average precision and trapezoid PR AUC (pr), vadkit eval's numbers.
    """
    from vadkit.plot import draw_roc_pr, pooled_frames, roc_pr, short_labels

    out = _need_out(out)
    fmt = format_alias or annotations_format
    gt = GroundTruth(
        annotations, fmt, list_file, one_based, end_inclusive, viper_objects, viper_where
    )
    curves = []
    for d, label in zip(scores, short_labels(scores), strict=True):
        arrays, metas, ann = load(d, gt)
        labels, values = pooled_frames(arrays, ann, metas)
        curves.append(roc_pr(label, labels, values, kind.value))
    draw_roc_pr(curves, kind.value, out)
    areas = "; ".join(
        f"{c.label}: " + ", ".join(f"{k} {v:.4f}" for k, v in c.area.items()) for c in curves
    )
    _say(f"Wrote {out} ({areas})")


# -- vadkit plot features -------------------------------------------------------------------------
@plot_app.command("features")
def features_cmd(
    features: Annotated[
        Path,
        typer.Argument(
            help="A feature file, FEATS/VID.npy: (snippets, crops, dims) or (snippets, dims).",
            metavar="FEATURES",
            show_default=False,
        ),
    ],
    out: PlotOutOpt = None,
    slice_index: Annotated[
        int | None,
        typer.Option(
            "--slice",
            help="The snippet whose feature values are shown (default: the middle one; "
            "negative counts from the end).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Plot views of a feature file: the array as an image, means, one slice, magnitudes.

    Four panels: the array as an image (snippets x feature dimensions, averaged over crops),
    the mean over the feature dimension per snippet and crop, the feature values of one
    snippet (--slice) per crop, and the feature magnitude (L2 norm, RTFM's signal) per snippet
    and crop. Where the vadkit feature description gives the frame rate, a time axis is added.
    """
    from vadkit.plot import draw_features, feature_views

    out = _need_out(out)
    views = feature_views(features, slice_index)
    draw_features(views, out)
    t, d = views.image.shape
    _say(f"Wrote {out} ({t} snippets, {views.crop_means.shape[0]} crop(s), {d} dims)")
