"""Image encoders: trunks and heads, pretrained weights from local files (SERL's ResNet-10 through its
converter, torchvision's ResNet-18, CLIP and DINOv2 towers built here), and the embedding cache."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from robolearn.errors import DataError, UsageError
from robolearn.learn.observation import EncoderConfig, ObservationEncoder, embedding_key
from robolearn.learn.sac import SACAgent, SACConfig
from robolearn.learn.serl_weights import convert_serl_resnet10
from robolearn.learn.vision import (
    GroupNormResNet,
    KeypointsHead,
    TorchvisionResNet18,
    build_image_encoder,
    random_shift,
)

SHAPES = {"state": (5,), "rgb_front": (32, 32, 3), "rgb_wrist": (32, 32, 3)}


def images(batch: int = 2, side: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.as_tensor(np.random.default_rng(seed).integers(0, 256, (batch, side, side, 3), dtype=np.uint8))


def observation(batch: int = 2) -> dict[str, torch.Tensor]:
    return {"state": torch.randn(batch, 5), "rgb_front": images(batch, seed=1), "rgb_wrist": images(batch, seed=2)}


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


@pytest.mark.parametrize("trunk", ["cnn", "fast_cnn", "resnet10", "resnet18"])
@pytest.mark.parametrize("head", ["flatten", "spatial_embeddings", "keypoints", "avg"])
def test_every_trunk_and_head_fuse_with_state(trunk, head):
    enc = ObservationEncoder(SHAPES, EncoderConfig(image=trunk, head=head, image_latent_dim=8, proprio_latent_dim=4))
    out = enc(observation())
    assert out.shape == (2, 4 + 8 + 8) == (2, enc.out_dim) and torch.isfinite(out).all()


def test_frames_of_another_size_are_resized_to_the_trained_one():
    """A policy trained on a resized store (``robolearn data resize``) acts on the cell's native frames."""
    enc = ObservationEncoder(SHAPES, EncoderConfig(image="fast_cnn", image_latent_dim=8)).eval()
    small = observation()
    large = {**small, "rgb_front": torch.nn.functional.interpolate(
        small["rgb_front"].permute(0, 3, 1, 2).float(), scale_factor=4, mode="nearest").round().byte().permute(0, 2, 3, 1)}
    assert enc(large).shape == enc(small).shape
    with pytest.raises(ValueError, match="image_size_px must be at least 16"):
        EncoderConfig(image_size_px=8)


def test_keypoints_locate_a_bright_spot():
    head = KeypointsHead(32, (10, 10), 8)
    feature_map = torch.full((1, 32, 10, 10), -30.0)
    feature_map[:, :, 2, 7] = 30.0
    with torch.no_grad():
        head.to_maps.weight.copy_(torch.eye(32).view(32, 32, 1, 1)[: head.to_maps.out_channels])
        head.to_maps.bias.zero_()
    xy = head.keypoints(feature_map)[0, 0]
    torch.testing.assert_close(xy, torch.tensor([2 * 7 / 9 - 1, 2 * 2 / 9 - 1]), atol=1e-4, rtol=0)


def test_resnet_trunk_weights_load_from_a_local_file_and_freeze(tmp_path):
    torch.manual_seed(0)
    source = GroupNormResNet(10)
    path = tmp_path / "resnet10.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    encoder = build_image_encoder("resnet10", None, (64, 64), 16, weights=str(path))
    torch.testing.assert_close(encoder.trunk.stages[0].conv1.weight, source.stages[0].conv1.weight)
    assert encoder.freeze_trunk and not any(p.requires_grad for p in encoder.trunk.parameters())
    assert all(p.requires_grad for p in encoder.head.parameters())
    encoder.train()
    assert not encoder.trunk.training and encoder.head.training
    deeper = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in GroupNormResNet(18).state_dict().items()}, str(deeper))
    with pytest.raises(UsageError, match="does not fit the GroupNormResNet trunk"):
        build_image_encoder("resnet10", None, (64, 64), 16, weights=str(deeper))


