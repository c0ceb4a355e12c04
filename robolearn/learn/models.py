"""Networks: observation encoders, DrQ random shift, Gaussian tanh actor, batched critic ensemble.

Observations are dicts of batched tensors. Keys starting with ``rgb_`` are images ``(B, H, W, 3) uint8``
(or ``(B, 3, H, W)`` float in [0, 1]); every other key is a flat float vector ``(B, D)``.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from robolearn.errors import UsageError

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


def is_image_key(key: str) -> bool:
    return key.startswith("rgb_")


ACTIVATIONS: dict[str, tuple] = {"relu": (F.relu, nn.ReLU), "tanh": (torch.tanh, nn.Tanh)}


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, layer_norm: bool = False,
        activation: str = "relu") -> nn.Sequential:
    """Linear → [LayerNorm] → activation per hidden width, then a Linear to ``out_dim``."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers.append(nn.Linear(in_dim, width))
        if layer_norm:
            layers.append(nn.LayerNorm(width))
        layers.append(ACTIVATIONS[activation][1]())
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


def random_shift(images: torch.Tensor, pad_px: int = 4) -> torch.Tensor:
    """DrQ augmentation: replicate-pad by ``pad_px`` and crop back at a random integer offset per image.

    images: ``(B, C, H, W)`` float. One ``grid_sample`` call for the whole batch.
    """
    b, _, h, w = images.shape
    padded = F.pad(images, (pad_px,) * 4, mode="replicate")
    eps_h, eps_w = 1.0 / (h + 2 * pad_px), 1.0 / (w + 2 * pad_px)
    ys = torch.linspace(-1.0 + eps_h, 1.0 - eps_h, h + 2 * pad_px, device=images.device)[:h]
    xs = torch.linspace(-1.0 + eps_w, 1.0 - eps_w, w + 2 * pad_px, device=images.device)[:w]
    base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).unsqueeze(0)  # (1, H, W, 2) as (x, y)
    shift_px = torch.randint(0, 2 * pad_px + 1, (b, 1, 1, 2), device=images.device, dtype=images.dtype)
    shift = shift_px * torch.tensor([2.0 * eps_w, 2.0 * eps_h], device=images.device, dtype=images.dtype)
    return F.grid_sample(padded, base.to(images.dtype) + shift, padding_mode="zeros", align_corners=False)


class SmallCNN(nn.Module):
    """DrQ/RLPD 4-layer conv encoder: 32 channels, 3×3, first stride 2; projection to ``latent_dim``
    with LayerNorm and tanh."""

    def __init__(self, in_channels: int = 3, image_hw: tuple[int, int] = (128, 128), latent_dim: int = 50):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, stride=2), nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=1), nn.ReLU(),
        )
        with torch.no_grad():
            n_flat = self.convs(torch.zeros(1, in_channels, *image_hw)).numel()
        self.project = nn.Sequential(nn.Linear(n_flat, latent_dim), nn.LayerNorm(latent_dim), nn.Tanh())
        self.out_dim = latent_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.project(self.convs(images - 0.5).flatten(1))


class _BasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.GroupNorm(4, out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.GroupNorm(4, out_ch)
        self.down = None
        if stride != 1 or in_ch != out_ch:
            self.down = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.GroupNorm(4, out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.down is None else self.down(x)))


