"""RoboFuME's reset-free loop: a forward policy runs until the reward model says the task is done,
then a backward (reset) policy runs until its reward model says the scene is reset, and so on,
with no human or scripted reset in between (Yang et al., ICRA 2024).

Each phase ends on its reward model's success call (``success_prob >= threshold``: a terminal
transition for that phase's learner) or after ``max_phase_steps`` (a truncation). Transitions
are yielded with their phase, so a learner can route forward and backward data to two agents.
Where the env reports ground truth (``info["success"]``, the twin), the forward reward model's
online false-positive and false-negative rates are tracked in ``monitor``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robolearn.interfaces import Observation, Policy, RewardModel
from robolearn.reward.evaluate import RewardMonitor


@dataclass
class ResetFreeConfig:
    """max_phase_steps: steps before a phase gives up and switches; hard_reset_every: env.reset()
    after this many forward phases (0: never, the real reset-free setting)."""

    max_phase_steps: int = 100
    hard_reset_every: int = 0


@dataclass
class PhaseStats:
    phases: int = 0
    successes: int = 0
    steps: int = 0
    lengths: list[int] = field(default_factory=list)


class ResetFreeLoop:
    """Alternates ``forward`` and ``backward`` policies on ``env`` (see the module docstring)."""

    def __init__(self, env: Any, forward: Policy, backward: Policy, forward_reward: RewardModel,
                 backward_reward: RewardModel, config: ResetFreeConfig | None = None):
        self.env, self.config = env, config or ResetFreeConfig()
        self.policies = {"forward": forward, "backward": backward}
        self.rewards = {"forward": forward_reward, "backward": backward_reward}
        self.stats = {"forward": PhaseStats(), "backward": PhaseStats()}
        self.monitor = RewardMonitor()

    def _success(self, phase: str, obs: Observation) -> tuple[float, bool]:
        model = self.rewards[phase]
        reward, prob = model(obs)
        return reward, prob >= float(getattr(model, "threshold", 0.5))

    def run(self, total_steps: int, seed: int | None = None) -> Iterator[dict[str, Any]]:
        """Yield ``total_steps`` transitions: dicts with ``obs``, ``action``, ``reward``, ``next_obs``,
        ``terminated`` (the phase's reward model called success), ``truncated`` (phase timed out),
        ``phase`` (``forward`` or ``backward``), ``success_true`` (env ground truth or None)."""
        obs, _ = self.env.reset(seed=seed)
        phase, phase_steps, forward_phases = "forward", 0, 0
        self.policies[phase].reset()
        for _ in range(total_steps):
            action = np.asarray(self.policies[phase].act(obs), dtype=np.float32)
            next_obs, _, _, _, info = self.env.step(action)
            phase_steps += 1
            reward, success = self._success(phase, next_obs)
            truth = info.get("success")
            if phase == "forward" and truth is not None:
                self.monitor.update(success, bool(truth))
            truncated = not success and phase_steps >= self.config.max_phase_steps
            yield {"obs": obs, "action": action, "reward": reward, "next_obs": next_obs, "terminated": success,
                   "truncated": truncated, "phase": phase, "success_true": truth}
            obs = next_obs
            if success or truncated:
                stats = self.stats[phase]
                stats.phases += 1
                stats.successes += int(success)
                stats.steps += phase_steps
                stats.lengths.append(phase_steps)
                if phase == "forward":
                    forward_phases += 1
                phase, phase_steps = ("backward" if phase == "forward" else "forward"), 0
                if phase == "forward" and self.config.hard_reset_every and forward_phases % self.config.hard_reset_every == 0:
                    obs, _ = self.env.reset()
                self.policies[phase].reset()

    def summary(self) -> dict[str, Any]:
        """Phase counts and success rates, plus the forward reward model's online error rates."""
        out: dict[str, Any] = {}
        for phase, stats in self.stats.items():
            out[f"{phase}_phases"] = stats.phases
            out[f"{phase}_success_rate"] = stats.successes / stats.phases if stats.phases else 0.0
        out.update({f"reward_{k}": v for k, v in self.monitor.metrics().items()})
        return out
