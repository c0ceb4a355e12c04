"""Deploying a checkpoint behind the twin: the gate, shadow mode and live mode.

* The gate refuses a checkpoint without a passing twin evaluation of the same cell and task, stored
  beside it (``<ckpt>/evaluations/<cell>__<task>.json``) for exactly these weights.
* ``shadow`` runs the policy on the real cell's live observations and sends its actions only to a
  twin that mirrors the real arm's joints, reporting what the SafetyFilter would have clipped. The real
  arm is held through ``ReadOnlyArm``: no code path can command it.
* ``live`` drives the arm through its SafetyFilter (``Arm.command``) with a watchdog on camera frames
  and policy latency; the teleop's ``failure`` button stops (hold), holding ``intervene`` takes over,
  ``success`` marks the trial, ``quit`` ends the session (the trial it interrupts is recorded as
  aborted, in no rate). Trials are recorded as a ``kind: real`` record.

A policy that observes privileged ``object_state`` runs in either mode only where the devices are
simulated (a rehearsal: the stand-in cell's twin has the ground truth); on a real cell nothing
measures it, so both refuse such a policy before the first step.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.config import ConfigError
from robolearn.deploy.devices import CellDevices, ReadOnlyArm
from robolearn.env import action_to_command
from robolearn.errors import RobolearnError, UsageError
from robolearn.evaluate.results import EpisodeRecord, EvalRecord, evaluation_path, model_digest, policy_id_of
from robolearn.interfaces import Observation, Policy, TeleopCommand, Violation
from robolearn.safety import Watchdog


@dataclass
class DeployConfig:
    """Gate and run settings (``configs/deploy.yaml``).

    min_success_rate: the twin success rate a checkpoint needs; gate_on_ci_lower: compare the Wilson
    95% lower bound instead of the point estimate; min_episodes: the fewest twin episodes that count.
    shadow_steps: control steps of a shadow run. max_episode_steps: live trial length (0: the task's).
    success_threshold: reward-model success probability that ends a live trial as a success (None:
    the reward model's own, calibrated ``threshold``). wait_for_reset: on hardware, wait for the
    teleop ``reset`` button before each trial.
    """

    min_success_rate: float = 0.8
    gate_on_ci_lower: bool = False
    min_episodes: int = 20
    shadow_steps: int = 200
    max_episode_steps: int = 0
    success_threshold: float | None = None
    wait_for_reset: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_success_rate <= 1.0:
            raise ValueError(f"min_success_rate must be in [0, 1], got {self.min_success_rate}")


def load_deploy_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> DeployConfig:
    """``DeployConfig`` from a YAML file with ``KEY=VALUE`` overrides; the defaults when ``path`` does
    not exist (a checkout without ``configs/``)."""
    from robolearn.config import apply_overrides, from_dict, load_config

    if Path(path).is_file():
        return load_config(DeployConfig, path, list(overrides))
    return from_dict(DeployConfig, apply_overrides({}, list(overrides)), source="--set")


@dataclass
class GateDecision:
    passed: bool
    reason: str
    record: str
    success_rate: float | None = None


def check_gate(ckpt_dir: str | Path, cell: str, task: str, config: DeployConfig) -> GateDecision:
    """Whether ``ckpt_dir`` may be deployed on ``cell`` (its name) for ``task``, and why."""
    path = evaluation_path(ckpt_dir, cell, task)
    if not path.is_file():
        return GateDecision(False, f"no twin evaluation of this checkpoint on cell {cell!r}, task {task!r} "
                            f"({path} missing); run `robolearn eval --policy {ckpt_dir} --cell <cell yaml> "
                            f"--task {task} --episodes {config.min_episodes}`", str(path))
    record = EvalRecord.load(path)
    rate = record.ci95[0] if config.gate_on_ci_lower else record.success_rate
    measure = "95% lower bound" if config.gate_on_ci_lower else "success rate"
    problems = []
    if record.kind != "sim" or record.cell != cell or record.task != Path(task).stem:
        problems.append(f"the record is a {record.kind} evaluation of {record.cell}/{record.task}")
    if record.policy_sha256 != model_digest(ckpt_dir):
        problems.append("the weights changed since they were evaluated; evaluate again")
    if record.n_episodes < config.min_episodes:
        problems.append(f"{record.n_episodes} episodes < min_episodes {config.min_episodes}")
    if rate < config.min_success_rate:
        problems.append(f"twin {measure} {rate:.3f} < min_success_rate {config.min_success_rate}")
    if problems:
        return GateDecision(False, "; ".join(problems), str(path), record.success_rate)
    return GateDecision(True, f"twin {measure} {rate:.3f} ≥ {config.min_success_rate} over {record.n_episodes} "
                        "episodes", str(path), record.success_rate)


def _camera_keys(keys: list[str]) -> set[str]:
    return {k.split("_", 1)[1] for k in keys if k.startswith(("rgb_", "depth_"))}


def observe(devices: CellDevices, keys: list[str], object_state: np.ndarray | None = None) -> tuple[Observation, list[int]]:
    """The observation ``keys`` need, read from the devices, and the stamps of the camera frames read.
    ``object_state`` (privileged, twin only) must be given when a key needs it."""
    obs: Observation = {"state": devices.arm.state().proprio()}
    stamps = []
    for name in sorted(_camera_keys(keys)):
        if name not in devices.cameras:
            raise ConfigError("cell", "cameras", f"the policy observes camera {name!r}; the cell has {sorted(devices.cameras)}")
        frame = devices.cameras[name].read()
        obs[f"rgb_{name}"] = frame.color
        if frame.depth_m is not None:
            obs[f"depth_{name}"] = frame.depth_m
        stamps.append(frame.stamp_ns)
    if "object_state" in keys:
        if object_state is None:
            raise ConfigError("--policy", "object_state", "the policy observes privileged object state, which only "
                              "the twin has; deploy a policy trained on state and cameras")
        obs["object_state"] = object_state.astype(np.float32)
    return obs, stamps


def _policy_keys(policy: Policy) -> list[str]:
    return list(getattr(policy, "observation_keys", ["state"]))


def check_observable(policy: Policy, devices: CellDevices) -> None:
    """Refuse, before any step, a policy that observes privileged ``object_state`` on a cell whose
    devices are not simulated (nothing on a real cell measures it)."""
    if "object_state" in _policy_keys(policy) and getattr(devices.twin, "task", None) is None:
        raise ConfigError("--policy", "object_state", f"the policy observes privileged object state, which only the "
                          f"twin has; cell {devices.cell.name} is real, so nothing measures it. Deploy a policy "
                          "trained on state and cameras (robolearn train --obs state,rgb_<camera>)")


def _object_state(devices: CellDevices) -> np.ndarray | None:
    """The stand-in twin's ground-truth object state on a simulated cell; None on a real cell."""
    task = getattr(devices.twin, "task", None)
    return task.object_state() if task is not None else None


def run_shadow(policy: Policy, devices: CellDevices, twin: Any, steps: int) -> dict[str, Any]:
    """Run ``policy`` on the real cell's observations for ``steps`` control steps; its actions go
    only to ``twin`` (a ``Twin`` of the cell, re-synced to the real joints every step). Returns counts
    of what the SafetyFilter clipped, by kind. Observations come from the cell's devices only (with
    ``object_state`` from the stand-in twin on a simulated cell; ``check_observable``)."""
    check_observable(policy, devices)
    real_arm = ReadOnlyArm(devices.arm)
    devices = CellDevices(devices.cell, real_arm, devices.cameras, None, devices.twin, devices.tick)
    keys = _policy_keys(policy)
    safety = devices.cell.safety
    by_kind: Counter[str] = Counter()
    clipped_steps, examples = 0, []
    translation_m = []
    policy.reset()
    for step in range(steps):
        q_rad = real_arm.state().q_rad
        twin.arm.set_joint_positions(q_rad)
        twin.forward()
        twin.arm.reset_target()
        obs, _ = observe(devices, keys, _object_state(devices))
        action = policy.act(obs)
        applied = twin.arm.command(action_to_command(action, safety.max_step_m, safety.max_rot_step_rad))
        translation_m.append(float(np.linalg.norm(applied.command.translation_m)))
        if applied.violations:
            clipped_steps += 1
            by_kind.update(v.kind for v in applied.violations)
            if len(examples) < 10:
                examples += [{"step": step, "kind": v.kind, "detail": v.detail} for v in applied.violations]
        twin.advance(devices.cell.control_dt_s)
        devices.tick(devices.cell.control_dt_s)
    return {"mode": "shadow", "steps": steps, "clipped_steps": clipped_steps, "clip_fraction": clipped_steps / max(steps, 1),
            "violations_by_kind": dict(by_kind), "violation_examples": examples,
            "mean_step_m": float(np.mean(translation_m)) if translation_m else 0.0, "commands_sent_to_real_arm": 0}


class LiveTrial:
    """One live trial loop over ``devices`` (see the module docstring for the buttons). With a reward
    model, a trial ends as a success when ``success_prob`` reaches ``success_threshold`` (None: the
    model's own ``threshold``)."""

    def __init__(self, policy: Policy, devices: CellDevices, max_steps: int, reward_model: Any = None,
                 success_threshold: float | None = None):
        from robolearn.interfaces import success_threshold as model_threshold

        if devices.teleop is None:
            raise UsageError("live mode needs a teleop device as the stop and takeover button")
        check_observable(policy, devices)
        self.policy, self.devices, self.max_steps = policy, devices, max_steps
        self.reward_model = reward_model
        self.success_threshold = success_threshold if success_threshold is not None or reward_model is None \
            else model_threshold(reward_model)
        safety = devices.cell.safety
        self.frame_watchdog = Watchdog(safety.frame_timeout_s, kind="stale_frame")
        self.command_timeout_ns = int(safety.command_timeout_s * 1e9)
        reward_keys = [f"rgb_{camera}" for camera in getattr(reward_model, "cameras", [])]
        self.keys = list(dict.fromkeys([*_policy_keys(policy), *reward_keys]))
        self.interventions = 0
        self.violations: Counter[str] = Counter()

    def _hold(self, violation: Violation) -> None:
        self.devices.arm.stop()
        self.violations[violation.kind] += 1

    def run(self, index: int) -> tuple[EpisodeRecord, bool]:
        """Run one trial; returns its record and whether the operator quit (the trial is then
        ``aborted``). The cameras (those the policy and the reward model read) are read once per
        step: that observation feeds the reward model after the step and the policy at the next one."""
        devices, safety = self.devices, self.devices.cell.safety
        self.policy.reset()
        episode = EpisodeRecord(index=index, seed=None, success=False, episode_return=0.0, steps=0)
        observed: tuple[Observation, list[int]] | None = None
        for _ in range(self.max_steps):
            command: TeleopCommand = devices.teleop.read()
            if command.quit or command.failure or command.success:
                devices.arm.stop()
                episode.success = command.success and not command.quit
                episode.aborted = command.quit
                episode.ended_by = "quit" if command.quit else ("success" if command.success else "stop")
                return episode, command.quit
            obs, stamps = observed or observe(devices, self.keys, _object_state(devices))
            observed = None
            for stamp in stamps:
                self.frame_watchdog.feed(stamp)
            stale = self.frame_watchdog.check(devices.clock_ns()) if stamps else None
            wall_ns = time.monotonic_ns()
            action = command.action() if command.intervene else self.policy.act(obs)
            latency_ns = time.monotonic_ns() - wall_ns
            if command.intervene:
                self.interventions += 1
            if stale is not None:
                self._hold(stale)
            elif latency_ns > self.command_timeout_ns and not command.intervene:
                self._hold(Violation("stale_command", f"policy took {latency_ns / 1e6:.0f} ms > "
                                     f"{self.command_timeout_ns / 1e6:.0f} ms; holding"))
            else:
                applied = devices.arm.command(action_to_command(action, safety.max_step_m, safety.max_rot_step_rad))
                self.violations.update(v.kind for v in applied.violations)
                episode.violations += len(applied.violations)
            devices.tick(devices.cell.control_dt_s)
            episode.steps += 1
            if self.reward_model is not None:
                observed = observe(devices, self.keys, _object_state(devices))
                reward, prob = self.reward_model(observed[0])
                episode.episode_return += float(reward)
                if prob >= self.success_threshold:
                    devices.arm.stop()
                    episode.success, episode.ended_by = True, "success"
                    return episode, False
        devices.arm.stop()
        return episode, False


def run_live(policy: Policy, devices: CellDevices, policy_name: str, task: str, episodes: int, config: DeployConfig,
             reward_model: Any = None, seed: int = 0) -> EvalRecord:
    """Live trials on the cell; returns them as a ``kind: real`` record. On a simulated cell each trial
    starts from a twin scene reset with seed ``seed + i``; on hardware, with ``wait_for_reset``, from
    the operator's ``reset`` press."""
    from robolearn.sim.tasks import load_task_config

    max_steps = config.max_episode_steps or load_task_config(task).max_episode_steps
    trial = LiveTrial(policy, devices, max_steps, reward_model, config.success_threshold)
    results: list[EpisodeRecord] = []
    for index in range(episodes):
        if devices.twin is not None and getattr(devices.twin, "task", None) is not None:
            devices.twin.task.reset(np.random.default_rng(seed + index))
            reset = getattr(devices.teleop, "reset", None)
            if callable(reset):
                reset()
        elif config.wait_for_reset and not _wait_for_reset(devices):
            break
        episode, quit_ = trial.run(index)
        results.append(episode)
        if quit_:
            break
    if not any(not e.aborted for e in results):
        raise RobolearnError("no trial was completed (quit before the first reset, or during the first trial), so "
                             "there is nothing to record; run again and end trials with the success or failure button")
    is_ckpt = (Path(policy_name) / "model.safetensors").is_file()
    return EvalRecord(kind="real", policy=policy_name, policy_id=policy_id_of(policy_name), cell=devices.cell.name,
                      task=Path(task).stem, episode_results=results,
                      success_source="reward_model" if reward_model is not None else "teleop",
                      policy_step=getattr(policy, "config", {}).get("step"),
                      policy_sha256=model_digest(policy_name) if is_ckpt else None)


def _wait_for_reset(devices: CellDevices) -> bool:
    """Block until the operator presses reset (True) or quit (False)."""
    print("robolearn: reset the scene, then press the teleop's reset button (quit ends)", file=sys.stderr, flush=True)
    while True:
        command = devices.teleop.read()
        if command.quit:
            return False
        if command.reset:
            return True
        devices.tick(devices.cell.control_dt_s)
