"""RoboFuME's reset-free loop: a forward policy runs until the reward model says the task is done,
then a backward (reset) policy runs until its reward model says the scene is reset, and so on,
with no human or scripted reset in between (Yang et al., ICRA 2024).

Each phase ends on its reward model's success call (``success_prob >= threshold``: a terminal
transition for that phase's learner) or after ``max_phase_steps`` (a truncation). Transitions
are yielded with their phase, so a learner can route forward and backward data to two agents
(``robolearn.learn.reset_free`` does, behind ``robolearn finetune --reset-free``).

Both phases act on one scene. On the twin, ``twin_phase_env`` gives the backward phase its own env
over the same twin, scored by the backward task, so each phase's steps report that phase's ground
truth (``info["success"]``); the reward models' online accuracy, false-positive and false-negative
rates against it are tracked per phase.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robolearn.config import ConfigError
from robolearn.interfaces import Observation, Policy, RewardModel
from robolearn.reward.metrics import RewardMonitor

PHASES = ("forward", "backward")


@dataclass
class ResetFreeConfig:
    """max_phase_steps: steps before a phase gives up and switches; hard_reset_every: env.reset()
    after this many forward phases (0: never, the real reset-free setting)."""

    max_phase_steps: int = 100
    hard_reset_every: int = 0

    def __post_init__(self) -> None:
        if self.max_phase_steps <= 0:
            raise ConfigError("--max-phase-steps", str(self.max_phase_steps), "must be positive")
        if self.hard_reset_every < 0:
            raise ConfigError("--hard-reset-every", str(self.hard_reset_every), "must be 0 (never) or positive")


@dataclass
class PhaseStats:
    """successes: phases ended by the reward model's success call; true_successes: phases whose last
    step was a success by the env's ground truth (when it reports one)."""

    phases: int = 0
    successes: int = 0
    true_successes: int = 0
    steps: int = 0
    lengths: list[int] = field(default_factory=list)


def twin_phase_env(env: Any, task: str) -> Any:
    """A second ``RobotEnv`` over ``env``'s twin (same arm, cameras and physics) scored by ``task`` (a
    name or YAML, e.g. ``pick_cube_reset``): the backward phase's ground truth and ``oracle`` reward.
    It is never reset by the loop; hard resets go through ``env``."""
    from robolearn.env import RobotEnv
    from robolearn.sim.tasks import load_task_config, make_task

    base = env.unwrapped
    twin = getattr(base, "twin", None)
    if twin is None:
        raise ConfigError("reset-free", task, "a backward task needs the twin env (robolearn.env.make_env)")
    config = load_task_config(task)
    phase_env = RobotEnv(base.cell, base.arm, base.cameras, make_task(config, twin), base.tick,
                         config.max_episode_steps, config.terminate_on_success)
    phase_env.twin = twin
    return phase_env


class ResetFreeLoop:
    """Alternates ``forward`` and ``backward`` policies on ``env`` (see the module docstring).
    ``backward_env``: the env the backward phase steps (same scene, the backward task's ground truth;
    default ``env``)."""

    def __init__(self, env: Any, forward: Policy, backward: Policy, forward_reward: RewardModel,
                 backward_reward: RewardModel, config: ResetFreeConfig | None = None, backward_env: Any = None):
        self.env, self.config = env, config or ResetFreeConfig()
        self.envs = {"forward": env, "backward": env if backward_env is None else backward_env}
        self.policies = {"forward": forward, "backward": backward}
        self.rewards = {"forward": forward_reward, "backward": backward_reward}
        self.stats = {phase: PhaseStats() for phase in PHASES}
        self.monitors = {phase: RewardMonitor() for phase in PHASES}
        self.monitor = self.monitors["forward"]
        # With one env for both phases, its ground truth is the forward task's only.
        self.has_truth = {"forward": True, "backward": backward_env is not None}
        self.hard_resets = 0

    def _success(self, phase: str, obs: Observation) -> tuple[float, bool]:
        model = self.rewards[phase]
        reward, prob = model(obs)
        return reward, prob >= float(getattr(model, "threshold", 0.5))

    def run(self, total_steps: int, seed: int | None = None) -> Iterator[dict[str, Any]]:
        """Yield ``total_steps`` transitions: dicts with ``obs``, ``action``, ``reward``, ``next_obs``,
        ``terminated`` (the phase's reward model called success), ``truncated`` (phase timed out),
        ``phase`` (``forward`` or ``backward``), ``success_true`` (env ground truth or None) and the
        env's ``info``. ``stats`` already count a phase when its last transition is yielded; the
        phase switches after it."""
        obs, _ = self.env.reset(seed=seed)
        phase, phase_steps, forward_phases = "forward", 0, 0
        self.policies[phase].reset()
        for _ in range(total_steps):
            action = np.asarray(self.policies[phase].act(obs), dtype=np.float32)
            next_obs, _, _, _, info = self.envs[phase].step(action)
            phase_steps += 1
            reward, success = self._success(phase, next_obs)
            truth = info.get("success") if self.has_truth[phase] else None
            if truth is not None:
                self.monitors[phase].update(success, bool(truth))
            truncated = not success and phase_steps >= self.config.max_phase_steps
            if success or truncated:
                stats = self.stats[phase]
                stats.phases += 1
                stats.successes += int(success)
                stats.true_successes += int(bool(truth))
                stats.steps += phase_steps
                stats.lengths.append(phase_steps)
            yield {"obs": obs, "action": action, "reward": reward, "next_obs": next_obs, "terminated": success,
                   "truncated": truncated, "phase": phase, "success_true": truth, "info": info}
            obs = next_obs
            if success or truncated:
                if phase == "forward":
                    forward_phases += 1
                phase, phase_steps = ("backward" if phase == "forward" else "forward"), 0
                if phase == "forward" and self.config.hard_reset_every and forward_phases % self.config.hard_reset_every == 0:
                    obs, _ = self.env.reset()
                    self.hard_resets += 1
                self.policies[phase].reset()

    def summary(self) -> dict[str, Any]:
        """Per phase: phases, success calls, ground-truth successes and success rate (calls per
        phase); the forward reward model's online error rates as ``reward_*`` and the backward
        model's as ``backward_reward_*`` (where the env reported ground truth); the hard resets."""
        out: dict[str, Any] = {}
        for phase, stats in self.stats.items():
            out[f"{phase}_phases"] = stats.phases
            out[f"{phase}_successes"] = stats.successes
            out[f"{phase}_true_successes"] = stats.true_successes
            out[f"{phase}_success_rate"] = stats.successes / stats.phases if stats.phases else 0.0
        for phase, prefix in (("forward", "reward_"), ("backward", "backward_reward_")):
            metrics = self.monitors[phase].metrics()
            if metrics["n_frames"]:
                out.update({prefix + k: v for k, v in metrics.items()})
        out["hard_resets"] = self.hard_resets
        return out
