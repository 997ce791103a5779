"""The alert options of every command that raises alerts from scores (`vadkit render`,
`vadkit report`; `vadkit watch` may share them): one spelling, one help text, one default.

Not a command module: it registers nothing. The semantics are `vadkit.alerts.AlertRule`'s.
"""

from __future__ import annotations

from typing import Annotated

import typer

from vadkit.alerts import AlertRule
from vadkit.errors import VadkitError

ThresholdOpt = Annotated[
    float,
    typer.Option(
        "--threshold",
        help="Alert level: an alert opens when the score has stayed at or above it for "
        "--min-duration seconds.",
    ),
]
MinDurationOpt = Annotated[
    float,
    typer.Option(
        "--min-duration",
        help="Seconds the score must stay at or above --threshold before an alert opens "
        "(0: a single sample opens one).",
    ),
]
CooldownOpt = Annotated[
    float,
    typer.Option(
        "--cooldown",
        help="Seconds the score must stay below --release before an alert closes; a shorter "
        "dip does not split one alert into two.",
    ),
]
ReleaseOpt = Annotated[
    float | None,
    typer.Option(
        "--release",
        help="Level the score must fall below for an alert to close (at or below --threshold; "
        "default: --threshold).",
        show_default=False,
    ),
]

DEFAULT_THRESHOLD, DEFAULT_MIN_DURATION, DEFAULT_COOLDOWN = 0.5, 0.0, 2.0


def alert_rule(
    threshold: float, min_duration: float, cooldown: float, release: float | None
) -> AlertRule:
    """The rule of the options, a bad combination a usage error (exit 2)."""
    try:
        return AlertRule(threshold, min_duration, cooldown, release)
    except VadkitError as e:
        raise typer.BadParameter(str(e), param_hint="alert options") from None
