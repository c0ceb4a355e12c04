"""OpenCV camera driver: UVC webcams (V4L2 on Linux) and video files, color only.

Stamps: a webcam frame is stamped with the host monotonic clock right after ``read`` returns; a
video file frame with the stamp of the first frame plus its position in the file
(``CAP_PROP_POS_MSEC``), so recorded timing is preserved; with ``loop: true`` each pass continues
one frame period after the last frame of the previous one, so stamps keep increasing. Webcams are
asked for a one-frame driver buffer (``CAP_PROP_BUFFERSIZE``, where the backend supports it, as
V4L2 does), so ``read`` returns a fresh frame instead of one that waited in the queue. Webcams
report no frame counter, so drops cannot be detected; ``frame_index`` counts the frames read.

``list_devices`` (``robolearn find-cameras``) probes each webcam for common sizes
(``PROBED_SIZES_PX``) in the ``PROBED_FOURCCS`` pixel formats: V4L2 snaps a request to a mode the
device has, so a size that reads back unchanged is supported. Other sizes are not listed;
``v4l2-ctl --list-formats-ext -d /dev/videoN`` lists every mode.
"""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from robolearn.interfaces import CameraIntrinsics, Frame, now_ns

from .._sdk import require_sdk
from .config import OpenCVCameraConfig

PROBED_SIZES_PX = ((320, 240), (640, 480), (800, 600), (1280, 720), (1920, 1080))
PROBED_FOURCCS = ("YUYV", "MJPG")


def load_sdk() -> ModuleType:
    return require_sdk("cv2", "opencv", "OpenCV camera")


class OpenCVCamera:
    """Implements ``robolearn.interfaces.Camera`` with ``cv2.VideoCapture``."""

    def __init__(self, config: OpenCVCameraConfig, sdk: ModuleType | None = None):
        self.config = config
        self.name = config.name
        self._cv2 = sdk
        self.capture: Any = None
        self.is_file = False
        self._frames_read = 0
        self._file_start_ns = 0
        self._last_position_ns = 0
        self._frame_period_ns = 0

    @property
    def cv2(self) -> ModuleType:
        if self._cv2 is None:
            self._cv2 = load_sdk()
        return self._cv2

    @property
    def serial(self) -> str:
        return self.config.source

    @property
    def intrinsics(self) -> CameraIntrinsics:
        """The configured stream's pinhole intrinsics (``CameraConfig.intrinsics``: fx/fy/cx/cy when
        calibrated, else from ``fov_y_deg``)."""
        return self.config.intrinsics()

    def connect(self) -> None:
        cv2, config = self.cv2, self.config
        source = config.source
        self.is_file = Path(source).is_file() and not source.startswith("/dev/")
        backend = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        if self.is_file:
            capture = cv2.VideoCapture(source)
        else:
            capture = cv2.VideoCapture(int(source) if source.isdigit() else source, backend)
        if not capture.isOpened():
            raise ConnectionError(
                f"camera {self.name!r}: OpenCV cannot open {source!r}; check the device or file exists and is "
                "readable (video group, docs/hardware.md), and list cameras with `robolearn find-cameras`"
            )
        if self.is_file:
            file_fps = capture.get(cv2.CAP_PROP_FPS)
            self._frame_period_ns = round(1e9 / (file_fps if file_fps > 0 else config.fps))
        else:
            if config.fourcc:
                capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*config.fourcc))
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, config.width_px)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, config.height_px)
            capture.set(cv2.CAP_PROP_FPS, config.fps)
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # ignored (False) by backends without a driver queue setting
        self.capture = capture
        self._frames_read = 0

    def read(self) -> Frame:
        cv2, config = self.cv2, self.config
        if self.capture is None:
            raise ConnectionError(f"camera {self.name!r} is not connected; call connect() first")
        ok, bgr = self.capture.read()
        rewound = False
        if not ok and self.is_file and config.loop and self._frames_read > 0:
            self.capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, bgr = self.capture.read()
            rewound = True
        if not ok:
            if self.is_file:
                raise EOFError(f"camera {self.name!r}: end of video file {config.source!r} (set loop: true to rewind)")
            raise ConnectionError(f"camera {self.name!r}: no frame from {config.source!r}; was it unplugged?")
        stamp_ns = now_ns()
        if self.is_file:
            position_ns = int(round(self.capture.get(cv2.CAP_PROP_POS_MSEC) * 1e6))
            if self._frames_read == 0:
                self._file_start_ns = stamp_ns - position_ns
            elif rewound:  # the next pass starts one frame period after the last frame of this one
                self._file_start_ns += self._last_position_ns + self._frame_period_ns - position_ns
            self._last_position_ns = position_ns
            stamp_ns = self._file_start_ns + position_ns
        if bgr.shape[:2] != (config.height_px, config.width_px):
            bgr = cv2.resize(bgr, (config.width_px, config.height_px), interpolation=cv2.INTER_AREA)
        self._frames_read += 1
        rgb = np.ascontiguousarray(bgr[..., ::-1])
        return Frame(color=rgb, depth_m=None, stamp_ns=stamp_ns, frame_index=self._frames_read - 1)

    def disconnect(self) -> None:
        if self.capture is not None:
            self.capture.release()
            self.capture = None


