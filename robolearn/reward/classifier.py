"""Binary success classifier on a frozen CLIP/SigLIP encoder (SERL / HIL-SERL reward classifier).

Head (ALGORITHMS.md, "Success classifier"): concatenated per-camera image embeddings →
Dense 256 → Dropout 0.1 → LayerNorm → ReLU → Dense 1 (logit). Trained with BCE on balanced
batches (half positives, half negatives) with Adam 1e-4 and random-crop augmentation. The
encoder is frozen, so each frame is embedded once per augmented view before the head trains.

The decision threshold is calibrated on held-out episodes: the lowest threshold (not below 0.5)
whose false-positive rate on them is at most ``target_fpr``, because false positives (rewarding
failure) are what ruin RL.
"""

from __future__ import annotations

import math
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
from robolearn.reward.data import (
    NO_SUCCESS_FRAMES,
    LabeledFrames,
    binary_metrics,
    labeled_frames,
    no_success_frames_reason,
    split_episodes,
)
from robolearn.reward.encoders import FrozenImageEncoder, load_encoder


@dataclass
class ClassifierTrainConfig:
    """Training knobs. steps: head updates; batch_size: frames per update (half positive);
    augment_views: embedded views per frame (view 0 uncropped, the rest random crops keeping
    ``crop_scale`` to 1 of each side); spatial_grid: patch tokens pooled to this grid and appended
    to the global embedding (0: global embedding only); val_fraction: held-out episodes for threshold calibration;
    target_fpr: highest false-positive rate allowed on them."""

    backbone: str
    cameras: list[str] = field(default_factory=list)
    hidden: int = 256
    dropout: float = 0.1
    lr: float = 1e-4
    steps: int = 2000
    batch_size: int = 64
    augment_views: int = 4
    crop_scale: float = 0.85
    spatial_grid: int = 4
    val_fraction: float = 0.2
    target_fpr: float = 0.02
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.crop_scale <= 1.0:
            raise ValueError(f"crop_scale must be in (0, 1], got {self.crop_scale}")
        if self.augment_views < 1:
            raise ValueError(f"augment_views must be at least 1, got {self.augment_views}")


class SuccessHead(nn.Module):
    """``(B, in_dim)`` embeddings → ``(B,)`` success logits. Embeddings are first standardized with
    the training set's per-dimension mean and std (buffers saved with the weights): frozen
    embeddings of frames from one scene differ in a small subspace, which the head then sees at
    unit scale."""

    def __init__(self, in_dim: int, hidden: int = 256, dropout: float = 0.1):
        super().__init__()
        self.register_buffer("feature_mean", torch.zeros(in_dim))
        self.register_buffer("feature_std", torch.ones(in_dim))
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.Dropout(dropout), nn.LayerNorm(hidden), nn.ReLU(),
                                 nn.Linear(hidden, 1))

    def set_normalization(self, features: torch.Tensor) -> None:
        """Standardize with the statistics of ``(N, in_dim)`` training embeddings."""
        self.feature_mean.copy_(features.mean(0))
        self.feature_std.copy_(features.std(0).clamp_min(1e-6))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net((features - self.feature_mean) / self.feature_std).squeeze(-1)


def random_crops(images: np.ndarray, scale: float, rng: np.random.Generator, batch_size: int = 256) -> np.ndarray:
    """``(N, H, W, 3) uint8`` → same shape: a random crop of each image, resized back (bilinear).

    Each crop keeps a fraction ``s ~ U(scale, 1)`` of both sides at a uniformly random position;
    all crops of a batch are sampled in one ``grid_sample`` call."""
    n = len(images)
    side = rng.uniform(scale, 1.0, n)
    corner = rng.uniform(0.0, 1.0, (n, 2)) * (1.0 - side[:, None])  # (left, top) as fractions of the side
    theta = np.zeros((n, 2, 3), np.float32)
    theta[:, 0, 0] = theta[:, 1, 1] = side
    theta[:, :, 2] = side[:, None] + 2.0 * corner - 1.0  # normalized centre of the crop
    out = np.empty_like(images)
    for start in range(0, n, batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).permute(0, 3, 1, 2).float()
        grid = F.affine_grid(torch.from_numpy(theta[start:start + batch_size]), list(x.shape), align_corners=False)
        crops = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        out[start:start + batch_size] = crops.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    return out


