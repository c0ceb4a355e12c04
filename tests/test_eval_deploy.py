"""The deploy gate, shadow mode (never commands the arm) and live mode (SafetyFilter, stop, takeover)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from robolearn.cell import load_cell
from robolearn.evaluate import EvalSettings, evaluate_policy, save_beside_checkpoint
from robolearn.evaluate.deploy import DeployConfig, check_gate, run_live, run_shadow
from robolearn.evaluate.devices import open_cell
from robolearn.interfaces import TeleopCommand

CELL = "configs/cells/sim_panda.yaml"
GATE = DeployConfig(min_success_rate=0.3, min_episodes=20)


def trained_reach_checkpoint(path):
    """BC on 40 scripted-expert reach episodes (noisy execution, clean labels): ~0.5 twin success."""
    import torch

    from robolearn.env import make_env
    from robolearn.learn.api import save_agent, train_offline
    from robolearn.learn.bc import BCConfig
    from robolearn.learn.buffer import ReplayBuffer
    from robolearn.sim.experts import make_expert

    torch.manual_seed(0)
    env = make_env(CELL, "reach", cameras=False)
    expert, rng = make_expert(env), np.random.default_rng(0)
    shapes = {"state": (15,), "object_state": (10,)}
    buffer = ReplayBuffer({k: (s, np.dtype(np.float32)) for k, s in shapes.items()}, 7, 4000)
    for episode in range(40):
        obs, _ = env.reset(seed=1000 + episode)
        expert.reset()
        arrays = {k: [] for k in ("state", "object_state", "action", "reward", "terminated")}
        while True:
            action = expert.read().action()
            for key in shapes:
                arrays[key].append(obs[key])
            arrays["action"].append(action)
            obs, reward, terminated, truncated, _ = env.step(np.clip(action + rng.normal(0, 0.3, 7), -1, 1).astype(np.float32))
            arrays["reward"].append(reward)
            arrays["terminated"].append(terminated)
            if terminated or truncated:
                break
        buffer.add_episode({k: np.array(v) for k, v in arrays.items()}, 0.99, True)
    agent = train_offline(BCConfig(hidden=(128, 128), chunk=1, batch_size=128, lr=1e-3), buffer, 2000, shapes, 7,
                          "cpu", 0, progress=False)
    return save_agent(path, agent, shapes, step=2000, task="reach", cell=CELL)


def untrained_checkpoint(path):
    from tests.test_eval_twin import untrained_checkpoint as make

    return make(path)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    passing, failing = trained_reach_checkpoint(root / "bc" / "last"), untrained_checkpoint(root / "bc" / "init")
    for ckpt in (passing, failing):
        record = evaluate_policy(str(ckpt), EvalSettings(CELL, "reach", episodes=20, workers=2, failure_frames=0),
                                 progress=False)
        save_beside_checkpoint(record, ckpt)
    return passing, failing


def test_gate_refuses_unevaluated_and_failing_and_permits_passing(checkpoints, tmp_path):
    passing, failing = checkpoints
    unevaluated = untrained_checkpoint(tmp_path / "fresh")
    refused = check_gate(unevaluated, "sim_panda", "reach", GATE)
    assert not refused.passed and "no twin evaluation" in refused.reason
    failed = check_gate(failing, "sim_panda", "reach", GATE)
    assert not failed.passed and failed.success_rate == 0.0 and "min_success_rate" in failed.reason
    allowed = check_gate(passing, "sim_panda", "reach", GATE)
    assert allowed.passed, allowed.reason
    assert not check_gate(passing, "sim_panda", "push_cube", GATE).passed
    assert not check_gate(passing, "real_franka", "reach", GATE).passed
    assert not check_gate(passing, "sim_panda", "reach", dataclasses.replace(GATE, min_episodes=50)).passed
    assert not check_gate(passing, "sim_panda", "reach", dataclasses.replace(GATE, gate_on_ci_lower=True)).passed


def test_gate_refuses_weights_changed_after_evaluation(checkpoints, tmp_path):
    import shutil

    copy = shutil.copytree(checkpoints[0], tmp_path / "copy")
    assert check_gate(copy, "sim_panda", "reach", GATE).passed
    (copy / "model.safetensors").write_bytes((copy / "model.safetensors").read_bytes()[:-4] + b"\0\0\0\0")
    decision = check_gate(copy, "sim_panda", "reach", GATE)
    assert not decision.passed and "weights changed" in decision.reason


def test_deploy_cli_refuses_a_failing_checkpoint(checkpoints):
    out = subprocess.run([sys.executable, "-m", "robolearn", "deploy", "--policy", str(checkpoints[1]), "--cell", CELL,
                          "--task", "reach", "--set", "min_success_rate=0.3"], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "deploy refused" in out.stderr and "min_success_rate" in out.stderr


class CountingArm:
    """Stands in for the real arm at the ``Arm`` protocol boundary (a twin's SimArm), counting moves."""

    def __init__(self, arm):
        self.arm, self.name = arm, "counting"
        self.commands = self.stops = 0

    def state(self):
        return self.arm.state()

    def command(self, command):
        self.commands += 1
        return self.arm.command(command)

    def command_joints(self, command):
        self.commands += 1
        return self.arm.command_joints(command)

    def stop(self):
        self.stops += 1
        self.arm.stop()

    def connect(self):
        self.arm.connect()

    def disconnect(self):
        self.arm.disconnect()


class PushX:
    observation_keys = ["state"]

    def __init__(self, x=1.0):
        self.x = x

    def reset(self):
        pass

    def act(self, obs):
        return np.array([self.x, 0, 0, 0, 0, 0, -1.0], np.float32)


def test_shadow_never_commands_the_arm_and_reports_clips(checkpoints):
    from robolearn.sim import Twin

    cell = load_cell(CELL)
    devices = open_cell(cell, task="reach", teleop=False)
    devices.arm = real = CountingArm(devices.arm)
    q_before = real.state().q_rad
    shadow_twin = Twin(cell)
    report = run_shadow(PushX(), devices, shadow_twin, steps=30)
    assert real.commands == 0 and real.stops == 0 and report["commands_sent_to_real_arm"] == 0
    np.testing.assert_allclose(real.state().q_rad, q_before, atol=1e-3)
    assert report["clipped_steps"] == 0 and report["mean_step_m"] == pytest.approx(load_cell(CELL).safety.max_step_m)
    report = run_shadow(PushX(np.nan), devices, shadow_twin, steps=5)
    assert report["clipped_steps"] == 5 and report["violations_by_kind"] == {"nan": 5} and real.commands == 0
    from robolearn.learn import load_policy
    from robolearn.sim.tasks import load_task_config, make_task

    shadow_twin.task = make_task(load_task_config("reach"), shadow_twin)
    shadow_twin.task.reset(np.random.default_rng(0))
    report = run_shadow(load_policy(checkpoints[0], device="cpu"), devices, shadow_twin, steps=10)
    assert real.commands == 0 and report["steps"] == 10


class Buttons:
    """Wraps the teleop device: presses ``intervene`` on some reads and a button on one read."""

    def __init__(self, teleop, intervene=(), press=None):
        self.teleop, self.intervene, self.press = teleop, set(intervene), press or {}
        self.reads = 0

    def read(self):
        command = self.teleop.read()
        flags = {"intervene": self.reads in self.intervene}
        if self.reads in self.press:
            flags[self.press[self.reads]] = True
        self.reads += 1
        return TeleopCommand(command.ee_delta, command.gripper_closed, **flags)

    def reset(self):
        self.teleop.reset()

    def connect(self):
        pass

    def disconnect(self):
        pass


def test_live_drives_the_arm_with_stop_and_takeover(checkpoints):
    from robolearn.learn import load_policy

    devices = open_cell(load_cell(CELL), task="reach", teleop=True)
    devices.arm = arm = CountingArm(devices.arm)
    devices.teleop = Buttons(devices.teleop, intervene=(2, 3, 4), press={8: "failure"})
    policy = load_policy(checkpoints[0], device="cpu")
    record = run_live(policy, devices, str(checkpoints[0]), "reach", 1, DeployConfig())
    episode = record.episode_results[0]
    assert record.kind == "real" and record.success_source == "teleop"
    assert episode.ended_by == "stop" and not episode.success and episode.steps == 8
    assert arm.commands == 8 and arm.stops == 1


def test_live_trial_succeeds_by_reward_model_under_full_takeover():
    from robolearn.reward.base import OracleReward

    devices = open_cell(load_cell(CELL), task="reach", teleop=True)
    devices.teleop = Buttons(devices.teleop, intervene=range(1000))
    record = run_live(PushX(), devices, "scripted", "reach", 2, DeployConfig(), reward_model=OracleReward(devices.twin))
    assert [e.ended_by for e in record.episode_results] == ["success", "success"]
    assert record.success_rate == 1.0 and record.success_source == "reward_model"


def test_eval_real_records_trials_that_compare_pairs_with_the_twin(checkpoints, tmp_path):
    """``robolearn eval --real`` on the sim cell (a rehearsal: the twin stands in for the hardware),
    success decided by a reward model; the record pairs with the twin evaluation in ``compare``."""
    import json

    from robolearn.evaluate import EvalRecord, evaluation_path

    passing = checkpoints[0]
    run = [sys.executable, "-m", "robolearn"]
    out = subprocess.run([*run, "eval", "--real", "--policy", str(passing), "--cell", CELL, "--task", "reach",
                          "--episodes", "3", "--reward", "oracle", "--out", str(tmp_path / "real.json"), "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    record = EvalRecord.load(tmp_path / "real.json")
    assert record.kind == "real" and record.success_source == "reward_model" and record.n_episodes == 3
    assert all(e.seed is None and e.ended_by in ("success", "time_limit") for e in record.episode_results)
    assert json.loads(out.stdout.splitlines()[-1])["success_rate"] == record.success_rate
    compared = subprocess.run([*run, "compare", "--sim", str(evaluation_path(passing, "sim_panda", "reach")),
                               "--real", str(tmp_path / "real.json"), "--json"], capture_output=True, text=True, timeout=120)
    assert compared.returncode == 0, compared.stderr
    result = json.loads(compared.stdout.splitlines()[-1])
    assert result["n_policies"] == 1 and result["pearson_r"] is None
    assert result["policies"][0]["real_success_rate"] == record.success_rate
    expert = subprocess.run([*run, "eval", "--real", "--policy", "expert", "--cell", CELL, "--task", "reach"],
                            capture_output=True, text=True, timeout=120)
    assert expert.returncode == 2 and "cannot drive a real cell" in expert.stderr


def test_read_only_arm_refuses_every_command():
    from robolearn.evaluate.devices import ReadOnlyArm
    from robolearn.interfaces import EEDeltaCommand, JointCommand
    from robolearn.sim import Twin

    arm = ReadOnlyArm(Twin(load_cell(CELL)).arm)
    assert arm.state().q_rad.shape == (7,)
    for move in (lambda: arm.command(EEDeltaCommand.hold()), lambda: arm.command_joints(JointCommand(np.zeros(7))), arm.stop):
        with pytest.raises(PermissionError, match="shadow mode never commands the real arm"):
            move()
