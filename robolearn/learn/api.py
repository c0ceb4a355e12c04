"""robolearn's agents on any gymnasium env with Box spaces (state or pixel observations): spaces,
action scaling, evaluation, offline training and checkpoints (online training: ``robolearn.learn.online``).

Example::

    import gymnasium as gym
    from robolearn.learn import evaluate, train_online
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

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from robolearn.errors import RobolearnError, UsageError
from robolearn.interfaces import real_cell_keys
from robolearn.learn.agent_policy import pick_device
from robolearn.learn.agents import config_to_dict, make_agent
from robolearn.learn.buffer import ReplayBuffer
from robolearn.learn.checkpoint import save_checkpoint
from robolearn.learn.observation import is_image_key

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


def default_policy_keys(keys: Any) -> list[str]:
    """What an agent sees by default: ``state`` and the cameras' ``rgb_*`` when the env has them (a
    real cell's observations; a twin's ``object_state`` and depth only when asked for), else every key."""
    return real_cell_keys(keys) or sorted(keys)


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
    """Standardize a fresh agent's vector observations with ``buffer``'s statistics (when its
    ``encoder.normalize_obs`` is set); the target encoder gets the same. Pretrained agents keep theirs."""
    encoder = agent.encoder
    if not agent.cfg.encoder.normalize_obs or len(buffer) == 0 or not encoder.vector_keys:
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
    update = getattr(agent, "offline_update", agent.update)
    for step in tqdm(range(start_step, steps), disable=not progress, desc=cfg.algo, leave=False):
        with autocast:
            info = update([buffer.sample(cfg.batch_size, device)])
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
