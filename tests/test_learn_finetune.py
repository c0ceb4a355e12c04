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
