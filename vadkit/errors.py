"""The one exception type the CLI turns into a clean `Error: …` line (exit 1)."""


class VadkitError(Exception):
    """Bad data or a failed step: say what failed, the offending value, what was expected."""
