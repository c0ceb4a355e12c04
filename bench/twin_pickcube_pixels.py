"""pick_cube from the cameras: 20 scripted-expert demonstrations with ``rgb_front``, ``rgb_wrist`` and
``state`` only (no ``object_state``), then the loop a real cell runs. Slow; not in CI.

1. **BC**: behaviour cloning (``robolearn train --algo bc``) on the demonstrations, end to end from
   the pixels: the baseline.
2. **Pretrained**: the RLPD agent pretrained offline on the same demonstrations (``train --algo
   rlpd``: behaviour cloning of its actor and image encoder, the encoder trained on the store's own
   frames since no pretrained weights can be downloaded here).
3. **Fine-tuned**: that agent fine-tuned online (``finetune --algo rlpd --init``) with its image
   encoder frozen and the embeddings cached (``encoder.cache``), 50/50 demo and online batches, a
   critic warm-up before the actor moves, on the task's shaped reward (SERL's simulated pick-cube
   reward, as ``bench/twin_pickcube.py``); success is always the task's own (the cube lifted 5 cm).

Prints a last-line JSON with ``bc_success_rate``, ``pretrained_success_rate`` and
``finetuned_success_rate`` (each scored on ``--final-episodes`` fresh seeds with a Wilson 95 %
interval), ``env_steps_to_0_8`` (the first evaluation along the way, on ``--eval-episodes`` seeds, at
or above 0.8), ``env_steps``, ``wall_minutes``, ``updates_per_s`` (fine-tuning update cycles per
second of learner time), ``encoder`` and the success curve. Targets on a 2-core machine: fine-tuned
≥ 0.8 within 20k env steps, at least 0.3 above BC, ``wall_minutes`` ≤ 120.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, replace

os.environ.setdefault("MUJOCO_GL", "egl")

import torch  # noqa: E402
from twin_pickcube import CELL, FINAL_SEED, expert_episodes, task_overrides  # noqa: E402

from robolearn.env import make_env  # noqa: E402
from robolearn.evaluate.stats import wilson_interval  # noqa: E402
from robolearn.learn.agent_policy import AgentPolicy  # noqa: E402
from robolearn.learn.api import evaluate, observation_spaces, train_offline  # noqa: E402
from robolearn.learn.bc import BCConfig  # noqa: E402
from robolearn.learn.buffer import ReplayBuffer  # noqa: E402
from robolearn.learn.finetune import continue_pretrained  # noqa: E402
from robolearn.learn.observation import EncoderConfig  # noqa: E402
from robolearn.learn.online import OnlineTrainer  # noqa: E402
from robolearn.learn.sac import SACConfig  # noqa: E402

KEYS = ["rgb_front", "rgb_wrist", "state"]


def scored(env, agent, keys: list[str], episodes: int, seed: int) -> dict:
    rate = evaluate(env, AgentPolicy(agent, keys, torch.device("cpu")), episodes, seed=seed)["success_rate"]
    return {"rate": rate, "ci95": wilson_interval(round(rate * episodes), episodes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demos", type=int, default=20)
    parser.add_argument("--max-steps", type=int, default=20_000, help="fine-tuning env steps")
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--eval-episodes", type=int, default=20, help="episodes per evaluation while fine-tuning")
    parser.add_argument("--final-episodes", type=int, default=100)
    parser.add_argument("--image", default="fast_cnn", help="encoder.image (the trunk)")
    parser.add_argument("--head", default=None, help="encoder.head (default: the trunk's)")
    parser.add_argument("--image-size", type=int, default=None, help="encoder.image_size_px (default: as rendered)")
    parser.add_argument("--latent", type=int, default=64, help="encoder.image_latent_dim")
    parser.add_argument("--bc-steps", type=int, default=3000, help="steps of BC and of the RLPD agent's pretraining")
    parser.add_argument("--batch", type=int, default=128, help="pretraining batch size")
    parser.add_argument("--utd", type=int, default=4)
    parser.add_argument("--critics", type=int, default=10)
    parser.add_argument("--critic-warmup", type=int, default=1000, help="critic-only update cycles first")
    parser.add_argument("--bc-weight", type=float, default=0.0)
    parser.add_argument("--crops", type=int, default=4, help="cached shifted crops per frame (0: none)")
    parser.add_argument("--reward", choices=["sparse", "dense"], default="dense")
    parser.add_argument("--max-minutes", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (small networks gain little from more, and a shared machine penalizes them)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.monotonic()
    overrides = task_overrides(args.reward, [])
    env = make_env(cell=CELL, task="pick_cube", seed=args.seed, cameras=["front", "wrist"], task_overrides=overrides)
    eval_env = make_env(cell=CELL, task="pick_cube", seed=args.seed + 1, cameras=["front", "wrist"])
    spaces = {k: v for k, v in observation_spaces(env.observation_space).items() if k in KEYS}
    shapes = {k: s for k, (s, _) in spaces.items()}
    episodes = expert_episodes(args.demos, 0.1, seed=10_000 + 1000 * args.seed, overrides=overrides, cell_overrides=[],
                               cameras=["front", "wrist"])
    encoder = EncoderConfig(image=args.image, head=args.head, image_size_px=args.image_size,
                            image_latent_dim=args.latent, cached_crops=args.crops)
    n = args.final_episodes
    timings: dict[str, float] = {}

    def demo_buffer(gamma: float) -> ReplayBuffer:
        buffer = ReplayBuffer(spaces, 7, args.demos * 200, seed=args.seed)
        for ep in episodes:
            buffer.add_episode(ep, gamma=gamma)
        return buffer

    t0 = time.monotonic()
    bc_agent = train_offline(BCConfig(chunk=1, batch_size=args.batch, encoder=encoder), demo_buffer(0.97), args.bc_steps,
                             shapes, 7, seed=args.seed, progress=False)
    bc = scored(eval_env, bc_agent, sorted(shapes), n, FINAL_SEED)
    timings["bc_minutes"] = (time.monotonic() - t0) / 60
    print(f"bc_success={bc['rate']:.2f} ({timings['bc_minutes']:.1f} min)", flush=True)

    cfg = SACConfig(algo="rlpd", n_critics=args.critics, critic_subset=2, hidden=(256, 256), batch_size=256, utd=args.utd,
                    gamma=0.97, init_temperature=0.01, backup_entropy=False, start_steps=0, pretrain="bc",
                    critic_warmup_steps=args.critic_warmup, bc_weight=args.bc_weight, encoder=encoder)
    t0 = time.monotonic()
    pretrained = train_offline(replace(cfg, batch_size=args.batch), demo_buffer(cfg.gamma), args.bc_steps, shapes, 7,
                               seed=args.seed, progress=False)
    pre = scored(eval_env, pretrained, sorted(shapes), n, FINAL_SEED)
    timings["pretrain_minutes"] = (time.monotonic() - t0) / 60
    print(f"pretrained_success={pre['rate']:.2f} ({timings['pretrain_minutes']:.1f} min)", flush=True)

    agent = continue_pretrained(replace(cfg, encoder=replace(encoder, cache=True)), encoder, pretrained.state_dict(),
                                shapes, 7, torch.device("cpu"))
    trainer = OnlineTrainer(env, agent.cfg, demo_buffer(cfg.gamma), init_agent=agent, seed=args.seed,
                            obs_keys=sorted(shapes), capacity=args.max_steps + 1)
    curve: list[tuple[int, float]] = []
    learner_s = [0.0]
    due = [args.eval_every]

    def at_episode_end(run: OnlineTrainer) -> bool:
        if run.result.env_steps < due[0]:
            return False
        due[0] += args.eval_every
        success = scored(eval_env, run.agent, sorted(shapes), args.eval_episodes, 50_000)["rate"]
        curve.append((run.result.env_steps, success))
        print(f"env_steps={run.result.env_steps} success={success:.2f} updates={run.result.updates} "
              f"minutes={(time.monotonic() - start) / 60:.1f}", flush=True)
        return (time.monotonic() - start) / 60 > args.max_minutes

    update = agent.update

    def timed_update(batches):
        t = time.perf_counter()
        info = update(batches)
        learner_s[0] += time.perf_counter() - t
        return info

    agent.update = timed_update
    t0 = time.monotonic()
    result = trainer.run(args.max_steps, progress=False, on_episode_end=at_episode_end)
    timings["finetune_minutes"] = (time.monotonic() - t0) / 60
    fine = scored(eval_env, result.agent, sorted(shapes), n, FINAL_SEED)
    reached = [steps for steps, success in curve if success >= 0.8]
    print(json.dumps({
        "bc_success_rate": bc["rate"], "bc_ci95": bc["ci95"],
        "pretrained_success_rate": pre["rate"], "pretrained_ci95": pre["ci95"],
        "finetuned_success_rate": fine["rate"], "finetuned_ci95": fine["ci95"],
        "env_steps_to_0_8": reached[0] if reached else None, "env_steps": result.env_steps,
        "wall_minutes": round((time.monotonic() - start) / 60, 2),
        "updates_per_s": round(result.updates / max(learner_s[0], 1e-9), 2),
        "encoder": asdict(encoder), "observations": sorted(shapes), "final_episodes": n, "seed": args.seed,
        "demos": args.demos, "utd": args.utd, "critics": args.critics, "critic_warmup": args.critic_warmup,
        "bc_weight": args.bc_weight, "bc_steps": args.bc_steps, "reward": args.reward,
        "timings_minutes": {k: round(v, 2) for k, v in timings.items()}, "curve": curve}))


if __name__ == "__main__":
    main()