def test_resnet_uses_same_padding_as_flax():
    """Flax's ``SAME`` pads a stride-2 3×3 convolution by (0, 1), not PyTorch's (1, 1): a 4×4 input of
    ones convolved with a kernel that reads only its top-left tap sees the image, never the pad."""
    from robolearn.learn.vision import SameConv

    conv = SameConv(1, 1, 3, stride=2)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 0, 0] = 1.0
    out = conv(torch.ones(1, 1, 4, 4))
    assert out.shape == (1, 1, 2, 2) and torch.equal(out, torch.ones(1, 1, 2, 2))


def serl_tree(seed: int = 0) -> dict:
    """A parameter tree with the names and shapes of SERL's published resnet10_params.pkl."""
    rng = np.random.default_rng(seed)

    def arr(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    def norm(ch):
        return {"scale": arr(ch), "bias": arr(ch)}

    tree = {"conv_init": {"kernel": arr(7, 7, 3, 64)}, "norm_init": norm(64),
            "output_head": {"kernel": arr(512, 1000), "bias": arr(1000)}}
    in_ch = 64
    for i, ch in enumerate((64, 128, 256, 512)):
        block = {"Conv_0": {"kernel": arr(3, 3, in_ch, ch)}, "MyGroupNorm_0": norm(ch),
                 "Conv_1": {"kernel": arr(3, 3, ch, ch)}, "MyGroupNorm_1": norm(ch)}
        if in_ch != ch:
            block.update({"conv_proj": {"kernel": arr(1, 1, in_ch, ch)}, "norm_proj": norm(ch)})
        tree[f"ResNetBlock_{i}"] = block
        in_ch = ch
    return tree


def test_serl_converter_maps_every_tensor_of_the_published_tree(tmp_path):
    tree = serl_tree()
    pkl = tmp_path / "resnet10_params.pkl"
    pkl.write_bytes(pickle.dumps(tree))
    report = convert_serl_resnet10(pkl, tmp_path / "resnet10.safetensors")
    assert report["parameters"] == 4_905_792 and report["tensors"] == 36  # SERL's backbone: 36 leaves
    assert report["skipped"] == ["output_head/kernel", "output_head/bias"]
    weights = load_file(str(tmp_path / "resnet10.safetensors"))
    np.testing.assert_array_equal(weights["stem.0.weight"].numpy(), tree["conv_init"]["kernel"].transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(weights["stages.2.down.0.weight"].numpy(),
                                  tree["ResNetBlock_2"]["conv_proj"]["kernel"].transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(weights["stages.3.bn2.bias"].numpy(), tree["ResNetBlock_3"]["MyGroupNorm_1"]["bias"])
    trunk = GroupNormResNet(10)
    trunk.load_state_dict(weights)  # strict: every tensor of the trunk, nothing else
    assert trunk(torch.rand(1, 3, 128, 128)).shape == (1, 512, 4, 4)


class _Payload:
    def __reduce__(self):
        return (print, ("this pickle ran code",))


def test_serl_converter_refuses_anything_but_arrays_and_dicts(tmp_path, capsys):
    bad = tmp_path / "evil.pkl"
    bad.write_bytes(pickle.dumps({"conv_init": {"kernel": _Payload()}}))
    with pytest.raises(DataError, match="builtins.print, which is neither a numpy array nor a dict"):
        convert_serl_resnet10(bad, tmp_path / "out.safetensors")
    assert "ran code" not in capsys.readouterr().out
    tree = serl_tree()
    del tree["ResNetBlock_3"]
    incomplete = tmp_path / "incomplete.pkl"
    incomplete.write_bytes(pickle.dumps(tree))
    with pytest.raises(DataError, match="lacks 9 ResNet-10 tensors"):
        convert_serl_resnet10(incomplete, tmp_path / "out.safetensors")


def test_torchvision_resnet18_state_dict_loads_by_name_and_keeps_batchnorm_statistics(tmp_path):
    torch.manual_seed(0)
    source = TorchvisionResNet18()
    state = {k: v.clone() for k, v in source.state_dict().items()}
    state["bn1.running_mean"] += 0.5
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, 512), torch.randn(1000)  # torchvision's classifier
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(state, path)
    encoder = build_image_encoder("torchvision_resnet18", None, (64, 64), 16, weights=str(path))
    torch.testing.assert_close(encoder.trunk.bn1.running_mean, state["bn1.running_mean"])
    encoder.train()
    encoder(torch.rand(4, 3, 64, 64))
    torch.testing.assert_close(encoder.trunk.bn1.running_mean, state["bn1.running_mean"])  # frozen statistics
    with pytest.raises(UsageError, match="set encoder.weights"):
        build_image_encoder("torchvision_resnet18", None, (64, 64), 16)


def test_clip_and_dinov2_towers_load_from_save_pretrained_directories(tmp_path):
    import transformers

    from robolearn.reward.encoders import save_tiny_clip

    clip = save_tiny_clip(tmp_path / "clip", image_size_px=32, patch_size_px=8, width=32)
    dinov2 = tmp_path / "dinov2"
    transformers.Dinov2Model(transformers.Dinov2Config(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1,
                                                       num_attention_heads=2, intermediate_size=64)).save_pretrained(dinov2)
    for kind, path in (("clip", clip), ("dinov2", dinov2)):
        encoder = build_image_encoder(kind, None, (48, 48), 8, weights=str(path))
        assert encoder.freeze_trunk
        assert encoder(torch.rand(2, 3, 48, 48)).shape == (2, 8)
        assert encoder.trunk(torch.rand(1, 3, 48, 48)).shape == (1, 32, 4, 4)


def sac(cache: bool, crops: int = 0, augment: bool = False) -> SACAgent:
    torch.manual_seed(0)
    cfg = SACConfig(n_critics=3, hidden=(32, 32), encoder=EncoderConfig(
        image="fast_cnn", image_latent_dim=8, cache=cache, cached_crops=crops, augment=augment))
    return SACAgent(cfg, SHAPES, 3)


def test_cached_embeddings_give_the_q_values_of_encoding_on_the_fly():
    on_the_fly, cached = sac(cache=False), sac(cache=True)
    cached.load_state_dict(on_the_fly.state_dict())
    obs, action = observation(4), torch.rand(4, 3) * 2 - 1
    embedded = cached.encoder.embed(obs)
    assert set(embedded) == {"state", "emb_front", "emb_wrist"} and embedded["emb_front"].shape == (4, 1, 8)
    for agent in (on_the_fly, cached):
        agent.eval()
    q_raw = on_the_fly.critic(on_the_fly.encoder(obs), action)
    torch.testing.assert_close(cached.critic(cached.encoder(embedded), action), q_raw)
    torch.testing.assert_close(cached.critic(cached.encoder(obs), action), q_raw)  # raw frames still work


def test_the_cache_keeps_shifted_views_and_training_samples_among_them():
    agent = sac(cache=True, crops=3, augment=True)
    embedded = agent.encoder.embed(observation(16))
    views = embedded[embedding_key("rgb_front")]
    assert views.shape == (16, 4, 8) and not torch.equal(views[:, 0], views[:, 1])
    agent.encoder.eval()
    torch.testing.assert_close(agent.encoder.camera_features("rgb_front", embedded), views[:, 0])
    agent.encoder.train()
    torch.manual_seed(1)
    chosen = agent.encoder.camera_features("rgb_front", embedded)
    picked = [int(torch.nonzero((views[i] == chosen[i]).all(-1))[0]) for i in range(16)]
    assert len(set(picked)) > 1, "training draws a random view per sample"


def test_a_cached_encoder_is_frozen_and_stays_in_eval_mode():
    agent = sac(cache=True, augment=True)
    agent.train()
    assert not agent.encoder.cameras.training
    assert not any(p.requires_grad for p in agent.encoder.cameras.parameters())
    with pytest.raises(UsageError, match="no rgb_"):
        from robolearn.learn.agents import make_agent

        make_agent(SACConfig(encoder=EncoderConfig(cache=True)), {"state": (5,)}, 3)