def _sysfs(node: str, *parts: str) -> str:
    path = Path("/sys/class/video4linux", node, *parts)
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def list_devices(sdk: ModuleType | None = None) -> list[dict[str, Any]]:
    """V4L2 video-capture devices OpenCV can open (RealSense nodes excluded: they are listed as RealSense)."""
    cv2 = sdk or load_sdk()
    by_id = {os.path.realpath(p): p for p in glob.glob("/dev/v4l/by-id/*")}
    cameras = []
    for path in sorted(glob.glob("/dev/video*"), key=lambda p: int(p.removeprefix("/dev/video") or 0)):
        node = os.path.basename(path)
        name = _sysfs(node, "name")
        if "realsense" in name.lower():
            continue
        capture = cv2.VideoCapture(path, cv2.CAP_V4L2)
        try:
            if not capture.isOpened() or not capture.read()[0]:
                continue  # metadata nodes and busy devices
            modes = probe_modes(capture, cv2)
        finally:
            capture.release()
        cameras.append(
            {
                "type": "opencv",
                "serial": by_id.get(path, path),
                "name": name,
                "source": by_id.get(path, path),
                "modes": modes,
            }
        )
    return cameras


def fourcc_name(code: float) -> str:
    """``CAP_PROP_FOURCC``'s number as its four characters (``MJPG``)."""
    return int(code).to_bytes(4, "little").decode("ascii", errors="replace")


def probe_modes(capture: Any, cv2: ModuleType) -> list[str]:
    """Modes of an opened webcam among ``PROBED_SIZES_PX`` × ``PROBED_FOURCCS``, e.g. ``color
    1280x720@30 MJPG``: each size is requested and kept when it reads back unchanged, with the frame
    rate the device then reports. Falls back to the current mode when nothing probes (a backend
    that ignores the requests)."""
    current = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
               capture.get(cv2.CAP_PROP_FPS), fourcc_name(capture.get(cv2.CAP_PROP_FOURCC)))
    modes = []
    for fourcc in PROBED_FOURCCS:
        capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*fourcc))
        if fourcc_name(capture.get(cv2.CAP_PROP_FOURCC)) != fourcc:
            continue
        for width, height in PROBED_SIZES_PX:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            if (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (width, height):
                modes.append(f"color {width}x{height}@{capture.get(cv2.CAP_PROP_FPS):g} {fourcc}")
    if not modes:
        width, height, fps, fourcc = current
        modes.append(f"color {width}x{height}@{fps:g} {fourcc}")
    return modes
