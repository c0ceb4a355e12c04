"""Online fine-tuning behind ``robolearn finetune``: RLPD / Cal-QL / WSRL on the twin with demonstrations
from a DemoStore, an optional learned reward, every online episode appended to the store; in one
process (``actors=0``) or K actor processes and this process as the learner over Zenoh."""

from __future__ import annotations

import fcntl
import json
import multiprocessing as mp
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from robolearn.learn.agents import config_to_dict, make_agent
from robolearn.learn.api import TrainResult, save_agent, train_online
from robolearn.learn.buffer import MixedBuffer, ReplayBuffer
from robolearn.learn.checkpoint import load_checkpoint, read_config
from robolearn.learn.policy import pick_device
from robolearn.learn.runner import ScalarLogger, load_algo_config, store_buffer


class LearnedReward(gym.Wrapper):
    """Replaces the env reward with a reward model's; counts its false positives against the ground
    truth ``info["success"]`` (false-positive rate = positives on failure steps / failure steps)."""

    def __init__(self, env: gym.Env, reward_model: Any, threshold: float = 0.5):
        super().__init__(env)
        self.reward_model, self.threshold = reward_model, threshold
        self.false_positives = self.negatives = self.true_positives = self.positives = 0

    def step(self, action):
        obs, env_reward, terminated, truncated, info = self.env.step(action)
        reward, prob = self.reward_model(obs)
        truth = bool(info.get("success", False))
        predicted = prob >= self.threshold
        self.positives += truth
        self.negatives += not truth
        self.true_positives += predicted and truth
        self.false_positives += predicted and not truth
        info = {**info, "env_reward": env_reward, "success_prob": prob}
        return obs, float(reward), terminated or (predicted and self.env.unwrapped.terminate_on_success), truncated, info

    def stats(self) -> dict[str, Any]:
        return {"reward_false_positive_rate": self.false_positives / max(self.negatives, 1),
                "reward_true_positive_rate": self.true_positives / max(self.positives, 1),
                "reward_false_positives": self.false_positives, "reward_negative_steps": self.negatives}


