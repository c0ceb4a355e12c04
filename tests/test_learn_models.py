import numpy as np
import pytest
import torch

from robolearn.learn.buffer import NO_FLOOR, BadTransitionError, MixedBuffer, ReplayBuffer
from robolearn.learn.models import CriticEnsemble, GaussianTanhActor, LoopCriticEnsemble
from robolearn.learn.observation import ObservationEncoder


def copy_into_loop(batched: CriticEnsemble, loop: LoopCriticEnsemble) -> None:
    with torch.no_grad():
        for i, critic in enumerate(loop.critics):
            linears = [m for m in critic if isinstance(m, torch.nn.Linear)]
            for lin, layer in zip(linears, [*batched.layers, batched.out]):
                lin.weight.copy_(layer.weight[i].T)
                lin.bias.copy_(layer.bias[i, 0])
            norms = [m for m in critic if isinstance(m, torch.nn.LayerNorm)]
            for ln, norm in zip(norms, batched.norms):
                ln.weight.copy_(norm.weight[i, 0])
                ln.bias.copy_(norm.bias[i, 0])


def test_batched_ensemble_matches_python_loop_and_member_subset():
    torch.manual_seed(0)
    batched, loop = CriticEnsemble(6, 2, n=5, hidden=(16, 16)), LoopCriticEnsemble(6, 2, n=5, hidden=(16, 16))
    with torch.no_grad():
        for norm in batched.norms:  # distinct LayerNorm scales and offsets per member
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    copy_into_loop(batched, loop)
    f, a = torch.randn(4, 6), torch.randn(4, 2)
    q = batched(f, a)
    assert q.shape == (5, 4)
    torch.testing.assert_close(q, loop(f, a))
    members = torch.tensor([3, 1])
    torch.testing.assert_close(batched(f, a, members), q[members])
    q.sum().backward()
    grads = [p.grad for p in batched.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert len(list(batched.parameters())) == 2 * 3 + 2 * 2  # one tensor per layer for all critics: no loop


def test_ensemble_under_bf16_autocast_returns_float32_q_close_to_fp32():
    torch.manual_seed(0)
    critic, actor = CriticEnsemble(6, 2, n=3, hidden=(32, 32)), GaussianTanhActor(6, 2, (32, 32))
    f, a = torch.randn(8, 6), torch.rand(8, 2) * 2 - 1
    reference = critic(f, a)
    with torch.autocast("cpu", torch.bfloat16):
        q = critic(f, a)
        mean, log_std = actor(f)
    assert q.dtype == mean.dtype == log_std.dtype == torch.float32
    torch.testing.assert_close(q, reference, atol=0.05, rtol=0.05)


def test_actor_samples_in_bounds_and_log_prob_matches_sample():
    torch.manual_seed(0)
    actor = GaussianTanhActor(5, 3, (32, 32))
    feats = torch.randn(64, 5)
    action, log_prob = actor.sample(feats)
    assert action.abs().max() < 1.0 and log_prob.shape == (64,)
    torch.testing.assert_close(actor.log_prob(feats, action), log_prob, atol=2e-3, rtol=1e-3)


def _buffer(capacity=100, chunk=1):
    return ReplayBuffer({"state": ((2,), np.float32)}, 1, capacity, chunk=chunk)


def test_add_episode_builds_transitions_chunks_and_return_to_go():
    buf = _buffer(chunk=3)
    ep = {"state": np.arange(8, dtype=np.float32).reshape(4, 2), "action": np.array([[0.1], [0.2], [0.3], [0.4]], np.float32),
          "reward": np.array([0, 0, 0, 1], np.float32), "terminated": np.array([0, 0, 0, 1], bool)}
    assert buf.add_episode(ep, gamma=0.5) == 4
    assert buf.next_obs["state"][0].tolist() == [2.0, 3.0]
    assert buf.mc_return[:4].tolist() == pytest.approx([0.125, 0.25, 0.5, 1.0])
    assert buf.action_chunk[2, :, 0].tolist() == pytest.approx([0.3, 0.4, 0.4])
    assert buf.chunk_mask[2].tolist() == [1.0, 1.0, 0.0]
    failed = {**ep, "terminated": np.zeros(4, bool), "reward": np.full(4, -1.0, np.float32)}
    assert buf.add_episode(failed, gamma=0.5, r_neg=-1.0) == 3
    assert buf.mc_return[4:7].tolist() == pytest.approx([-2.0, -2.0, -2.0])  # r_neg / (1 − γ)
    no_reward = {k: v for k, v in ep.items() if k != "reward"}  # e.g. a LeRobot import: enough for BC
    assert buf.add_episode(no_reward, gamma=0.5) == 4
    assert buf.reward[7:11].tolist() == [0.0] * 4 and (buf.mc_return[7:11] == NO_FLOOR).all()


def test_non_finite_values_are_refused_naming_the_step_and_key():
    buf = _buffer()
    ep = {"state": np.zeros((3, 2), np.float32), "action": np.zeros((3, 1), np.float32),
          "reward": np.array([0.0, np.nan, 0.0], np.float32), "terminated": np.array([0, 0, 1], bool)}
    with pytest.raises(BadTransitionError, match="episode step 1: reward is nan"):
        buf.add_episode(ep, gamma=0.9)
    ep["reward"][1], ep["state"][2, 1] = 0.0, np.inf
    with pytest.raises(BadTransitionError, match=r"episode step 2: state\[1\] is inf"):
        buf.add_episode(ep, gamma=0.9)
    s = {"state": np.zeros(2)}
    with pytest.raises(BadTransitionError, match=r"action\[0\] is nan"):
        buf.add(s, [np.nan], 0.0, s, False)
    with pytest.raises(BadTransitionError, match=r"next_obs.state\[1\] is -inf"):
        buf.add(s, [0.0], 0.0, {"state": np.array([0.0, -np.inf])}, False)
    assert len(buf) == 0  # nothing half-written


def test_mixed_buffer_samples_half_demo_and_interventions_reach_both():
    demo, online = _buffer(), _buffer()
    for _ in range(10):
        demo.add({"state": np.ones(2)}, [1.0], 0.0, {"state": np.ones(2)}, False)
    mixed = MixedBuffer(demo, online, 0.5)
    mixed.add({"state": np.zeros(2)}, [-1.0], 0.0, {"state": np.zeros(2)}, False)
    mixed.add({"state": np.zeros(2)}, [0.5], 0.0, {"state": np.zeros(2)}, False, intervention=True)
    assert len(online) == 2 and len(demo) == 11
    batch = mixed.sample(64)
    assert (batch["action"][:32] >= 0.5).all() and (batch["action"][32:] <= 0.5).all()
    with pytest.raises(ValueError, match="empty"):
        _buffer().sample(4)


def test_episode_end_writes_return_to_go_into_online_and_demo_buffers():
    demo, online = _buffer(), _buffer()
    mixed = MixedBuffer(demo, online, 0.5, gamma=0.5, r_neg=-1.0)
    s = {"state": np.zeros(2)}
    for t, reward in enumerate([-1.0, -1.0, 1.0]):
        mixed.add(s, [0.0], reward, s, t == 2, intervention=t == 1, episode="a")
    mixed.add(s, [0.0], -1.0, s, False, episode="b")  # another actor's episode, still open
    assert (online.mc_return[:4] == NO_FLOOR).all() and demo.mc_return[0] == NO_FLOOR  # unknown yet: no floor
    mixed.end_episode("a")
    # −1 + 0.5·(−1 + 0.5·1) = −1.25, −1 + 0.5·1 = −0.5, 1
    assert online.mc_return[:3].tolist() == pytest.approx([-1.25, -0.5, 1.0])
    assert demo.mc_return[0] == pytest.approx(-0.5)  # the intervened step, in the demo buffer too
    assert online.mc_return[3] == NO_FLOOR
    mixed.add(s, [0.0], -1.0, s, False, episode="b")
    mixed.end_episode("b")  # every reward r_neg: r_neg / (1 − γ)
    assert online.mc_return[3:5].tolist() == pytest.approx([-2.0, -2.0])


def test_open_episodes_survive_a_checkpoint_and_a_dropped_step_leaves_its_episode_unfloored():
    s = {"state": np.zeros(2)}
    mixed = MixedBuffer(_buffer(), _buffer(), 0.5, gamma=0.5, r_neg=None)
    mixed.add(s, [0.0], 1.0, s, False, intervention=True, episode="a")
    mixed.add(s, [0.0], 2.0, s, False, episode="a")
    saved = (mixed.online.state_dict(), mixed.demo.state_dict(), mixed.open_episodes())
    restored = MixedBuffer(_buffer(), _buffer(), 0.5, gamma=0.5, r_neg=None)
    restored.online.load_state_dict(saved[0])
    restored.demo.load_state_dict(saved[1])
    restored.load_open_episodes(saved[2])
    restored.add(s, [0.0], 4.0, s, True, episode="a")
    restored.end_episode("a")
    # 1 + 0.5·(2 + 0.5·4) = 3, 2 + 0.5·4 = 4, 4
    assert restored.online.mc_return[:3].tolist() == pytest.approx([3.0, 4.0, 4.0])
    assert restored.demo.mc_return[0] == pytest.approx(3.0)
    restored.add(s, [0.0], 1.0, s, False, episode="b")
    restored.abandon_episode("b")  # a later step of "b" was dropped: its return-to-go is unknown
    restored.add(s, [0.0], 3.0, s, True, episode="b")
    restored.end_episode("b")
    assert restored.online.mc_return[3] == NO_FLOOR and restored.online.mc_return[4] == pytest.approx(3.0)


def test_vector_observations_are_standardized_with_the_fitted_statistics():
    enc = ObservationEncoder({"a": (2,), "b": (1,)})
    obs = {"a": torch.tensor([[1.0, 5.0], [3.0, 5.0]]), "b": torch.tensor([[0.0], [4.0]])}
    torch.testing.assert_close(enc(obs), torch.cat([obs["a"], obs["b"]], -1))  # identity until fitted
    enc.set_normalization(torch.cat([obs["a"], obs["b"]], -1))
    # means [2, 5, 2], stds [1, 0 → floor 0.01, 2]
    torch.testing.assert_close(enc(obs), torch.tensor([[-1.0, 0.0, -1.0], [1.0, 0.0, 1.0]]))
    far = enc({"a": torch.tensor([[2.0, 6.0]]), "b": torch.tensor([[2.0]])})
    assert far[0, 1].item() == 10.0  # 100 std away, clipped
    assert {"vector_mean", "vector_std"} <= set(enc.state_dict())
