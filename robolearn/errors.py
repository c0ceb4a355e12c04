"""The errors a user can fix: a bad config, a bad argument, a missing file or device, data that
cannot serve the request, an unreachable endpoint, a checkpoint that does not fit. Their messages
name the problem and the fix; the CLI prints them once, on one line, and exits with 2
(``--debug`` or ``ROBOLEARN_DEBUG=1`` adds the traceback). Each also derives from the builtin
exception a Python caller would expect (``ValueError``, ``FileNotFoundError``, ...)."""


class RobolearnError(Exception):
    """An error whose message tells the user what is wrong and how to fix it."""


class UsageError(RobolearnError, ValueError):
    """An argument, option or parameter that does not fit what the command or function takes."""


class NotFoundError(RobolearnError, FileNotFoundError):
    """A path that should exist does not: a store, a checkpoint, a results file, a weights file."""


class AlreadyExistsError(RobolearnError, FileExistsError):
    """An output path that must be new already holds something (a store, a run, an export)."""


class DataError(RobolearnError, ValueError):
    """Data that cannot serve the request: a store without the keys a model reads, an empty record,
    records that do not pair up."""


class DeviceError(RobolearnError, RuntimeError):
    """A device that stopped, faulted or cannot be reached."""


class DependencyError(RobolearnError, ImportError):
    """An optional package that a chosen feature needs is not installed; the message names it."""


class MissingKeyError(RobolearnError, KeyError):
    """An observation or data key that a model or policy reads is not there."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
