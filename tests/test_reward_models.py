"""Encoders, CLIP similarity (VLM-RM), Bradley–Terry preferences, and the reward registry.

Backbones are tiny randomly initialized CLIP/SigLIP models built and saved in tmp_path, then
loaded through ``load_encoder`` exactly as downloaded weights are."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from robolearn.config import ConfigError
from robolearn.reward import load_reward_model, parse_reward_spec
from robolearn.reward.clip_similarity import ClipSimilarityReward, projection_matrix, vlm_rm_reward
from robolearn.reward.encoders import EncoderLoadError, load_encoder, save_tiny_clip
from robolearn.reward.preference import (
    PreferenceTrainConfig,
    bradley_terry_loss,
    save_preference_reward,
    train_preference_reward,
)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("backbone") / "tiny-clip")


def test_load_encoder_from_directory(tiny_clip):
    encoder = load_encoder(tiny_clip, with_text=True)
    images = np.random.default_rng(0).integers(0, 256, (3, 96, 80, 3), dtype=np.uint8)
    embeddings = encoder.encode_images(images)
    assert embeddings.shape == (3, encoder.embed_dim)
    assert torch.allclose(embeddings.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert encoder.encode_spatial(images, 2).shape == (3, encoder.spatial_dim(2))
    assert torch.allclose(encoder.encode_spatial(images, 0), embeddings, atol=1e-5)
    text = encoder.encode_text(["the cube is lifted", "a robot arm on a table"])
    assert text.shape == (2, encoder.embed_dim) and not torch.allclose(text[0], text[1])
    assert not any(p.requires_grad for p in encoder.parameters())


def test_load_siglip_directory(tmp_path):
    import transformers

    config = transformers.SiglipConfig(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, vocab_size=50),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8),
    )
    transformers.SiglipModel(config).save_pretrained(tmp_path / "siglip")
    encoder = load_encoder(tmp_path / "siglip")
    assert encoder.mean.flatten().tolist() == [0.5, 0.5, 0.5]
    assert encoder.encode_spatial(np.zeros((2, 40, 40, 3), np.uint8), 2).shape == (2, 32 + 4 * 32)


def test_encoder_errors_name_the_fix(tmp_path):
    with pytest.raises(EncoderLoadError, match="no such directory"):
        load_encoder(tmp_path / "missing")
    import transformers

    bert = transformers.BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                   vocab_size=30)
    transformers.BertModel(bert).save_pretrained(tmp_path / "bert")
    with pytest.raises(EncoderLoadError, match="is a 'bert' model; supported: clip, siglip"):
        load_encoder(tmp_path / "bert")


def test_vlm_rm_projection_and_reward():
    goal, baseline = F.normalize(torch.tensor([1.0, 1.0, 0.0]), dim=0), torch.tensor([0.0, 1.0, 0.0])
    direction = goal - baseline
    P = projection_matrix(goal, baseline, 0.5)
    assert torch.allclose(P @ direction, direction)
    orthogonal = torch.tensor([0.0, 0.0, 1.0])
    assert torch.allclose(P @ orthogonal, 0.5 * orthogonal)
    x = torch.stack([goal, baseline, orthogonal])
    assert vlm_rm_reward(x[:1], goal, P).item() == pytest.approx(1.0)
    plain = vlm_rm_reward(x, goal, projection_matrix(goal, baseline, 0.0))
    assert torch.allclose(plain, 1 - 0.5 * (x - goal).pow(2).sum(-1))
    only_direction = vlm_rm_reward(torch.stack([orthogonal, goal]), goal, projection_matrix(goal, baseline, 1.0))
    assert only_direction[0] == pytest.approx(1 - 0.5 * (goal @ direction / direction.norm()).item() ** 2, abs=1e-6)


def test_clip_reward_from_yaml(tiny_clip, tmp_path):
    spec = tmp_path / "clip.yaml"
    settings = {"backbone": str(tiny_clip), "goal_prompts": ["the cube is lifted"],
                "baseline_prompts": ["a robot arm on a table"], "camera": "front", "alpha": 0.5}
    spec.write_text(json.dumps(settings))
    with pytest.raises(ConfigError, match="success_reward: not set.*robolearn reward calibrate"):
        load_reward_model(f"clip:{spec}")
    spec.write_text(json.dumps({**settings, "success_reward": 0.2}))
    model = load_reward_model(f"clip:{spec}")
    assert isinstance(model, ClipSimilarityReward)
    reward, prob = model({"rgb_front": np.full((64, 64, 3), 128, np.uint8)})
    assert -1.0 <= reward <= 1.0 and 0.0 <= prob <= 1.0
    spec.write_text(json.dumps({"backbone": str(tiny_clip), "goal_prompts": ["lifted"], "alpha": 2.0}))
    with pytest.raises(ConfigError, match="alpha must be in"):
        load_reward_model(f"clip:{spec}")


def ranked_frames(n: int) -> np.ndarray:
    """Frame k shows a bar of length proportional to k: the known ranking is the index."""
    frames = np.full((n, 64, 64, 3), 230, np.uint8)
    for k in range(n):
        frames[k, 40:48, 4:4 + 3 * (k + 1)] = (30, 30, 200)
    return frames


def noisy_preferences(n_frames: int, n_pairs: int, flip: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of distinct frames labeled by the known ranking (1: the second is preferred), with a
    ``flip`` fraction of the labels flipped at random."""
    rng = np.random.default_rng(seed)
    pairs = np.stack([rng.choice(n_frames, 2, replace=False) for _ in range(n_pairs)])
    labels = (pairs[:, 1] > pairs[:, 0]).astype(np.int64)
    flipped = rng.random(n_pairs) < flip
    labels[flipped] = 1 - labels[flipped]
    return pairs, labels


