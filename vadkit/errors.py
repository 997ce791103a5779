"""The one exception type the CLI turns into a clean `Error: …` line (exit 1)."""


class VadkitError(Exception):
    """Bad data or a failed step: say what failed, the offending value, what was expected."""


class Interrupted(VadkitError):
    """A run stopped by Ctrl-C after saving what it had: the CLI exits 130, as shells expect."""

    exit_code = 130
