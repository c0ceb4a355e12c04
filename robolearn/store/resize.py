"""Derive a copy of a store at the training resolution: record at any resolution, train at a small one.

RGB frames are resized with antialiased bilinear filtering and re-encoded; depth uses nearest
neighbour (averaging across an object edge would invent depths). Camera calibration in the new
store's attributes is scaled to match.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robolearn.store.codecs import kind_of
from robolearn.store.store import DemoStore, copy_episodes


def resize_frames(frames: np.ndarray, height_px: int, width_px: int, depth: bool = False) -> np.ndarray:
    """``(T, H, W, 3) uint8`` (or ``(T, H, W)`` float depth) → the same at ``height_px × width_px``."""
    tensor = torch.from_numpy(np.ascontiguousarray(frames))
    if depth:
        out = torch.nn.functional.interpolate(tensor[:, None], size=(height_px, width_px), mode="nearest-exact")
        return out[:, 0].numpy()
    x = tensor.permute(0, 3, 1, 2).float()
    out = torch.nn.functional.interpolate(x, size=(height_px, width_px), mode="bilinear", antialias=True,
                                          align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _scaled_cameras(cameras: dict[str, Any] | None, height_px: int, width_px: int) -> dict[str, Any] | None:
    if not cameras:
        return cameras
    scaled = copy.deepcopy(cameras)
    for entry in scaled.values():
        intrinsics = entry.get("intrinsics")
        if intrinsics and intrinsics.get("width_px") and intrinsics.get("height_px"):
            sx, sy = width_px / intrinsics["width_px"], height_px / intrinsics["height_px"]
            intrinsics.update(fx_px=intrinsics["fx_px"] * sx, fy_px=intrinsics["fy_px"] * sy,
                              cx_px=(intrinsics["cx_px"] + 0.5) * sx - 0.5, cy_px=(intrinsics["cy_px"] + 0.5) * sy - 0.5,
                              width_px=width_px, height_px=height_px)
        entry.update(width_px=width_px, height_px=height_px)
    return scaled


def resize_store(source: DemoStore, destination: str | Path, height_px: int, width_px: int,
                 jpeg_quality: int | None = None, progress: Callable[[int], None] | None = None) -> DemoStore:
    """A new store at ``destination`` with every camera's frames at ``height_px × width_px``."""
    if height_px <= 0 or width_px <= 0:
        raise ValueError(f"size must be positive, got {height_px}x{width_px}")

    def transform(key: str, frames: np.ndarray) -> np.ndarray:
        kind = kind_of(key)
        if kind == "lowdim":
            return frames
        return resize_frames(frames, height_px, width_px, depth=kind == "depth")

    out = copy_episodes(source, destination, range(source.n_episodes), transform=transform, jpeg_quality=jpeg_quality,
                        progress=progress)
    attrs = dict(out.root.attrs)["robolearn"]
    attrs["cameras"] = _scaled_cameras(attrs.get("cameras"), height_px, width_px)
    if attrs.get("cell_config"):
        for camera in attrs["cell_config"].get("cameras") or []:
            camera.update(width_px=width_px, height_px=height_px)
    attrs["resized_from"] = str(source.path)
    out.root.attrs["robolearn"] = attrs
    return out
