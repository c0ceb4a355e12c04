"""The ``robolearn`` console script: a thin dispatcher over one module per command group.

Each module in ``COMMAND_MODULES`` exposes ``register(subparsers)``, adding its sub-commands with
``set_defaults(func=...)``. Commands that produce results take ``--json`` and then print one JSON
object as their last line (``robolearn.cli.common.emit``).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from robolearn import __version__
from robolearn.config import ConfigError

COMMAND_MODULES = (
    "robolearn.cli.cell_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="robolearn",
        description="Collect demonstrations, train and fine-tune policies, evaluate them in the MuJoCo "
        "twin of your cell, and deploy them. Every command runs on the twin with no hardware.",
    )
    parser.add_argument("--version", action="version", version=f"robolearn {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ConfigError as err:
        print(f"robolearn: config error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("robolearn: interrupted", file=sys.stderr)
        return 130
