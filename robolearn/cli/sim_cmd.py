"""``robolearn sim run``: run episodes on the twin with a scripted expert or the keyboard."""

from __future__ import annotations

import argparse

from tqdm import tqdm

from robolearn.cli.common import add_json_flag, add_overrides_flag, emit
from robolearn.env import make_env
from robolearn.rollout import make_teleop, run_episode
from robolearn.video import write_mp4


def add_cell_task_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cell", default="configs/cells/sim_panda.yaml", help="cell YAML (default: %(default)s)")
    parser.add_argument(
        "--task", default="pick_cube",
        help="task name (reach, pick_cube, push_cube) or a task YAML with a 'type' key (default: %(default)s)",
    )
    add_overrides_flag(parser)


def register(subparsers: argparse._SubParsersAction) -> None:
    sim = subparsers.add_parser("sim", help="run the digital twin", description="Run the MuJoCo twin of a cell.")
    sim_sub = sim.add_subparsers(dest="sim_command", metavar="SUBCOMMAND", required=True)
    parser = sim_sub.add_parser(
        "run",
        help="run episodes on the twin with a teleop (scripted expert or keyboard) and report success",
        description="Run episodes of a task on the twin, driven by the task's scripted expert or a teleop "
        "device (keyboard), and report the success rate. Episode i uses seed SEED+i.",
    )
    add_cell_task_flags(parser)
    parser.add_argument("--teleop", default="expert", help="expert, keyboard, or another registered teleop type")
    parser.add_argument("--noise", type=float, default=0.0, help="expert action noise std, fraction of the action range")
    parser.add_argument("--episodes", type=int, default=10, help="number of episodes (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode (default: %(default)s)")
    parser.add_argument("--video", metavar="OUT.mp4", help="write all episodes, one after another, as an MP4")
    add_json_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.episodes <= 0:
        raise SystemExit("robolearn: --episodes must be positive")
    env = make_env(args.cell, args.task, cameras=False, overrides=args.overrides)
    teleop = make_teleop(args.teleop, env, noise_scale=args.noise, seed=args.seed)
    results, frames = [], []
    progress = tqdm(range(args.episodes), desc=f"{args.task} ({args.teleop})", unit="ep", disable=None)
    for index in progress:
        result = run_episode(
            env, lambda obs: teleop.read(), seed=args.seed + index,
            record_frames=bool(args.video), on_reset=getattr(teleop, "reset", None),
        )
        results.append(result)
        frames += result.frames
        progress.set_postfix(success=f"{sum(r.success for r in results)}/{len(results)}")
        if result.ended_by == "quit":
            break
    teleop.disconnect()
    env.close()
    if args.video:
        write_mp4(args.video, frames, fps=env.cell.control_hz)
    emit(
        {
            "task": args.task,
            "teleop": args.teleop,
            "episodes": len(results),
            "success_rate": sum(r.success for r in results) / len(results),
            "mean_return": sum(r.episode_return for r in results) / len(results),
            "mean_steps": sum(r.steps for r in results) / len(results),
            "successes": [r.success for r in results],
            "video": args.video,
        },
        args.json,
    )
    return 0
