"""Zero-shot CLIP goal–baseline similarity reward (VLM-RM, Rocamonde et al. 2024).

R(x) = 1 − ½‖(x − g) P‖², P = α·d dᵀ/‖d‖² + (1 − α)·I, d = g − b, where x is the normalized image
embedding and g, b the normalized means of the goal and baseline prompt embeddings. α = 1 keeps
only the goal–baseline direction; α = 0 is plain distance to the goal. With unit vectors R lies in
[−1, 1]; ``success_prob`` = sigmoid((R − success_reward) / temperature), so a frame is a success
(``success_prob`` ≥ 0.5) when R ≥ ``success_reward``. Where R falls for success and failure frames
depends on the backbone, the prompts and the scene, so ``success_reward`` has no default: measure it
on success-labeled frames with ``robolearn reward calibrate`` (``calibrate_on_store``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from robolearn.config import ConfigError
from robolearn.errors import MissingKeyError
from robolearn.interfaces import Observation
from robolearn.reward.base import RewardConfig
from robolearn.reward.encoders import FrozenImageEncoder, load_encoder


def projection_matrix(goal: torch.Tensor, baseline: torch.Tensor, alpha: float) -> torch.Tensor:
    """``(D, D)`` P = α·d dᵀ/‖d‖² + (1 − α)·I with d = goal − baseline."""
    direction = goal - baseline
    norm_sq = direction.dot(direction).clamp_min(1e-12)
    return alpha * torch.outer(direction, direction) / norm_sq + (1.0 - alpha) * torch.eye(len(goal))


def vlm_rm_reward(image_embeddings: torch.Tensor, goal: torch.Tensor, projection: torch.Tensor) -> torch.Tensor:
    """``(N, D)`` normalized image embeddings → ``(N,)`` rewards 1 − ½‖(x − g) P‖²."""
    return 1.0 - 0.5 * ((image_embeddings - goal) @ projection).pow(2).sum(-1)


class ClipSimilarityReward:
    """VLM-RM reward on one camera's images; success when R ≥ ``success_reward`` (``success_prob`` ≥ 0.5)."""

    threshold = 0.5
    calibrates = "success_reward"

    def __init__(self, encoder: FrozenImageEncoder, goal_prompts: list[str], baseline_prompts: list[str],
                 alpha: float, camera: str, success_reward: float, temperature: float):
        self.encoder, self.camera, self.cameras = encoder, camera, [camera]
        self.goal = F.normalize(encoder.encode_text(goal_prompts).mean(0), dim=0)
        self.baseline = F.normalize(encoder.encode_text(baseline_prompts).mean(0), dim=0)
        self.projection = projection_matrix(self.goal, self.baseline, alpha)
        self.success_reward, self.temperature = success_reward, temperature

    def score_batch(self, images: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """``{camera: (N, H, W, 3) uint8}`` → rewards ``(N,)`` and success probabilities ``(N,)``."""
        rewards = vlm_rm_reward(self.encoder.encode_images(images[self.camera]), self.goal, self.projection)
        probs = torch.sigmoid((rewards - self.success_reward) / self.temperature)
        return rewards.numpy(), probs.numpy()

    def __call__(self, obs: Observation) -> tuple[float, float]:
        key = f"rgb_{self.camera}"
        if key not in obs:
            raise MissingKeyError(f"the CLIP reward reads {key!r}; the observation has {sorted(obs)}")
        rewards, probs = self.score_batch({self.camera: obs[key][None]})
        return float(rewards[0]), float(probs[0])


@RewardConfig.register("clip")
@dataclass
class ClipRewardConfig(RewardConfig):
    """VLM-RM. backbone: CLIP/SigLIP directory or hub name (with tokenizer files); goal_prompts /
    baseline_prompts: what success / the generic scene look like in words; alpha: projection
    strength (0.5 in VLM-RM); camera: which ``rgb_<camera>``; success_reward: the R from which a
    frame is a success (required: ``robolearn reward calibrate`` measures it on labeled frames);
    temperature: how sharply success_prob = sigmoid((R − success_reward) / temperature) rises."""

    backbone: str = ""
    goal_prompts: list[str] = field(default_factory=list)
    baseline_prompts: list[str] = field(default_factory=lambda: ["a robot arm on a table"])
    alpha: float = 0.5
    camera: str = "front"
    success_reward: float | None = None
    temperature: float = 0.02

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.temperature <= 0 or not math.isfinite(self.temperature):
            raise ValueError(f"temperature must be positive, got {self.temperature}")

    def create(self, env: Any = None) -> ClipSimilarityReward:
        if not self.backbone or not self.goal_prompts or not self.baseline_prompts:
            raise ConfigError("reward", "backbone" if not self.backbone else "goal_prompts",
                              "the CLIP reward needs a backbone, goal_prompts and baseline_prompts")
        if self.success_reward is None:
            raise ConfigError("reward", "success_reward", "not set: it is the CLIP reward R from which a frame counts "
                              "as success, and R's scale depends on the backbone, prompts and scene; measure it on a "
                              "store with success-labeled frames: `robolearn reward calibrate --reward clip:YAML "
                              "--store PATH`, then set success_reward in the YAML")
        return ClipSimilarityReward(load_encoder(self.backbone, with_text=True), self.goal_prompts,
                                    self.baseline_prompts, self.alpha, self.camera, self.success_reward,
                                    self.temperature)
