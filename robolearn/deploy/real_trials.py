"""Real trials behind ``robolearn eval --real``: a checkpoint drives the cell's arm through its
SafetyFilter and watchdog (``gate.LiveTrial``), success is marked by the teleop's buttons or
decided by a reward model, and the trials become a ``kind: real`` record in the format of twin
evaluations, for ``robolearn compare``.

Unlike ``robolearn deploy --mode live`` there is no twin gate: ranking the twin against the real
cell (SIMPLER) needs real trials of weak checkpoints too. The operator holds the stop button.
On a simulated cell (``arm: {type: sim}``) the same code runs against the twin, as a rehearsal;
each trial then starts from a scene reset with seed ``seed + i``.
"""

from __future__ import annotations

from pathlib import Path

from robolearn.config import ConfigError
from robolearn.deploy.gate import DeployConfig, run_live
from robolearn.evaluate.results import EvalRecord


def record_real_trials(policy: str, cell: str, task: str, episodes: int, reward: str | None = None,
                       overrides: tuple[str, ...] = (), device: str | None = None,
                       config: DeployConfig | None = None, seed: int = 0) -> EvalRecord:
    """Run ``episodes`` trials of checkpoint ``policy`` on ``cell`` (YAML) for ``task``; returns the
    record (``success_source``: ``teleop``, or ``reward_model`` with ``reward``)."""
    from robolearn.cell import load_cell
    from robolearn.deploy.devices import open_cell
    from robolearn.learn import load_policy

    if not (Path(policy) / "config.json").is_file():
        raise ConfigError("--policy", policy, "--real runs a checkpoint directory (the scripted expert needs the "
                          "twin's ground truth and cannot drive a real cell)")
    devices = open_cell(load_cell(cell, list(overrides)), task=task, teleop=True)
    try:
        reward_model = None
        if reward:
            from robolearn.reward import load_reward_model

            reward_model = load_reward_model(reward, env=devices.twin)
        return run_live(load_policy(policy, device=device), devices, policy, task, episodes, config or DeployConfig(),
                        reward_model, seed)
    finally:
        devices.close()
