"""``robolearn train`` and ``robolearn finetune`` end to end on a small store of expert episodes."""

import json

import numpy as np
import pytest

from robolearn.cli import main
from robolearn.env import make_env
from robolearn.errors import DependencyError
from robolearn.learn import load_policy
from robolearn.sim.experts import make_expert
from robolearn.store import DemoStore

CELL = "configs/cells/sim_panda.yaml"


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "demos.zarr"
    store = DemoStore.create(path)
    env = make_env(cell=CELL, task="reach", seed=0, cameras=False)
    expert = make_expert(env, noise_scale=0.05, seed=0)
    for ep in range(3):
        obs, info = env.reset(seed=ep)
        expert.reset()
        data: dict[str, list] = {}
        done = False
        while not done:
            action = expert.read().action()
            for k, v in obs.items():
                data.setdefault(k, []).append(v)
            obs, reward, terminated, truncated, info = env.step(action)
            for k, v in {"action": action, "reward": np.float32(reward), "success": info["success"],
                         "terminated": terminated, "intervention": False, "stamp_ns": np.int64(info.get("stamp_ns", 0))}.items():
                data.setdefault(k, []).append(v)
            done = terminated or truncated
        store.append_episode({k: np.asarray(v) for k, v in data.items()},
                             {"task": "reach", "success": bool(info["success"]), "source": "expert"})
    return path


