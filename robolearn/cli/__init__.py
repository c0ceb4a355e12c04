"""The ``robolearn`` console script: a thin dispatcher over one module per command group.

Every module ``robolearn/cli/*_cmd.py`` exposes ``register(subparsers)``, adding its sub-commands
with ``set_defaults(func=...)``; adding a command group is adding one such module. Commands that produce results take ``--json`` and then print one JSON
object as their last line (``robolearn.cli.common.emit``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from robolearn import __version__
from robolearn.config import ConfigError
from robolearn.errors import RobolearnError


def command_modules() -> list[str]:
    """The CLI modules, found by their ``_cmd`` suffix so command groups never edit this file."""
    import robolearn.cli as package

    names = (m.name for m in pkgutil.iter_modules(package.__path__) if m.name.endswith("_cmd"))
    return [f"robolearn.cli.{name}" for name in sorted(names)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="robolearn",
        description="Collect demonstrations, train and fine-tune policies, evaluate them in the MuJoCo "
        "twin of your cell, and deploy them. Every command runs on the twin with no hardware.",
    )
    parser.add_argument("--version", action="version", version=f"robolearn {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error as well (same as ROBOLEARN_DEBUG=1)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in command_modules():
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; a ``RobolearnError`` (or a refused connection) is printed once, on one line,
    with exit code 2, and Ctrl-C exits with 130."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (RobolearnError, ConnectionError) as err:
        if args.debug or os.environ.get("ROBOLEARN_DEBUG"):
            raise
        print(f"robolearn: {error_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("robolearn: interrupted", file=sys.stderr)
        return 130


def error_line(err: BaseException) -> str:
    """``config error: ...`` or ``error: ...`` on one line (a multi-line message is joined)."""
    kind = "config error" if isinstance(err, ConfigError) else "error"
    return f"{kind}: " + " ".join(str(err).split())
