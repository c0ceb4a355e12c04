import gymnasium as gym
import numpy as np
import pytest
import torch

from robolearn.learn import load_policy
from robolearn.learn.agents import make_agent
from robolearn.learn.api import evaluate, observation_spaces, save_agent, train_offline
from robolearn.learn.bc import BCConfig
from robolearn.learn.buffer import ReplayBuffer
from robolearn.learn.checkpoint import load_checkpoint
from robolearn.learn.iql import IQLConfig
from robolearn.learn.observation import EncoderConfig
from robolearn.learn.online import train_online
from robolearn.learn.sac import SACConfig


def small_sac(**kw):
    return SACConfig(**{"n_critics": 4, "hidden": (32, 32), "batch_size": 16, "utd": 2, "start_steps": 20, **kw})


def _filled(agent_cfg, n=64):
    buf = ReplayBuffer({"state": ((3,), np.float32)}, 1, 200)
    rng = np.random.default_rng(0)
    for _ in range(n):
        buf.add({"state": rng.normal(size=3)}, rng.uniform(-1, 1, 1), rng.normal(), {"state": rng.normal(size=3)}, False,
                mc_return=rng.normal())
    return buf


@pytest.mark.parametrize("cfg", [small_sac(algo="rlpd"), small_sac(algo="calql", cql_alpha=5.0),
                                 IQLConfig(hidden=(32, 32), batch_size=16), BCConfig(hidden=(32, 32), batch_size=16, chunk=2)])
def test_checkpoint_round_trip_is_bit_exact_and_resumes_identically(tmp_path, cfg):
    torch.manual_seed(0)
    buf = _filled(cfg)
    agent = train_offline(cfg, buf, 3, {"state": (3,)}, 1, device="cpu", progress=False)
    save_agent(tmp_path / "ckpt", agent, {"state": (3,)}, step=3, replay=buf.state_dict(), rngs={"buffer": buf.rng})
    agent.update([buf.sample(16)])  # the uninterrupted run's next update
    torch.manual_seed(123)  # a restarted process starts from other RNG states
    clone = make_agent(agent.cfg, {"state": (3,)}, 1)
    restored = ReplayBuffer({"state": ((3,), np.float32)}, 1, 200, seed=99)
    config, replay = load_checkpoint(tmp_path / "ckpt", clone, clone.optimizers(), rngs={"buffer": restored.rng})
    assert config["step"] == 3
    restored.load_state_dict(replay)
    assert np.array_equal(restored.obs["state"], buf.obs["state"]) and len(restored) == len(buf)
    # identical next update from the checkpoint: weights, optimizer moments, torch and buffer RNG restored
    clone.update([restored.sample(16)])
    for (k, a), b in zip(agent.state_dict().items(), clone.state_dict().values()):
        assert torch.equal(a, b), k


def test_load_policy_acts_with_observation_keys(tmp_path):
    cfg = BCConfig(hidden=(16,), chunk=3, execute=2)
    agent = make_agent(cfg, {"state": (3,), "object_state": (2,)}, 2)
    save_agent(tmp_path / "p", agent, {"state": (3,), "object_state": (2,)}, step=0, task="reach")
    policy = load_policy(tmp_path / "p")
    assert policy.observation_keys == ["object_state", "state"] and policy.config["task"] == "reach"
    obs = {"state": np.zeros(3, np.float32), "object_state": np.ones(2, np.float32)}
    a1, a2 = policy.act(obs), policy.act(obs)
    assert a1.shape == (2,) and a1.dtype == np.float32 and np.abs(a1).max() <= 1.0
    expected = agent.predict_chunk({k: torch.as_tensor(v)[None] for k, v in obs.items()})[0].detach().numpy()
    np.testing.assert_allclose(np.stack([a1, a2]), expected[:2], rtol=1e-6)
    with pytest.raises(KeyError, match="object_state"):
        policy.reset()
        policy.act({"state": obs["state"]})


def test_rlpd_smoke_on_pendulum_with_demos_and_episode_callback():
    env = gym.make("Pendulum-v1", max_episode_steps=50)
    spaces = observation_spaces(env.observation_space)
    demos = ReplayBuffer(spaces, 1, 100)
    for _ in range(40):
        demos.add({"state": np.zeros(3)}, [0.0], 0.0, {"state": np.zeros(3)}, False)
    episodes = []
    result = train_online(env, small_sac(), total_steps=120, demos=demos, progress=False,
                          on_episode=lambda arrays, meta: episodes.append((arrays, meta)))
    assert result.updates == 100 and len(episodes) == 2
    torch.testing.assert_close(result.agent.encoder.vector_mean, torch.zeros(3))  # fitted on the demos
    torch.testing.assert_close(result.agent.encoder.vector_std, torch.full((3,), 0.01))
    assert episodes[0][0]["state"].shape == (50, 3) and episodes[0][0]["action"].shape == (50, 1)
    assert np.isfinite(evaluate(env, result.policy, episodes=1)["mean_return"])


