"""RoboFuME's reset-free loop on the twin: forward and backward policies switched by reward models, the reset
tasks that give the backward phase its ground truth and demonstrations, and reset-free training."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from robolearn.cli import main
from robolearn.collect import CollectSettings, collect
from robolearn.env import make_env
from robolearn.interfaces import EEDeltaCommand
from robolearn.learn import load_policy
from robolearn.learn.reset_free import PhaseSpec, train_reset_free
from robolearn.reward import load_reward_model
from robolearn.reward.metrics import RewardMonitor
from robolearn.reward.phase_switch import ResetFreeConfig, ResetFreeLoop, twin_phase_env
from robolearn.sim.experts import make_expert
from robolearn.store import DemoStore

CELL = "configs/cells/sim_panda.yaml"


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


# --- Reset tasks on the twin: ground truth, experts, and the loop closed by them ---------------------


class ExpertPolicy:
    """A twin task's scripted expert as a Policy."""

    def __init__(self, env):
        self.expert = make_expert(env)

    def reset(self):
        self.expert.reset()

    def act(self, obs):
        return self.expert.read().action()


def _put_cube(env, xyz):
    twin = env.unwrapped.twin
    twin.set_object_pose("cube", np.asarray(xyz, dtype=np.float64), np.array([1.0, 0.0, 0.0, 0.0]))
    twin.forward()


def test_pick_cube_reset_ground_truth():
    env = make_env(task="pick_cube_reset", cameras=False)
    _, info = env.reset(seed=0)
    task = env.unwrapped.task
    assert task.forward.evaluate()[1] and not info["success"]  # starts where the pick expert succeeded
    lifted_dense, _ = task.evaluate()
    env.unwrapped.twin.reset()  # arm home (gripper open, tool far above), cube down at (0.5, 0)
    assert task.evaluate() == (1.0, True)
    rest_z = task.object_rest_z_m
    _put_cube(env, [0.5, 0.0, rest_z + 0.02])
    hovering_dense, success = task.evaluate()
    assert not success and lifted_dense < hovering_dense < 1.0
    _put_cube(env, [0.3, 0.0, rest_z])
    assert not task.evaluate()[1]  # outside the reset region
    _put_cube(env, [0.5, 0.05, rest_z])
    assert task.evaluate()[1]
    env.unwrapped.arm.command(EEDeltaCommand(np.zeros(3), np.zeros(3), 1.0))
    assert not task.evaluate()[1]  # gripper closed
    tight = make_env(task="pick_cube_reset", cameras=False, task_overrides=["clearance_m=5.0"])
    tight.unwrapped.twin.reset()
    assert not tight.unwrapped.task.evaluate()[1]  # tool not clear of the cube


def test_push_cube_reset_ground_truth():
    env = make_env(task="push_cube_reset", cameras=False)
    obs, info = env.reset(seed=1)
    task = env.unwrapped.task
    assert task.forward.evaluate()[1] and not info["success"]
    assert np.allclose(obs["object_state"][7:9], env.unwrapped.twin.goal_pos_m[:2])  # the forward target stays shown
    z = task.object_rest_z_m
    _put_cube(env, [0.5, 0.02, z])
    assert task.evaluate() == (1.0, True)
    _put_cube(env, [0.5, 0.05, z])
    dense, success = task.evaluate()
    assert not success and 0.0 < dense < 1.0


@pytest.mark.parametrize("task", ["pick_cube_reset", "push_cube_reset"])
def test_reset_expert_solves_from_forward_success_states(task):
    env = make_env(task=task, cameras=False)
    expert = make_expert(env)
    successes = []
    for seed in range(10):
        env.reset(seed=seed)
        expert.reset()
        done = False
        while not done:
            _, _, terminated, truncated, info = env.step(expert.read().action())
            done = terminated or truncated
        successes.append(info["success"])
    assert np.mean(successes) >= 0.9


