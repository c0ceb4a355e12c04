"""``robolearn node NAME``: run one ROS 2 node of the cell (zenoh backend by default)."""

from __future__ import annotations

import argparse
import os

from robolearn.cell import load_cell
from robolearn.cli.common import add_json_flag, add_overrides_flag, emit


def parse_params(items: list[str]) -> dict[str, str]:
    params = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"robolearn: --param expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        params[key.strip()] = value
    return params


def register(subparsers: argparse._SubParsersAction) -> None:
    from robolearn.ros.nodes import NODE_NAMES

    parser = subparsers.add_parser(
        "node",
        help="run one ROS 2 node (twin, recorder, arm, camera, teleop, router)",
        description="Run one robolearn ROS 2 node until Ctrl-C. The zenoh backend speaks rmw_zenoh, so the "
        "node appears in `ros2 node list` of RMW_IMPLEMENTATION=rmw_zenoh_cpp machines; sessions listen on "
        "localhost and connect to a zenoh router at --router (default tcp/localhost:7447: rmw_zenohd, "
        "`robolearn node router`, or the one `robolearn launch` starts).",
    )
    parser.add_argument("name", choices=NODE_NAMES, help="which node")
    parser.add_argument("--cell", default="configs/cells/sim_panda.yaml", help="cell YAML")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="node parameter, e.g. --param episodes=5 --param store=data/demos.zarr (repeatable)")
    parser.add_argument("--backend", default="zenoh", choices=("zenoh", "rclpy", "auto"), help="ROS backend")
    parser.add_argument("--router", default=None, help="zenoh router endpoint (default tcp/localhost:7447)")
    parser.add_argument("--domain", type=int, default=None, help="ROS domain id (default ROS_DOMAIN_ID or 0)")
    add_overrides_flag(parser)
    add_json_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robolearn.ros.nodes.runner import run_node
    from robolearn.ros.zenoh_backend import ZenohSettings

    os.environ.setdefault("MUJOCO_GL", "egl")
    cell = load_cell(args.cell, args.overrides)
    settings = ZenohSettings.from_env(router_endpoint=args.router, domain_id=args.domain)
    emit(run_node(args.name, cell, parse_params(args.param), args.backend, settings), args.json)
    return 0
