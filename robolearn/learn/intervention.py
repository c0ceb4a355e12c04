"""Human interventions during online RL (HIL-SERL): whenever the teleop device is being used, its
action replaces the policy's.

``Intervention`` wraps an env: every step it reads the teleop; while ``TeleopCommand.intervene`` is
true the teleop's action runs instead of the one passed to ``step``. ``info["intervention"]`` marks
the step and ``info["executed_action"]`` holds what ran (env units), so the learner stores the human's
action and puts the transition in both the online and the demo buffer. ``ScriptedIntervention`` turns
a scripted expert into an occasional intervener, for the twin and for tests.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from robolearn.interfaces import Teleop, TeleopCommand


class ScriptedIntervention:
    """A ``Teleop`` that takes over from the policy for ``duration_steps`` steps, starting at each step
    with probability ``start_probability``, driven by ``expert`` (e.g. the twin's scripted expert)."""

    def __init__(self, expert: Any, start_probability: float = 0.05, duration_steps: int = 10, seed: int = 0):
        self.expert, self.start_probability, self.duration_steps = expert, start_probability, duration_steps
        self.rng = np.random.default_rng(seed)
        self.remaining = 0

    def connect(self) -> None:
        """Nothing to connect."""

    def disconnect(self) -> None:
        """Nothing to release."""

    def reset(self) -> None:
        self.remaining = 0
        self.expert.reset()

    def reseed(self, seed: int) -> None:
        """Restart when and how the expert takes over from ``seed`` (a resumable run reseeds every episode)."""
        self.rng = np.random.default_rng([seed, 1])
        if hasattr(self.expert, "reseed"):
            self.expert.reseed(seed)

    def read(self) -> TeleopCommand:
        command = self.expert.read()
        if self.remaining == 0 and self.rng.random() < self.start_probability:
            self.remaining = self.duration_steps
        command.intervene = self.remaining > 0
        self.remaining = max(self.remaining - 1, 0)
        return command


class Intervention(gym.Wrapper):
    """Replaces the agent's action by the teleop's while the operator intervenes (see module doc)."""

    def __init__(self, env: gym.Env, teleop: Teleop):
        super().__init__(env)
        self.teleop = teleop
        self.interventions = 0

    def reset(self, **kwargs):
        """Reset the env and the teleop; a seeded reset also reseeds the teleop's own randomness (a
        scripted intervener's), so seeded episodes repeat exactly."""
        if hasattr(self.teleop, "reseed") and kwargs.get("seed") is not None:
            self.teleop.reseed(kwargs["seed"])
        if hasattr(self.teleop, "reset"):
            self.teleop.reset()
        return self.env.reset(**kwargs)

    def step(self, action):
        command = self.teleop.read()
        if command.intervene:
            action = command.action()
            self.interventions += 1
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = {**info, "intervention": bool(command.intervene), "executed_action": np.asarray(action, np.float32)}
        return obs, reward, terminated, truncated, info
