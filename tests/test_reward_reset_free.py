"""RoboFuME's reset-free loop on the twin: forward and backward policies switched by reward models."""

from __future__ import annotations

import numpy as np

from robolearn.env import make_env
from robolearn.reward import load_reward_model
from robolearn.reward.evaluate import RewardMonitor
from robolearn.reward.reset_free import ResetFreeConfig, ResetFreeLoop


class GoTo:
    """A proportional end-effector controller (a Policy) towards ``target(obs)``."""

    def __init__(self, target, max_step_m: float):
        self.target, self.max_step_m = target, max_step_m

    def reset(self) -> None:
        pass

    def act(self, obs):
        delta = (self.target(obs) - obs["state"][7:10]) / self.max_step_m
        return np.concatenate([np.clip(delta, -1, 1), [0, 0, 0, -1]]).astype(np.float32)


class NearHome:
    """Backward-phase reward model: success when the end effector is back within 2 cm of home."""

    def __init__(self, home_m: np.ndarray):
        self.home_m = home_m

    def __call__(self, obs):
        success = float(np.linalg.norm(obs["state"][7:10] - self.home_m) < 0.02)
        return success, success


def test_reset_free_loop_alternates_phases_on_reward_success():
    env = make_env(task="reach", cameras=False)
    obs, _ = env.reset(seed=3)
    home, goal = obs["state"][7:10].copy(), obs["object_state"][7:10].copy()
    step = env.cell.safety.max_step_m
    loop = ResetFreeLoop(env, GoTo(lambda o: o["object_state"][7:10], step), GoTo(lambda o: home, step),
                         load_reward_model("oracle", env=env), NearHome(home), ResetFreeConfig(max_phase_steps=40))
    transitions = list(loop.run(200, seed=3))
    assert len(transitions) == 200
    phases = [t["phase"] for t in transitions]
    switches = [i for i in range(1, 200) if phases[i] != phases[i - 1]]
    assert len(switches) >= 4
    for i in switches:
        assert transitions[i - 1]["terminated"]  # every switch came from the reward model's success call
    assert all(np.allclose(t["obs"]["object_state"][7:10], goal) for t in transitions)  # never reset
    summary = loop.summary()
    assert summary["forward_success_rate"] == 1.0 and summary["backward_success_rate"] == 1.0
    assert summary["reward_false_positive_rate"] == 0.0 and summary["reward_n_positive"] >= 2


def test_phase_timeout_truncates_and_monitor_counts():
    env = make_env(task="reach", cameras=False)
    never = NearHome(np.array([10.0, 10.0, 10.0]))
    stay = GoTo(lambda o: o["state"][7:10], env.cell.safety.max_step_m)
    loop = ResetFreeLoop(env, stay, stay, never, never, ResetFreeConfig(max_phase_steps=5))
    transitions = list(loop.run(12, seed=0))
    assert [t["truncated"] for t in transitions].count(True) == 2
    assert [t["phase"] for t in transitions][4:6] == ["forward", "backward"]
    monitor = RewardMonitor()
    for predicted, actual in [(True, False), (False, False), (True, True), (False, True)]:
        monitor.update(predicted, actual)
    assert monitor.metrics()["false_positive_rate"] == 0.5 and monitor.metrics()["false_negative_rate"] == 0.5