@torch.no_grad()
def embed_frames(encoder: FrozenImageEncoder, images: dict[str, np.ndarray], cameras: list[str], spatial_grid: int,
                 batch_size: int = 128) -> torch.Tensor:
    """``{camera: (N, H, W, 3) uint8}`` → ``(N, len(cameras) * encoder.spatial_dim(spatial_grid))``:
    per-camera features (``FrozenImageEncoder.encode_spatial``), concatenated. Cameras with equal
    image sizes go through the encoder together (one forward pass per step when scoring online)."""
    n = len(images[cameras[0]])
    if len({images[c].shape[1:] for c in cameras}) == 1:
        stacked = np.concatenate([images[c] for c in cameras])
        per_camera = _encode_in_batches(encoder, stacked, spatial_grid, batch_size).split(n)
    else:
        per_camera = [_encode_in_batches(encoder, images[c], spatial_grid, batch_size) for c in cameras]
    return torch.cat(per_camera, dim=-1)


def _encode_in_batches(encoder: FrozenImageEncoder, frames: np.ndarray, spatial_grid: int,
                       batch_size: int) -> torch.Tensor:
    chunks = [encoder.encode_spatial(frames[i:i + batch_size], spatial_grid) for i in range(0, len(frames), batch_size)]
    return torch.cat(chunks) if chunks else torch.zeros(0, encoder.spatial_dim(spatial_grid))


def calibrate_threshold(scores: np.ndarray, labels: np.ndarray, target_fpr: float,
                        floor: float | None = 0.5) -> float:
    """Lowest threshold (not below ``floor``) whose false-positive rate on these labeled scores is at
    most ``target_fpr``; success means score ≥ threshold. ``floor`` None: no lower bound (for
    scores that are not probabilities, e.g. the CLIP reward)."""
    negatives = np.sort(np.asarray(scores)[~np.asarray(labels, dtype=bool)])[::-1]
    allowed = int(math.floor(target_fpr * len(negatives) + 1e-9))
    if len(negatives) <= allowed:
        if floor is None:
            raise DataError("no negative frames to calibrate on: record failed episodes and frames before success")
        return floor
    above = float(np.nextafter(np.float32(negatives[allowed]), np.float32(np.inf)))
    return above if floor is None else float(max(floor, above))


