"""Online SAC-family training in one process (RLPD, Cal-QL, WSRL, SAC), resumable bit-exactly.

``OnlineTrainer`` steps a gymnasium env with the agent's policy, stores transitions (camera frames
as cached embeddings when ``encoder.cache`` is set: each frame is encoded once, and the encoding
the policy acted on is the one stored), and runs ``utd`` critic updates and one actor update per
env step. Episode ``k`` is reset with a seed derived from ``(seed, k)``, and a wrapper that has its
own randomness (``Intervention``) reseeds from it too, so a run that is checkpointed at an
episode end (``checkpoint``) and resumed (``resume``) continues exactly as if it had not stopped.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from robolearn.learn.agent_policy import AgentPolicy, pick_device
from robolearn.learn.agents import make_agent
from robolearn.learn.api import (
    ActionScaler,
    as_obs_dict,
    compile_agent,
    default_policy_keys,
    fit_normalization,
    observation_spaces,
    save_agent,
    stored_action,
)
from robolearn.learn.buffer import MixedBuffer, ReplayBuffer
from robolearn.learn.checkpoint import load_checkpoint
from robolearn.learn.losses import wsrl_in_warmup
from robolearn.learn.observation import cached_observation_spaces, embed_buffer

Obs = dict[str, np.ndarray]


def step_features(encoder: torch.nn.Module, keys: list[str], obs: Any, device: torch.device) -> Obs:
    """What a replay buffer stores and the policy reads for one raw env observation: the agent's
    ``keys``, with camera frames replaced by their cached embeddings ``(V, latent_dim)`` when
    ``encoder`` caches (one encoding per frame, reused for acting and storing)."""
    picked = as_obs_dict(obs, keys)
    if not encoder.cfg.cache:
        return picked
    batch = {k: torch.as_tensor(np.asarray(v)).unsqueeze(0).to(device) for k, v in picked.items()}
    return {k: v[0].float().cpu().numpy() for k, v in encoder.embed(batch).items()}


def episode_seed(seed: int, episode: int) -> int:
    """The reset seed of episode ``episode`` of a run seeded ``seed``."""
    return int(np.random.SeedSequence([seed, episode]).generate_state(1)[0])


@dataclass
class TrainResult:
    """episode_successes: ground truth per finished episode (``info["success_true"]`` when a learned
    reward decides ``info["success"]``)."""

    agent: torch.nn.Module
    policy: AgentPolicy
    episode_returns: list[float] = field(default_factory=list)
    episode_successes: list[bool] = field(default_factory=list)
    env_steps: int = 0
    updates: int = 0


class OnlineTrainer:
    """One online run (see the module docstring). ``demos``: transitions sampled with the online data
    (``cfg.offline_fraction`` of each batch), raw observations; they are embedded here when the agent
    caches. ``init_agent``: a pretrained agent to continue (WSRL first runs it frozen for
    ``cfg.warmup_steps``). ``obs_keys``: what the agent sees (default: ``default_policy_keys``). ``on_episode(arrays,
    meta)`` receives each finished episode with the full raw observations (e.g. to append it to a
    store)."""

    def __init__(self, env: gym.Env, cfg: Any, demos: ReplayBuffer | None = None,
                 init_agent: torch.nn.Module | None = None, device: str | torch.device | None = None, seed: int = 0,
                 obs_keys: list[str] | None = None, capacity: int = 1_000_000, compile: bool = False,
                 on_episode: Callable[[dict[str, np.ndarray], dict], None] | None = None):
        self.env, self.cfg, self.seed, self.on_episode = env, cfg, seed, on_episode
        self.device = pick_device(device)
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        spaces = observation_spaces(env.observation_space)
        self.keys = sorted(obs_keys or default_policy_keys(spaces))
        shapes = {k: spaces[k][0] for k in self.keys}
        self.action_dim = int(np.prod(env.action_space.shape))
        self.pretrained = init_agent is not None
        if init_agent is None:
            agent = make_agent(cfg, shapes, self.action_dim)
            if demos is not None:
                fit_normalization(agent, demos)
        else:
            agent = init_agent
        self.agent = agent.to(self.device)
        if compile:
            compile_agent(self.agent)
        self.cache = bool(self.agent.cfg.encoder.cache)
        stored = cached_observation_spaces(self.agent.encoder, shapes)
        demo = embed_buffer(self.agent.encoder, demos, self.device) if demos is not None else ReplayBuffer(stored, self.action_dim, capacity, seed=seed + 1)
        self.buffer = MixedBuffer(demo, ReplayBuffer(stored, self.action_dim, capacity, seed=seed),
                                  cfg.offline_fraction if demos is not None else 0.0, cfg.gamma, cfg.r_neg)
        self.demos_given = demos is not None
        self.store_demos = len(demo)
        self.warmup = AgentPolicy(copy.deepcopy(self.agent).eval(), self.keys, self.device, deterministic=False) \
            if (self.pretrained and cfg.warmup_steps) else None
        self.policy = AgentPolicy(self.agent, self.keys, self.device, deterministic=False)
        self.scale = ActionScaler(env.action_space)
        self.result = TrainResult(self.agent, AgentPolicy(self.agent, self.keys, self.device))
        self.episodes = 0
        self.autocast = torch.autocast("cuda", torch.bfloat16, enabled=self.device.type == "cuda")

    # ---- observations ------------------------------------------------------------------------------

    def features(self, obs: Obs) -> Obs:
        return step_features(self.agent.encoder, self.keys, obs, self.device)

    # ---- the loop --------------------------------------------------------------------------------------

    def reset_env(self) -> Obs:
        return self.env.reset(seed=episode_seed(self.seed, self.episodes))[0]

    def act(self, step: int, features: Obs) -> np.ndarray:
        cfg = self.cfg
        if self.warmup is not None and wsrl_in_warmup(step, cfg.warmup_steps):
            return self.warmup.act(features)
        if step < cfg.start_steps and not self.pretrained and not self.demos_given:
            return self.rng.uniform(-1, 1, self.action_dim).astype(np.float32)
        return self.policy.act(features)

    def run(self, total_steps: int, progress: bool = True, log: Callable[[int, dict], None] | None = None,
            on_episode_end: Callable[[OnlineTrainer], bool] | None = None) -> TrainResult:
        """Train until ``total_steps`` env steps in all (counting those before a resume). The episode in
        progress is finished first only when ``on_episode_end`` asks to stop; ``on_episode_end(self)``
        runs after every episode (evaluation, checkpoints) and stops the run by returning True."""
        cfg, result = self.cfg, self.result
        bar = tqdm(total=total_steps, initial=result.env_steps, disable=not progress, desc=cfg.algo, leave=False)
        raw = self.reset_env()
        features = self.features(raw)
        episode: dict[str, list] = {}
        ep_return, ep_success, ep_success_true = 0.0, False, False
        while result.env_steps < total_steps:
            step = result.env_steps
            action = self.act(step, features)
            next_raw, reward, terminated, truncated, info = self.env.step(self.scale(action))
            action = stored_action(self.scale, action, info)
            next_features = self.features(next_raw)
            success, intervention = bool(info.get("success", False)), bool(info.get("intervention", False))
            self.buffer.add(features, action, float(reward), next_features, bool(terminated), intervention=intervention)
            record = {**as_obs_dict(raw), "action": action, "reward": np.float32(reward), "success": success,
                      "terminated": bool(terminated), "intervention": intervention,
                      "stamp_ns": np.int64(info.get("stamp_ns", time.time_ns()))}
            if "success_true" in info:
                record["success_true"] = bool(info["success_true"])
            for k, v in record.items():
                episode.setdefault(k, []).append(v)
            ep_return += float(reward)
            ep_success = ep_success or success
            ep_success_true = ep_success_true or bool(info.get("success_true", success))
            raw, features = next_raw, next_features
            warming_up = self.warmup is not None and wsrl_in_warmup(step, cfg.warmup_steps)
            if step >= cfg.start_steps and not warming_up:
                with self.autocast:
                    update = self.agent.update([self.buffer.sample(cfg.batch_size, self.device) for _ in range(cfg.utd)])
                result.updates += 1
                if log is not None and step % 1000 == 0:
                    log(step, update)
            result.env_steps += 1
            bar.update(1)
            if terminated or truncated:
                self.buffer.end_episode()
                result.episode_returns.append(ep_return)
                result.episode_successes.append(ep_success_true)
                if self.on_episode is not None:
                    self.on_episode({k: np.stack(v) for k, v in episode.items()},
                                    {"success": ep_success, "source": "online", "return": ep_return})
                bar.set_postfix(ret=f"{ep_return:.1f}", succ=f"{np.mean(result.episode_successes[-10:]):.2f}")
                self.episodes += 1
                if on_episode_end is not None and on_episode_end(self):
                    break
                if result.env_steps < total_steps:
                    raw = self.reset_env()
                    features, episode = self.features(raw), {}
                    ep_return, ep_success, ep_success_true = 0.0, False, False
        bar.close()
        return result

    # ---- checkpoints -------------------------------------------------------------------------------------

    def rngs(self) -> dict[str, np.random.Generator]:
        return {"online": self.buffer.online.rng, "demo": self.buffer.demo.rng, "actions": self.rng}

    def checkpoint(self, path: str | Path, **extra: Any) -> Path:
        """Everything ``resume`` needs, at an episode end: weights, optimizers, RNG states, the online
        buffer (and the demo buffer once interventions grew it) and the counters."""
        result = self.result
        replay = {f"online.{k}": v for k, v in self.buffer.online.state_dict().items()}
        if len(self.buffer.demo) > self.store_demos:
            replay.update({f"demo.{k}": v for k, v in self.buffer.demo.state_dict().items()})
        replay["episode_returns"] = np.asarray(result.episode_returns, np.float64)
        replay["episode_successes"] = np.asarray(result.episode_successes, np.bool_)
        return save_agent(path, self.agent, self.agent.obs_shapes, result.env_steps, replay, rngs=self.rngs(),
                          env_steps=result.env_steps, updates=result.updates, episodes=self.episodes,
                          store_demos=self.store_demos, **extra)

    def resume(self, path: str | Path) -> None:
        """Continue from ``checkpoint``'s directory."""
        config, replay = load_checkpoint(path, self.agent, self.agent.optimizers(), self.device, self.rngs())
        self.result.env_steps, self.result.updates = int(config["env_steps"]), int(config["updates"])
        self.episodes = int(config["episodes"])
        replay = replay or {}
        self.buffer.online.load_state_dict({k[7:]: v for k, v in replay.items() if k.startswith("online.")})
        demo = {k[5:]: v for k, v in replay.items() if k.startswith("demo.")}
        if demo:
            self.buffer.demo.load_state_dict(demo)
        self.result.episode_returns = replay.get("episode_returns", np.zeros(0)).tolist()
        self.result.episode_successes = [bool(s) for s in replay.get("episode_successes", np.zeros(0, bool))]