class ResNetEncoder(nn.Module):
    """ResNet-10 (one block per stage, as in SERL) or ResNet-18 (two blocks) with GroupNorm (4 groups,
    as SERL's), then SERL's learned spatial embeddings, dropout 0.1 and a Dense → LayerNorm → tanh
    bottleneck of ``latent_dim``. images ``(B, 3, H, W)`` float in [0, 1] → ``(B, latent_dim)``.

    ``weights_path``: optional local safetensors file with the trunk's tensors (keys as in this module's
    ``state_dict``, e.g. ImageNet weights converted once); ``freeze=True`` keeps the trunk fixed (SERL
    freezes its pretrained ResNet-10).
    """

    def __init__(self, depth: int = 10, image_hw: tuple[int, int] = (128, 128), latent_dim: int = 256,
                 weights_path: str | Path | None = None, freeze: bool = False, spatial_features: int = 8):
        super().__init__()
        self.depth = depth
        blocks = {10: 1, 18: 2}
        if depth not in blocks:
            raise UsageError(f"ResNet depth {depth} is not supported; use 10 or 18")
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.GroupNorm(4, 64), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        stages, in_ch = [], 64
        for i, ch in enumerate((64, 128, 256, 512)):
            for j in range(blocks[depth]):
                stages.append(_BasicBlock(in_ch, ch, 2 if (i > 0 and j == 0) else 1))
                in_ch = ch
        self.stages = nn.Sequential(*stages)
        fh, fw = math.ceil(image_hw[0] / 32), math.ceil(image_hw[1] / 32)
        # SERL's SpatialLearnedEmbeddings: ``spatial_features`` learned (fh, fw) maps per channel.
        self.spatial_embedding = nn.Parameter(nn.init.kaiming_normal_(torch.empty(512, fh, fw, spatial_features)))
        self.project = nn.Sequential(nn.Dropout(0.1), nn.Linear(512 * spatial_features, latent_dim),
                                     nn.LayerNorm(latent_dim), nn.Tanh())
        self.out_dim = latent_dim
        self.frozen = freeze
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        if weights_path is not None:
            self.load_trunk(weights_path)
        if freeze:
            for p in list(self.stem.parameters()) + list(self.stages.parameters()):
                p.requires_grad_(False)

    def load_trunk(self, weights_path: str | Path) -> None:
        """Load a safetensors state dict holding at least every ``stem.*`` and ``stages.*`` tensor of
        this depth (head tensors are loaded too when present and of the right shape)."""
        state = load_file(str(weights_path))
        own = self.state_dict()
        trunk = [k for k in own if k.startswith(("stem.", "stages."))]
        missing = [k for k in trunk if k not in state]
        unexpected = [k for k in state if k not in own]
        wrong = [k for k in state if k in own and state[k].shape != own[k].shape]
        if missing or unexpected or wrong:
            raise UsageError(f"{weights_path} does not fit a ResNet-{self.depth} trunk: missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]}, wrong shape {wrong[:3]} (of {len(missing)}, "
                             f"{len(unexpected)}, {len(wrong)})")
        self.load_state_dict(state, strict=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        feats = self.stages(self.stem((images - self.mean) / self.std))  # (B, 512, fh, fw)
        pooled = torch.einsum("bchw,chwf->bcf", feats, self.spatial_embedding).flatten(1)  # (B, 512·F)
        return self.project(pooled)


class ObservationEncoder(nn.Module):
    """Fuses several cameras and vector observations into one feature vector.

    Each camera gets its own image encoder (``cnn``, ``resnet10``, ``resnet18``); vector keys are
    concatenated and, when ``proprio_latent_dim`` > 0, encoded by Dense → LayerNorm → tanh (SERL).
    forward(obs) → ``(B, out_dim)``: the vector part first, then one latent per camera in key order. ``augment`` applies
    DrQ random shift to images in training mode.
    """

    def __init__(self, obs_shapes: dict[str, tuple[int, ...]], image_encoder: str = "cnn",
                 image_latent_dim: int = 50, proprio_latent_dim: int = 0, augment: bool = True,
                 pretrained_path: str | None = None):
        super().__init__()
        self.image_keys = sorted(k for k in obs_shapes if is_image_key(k))
        self.vector_keys = sorted(k for k in obs_shapes if not is_image_key(k))
        self.augment = augment
        self.cameras = nn.ModuleDict()
        for key in self.image_keys:
            h, w = obs_shapes[key][:2]
            if image_encoder == "cnn":
                self.cameras[key] = SmallCNN(3, (h, w), image_latent_dim)
            elif image_encoder in ("resnet10", "resnet18"):
                self.cameras[key] = ResNetEncoder(int(image_encoder[6:]), (h, w), image_latent_dim,
                                                  pretrained_path, freeze=pretrained_path is not None)
            else:
                raise UsageError(f"unknown image encoder {image_encoder!r}; use cnn, resnet10 or resnet18")
        vector_dim = sum(int(math.prod(obs_shapes[k])) for k in self.vector_keys)
        self.proprio = None
        if proprio_latent_dim:  # SERL's state encoder: Dense → LayerNorm → tanh
            self.proprio = nn.Sequential(nn.Linear(vector_dim, proprio_latent_dim), nn.LayerNorm(proprio_latent_dim), nn.Tanh())
        self.out_dim = (proprio_latent_dim or vector_dim) + sum(c.out_dim for c in self.cameras.values())
        # Standardization of the concatenated vector part (identity until ``set_normalization``); buffers,
        # so checkpoints and pushed weights carry it.
        self.register_buffer("vector_mean", torch.zeros(vector_dim))
        self.register_buffer("vector_std", torch.ones(vector_dim))

    def set_normalization(self, vectors: torch.Tensor, min_std: float = 1e-2) -> None:
        """Standardize the vector part with the mean and std of ``vectors`` ``(N, vector_dim)`` (the
        concatenated vector keys, in key order), std floored at ``min_std``."""
        self.vector_mean.copy_(vectors.mean(0))
        self.vector_std.copy_(vectors.std(0, correction=0).clamp(min=min_std))

    def vector(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The standardized vector keys ``(B, vector_dim)``, clipped to ±10 std."""
        vec = torch.cat([obs[k].flatten(1).float() for k in self.vector_keys], dim=-1)
        return ((vec - self.vector_mean) / self.vector_std).clamp(-10.0, 10.0)

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = []
        if self.vector_keys:
            vec = self.vector(obs)
            parts.append(vec if self.proprio is None else self.proprio(vec))
        for key in self.image_keys:
            images = obs[key]
            if images.dtype == torch.uint8:
                images = images.permute(0, 3, 1, 2).float() / 255.0
            if self.augment and self.training:
                images = random_shift(images)
            parts.append(self.cameras[key](images))
        return torch.cat(parts, dim=-1)


class GaussianTanhActor(nn.Module):
    """π(a|s): MLP → mean, log-std; a = tanh(u), u ~ N(mean, std). Log-probs include the tanh
    Jacobian. ``action_dim`` may be a chunk (h·|A|)."""

    def __init__(self, in_dim: int, action_dim: int, hidden: tuple[int, ...] = (256, 256), layer_norm: bool = False,
                 activation: str = "relu"):
        super().__init__()
        self.trunk = mlp(in_dim, hidden, hidden[-1], layer_norm, activation)[:-1]  # hidden layers with activations
        self.head = nn.Linear(hidden[-1], 2 * action_dim)
        self.action_dim = action_dim

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, log_std)``, each ``(B, A)`` float32 (the head runs outside autocast)."""
        hidden = self.trunk(features)
        with torch.autocast(hidden.device.type, enabled=False):
            mean, log_std = self.head(hidden.float()).chunk(2, dim=-1)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1.0)
        return mean, log_std

    def sample(self, features: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(action (B, A) in (-1, 1), log_prob (B,))``."""
        mean, log_std = self(features)
        u = mean if deterministic else mean + log_std.exp() * torch.randn_like(mean)
        action = torch.tanh(u)
        log_prob = gaussian_log_prob(u, mean, log_std) - tanh_log_det(u)
        return action, log_prob

    def log_prob(self, features: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Log-density of dataset actions (clipped inside (-1, 1))."""
        mean, log_std = self(features)
        action = action.clamp(-1.0 + 1e-5, 1.0 - 1e-5)
        u = torch.atanh(action)
        return gaussian_log_prob(u, mean, log_std) - tanh_log_det(u)


def gaussian_log_prob(u: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    z = (u - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def tanh_log_det(u: torch.Tensor) -> torch.Tensor:
    """log |d tanh(u)/du| summed over the action dims, numerically stable."""
    return (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)


class EnsembleLinear(nn.Module):
    """``n`` independent linear layers applied as one batched matmul: ``(n, B, in) → (n, B, out)``.
    ``members`` (k indices) applies only those layers: ``(k, B, in) → (k, B, out)``."""

    def __init__(self, n: int, in_dim: int, out_dim: int):
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)  # torch.nn.Linear's default initialization, per member
        self.weight = nn.Parameter(torch.empty(n, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        if members is None:
            return torch.baddbmm(self.bias, x, self.weight)
        return torch.baddbmm(self.bias[members], x, self.weight[members])


class EnsembleLayerNorm(nn.Module):
    """LayerNorm over the last axis with a learned scale and offset per ensemble member: ``(n, B, H)``."""

    def __init__(self, n: int, width: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n, 1, width))
        self.bias = nn.Parameter(torch.zeros(n, 1, width))

    def forward(self, h: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        weight, bias = (self.weight, self.bias) if members is None else (self.weight[members], self.bias[members])
        return torch.addcmul(bias, F.layer_norm(h, h.shape[-1:]), weight)


class CriticEnsemble(nn.Module):
    """``n`` LayerNorm MLP Q-functions computed together (RLPD/SERL) as one module.

    Every layer is one batched matmul over the ensemble axis (the shared input is broadcast, not
    copied), so activations stay contiguous ``(n, B, H)`` and each LayerNorm/activation is one op.
    forward(features (B, F), action (B, A), members=None) → Q ``(n, B)`` float32 (the output layer runs
    outside autocast); ``members`` (k indices) evaluates only those critics (the RLPD target subset),
    giving ``(k, B)``.
    """

    def __init__(self, in_dim: int, action_dim: int, n: int = 10, hidden: tuple[int, ...] = (256, 256),
                 layer_norm: bool = True, activation: str = "relu"):
        super().__init__()
        self.n, self.hidden = n, hidden
        widths = (in_dim + action_dim, *hidden)
        self.layers = nn.ModuleList(EnsembleLinear(n, a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.norms = nn.ModuleList(EnsembleLayerNorm(n, w) for w in hidden) if layer_norm else None
        self.out = EnsembleLinear(n, hidden[-1], 1)
        self.act = ACTIVATIONS[activation][0]

    def forward(self, features: torch.Tensor, action: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        x = torch.cat([features, action], dim=-1)
        n = self.n if members is None else len(members)
        h = x.expand(n, *x.shape)
        for i, layer in enumerate(self.layers):
            h = layer(h, members)
            if self.norms is not None:
                h = self.norms[i](h, members)
            h = self.act(h)
        with torch.autocast(h.device.type, enabled=False):
            return self.out(h.float(), members).squeeze(-1)


class LoopCriticEnsemble(nn.Module):
    """Reference implementation: a Python loop over ``n`` separate LayerNorm MLPs (for the benchmark
    and for tests that check the batched ensemble against it)."""

    def __init__(self, in_dim: int, action_dim: int, n: int = 10, hidden: tuple[int, ...] = (256, 256)):
        super().__init__()
        self.critics = nn.ModuleList(mlp(in_dim + action_dim, hidden, 1, layer_norm=True) for _ in range(n))
        self.n = n

    def forward(self, features: torch.Tensor, action: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        x = torch.cat([features, action], dim=-1)
        chosen = range(self.n) if members is None else members.tolist()
        return torch.stack([self.critics[i](x).squeeze(-1) for i in chosen])
