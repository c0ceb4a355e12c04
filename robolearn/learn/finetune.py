"""Online fine-tuning behind ``robolearn finetune``: RLPD / Cal-QL / WSRL on the twin with demonstrations
from a DemoStore, an optional learned reward, optional teleop interventions, every online episode
appended to the store.

Roles: ``all`` runs everything on this machine, in one process (``actors=0``) or as K actor processes
plus this process as the learner over Zenoh; ``learner`` opens the Zenoh router and trains (e.g. on a
GPU machine); ``actor`` connects to that router and runs the policy (e.g. on the robot PC)."""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from robolearn.errors import RobolearnError, UsageError
from robolearn.learn.actor_learner import Actor, ActorLearnerConfig, Learner
from robolearn.learn.agent_policy import AgentPolicy, pick_device
from robolearn.learn.agents import config_from_dict, config_to_dict, make_agent
from robolearn.learn.api import (
    TrainResult,
    evaluate,
    fit_normalization,
    observation_spaces,
    save_agent,
    train_online,
)
from robolearn.learn.buffer import MixedBuffer, ReplayBuffer
from robolearn.learn.checkpoint import CheckpointError, load_checkpoint, read_config
from robolearn.learn.train import ScalarLogger, load_algo_config, store_buffer


class ActorFailedError(RobolearnError):
    """An actor process of a fine-tuning run exited with an error (its own message is above)."""


class LearnedReward(gym.Wrapper):
    """Replaces the env's reward and success with a reward model's, as on a real cell.

    ``info["success"]`` becomes the model's call (success probability ≥ the model's calibrated
    ``threshold``, 0.5 when it has none; ``threshold`` overrides it), and that call ends the episode
    when the task ends on success. The env's own ground-truth success no longer ends anything (an env
    with ``terminate_on_success``, the twin, has it switched off): episodes end on the model's call or
    the time limit. The ground truth stays in ``info["success_true"]``, and the wrapper counts the
    model's false positives against it (rate = positives on failure steps / failure steps)."""

    def __init__(self, env: gym.Env, reward_model: Any, threshold: float | None = None):
        super().__init__(env)
        self.reward_model = reward_model
        self.threshold = float(getattr(reward_model, "threshold", 0.5) if threshold is None else threshold)
        base = env.unwrapped
        self.terminate_on_success = bool(getattr(base, "terminate_on_success", False))
        if hasattr(base, "terminate_on_success"):
            base.terminate_on_success = False
        self.false_positives = self.negatives = self.true_positives = self.positives = 0

    def step(self, action):
        obs, env_reward, terminated, truncated, info = self.env.step(action)
        reward, prob = self.reward_model(obs)
        truth = bool(info.get("success", False))
        predicted = bool(prob >= self.threshold)
        self.positives += truth
        self.negatives += not truth
        self.true_positives += predicted and truth
        self.false_positives += predicted and not truth
        info = {**info, "success": predicted, "success_true": truth, "env_reward": env_reward, "success_prob": prob}
        return obs, float(reward), terminated or (predicted and self.terminate_on_success), truncated, info

    def stats(self) -> dict[str, Any]:
        return {"reward_false_positive_rate": self.false_positives / max(self.negatives, 1),
                "reward_true_positive_rate": self.true_positives / max(self.positives, 1),
                "reward_false_positives": self.false_positives, "reward_negative_steps": self.negatives}


