"""Every twin task is a registered gymnasium env that passes gymnasium's (and SB3's) env checker."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import robolearn.sim  # noqa: F401  (registers the envs)
from robolearn.sim.registration import ENV_IDS

SMALL = ["cameras.0.width_px=32", "cameras.0.height_px=32", "cameras.1.width_px=32", "cameras.1.height_px=32"]


@pytest.mark.parametrize("env_id", sorted(ENV_IDS.values()))
def test_gym_make_gives_a_checked_env_that_observes_what_a_real_cell_does(env_id):
    env = gym.make(env_id, overrides=SMALL)
    assert env.spec.id == env_id
    assert sorted(env.observation_space.spaces) == ["rgb_front", "rgb_wrist", "state"]
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs["rgb_wrist"].shape == (32, 32, 3) and env.observation_space.contains(obs)
    env.close()


def test_gym_make_takes_cameras_and_observation_keys():
    env = gym.make("robolearn/PickCube-v0", cameras=False, observation_keys=["state", "object_state"])
    assert sorted(env.observation_space.spaces) == ["object_state", "state"]
    env.reset(seed=0)
    obs, _, _, _, _ = env.step(np.zeros(7, np.float32))
    assert obs["object_state"].shape == (10,)


def test_stable_baselines3_accepts_the_envs():
    sb3_check = pytest.importorskip("stable_baselines3.common.env_checker").check_env
    env = gym.make("robolearn/Reach-v0", cameras=False)
    sb3_check(env, warn=True)
