"""Errors an entry point reports to the user as one clear line, without a traceback."""
import functools
import sys


class DataError(Exception):
    """Bad or missing input data.

    Args:
        path: the file or folder at fault.
        expected: what the reader expected to find there (a sentence fragment).
        line: 1-based line number, for text formats.
        hint: how to fix it (where the data comes from, which flag to pass).
    """

    def __init__(self, path, expected, line=None, hint=None):
        self.path, self.expected, self.line, self.hint = str(path), expected, line, hint
        where = self.path if line is None else f"{self.path}:{line}"
        msg = f"{where}: {expected}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""


class DivergedError(RuntimeError):
    """The loss stayed finite but climbed far above where it started (`common.rundir.DivergenceCheck`)."""


class ConfigError(ValueError):
    """A config file or command-line flag that does not fit the entry point's schema."""


def exit_on_user_error(main):
    """Decorate an entry point so a user error prints `error: ...` and exits 2 instead of a traceback."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except (DataError, NonFiniteLossError, DivergedError, ConfigError) as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    return wrapper
