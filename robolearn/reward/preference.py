"""RL-VLM-F: a reward model learned from VLM preference labels with Bradley–Terry.

A judge (``vlm_judge.JudgeClient.compare``) says which of two frames is closer to the goal (0 or
1; −1 = cannot tell, discarded). An ensemble of 3 reward heads ``r(o)`` on frozen image features
is fit so that P(o₁ ≻ o₀) = exp r(o₁) / (exp r(o₀) + exp r(o₁)), with cross-entropy on the labels
(ALGORITHMS.md, "RL-VLM-F"). The reward is the ensemble mean; ``success_prob`` rescales it to
[0, 1] between the 5th and 95th percentile of the training frames' rewards. That scale says how
far along a frame is, not whether it is a success: the success ``threshold`` on it is calibrated on
the store's success-labeled frames when it has both classes (``calibrate_preference_threshold``),
and is 0.5 (the middle of the training frames' reward range), recorded as uncalibrated, when not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from robolearn.config import ConfigError
from robolearn.errors import DataError, MissingKeyError
from robolearn.interfaces import Observation
from robolearn.reward.base import RewardConfig, load_checkpoint, save_checkpoint
from robolearn.reward.classifier import calibrate_threshold, embed_frames
from robolearn.reward.data import LabeledFrames, binary_metrics
from robolearn.reward.encoders import FrozenImageEncoder, load_encoder


@dataclass
class PreferenceTrainConfig:
    """backbone: encoder directory or hub name; cameras: images the reward reads (default: the
    judged camera); ensemble: reward heads (3 in RL-VLM-F); steps / batch_size / lr: Adam on the
    Bradley–Terry loss; spatial_grid: as for the classifier."""

    backbone: str
    cameras: list[str] = field(default_factory=list)
    ensemble: int = 3
    hidden: int = 256
    lr: float = 3e-4
    steps: int = 1000
    batch_size: int = 64
    spatial_grid: int = 2
    seed: int = 0


class RewardEnsemble(nn.Module):
    """``(B, in_dim)`` features → ``(E, B)`` rewards from E MLP heads (standardized inputs)."""

    def __init__(self, in_dim: int, ensemble: int = 3, hidden: int = 256):
        super().__init__()
        self.register_buffer("feature_mean", torch.zeros(in_dim))
        self.register_buffer("feature_std", torch.ones(in_dim))
        self.register_buffer("reward_low", torch.tensor(0.0))
        self.register_buffer("reward_high", torch.tensor(1.0))
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(in_dim, hidden), nn.LayerNorm(hidden), nn.ReLU(),
                          nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))
            for _ in range(ensemble)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = (features - self.feature_mean) / self.feature_std
        return torch.stack([head(x).squeeze(-1) for head in self.heads])


def bradley_terry_loss(reward0: torch.Tensor, reward1: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of P(o₁ ≻ o₀) = softmax([r(o₀), r(o₁)])₁ against labels (1: o₁ preferred)."""
    return F.cross_entropy(torch.stack([reward0, reward1], dim=-1).flatten(0, -2),
                           labels.long().expand(reward0.shape).flatten())


