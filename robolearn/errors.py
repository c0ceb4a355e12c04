"""The base of the errors a user can fix: a bad config, a missing device or SDK, an unreachable
endpoint, a checkpoint that does not fit. Their messages name the problem and the fix; the CLI
prints them on one line (``ROBOLEARN_DEBUG=1`` adds the traceback)."""


class RobolearnError(Exception):
    """An error whose message tells the user what is wrong and how to fix it."""
