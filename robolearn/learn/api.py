"""Train robolearn's agents on any gymnasium env with Box spaces (state or pixel observations).

Example::

    import gymnasium as gym
    from robolearn.learn.api import train_online, evaluate
    from robolearn.learn.sac import SACConfig

    env = gym.make("Pendulum-v1")
    result = train_online(env, SACConfig(algo="rlpd", n_critics=10, utd=1, start_steps=1000), total_steps=10_000)
    print(evaluate(gym.make("Pendulum-v1"), result.policy, episodes=5))

A Box observation becomes ``{"state": obs}``, or ``{"rgb_obs": image}`` when it is a uint8 image
``(H, W, 3)`` (``(3, H, W)`` is transposed to that). Dict observations keep their keys; their uint8 images
must be named ``rgb_<camera>`` and be ``(H, W, 3)``. Actions are rescaled from the agent's [−1, 1] to
the env's Box bounds.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from robolearn.errors import RobolearnError, UsageError
from robolearn.learn.agent_policy import AgentPolicy, pick_device
from robolearn.learn.agents import config_to_dict, make_agent
from robolearn.learn.buffer import MixedBuffer, ReplayBuffer
from robolearn.learn.checkpoint import save_checkpoint
from robolearn.learn.losses import wsrl_in_warmup
from robolearn.learn.models import is_image_key

Obs = dict[str, np.ndarray]
PIXEL_KEY = "rgb_obs"
"""The image key of an env whose whole observation is one uint8 image."""


class UnsupportedSpaceError(RobolearnError, TypeError):
    """An observation space the agents cannot take, with the change that makes it fit."""


def _is_pixels(shape: tuple[int, ...], dtype: Any) -> bool:
    return np.dtype(dtype) == np.uint8 and len(shape) >= 2


def observation_spaces(space: gym.Space) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """key → (shape, dtype) for a Box (``state``, or ``rgb_obs`` for a uint8 image) or a Dict of Boxes."""
    if isinstance(space, gym.spaces.Box):
        if not _is_pixels(space.shape, space.dtype):
            return {"state": (space.shape, np.dtype(np.float32))}
        shape = space.shape
        if len(shape) != 3 or 3 not in (shape[0], shape[-1]):
            raise UnsupportedSpaceError(f"pixel observations must be uint8 (H, W, 3) or (3, H, W), got {shape}; wrap "
                                        "the env to give RGB frames (e.g. gymnasium.wrappers.ResizeObservation)")
        return {PIXEL_KEY: (shape if shape[-1] == 3 else (*shape[1:], 3), np.dtype(np.uint8))}
    if isinstance(space, gym.spaces.Dict):
        out = {}
        for key, sub in space.spaces.items():
            if not isinstance(sub, gym.spaces.Box):
                raise UnsupportedSpaceError(f"observation {key!r} is a {type(sub).__name__}; only Box entries are supported")
            pixels = _is_pixels(sub.shape, sub.dtype)
            if pixels and not is_image_key(key):
                raise UnsupportedSpaceError(
                    f"observation {key!r} is a uint8 image {sub.shape}; name image entries rgb_<camera> (e.g. "
                    f"rgb_{key}) with a gymnasium.ObservationWrapper, or make it float to use it as a vector")
            if is_image_key(key) and not (pixels and len(sub.shape) == 3 and sub.shape[-1] == 3):
                raise UnsupportedSpaceError(f"observation {key!r} is {sub.dtype} {sub.shape}; rgb_* entries must be "
                                            "uint8 images (H, W, 3): transpose channels last, or rename the entry")
            out[key] = (sub.shape, np.dtype(np.uint8) if pixels else np.dtype(np.float32))
        return out
    raise UnsupportedSpaceError(f"observation space {space} is not a Box or Dict of Boxes")


def as_obs_dict(obs: Any, keys: list[str] | None = None) -> Obs:
    """An env observation as the agents' dict (see ``observation_spaces`` for the keys)."""
    if isinstance(obs, dict):
        return {k: obs[k] for k in (keys or obs)}
    obs = np.asarray(obs)
    if _is_pixels(obs.shape, obs.dtype):
        return {PIXEL_KEY: obs if obs.shape[-1] == 3 else np.moveaxis(obs, 0, -1)}
    return {"state": obs.astype(np.float32)}


