"""``robolearn collect``: record demonstrations on the twin into a demonstration store."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from robolearn.cli.common import add_json_flag, add_overrides_flag, emit
from robolearn.config import ConfigError


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
    parser.add_argument("--task", default="pick_cube", help="task name (reach, pick_cube, push_cube) or a task YAML "
                        "(default: %(default)s)")
    parser.add_argument("--teleop", default="expert", help="expert (scripted), keyboard, or another registered teleop type")
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
                        "instead of in this process; --teleop expert, cell (the cell's device) or a device type")
    add_overrides_flag(parser)
    add_json_flag(parser)
    parser.set_defaults(func=run)


def _open_store(path: Path, cell: Any, cameras: dict[str, Any], quality: int) -> Any:
    from robolearn.config import to_dict
    from robolearn.store import DemoStore

    if path.exists():
        return DemoStore.open(path, mode="a")
    return DemoStore.create(path, cell_config=to_dict(cell), cameras=cameras, jpeg_quality=quality)


def _calibration(env: Any) -> dict[str, Any]:
    """Intrinsics of every camera the env renders (what the store keeps as camera calibration)."""
    from robolearn.config import to_dict
    from robolearn.store.store import cameras_from_cell

    cameras = cameras_from_cell(to_dict(env.unwrapped.cell)) or {}
    for name, camera in env.unwrapped.cameras.items():
        intrinsics = getattr(camera, "intrinsics", None)
        if intrinsics is not None:
            cameras.setdefault(name, {})["intrinsics"] = {k: float(v) if isinstance(v, float) else v
                                                         for k, v in vars(intrinsics).items()}
    return cameras


def _collect_via_ros(args: argparse.Namespace) -> int:
    from robolearn.ros.collect import collect_via_ros
    from robolearn.store import DemoStore

    path = Path(args.store)
    try:
        before = DemoStore.open(path).n_episodes if path.exists() else 0
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError("--store", args.store, str(err)) from err
    result = collect_via_ros(args.cell, args.task, args.episodes, args.store, teleop=args.teleop, seed=args.seed,
                             noise_scale=args.noise, operator=args.operator, overrides=args.overrides)
    committed = (result.get("n_episodes") or 0) - before
    emit({**result, "episodes_committed": committed}, args.json)
    return 0 if committed >= args.episodes else 1


def run(args: argparse.Namespace) -> int:
    if args.episodes <= 0:
        raise ConfigError("--episodes", str(args.episodes), "must be positive")
    if not 1 <= args.quality <= 100:
        raise ConfigError("--quality", str(args.quality), "must be in 1..100")
    if args.via_ros:
        return _collect_via_ros(args)
    from robolearn.env import make_env
    from robolearn.rollout import make_teleop, run_episode
    from robolearn.store import EpisodeRecorder

    env = make_env(args.cell, args.task, cameras=not args.no_cameras, overrides=args.overrides)
    unwrapped = env.unwrapped
    spaces = env.observation_space.spaces
    streams = list(spaces)
    try:
        store = _open_store(Path(args.store), unwrapped.cell, _calibration(env), args.quality)
        recorder = EpisodeRecorder(store, streams, control_hz=unwrapped.cell.control_hz)
        recorder.check_store({k: (spaces[k].shape, spaces[k].dtype) for k in streams}, env.action_space.shape)
    except (FileNotFoundError, ValueError) as err:
        env.close()
        raise ConfigError("--store", args.store, str(err)) from err
    teleop = make_teleop(args.teleop, env, noise_scale=args.noise, seed=args.seed)
    source = "expert" if args.teleop == "expert" else "teleop"
    task_name = getattr(unwrapped.task, "name", args.task)
    committed: list[int] = []
    discarded, successes, attempts, missing = 0, 0, 0, 0
    last: dict[str, Any] = {}

    def act(obs: Any) -> Any:
        last["command"] = teleop.read()
        return last["command"]

    def on_reset() -> None:
        if hasattr(teleop, "reset"):
            teleop.reset()
        last["stamp_ns"] = unwrapped.arm.state().stamp_ns
        recorder.start(task=task_name, source=source, operator=args.operator, seed=seed, cell=unwrapped.cell.name)

    def on_step(obs: Any, action: np.ndarray, reward: float, info: dict) -> None:
        stamp_ns = last["stamp_ns"]
        for key in streams:
            recorder.add(key, obs[key], stamp_ns)
        success = bool(info["success"])
        recorder.step(action, stamp_ns, reward=reward, success=success,
                      terminated=success and unwrapped.terminate_on_success,
                      intervention=bool(getattr(last.get("command"), "intervene", False)))
        last["stamp_ns"] = info["stamp_ns"]

    progress = tqdm(total=args.episodes, desc=f"collect {args.task} ({args.teleop})", unit="ep", disable=None)
    try:
        while len(committed) < args.episodes and attempts < 3 * args.episodes:
            seed = args.seed + attempts
            attempts += 1
            result = run_episode(env, act, seed=seed, on_step=on_step, on_reset=on_reset)
            keep = result.ended_by in ("success", "time_limit") and result.steps > 0 \
                and not (args.only_success and not result.success)
            if not keep:
                recorder.discard()
                discarded += 1
                if result.ended_by == "quit":
                    break
                continue
            index = recorder.commit(success=result.success, ended_by=result.ended_by)
            report = recorder.report()
            missing += sum(s["missing"] for s in report["streams"].values())
            if index is None:
                discarded += 1
                continue
            committed.append(index)
            successes += int(result.success)
            progress.update(1)
            progress.set_postfix(success=f"{successes}/{len(committed)}")
    finally:
        progress.close()
        recorder.close()
        teleop.disconnect()
        env.close()
    if committed:
        store.stats()
    emit({"store": str(store.path), "task": args.task, "teleop": args.teleop, "episodes_committed": len(committed),
          "episodes_discarded": discarded, "success_rate": successes / len(committed) if committed else 0.0,
          "n_episodes": store.n_episodes, "n_steps": store.n_steps, "missing_frames": missing,
          "keys": store.keys}, args.json)
    return 0 if len(committed) == args.episodes else 1
