"""The deploy gate, shadow mode (never commands the arm) and live mode (SafetyFilter, stop, takeover)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from robolearn.cell import load_cell
from robolearn.deploy.devices import open_cell
from robolearn.deploy.gate import DeployConfig, check_gate, run_live, run_shadow
from robolearn.evaluate import EvalSettings, evaluate_policy, save_beside_checkpoint
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
        buffer.add_episode({k: np.array(v) for k, v in arrays.items()}, 0.99)
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

    report = run_shadow(load_policy(checkpoints[0], device="cpu"), devices, shadow_twin, steps=10)
    assert real.commands == 0 and report["steps"] == 10


class Recorder(PushX):
    """A policy that observes privileged object state and keeps what it saw."""

    observation_keys = ["state", "object_state"]

    def __init__(self):
        super().__init__(0.0)
        self.seen = []

    def act(self, obs):
        self.seen.append(obs)
        return super().act(obs)


def test_object_state_comes_from_the_stand_in_twin_and_is_refused_on_a_real_cell():
    """Shadow and live observe ``object_state`` only where the cell's devices are simulated (the
    stand-in twin's ground truth, never the shadow twin's unreset task); on a real cell both refuse
    such a policy before any step."""
    from robolearn.config import ConfigError
    from robolearn.deploy.gate import LiveTrial
    from robolearn.sim import Twin

    devices = open_cell(load_cell(CELL), task="reach", teleop=True)
    devices.twin.task.reset(np.random.default_rng(5))
    policy = Recorder()
    run_shadow(policy, devices, Twin(devices.cell), steps=2)
    seen = policy.seen[-1]["object_state"]
    np.testing.assert_allclose(seen, devices.twin.task.object_state(), atol=1e-4)  # the cube settles a little
    assert np.linalg.norm(seen[:2] - np.array(devices.cell.objects[0].pos_m[:2])) > 0.05  # not the unreset default
    real = dataclasses.replace(devices, twin=None)  # the same devices, as a real cell presents them: no ground truth
    with pytest.raises(ConfigError, match="privileged object state.*nothing measures it"):
        run_shadow(Recorder(), real, Twin(devices.cell), steps=2)
    with pytest.raises(ConfigError, match="privileged object state"):
        LiveTrial(Recorder(), real, 5)
    assert run_shadow(PushX(), real, Twin(devices.cell), steps=2)["steps"] == 2


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


class CountingCamera:
    """Stands in for a camera at the ``Camera`` protocol boundary (the twin's), counting reads."""

    def __init__(self, camera):
        self.camera, self.reads = camera, 0
        self.name, self.intrinsics = camera.name, camera.intrinsics

    def read(self):
        self.reads += 1
        return self.camera.read()

    def connect(self):
        pass

    def disconnect(self):
        self.camera.disconnect()


def test_live_trial_uses_the_reward_models_threshold_and_reads_cameras_once_per_step(tmp_path):
    """A VLM judge (the scaffolding chat server answers p(yes) = 0.7) with threshold 0.8: no trial
    ends as a success, unless success_threshold in the deploy config overrides it. With a reward
    model, each step reads the cameras once (steps + 1 reads: the first observation, then one after
    every step for both the reward and the next action)."""
    from test_reward_judge import ChatServer, completion

    from robolearn.reward import load_reward_model

    server = ChatServer(default=completion("yes", {"yes": 0.7, "no": 0.3}))
    try:
        spec = tmp_path / "judge.yaml"
        spec.write_text(f"task: the cube is reached\ncamera: front\nthreshold: 0.8\njudge:\n  base_url: {server.base_url}\n"
                        "  cache_dir: null\n  max_requests_per_s: 0\n")
        judge = load_reward_model(f"vlm:{spec}")
        devices = open_cell(load_cell(CELL), task="reach", teleop=True)
        devices.cameras["front"] = camera = CountingCamera(devices.cameras["front"])
        record = run_live(PushX(0.0), devices, "scripted", "reach", 1, DeployConfig(max_episode_steps=3), judge)
        episode = record.episode_results[0]
        assert episode.ended_by == "time_limit" and not episode.success and episode.steps == 3
        assert episode.episode_return == 0.0 and camera.reads == 3 + 1 and len(server.requests) == 3
        overridden = run_live(PushX(0.0), devices, "scripted", "reach", 1,
                              DeployConfig(max_episode_steps=3, success_threshold=0.6), judge)
        assert overridden.episode_results[0].ended_by == "success" and overridden.episode_results[0].steps == 1
    finally:
        server.close()


def test_a_trial_the_operator_quits_is_aborted_and_counts_in_no_rate(tmp_path):
    from robolearn.errors import RobolearnError
    from robolearn.evaluate import EvalRecord

    devices = open_cell(load_cell(CELL), task="reach", teleop=True)
    devices.teleop = Buttons(devices.teleop, press={2: "success", 5: "quit"})
    record = run_live(PushX(0.0), devices, "scripted", "reach", 3, DeployConfig())
    assert [(e.ended_by, e.aborted, e.success) for e in record.episode_results] == [("success", False, True),
                                                                                      ("quit", True, False)]
    assert record.n_episodes == 1 and record.n_aborted == 1 and record.success_rate == 1.0
    assert record.summary()["aborted"] == 1 and record.ci95 == EvalRecord.load(record.save(tmp_path / "r.json")).ci95
    devices.teleop = Buttons(devices.teleop.teleop, press={1: "quit"})
    with pytest.raises(RobolearnError, match="no trial was completed"):
        run_live(PushX(0.0), devices, "scripted", "reach", 3, DeployConfig())


def test_deploy_cli_permits_a_passing_checkpoint_and_shadow_never_commands_the_arm(checkpoints, monkeypatch, capsys):
    """Through the CLI: the gate lets the passing checkpoint through, and shadow mode runs it with the
    arm (a SimArm standing in for the real one) never commanded."""
    import json

    import robolearn.deploy.devices as devices_module
    from robolearn.cli import main

    opened = []

    def open_counting(cell, task=None, teleop=True):
        devices = open_cell(cell, task=task, teleop=teleop)
        devices.arm = CountingArm(devices.arm)
        opened.append((devices.arm, devices.arm.state().q_rad.copy()))
        return devices

    monkeypatch.setattr(devices_module, "open_cell", open_counting)
    assert main(["deploy", "--policy", str(checkpoints[0]), "--cell", CELL, "--task", "reach", "--mode", "shadow",
                 "--steps", "12", "--set", "min_success_rate=0.3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "≥ 0.3" in result["gate"] and result["gate_record"].endswith("sim_panda__reach.json")
    assert result["mode"] == "shadow" and result["steps"] == 12 and result["commands_sent_to_real_arm"] == 0
    (arm, q_before), = opened
    assert arm.commands == 0 and arm.stops == 0
    np.testing.assert_allclose(arm.state().q_rad, q_before, atol=1e-3)


def test_deploy_cli_live_rehearsal_with_the_oracle_reward(checkpoints, tmp_path, capsys):
    """``deploy --mode live --reward oracle`` on the sim cell: the oracle gets the stand-in twin and
    decides each trial."""
    import json

    from robolearn.cli import main
    from robolearn.evaluate import EvalRecord

    out = tmp_path / "live.json"
    assert main(["deploy", "--policy", str(checkpoints[0]), "--cell", CELL, "--task", "reach", "--mode", "live",
                 "--episodes", "2", "--reward", "oracle", "--set", "min_success_rate=0.3", "--set",
                 "max_episode_steps=25", "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    record = EvalRecord.load(out)
    assert result["mode"] == "live" and result["episodes"] == 2 and record.success_source == "reward_model"
    assert all(e.success == (e.ended_by == "success") and e.ended_by in ("success", "time_limit")
               for e in record.episode_results)
    assert all(e.steps < 25 for e in record.episode_results if e.success)


def test_eval_real_records_trials_that_compare_pairs_with_the_twin(checkpoints, tmp_path):
    """``robolearn eval --real`` on the sim cell (a rehearsal: the twin stands in for the hardware),
    success decided by a reward model; the record pairs with the twin evaluation in ``compare``."""
    import json

    from robolearn.evaluate import EvalRecord, evaluation_path

    passing = checkpoints[0]
    run = [sys.executable, "-m", "robolearn"]
    out = subprocess.run([*run, "eval", "--real", "--policy", str(passing), "--cell", CELL, "--task", "reach",
                          "--episodes", "3", "--reward", "oracle", "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    saved = passing / "evaluations" / "real" / "sim_panda__reach.json"  # saved by default, beside the checkpoint
    printed = json.loads(out.stdout.splitlines()[-1])
    assert printed["record"] == str(saved) and f"saved to {saved}" in out.stderr
    record = EvalRecord.load(saved)
    assert record.kind == "real" and record.success_source == "reward_model" and record.n_episodes == 3
    assert all(e.seed is None and e.ended_by in ("success", "time_limit") for e in record.episode_results)
    assert printed["success_rate"] == record.success_rate
    assert check_gate(passing, "sim_panda", "reach", GATE).passed  # the real record is not the gate's
    runs = str(passing.parent.parent)  # both checkpoints' evaluations/, twin and real records side by side
    compared = subprocess.run([*run, "compare", "--sim", runs, "--real", runs, "--json"], capture_output=True,
                              text=True, timeout=120)
    assert compared.returncode == 0, compared.stderr
    result = json.loads(compared.stdout.splitlines()[-1])
    assert result["n_policies"] == 1 and result["pearson_r"] is None
    assert result["policies"][0]["real_success_rate"] == record.success_rate
    assert result["policies"][0]["sim_success_rate"] == EvalRecord.load(evaluation_path(passing, "sim_panda", "reach")).success_rate
    expert = subprocess.run([*run, "eval", "--real", "--policy", "expert", "--cell", CELL, "--task", "reach"],
                            capture_output=True, text=True, timeout=120)
    assert expert.returncode == 2 and "cannot drive a real cell" in expert.stderr


def test_read_only_arm_refuses_every_command():
    from robolearn.deploy.devices import ReadOnlyArm
    from robolearn.interfaces import EEDeltaCommand, JointCommand
    from robolearn.sim import Twin

    arm = ReadOnlyArm(Twin(load_cell(CELL)).arm)
    assert arm.state().q_rad.shape == (7,)
    for move in (lambda: arm.command(EEDeltaCommand.hold()), lambda: arm.command_joints(JointCommand(np.zeros(7))), arm.stop):
        with pytest.raises(PermissionError, match="shadow mode never commands the real arm"):
            move()
