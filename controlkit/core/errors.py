"""The one error type users can cause, and its CLI exit code."""


class ControlkitError(Exception):
    """An error caused by user input (bad config, unknown env, infeasible bounds, ...).

    The message names the offending field and, where there is a finite set, the valid choices. The CLI prints
    it without a traceback and exits with :data:`EXIT_USER_ERROR`.
    """


EXIT_USER_ERROR = 2
EXIT_RUN_FAILED = 1


def choices_error(field: str, value: object, choices) -> ControlkitError:
    """Build the standard "unknown value" error for a field with a finite set of valid values."""
    valid = ", ".join(sorted(str(c) for c in choices)) or "(none registered)"
    return ControlkitError(f"{field}: unknown value {value!r}; valid choices: {valid}.")