@contextmanager
def store_lock(store_path: str):
    """Serializes appends to one store from several actor processes."""
    with open(Path(store_path).parent / (Path(store_path).name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def episode_appender(store_path: str, task: str, store_keys: list[str]):
    from robolearn.store import DemoStore

    def append(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        data = {k: v for k, v in arrays.items() if k in store_keys}
        data.setdefault("stamp_ns", np.full(len(arrays["action"]), time.time_ns(), np.int64))
        with store_lock(store_path):
            DemoStore.open(store_path, mode="a").append_episode(
                data, {"task": task, "source": "online", "success": bool(meta["success"]), "operator": "policy"})
    return append


def build_env(cell: str, task: str, seed: int, cameras: bool, reward: str) -> gym.Env:
    from robolearn.env import make_env

    env = make_env(cell=cell, task=task, seed=seed, cameras=cameras)
    if reward != "oracle":
        from robolearn.reward import load_reward_model

        env = LearnedReward(env, load_reward_model(reward, env=env))
    return env


def init_agent(cfg: Any, init: str | None, shapes: dict[str, tuple[int, ...]], action_dim: int,
               device: torch.device) -> torch.nn.Module | None:
    agent = make_agent(cfg, shapes, action_dim).to(device)
    if init is None:
        return None
    source = read_config(init)
    if sorted(source["obs_shapes"]) != sorted(shapes):
        raise SystemExit(f"robolearn: {init} was trained on {sorted(source['obs_shapes'])}, not {sorted(shapes)}; pass --obs")
    try:
        load_checkpoint(init, agent, device=device)
    except RuntimeError as err:
        raise SystemExit(f"robolearn: {init} ({source['algo']}) does not fit a {cfg.algo} agent with these settings "
                         f"({str(err).splitlines()[0]}); pretrain with the same n_critics/hidden or --set them") from err
    return agent


def finetune(algo: str, store: str, task: str, cell: str, steps: int, out: str, init: str | None = None,
             reward: str = "oracle", actors: int = 0, config_path: str | None = None, overrides: tuple[str, ...] = (),
             keys: list[str] | None = None, device: str | None = None, seed: int = 0, eval_episodes: int = 10) -> dict[str, Any]:
    from robolearn.learn.api import evaluate
    from robolearn.learn.policy import AgentPolicy
    from robolearn.store import DemoStore

    cfg = load_algo_config(algo, config_path, overrides)
    dev = pick_device(device)
    demos, shapes, action_dim = store_buffer(store, task, keys, cfg.gamma)
    store_keys = list(DemoStore.open(store, mode="r").keys)
    cameras = any(k.startswith("rgb_") for k in store_keys)
    agent = init_agent(cfg, init, shapes, action_dim, dev)
    append = episode_appender(store, task, store_keys)
    out_dir = Path(out)
    extra = {"task": task, "cell": cell, "store": str(store), "reward": reward}
    stats: dict[str, Any] = {}
    start = time.monotonic()
    if actors == 0:
        env = build_env(cell, task, seed, cameras, reward)
        logger = ScalarLogger(out_dir / "logs")
        result: TrainResult = train_online(env, cfg, steps, demos=None if cfg.offline_fraction == 0 else demos,
                                           init_agent=agent, device=dev, seed=seed, obs_keys=sorted(shapes),
                                           on_episode=append, log=lambda step, info: logger.log(step, info))
        logger.close()
        agent = result.agent
        if isinstance(env, LearnedReward):
            stats.update(env.stats())
        stats.update(episodes=len(result.episode_successes), online_success_rate=float(np.mean(result.episode_successes or [0])),
                     updates=result.updates)
    else:
        agent, learner_stats = _distributed(cfg, agent, demos, shapes, action_dim, store, task, cell, steps, out_dir,
                                            init, reward, actors, seed, cameras, dev, extra)
        stats.update(learner_stats)
    save_agent(out_dir / "last", agent, shapes, steps, **extra)
    eval_env = build_env(cell, task, seed + 1000, cameras, "oracle")
    evaluation = evaluate(eval_env, AgentPolicy(agent, sorted(shapes), dev), eval_episodes, seed=200_000)
    return {"algo": algo, "env_steps": steps, "actors": actors, "checkpoint": str(out_dir / "last"),
            "success_rate": evaluation["success_rate"], "wall_minutes": round((time.monotonic() - start) / 60, 2),
            "device": str(dev), **stats}


def _distributed(cfg, agent, demos, shapes, action_dim, store, task, cell, steps, out_dir, init, reward, actors,
                 seed, cameras, dev, extra) -> tuple[torch.nn.Module, dict[str, Any]]:
    from robolearn.learn.actor_learner import ActorLearnerConfig, Learner
    from robolearn.ros.zenoh_backend import free_endpoint, open_router

    router_endpoint = free_endpoint()
    router = open_router(router_endpoint)
    al = ActorLearnerConfig(router=router_endpoint, prefix=f"robolearn/learn/{out_dir.name}")
    agent = agent if agent is not None else make_agent(cfg, shapes, action_dim).to(dev)
    spaces = {k: (s, np.dtype(np.uint8) if k.startswith("rgb_") else np.dtype(np.float32)) for k, s in shapes.items()}
    online = ReplayBuffer(spaces, action_dim, max(steps, 1))
    buffer = MixedBuffer(demos, online, cfg.offline_fraction)
    learner = Learner(agent, buffer, out_dir / "learner", al, dev, extra)
    ctx = mp.get_context("spawn")
    per_actor = -(-steps // actors)
    procs = []
    for i in range(actors):
        result_path = out_dir / f"actor{i}.json"
        procs.append(ctx.Process(target=finetune_actor_main, args=(
            cell, task, seed + 1000 * i, cameras, reward, {"algo": cfg.algo, **config_to_dict(cfg)}, sorted(shapes),
            init, store, al.__dict__, f"actor{i}", per_actor, str(result_path))))
    out_dir.mkdir(parents=True, exist_ok=True)
    for p in procs:
        p.start()
    bar = tqdm(total=per_actor * actors, desc=f"{cfg.algo} learner", unit="transition", leave=False)
    try:
        while learner.total_committed() < per_actor * actors and any(p.is_alive() for p in procs):
            learner.step()
            bar.update(learner.total_committed() - bar.n)
        learner.checkpoint()
        bar.close()
        for p in procs:
            p.join(60)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
        learner.close()
        router.close()
    failed = [(i, p.exitcode) for i, p in enumerate(procs) if p.exitcode != 0]
    if failed:
        raise SystemExit(f"robolearn: actor processes {failed} (index, exit code) failed; see their errors above. "
                         f"The learner checkpoint in {out_dir / 'learner'} holds every committed transition; rerun to resume")
    actor_stats = [json.loads((out_dir / f"actor{i}.json").read_text()) for i in range(actors)
                   if (out_dir / f"actor{i}.json").exists()]
    stats: dict[str, Any] = {"updates": learner.updates, "committed_transitions": learner.total_committed()}
    if reward != "oracle" and actor_stats:
        fp = sum(a["reward_false_positives"] for a in actor_stats)
        neg = sum(a["reward_negative_steps"] for a in actor_stats)
        stats.update(reward_false_positive_rate=fp / max(neg, 1), reward_false_positives=fp)
    return agent, stats


def finetune_actor_main(cell: str, task: str, seed: int, cameras: bool, reward: str, algo_config: dict[str, Any],
                        keys: list[str], init: str | None, store: str, al_config: dict[str, Any], actor_id: str,
                        steps: int, result_path: str) -> None:
    """One actor process: the twin (with the learned reward if any), appending its episodes to the store."""
    from robolearn.learn.actor_learner import Actor, ActorLearnerConfig
    from robolearn.learn.agents import config_from_dict
    from robolearn.learn.api import observation_spaces
    from robolearn.store import DemoStore

    env = build_env(cell, task, seed, cameras, reward)
    spaces = observation_spaces(env.observation_space)
    shapes = {k: spaces[k][0] for k in keys}
    cfg = config_from_dict(algo_config["algo"], {k: v for k, v in algo_config.items() if k != "algo"})
    agent = init_agent(cfg, init, shapes, int(np.prod(env.action_space.shape)), torch.device("cpu"))
    agent = agent if agent is not None else make_agent(cfg, shapes, int(np.prod(env.action_space.shape)))
    store_keys = list(DemoStore.open(store, mode="r").keys)
    actor = Actor(env, agent, ActorLearnerConfig(**al_config), actor_id, on_episode=episode_appender(store, task, store_keys),
                  seed=seed)
    actor.run(steps)
    flushed = actor.flush(60.0)
    stats = env.stats() if isinstance(env, LearnedReward) else {}
    Path(result_path).write_text(json.dumps({"sent": actor.seq, "flushed": flushed, **stats}))
    actor.close()
