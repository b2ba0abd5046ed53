"""Errors an entry point reports to the user as one clear line, without a traceback."""
import functools
import sys
import warnings


class DataError(Exception):
    """Bad or missing input data.

    Args:
        path: the file or folder at fault.
        expected: what the reader expected to find there (a sentence fragment).
        line: 1-based line number, for text formats.
        hint: how to fix it (where the data comes from, which flag to pass).
    """

    def __init__(self, path, expected=None, line=None, hint=None):
        if expected is None:  # one formatted message: how torch's DataLoader re-raises a DataError of a worker
            msg = _worker_message(str(path))
            self.path, self.expected, self.line, self.hint = msg.split(": ", 1)[0], msg, None, None
            super().__init__(msg)
            return
        self.path, self.expected, self.line, self.hint = str(path), expected, line, hint
        where = self.path if line is None else f"{self.path}:{line}"
        msg = f"{where}: {expected}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)


def _worker_message(msg):
    """The DataError line of torch's "Caught DataError in DataLoader worker process N ... Traceback" text."""
    lines = msg.strip().splitlines()
    if len(lines) > 1 and "DataError: " in lines[-1] and "Traceback" in msg:
        return lines[-1].split("DataError: ", 1)[1] + " (raised in a DataLoader worker)"
    return msg


class DataWarning(UserWarning):
    """Input that can be read but is probably not what was meant (e.g. an object id that the first frame of a
    DAVIS sequence never shows, so the evaluation cannot score it); the message names the file."""


def warn_data(path, message):
    """Issue a `DataWarning` naming `path`: `<path>: <message>`."""
    warnings.warn(f"{path}: {message}", DataWarning, stacklevel=3)


def check_utf8_name(path, what="file"):
    """DataError unless the name of `path` is valid UTF-8.

    On Linux a name with bytes that are not UTF-8 arrives as a str with surrogate escapes; OpenCV (cv2.imread)
    crashes the process on such a path and output files named after it cannot be written as text.
    """
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        shown = str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise DataError(shown, f"the {what} name is not valid UTF-8; rename it (e.g. with convmv)") from None
    return path


def read_utf8(path, encoding="utf-8"):
    """The text of a UTF-8 file; bytes that are not UTF-8 are a DataError naming the file and the line.

    `encoding="utf-8-sig"` also drops a byte-order mark. Line endings are kept as they are in the file.
    """
    data = open(path, "rb").read()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(path, f"expected UTF-8 text ({e.reason} at byte {e.start})", line=line) from None


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
