import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from robolearn.learn.buffer import MixedBuffer, ReplayBuffer
from robolearn.learn.models import (
    CriticEnsemble,
    GaussianTanhActor,
    LoopCriticEnsemble,
    ObservationEncoder,
    ResNetEncoder,
    random_shift,
)


def copy_into_loop(batched: CriticEnsemble, loop: LoopCriticEnsemble) -> None:
    with torch.no_grad():
        for i, critic in enumerate(loop.critics):
            linears = [m for m in critic if isinstance(m, torch.nn.Linear)]
            for lin, layer in zip(linears, [*batched.layers, batched.out]):
                lin.weight.copy_(layer.weight[i].T)
                lin.bias.copy_(layer.bias[i, 0])


def test_batched_ensemble_matches_python_loop_and_member_subset():
    torch.manual_seed(0)
    batched, loop = CriticEnsemble(6, 2, n=5, hidden=(16, 16)), LoopCriticEnsemble(6, 2, n=5, hidden=(16, 16))
    copy_into_loop(batched, loop)
    f, a = torch.randn(4, 6), torch.randn(4, 2)
    q = batched(f, a)
    assert q.shape == (5, 4)
    torch.testing.assert_close(q, loop(f, a))
    members = torch.tensor([3, 1])
    torch.testing.assert_close(batched(f, a, members), q[members])


def test_actor_samples_in_bounds_and_log_prob_matches_sample():
    torch.manual_seed(0)
    actor = GaussianTanhActor(5, 3, (32, 32))
    feats = torch.randn(64, 5)
    action, log_prob = actor.sample(feats)
    assert action.abs().max() < 1.0 and log_prob.shape == (64,)
    torch.testing.assert_close(actor.log_prob(feats, action), log_prob, atol=2e-3, rtol=1e-3)


def test_random_shift_moves_content_by_at_most_pad():
    torch.manual_seed(0)
    img = torch.zeros(8, 1, 16, 16)
    img[:, :, 8, 8] = 1.0
    out = random_shift(img, pad_px=2)
    assert out.shape == img.shape
    for k in range(8):
        y, x = divmod(int(out[k, 0].argmax()), 16)
        assert abs(y - 8) <= 2 and abs(x - 8) <= 2
        assert out[k, 0].max().item() == pytest.approx(1.0, abs=1e-5)


def test_encoder_fuses_two_cameras_and_state():
    enc = ObservationEncoder({"state": (15,), "rgb_front": (32, 32, 3), "rgb_wrist": (32, 32, 3)},
                             image_latent_dim=8, proprio_latent_dim=16)
    out = enc({"state": torch.zeros(2, 15), "rgb_front": torch.zeros(2, 32, 32, 3, dtype=torch.uint8),
               "rgb_wrist": torch.full((2, 32, 32, 3), 255, dtype=torch.uint8)})
    assert out.shape == (2, 16 + 8 + 8) == (2, enc.out_dim)


def test_resnet_weights_load_from_local_file_and_freeze(tmp_path):
    torch.manual_seed(0)
    source = ResNetEncoder(10, (64, 64), 32)
    path = tmp_path / "resnet10.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    loaded = ResNetEncoder(10, (64, 64), 32, weights_path=path, freeze=True)
    x = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(loaded(x), source(x))
    assert not any(p.requires_grad for p in loaded.stem.parameters())
    assert ResNetEncoder(18, (64, 64), 32)(x).shape == (2, 32)


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
    truncated = {**ep, "terminated": np.zeros(4, bool), "reward": np.zeros(4, np.float32)}
    assert buf.add_episode(truncated, gamma=0.5, r_neg=-1.0) == 3
    assert buf.mc_return[4] == pytest.approx(-2.0)


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
