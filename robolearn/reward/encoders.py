"""Frozen CLIP / SigLIP image (and text) encoders, loaded with Hugging Face ``transformers``.

Why ``transformers`` and not ``open_clip``: ``open_clip`` imports ``torchvision`` at import time
(``open_clip/transform.py``, ``open_clip/utils.py``), and the only ``torchvision`` wheel on PyPI for
Linux is built against CUDA torch; with the CPU torch this project installs, ``import torchvision``
fails (``operator torchvision::nms does not exist``). ``transformers``' CLIP and SigLIP models need
neither ``torchvision`` nor Pillow: this module resizes and normalizes images itself, with the
model's own mean and std.

Weights load from a local directory (``save_pretrained`` layout: ``config.json`` plus
``model.safetensors``, optionally ``preprocessor_config.json`` and tokenizer files), or from a hub
name such as ``openai/clip-vit-base-patch32`` or ``google/siglip-base-patch16-224`` when the machine
is online. Both go through :func:`load_encoder`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robolearn.errors import DataError, RobolearnError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)
SUPPORTED_MODEL_TYPES = ("clip", "siglip", "siglip2")


class EncoderLoadError(RobolearnError, RuntimeError):
    """A backbone that cannot be loaded; the message says what was tried and how to fix it."""


def _import_transformers() -> Any:
    try:
        import transformers
    except ImportError as err:
        raise EncoderLoadError(
            "image encoders need the `transformers` package: pip install 'robolearn[vlm]'"
        ) from err
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    return transformers


class FrozenImageEncoder(nn.Module):
    """A frozen CLIP/SigLIP model that embeds uint8 RGB images (and text prompts).

    ``embed_dim``: size of the (projected) image embedding. ``image_size_px``: the side the model
    expects; inputs of any size are resized to it.
    """

    def __init__(self, model: nn.Module, image_size_px: int, mean: tuple[float, ...], std: tuple[float, ...],
                 source: str, tokenizer: Any = None):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.image_size_px = int(image_size_px)
        self.source = source
        self.tokenizer = tokenizer
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.embed_dim = int(model.config.projection_dim if hasattr(model.config, "projection_dim")
                             else model.config.vision_config.hidden_size)

    def train(self, mode: bool = True) -> FrozenImageEncoder:
        """The backbone stays in eval mode (frozen: no dropout, no batch-norm updates)."""
        super().train(mode)
        self.model.eval()
        return self

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def preprocess(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``(B, H, W, 3) uint8`` RGB → ``(B, 3, S, S) float32`` normalized pixels, S = image_size_px."""
        x = torch.as_tensor(images, device=self.device)
        if x.ndim != 4 or x.shape[-1] != 3:
            raise DataError(f"expected images of shape (B, H, W, 3), got {tuple(x.shape)}")
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-2:] != (self.image_size_px, self.image_size_px):
            x = F.interpolate(x, size=(self.image_size_px, self.image_size_px), mode="bilinear",
                              antialias=True, align_corners=False)
        return (x - self.mean) / self.std

    @torch.no_grad()
    def encode_images(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``(B, H, W, 3) uint8`` → ``(B, embed_dim) float32`` L2-normalized image embeddings."""
        out = self.model.get_image_features(pixel_values=self.preprocess(images))
        features = out if isinstance(out, torch.Tensor) else out.pooler_output
        return F.normalize(features.float(), dim=-1)

    def spatial_dim(self, grid: int) -> int:
        """Size of :meth:`encode_spatial`'s output for a ``grid`` × ``grid`` pooling."""
        return self.embed_dim + grid * grid * int(self.model.config.vision_config.hidden_size)

    @torch.no_grad()
    def encode_spatial(self, images: np.ndarray | torch.Tensor, grid: int) -> torch.Tensor:
        """``(B, H, W, 3) uint8`` → ``(B, spatial_dim(grid))``: the normalized image embedding, then
        the last layer's patch tokens average-pooled to a ``grid`` × ``grid`` map (where things are
        in the image, which the global embedding mostly averages away)."""
        pixels = self.preprocess(images)
        vision = self.model.vision_model(pixel_values=pixels)
        pooled = F.normalize(self._project(vision.pooler_output).float(), dim=-1)
        if grid <= 0:
            return pooled
        tokens = vision.last_hidden_state.float()
        side = self.image_size_px // int(self.model.config.vision_config.patch_size)
        patches = tokens[:, -side * side:].transpose(1, 2).reshape(len(tokens), -1, side, side)
        spatial = F.adaptive_avg_pool2d(patches, grid).flatten(1)
        return torch.cat([pooled, spatial], dim=-1)

    def _project(self, pooled: torch.Tensor) -> torch.Tensor:
        projection = getattr(self.model, "visual_projection", None)
        return projection(pooled) if projection is not None else pooled

    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """``N`` prompts → ``(N, embed_dim) float32`` L2-normalized text embeddings."""
        if self.tokenizer is None:
            raise EncoderLoadError(f"backbone {self.source} has no tokenizer files; text prompts need one")
        padding = "max_length" if self.model.config.model_type.startswith("siglip") else True
        tokens = self.tokenizer(list(prompts), padding=padding, truncation=True, return_tensors="pt")
        tokens = {k: v.to(self.device) for k, v in tokens.items() if k in ("input_ids", "attention_mask")}
        out = self.model.get_text_features(**tokens)
        features = out if isinstance(out, torch.Tensor) else out.pooler_output
        return F.normalize(features.float(), dim=-1)


def _normalization(path: Path | None, model_type: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    default = (CLIP_MEAN, CLIP_STD) if model_type == "clip" else (SIGLIP_MEAN, SIGLIP_STD)
    if path is None or not (path / "preprocessor_config.json").is_file():
        return default
    cfg = json.loads((path / "preprocessor_config.json").read_text())
    return tuple(cfg.get("image_mean", default[0])), tuple(cfg.get("image_std", default[1]))


def load_encoder(name_or_path: str | Path, device: str | torch.device = "cpu",
                 with_text: bool = False) -> FrozenImageEncoder:
    """Load a frozen CLIP/SigLIP encoder from a local directory or a hub name.

    A name that points to an existing directory loads offline (``local_files_only``); anything else
    is treated as a hub repository id and downloaded (cached by ``huggingface_hub``) when online.
    with_text: also load the tokenizer (needed for text prompts, e.g. CLIP similarity rewards).
    """
    transformers = _import_transformers()
    text = str(name_or_path)
    path = Path(text).expanduser()
    local = path.is_dir()
    if not local and (text.startswith((".", "/", "~")) or path.suffix or path.exists()):
        raise EncoderLoadError(
            f"backbone {text!r}: no such directory; pass a directory saved with `save_pretrained` "
            "(config.json + model.safetensors) or a hub name such as openai/clip-vit-base-patch32"
        )
    source = str(path.resolve()) if local else text
    try:
        config = transformers.AutoConfig.from_pretrained(source, local_files_only=local)
        if config.model_type not in SUPPORTED_MODEL_TYPES:
            raise EncoderLoadError(
                f"backbone {text!r} is a {config.model_type!r} model; supported: {', '.join(SUPPORTED_MODEL_TYPES)}"
            )
        model = transformers.AutoModel.from_pretrained(source, local_files_only=local)
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, local_files_only=local) if with_text else None
    except EncoderLoadError:
        raise
    except (OSError, ValueError) as err:
        where = "the local directory" if local else "the Hugging Face hub (is this machine online?)"
        raise EncoderLoadError(
            f"could not load backbone {text!r} from {where}: {err}. On a machine with internet, run "
            f"`hf download {text} --local-dir DIR` and pass DIR as the backbone"
        ) from err
    mean, std = _normalization(path if local else None, config.model_type)
    encoder = FrozenImageEncoder(model, config.vision_config.image_size, mean, std, source, tokenizer)
    return encoder.to(device)


def save_tiny_clip(path: str | Path, image_size_px: int = 64, patch_size_px: int = 8, width: int = 64,
                   layers: int = 2, seed: int = 0) -> Path:
    """Build a small randomly initialized CLIP and save it like a hub checkpoint (weights, config,
    word-level tokenizer), so tests and offline smoke runs exercise :func:`load_encoder` unchanged.

    A random frozen ViT is a random-feature extractor: good enough for twin frames, not a
    substitute for pretrained weights on real images.
    """
    transformers = _import_transformers()
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    path = Path(path)
    words = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"] + ["a", "an", "the", "of", "in", "on", "at", "to", "is", "robot", "arm", "gripper", "cube", "block", "red", "green", "blue", "table", "lifted", "grasped", "picked", "up", "down", "above", "near", "far", "open", "closed", "holding", "task", "done", "success", "failure", "photo", "image", "scene", "object", "goal", "reached", "pushed", "moved"]
    vocab = {w: i for i, w in enumerate(words)}
    torch.manual_seed(seed)
    config = transformers.CLIPConfig(
        text_config=dict(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers,
                         num_attention_heads=2, vocab_size=len(vocab), max_position_embeddings=16,
                         pad_token_id=0, bos_token_id=2, eos_token_id=3),
        vision_config=dict(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers,
                           num_attention_heads=2, image_size=image_size_px, patch_size=patch_size_px),
        projection_dim=width,
    )
    transformers.CLIPModel(config).save_pretrained(path)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", vocab["[BOS]"]), ("[EOS]", vocab["[EOS]"])]
    )
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]", eos_token="[EOS]",
        model_max_length=16,
    )
    fast.save_pretrained(path)
    return path