class ActionScaler:
    """Maps agent actions in [−1, 1] to the env's Box bounds (``inverse`` maps env actions back)."""

    def __init__(self, space: gym.spaces.Box):
        if not isinstance(space, gym.spaces.Box):
            raise TypeError(f"action space {space} is not a Box")
        if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
            raise UsageError(f"action space {space} is unbounded; rescale it to finite bounds (e.g. RescaleAction)")
        self.low, self.high = space.low.astype(np.float32), space.high.astype(np.float32)

    def __call__(self, action: np.ndarray) -> np.ndarray:
        return (self.low + (np.asarray(action, np.float32) + 1.0) * 0.5 * (self.high - self.low)).astype(np.float32)

    def inverse(self, env_action: np.ndarray) -> np.ndarray:
        unit = 2.0 * (np.asarray(env_action, np.float32) - self.low) / (self.high - self.low) - 1.0
        return np.clip(unit, -1.0, 1.0).astype(np.float32)


def stored_action(scale: ActionScaler, agent_action: np.ndarray, info: dict) -> np.ndarray:
    """The action to learn from: the one that ran. An intervention wrapper puts the human's action in
    ``info["executed_action"]`` (env units); otherwise it is the agent's."""
    executed = info.get("executed_action")
    return agent_action if executed is None else scale.inverse(executed)


def resolve_run_length(cfg: Any, steps: int) -> Any:
    """Fill settings that default to the run's length (IQL's actor lr decay)."""
    if hasattr(cfg, "actor_lr_decay_steps") and cfg.actor_lr_decay_steps is None:
        return dataclasses.replace(cfg, actor_lr_decay_steps=steps)
    return cfg


def fit_normalization(agent: torch.nn.Module, buffer: ReplayBuffer) -> None:
    """Standardize a fresh agent's vector observations with ``buffer``'s statistics (when its config
    has ``normalize_obs``); the target encoder gets the same. Pretrained agents keep theirs."""
    encoder = agent.encoder
    if not getattr(agent.cfg, "normalize_obs", False) or len(buffer) == 0 or not encoder.vector_keys:
        return
    vectors = torch.cat([torch.as_tensor(buffer.obs[k][: len(buffer)]).flatten(1).float() for k in encoder.vector_keys], -1)
    for enc in (encoder, getattr(agent, "target_encoder", None)):
        if enc is not None:
            enc.set_normalization(vectors.to(enc.vector_mean.device))


def compile_agent(agent: torch.nn.Module) -> None:
    """``torch.compile`` the MLP forward passes in place (actor, critics, value, BC head); the update
    loop itself stays eager."""
    for name in ("actor", "critic", "target_critic", "value", "head"):
        module = getattr(agent, name, None)
        if isinstance(module, torch.nn.Module):
            module.forward = torch.compile(module.forward)


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


def evaluate(env: gym.Env, policy: Any, episodes: int = 10, seed: int = 10_000) -> dict[str, float]:
    """Mean return and success rate (``info["success"]`` when the env reports it) of ``policy``."""
    scale = ActionScaler(env.action_space)
    returns, successes = [], []
    for ep in range(episodes):
        obs, info = env.reset(seed=seed + ep)
        policy.reset()
        total, success, done = 0.0, False, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(scale(policy.act(as_obs_dict(obs))))
            total += float(reward)
            success = success or bool(info.get("success", False))
            done = terminated or truncated
        returns.append(total)
        successes.append(success)
    return {"mean_return": float(np.mean(returns)), "success_rate": float(np.mean(successes))}


