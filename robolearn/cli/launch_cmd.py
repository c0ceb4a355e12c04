"""``robolearn launch FILE.yaml``: run a node graph, each node in its own process (pure-pip mode)."""

from __future__ import annotations

import argparse
import sys
import textwrap

from robolearn.cli.common import add_json_flag, emit


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "launch",
        help="run a node graph from launch/*.yaml, each node in its own process",
        description=textwrap.fill(
            "Run the nodes of a launch YAML (e.g. launch/twin_collect.yaml), each in its own process, "
            "with a zenoh router if none is listening. Ctrl-C stops all nodes cleanly; a crashed node is "
            "reported and restarted when its entry says restart: true; the launch ends when a required node "
            "exits. The YAML format (args, when/unless, per-node cell overrides) is in docs/ros.md. On a ROS 2 "
            "install the matching launch/*.launch.py runs the same graph with `ros2 launch`.", width=100),
        epilog="examples:\n"
        "  robolearn launch launch/twin_collect.yaml --set episodes=20 --set store=data/pick.zarr\n"
        "  robolearn launch launch/twin_collect.yaml --set teleop=keyboard --set episodes=5 --set task=reach",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", help="launch YAML, e.g. launch/twin_collect.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="set a launch argument (or a top-level key such as router), e.g. --set episodes=5 "
                        "--set store=data/demos.zarr (repeatable)")
    add_json_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robolearn.ros.launch import Supervisor, load_launch

    config = load_launch(args.file, args.overrides)
    result = Supervisor(config, log=lambda line: print(line, file=sys.stderr, flush=True)).run()
    emit(result, args.json)
    return 0 if all(code == 0 for code in result["exit_codes"].values()) else 1