def test_wsrl_warmup_runs_frozen_policy_without_updates():
    env = gym.make("Pendulum-v1", max_episode_steps=20)
    cfg = small_sac(algo="wsrl", warmup_steps=30, start_steps=0, offline_fraction=0.0)
    init = make_agent(cfg, {"state": (3,)}, 1)
    before = {k: v.clone() for k, v in init.state_dict().items()}
    result = train_online(env, cfg, total_steps=30, init_agent=init, progress=False)
    assert result.updates == 0
    assert all(torch.equal(before[k], v) for k, v in init.state_dict().items())
    result = train_online(env, cfg, total_steps=35, init_agent=init, progress=False)
    assert result.updates == 5


class PixelPointEnv(gym.Env):
    """A point on a 24×24 image moving toward the centre; Dict obs with a camera and a state vector."""

    observation_space = gym.spaces.Dict({"rgb_top": gym.spaces.Box(0, 255, (24, 24, 3), np.uint8),
                                          "state": gym.spaces.Box(-1, 1, (2,), np.float32)})
    action_space = gym.spaces.Box(-1, 1, (2,), np.float32)

    def _obs(self):
        img = np.zeros((24, 24, 3), np.uint8)
        y, x = ((self.pos + 1) * 11.5).astype(int)
        img[y, x] = 255
        return {"rgb_top": img, "state": self.pos.astype(np.float32)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos, self.t = self.np_random.uniform(-1, 1, 2), 0
        return self._obs(), {}

    def step(self, action):
        self.pos = np.clip(self.pos + 0.2 * np.asarray(action), -1, 1)
        self.t += 1
        success = bool(np.linalg.norm(self.pos) < 0.2)
        return self._obs(), float(success), success, self.t >= 10, {"success": success}


def test_pixel_observations_train_with_drq_cnn():
    cfg = small_sac(encoder=EncoderConfig(image_latent_dim=8), start_steps=5)
    result = train_online(PixelPointEnv(), cfg, total_steps=12, progress=False)
    assert result.updates == 7 and result.agent.encoder.image_keys == ["rgb_top"]
    assert result.policy.act(PixelPointEnv().reset(seed=0)[0]).shape == (2,)


@pytest.mark.slow
def test_sac_learns_pendulum():
    env = gym.make("Pendulum-v1")
    cfg = SACConfig(algo="sac", n_critics=10, hidden=(128, 128), utd=1, batch_size=128, start_steps=500,
                    target_entropy_per_dim=-1.0)
    result = train_online(env, cfg, total_steps=5000, progress=False)
    assert evaluate(gym.make("Pendulum-v1"), result.policy, episodes=5)["mean_return"] > -400


class EveryOtherStep:
    """An operator who takes over on every other step, pushing the pendulum with +1 N·m (env units)."""

    def __init__(self):
        self.reads = 0

    def read(self):
        from robolearn.interfaces import TeleopCommand

        self.reads += 1
        command = TeleopCommand(ee_delta=np.zeros(6), gripper_closed=0.0, intervene=self.reads % 2 == 0)
        command.action = lambda: np.array([1.0], np.float32)
        return command


def test_interventions_store_the_human_action_in_both_buffers_and_mark_episodes():
    from robolearn.learn.intervention import Intervention

    env = Intervention(gym.make("Pendulum-v1", max_episode_steps=20), EveryOtherStep())
    spaces = observation_spaces(env.observation_space)
    demos = ReplayBuffer(spaces, 1, 100)
    demos.add({"state": np.zeros(3)}, [0.0], 0.0, {"state": np.zeros(3)}, False)
    episodes = []
    result = train_online(env, small_sac(start_steps=1000), total_steps=20, demos=demos, progress=False,
                          on_episode=lambda arrays, meta: episodes.append(arrays))
    assert result.updates == 0 and env.interventions == 10
    marked = episodes[0]["intervention"]
    assert marked.tolist() == [False, True] * 10
    np.testing.assert_allclose(episodes[0]["action"][marked, 0], 0.5)  # +1 in [−2, 2] is 0.5 in [−1, 1]
    assert len(demos) == 11 and np.allclose(demos.action[1:11, 0], 0.5)


def test_action_scaler_round_trips_and_rejects_unbounded_spaces():
    from robolearn.learn.api import ActionScaler

    scale = ActionScaler(gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 10.0], np.float32)))
    np.testing.assert_allclose(scale(np.array([0.5, -1.0])), [1.0, 0.0])
    np.testing.assert_allclose(scale.inverse(scale(np.array([0.5, -0.2]))), [0.5, -0.2], atol=1e-6)
    with pytest.raises(ValueError, match="unbounded"):
        ActionScaler(gym.spaces.Box(-np.inf, np.inf, (2,)))