def train_online(env: gym.Env, cfg: Any, total_steps: int, demos: ReplayBuffer | None = None,
                 init_agent: torch.nn.Module | None = None, device: str | torch.device | None = None,
                 seed: int = 0, obs_keys: list[str] | None = None,
                 on_episode: Callable[[dict[str, np.ndarray], dict], None] | None = None,
                 capacity: int = 1_000_000, progress: bool = True, log: Callable[[int, dict], None] | None = None,
                 compile: bool = False, every: int = 0,
                 on_every: Callable[[int, TrainResult], bool] | None = None) -> TrainResult:
    """Online SAC-family training (``cfg.algo`` rlpd | calql | wsrl | sac) in one process.

    demos: transitions sampled symmetrically with online data (RLPD); init_agent: a pretrained agent to
    start from (Cal-QL/WSRL fine-tuning; WSRL first runs its frozen policy for ``cfg.warmup_steps``);
    obs_keys: the observation keys the agent sees (default: all; episodes keep all); on_episode(arrays, meta) receives
    every finished episode (e.g. to append it to a DemoStore); on_every(env_steps, result) runs every
    ``every`` env steps (evaluation, checkpoints) and stops training by returning True. Steps whose
    ``info["intervention"]`` is true (see ``robolearn.learn.intervention``) store the executed action
    and go to the demo buffer too. ``info["success"]`` is the episode's success (a learned reward's
    call under ``LearnedReward``, which also reports the ground truth as ``info["success_true"]``,
    kept in the episode arrays for reporting).
    """
    device = pick_device(device)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    spaces = observation_spaces(env.observation_space)
    keys = sorted(obs_keys or spaces)
    spaces = {k: spaces[k] for k in keys}
    action_dim = int(np.prod(env.action_space.shape))
    if init_agent is None:
        agent = make_agent(cfg, {k: s for k, (s, _) in spaces.items()}, action_dim)
        if demos is not None:
            fit_normalization(agent, demos)
    else:
        agent = init_agent
    agent = agent.to(device)
    if compile:
        compile_agent(agent)
    warmup = AgentPolicy(copy.deepcopy(agent).eval(), keys, device, deterministic=False) \
        if (init_agent is not None and cfg.warmup_steps) else None
    demo = demos if demos is not None else ReplayBuffer(spaces, action_dim, capacity, seed=seed + 1)
    buffer = MixedBuffer(demo, ReplayBuffer(spaces, action_dim, capacity, seed=seed),
                         cfg.offline_fraction if demos is not None else 0.0, cfg.gamma, cfg.r_neg)
    policy = AgentPolicy(agent, keys, device, deterministic=False)
    scale = ActionScaler(env.action_space)
    result = TrainResult(agent, AgentPolicy(agent, keys, device))
    autocast = torch.autocast("cuda", torch.bfloat16, enabled=device.type == "cuda")
    raw, _ = env.reset(seed=seed)
    full, obs = as_obs_dict(raw), as_obs_dict(raw, keys)
    episode: dict[str, list] = {}
    ep_return, ep_success, ep_success_true = 0.0, False, False
    bar = tqdm(total=total_steps, disable=not progress, desc=cfg.algo, leave=False)
    for step in range(total_steps):
        warming_up = warmup is not None and wsrl_in_warmup(step, cfg.warmup_steps)
        if warming_up:
            action = warmup.act(obs)
        elif step < cfg.start_steps and init_agent is None and demos is None:
            action = rng.uniform(-1, 1, action_dim).astype(np.float32)
        else:
            action = policy.act(obs)
        next_raw, reward, terminated, truncated, info = env.step(scale(action))
        action = stored_action(scale, action, info)
        next_obs = as_obs_dict(next_raw, keys)
        success, intervention = bool(info.get("success", False)), bool(info.get("intervention", False))
        buffer.add(obs, action, float(reward), next_obs, bool(terminated), intervention=intervention)
        step_record = {**full, "action": action, "reward": np.float32(reward), "success": success,
                       "terminated": bool(terminated), "intervention": intervention,
                       "stamp_ns": np.int64(info.get("stamp_ns", time.time_ns()))}
        if "success_true" in info:
            step_record["success_true"] = bool(info["success_true"])
        for k, v in step_record.items():
            episode.setdefault(k, []).append(v)
        ep_return += float(reward)
        ep_success = ep_success or success
        ep_success_true = ep_success_true or bool(info.get("success_true", success))
        obs, full = next_obs, as_obs_dict(next_raw)
        if step >= cfg.start_steps and not warming_up:
            with autocast:
                info_upd = agent.update([buffer.sample(cfg.batch_size, device) for _ in range(cfg.utd)])
            result.updates += 1
            if log is not None and step % 1000 == 0:
                log(step, info_upd)
        if terminated or truncated:
            buffer.end_episode()
            result.episode_returns.append(ep_return)
            result.episode_successes.append(ep_success_true)
            if on_episode is not None:
                on_episode({k: np.stack(v) for k, v in episode.items()},
                           {"success": ep_success, "source": "online", "return": ep_return})
            bar.set_postfix(ret=f"{ep_return:.1f}", succ=f"{np.mean(result.episode_successes[-10:]):.2f}")
            raw, _ = env.reset()
            obs, full, episode = as_obs_dict(raw, keys), as_obs_dict(raw), {}
            ep_return, ep_success, ep_success_true = 0.0, False, False
        bar.update(1)
        result.env_steps = step + 1
        if every and on_every is not None and (step + 1) % every == 0 and on_every(step + 1, result):
            break
    bar.close()
    return result