def episode_appender(store_path: str, task: str, store_keys: list[str]):
    """``append(arrays, meta)``: one online episode into the store (the keys it holds), under the
    store's writer lock, which is released after each episode so several actor processes can append.

    ``success`` (per step and in the metadata) is the episode's own: a learned reward's call when one
    is used. With a ``success_true`` array (the twin's ground truth under a learned reward) the
    metadata also gets ``success_true``, ``success_true_steps`` and ``reward_false_positive_steps``."""
    from robolearn.store import DemoStore

    def append(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        data = {k: v for k, v in arrays.items() if k in store_keys}
        data.setdefault("stamp_ns", np.full(len(arrays["action"]), time.time_ns(), np.int64))
        interventions = int(np.sum(arrays.get("intervention", 0)))
        info = {"task": task, "source": "online", "success": bool(meta["success"]),
                "operator": "policy+human" if interventions else "policy", "interventions": interventions}
        if "success_true" in arrays:
            truth, called = np.asarray(arrays["success_true"], bool), np.asarray(arrays["success"], bool)
            info.update(success_true=bool(truth.any()), success_true_steps=int(truth.sum()),
                        reward_false_positive_steps=int((called & ~truth).sum()))
        with DemoStore.open(store_path, mode="a") as store:  # the store's writer lock serializes actors
            store.append_episode(data, info)
    return append


def build_env(cell: str, task: str, seed: int, cameras: bool, reward: str, teleop: str | None = None,
              intervene_probability: float = 0.05) -> gym.Env:
    """The twin env, wrapped with a learned reward (unless ``oracle``) and with interventions from
    ``teleop``: ``expert`` (the scripted expert takes over at random, ``intervene_probability`` per
    step) or a teleop device type (``spacemouse``, ``keyboard``, ``gamepad``: the operator takes over)."""
    from robolearn.env import make_env
    from robolearn.learn.intervention import Intervention, ScriptedIntervention

    env = make_env(cell=cell, task=task, seed=seed, cameras=cameras)
    if teleop == "expert":
        from robolearn.sim.experts import make_expert

        env = Intervention(env, ScriptedIntervention(make_expert(env, seed=seed), intervene_probability, seed=seed))
    elif teleop:
        from robolearn.rollout import make_teleop

        env = Intervention(env, make_teleop(teleop, env))
    if reward != "oracle":
        from robolearn.reward import load_reward_model

        env = LearnedReward(env, load_reward_model(reward, env=env.unwrapped))
    return env


def init_agent(cfg: Any, init: str | None, shapes: dict[str, tuple[int, ...]], action_dim: int,
               device: torch.device, demos: ReplayBuffer | None = None) -> torch.nn.Module:
    """The agent of checkpoint ``init``, else a fresh one (observations standardized with ``demos``)."""
    agent = make_agent(cfg, shapes, action_dim)
    if init is None:
        if demos is not None:
            fit_normalization(agent, demos)
        return agent.to(device)
    agent = agent.to(device)
    source = read_config(init)
    if sorted(source["obs_shapes"]) != sorted(shapes):
        raise CheckpointError(f"{init} was trained on observations {sorted(source['obs_shapes'])}, not {sorted(shapes)}; "
                              f"pass --obs {','.join(sorted(source['obs_shapes']))}")
    load_checkpoint(init, agent, device=device)
    return agent


def finetune(algo: str, store: str, task: str, cell: str, steps: int, out: str, init: str | None = None,
             reward: str = "oracle", actors: int = 0, config_path: str | None = None, overrides: tuple[str, ...] = (),
             keys: list[str] | None = None, device: str | None = None, seed: int = 0, eval_episodes: int = 10,
             role: str = "all", router: str | None = None, teleop: str | None = None,
             intervene_probability: float = 0.05, hold_when_learner_away: bool = False,
             wandb_project: str | None = None, compile: bool = False, progress: bool = True) -> dict[str, Any]:
    """Fine-tune online for ``steps`` env steps in total (see the module doc for ``role``); writes
    ``out/last`` and, with actors, the crash-safe learner checkpoint ``out/learner`` (rerun to resume).

    Demonstrations are the store's episodes of ``task`` that did not come from earlier online runs;
    online episodes of this run are appended to the store as they finish."""
    from robolearn.store import DemoStore

    if role not in ("all", "learner", "actor"):
        raise UsageError(f"role must be all, learner or actor, got {role!r}")
    cfg = load_algo_config(algo, config_path, overrides)
    out_dir = Path(out)
    store_keys = list(DemoStore.open(store, mode="r").keys)
    cameras = any(k.startswith("rgb_") for k in store_keys)
    al = ActorLearnerConfig(router=router or "tcp/127.0.0.1:7447", prefix=f"robolearn/learn/{task}",
                            hold_when_learner_away=hold_when_learner_away)
    env_args = (cell, task, cameras, reward, teleop, intervene_probability)
    if role == "actor":
        result_path = out_dir / "actor.json"
        out_dir.mkdir(parents=True, exist_ok=True)
        finetune_actor_main(env_args, seed, {"algo": cfg.algo, **config_to_dict(cfg)}, keys, init, store,
                            al.__dict__, f"actor-{seed}", steps, str(result_path))
        return {"algo": algo, "role": role, "router": al.router, **json.loads(result_path.read_text())}

    dev = pick_device(device)
    demos, shapes, action_dim = store_buffer(store, task, keys, cfg.gamma, r_neg=cfg.r_neg,
                                             exclude_sources=("online",), extra_capacity=steps, algo=algo)
    agent = init_agent(cfg, init, shapes, action_dim, dev, demos)
    append = episode_appender(store, task, store_keys)
    extra = {"task": task, "cell": cell, "store": str(store), "reward": reward}
    logger = ScalarLogger(out_dir / "logs", wandb_project, {"algo": algo, **config_to_dict(cfg)})
    stats: dict[str, Any] = {}
    start = time.monotonic()
    if role == "all" and actors == 0:
        env = build_env(*env_args[:2], seed, *env_args[2:])
        result: TrainResult = train_online(env, cfg, steps, demos=None if cfg.offline_fraction == 0 else demos,
                                           init_agent=agent if init else None, device=dev, seed=seed,
                                           obs_keys=sorted(shapes), on_episode=append, log=logger.log,
                                           compile=compile, progress=progress)
        agent = result.agent
        if isinstance(env, LearnedReward):
            stats.update(env.stats())
        stats.update(episodes=len(result.episode_successes), updates=result.updates,
                     online_success_rate=float(np.mean(result.episode_successes or [0])))
    else:
        local_actors = actors if role == "all" else 0
        agent, learner_stats = run_learner(cfg, agent, demos, shapes, action_dim, store, steps, out_dir, init, env_args,
                                           local_actors, seed, dev, extra, al, router, logger, compile, progress)
        stats.update(learner_stats)
    logger.close()
    save_agent(out_dir / "last", agent, shapes, steps, **extra)
    eval_env = build_env(cell, task, seed + 1000, cameras, "oracle")
    evaluation = evaluate(eval_env, AgentPolicy(agent, sorted(shapes), dev), eval_episodes, seed=200_000)
    return {"algo": algo, "role": role, "env_steps": steps, "actors": actors, "checkpoint": str(out_dir / "last"),
            "success_rate": evaluation["success_rate"], "wall_minutes": round((time.monotonic() - start) / 60, 2),
            "device": str(dev), **stats}


def run_learner(cfg: Any, agent: torch.nn.Module, demos: ReplayBuffer, shapes: dict[str, tuple[int, ...]],
                action_dim: int, store: str, steps: int, out_dir: Path, init: str | None, env_args: tuple,
                actors: int, seed: int, dev: torch.device, extra: dict[str, Any], al: ActorLearnerConfig,
                router: str | None, logger: ScalarLogger, compile: bool, progress: bool) -> tuple[torch.nn.Module, dict]:
    """This process as the learner behind a Zenoh router it opens (``router``, or a free local port),
    with ``actors`` local actor processes; returns when ``steps`` transitions are committed."""
    from robolearn.learn.api import compile_agent
    from robolearn.ros.zenoh_backend import free_endpoint, open_router

    listen = router or free_endpoint()
    zenoh_router = open_router(listen)
    al.router = listen.replace("0.0.0.0", "127.0.0.1")
    spaces = {k: (s, np.dtype(np.uint8) if k.startswith("rgb_") else np.dtype(np.float32)) for k, s in shapes.items()}
    buffer = MixedBuffer(demos, ReplayBuffer(spaces, action_dim, max(steps, 1)), cfg.offline_fraction, cfg.gamma, cfg.r_neg)
    learner = Learner(agent, buffer, out_dir / "learner", al, dev, extra)
    if compile:
        compile_agent(agent)
    remaining = max(steps - learner.total_committed(), 0)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=finetune_actor_main, args=(
        env_args, seed + 1000 * i, {"algo": cfg.algo, **config_to_dict(cfg)}, sorted(shapes), init, store, al.__dict__,
        f"actor{i}", -(-remaining // actors), str(out_dir / f"actor{i}.json"))) for i in range(actors)]
    out_dir.mkdir(parents=True, exist_ok=True)
    for p in procs:
        p.start()
    bar = tqdm(total=steps, initial=learner.total_committed(), desc=f"{cfg.algo} learner", unit="transition",
               leave=False, disable=not progress)
    try:
        while learner.total_committed() < steps and (not procs or any(p.is_alive() for p in procs)):
            info = learner.step()
            if info and learner.updates % 100 == 0:
                logger.log(learner.total_committed(), info)
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
        zenoh_router.close()
    failed = [(i, p.exitcode) for i, p in enumerate(procs) if p.exitcode != 0]
    if failed:
        raise ActorFailedError(f"actor processes {failed} (index, exit code) failed; see their errors above. "
                         f"The learner checkpoint in {out_dir / 'learner'} holds every committed transition; rerun to resume")
    actor_stats = [json.loads((out_dir / f"actor{i}.json").read_text()) for i in range(actors)
                   if (out_dir / f"actor{i}.json").exists()]
    stats: dict[str, Any] = {"updates": learner.updates, "committed_transitions": learner.total_committed(),
                             "demo_transitions": len(buffer.demo), "dropped_transitions": learner.dropped,
                             "interventions": sum(a["interventions"] for a in actor_stats)}
    if env_args[3] != "oracle" and actor_stats:
        fp = sum(a["reward_false_positives"] for a in actor_stats)
        neg = sum(a["reward_negative_steps"] for a in actor_stats)
        stats.update(reward_false_positive_rate=fp / max(neg, 1), reward_false_positives=fp)
    return agent, stats


def finetune_actor_main(env_args: tuple, seed: int, algo_config: dict[str, Any], keys: list[str] | None,
                        init: str | None, store: str, al_config: dict[str, Any], actor_id: str, steps: int,
                        result_path: str) -> None:
    """One actor: the twin (with the learned reward and interventions, if any) for ``steps`` env steps,
    streaming transitions to the learner and appending its episodes to ``store``; then it resends
    until the learner has committed everything and writes its counts to ``result_path``."""
    from robolearn.store import DemoStore

    cell, task, cameras, reward, teleop, intervene_probability = env_args
    env = build_env(cell, task, seed, cameras, reward, teleop, intervene_probability)
    spaces = observation_spaces(env.observation_space)
    keys = keys or sorted(k for k in spaces if k in ("state", "object_state"))
    cfg = config_from_dict(algo_config["algo"], {k: v for k, v in algo_config.items() if k != "algo"})
    agent = init_agent(cfg, init, {k: spaces[k][0] for k in keys}, int(np.prod(env.action_space.shape)),
                       torch.device("cpu"))
    store_keys = list(DemoStore.open(store, mode="r").keys)
    actor = Actor(env, agent, ActorLearnerConfig(**al_config), actor_id, on_episode=episode_appender(store, task, store_keys),
                  seed=seed)
    actor.run(steps)
    flushed = actor.flush(120.0)
    stats = env.stats() if isinstance(env, LearnedReward) else {}
    Path(result_path).write_text(json.dumps({"sent": actor.seq, "flushed": flushed, "interventions": actor.interventions,
                                             **stats}))
    actor.close()
