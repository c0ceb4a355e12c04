"""Image encoders for the learner: a trunk (pixels → feature map) and a head (map → features).

Trunks, ``EncoderConfig.image``:

* ``cnn``: the DrQ/RLPD 4-layer CNN (32 channels, 3×3, first stride 2), trained end to end;
* ``fast_cnn``: three strided convolutions (16, 32, 32 channels), about 5× cheaper than ``cnn`` at
  the same resolution: the trunk a CPU can train on the store's own demonstrations;
* ``resnet10`` / ``resnet18``: ResNet-v1 with GroupNorm (4 groups) as SERL's, TF ``SAME`` padding so
  that SERL's ImageNet ResNet-10 (``robolearn encoder convert-serl``) loads bit-faithfully;
* ``torchvision_resnet18``: torchvision's ResNet-18 (BatchNorm, kept in eval mode) from its ImageNet
  state-dict file;
* ``clip`` / ``siglip`` / ``dinov2``: a Hugging Face vision tower (``save_pretrained`` directory); its
  patch tokens form the map.

Heads, ``EncoderConfig.head``: ``flatten`` (DrQ: flattened map → Dense → LayerNorm → tanh),
``spatial_embeddings`` (SERL: learned H×W×C×8 kernels, dropout 0.1, Dense → LayerNorm → tanh),
``keypoints`` (robomimic's spatial softmax: a 1×1 conv to K maps, their expected (x, y), then
Dense → LayerNorm → tanh) or ``avg`` (global average, then Dense → LayerNorm → tanh). Every head
ends in ``latent_dim`` features in [−1, 1].

Images enter as ``(B, 3, H, W)`` float in [0, 1]; trunks normalize them themselves.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from robolearn.errors import NotFoundError, UsageError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TRUNKS = ("cnn", "fast_cnn", "resnet10", "resnet18", "torchvision_resnet18", "clip", "siglip", "dinov2")
HEADS = ("flatten", "spatial_embeddings", "keypoints", "avg")
DEFAULT_HEAD = {"cnn": "flatten", "fast_cnn": "keypoints"}
PRETRAINED_ONLY = ("torchvision_resnet18", "clip", "siglip", "dinov2")


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


class DrQCNN(nn.Module):
    """DrQ/RLPD trunk: 4 convolutions of 32 channels, 3×3, the first with stride 2. ``(B, 32, h, w)``."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.Sequential(nn.Conv2d(3, 32, 3, stride=2), nn.ReLU(), nn.Conv2d(32, 32, 3), nn.ReLU(),
                                   nn.Conv2d(32, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3), nn.ReLU())
        self.channels = 32

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.convs(images - 0.5)


