"""Config for an OpenCV camera (imports no SDK)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from robolearn.cell import CameraConfig, CellConfig


@CameraConfig.register("opencv")
@dataclass
class OpenCVCameraConfig(CameraConfig):
    """A UVC webcam or a video file read with OpenCV (color only: set ``depth: false``).

    source: a device index (``"0"``), a device path (``/dev/video2``, or a stable
    ``/dev/v4l/by-id/...`` link) or a video file. Webcams are asked for width_px × height_px at fps;
    frames of any other size (a file, a camera that refused the mode) are resized to it.
    fourcc: pixel format to request from a webcam (``MJPG`` allows higher rates over USB 2); empty
    keeps the default. loop: rewind a video file at its end instead of raising EOFError.
    Intrinsics come from ``fov_y_deg`` (square pixels, centred principal point): calibrate and set it.
    """

    source: str = "0"
    fourcc: str = ""
    loop: bool = False
    depth: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.depth:
            raise ValueError(f"camera {self.name!r}: an opencv camera has no depth stream; set depth: false")
        if self.fourcc and len(self.fourcc) != 4:
            raise ValueError(f"camera {self.name!r}: fourcc must be 4 characters such as MJPG, got {self.fourcc!r}")

    def create(self, cell: CellConfig, twin: Any = None) -> Any:
        from .camera import OpenCVCamera

        return OpenCVCamera(self)