class PixelBoxEnv(gym.Env):
    """A bright square on a 16×16 RGB frame, moved by the action; the whole observation is the image
    (``(16, 16, 3)``, or ``(3, 16, 16)`` with ``channels_first``)."""

    action_space = gym.spaces.Box(-1, 1, (2,), np.float32)

    def __init__(self, channels_first=False):
        self.channels_first = channels_first
        shape = (3, 16, 16) if channels_first else (16, 16, 3)
        self.observation_space = gym.spaces.Box(0, 255, shape, np.uint8)

    def _obs(self):
        img = np.zeros((16, 16, 3), np.uint8)
        y, x = np.clip(((self.pos + 1) * 7).astype(int), 0, 14)
        img[y:y + 2, x:x + 2] = 255
        return np.moveaxis(img, -1, 0) if self.channels_first else img

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos, self.t = self.np_random.uniform(-1, 1, 2), 0
        return self._obs(), {}

    def step(self, action):
        self.pos = np.clip(self.pos + 0.3 * np.asarray(action), -1, 1)
        self.t += 1
        success = bool(np.abs(self.pos).max() < 0.3)
        return self._obs(), float(success), success, self.t >= 8, {"success": success}


@pytest.mark.parametrize("channels_first", [False, True])
def test_pixel_box_observation_trains_as_an_image(channels_first):
    from robolearn.learn.api import PIXEL_KEY, as_obs_dict

    env = PixelBoxEnv(channels_first)
    assert observation_spaces(env.observation_space) == {PIXEL_KEY: ((16, 16, 3), np.dtype(np.uint8))}
    obs = as_obs_dict(env.reset(seed=0)[0])
    assert list(obs) == ["rgb_obs"] and obs["rgb_obs"].shape == (16, 16, 3) and obs["rgb_obs"].max() == 255
    result = train_online(env, small_sac(encoder=EncoderConfig(image_latent_dim=8), start_steps=4), total_steps=10, progress=False)
    assert result.updates == 6 and result.agent.encoder.image_keys == ["rgb_obs"] and not result.agent.encoder.vector_keys
    assert 0.0 <= evaluate(PixelBoxEnv(channels_first), result.policy, episodes=1)["success_rate"] <= 1.0


def test_unsupported_pixel_observations_name_the_fix():
    from robolearn.learn.api import UnsupportedSpaceError

    unnamed = gym.spaces.Dict({"camera": gym.spaces.Box(0, 255, (8, 8, 3), np.uint8), "state": gym.spaces.Box(-1, 1, (2,))})
    with pytest.raises(UnsupportedSpaceError, match="rgb_camera"):
        observation_spaces(unnamed)
    with pytest.raises(UnsupportedSpaceError, match="channels last"):
        observation_spaces(gym.spaces.Dict({"rgb_top": gym.spaces.Box(0, 255, (3, 8, 8), np.uint8)}))
    with pytest.raises(UnsupportedSpaceError, match="uint8 .H, W, 3. or .3, H, W."):
        observation_spaces(gym.spaces.Box(0, 255, (8, 8), np.uint8))
    assert observation_spaces(gym.spaces.Box(-1, 1, (8, 8, 3), np.float32)) == {"state": ((8, 8, 3), np.dtype(np.float32))}


def test_diverging_update_raises_naming_the_loss():
    from robolearn.learn.losses import NonFiniteLossError

    buf = _filled(None)
    buf.reward[: len(buf)] = 3e38  # finite, but its squared TD error is not
    with pytest.raises(NonFiniteLossError, match="critic_loss is inf.*Lower the learning rates"):
        train_offline(small_sac(), buf, 1, {"state": (3,)}, 1, device="cpu", progress=False)


def test_damaged_or_mismatched_checkpoints_are_refused_naming_the_path(tmp_path):
    from robolearn.learn.checkpoint import CheckpointError

    cfg = small_sac()
    agent = make_agent(cfg, {"state": (3,)}, 1)
    ckpt = save_agent(tmp_path / "ckpt", agent, {"state": (3,)}, step=0)
    other = make_agent(small_sac(n_critics=2), {"state": (3,)}, 1)
    with pytest.raises(CheckpointError, match=r"ckpt .rlpd.*does not fit.*critic.layers.0.weight \(4, 4, 32\) vs \(2, 4, 32\)"):
        load_checkpoint(ckpt, other, other.optimizers())
    weights = (ckpt / "model.safetensors").read_bytes()
    (ckpt / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(CheckpointError, match=f"{ckpt}: model.safetensors is damaged.*delete"):
        load_checkpoint(ckpt, agent)
    (ckpt / "model.safetensors").write_bytes(weights)
    (ckpt / "config.json").write_text('{"algo": "rlpd", "step"')
    with pytest.raises(CheckpointError, match="config.json is damaged"):
        load_policy(ckpt)


@pytest.mark.slow
def test_compiled_agent_matches_eager_and_updates():
    from robolearn.learn.api import compile_agent

    torch.manual_seed(0)
    agent = make_agent(small_sac(n_critics=2, hidden=(16, 16)), {"state": (3,)}, 1)
    buf = _filled(None)
    batch = buf.sample(8)
    features = agent.encoder(batch["obs"])
    eager = agent.critic(features, batch["action"]).detach()
    compile_agent(agent)
    torch.testing.assert_close(agent.critic(features, batch["action"]).detach(), eager, rtol=1e-5, atol=1e-5)
    info = agent.update([buf.sample(8), buf.sample(8)])
    assert set(info) >= {"critic_loss", "actor_loss"} and all(np.isfinite(v) for v in info.values())