def test_bradley_terry_recovers_ranking_from_noisy_preferences(tiny_clip, tmp_path):
    frames = ranked_frames(20)
    pairs, labels = noisy_preferences(20, 600, flip=0.2)
    config = PreferenceTrainConfig(backbone=str(tiny_clip), hidden=64, steps=600)
    model = train_preference_reward({"front": frames}, pairs, labels, config)
    rewards, probs = model.score_batch({"front": frames})
    rank_correlation = np.corrcoef(np.argsort(np.argsort(rewards)), np.arange(20))[0, 1]
    assert rank_correlation > 0.9
    assert probs[-3:].mean() > probs[:3].mean()
    save_preference_reward(model, tmp_path / "pref")
    reloaded = load_reward_model(str(tmp_path / "pref"))
    assert reloaded({"rgb_front": frames[19]})[0] == pytest.approx(float(rewards[19]), abs=1e-4)
    with pytest.raises(ValueError, match="must be 0 or 1"):
        train_preference_reward({"front": frames}, pairs, np.full(len(pairs), -1), config)


def test_preference_threshold_is_calibrated_on_labeled_frames(tiny_clip, tmp_path):
    """success_prob ranks progress; which value means success is measured on the store's labeled
    frames (the last 5 of 20 here), kept in the checkpoint, and can be overridden in a YAML."""
    from robolearn.reward.data import LabeledFrames
    from robolearn.reward.preference import calibrate_preference_threshold

    frames = ranked_frames(20)
    pairs, labels = noisy_preferences(20, 600, flip=0.1)
    model = train_preference_reward({"front": frames}, pairs, labels,
                                    PreferenceTrainConfig(backbone=str(tiny_clip), hidden=64, steps=600))
    assert model.threshold == 0.5
    index = np.arange(20)
    single_class = LabeledFrames({"front": frames}, index < 0, index * 0, index)
    report = calibrate_preference_threshold(model, single_class, 0.0)
    assert model.threshold == 0.5 and report["threshold_source"].startswith("uncalibrated")
    success = index >= 15
    report = calibrate_preference_threshold(model, LabeledFrames({"front": frames}, success, index * 0, index), 0.0)
    _, probs = model.score_batch({"front": frames})
    assert report["calibration_false_positive_rate"] == 0.0 and model.threshold == report["threshold"]
    assert probs[~success].max() < model.threshold <= max(0.5, float(np.nextafter(probs[~success].max(), 1.0))) + 1e-6
    save_preference_reward(model, tmp_path / "pref")
    assert load_reward_model(str(tmp_path / "pref")).threshold == pytest.approx(model.threshold)
    (tmp_path / "pref.yaml").write_text(f"type: preference\ncheckpoint: {tmp_path / 'pref'}\nthreshold: 0.9\n")
    assert load_reward_model(str(tmp_path / "pref.yaml")).threshold == 0.9


def labeled_store(path, frames: np.ndarray, success_from: list[int | None]):
    """One episode per entry: all ``frames``, per-step success marks from step ``success_from`` on
    (None: never), so frames after it are labeled success."""
    from robolearn.store import DemoStore

    store = DemoStore.create(path)
    n = len(frames)
    for start in success_from:
        success = np.zeros(n, bool) if start is None else np.arange(n) >= start
        store.append_episode({"rgb_front": frames, "action": np.zeros((n, 7), np.float32), "success": success},
                             {"task": "t", "success": bool(success.any()), "source": "teleop"})
    return store