def _run(args, capsys):
    assert main(args + ["--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_train_bc_checkpoints_evaluates_and_resumes(store_path, tmp_path, capsys):
    out = tmp_path / "bc"
    base = ["train", "--algo", "bc", "--store", str(store_path), "--task", "reach", "--eval-every", "10",
            "--eval-episodes", "1", "--out", str(out), "--set", "batch_size=32", "--set", "hidden=[32,32]",
            "--keep-checkpoints", "2"]
    first = _run(base + ["--steps", "20"], capsys)
    assert first["resumed_from"] == 0 and first["success_rate"] is not None
    assert first["step_checkpoints"] == [str(out / "step_10"), str(out / "step_20")]
    # an earlier evaluation that scored better than anything this resumed run will reach
    best_config = json.loads((out / "best" / "config.json").read_text())
    best_step = best_config["step"]
    (out / "best" / "config.json").write_text(json.dumps({**best_config, "eval": {**best_config["eval"], "success_rate": 2.0}}))
    second = _run(base + ["--steps", "40"], capsys)
    assert second["resumed_from"] == 20 and second["best_success_rate"] == 2.0
    assert load_policy(out / "best").config["step"] == best_step  # not overwritten by a worse model
    assert sorted(p.name for p in out.glob("step_*")) == ["step_30", "step_40"]  # --keep-checkpoints 2
    assert load_policy(out / "step_30").config["step"] == 30
    assert not (out / "step_30" / "optim.safetensors").exists()  # for evaluation, not for resuming
    policy = load_policy(out / "last")
    assert policy.config["step"] == 40 and policy.observation_keys == ["object_state", "state"]
    assert (out / "logs" / "scalars.jsonl").exists()
    # robolearn eval over the step checkpoints: records beside each, a report over training steps
    _run(["eval", "--policy", str(out / "step_30"), "--task", "reach", "--episodes", "1"], capsys)
    evaluated = _run(["eval", "--policy", str(out / "step_40"), "--task", "reach", "--episodes", "1",
                      "--report", str(tmp_path / "report.html")], capsys)
    assert evaluated["record"].startswith(str(out / "step_40" / "evaluations"))
    report = (tmp_path / "report.html").read_text()
    assert "<td>bc/step_30</td>" in report and "<td>bc/step_40</td>" in report  # the sibling's record too


def test_resume_restores_the_buffer_rng_and_takes_the_uninterrupted_run_s_updates(store_path, tmp_path, capsys):
    from safetensors.torch import load_file

    base = ["train", "--algo", "iql", "--store", str(store_path), "--task", "reach", "--eval-every", "0",
            "--set", "batch_size=16", "--set", "hidden=[16,16]", "--set", "actor_lr_decay_steps=0"]
    _run(base + ["--out", str(tmp_path / "straight"), "--steps", "6"], capsys)
    _run(base + ["--out", str(tmp_path / "resumed"), "--steps", "3"], capsys)
    assert _run(base + ["--out", str(tmp_path / "resumed"), "--steps", "6"], capsys)["resumed_from"] == 3
    straight = load_file(str(tmp_path / "straight" / "last" / "model.safetensors"))
    resumed = load_file(str(tmp_path / "resumed" / "last" / "model.safetensors"))
    for key, value in straight.items():
        assert np.array_equal(value.numpy(), resumed[key].numpy()), key


SMALL_SAC = ["--set", "batch_size=16", "--set", "hidden=[16,16]", "--set", "n_critics=2", "--set", "cql_n_actions=2",
             "--set", "actor_layer_norm=true"]


def test_train_iql_and_calql_then_finetune_calql_and_wsrl_from_them(store_path, tmp_path, capsys):
    iql = _run(["train", "--algo", "iql", "--store", str(store_path), "--task", "reach", "--steps", "5",
                "--eval-every", "5", "--eval-episodes", "1", "--out", str(tmp_path / "iql"),
                "--set", "batch_size=16", "--set", "hidden=[16,16]"], capsys)
    assert iql["steps"] == 5 and iql["success_rate"] is not None and load_policy(tmp_path / "iql" / "last").config["algo"] == "iql"
    calql = _run(["train", "--algo", "calql", "--store", str(store_path), "--task", "reach", "--steps", "5",
                  "--eval-every", "0", "--out", str(tmp_path / "calql"), *SMALL_SAC], capsys)
    assert calql["steps"] == 5 and load_policy(tmp_path / "calql" / "last").config["algo"] == "calql"
    init = str(tmp_path / "calql" / "last")
    common = ["--store", str(store_path), "--task", "reach", "--steps", "30", "--eval-episodes", "1", "--init", init]
    tuned = _run(["finetune", "--algo", "calql", *common, "--out", str(tmp_path / "ft_calql"), *SMALL_SAC], capsys)
    assert tuned["env_steps"] == 30 and tuned["updates"] == 30
    wsrl = _run(["finetune", "--algo", "wsrl", *common, "--out", str(tmp_path / "ft_wsrl"), *SMALL_SAC,
                 "--set", "warmup_steps=10"], capsys)
    assert wsrl["env_steps"] == 30 and wsrl["updates"] == 20  # 10 warm-up steps of the frozen policy first
    assert load_policy(tmp_path / "ft_wsrl" / "last").config["algo"] == "wsrl"
    assert main(["finetune", "--algo", "calql", *common, "--out", str(tmp_path / "bad"), *SMALL_SAC[:-2]]) == 2
    assert "does not fit this calql agent" in capsys.readouterr().err  # pretrained with a LayerNorm actor


def test_store_without_rewards_trains_bc_and_sends_iql_to_reward_relabel(tmp_path, capsys):
    store = DemoStore.create(tmp_path / "imported.zarr")
    for n in (6, 7):
        episode = {k: v for k, v in _synthetic_episode(n, True).items() if k != "reward"}
        store.append_episode(episode, {"task": "reach", "success": True, "source": "teleop"})
    args = ["--store", str(store.path), "--task", "reach", "--steps", "2", "--eval-every", "0",
            "--set", "batch_size=8", "--set", "hidden=[8]"]
    assert _run(["train", "--algo", "bc", *args, "--out", str(tmp_path / "bc")], capsys)["transitions"] == 13  # terminated: every step kept
    assert main(["train", "--algo", "iql", *args, "--out", str(tmp_path / "iql")]) == 2
    assert "has no reward" in (err := capsys.readouterr().err) and "robolearn reward relabel" in err


def test_finetune_rlpd_appends_online_episodes(store_path, tmp_path, capsys):
    before = DemoStore.open(store_path, mode="r").n_episodes
    out = _run(["finetune", "--algo", "rlpd", "--store", str(store_path), "--task", "reach", "--steps", "120",
                "--out", str(tmp_path / "rlpd"), "--eval-episodes", "1", "--set", "batch_size=32",
                "--set", "hidden=[32,32]", "--set", "n_critics=2", "--set", "utd=1"], capsys)
    assert out["env_steps"] == 120 and out["updates"] == 120
    store = DemoStore.open(store_path, mode="r")
    assert store.n_episodes > before
    assert store.episode_meta(store.n_episodes - 1)["source"] == "online"


def _synthetic_episode(n, success):
    rng = np.random.default_rng(n)
    return {"state": rng.normal(size=(n, 15)).astype(np.float32), "object_state": rng.normal(size=(n, 10)).astype(np.float32),
            "action": rng.uniform(-1, 1, (n, 7)).astype(np.float32), "reward": np.eye(1, n, n - 1)[0].astype(np.float32) * success,
            "success": np.eye(1, n, n - 1)[0].astype(bool) & success, "terminated": np.eye(1, n, n - 1)[0].astype(bool) & success,
            "intervention": np.zeros(n, bool), "stamp_ns": np.arange(n, dtype=np.int64)}


def test_store_buffer_filters_episodes_and_leaves_room_for_interventions(tmp_path):
    from robolearn.learn.train import StoreDataError, store_buffer

    store = DemoStore.create(tmp_path / "s.zarr")
    store.append_episode(_synthetic_episode(5, True), {"task": "reach", "success": True, "source": "expert"})
    store.append_episode(_synthetic_episode(7, False), {"task": "reach", "success": False, "source": "online"})
    store.append_episode(_synthetic_episode(4, True), {"task": "push_cube", "success": True, "source": "expert"})
    everything, shapes, action_dim = store_buffer(str(store.path), "reach", None, 0.9)
    assert len(everything) == 5 + 6 and shapes == {"object_state": (10,), "state": (15,)} and action_dim == 7
    assert len(store_buffer(str(store.path), "reach", None, 0.9, successful_only=True)[0]) == 5
    demos = store_buffer(str(store.path), "reach", ["state"], 0.9, exclude_sources=("online",), extra_capacity=50)[0]
    assert len(demos) == 5 and demos.capacity == 16 + 50 and list(demos.obs) == ["state"]
    assert demos.mc_return[:5].tolist() == pytest.approx([0.9 ** k for k in range(4, -1, -1)])
    with pytest.raises(StoreDataError, match="rgb_front"):
        store_buffer(str(store.path), "reach", ["rgb_front"], 0.9)
    bad = _synthetic_episode(5, True)
    bad["state"][3, 2] = np.nan
    store.append_episode(bad, {"task": "reach", "success": True, "source": "expert"})
    with pytest.raises(StoreDataError, match=r"episode 3, episode step 3: state\[2\] is nan.*robolearn data delete .*s.zarr 3 --yes"):
        store_buffer(str(store.path), "reach", None, 0.9)


def test_wandb_logging_needs_the_package_or_logs_offline(tmp_path, monkeypatch):
    from robolearn.learn.train import ScalarLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    try:
        import wandb  # noqa: F401
    except ImportError:
        with pytest.raises(DependencyError, match="pip install wandb"):
            ScalarLogger(tmp_path / "logs", wandb_project="robolearn-test")
        return
    logger = ScalarLogger(tmp_path / "logs", wandb_project="robolearn-test")
    logger.log(1, {"train/loss": 0.5})
    logger.close()
    assert any((tmp_path / "logs" / "wandb").iterdir())


def test_finetune_with_an_actor_process_over_zenoh_and_scripted_interventions(store_path, tmp_path, capsys):
    before = DemoStore.open(store_path, mode="r").n_episodes
    args = ["finetune", "--algo", "rlpd", "--store", str(store_path), "--task", "reach", "--steps", "150",
            "--actors", "1", "--teleop", "expert", "--intervene-probability", "0.2", "--out", str(tmp_path / "al"),
            "--eval-episodes", "1", "--set", "batch_size=32", "--set", "hidden=[32,32]", "--set", "n_critics=2",
            "--set", "utd=1"]
    from robolearn.learn.train import store_buffer

    demos = len(store_buffer(str(store_path), "reach", None, 0.97, exclude_sources=("online",))[0])
    out = _run(args, capsys)
    assert out["committed_transitions"] == 150 and out["updates"] > 0 and out["interventions"] > 0
    assert out["demo_transitions"] == demos + out["interventions"]  # intervened steps joined the demos
    store = DemoStore.open(store_path, mode="r")
    online = [store.episode_meta(i) for i in range(before, store.n_episodes)]
    assert online and all(m["source"] == "online" for m in online)
    assert sum(m["interventions"] for m in online) <= out["interventions"]
    assert any(m["operator"] == "policy+human" for m in online)
    marked = np.concatenate([store.episode(i, ["intervention"])["intervention"] for i in range(before, store.n_episodes)])
    assert marked.sum() == sum(m["interventions"] for m in online)


@pytest.mark.slow
def test_finetune_with_actors_resumes_from_the_learner_checkpoint(store_path, tmp_path, capsys):
    args = ["finetune", "--algo", "rlpd", "--store", str(store_path), "--task", "reach", "--steps", "100",
            "--actors", "1", "--out", str(tmp_path / "al"), "--eval-episodes", "1", "--set", "batch_size=32",
            "--set", "hidden=[32,32]", "--set", "n_critics=2", "--set", "utd=1"]
    first = _run(args, capsys)
    resumed = _run([*args[:8], "160", *args[9:]], capsys)  # the learner restarts from OUT/learner
    assert first["committed_transitions"] == 100 and resumed["committed_transitions"] == 160
    assert resumed["updates"] > first["updates"]


@pytest.mark.slow
def test_learner_and_actor_roles_run_as_separate_commands(store_path, tmp_path, capsys):
    import subprocess
    import sys

    from robolearn.ros.zenoh_backend import free_endpoint

    router = free_endpoint()
    common = ["--algo", "rlpd", "--store", str(store_path), "--task", "reach", "--steps", "120", "--router", router,
              "--set", "batch_size=32", "--set", "hidden=[32,32]", "--set", "n_critics=2", "--set", "utd=1"]
    learner = subprocess.Popen([sys.executable, "-m", "robolearn", "finetune", "--role", "learner", "--out",
                                str(tmp_path / "learner"), "--eval-episodes", "1", "--json", *common],
                               stdout=subprocess.PIPE, text=True)
    try:
        actor = _run(["finetune", "--role", "actor", "--out", str(tmp_path / "actor"), *common], capsys)
        learned = json.loads(learner.communicate(timeout=300)[0].strip().splitlines()[-1])
    finally:
        learner.kill()
    assert actor["role"] == "actor" and actor["sent"] == 120 and actor["flushed"]
    assert learned["role"] == "learner" and learned["committed_transitions"] == 120 and learned["updates"] > 0
