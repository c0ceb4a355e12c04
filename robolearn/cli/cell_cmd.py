"""``robolearn check-cell``: validate a cell config and print its summary."""

from __future__ import annotations

import argparse

from robolearn.cell import load_cell
from robolearn.cli.common import add_json_flag, add_overrides_flag, emit
from robolearn.config import to_dict


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check-cell",
        help="validate a cell YAML, build its twin, and print a summary",
        description="Load a cell YAML, check every key and type, compile the MuJoCo twin of the cell, "
        "and print a summary (arm, cameras, objects, control rate, workspace).",
    )
    parser.add_argument("config", help="path to a cell YAML, e.g. configs/cells/sim_panda.yaml")
    add_overrides_flag(parser)
    add_json_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robolearn.sim import Twin

    cell = load_cell(args.config, args.overrides)
    twin = Twin(cell)
    summary = {
        "cell": cell.name,
        "arm": cell.arm.type,
        "robot_model": cell.robot.model,
        "control_hz": cell.control_hz,
        "cameras": [f"{c.name} ({c.type}, {c.width_px}x{c.height_px}, {c.mount})" for c in cell.cameras],
        "objects": [o.name for o in cell.objects],
        "workspace_min_m": list(cell.safety.workspace_min_m),
        "workspace_max_m": list(cell.safety.workspace_max_m),
        "twin": {
            "n_joints": twin.arm.n_joints,
            "physics_hz": twin.physics_hz,
            "bodies": twin.model.nbody,
            "ee_home_m": twin.arm.state().ee_pos_m.round(4).tolist(),
        },
        "config": to_dict(cell),
    }
    emit(summary, args.json)
    return 0
