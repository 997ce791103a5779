"""`vadkit recipes`: the named training recipes, every value with where it comes from."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from vadkit.cli.base import app


@app.command("recipes")
def recipes_command(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Recipes to show [all].", show_default=False),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print them as one JSON object.")
    ] = False,
) -> None:
    """List the training recipes (vadkit train --recipe NAME): each value and its source."""
    from vadkit.recipes import RECIPES, get_recipe

    chosen = [get_recipe(n) for n in names] if names else list(RECIPES.values())
    if json_out:
        typer.echo(json.dumps({r.name: r.to_json() for r in chosen}, indent=2))
        return
    for i, recipe in enumerate(chosen):
        if i:
            typer.echo("")
        typer.echo(f"{recipe.name}: {recipe.description}")
        rows = _rows(recipe)
        width = max(len(value) for _, value, _ in rows)
        for key, value, source in rows:
            typer.echo(f"  {key:<14} {value:<{width}}  {source}")
        for note in recipe.notes:
            typer.echo(f"  note: {note}")


def _rows(recipe) -> list[tuple[str, str, str]]:
    rows = [(k, _text(v.value), v.source) for k, v in recipe.settings.items()]
    rows.append(("eval cadence", recipe.cadence.value.describe(), recipe.cadence.source))
    f = recipe.features.value
    layout = f"{f['crops']} x {f['feature_dim']}-d" + (
        f", {f['backbone']}" if f["backbone"] else ""
    )
    rows.append(("features", layout, recipe.features.source))
    rows.append(("labels", "", f"{recipe.labels.value} ({recipe.labels.source})"))
    return rows


def _text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
