"""Running episodes: a teleop device or a policy drives a ``RobotEnv`` until the episode ends."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from robolearn.config import ConfigError, from_dict
from robolearn.interfaces import Observation, Teleop, TeleopCommand


@dataclass
class EpisodeResult:
    """One episode: ``success`` (ground truth, or marked by a teleop button), undiscounted
    ``episode_return``, ``steps``, and the first camera's frames when recorded."""

    seed: int
    success: bool
    episode_return: float
    steps: int
    violations: int = 0
    ended_by: str = "time_limit"
    frames: list[np.ndarray] = field(default_factory=list, repr=False)


def is_human_teleop(name: str) -> bool:
    """Whether teleop type ``name`` is a device a person drives (keyboard, SpaceMouse, gamepad) rather
    than a scripted operator; unknown names count as devices (``make_teleop`` reports them)."""
    from robolearn.cell import TeleopConfig

    return name != "expert" and (name not in TeleopConfig.registry or TeleopConfig.registry.get(name).human)


def make_teleop(name: str, env, noise_scale: float = 0.0, seed: int | None = None) -> Teleop:
    """``expert`` (the task's scripted expert), ``random`` (uniformly random actions, seeded) or any
    registered teleop type (``keyboard``, ...)."""
    from robolearn.cell import TeleopConfig

    if not noise_scale >= 0.0:
        raise ConfigError("--noise", str(noise_scale), "must be ≥ 0: the expert's action noise std, a fraction of the "
                          "action range (e.g. 0.1)")
    if name == "expert":
        from robolearn.sim.experts import make_expert

        return make_expert(env, noise_scale=noise_scale, seed=seed)
    if name == "random":
        from robolearn.sim.experts import RandomOperator

        return RandomOperator(seed=seed)
    config = from_dict(TeleopConfig, {"type": name}, source="--teleop")
    teleop = config.create(env.unwrapped.cell, twin=getattr(env.unwrapped, "twin", None))
    teleop.connect()
    return teleop


def run_episode(
    env,
    act: Callable[[Observation], TeleopCommand | np.ndarray],
    seed: int,
    record_frames: bool = False,
    on_step: Callable[[Observation, np.ndarray, float, dict], None] | None = None,
    on_reset: Callable[[], None] | None = None,
) -> EpisodeResult:
    """Reset with ``seed`` and step ``act(obs)`` until the env ends the episode or a teleop command
    ends it (``success``/``failure``/``reset``/``quit`` buttons). ``on_step(obs, action, reward,
    info)`` sees every transition with the observation the action was taken on."""
    obs, info = env.reset(seed=seed)
    if on_reset is not None:
        on_reset()
    result = EpisodeResult(seed=seed, success=False, episode_return=0.0, steps=0)
    if record_frames:
        result.frames.append(_frame(env))
    while True:
        decision = act(obs)
        if isinstance(decision, TeleopCommand):
            button = next((b for b in ("success", "failure", "reset", "quit") if getattr(decision, b)), None)
            if button is not None:
                result.success = button == "success"
                result.ended_by = button
                return result
            action = decision.action()
        else:
            action = np.asarray(decision, dtype=np.float32)
        next_obs, reward, terminated, truncated, info = env.step(action)
        if on_step is not None:
            on_step(obs, action, reward, info)
        obs = next_obs
        result.steps += 1
        result.episode_return += float(reward)
        result.violations += len(info["violations"])
        result.success = bool(info["success"])
        if record_frames:
            result.frames.append(_frame(env))
        if terminated or truncated:
            result.ended_by = "success" if terminated else "time_limit"
            return result


def _frame(env) -> np.ndarray:
    """The first camera's current image, rendered even when observations are state-only."""
    unwrapped = env.unwrapped
    twin = getattr(unwrapped, "twin", None)
    if twin is not None and twin.cameras:
        return next(iter(twin.cameras.values())).read().color
    return unwrapped.render()
