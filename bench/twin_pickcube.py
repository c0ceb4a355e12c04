"""RLPD on the twin's pick_cube from 20 scripted-expert demonstrations (state observations), with a BC
baseline trained on the same demonstrations. Slow; not in CI.

Prints a last-line JSON with ``rlpd_success_rate`` (the deterministic policy of the first evaluation
reaching ``--target``, else of the end, scored again on ``--final-episodes`` fresh seeds that took no
part in choosing it), ``bc_success_rate`` (on the same fresh seeds),
``env_steps`` (online steps RLPD used), ``wall_minutes``, the best evaluation and the success curve.
Target: ≥ 0.8 within 20k env steps on a 2-core machine. Evaluation is always on the task as defined
(sparse reward, success ends the episode); ``--reward dense`` trains on the shaped reward.
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
from robolearn.learn.api import evaluate, observation_spaces, train_offline, train_online  # noqa: E402
from robolearn.learn.bc import BCConfig  # noqa: E402
from robolearn.learn.buffer import ReplayBuffer  # noqa: E402
from robolearn.learn.policy import AgentPolicy  # noqa: E402
from robolearn.learn.sac import SACConfig  # noqa: E402
from robolearn.sim.experts import make_expert  # noqa: E402

CELL = "configs/cells/sim_panda.yaml"
FINAL_SEED = 90_000  # disjoint from the training evaluations' seeds (50_000 + i)


def task_overrides(reward: str) -> list[str]:
    """``sparse``: the task as defined (1 on success, which ends the episode). ``dense``: the task's shaped
    reward (0.3·reach + 0.7·lift, 1 while lifted) with episodes running to the time limit: ending them
    on success would make a success (reward 1, then nothing) worth less than hovering near the cube."""
    return [] if reward == "sparse" else ["reward=dense", "terminate_on_success=false"]


def expert_episodes(n: int, noise_scale: float, seed: int, reward: str) -> list[dict[str, np.ndarray]]:
    env = make_env(cell=CELL, task="pick_cube", seed=seed, cameras=False, task_overrides=task_overrides(reward))
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
    parser.add_argument("--final-episodes", type=int, default=50,
                        help="fresh episodes that score the chosen RLPD policy and the BC baseline")
    parser.add_argument("--target", type=float, default=0.8)
    parser.add_argument("--utd", type=int, default=4, help="critic steps per env step")
    parser.add_argument("--critics", type=int, default=2, help="ensemble size (SERL 10 / HIL-SERL 2)")
    parser.add_argument("--max-minutes", type=float, default=180.0, help="stop RLPD at the next evaluation after this")
    parser.add_argument("--reward", choices=["sparse", "dense"], default="sparse",
                        help="training reward (see task_overrides); evaluation always counts the task's own success")
    parser.add_argument("--bc-steps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (small MLPs gain nothing from more, and a shared machine penalizes them)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = time.monotonic()
    env = make_env(cell=CELL, task="pick_cube", seed=args.seed, cameras=False, task_overrides=task_overrides(args.reward))
    eval_env = make_env(cell=CELL, task="pick_cube", seed=args.seed + 1, cameras=False)
    spaces = observation_spaces(env.observation_space)
    shapes = {k: s for k, (s, _) in spaces.items()}
    episodes = expert_episodes(args.demos, 0.1, seed=10_000, reward=args.reward)

    bc_cfg = BCConfig(chunk=1)
    bc_buffer = ReplayBuffer(spaces, 7, 10_000)
    for ep in episodes:
        bc_buffer.add_episode(ep, gamma=0.97)
    bc_agent = train_offline(bc_cfg, bc_buffer, args.bc_steps, shapes, 7, seed=args.seed, progress=False)
    bc_success = evaluate(eval_env, AgentPolicy(bc_agent, sorted(shapes), torch.device("cpu")),
                          args.final_episodes, seed=FINAL_SEED)["success_rate"]
    print(f"bc_success={bc_success:.2f}", flush=True)

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
        return success >= args.target or (time.monotonic() - start) / 60 > args.max_minutes

    result = train_online(env, cfg, args.max_steps, demos=demos, seed=args.seed, progress=False, every=args.eval_every,
                          on_every=on_eval)
    rlpd_success = evaluate(eval_env, result.policy, args.final_episodes, seed=FINAL_SEED)["success_rate"]
    print(json.dumps({"rlpd_success_rate": rlpd_success, "bc_success_rate": bc_success, "env_steps": result.env_steps,
                      "final_episodes": args.final_episodes, "selection_success_rate": curve[-1][1],
                      "wall_minutes": round((time.monotonic() - start) / 60, 2),
                      "best_rlpd_success_rate": max(s for _, s in curve), "reward": args.reward, "demos": args.demos,
                      "utd": args.utd, "critics": args.critics, "curve": curve}))


if __name__ == "__main__":
    main()