class ClassifierReward:
    """A trained success classifier as a ``RewardModel``: reward 1.0 when the success probability
    reaches the calibrated ``threshold``, else 0.0."""

    reward_is_success_call = True

    def __init__(self, encoder: FrozenImageEncoder, head: SuccessHead, cameras: list[str], threshold: float,
                 spatial_grid: int, config: dict | None = None):
        self.encoder, self.head, self.spatial_grid = encoder, head.eval(), spatial_grid
        self.cameras, self.threshold = list(cameras), float(threshold)
        self.config = config or {}

    @torch.no_grad()
    def predict_proba(self, images: dict[str, np.ndarray]) -> np.ndarray:
        """``{camera: (N, H, W, 3) uint8}`` → ``(N,)`` success probabilities."""
        features = embed_frames(self.encoder, images, self.cameras, self.spatial_grid)
        return torch.sigmoid(self.head(features.to(self.encoder.device))).cpu().numpy()

    def score_batch(self, images: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """``{camera: (N, H, W, 3) uint8}`` → rewards ``(N,)`` (0 or 1) and success probabilities ``(N,)``."""
        probs = self.predict_proba(images)
        return (probs >= self.threshold).astype(np.float32), probs

    def __call__(self, obs: Observation) -> tuple[float, float]:
        missing = [c for c in self.cameras if f"rgb_{c}" not in obs]
        if missing:
            raise MissingKeyError(f"the classifier needs images from cameras {missing}; the observation has {sorted(obs)}")
        prob = float(self.predict_proba({c: obs[f"rgb_{c}"][None] for c in self.cameras})[0])
        return float(prob >= self.threshold), prob


def train_classifier(frames: LabeledFrames, config: ClassifierTrainConfig, encoder: FrozenImageEncoder | None = None,
                     progress: bool = False) -> tuple[ClassifierReward, dict[str, Any]]:
    """Train on ``frames`` (split by episode into train/validation) and calibrate the threshold.

    Returns the reward model and a report: train/validation sizes, validation metrics at the
    calibrated threshold, and the final training loss.
    """
    cameras = config.cameras or sorted(frames.images)
    encoder = encoder or load_encoder(config.backbone)
    train_eps, val_eps = split_episodes(frames.episode, frames.labels, config.val_fraction, config.seed)
    train, val = frames.subset(np.isin(frames.episode, train_eps)), frames.subset(np.isin(frames.episode, val_eps))
    if not frames.labels.any():
        raise ConfigError("store", "success", f"no frame of the {len(frames)} is labeled success, and the classifier "
                          f"needs both classes. {NO_SUCCESS_FRAMES}")
    if train.labels.all() or not train.labels.any():
        raise ConfigError("store", "success", f"training frames need both classes; got {int(train.labels.sum())} "
                          f"positive of {len(train)}: record successful and failed episodes")
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    views = []
    for view in tqdm(range(config.augment_views), desc="embedding views", disable=not progress):
        images = train.images if view == 0 else {
            c: random_crops(train.images[c], config.crop_scale, rng) for c in cameras}
        views.append(embed_frames(encoder, images, cameras, config.spatial_grid))
    features = torch.stack(views)  # (V, N, D)
    labels = torch.as_tensor(train.labels, dtype=torch.float32)
    positives, negatives = np.flatnonzero(train.labels), np.flatnonzero(~train.labels)
    head = SuccessHead(features.shape[-1], config.hidden, config.dropout)
    head.set_normalization(features.flatten(0, 1))
    optimizer = torch.optim.Adam(head.parameters(), lr=config.lr)
    half = max(1, config.batch_size // 2)
    loss = torch.tensor(float("nan"))
    for _ in tqdm(range(config.steps), desc="training classifier", disable=not progress):
        index = np.concatenate([rng.choice(positives, half), rng.choice(negatives, half)])
        view = rng.integers(0, config.augment_views, len(index))
        logits = head(features[view, index])
        loss = F.binary_cross_entropy_with_logits(logits, labels[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model = ClassifierReward(encoder, head, cameras, 0.5, config.spatial_grid)
    report: dict[str, Any] = {"n_train_frames": len(train), "n_train_positive": int(train.labels.sum()),
                              "n_train_episodes": len(train_eps), "n_val_episodes": len(val_eps),
                              "final_loss": float(loss.detach())}
    if len(val):
        probs = model.predict_proba(val.images)
        model.threshold = calibrate_threshold(probs, val.labels, config.target_fpr)
        report.update({f"val_{k}": v for k, v in binary_metrics(probs >= model.threshold, val.labels).items()})
    report["threshold"] = model.threshold
    model.config = {"type": "classifier", "backbone": encoder.source, "cameras": cameras,
                    "threshold": model.threshold, "in_dim": int(features.shape[-1]), "train": asdict(config),
                    "report": report}
    return model, report


def train_from_store(store: Any, config: ClassifierTrainConfig, progress: bool = False) -> tuple[ClassifierReward, dict]:
    """Read labeled frames of ``config.cameras`` from a DemoStore and train (``train_classifier``)."""
    frames = labeled_frames(store, config.cameras or None)
    if not frames.labels.any():
        raise ConfigError("--store", str(getattr(store, "path", "store")), no_success_frames_reason(store, len(frames)))
    return train_classifier(frames, config, progress=progress)


def save_classifier(model: ClassifierReward, path: str | Path) -> Path:
    return save_checkpoint(path, model.head.state_dict(), model.config)


def load_classifier(path: str | Path, device: str | torch.device = "cpu", backbone: str | None = None) -> ClassifierReward:
    """Load a checkpoint written by ``save_classifier``; ``backbone`` overrides the recorded one
    (for a checkpoint moved to a machine where the encoder lives elsewhere)."""
    tensors, config = load_checkpoint(path, "classifier")
    encoder = load_encoder(backbone or config["backbone"], device=device)
    train = config.get("train", {})
    head = SuccessHead(config["in_dim"], train.get("hidden", 256), train.get("dropout", 0.1))
    head.load_state_dict(tensors)
    return ClassifierReward(encoder, head.to(device), config["cameras"], config["threshold"],
                            train.get("spatial_grid", 0), config)


@RewardConfig.register("classifier")
@dataclass
class ClassifierRewardConfig(RewardConfig):
    """A trained success classifier. checkpoint: directory from ``robolearn reward train``;
    backbone: optional encoder location overriding the one recorded at training;
    threshold: optional override of the calibrated threshold."""

    checkpoint: str = ""
    backbone: str | None = None
    threshold: float | None = None

    def create(self, env: Any = None) -> ClassifierReward:
        if not self.checkpoint:
            raise ConfigError("reward", "checkpoint", "set it to a directory written by `robolearn reward train`")
        model = load_classifier(self.checkpoint, backbone=self.backbone)
        if self.threshold is not None:
            model.threshold = self.threshold
        return model
