"""``robolearn launch FILE.yaml``: run a node graph, each node in its own process (pure-pip mode)."""

from __future__ import annotations

import argparse
import sys

from robolearn.cli.common import add_json_flag, emit


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "launch",
        help="run a node graph from launch/*.yaml, each node in its own process",
        description="Run the nodes of a launch YAML (e.g. launch/twin_collect.yaml), each in its own process, "
        "with a zenoh router if none is listening. Ctrl-C stops all nodes cleanly; a crashed node is "
        "reported and restarted when its entry says restart: true. On a ROS 2 install use the matching "
        "launch/*.launch.py with `ros2 launch` instead.",
    )
    parser.add_argument("file", help="launch YAML, e.g. launch/twin_collect.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="set a launch argument, e.g. --set episodes=5 --set store=data/demos.zarr (repeatable)")
    add_json_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robolearn.ros.launch import Supervisor, load_launch

    config = load_launch(args.file, args.overrides)
    result = Supervisor(config, log=lambda line: print(line, file=sys.stderr, flush=True)).run()
    emit(result, args.json)
    return 0 if all(code == 0 for code in result["exit_codes"].values()) else 1
