"""``robolearn collect``: record demonstrations on the twin into a demonstration store."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from robolearn.cli.common import add_json_flag, add_overrides_flag, emit
from robolearn.config import ConfigError

if TYPE_CHECKING:
    from robolearn.collect import CollectSettings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "collect", help="record demonstrations on the twin into a store",
        description="Record demonstrations of a task on the twin of a cell into a demonstration store (zarr; created "
        "if missing, appended to otherwise). The scripted expert (--teleop expert) or a teleop device (--teleop "
        "keyboard) drives the arm; every camera stream, the arm state, the action, reward, success and "
        "intervention flags are recorded at the control rate and each episode is committed atomically with its "
        "success marked. With a teleop device, its success button commits the episode, its failure or reset "
        "button discards it (it is redone) and quit stops. Episode i uses seed SEED+i.")
    parser.add_argument("--cell", default="configs/cells/sim_panda.yaml", help="cell YAML (default: %(default)s)")
    parser.add_argument("--task", default="pick_cube", help="task name (reach, pick_cube, push_cube, pick_cube_reset, push_cube_reset) or a task YAML "
                        "(default: %(default)s)")
    parser.add_argument("--teleop", default="expert", help="expert (scripted), random (uniform random actions: negatives for a reward model), keyboard, or another registered teleop type")
    parser.add_argument("--episodes", type=int, default=10, help="episodes to commit (default: %(default)s)")
    parser.add_argument("--store", required=True, help="store path (a .zarr directory)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode (default: %(default)s)")
    parser.add_argument("--noise", type=float, default=0.0, help="expert action noise std, fraction of the action range")
    parser.add_argument("--operator", default="", help="who is collecting (stored with every episode)")
    parser.add_argument("--only-success", action="store_true",
                        help="discard episodes that fail and redo them (at most 3× --episodes attempts)")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality of a new store (default: %(default)s)")
    parser.add_argument("--no-cameras", action="store_true", help="record state only (no camera streams)")
    parser.add_argument("--via-ros", action="store_true",
                        help="record through the ROS 2 node graph (twin, recorder and teleop nodes over Zenoh) "
                        "instead of in this process, with the same seeds and the same steps; --teleop expert, cell "
                        "(the cell's device) or a device type; --only-success, --quality and --no-cameras apply")
    add_overrides_flag(parser)
    add_json_flag(parser)
    parser.set_defaults(func=run)


def _collect_via_ros(settings: CollectSettings, as_json: bool) -> int:
    from robolearn.ros.graph_collect import collect_via_ros
    from robolearn.store import DemoStore

    path = Path(settings.store)
    try:
        before = DemoStore.open(path).n_episodes if path.exists() else 0
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError("--store", settings.store, str(err)) from err
    result = collect_via_ros(settings.cell, settings.task, settings.episodes, settings.store, teleop=settings.teleop,
                             seed=settings.seed, noise_scale=settings.noise, operator=settings.operator,
                             only_success=settings.only_success, jpeg_quality=settings.jpeg_quality,
                             cameras=settings.cameras, overrides=list(settings.overrides))
    committed = (result.get("n_episodes") or 0) - before
    emit({**result, "episodes_committed": committed}, as_json)
    return 0 if committed >= settings.episodes else 1


def run(args: argparse.Namespace) -> int:
    from robolearn.collect import CollectSettings, collect

    settings = CollectSettings(cell=args.cell, task=args.task, store=args.store, episodes=args.episodes,
                               teleop=args.teleop, seed=args.seed, noise=args.noise, operator=args.operator,
                               only_success=args.only_success, jpeg_quality=args.quality, cameras=not args.no_cameras,
                               overrides=args.overrides)
    if args.via_ros:
        return _collect_via_ros(settings, args.json)
    result = collect(settings)
    emit(result, args.json)
    return 0 if result["episodes_committed"] == args.episodes else 1
