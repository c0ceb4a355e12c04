"""Online fine-tuning behind ``robolearn finetune``: RLPD / Cal-QL / WSRL on the twin with demonstrations
from a DemoStore, an optional learned reward, optional teleop interventions, every online episode
appended to the store.

Roles: ``all`` runs everything on this machine, in one process (``actors=0``) or as K actor processes
plus this process as the learner over Zenoh; ``learner`` opens the Zenoh router and trains (e.g. on a
GPU machine); ``actor`` connects to that router and runs the policy (e.g. on the robot PC)."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from robolearn.cell import cell_label
from robolearn.errors import RobolearnError, UsageError
from robolearn.interfaces import real_cell_keys
from robolearn.learn.actor_learner import Actor, ActorLearnerConfig, Learner
from robolearn.learn.agent_policy import AgentPolicy, agent_from_checkpoint, pick_device
from robolearn.learn.agents import config_from_dict, config_to_dict, make_agent
from robolearn.learn.api import (
    default_policy_keys,
    evaluate,
    fit_normalization,
    observation_spaces,
    save_agent,
)
from robolearn.learn.buffer import MixedBuffer, ReplayBuffer
from robolearn.learn.checkpoint import CheckpointError, read_config, recover_checkpoint
from robolearn.learn.observation import cached_observation_spaces, embed_buffer
from robolearn.learn.online import OnlineTrainer
from robolearn.learn.runs import FinetuneRun
from robolearn.learn.train import ScalarLogger, camera_names, store_buffer, twin_only


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


PRETRAINED_PARTS = ("encoder.", "actor.")
"""What a fine-tuning agent always takes from its ``--init`` checkpoint; critics, targets and the
temperature come along where their shapes fit (a pretraining with 10 critics can start a fine-tuning
with 2), and the update counter starts again (so ``critic_warmup_steps`` applies)."""


def init_agent(cfg: Any, init: str | None, shapes: dict[str, tuple[int, ...]], action_dim: int,
               device: torch.device, demos: ReplayBuffer | None = None) -> torch.nn.Module:
    """The agent to fine-tune: the pretrained agent of checkpoint ``init`` (``continue_pretrained``),
    else a fresh one (observations standardized with ``demos``)."""
    from safetensors.torch import load_file

    if init is None:
        agent = make_agent(cfg, shapes, action_dim)
        if demos is not None:
            fit_normalization(agent, demos)
        return agent.to(device)
    source = read_config(init)
    if sorted(source["obs_shapes"]) != sorted(shapes):
        raise CheckpointError(f"{init} was trained on observations {sorted(source['obs_shapes'])}, not {sorted(shapes)}; "
                              f"pass --obs {','.join(sorted(source['obs_shapes']))}")
    pretrained = config_from_dict(source["algo"], source["algo_config"]).encoder
    state = load_file(str(Path(init) / "model.safetensors"), device=str(device))
    return continue_pretrained(cfg, pretrained, state, shapes, action_dim, device, source=str(init))


def continue_pretrained(cfg: Any, pretrained_encoder: Any, state: dict[str, torch.Tensor],
                        shapes: dict[str, tuple[int, ...]], action_dim: int, device: torch.device,
                        source: str = "the pretrained agent") -> torch.nn.Module:
    """A ``cfg`` agent that continues a pretrained one (its weights ``state``): the pretrained
    encoder settings with this run's ``cache``, ``cached_crops`` and ``augment``, and the
    ``PRETRAINED_PARTS`` of ``state`` (with whatever else fits)."""
    cfg = dataclasses.replace(cfg, encoder=dataclasses.replace(
        pretrained_encoder, cache=cfg.encoder.cache, cached_crops=cfg.encoder.cached_crops, augment=cfg.encoder.augment))
    agent = make_agent(cfg, shapes, action_dim).to(device)
    own = agent.state_dict()
    needed = [k for k in own if k.startswith(PRETRAINED_PARTS)]
    wrong = [k for k in needed if k not in state or state[k].shape != own[k].shape]
    if wrong:
        raise CheckpointError(f"{source}: its encoder and actor do not fit this agent ({wrong[:3]} of {len(wrong)} "
                              "tensors missing or of another shape); fine-tune with the algorithm it was pretrained "
                              "with, or the same hidden sizes")
    fits = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape and k != "updates"}
    agent.load_state_dict(fits, strict=False)
    if hasattr(agent, "target_encoder") and not any(k.startswith("target_encoder.") for k in fits):
        agent.target_encoder.load_state_dict(agent.encoder.state_dict())
    return agent


def finetune(run: FinetuneRun, role: str = "all", router: str | None = None, hold_when_learner_away: bool = False,
             resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Fine-tune online for ``run.steps`` env steps in total (see the module doc for ``role``), from
    the pretrained agent ``run.init`` when given; writes ``OUT/last`` every ``run.checkpoint_every``
    env steps (at an episode end) and at the end, and with actors the crash-safe learner checkpoint
    ``OUT/learner``; ``resume`` continues from them bit-exactly.

    Demonstrations are the store's episodes of the task that did not come from earlier online runs;
    online episodes of this run are appended to the store as they finish. With ``init``, the result
    also scores the pretrained policy on the same evaluation seeds as the fine-tuned one."""
    from robolearn.store import DemoStore

    if role not in ("all", "learner", "actor"):
        raise UsageError(f"role must be all, learner or actor, got {role!r}")
    cfg = run.agent
    out_dir = Path(run.out)
    store_keys = list(DemoStore.open(run.store, mode="r").keys)
    keys = run.obs or real_cell_keys(store_keys)
    cameras = camera_names({k: () for k in keys})
    al = ActorLearnerConfig(router=router or "tcp/127.0.0.1:7447", prefix=f"robolearn/learn/{run.task}",
                            hold_when_learner_away=hold_when_learner_away)
    env_args = (run.cell, run.task, cameras, run.reward, run.teleop, run.intervene_probability)
    if role == "actor":
        result_path = out_dir / "actor.json"
        out_dir.mkdir(parents=True, exist_ok=True)
        finetune_actor_main(env_args, run.seed, {"algo": cfg.algo, **config_to_dict(cfg)}, keys, run.init, run.store,
                            al.__dict__, f"actor-{run.seed}", run.steps, str(result_path))
        return {"algo": run.algo, "role": role, "router": al.router, **json.loads(result_path.read_text())}

    dev = pick_device(run.device)
    demos, shapes, action_dim = store_buffer(run.store, run.task, keys, cfg.gamma, r_neg=cfg.r_neg,
                                             exclude_sources=("online",), extra_capacity=run.steps, algo=run.algo,
                                             seed=run.seed + 1)
    agent = init_agent(cfg, run.init, shapes, action_dim, dev, demos)
    append = episode_appender(run.store, run.task, store_keys)
    extra = {"task": run.task, "cell": cell_label(run.cell), "store": str(run.store), "reward": run.reward,
             "twin_only": twin_only(shapes), "init": run.init}
    logger = ScalarLogger(out_dir / "logs", run.wandb, {"algo": run.algo, **config_to_dict(agent.cfg)})
    stats: dict[str, Any] = {}
    start = time.monotonic()
    if role == "all" and run.actors == 0:
        env = build_env(*env_args[:2], run.seed, *env_args[2:])
        trainer = OnlineTrainer(env, agent.cfg, demos if agent.cfg.offline_fraction > 0 else None,
                                agent if run.init else None, dev, run.seed, sorted(shapes), run.steps + 1,
                                run.compile, append)
        last = out_dir / "last"
        recover_checkpoint(last)
        if resume and (last / "config.json").exists():
            trainer.resume(last)
        due = [(trainer.result.env_steps // run.checkpoint_every + 1) * run.checkpoint_every]

        def at_episode_end(t: OnlineTrainer) -> bool:
            if t.result.env_steps >= due[0]:
                t.checkpoint(last, **extra)
                due[0] = (t.result.env_steps // run.checkpoint_every + 1) * run.checkpoint_every
            return False

        result = trainer.run(run.steps, progress, logger.log, at_episode_end)
        trainer.checkpoint(last, **extra)
        agent = result.agent
        if isinstance(env, LearnedReward):
            stats.update(env.stats())
        stats.update(episodes=len(result.episode_successes), updates=result.updates,
                     online_success_rate=float(np.mean(result.episode_successes or [0])))
    else:
        local_actors = run.actors if role == "all" else 0
        agent, learner_stats = run_learner(cfg, agent, demos, shapes, action_dim, run.store, run.steps, out_dir, run.init,
                                           env_args, local_actors, run.seed, dev, extra, al, router, logger,
                                           run.compile, progress)
        save_agent(out_dir / "last", agent, shapes, run.steps, **extra)
        stats.update(learner_stats)
    logger.close()
    success_rate = None
    if run.eval_episodes:
        eval_env = build_env(run.cell, run.task, run.seed + 1000, cameras, "oracle")
        success_rate = evaluate(eval_env, AgentPolicy(agent, sorted(shapes), dev), run.eval_episodes,
                                seed=200_000)["success_rate"]
        if run.init:
            pretrained = agent_from_checkpoint(run.init, dev)[0]
            stats["pretrained_success_rate"] = evaluate(eval_env, AgentPolicy(pretrained, sorted(shapes), dev),
                                                        run.eval_episodes, seed=200_000)["success_rate"]
    return {"algo": run.algo, "role": role, "env_steps": run.steps, "actors": run.actors,
            "checkpoint": str(out_dir / "last"), "observations": sorted(shapes), "twin_only": twin_only(shapes),
            "success_rate": success_rate, "wall_minutes": round((time.monotonic() - start) / 60, 2),
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
    spaces = cached_observation_spaces(agent.encoder, shapes)
    demos = embed_buffer(agent.encoder, demos, dev)
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
    keys = keys or default_policy_keys(spaces)
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