def train_online(env: gym.Env, cfg: Any, total_steps: int, demos: ReplayBuffer | None = None,
                 init_agent: torch.nn.Module | None = None, device: str | torch.device | None = None,
                 seed: int = 0, obs_keys: list[str] | None = None,
                 on_episode: Callable[[dict[str, np.ndarray], dict], None] | None = None,
                 capacity: int = 1_000_000, progress: bool = True, log: Callable[[int, dict], None] | None = None,
                 compile: bool = False, every: int = 0,
                 on_every: Callable[[int, TrainResult], bool] | None = None) -> TrainResult:
    """Online SAC-family training (``cfg.algo`` rlpd | calql | wsrl | sac) in one process; see
    ``OnlineTrainer``. ``on_every(env_steps, result)`` runs at the first episode end after every
    ``every`` env steps (evaluation) and stops training by returning True. Steps whose
    ``info["intervention"]`` is true (``robolearn.learn.intervention``) store the executed action and
    go to the demo buffer too. ``info["success"]`` is the episode's success (a learned reward's call
    under ``LearnedReward``, which also reports the ground truth as ``info["success_true"]``)."""
    trainer = OnlineTrainer(env, cfg, demos, init_agent, device, seed, obs_keys, capacity, compile, on_episode)
    due = [every]

    def at_episode_end(run: OnlineTrainer) -> bool:
        if not every or on_every is None or run.result.env_steps < due[0]:
            return False
        due[0] = (run.result.env_steps // every + 1) * every
        return bool(on_every(run.result.env_steps, run.result))

    return trainer.run(total_steps, progress, log, at_episode_end)
