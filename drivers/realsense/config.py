"""Config for a RealSense camera (imports no SDK)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from robolearn.cell import CameraConfig, CellConfig


@CameraConfig.register("realsense")
@dataclass
class RealSenseCameraConfig(CameraConfig):
    """One RealSense camera, chosen by serial number (``robolearn find-cameras`` lists them).

    width_px / height_px / fps: the color stream mode; depth_width_px / depth_height_px: the depth
    mode (0: same as color); depth is aligned to color either way. exposure_us: fixed color
    exposure in microseconds (0: auto exposure); gain: color gain (0: leave as is);
    white_balance_k: fixed white balance (0: auto). visual_preset: the depth preset.
    timeout_s: how long ``read`` waits for a frame before raising.
    """

    serial: str = ""
    depth_width_px: int = 0
    depth_height_px: int = 0
    exposure_us: float = 0.0
    gain: float = 0.0
    white_balance_k: float = 0.0
    visual_preset: Literal["default", "hand", "high_accuracy", "high_density", "medium_density"] = "default"
    timeout_s: float = 2.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.serial:
            raise ValueError(f"camera {self.name!r}: serial is required for a realsense camera (see `robolearn find-cameras`)")

    def create(self, cell: CellConfig, twin: Any = None) -> Any:
        from .camera import RealSenseCamera

        return RealSenseCamera(self)
