"""RLPD on the twin's pick_cube from 20 scripted-expert demonstrations (state observations), with a BC
baseline trained on the same demonstrations. Slow (about 50 minutes on 2 cores); not in CI.

RLPD as published: 10 LayerNorm critics, TD target = min over a random 2, the actor on the ensemble
mean, 50/50 demo/online batches, no pretraining; ``--utd`` critic steps per env step (SERL's
critic-to-actor ratio 4 by default; RLPD's 20 costs 5× the wall time). The training reward is the
task's shaped reward by default (``--reward dense``: 0.3·reach + 0.7·lift, the reward of SERL's
simulated pick-cube); success is always the task's own (the cube lifted 5 cm).

Prints a last-line JSON with ``rlpd_success_rate`` and ``bc_success_rate``: the final policies
(deterministic) scored on ``--final-episodes`` fresh seeds that took no part in training or in
the evaluations along the way, with Wilson 95 % intervals; ``env_steps``; ``env_steps_to_target``
(the first evaluation along the way, on ``--eval-episodes`` seeds, at or above ``--target``, or
null); ``wall_minutes`` and the success curve. Target: ≥ 0.8 within 20k env steps on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from robolearn.env import make_env  # noqa: E402
from robolearn.evaluate.stats import wilson_interval  # noqa: E402
from robolearn.learn.agent_policy import AgentPolicy  # noqa: E402
from robolearn.learn.api import evaluate, observation_spaces, train_offline, train_online  # noqa: E402
from robolearn.learn.bc import BCConfig  # noqa: E402
from robolearn.learn.buffer import ReplayBuffer  # noqa: E402
from robolearn.learn.sac import SACConfig  # noqa: E402
from robolearn.sim.experts import make_expert  # noqa: E402

CELL = "configs/cells/sim_panda.yaml"
FINAL_SEED = 90_000  # disjoint from the training evaluations' seeds (50_000 + i)


def task_overrides(reward: str, task_set: list[str]) -> list[str]:
    """``sparse``: the task as defined (1 on success, which ends the episode). ``dense``: the task's shaped
    reward (0.3·reach + 0.7·lift, 1 while lifted) with episodes running to the time limit: ending them
    on success would make a success (reward 1, then nothing) worth less than hovering near the cube.
    ``task_set``: further task knobs (``--task-set``), which evaluation uses too."""
    return [*task_set, *([] if reward == "sparse" else ["reward=dense", "terminate_on_success=false"])]


def expert_episodes(n: int, noise_scale: float, seed: int, overrides: list[str],
                    cell_overrides: list[str]) -> list[dict[str, np.ndarray]]:
    env = make_env(cell=CELL, task="pick_cube", seed=seed, cameras=False, overrides=cell_overrides,
                   task_overrides=overrides)
    expert = make_expert(env, noise_scale=noise_scale, seed=seed)
    episodes = []
    for ep in range(n):
        obs, _ = env.reset(seed=seed + ep)
        expert.reset()
        arrays: dict[str, list] = {}
        done = False
        while not done:
            action = expert.read().action()
            for k, v in obs.items():
                arrays.setdefault(k, []).append(v)
            obs, reward, terminated, truncated, info = env.step(action)
            arrays.setdefault("action", []).append(action)
            arrays.setdefault("reward", []).append(reward)
            arrays.setdefault("terminated", []).append(terminated)
            arrays.setdefault("success", []).append(info["success"])
            done = terminated or truncated
        episodes.append({k: np.asarray(v) for k, v in arrays.items()})
    return episodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demos", type=int, default=20)
    parser.add_argument("--max-steps", type=int, default=20_000)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--eval-episodes", type=int, default=20, help="episodes per evaluation while training")
    parser.add_argument("--final-episodes", type=int, default=100,
                        help="fresh episodes that score the final RLPD policy and the BC baseline")
    parser.add_argument("--target", type=float, default=0.8, help="success rate for env_steps_to_target")
    parser.add_argument("--utd", type=int, default=4, help="critic steps per env step")
    parser.add_argument("--critics", type=int, default=10, help="ensemble size (RLPD and SERL 10, HIL-SERL 2)")
    parser.add_argument("--max-minutes", type=float, default=240.0, help="stop RLPD at the next evaluation after this")
    parser.add_argument("--reward", choices=["sparse", "dense"], default="dense",
                        help="training reward (see task_overrides); evaluation always counts the task's own success")
    parser.add_argument("--task-set", action="append", default=[], metavar="KEY=VALUE",
                        help="a pick_cube knob for training and evaluation, e.g. object_yaw_range_rad=0 (the cube "
                        "square to the gripper, as in SERL's simulated pick-cube)")
    parser.add_argument("--cell-set", action="append", default=[], metavar="KEY=VALUE",
                        help="cell knobs, e.g. safety.max_tilt_rad=0.25 (repeatable)")
    parser.add_argument("--bc-steps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (small MLPs gain nothing from more, and a shared machine penalizes them)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = time.monotonic()
    overrides = task_overrides(args.reward, args.task_set)
    env = make_env(cell=CELL, task="pick_cube", seed=args.seed, cameras=False, overrides=args.cell_set,
                   task_overrides=overrides)
    eval_env = make_env(cell=CELL, task="pick_cube", seed=args.seed + 1, cameras=False, overrides=args.cell_set,
                        task_overrides=args.task_set)
    spaces = observation_spaces(env.observation_space)
    shapes = {k: s for k, (s, _) in spaces.items()}
    episodes = expert_episodes(args.demos, 0.1, seed=10_000, overrides=overrides, cell_overrides=args.cell_set)

    bc_cfg = BCConfig(chunk=1)
    bc_buffer = ReplayBuffer(spaces, 7, 10_000)
    for ep in episodes:
        bc_buffer.add_episode(ep, gamma=0.97)
    bc_agent = train_offline(bc_cfg, bc_buffer, args.bc_steps, shapes, 7, seed=args.seed, progress=False)
    bc_success = evaluate(eval_env, AgentPolicy(bc_agent, sorted(shapes), torch.device("cpu")),
                          args.final_episodes, seed=FINAL_SEED)["success_rate"]
    print(f"bc_success={bc_success:.2f}", flush=True)
    n = args.final_episodes

    cfg = SACConfig(algo="rlpd", n_critics=args.critics, critic_subset=2, hidden=(256, 256), batch_size=256, utd=args.utd,
                    gamma=0.97, init_temperature=0.01, backup_entropy=False, start_steps=0)
    demos = ReplayBuffer(spaces, 7, 10_000)
    for ep in episodes:
        demos.add_episode(ep, gamma=cfg.gamma)
    curve: list[tuple[int, float]] = []

    def on_eval(env_steps: int, result) -> bool:
        success = evaluate(eval_env, result.policy, args.eval_episodes, seed=50_000)["success_rate"]
        curve.append((env_steps, success))
        print(f"env_steps={env_steps} rlpd_success={success:.2f} updates={result.updates}", flush=True)
        return (time.monotonic() - start) / 60 > args.max_minutes

    result = train_online(env, cfg, args.max_steps, demos=demos, seed=args.seed, progress=False, every=args.eval_every,
                          on_every=on_eval)
    rlpd_success = evaluate(eval_env, result.policy, n, seed=FINAL_SEED)["success_rate"]
    reached = [steps for steps, success in curve if success >= args.target]
    print(json.dumps({"rlpd_success_rate": rlpd_success, "rlpd_ci95": wilson_interval(round(rlpd_success * n), n),
                      "bc_success_rate": bc_success, "bc_ci95": wilson_interval(round(bc_success * n), n),
                      "env_steps": result.env_steps, "env_steps_to_target": reached[0] if reached else None,
                      "final_episodes": n, "wall_minutes": round((time.monotonic() - start) / 60, 2),
                      "reward": args.reward, "task_set": args.task_set, "cell_set": args.cell_set, "demos": args.demos, "utd": args.utd,
                      "critics": args.critics, "curve": curve}))


if __name__ == "__main__":
    main()