class FastCNN(nn.Module):
    """Three strided convolutions (5×5/2 to 16, 3×3/2 to 32, 3×3 to 32): ``(B, 32, h, w)``, h ≈ H/4."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.Sequential(nn.Conv2d(3, 16, 5, stride=2), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2), nn.ReLU(),
                                   nn.Conv2d(32, 32, 3), nn.ReLU())
        self.channels = 32

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.convs(images - 0.5)


def _same_pad(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """TF/Flax ``SAME`` padding: the output has ceil(size / stride) rows, and an odd total pad puts
    the extra row and column at the bottom and right (where PyTorch's symmetric padding differs)."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value) if any(pads) else x


class SameConv(nn.Conv2d):
    """A bias-free ``k×k`` convolution with ``SAME`` padding."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1):
        super().__init__(in_ch, out_ch, kernel, stride, padding=0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(_same_pad(x, self.kernel_size[0], self.stride[0]))


class _BasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.conv1, self.bn1 = SameConv(in_ch, out_ch, 3, stride), nn.GroupNorm(4, out_ch)
        self.conv2, self.bn2 = SameConv(out_ch, out_ch, 3), nn.GroupNorm(4, out_ch)
        self.down = None
        if stride != 1 or in_ch != out_ch:
            self.down = nn.Sequential(SameConv(in_ch, out_ch, 1, stride), nn.GroupNorm(4, out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + (x if self.down is None else self.down(x)))


class GroupNormResNet(nn.Module):
    """SERL's ResNet-v1 trunk: 7×7/2 stem conv (padding 3) + GroupNorm + 3×3/2 max-pool (``SAME``),
    then one (ResNet-10) or two (ResNet-18) basic blocks per stage of 64, 128, 256, 512 channels;
    ImageNet mean/std input normalization. ``(B, 512, ⌈H/32⌉, ⌈W/32⌉)``: 4×4×512 at 128×128."""

    def __init__(self, depth: int = 10):
        super().__init__()
        blocks = {10: 1, 18: 2}
        if depth not in blocks:
            raise UsageError(f"ResNet depth {depth} is not supported; use 10 or 18")
        self.depth = depth
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.GroupNorm(4, 64), nn.ReLU())
        stages, in_ch = [], 64
        for i, ch in enumerate((64, 128, 256, 512)):
            for j in range(blocks[depth]):
                stages.append(_BasicBlock(in_ch, ch, 2 if (i > 0 and j == 0) else 1))
                in_ch = ch
        self.stages = nn.Sequential(*stages)
        self.channels = 512
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.stem((images - self.mean) / self.std)
        x = F.max_pool2d(_same_pad(x, 3, 2, value=-math.inf), 3, 2)
        return self.stages(x)


class TorchvisionResNet18(nn.Module):
    """torchvision's ``resnet18`` trunk with its parameter names (``conv1``, ``bn1``, ``layer1.0.conv1``,
    ..., ``layer4.1.bn2``), so its ImageNet state dict loads as is; BatchNorm statistics stay as loaded
    (the module keeps its norms in eval mode). ``(B, 512, H/32, W/32)``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        in_ch = 64
        for i, ch in enumerate((64, 128, 256, 512)):
            layer = []
            for j in range(2):
                stride = 2 if (i > 0 and j == 0) else 1
                layer.append(_TorchvisionBlock(in_ch, ch, stride))
                in_ch = ch
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
        self.channels = 512
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> TorchvisionResNet18:
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1((images - self.mean) / self.std)))
        x = F.max_pool2d(x, 3, 2, 1)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class _TorchvisionBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False), nn.BatchNorm2d(out_ch)
        self.conv2, self.bn2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False), nn.BatchNorm2d(out_ch)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class HuggingFaceTower(nn.Module):
    """A CLIP, SigLIP or DINOv2 vision tower loaded with ``transformers`` from a ``save_pretrained``
    directory; images are resized to its input size and normalized with its mean and std. Its last
    patch tokens, on their grid: ``(B, hidden, side, side)``."""

    def __init__(self, kind: str, path: str | Path):
        super().__init__()
        from robolearn.reward.encoders import _import_transformers, _normalization

        transformers = _import_transformers()
        path = Path(path)
        if not path.is_dir():
            raise NotFoundError(f"{kind} weights {path}: no such directory; pass a directory saved with "
                                "`save_pretrained` (config.json + model.safetensors)")
        model = transformers.AutoModel.from_pretrained(str(path), local_files_only=True, use_safetensors=True)
        self.tower = model.vision_model if hasattr(model, "vision_model") else model
        vision = model.config.vision_config if hasattr(model.config, "vision_config") else model.config
        self.image_size_px, self.patch_px = int(vision.image_size), int(vision.patch_size)
        self.channels = int(vision.hidden_size)
        mean, std = _normalization(path, "clip" if kind == "clip" else "siglip")
        if kind == "dinov2":
            mean, std = IMAGENET_MEAN, IMAGENET_STD
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        size = (self.image_size_px, self.image_size_px)
        if images.shape[-2:] != size:
            images = F.interpolate(images, size=size, mode="bilinear", antialias=True, align_corners=False)
        tokens = self.tower(pixel_values=(images - self.mean) / self.std).last_hidden_state
        side = self.image_size_px // self.patch_px
        patches = tokens[:, -side * side:]  # CLIP and DINOv2 lead with a class token, SigLIP has none
        return patches.transpose(1, 2).reshape(len(tokens), self.channels, side, side)


class ProjectHead(nn.Module):
    """``flatten`` or ``avg``: the map flattened (or averaged over space), Dense → LayerNorm → tanh."""

    def __init__(self, channels: int, map_hw: tuple[int, int], latent_dim: int, pool: bool):
        super().__init__()
        self.pool = pool
        n_in = channels if pool else channels * map_hw[0] * map_hw[1]
        self.project = nn.Sequential(nn.Linear(n_in, latent_dim), nn.LayerNorm(latent_dim), nn.Tanh())

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        x = feature_map.mean((-2, -1)) if self.pool else feature_map.flatten(1)
        return self.project(x)


class SpatialEmbeddingsHead(nn.Module):
    """SERL's SpatialLearnedEmbeddings: ``features`` learned ``(h, w)`` kernels per channel summed
    against the map (C·F values), dropout 0.1, Dense → LayerNorm → tanh."""

    def __init__(self, channels: int, map_hw: tuple[int, int], latent_dim: int, features: int = 8):
        super().__init__()
        self.kernel = nn.Parameter(nn.init.kaiming_normal_(torch.empty(channels, *map_hw, features)))
        self.project = nn.Sequential(nn.Dropout(0.1), nn.Linear(channels * features, latent_dim),
                                     nn.LayerNorm(latent_dim), nn.Tanh())

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        return self.project(torch.einsum("bchw,chwf->bcf", feature_map, self.kernel).flatten(1))


