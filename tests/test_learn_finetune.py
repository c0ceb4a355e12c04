"""The learned-reward wrapper used by ``robolearn finetune``: reward replaced, false positives counted."""

import numpy as np

from robolearn.env import make_env
from robolearn.learn.finetune import LearnedReward
from robolearn.reward import load_reward_model
from robolearn.sim.experts import make_expert


def run_expert(env, episodes=2):
    expert = make_expert(env.unwrapped)
    rewards = []
    for ep in range(episodes):
        env.reset(seed=ep)
        expert.reset()
        done = False
        while not done:
            _, reward, terminated, truncated, info = env.step(expert.read().action())
            rewards.append((reward, info["success"]))
            done = terminated or truncated
    return rewards


def test_oracle_reward_has_no_false_positives():
    base = make_env(cell="configs/cells/sim_panda.yaml", task="reach", seed=0, cameras=False)
    env = LearnedReward(base, load_reward_model("oracle", env=base))
    rewards = run_expert(env)
    stats = env.stats()
    assert stats["reward_false_positive_rate"] == 0.0 and stats["reward_negative_steps"] > 0
    assert stats["reward_true_positive_rate"] == 1.0
    assert all((r > 0) == s for r, s in rewards)


class AlwaysSuccess:
    """A reward model that says "success" on every frame (the failure mode the rate exists for)."""

    def __call__(self, obs):
        return 1.0, 0.9


def test_optimistic_reward_model_false_positive_rate_and_early_termination():
    env = LearnedReward(make_env(cell="configs/cells/sim_panda.yaml", task="reach", seed=0, cameras=False),
                        AlwaysSuccess(), threshold=0.5)
    rewards = run_expert(env, episodes=1)
    assert len(rewards) == 1 and rewards[0][0] == 1.0  # predicted success ends the episode
    assert env.stats()["reward_false_positive_rate"] == 1.0
    assert np.isclose(env.stats()["reward_false_positives"], 1)


class CalibratedButUnsure:
    """A classifier whose calibrated threshold (0.8) is above the 0.7 it gives every frame."""

    threshold = 0.8

    def __call__(self, obs):
        return 0.0, 0.7


def test_reward_model_threshold_decides_success_and_ground_truth_does_not_end_the_episode():
    env = LearnedReward(make_env(cell="configs/cells/sim_panda.yaml", task="reach", seed=0, cameras=False),
                        CalibratedButUnsure())
    assert env.threshold == 0.8 and env.terminate_on_success
    expert = make_expert(env.unwrapped)
    env.reset(seed=0)
    expert.reset()
    infos, done = [], False
    while not done:
        _, _, terminated, truncated, info = env.step(expert.read().action())
        infos.append(info)
        done = terminated or truncated
    assert truncated and not terminated and len(infos) == 50  # the expert succeeded, but only the time limit ended it
    assert any(i["success_true"] for i in infos) and not any(i["success"] for i in infos)
    assert env.stats()["reward_true_positive_rate"] == 0.0


def test_online_episodes_store_the_reward_models_success_and_keep_the_ground_truth_in_meta(tmp_path):
    from robolearn.learn.finetune import episode_appender
    from robolearn.store import DemoStore

    store = DemoStore.create(tmp_path / "s.zarr")
    keys = ["state", "action", "reward", "success", "terminated"]
    append = episode_appender(str(store.path), "reach", keys)
    called, truth = np.array([False, True, True]), np.array([False, False, True])
    append({"state": np.zeros((3, 2), np.float32), "action": np.zeros((3, 1), np.float32),
            "reward": called.astype(np.float32), "success": called, "success_true": truth,
            "terminated": np.array([False, False, True])}, {"success": True})
    store = DemoStore.open(store.path)
    meta = store.episode_meta(0)
    assert meta["success"] and meta["success_true"] and meta["success_true_steps"] == 1
    assert meta["reward_false_positive_steps"] == 1
    assert store.episode(0, ["success"])["success"].tolist() == called.tolist()



def test_an_actor_lets_go_of_the_store_between_episodes(tmp_path):
    """Each append releases the store's writer lock, so another actor process can append while this
    one is still running episodes."""
    import subprocess
    import sys

    from robolearn.learn.finetune import episode_appender
    from robolearn.store import DemoStore

    DemoStore.create(tmp_path / "s.zarr").close()
    append = episode_appender(str(tmp_path / "s.zarr"), "reach", ["state", "action"])
    append({"state": np.zeros((3, 2), np.float32), "action": np.zeros((3, 1), np.float32)}, {"success": False})
    other_actor = ("import sys; from robolearn.store import DemoStore; "
                   "DemoStore.open(sys.argv[1], mode='a', lock_timeout_s=1.0).close()")
    done = subprocess.run([sys.executable, "-c", other_actor, str(tmp_path / "s.zarr")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