def test_calibrate_cli_measures_the_clip_success_reward(tiny_clip, tmp_path, capsys):
    """``robolearn reward calibrate`` on a CLIP YAML without success_reward reports the lowest reward R
    with no false positive on the labeled frames; with it set, ``reward eval`` agrees."""
    from robolearn.cli import main
    from robolearn.reward.base import parse_reward_spec
    from robolearn.reward.metrics import evaluate_on_store

    frames = ranked_frames(12)
    store = labeled_store(tmp_path / "s.zarr", frames, [7, None])
    settings = {"backbone": str(tiny_clip), "goal_prompts": ["a long blue bar"], "camera": "front"}
    (tmp_path / "clip.yaml").write_text(json.dumps(settings))
    assert main(["reward", "calibrate", "--reward", f"clip:{tmp_path / 'clip.yaml'}", "--store", str(tmp_path / "s.zarr"),
                 "--target-fpr", "0", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["setting"] == "success_reward" and result["false_positive_rate"] == 0.0
    assert result["n_positive"] == 4 and result["n_negative"] == 20 and "success_reward:" in result["hint"]
    config = parse_reward_spec(f"clip:{tmp_path / 'clip.yaml'}")
    config.success_reward = 0.0
    stored = store.episode(0)["rgb_front"]  # JPEG round trip: what the calibration scored
    rewards, _ = config.create().score_batch({"front": stored})
    negatives = np.concatenate([rewards[:8], rewards])  # episode 0: frames 0-7 negative; episode 1: all
    assert result["value"] == pytest.approx(float(np.nextafter(np.float32(negatives.max()), np.float32(np.inf))))
    (tmp_path / "clip.yaml").write_text(json.dumps({**settings, "success_reward": result["value"]}))
    metrics = evaluate_on_store(load_reward_model(f"clip:{tmp_path / 'clip.yaml'}"), store)
    assert metrics["false_positive_rate"] == 0.0 and metrics["accuracy"] == pytest.approx(result["accuracy"])
    labeled_store(tmp_path / "one_class.zarr", frames, [None])
    assert main(["reward", "calibrate", "--reward", f"clip:{tmp_path / 'clip.yaml'}",
                 "--store", str(tmp_path / "one_class.zarr")]) == 2
    assert "needs success and non-success frames" in capsys.readouterr().err


def test_relabeling_with_a_graded_reward_warns_about_the_unseen_last_observation(tiny_clip, tmp_path, capsys):
    from robolearn.cli import main
    from robolearn.store import DemoStore

    store = labeled_store(tmp_path / "s.zarr", ranked_frames(6), [5, None])
    frames = store.episode(0)["rgb_front"]
    (tmp_path / "clip.yaml").write_text(json.dumps({"backbone": str(tiny_clip), "goal_prompts": ["a long bar"],
                                                    "camera": "front", "success_reward": 0.0}))
    assert main(["reward", "relabel", "--reward", f"clip:{tmp_path / 'clip.yaml'}", "--store", str(tmp_path / "s.zarr"),
                 "--out", str(tmp_path / "out.zarr"), "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out.strip().splitlines()[-1])
    assert result["last_step_from"] == {"last_frame": 2} and "warning: 2 episodes" in captured.err
    rewards, _ = load_reward_model(f"clip:{tmp_path / 'clip.yaml'}").score_batch({"front": frames})
    relabeled = DemoStore.open(tmp_path / "out.zarr").episode(0)["reward"]
    np.testing.assert_allclose(relabeled, np.append(rewards[1:], rewards[-1]), rtol=1e-5)


def test_bradley_terry_loss_matches_definition():
    r0, r1 = torch.tensor([[0.0, 2.0]]), torch.tensor([[1.0, 0.0]])
    loss = bradley_terry_loss(r0, r1, torch.tensor([[1, 0]]))
    p_first = np.exp(1.0) / (np.exp(0.0) + np.exp(1.0))
    p_second = np.exp(2.0) / (np.exp(2.0) + np.exp(0.0))
    assert loss.item() == pytest.approx(-(np.log(p_first) + np.log(p_second)) / 2, rel=1e-5)


def test_reward_specs():
    assert parse_reward_spec("oracle").type == "oracle"
    assert parse_reward_spec("classifier:/ckpt").checkpoint == "/ckpt"
    with pytest.raises(ConfigError, match="not a reward spec"):
        parse_reward_spec("classifer:/ckpt")
    with pytest.raises(ConfigError, match="needs env"):
        load_reward_model("oracle")
    with pytest.raises(ConfigError, match="missing: a reward checkpoint"):
        load_reward_model("classifier:/nonexistent/ckpt")


def test_oracle_reads_twin_ground_truth():
    from robolearn.env import make_env

    env = make_env(task="reach", seed=0, cameras=False)
    oracle = load_reward_model("oracle", env=env)
    obs, _ = env.reset(seed=0)
    goal = obs["object_state"][7:10]
    assert oracle(obs) == (0.0, 0.0)
    for _ in range(60):
        delta = (goal - obs["state"][7:10]) / env.cell.safety.max_step_m
        obs, reward, terminated, _, info = env.step(np.concatenate([np.clip(delta, -1, 1), [0, 0, 0, -1]]).astype(np.float32))
        assert oracle(obs) == (reward, float(info["success"]))
        if terminated:
            break
    assert info["success"]