class KeypointsHead(nn.Module):
    """Spatial softmax (robomimic, Diffusion Policy): a 1×1 conv to ``keypoints`` maps, each map's
    softmax-weighted mean (x, y) in [−1, 1]; then Dense → LayerNorm → tanh."""

    def __init__(self, channels: int, map_hw: tuple[int, int], latent_dim: int, keypoints: int = 32):
        super().__init__()
        self.to_maps = nn.Conv2d(channels, keypoints, 1)
        h, w = map_hw
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        self.register_buffer("grid", torch.stack([xs.flatten(), ys.flatten()], -1), persistent=False)  # (h·w, 2)
        self.project = nn.Sequential(nn.Linear(2 * keypoints, latent_dim), nn.LayerNorm(latent_dim), nn.Tanh())

    def keypoints(self, feature_map: torch.Tensor) -> torch.Tensor:
        """``(B, keypoints, 2)`` expected (x, y) of every map."""
        attention = F.softmax(self.to_maps(feature_map).flatten(2), dim=-1)  # (B, K, h·w)
        return attention @ self.grid

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        return self.project(self.keypoints(feature_map).flatten(1))


class ImageEncoder(nn.Module):
    """One camera's encoder: ``trunk`` then ``head``. images ``(B, 3, H, W)`` float in [0, 1] →
    ``(B, latent_dim)``. ``freeze_trunk`` keeps the trunk's weights fixed (and in eval mode)."""

    def __init__(self, trunk: nn.Module, head: nn.Module, latent_dim: int, freeze_trunk: bool = False):
        super().__init__()
        self.trunk, self.head, self.out_dim = trunk, head, latent_dim
        self.freeze_trunk = freeze_trunk
        if freeze_trunk:
            self.trunk.requires_grad_(False)

    def train(self, mode: bool = True) -> ImageEncoder:
        super().train(mode)
        if self.freeze_trunk:
            self.trunk.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.freeze_trunk:
            with torch.no_grad():
                feature_map = self.trunk(images)
        else:
            feature_map = self.trunk(images)
        return self.head(feature_map)


def build_trunk(kind: str, weights: str | None) -> nn.Module:
    """The trunk ``kind`` (see the module docstring), with ``weights`` loaded when given."""
    if kind not in TRUNKS:
        raise UsageError(f"unknown image trunk {kind!r}; choose one of {', '.join(TRUNKS)}")
    if kind in PRETRAINED_ONLY and weights is None:
        raise UsageError(f"the {kind} trunk is a pretrained model: set encoder.weights to its local "
                         + ("state-dict file (resnet18-f37072fd.pth or .safetensors)" if kind == "torchvision_resnet18"
                            else "save_pretrained directory"))
    if kind in ("clip", "siglip", "dinov2"):
        return HuggingFaceTower(kind, weights)
    trunk = {"cnn": DrQCNN, "fast_cnn": FastCNN, "torchvision_resnet18": TorchvisionResNet18}.get(kind)
    trunk = trunk() if trunk is not None else GroupNormResNet(int(kind[6:]))
    if weights is not None:
        load_trunk_weights(trunk, weights)
    return trunk


def load_trunk_weights(trunk: nn.Module, weights: str | Path) -> None:
    """Load a safetensors file (or, for torchvision's own release, a ``.pth`` state dict read with
    ``weights_only=True``) whose tensors cover every parameter of ``trunk``; tensors the trunk does
    not have (torchvision's ``fc``) are ignored."""
    path = Path(weights)
    if not path.is_file():
        raise NotFoundError(f"trunk weights {path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    own = trunk.state_dict()
    missing = [k for k in own if k not in state]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    if missing or wrong:
        raise UsageError(f"{path} does not fit the {type(trunk).__name__} trunk: missing {missing[:3]}, wrong shape "
                         f"{wrong[:3]} (of {len(missing)}, {len(wrong)}); convert SERL's pickle with `robolearn encoder "
                         "convert-serl`, or pick the trunk the file was made for")
    trunk.load_state_dict({k: state[k] for k in own})


def build_image_encoder(kind: str, head: str | None, image_hw: tuple[int, int], latent_dim: int,
                        weights: str | None = None, freeze_trunk: bool | None = None, keypoints: int = 32,
                        spatial_features: int = 8) -> ImageEncoder:
    """One camera's ``ImageEncoder`` for images of ``image_hw`` (the size the trunk is fed)."""
    trunk = build_trunk(kind, weights)
    head = head or DEFAULT_HEAD.get(kind, "spatial_embeddings")
    if head not in HEADS:
        raise UsageError(f"unknown image head {head!r}; choose one of {', '.join(HEADS)}")
    with torch.no_grad():
        probe = trunk.eval()(torch.zeros(1, 3, *image_hw))
    trunk.train()
    channels, map_hw = probe.shape[1], tuple(probe.shape[-2:])
    module: nn.Module
    if head == "spatial_embeddings":
        module = SpatialEmbeddingsHead(channels, map_hw, latent_dim, spatial_features)
    elif head == "keypoints":
        module = KeypointsHead(channels, map_hw, latent_dim, keypoints)
    else:
        module = ProjectHead(channels, map_hw, latent_dim, pool=head == "avg")
    frozen = (weights is not None) if freeze_trunk is None else freeze_trunk
    return ImageEncoder(trunk, module, latent_dim, frozen)


def trunk_description(kind: str, weights: str | None) -> dict[str, Any]:
    """What a report says about an encoder: the trunk and where its weights came from."""
    return {"trunk": kind, "weights": str(weights) if weights else "trained on this run's data"}
