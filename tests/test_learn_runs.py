"""Run configs: every run writes its resolved config (with provenance) to OUT/run.yaml,
``--config OUT/run.yaml`` repeats it exactly, resuming is explicit and refuses a changed config, and
an online run checkpointed at an episode end resumes bit-exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from safetensors.torch import load_file

from robolearn.cli import main
from robolearn.env import make_env
from robolearn.learn.online import OnlineTrainer
from robolearn.learn.runs import TrainRun, build_run, differences
from robolearn.learn.sac import SACConfig
from robolearn.sim.experts import make_expert
from robolearn.store import DemoStore

SMALL = ["--set", "batch_size=16", "--set", "hidden=[16,16]"]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "demos.zarr"
    store = DemoStore.create(path, cell_config=None)
    env = make_env(task="reach", seed=0, cameras=False)
    expert = make_expert(env, noise_scale=0.05, seed=0)
    for ep in range(2):
        obs, info = env.reset(seed=ep)
        expert.reset()
        data: dict[str, list] = {}
        done = False
        while not done:
            action = expert.read().action()
            for k, v in obs.items():
                data.setdefault(k, []).append(v)
            obs, reward, terminated, truncated, info = env.step(action)
            for k, v in {"action": action, "reward": np.float32(reward), "terminated": terminated}.items():
                data.setdefault(k, []).append(v)
            done = terminated or truncated
        store.append_episode({k: np.asarray(v) for k, v in data.items()},
                             {"task": "reach", "success": bool(info["success"]), "source": "expert"})
    return path


def run_json(args, capsys):
    assert main(args + ["--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def weights(path):
    return load_file(str(path / "last" / "model.safetensors"))


def test_run_yaml_records_the_resolved_run_and_reproduces_its_weights(store_path, tmp_path, capsys):
    first = tmp_path / "first"
    run_json(["train", "--algo", "iql", "--store", str(store_path), "--task", "reach", "--steps", "6",
              "--eval-every", "0", "--seed", "3", "--out", str(first), *SMALL], capsys)
    saved = yaml.safe_load((first / "run.yaml").read_text())
    assert saved["seed"] == 3 and saved["steps"] == 6 and saved["obs"] == ["state"]
    assert saved["agent"]["batch_size"] == 16 and saved["agent"]["encoder"]["image"] == "cnn"
    provenance = saved["provenance"]
    assert provenance["cell_config"]["name"] == "sim_panda" and provenance["store"]["n_episodes"] == 2
    assert {"torch", "numpy", "mujoco", "zarr", "robolearn", "command"} <= set(provenance)
    again = tmp_path / "again"
    run_json(["train", "--config", str(first / "run.yaml"), "--out", str(again)], capsys)
    reference, repeated = weights(first), weights(again)
    assert set(reference) == set(repeated)
    for key in reference:
        assert np.array_equal(reference[key].numpy(), repeated[key].numpy()), key
    other_seed = tmp_path / "other"
    run_json(["train", "--config", str(first / "run.yaml"), "--out", str(other_seed), "--seed", "4"], capsys)
    assert any(not np.array_equal(reference[k].numpy(), weights(other_seed)[k].numpy()) for k in reference), \
        "the seed seeds the batches and the initialization"


def test_resume_is_explicit_and_names_what_changed(store_path, tmp_path, capsys):
    out = str(tmp_path / "bc")
    base = ["train", "--algo", "bc", "--store", str(store_path), "--task", "reach", "--eval-every", "0", "--out", out]
    run_json([*base, "--steps", "4", *SMALL], capsys)
    assert main([*base, "--steps", "4", *SMALL]) == 2
    assert "already holds a run; continue it with --resume" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", out, "--set", "batch_size=8"]) == 2
    err = capsys.readouterr().err
    assert "agent.batch_size: 16 → 8" in err and err.count("\n") == 1
    resumed = run_json(["train", "--resume", "--out", out], capsys)  # the saved run, as it was
    assert resumed["resumed_from"] == 4 and resumed["steps"] == 4
    assert main(["train", "--resume", "--out", str(tmp_path / "nothing")]) == 2
    assert "--algo, --store, --task needed" in capsys.readouterr().err


def test_differences_ignore_provenance():
    a = build_run(TrainRun, {"algo": "bc", "store": "s.zarr", "task": "reach"})
    b = build_run(TrainRun, {"algo": "bc", "store": "s.zarr", "task": "reach", "steps": 5}, overrides=["lr=1e-3"])
    b.provenance = {"command": "robolearn train ..."}
    assert differences(a, b) == ["agent.lr: 0.0003 → 0.001", "steps: 20000 → 5"]


def small_agent_config(**kw) -> SACConfig:
    return SACConfig(algo="rlpd", n_critics=2, hidden=(16, 16), batch_size=16, utd=2, start_steps=10, **kw)


def test_an_online_run_resumed_from_an_episode_end_continues_bit_exactly(tmp_path):
    from robolearn.learn.intervention import Intervention, ScriptedIntervention

    def trainer() -> OnlineTrainer:
        env = make_env(task="reach", cameras=False)
        env = Intervention(env, ScriptedIntervention(make_expert(env, noise_scale=0.2), 0.2, seed=0))
        return OnlineTrainer(env, small_agent_config(), seed=7, obs_keys=["object_state", "state"], capacity=400)

    straight = trainer()
    straight.run(160, progress=False)
    interrupted = trainer()
    interrupted.run(160, progress=False, on_episode_end=lambda t: t.result.env_steps >= 50)
    stopped_at = interrupted.result.env_steps
    interrupted.checkpoint(tmp_path / "ckpt")
    resumed = trainer()
    resumed.resume(tmp_path / "ckpt")
    assert resumed.result.env_steps == stopped_at >= 50 and resumed.episodes == interrupted.episodes
    resumed.run(160, progress=False)
    assert resumed.result.env_steps == straight.result.env_steps == 160
    assert resumed.result.episode_successes == straight.result.episode_successes
    for key, value in straight.agent.state_dict().items():
        assert np.array_equal(value.numpy(), resumed.agent.state_dict()[key].numpy()), key
