"""Observations → features, the one encoder every agent uses (``encoder:`` in configs/algos/*.yaml).

Observations are dicts of batched tensors: ``rgb_<camera>`` images ``(B, H, W, 3) uint8`` (or
``(B, 3, H, W)`` float in [0, 1]), and flat float vectors ``(B, D)`` for every other key (``state``).

**The embedding cache.** With ``cache: true`` every camera's image encoder is frozen, and each frame
is encoded once, when it enters the replay buffer (``embed``): the buffer holds
``emb_<camera>`` ``(V, latent_dim)`` instead of the image, V = 1 + ``cached_crops`` (view 0 the frame
itself, the others DrQ random shifts of it, so augmentation survives the cache). ``forward`` takes
either form: an ``emb_<camera>`` key skips that camera's encoder (a random view per sample in
training, view 0 in eval), an ``rgb_<camera>`` key runs it. So updates cost about what state updates
cost, and the same checkpoint acts on raw images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robolearn.errors import UsageError
from robolearn.learn.buffer import ReplayBuffer
from robolearn.learn.vision import HEADS, TRUNKS, build_image_encoder, random_shift

EMBEDDING_PREFIX = "emb_"
SHIFT_PAD_PX = 4


def is_image_key(key: str) -> bool:
    return key.startswith("rgb_")


def embedding_key(image_key: str) -> str:
    """``rgb_front`` → ``emb_front``."""
    return EMBEDDING_PREFIX + image_key[len("rgb_"):]


@dataclass
class EncoderConfig:
    """How observations become features; every algorithm nests one as ``encoder``.

    image: the trunk (``robolearn.learn.vision``): ``cnn`` (DrQ), ``fast_cnn``, ``resnet10``,
    ``resnet18``, ``torchvision_resnet18``, ``clip``, ``siglip``, ``dinov2``. head: ``flatten``,
    ``spatial_embeddings``, ``keypoints``, ``avg`` (None: ``flatten`` for cnn, ``keypoints`` for
    fast_cnn, else SERL's ``spatial_embeddings``). weights: a local file (ResNets) or
    ``save_pretrained`` directory (clip, siglip, dinov2) with pretrained trunk weights. freeze_trunk:
    keep the trunk fixed (None: frozen when ``weights`` is set, as SERL freezes its ResNet-10).
    image_size_px: images are resized to this square side before encoding (None: as recorded;
    ``robolearn data resize`` makes a store at it). image_latent_dim: features per camera.
    keypoints / spatial_features: sizes of those heads. proprio_latent_dim: > 0 encodes the vector
    part with Dense → LayerNorm → tanh (SERL). augment: DrQ random shift (pad 4) in training, or with
    ``cache`` the ``cached_crops`` shifted views per frame. cache: freeze the image encoders and
    cache their embeddings in the replay buffer (module docstring). normalize_obs: standardize the
    vector part with the data's statistics (as CORL's Cal-QL and IQL do).
    """

    image: str = "cnn"
    head: str | None = None
    weights: str | None = None
    freeze_trunk: bool | None = None
    image_size_px: int | None = None
    image_latent_dim: int = 50
    keypoints: int = 32
    spatial_features: int = 8
    proprio_latent_dim: int = 0
    augment: bool = True
    cache: bool = False
    cached_crops: int = 4
    normalize_obs: bool = True

    def __post_init__(self) -> None:
        if self.image not in TRUNKS:
            raise ValueError(f"image must be one of {', '.join(TRUNKS)}, got {self.image!r}")
        if self.head is not None and self.head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)} (or null), got {self.head!r}")
        if self.image_size_px is not None and self.image_size_px < 16:
            raise ValueError(f"image_size_px must be at least 16, got {self.image_size_px}")
        if self.cached_crops < 0:
            raise ValueError(f"cached_crops must be 0 or more, got {self.cached_crops}")

    @property
    def cached_views(self) -> int:
        """Embeddings kept per frame with ``cache``: the frame itself, plus the shifted crops when augmenting."""
        return 1 + (self.cached_crops if self.augment else 0)


def images_to_float(images: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """``(B, H, W, 3) uint8`` or ``(B, 3, H, W)`` float → ``(B, 3, h, w)`` float in [0, 1] at
    ``size_hw`` (resized, antialiased, when it differs: a policy trained on a resized store sees the
    cell's native frames), in channels-last memory."""
    if images.dtype == torch.uint8:
        images = images.permute(0, 3, 1, 2).float().div_(255.0)
    if tuple(images.shape[-2:]) != tuple(size_hw):
        images = F.interpolate(images, size=tuple(size_hw), mode="bilinear", antialias=True, align_corners=False)
    return images.contiguous(memory_format=torch.channels_last)


class ObservationEncoder(nn.Module):
    """Fuses cameras and vector observations into one feature vector ``(B, out_dim)``: the vector
    part first (standardized; encoded when ``proprio_latent_dim`` > 0), then one latent per camera
    in key order. See the module docstring for the embedding cache."""

    def __init__(self, obs_shapes: dict[str, tuple[int, ...]], cfg: EncoderConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or EncoderConfig()
        self.image_keys = sorted(k for k in obs_shapes if is_image_key(k))
        self.vector_keys = sorted(k for k in obs_shapes if not is_image_key(k))
        self.cameras = nn.ModuleDict()
        self.image_hw: dict[str, tuple[int, int]] = {}
        for key in self.image_keys:
            hw = (cfg.image_size_px, cfg.image_size_px) if cfg.image_size_px else tuple(obs_shapes[key][:2])
            self.image_hw[key] = hw
            self.cameras[key] = build_image_encoder(cfg.image, cfg.head, hw, cfg.image_latent_dim, cfg.weights,
                                                    cfg.freeze_trunk, cfg.keypoints, cfg.spatial_features)
        if cfg.cache:
            self.cameras.requires_grad_(False)
        vector_dim = sum(int(math.prod(obs_shapes[k])) for k in self.vector_keys)
        self.proprio = None
        if cfg.proprio_latent_dim:
            self.proprio = nn.Sequential(nn.Linear(vector_dim, cfg.proprio_latent_dim),
                                         nn.LayerNorm(cfg.proprio_latent_dim), nn.Tanh())
        self.out_dim = (cfg.proprio_latent_dim or vector_dim) + sum(c.out_dim for c in self.cameras.values())
        # Standardization of the concatenated vector part (identity until ``set_normalization``); buffers,
        # so checkpoints and pushed weights carry it.
        self.register_buffer("vector_mean", torch.zeros(vector_dim))
        self.register_buffer("vector_std", torch.ones(vector_dim))

    def train(self, mode: bool = True) -> ObservationEncoder:
        """A cached (frozen) image encoder stays in eval mode: its embeddings must not depend on the mode."""
        super().train(mode)
        if self.cfg.cache:
            self.cameras.eval()
        return self

    def set_normalization(self, vectors: torch.Tensor, min_std: float = 1e-2) -> None:
        """Standardize the vector part with the mean and std of ``vectors`` ``(N, vector_dim)`` (the
        concatenated vector keys, in key order), std floored at ``min_std``."""
        self.vector_mean.copy_(vectors.mean(0))
        self.vector_std.copy_(vectors.std(0, correction=0).clamp(min=min_std))

    def vector(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The standardized vector keys ``(B, vector_dim)``, clipped to ±10 std."""
        vec = torch.cat([obs[k].flatten(1).float() for k in self.vector_keys], dim=-1)
        return ((vec - self.vector_mean) / self.vector_std).clamp(-10.0, 10.0)

    def encode_images(self, key: str, images: torch.Tensor, augment: bool) -> torch.Tensor:
        """``(B, latent_dim)`` features of camera ``key``'s images (DrQ-shifted when ``augment``)."""
        pixels = images_to_float(images, self.image_hw[key])
        if augment:
            pixels = random_shift(pixels, SHIFT_PAD_PX)
        return self.cameras[key](pixels)

    @torch.no_grad()
    def embed(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The cached form of a batch of observations: every ``rgb_<camera>`` replaced by
        ``emb_<camera>`` ``(B, V, latent_dim)`` (view 0 unshifted, ``cached_crops`` random shifts
        when augmenting); vector keys pass through."""
        out = {k: obs[k] for k in self.vector_keys}
        views = self.cfg.cached_views
        for key in self.image_keys:
            pixels = images_to_float(obs[key], self.image_hw[key])
            batch = len(pixels)
            if views > 1:  # the frame and its shifted crops go through the encoder as one batch
                crops = random_shift(pixels.repeat(views - 1, 1, 1, 1), SHIFT_PAD_PX)
                pixels = torch.cat([pixels, crops]).contiguous(memory_format=torch.channels_last)
            features = self.cameras[key](pixels)  # (V·B, D), view-major
            out[embedding_key(key)] = features.view(views, batch, -1).transpose(0, 1)
        return out

    def cached_shapes(self, obs_shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        """The per-step shapes of what ``embed`` returns, for sizing replay buffers."""
        shapes = {k: tuple(obs_shapes[k]) for k in self.vector_keys}
        for key in self.image_keys:
            shapes[embedding_key(key)] = (self.cfg.cached_views, self.cameras[key].out_dim)
        return shapes

    def camera_features(self, key: str, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        cached = obs.get(embedding_key(key))
        if cached is None:
            return self.encode_images(key, obs[key], augment=self.training and self.cfg.augment and not self.cfg.cache)
        if cached.ndim == 2:
            return cached.float()
        view = torch.randint(0, cached.shape[1], (cached.shape[0],), device=cached.device) if self.training \
            else torch.zeros(cached.shape[0], dtype=torch.long, device=cached.device)
        return cached[torch.arange(cached.shape[0], device=cached.device), view].float()

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = []
        if self.vector_keys:
            vec = self.vector(obs)
            parts.append(vec if self.proprio is None else self.proprio(vec))
        parts += [self.camera_features(key, obs) for key in self.image_keys]
        return torch.cat(parts, dim=-1)


def cached_observation_spaces(encoder: ObservationEncoder, obs_shapes: dict[str, tuple[int, ...]]
                              ) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Replay-buffer spaces ``{key: (shape, dtype)}`` for ``encoder``'s observations: the cached
    embeddings (float32) with ``cache``, else the raw observations (images uint8)."""
    shapes = encoder.cached_shapes(obs_shapes) if encoder.cfg.cache else obs_shapes
    return {k: (tuple(s), np.dtype(np.uint8) if is_image_key(k) else np.dtype(np.float32)) for k, s in shapes.items()}


def check_cacheable(cfg: EncoderConfig, obs_shapes: dict[str, tuple[int, ...]]) -> None:
    """Refuse ``cache`` on an agent without cameras (nothing to cache)."""
    if cfg.cache and not any(is_image_key(k) for k in obs_shapes):
        raise UsageError("encoder.cache caches camera embeddings, and these observations have no rgb_* key; "
                         "set encoder.cache=false or observe a camera (--obs state,rgb_front,...)")


def embed_buffer(encoder: ObservationEncoder, raw: ReplayBuffer, device: torch.device | str = "cpu",
                 batch_size: int = 256) -> ReplayBuffer:
    """``raw`` (raw observations) as the buffer ``encoder`` trains on: a new buffer of the same
    capacity with every frame's cached embeddings when the encoder caches, else ``raw`` itself."""
    if not encoder.cfg.cache:
        return raw
    shapes = {k: v.shape[1:] for k, v in raw.obs.items()}
    out = ReplayBuffer(cached_observation_spaces(encoder, shapes), raw.action_dim, raw.capacity, raw.chunk)
    out.rng = raw.rng
    n = len(raw)
    for side, target in ((raw.obs, out.obs), (raw.next_obs, out.next_obs)):
        for start in range(0, n, batch_size):
            part = {k: torch.as_tensor(v[start:start + batch_size]).to(device) for k, v in side.items()}
            for k, v in encoder.embed(part).items():
                target[k][start:start + len(v)] = v.float().cpu().numpy()
    for name in ("action", "reward", "done", "mc_return", "action_chunk", "chunk_mask"):
        getattr(out, name)[:n] = getattr(raw, name)[:n]
    out.size, out.cursor = raw.size, raw.cursor
    return out