def train_bradley_terry(features: torch.Tensor, pairs: np.ndarray, labels: np.ndarray,
                        config: PreferenceTrainConfig, progress: bool = False) -> RewardEnsemble:
    """Fit the ensemble. features: ``(N, D)`` frame features; pairs: ``(P, 2)`` frame indices
    ``(o₀, o₁)``; labels: ``(P,)`` 0 or 1 (which one is preferred; −1 rows must be removed)."""
    pairs, labels = np.asarray(pairs), np.asarray(labels)
    if len(pairs) == 0 or set(np.unique(labels)) - {0, 1}:
        raise DataError("preference labels must be 0 or 1 (drop the judge's −1 answers) and not empty")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = RewardEnsemble(features.shape[1], config.ensemble, config.hidden)
    model.feature_mean.copy_(features.mean(0))
    model.feature_std.copy_(features.std(0).clamp_min(1e-6))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    label_tensor = torch.as_tensor(labels)
    for _ in tqdm(range(config.steps), desc="Bradley-Terry", disable=not progress):
        index = rng.integers(0, len(pairs), (config.ensemble, config.batch_size))
        batch = torch.as_tensor(pairs[index])  # (E, B, 2): each head its own minibatch
        rewards = torch.stack([model.heads[e]((features[batch[e]] - model.feature_mean) / model.feature_std)
                               .squeeze(-1) for e in range(config.ensemble)])  # (E, B, 2)
        loss = bradley_terry_loss(rewards[..., 0], rewards[..., 1], label_tensor[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        frame_rewards = model(features).mean(0)
        model.reward_low.copy_(torch.quantile(frame_rewards, 0.05))
        model.reward_high.copy_(torch.quantile(frame_rewards, 0.95))
    return model.eval()


def collect_preferences(images: np.ndarray, judge: Any, task: str, n_pairs: int, seed: int = 0,
                        progress: bool = False) -> tuple[np.ndarray, np.ndarray, int]:
    """Ask ``judge.compare`` about ``n_pairs`` random pairs of ``images`` ``(N, H, W, 3)``.

    Returns pairs ``(P, 2)``, labels ``(P,)`` in {0, 1}, and how many answers were −1 (dropped)."""
    rng = np.random.default_rng(seed)
    pairs, labels, unsure = [], [], 0
    for _ in tqdm(range(n_pairs), desc="asking the judge", disable=not progress):
        i, j = rng.choice(len(images), 2, replace=False)
        answer = judge.compare(images[i], images[j], task)
        if answer == -1:
            unsure += 1
            continue
        pairs.append((i, j))
        labels.append(answer)
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2), np.asarray(labels, dtype=np.int64), unsure


class PreferenceReward:
    """A trained Bradley–Terry ensemble as a ``RewardModel``: reward = ensemble mean r(o); success
    when ``success_prob`` reaches ``threshold`` (module docstring)."""

    def __init__(self, encoder: FrozenImageEncoder, model: RewardEnsemble, cameras: list[str], spatial_grid: int,
                 config: dict | None = None):
        self.encoder, self.model, self.cameras = encoder, model.eval(), list(cameras)
        self.spatial_grid = spatial_grid
        self.config = config or {}
        self.threshold = float(self.config.get("threshold", 0.5))

    @torch.no_grad()
    def score_batch(self, images: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """``{camera: (N, H, W, 3) uint8}`` → rewards ``(N,)`` and success probabilities ``(N,)``."""
        rewards = self.model(embed_frames(self.encoder, images, self.cameras, self.spatial_grid)).mean(0)
        span = (self.model.reward_high - self.model.reward_low).clamp_min(1e-6)
        probs = ((rewards - self.model.reward_low) / span).clamp(0.0, 1.0)
        return rewards.numpy(), probs.numpy()

    def __call__(self, obs: Observation) -> tuple[float, float]:
        missing = [c for c in self.cameras if f"rgb_{c}" not in obs]
        if missing:
            raise MissingKeyError(f"the preference reward needs cameras {missing}; the observation has {sorted(obs)}")
        rewards, probs = self.score_batch({c: obs[f"rgb_{c}"][None] for c in self.cameras})
        return float(rewards[0]), float(probs[0])


def train_preference_reward(images: dict[str, np.ndarray], pairs: np.ndarray, labels: np.ndarray,
                            config: PreferenceTrainConfig, encoder: FrozenImageEncoder | None = None,
                            progress: bool = False) -> PreferenceReward:
    """Embed ``images`` (camera → ``(N, H, W, 3)``) once and fit the ensemble on the labeled pairs."""
    cameras = config.cameras or sorted(images)
    encoder = encoder or load_encoder(config.backbone)
    features = embed_frames(encoder, images, cameras, config.spatial_grid)
    model = train_bradley_terry(features, pairs, labels, config, progress)
    return PreferenceReward(encoder, model, cameras, config.spatial_grid, {
        "type": "preference", "backbone": encoder.source, "cameras": cameras, "in_dim": int(features.shape[1]),
        "train": asdict(config), "n_pairs": len(pairs)})


def calibrate_preference_threshold(reward: PreferenceReward, frames: LabeledFrames,
                                   target_fpr: float = 0.02) -> dict[str, Any]:
    """Set ``reward.threshold`` to the lowest value ≥ 0.5 whose false-positive rate on ``frames``'
    success labels is at most ``target_fpr`` (as for the classifier; the Bradley–Terry model never
    saw these labels). Frames without both classes leave 0.5 and say so. Returns the calibration
    report (also stored in the checkpoint config)."""
    labels = frames.labels
    if not labels.any() or labels.all():
        report: dict[str, Any] = {"threshold": reward.threshold, "threshold_source": "uncalibrated: the store's frames "
                                  f"have {int(labels.sum())} of {len(labels)} labeled success; 0.5 is the middle of "
                                  "the training frames' reward range"}
    else:
        _, probs = reward.score_batch({c: frames.images[c] for c in reward.cameras})
        reward.threshold = calibrate_threshold(probs, labels, target_fpr)
        report = {"threshold": reward.threshold, "threshold_source": f"calibrated on {len(labels)} labeled store "
                  f"frames for false-positive rate <= {target_fpr}",
                  **{f"calibration_{k}": v for k, v in binary_metrics(probs >= reward.threshold, labels).items()}}
    reward.config.update(report)
    return report


def save_preference_reward(reward: PreferenceReward, path: str | Path) -> Path:
    return save_checkpoint(path, reward.model.state_dict(), reward.config)


def load_preference_reward(path: str | Path, backbone: str | None = None) -> PreferenceReward:
    tensors, config = load_checkpoint(path, "preference")
    train = config["train"]
    model = RewardEnsemble(config["in_dim"], train["ensemble"], train["hidden"])
    model.load_state_dict(tensors)
    return PreferenceReward(load_encoder(backbone or config["backbone"]), model, config["cameras"],
                            train["spatial_grid"], config)


@RewardConfig.register("preference")
@dataclass
class PreferenceRewardConfig(RewardConfig):
    """A Bradley–Terry reward model trained from VLM preferences. checkpoint: its directory;
    backbone: optional encoder location overriding the recorded one; threshold: optional override
    of the checkpoint's success threshold on ``success_prob``."""

    checkpoint: str = ""
    backbone: str | None = None
    threshold: float | None = None

    def create(self, env: Any = None) -> PreferenceReward:
        if not self.checkpoint:
            raise ConfigError("reward", "checkpoint", "set it to a directory written by `robolearn reward train-preference`")
        model = load_preference_reward(self.checkpoint, self.backbone)
        if self.threshold is not None:
            model.threshold = float(self.threshold)
        return model
