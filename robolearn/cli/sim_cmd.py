"""``robolearn sim run``: run episodes on the twin with a scripted expert or a teleop device."""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from robolearn.cli.common import add_json_flag, add_overrides_flag, emit
from robolearn.config import ConfigError
from robolearn.env import make_env
from robolearn.rollout import is_human_teleop, make_teleop, run_episode
from robolearn.video import write_mp4


def add_cell_task_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cell", default="configs/cells/sim_panda.yaml", help="cell YAML (default: %(default)s)")
    parser.add_argument(
        "--task", default="pick_cube",
        help="task name (reach, pick_cube, push_cube, pick_cube_reset, push_cube_reset) or a task YAML with a 'type' key (default: %(default)s)",
    )
    add_overrides_flag(parser)


def register(subparsers: argparse._SubParsersAction) -> None:
    sim = subparsers.add_parser("sim", help="run the digital twin", description="Run the MuJoCo twin of a cell.")
    sim_sub = sim.add_subparsers(dest="sim_command", metavar="SUBCOMMAND", required=True)
    parser = sim_sub.add_parser(
        "run",
        help="run episodes on the twin with a teleop (scripted expert or keyboard) and report success",
        description="Run episodes of a task on the twin, driven by the task's scripted expert or a teleop "
        "device (keyboard, spacemouse, gamepad), and report the success rate. Episode i uses seed SEED+i. "
        "With a device a person drives, the twin runs in real time at the cell's control rate; --view shows it.",
    )
    add_cell_task_flags(parser)
    parser.add_argument("--teleop", default="expert", help="expert, keyboard, or another registered teleop type")
    parser.add_argument("--noise", type=float, default=0.0, help="expert action noise std, fraction of the action range")
    parser.add_argument("--episodes", type=int, default=10, help="number of episodes (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode (default: %(default)s)")
    parser.add_argument("--video", metavar="OUT.mp4", help="write all episodes, one after another, as an MP4")
    parser.add_argument("--view", action="store_true",
                        help="show the twin in a MuJoCo viewer window while it runs (needs a display)")
    add_json_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.episodes <= 0:
        raise ConfigError("--episodes", str(args.episodes), "must be positive")
    if not args.noise >= 0.0:
        raise ConfigError("--noise", str(args.noise), "must be ≥ 0: the expert's action noise std, a fraction of the "
                          "action range (e.g. 0.1)")
    human = is_human_teleop(args.teleop)
    env = make_env(args.cell, args.task, cameras=False, overrides=args.overrides, real_time=human)
    viewer = None
    try:
        if args.view:
            from robolearn.sim.viewer import open_viewer

            viewer = open_viewer(env)
        teleop = make_teleop(args.teleop, env, noise_scale=args.noise, seed=args.seed)
    except BaseException:
        env.close()
        raise
    if human and viewer is None:
        print(f"sim run: the twin runs in real time for {args.teleop}; add --view to watch it", file=sys.stderr)
    results, frames = [], []

    def act(obs):
        command = teleop.read()
        if viewer is not None and not viewer.is_running():
            command.quit = True  # the viewer window was closed
        return command

    def on_reset():
        if hasattr(teleop, "reset"):
            teleop.reset()
        if viewer is not None:
            viewer.sync()

    progress = tqdm(range(args.episodes), desc=f"{args.task} ({args.teleop})", unit="ep", disable=None)
    try:
        for index in progress:
            result = run_episode(
                env, act, seed=args.seed + index, record_frames=bool(args.video), on_reset=on_reset,
                on_step=(lambda *_: viewer.sync()) if viewer is not None else None,
            )
            results.append(result)
            frames += result.frames
            progress.set_postfix(success=f"{sum(r.success for r in results)}/{len(results)}")
            if result.ended_by == "quit":
                break
    finally:
        teleop.disconnect()
        if viewer is not None:
            viewer.close()
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