def test_collect_backward_demos_through_the_task_registry(tmp_path, capsys):
    store = tmp_path / "demos.zarr"
    assert main(["collect", "--task", "push_cube_reset", "--store", str(store), "--episodes", "2", "--no-cameras",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["episodes_committed"] == 2 and result["success_rate"] == 1.0
    assert {m["task"] for m in DemoStore.open(store).episode_metas()} == {"push_cube_reset"}


@pytest.mark.parametrize("forward,backward", [("pick_cube", "pick_cube_reset"), ("push_cube", "push_cube_reset")])
def test_experts_close_the_reset_free_loop_on_the_twin(forward, backward):
    env = make_env(task=forward, cameras=False)
    backward_env = twin_phase_env(env, backward)
    loop = ResetFreeLoop(env, ExpertPolicy(env), ExpertPolicy(backward_env), load_reward_model("oracle", env=env),
                         load_reward_model("oracle", env=backward_env), ResetFreeConfig(max_phase_steps=60),
                         backward_env=backward_env)
    transitions = list(loop.run(300, seed=2))
    summary = loop.summary()
    assert summary["forward_phases"] >= 5 and summary["backward_phases"] >= 5 and summary["hard_resets"] == 0
    assert summary["forward_success_rate"] == 1.0 and summary["backward_success_rate"] == 1.0
    assert summary["backward_true_successes"] == summary["backward_successes"]
    assert summary["reward_false_positive_rate"] == 0.0 and summary["backward_reward_false_positive_rate"] == 0.0
    backward_truth = [t["success_true"] for t in transitions if t["phase"] == "backward"]
    assert backward_truth.count(True) == summary["backward_successes"]  # the backward task's ground truth


# --- Training forward and backward agents reset-free --------------------------------------------------

TINY = ("n_critics=2", "hidden=[32,32]", "batch_size=16", "utd=2")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("reset_free")
    store = root / "demos.zarr"
    for task in ("pick_cube", "pick_cube_reset"):
        collect(CollectSettings(task=task, store=str(store), episodes=2, cameras=False, progress=False))
    before = DemoStore.open(store).n_episodes
    result = train_reset_free(PhaseSpec("pick_cube", str(store), overrides=TINY),
                              PhaseSpec("pick_cube_reset", str(store), overrides=TINY),
                              CELL, 60, str(root / "run"), max_phase_steps=10, eval_episodes=1, progress=False)
    return store, before, result, root


def test_reset_free_training_alternates_trains_both_agents_and_appends_both_tasks(trained):
    store_path, before, result, root = trained
    assert result["forward_phases"] >= 2 and result["backward_phases"] >= 2
    assert result["forward_steps"] + result["backward_steps"] == 60
    assert result["forward_updates"] > 0 and result["backward_updates"] > 0
    assert result["reward_false_positive_rate"] == 0.0 and result["reward_n_frames"] == result["forward_steps"]
    assert result["backward_task"] == "pick_cube_reset" and result["forward_eval_success_rate"] is not None
    store = DemoStore.open(store_path)
    online = [(m["task"], store.episode_lengths[i]) for i, m in enumerate(store.episode_metas()) if i >= before]
    assert all(m["source"] == "online" for m in store.episode_metas()[before:])
    for phase, task in (("forward", "pick_cube"), ("backward", "pick_cube_reset")):
        lengths = [n for t, n in online if t == task]  # every phase, the unfinished last one too
        assert len(lengths) - result[f"{phase}_phases"] in (0, 1) and sum(lengths) == result[f"{phase}_steps"]
        policy = load_policy(root / "run" / phase / "last")
        assert policy.config["task"] == task and policy.config["phase"] == phase
    assert (root / "run" / "logs" / "scalars.jsonl").exists()


def test_reset_free_from_the_command_line_with_init_checkpoints(trained, tmp_path, capsys):
    store_path, _, _, root = trained
    store = tmp_path / "demos.zarr"
    shutil.copytree(store_path, store)
    args = ["finetune", "--reset-free", "--algo", "rlpd", "--task", "pick_cube", "--store", str(store),
            "--init", str(root / "run" / "forward" / "last"), "--backward-init", str(root / "run" / "backward" / "last"),
            "--steps", "30", "--max-phase-steps", "8", "--hard-reset-every", "1", "--eval-episodes", "0",
            "--out", str(tmp_path / "run"), "--json", *[a for kv in TINY for a in ("--set", kv)]]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["backward_task"] == "pick_cube_reset" and result["forward_updates"] > 0
    assert result["hard_resets"] == result["backward_phases"] >= 1  # a reset after every backward phase
    assert (tmp_path / "run" / "forward" / "last" / "model.safetensors").exists()
    assert (tmp_path / "run" / "backward" / "last" / "model.safetensors").exists()


def test_reset_free_errors_name_the_fix(tmp_path, capsys):
    store = tmp_path / "demos.zarr"
    collect(CollectSettings(task="pick_cube", store=str(store), episodes=1, cameras=False, progress=False))
    base = ["finetune", "--algo", "rlpd", "--task", "pick_cube", "--store", str(store), "--out", str(tmp_path / "run")]
    assert main(base + ["--backward-task", "pick_cube_reset"]) == 2
    assert "only applies with --reset-free" in capsys.readouterr().err
    assert main(base + ["--reset-free", "--actors", "2"]) == 2
    assert "--actors: not supported with --reset-free" in capsys.readouterr().err
    assert main(base + ["--reset-free"]) == 2
    assert "robolearn collect --task pick_cube_reset" in capsys.readouterr().err
    assert main(base + ["--reset-free", "--task", "reach"]) == 2
    assert "has no registered reset task" in capsys.readouterr().err