def train_offline(cfg: Any, buffer: ReplayBuffer, steps: int, obs_shapes: dict[str, tuple[int, ...]], action_dim: int,
                  device: str | torch.device | None = None, seed: int = 0, agent: torch.nn.Module | None = None,
                  progress: bool = True, callback: Callable[[int, torch.nn.Module, dict], None] | None = None,
                  start_step: int = 0, compile: bool = False) -> torch.nn.Module:
    """Offline training (bc | iql | calql) on a filled buffer for ``steps`` gradient steps (from
    ``start_step`` when resuming); ``callback(step, agent, info)`` runs after every update
    (evaluation, checkpoints, logging). Under ``torchrun`` every rank samples its own batches and
    gradients are averaged across ranks. A resumed run (``start_step`` > 0) keeps the torch and
    buffer RNG states its checkpoint restored."""
    device = pick_device(device)
    if start_step == 0:
        torch.manual_seed(seed)
    if agent is None:
        agent = make_agent(resolve_run_length(cfg, steps), obs_shapes, action_dim)
        fit_normalization(agent, buffer)
    agent = agent.to(device)
    if compile:
        compile_agent(agent)
    if distributed():
        average_gradients_across_ranks(agent)
        buffer.rng = np.random.default_rng([seed, torch.distributed.get_rank(), start_step])
    autocast = torch.autocast("cuda", torch.bfloat16, enabled=device.type == "cuda")
    agent.train()
    for step in tqdm(range(start_step, steps), disable=not progress, desc=cfg.algo, leave=False):
        with autocast:
            info = agent.update([buffer.sample(cfg.batch_size, device)])
        if callback is not None:
            callback(step + 1, agent, info)
    return agent


def distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def init_distributed() -> tuple[int, int]:
    """Join the process group when launched by ``torchrun`` (NCCL on CUDA, gloo on CPU); (rank, world)."""
    import os

    if "RANK" not in os.environ:
        return 0, 1
    if not distributed():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def average_gradients_across_ranks(agent: torch.nn.Module) -> None:
    """Data-parallel training as DDP does it: every gradient is averaged over ranks as soon as it is
    accumulated (agents drive several optimizers from one ``update``, so hooks replace the DDP wrapper).
    Ranks start from rank 0's weights."""
    world = torch.distributed.get_world_size()
    for tensor in agent.state_dict().values():
        torch.distributed.broadcast(tensor, src=0)

    def hook(param: torch.Tensor) -> None:
        torch.distributed.all_reduce(param.grad)
        param.grad.div_(world)

    for param in agent.parameters():
        if param.requires_grad:
            param.register_post_accumulate_grad_hook(hook)


def checkpoint_config(cfg: Any, obs_shapes: dict[str, tuple[int, ...]], action_dim: int, step: int,
                      **extra: Any) -> dict[str, Any]:
    """The JSON config stored next to the weights (what ``load_policy`` needs)."""
    return {"algo": cfg.algo, "algo_config": config_to_dict(cfg), "obs_shapes": {k: list(v) for k, v in obs_shapes.items()},
            "observation_keys": sorted(obs_shapes), "action_dim": action_dim, "normalization": None, "step": step, **extra}


def save_agent(path: str | Path, agent: torch.nn.Module, obs_shapes: dict[str, tuple[int, ...]], step: int,
               replay: dict[str, np.ndarray] | None = None, *, rngs: dict[str, np.random.Generator] | None = None,
               resumable: bool = True, **extra: Any) -> Path:
    """Checkpoint ``agent``; ``resumable`` adds the optimizer moments and torch RNG states that resuming
    needs, ``rngs`` (e.g. the replay buffer's sampler) the numpy ones; ``extra`` goes into ``config.json``."""
    return save_checkpoint(path, agent, checkpoint_config(agent.cfg, obs_shapes, agent.action_dim, step, **extra),
                           agent.optimizers() if resumable else None, replay, rngs)
