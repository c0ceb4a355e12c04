"""CUDA paths: bf16 autocast updates, pinned-memory batches, device-independent checkpoints."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from robolearn.learn.agents import make_agent
from robolearn.learn.api import save_agent
from robolearn.learn.buffer import ReplayBuffer
from robolearn.learn.checkpoint import load_checkpoint
from robolearn.learn.observation import EncoderConfig
from robolearn.learn.online import train_online
from robolearn.learn.sac import SACConfig

pytestmark = pytest.mark.gpu


def test_rlpd_update_under_bf16_autocast_on_cuda():
    buf = ReplayBuffer({"state": ((3,), np.float32), "rgb_top": ((32, 32, 3), np.uint8)}, 2, 64)
    rng = np.random.default_rng(0)
    for _ in range(64):
        obs = {"state": rng.normal(size=3), "rgb_top": rng.integers(0, 255, (32, 32, 3))}
        buf.add(obs, rng.uniform(-1, 1, 2), 1.0, obs, False)
    batch = buf.sample(32, "cuda")
    assert batch["obs"]["rgb_top"].is_cuda and batch["action"].is_cuda
    agent = make_agent(SACConfig(n_critics=4, hidden=(64, 64), encoder=EncoderConfig(image_latent_dim=8)), {"state": (3,), "rgb_top": (32, 32, 3)}, 2)
    agent = agent.cuda()
    with torch.autocast("cuda", torch.bfloat16):
        q = agent.critic(agent.encoder(batch["obs"]), batch["action"])
        info = agent.update([batch, buf.sample(32, "cuda")])
    assert q.dtype == torch.float32
    assert all(np.isfinite(v) for v in info.values())


def test_cuda_training_checkpoint_loads_on_cpu_bit_exactly(tmp_path):
    result = train_online(gym.make("Pendulum-v1", max_episode_steps=20), SACConfig(n_critics=2, hidden=(32, 32),
                          batch_size=16, utd=2, start_steps=10), total_steps=30, device="cuda", progress=False)
    save_agent(tmp_path / "ckpt", result.agent, {"state": (3,)}, step=30)
    clone = make_agent(result.agent.cfg, {"state": (3,)}, 1)
    load_checkpoint(tmp_path / "ckpt", clone, clone.optimizers(), "cpu")
    for (k, a), b in zip(result.agent.state_dict().items(), clone.state_dict().values()):
        assert torch.equal(a.cpu(), b), k
