"""``robolearn node NAME``: run one ROS 2 node of the cell (zenoh or rclpy backend)."""

from __future__ import annotations

import argparse
import sys
import textwrap

from robolearn.cell import load_cell
from robolearn.cli.common import add_json_flag, add_overrides_flag, emit
from robolearn.errors import UsageError


def parse_params(items: list[str]) -> dict[str, str]:
    params = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"--param expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        params[key.strip()] = value
    return params


def _nodes_epilog() -> str:
    from robolearn.ros.nodes import NODES

    lines = ["nodes:"]
    for name, text in NODES.items():
        lines += textwrap.wrap(f"{name}: {text}", width=100, initial_indent="  ", subsequent_indent="      ")
    lines += ["", "examples:",
              "  robolearn node router &",
              "  robolearn node recorder --param store=data/demos.zarr &",
              "  robolearn node twin --param task=pick_cube --param episodes=5",
              "  robolearn node teleop --set 'teleop={type: keyboard}'",
              "  robolearn node arm --cell configs/cells/real_franka.yaml",
              "", "Topics and message types per node: docs/ros.md."]
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    from robolearn.ros.nodes import NODE_NAMES

    parser = subparsers.add_parser(
        "node",
        help=f"run one ROS 2 node ({', '.join(NODE_NAMES)})",
        description=textwrap.fill(
            "Run one robolearn ROS 2 node until Ctrl-C (or until it finishes). The zenoh backend speaks "
            "rmw_zenoh, so the node appears in `ros2 node list` of RMW_IMPLEMENTATION=rmw_zenoh_cpp machines; its "
            "session listens on localhost only (unless the cell's ros section says otherwise) and connects to a "
            "zenoh router at --router (default tcp/localhost:7447: rmw_zenohd, `robolearn node router`, or the one "
            "`robolearn launch` starts).", width=100),
        epilog=_nodes_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", choices=NODE_NAMES, help="which node")
    parser.add_argument("--cell", default="configs/cells/sim_panda.yaml", help="cell YAML (default: %(default)s)")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="node parameter, e.g. --param episodes=5 --param store=data/demos.zarr (repeatable)")
    parser.add_argument("--backend", default=None, choices=("zenoh", "rclpy", "auto"),
                        help="ROS backend (default: the cell's ros.backend, else auto: rclpy when it and "
                        "robolearn_msgs import, else zenoh)")
    parser.add_argument("--router", default=None, help="zenoh router endpoint (default: the cell's, else "
                        "ROBOLEARN_ZENOH_ROUTER, else tcp/localhost:7447)")
    parser.add_argument("--domain", type=int, default=None, help="ROS domain id (default: ROS_DOMAIN_ID, else the cell's, else 0)")
    add_overrides_flag(parser)
    add_json_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robolearn.cli.node_host import run_node
    from robolearn.ros.zenoh_backend import ZenohSettings

    cell = load_cell(args.cell, args.overrides)
    settings = ZenohSettings.from_cell(cell, router_endpoint=args.router, domain_id=args.domain)
    backend = args.backend or cell.ros.backend
    try:
        summary = run_node(args.name, cell, parse_params(args.param), backend, settings)
    except KeyboardInterrupt:  # stopped while starting up, before the node handles signals itself
        print(f"robolearn: node {args.name} interrupted while starting", file=sys.stderr)
        return 0
    emit(summary, args.json)
    return 0
