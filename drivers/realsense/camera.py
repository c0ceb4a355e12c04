"""RealSense camera driver: color + depth aligned to color, hardware timestamps, drop counting.

A background thread takes every frameset the camera delivers (so none pile up in librealsense's
queues), aligns depth to color with ``rs.align``, and keeps the newest; ``read`` returns the next
frame not yet returned. Frame numbers of the color stream are checked on every frameset: a gap
means frames were lost on the way (USB bandwidth, CPU load) and is added to ``dropped_frames``;
a frameset with color but no depth (or the reverse) counts in ``incomplete_framesets`` and is
skipped.

Timestamps: every sensor has ``global_time_enabled`` set, so librealsense reports the hardware
capture time translated into the host's wall clock (``timestamp_domain.global_time``: ms since the
Unix epoch, the domain of ROS stamps). The driver converts it to the host monotonic clock used
everywhere else in robolearn (``stamp_ns = timestamp_ms * 1e6 - clock_offset_ns`` with
``clock_offset_ns`` the wall-minus-monotonic offset, taken again for every frame so an NTP slew of
the wall clock does not accumulate); the camera node converts back with the same offset
(``robolearn.ros.clock.ros_stamp_ns``), so its header stamps are the hardware capture times. A
camera that cannot report global time (``hardware_clock`` domain) is stamped with the host's
arrival time instead; ``stamp_domain`` tells which was used.
"""

from __future__ import annotations

import threading
import time
from types import ModuleType
from typing import Any

import numpy as np

from robolearn.errors import DeviceError
from robolearn.interfaces import CameraIntrinsics, Frame, now_ns

from .._sdk import require_sdk
from .config import RealSenseCameraConfig

POLL_MS = 100
RGB_EXPOSURE_UNIT_US = 100.0  # the RGB sensors' exposure option counts in 100 µs units


def load_sdk() -> ModuleType:
    return require_sdk("pyrealsense2", "realsense", "RealSense")


class RealSenseCamera:
    """Implements ``robolearn.interfaces.Camera`` for one RealSense by serial number."""

    def __init__(self, config: RealSenseCameraConfig, sdk: ModuleType | None = None):
        self.config = config
        self.name = config.name
        self._rs = sdk
        self._pipeline: Any = None
        self._align: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._sequence = 0
        self._returned = 0
        self._error: BaseException | None = None
        self._intrinsics: CameraIntrinsics | None = None
        self._last_number: int | None = None
        self.dropped_frames = 0
        self.incomplete_framesets = 0
        self.frames_received = 0
        self.stamp_domain = ""
        self.clock_offset_ns = 0

    @property
    def rs(self) -> ModuleType:
        if self._rs is None:
            self._rs = load_sdk()
        return self._rs

    @property
    def serial(self) -> str:
        return self.config.serial

    @property
    def intrinsics(self) -> CameraIntrinsics:
        """Intrinsics of the color stream (depth is aligned to it); waits for the first frame."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._intrinsics is not None or self._error is not None, self.config.timeout_s):
                raise TimeoutError(f"camera {self.name!r} (RealSense {self.serial}): no frame yet, so no intrinsics")
        if self._intrinsics is None:
            raise DeviceError(f"camera {self.name!r} (RealSense {self.serial}) stopped: {self._error}")
        return self._intrinsics

    def connect(self) -> None:
        """Start the streams of the camera with ``config.serial`` and the streaming thread."""
        rs, config = self.rs, self.config
        context = rs.context()
        serials = [device.get_info(rs.camera_info.serial_number) for device in context.query_devices()]
        if config.serial not in serials:
            raise ConnectionError(
                f"camera {self.name!r}: no RealSense with serial {config.serial!r}; connected: {serials or 'none'}. "
                "Check the USB 3 cable and the udev rules (docs/hardware.md), and list cameras with `robolearn find-cameras`"
            )
        rs_config = rs.config()
        rs_config.enable_device(config.serial)
        fps = round(config.fps)
        rs_config.enable_stream(rs.stream.color, config.width_px, config.height_px, rs.format.rgb8, fps)
        if config.depth:
            width = config.depth_width_px or config.width_px
            height = config.depth_height_px or config.height_px
            rs_config.enable_stream(rs.stream.depth, width, height, rs.format.z16, fps)
        pipeline = rs.pipeline(context)
        profile = pipeline.start(rs_config)
        try:
            self._configure_sensors(profile.get_device())
        except Exception:
            pipeline.stop()
            raise
        self._pipeline = pipeline
        self.start_streaming(pipeline)

    def _configure_sensors(self, device: Any) -> None:
        rs, config = self.rs, self.config
        sensors = list(device.query_sensors())
        for sensor in sensors:
            if sensor.supports(rs.option.global_time_enabled):
                sensor.set_option(rs.option.global_time_enabled, 1)
        # The sensor streaming color: the RGB sensor, or the depth module itself on a D405.
        color = next(s for s in sensors if any(p.stream_type() == rs.stream.color for p in s.get_stream_profiles()))
        fixed_exposure, fixed_white_balance = config.exposure_us > 0, config.white_balance_k > 0
        self._set_option(color, "enable_auto_exposure", 0 if fixed_exposure else 1, "exposure_us", required=False)
        if fixed_exposure:
            self._set_option(color, "exposure", config.exposure_us / RGB_EXPOSURE_UNIT_US, "exposure_us")
        if config.gain > 0:
            self._set_option(color, "gain", config.gain, "gain")
        self._set_option(color, "enable_auto_white_balance", 0 if fixed_white_balance else 1, "white_balance_k", required=False)
        if fixed_white_balance:
            self._set_option(color, "white_balance", config.white_balance_k, "white_balance_k")
        if config.depth and config.visual_preset != "default":
            preset = int(getattr(rs.rs400_visual_preset, config.visual_preset))
            self._set_option(device.first_depth_sensor(), "visual_preset", preset, "visual_preset")

    def _set_option(self, sensor: Any, name: str, value: float, key: str, required: bool = True) -> None:
        """Set a sensor option; a missing one is an error naming the config key, unless not ``required``."""
        option = getattr(self.rs.option, name)
        if sensor.supports(option):
            sensor.set_option(option, value)
        elif required:
            raise ValueError(
                f"camera {self.name!r}: the {sensor.get_info(self.rs.camera_info.name)} sensor of RealSense "
                f"{self.serial} has no {name} option; remove {key} from its config"
            )

    def start_streaming(self, source: Any) -> None:
        """Consume framesets from ``source`` in a background thread.

        source: anything with librealsense's ``try_wait_for_frames(timeout_ms) -> (ok, frameset)``:
        the ``rs.pipeline`` that ``connect`` starts, or an ``rs.syncer`` fed by sensors (a recorded
        or ``rs.software_device`` stream).
        """
        self._align = self.rs.align(self.rs.stream.color)
        self.clock_offset_ns = time.time_ns() - time.monotonic_ns()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(source,), name=f"realsense-{self.name}", daemon=True)
        self._thread.start()

    def _loop(self, source: Any) -> None:
        while not self._stop.is_set():
            try:
                ok, frames = source.try_wait_for_frames(POLL_MS)
                frame = self._process(frames) if ok else None
            except Exception as err:  # surfaced to the caller of read()
                with self._cond:
                    self._error = err
                    self._cond.notify_all()
                return
            if frame is not None:
                with self._cond:
                    self._latest = frame
                    self._sequence += 1
                    self._cond.notify_all()

    def _process(self, frames: Any) -> Frame | None:
        """One frameset → ``Frame`` (None when a stream is missing from it)."""
        color = frames.get_color_frame()
        depth = frames.get_depth_frame() if self.config.depth else None
        if not color or (self.config.depth and not depth):
            self.incomplete_framesets += 1
            return None
        if self.config.depth:
            frames = self._align.process(frames)
            color, depth = frames.get_color_frame(), frames.get_depth_frame()
        number = int(color.get_frame_number())
        if self._last_number is not None and number > self._last_number + 1:
            self.dropped_frames += number - self._last_number - 1
        self._last_number = number
        self.frames_received += 1
        if self._intrinsics is None:
            intr = color.profile.as_video_stream_profile().get_intrinsics()
            self._intrinsics = CameraIntrinsics(intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy)
        rgb = np.asanyarray(color.get_data()).copy()
        depth_m = None
        if depth is not None:
            depth_m = np.asanyarray(depth.get_data()).astype(np.float32) * np.float32(depth.get_units())
        return Frame(color=rgb, depth_m=depth_m, stamp_ns=self._stamp_ns(color), frame_index=number)

    def _stamp_ns(self, frame: Any) -> int:
        domain = frame.get_frame_timestamp_domain()
        self.stamp_domain = domain.name
        if domain in (self.rs.timestamp_domain.global_time, self.rs.timestamp_domain.system_time):
            self.clock_offset_ns = time.time_ns() - time.monotonic_ns()
            return int(round(frame.get_timestamp() * 1e6)) - self.clock_offset_ns
        return now_ns()

    def read(self, timeout_s: float | None = None) -> Frame:
        """The next frame not returned before; waits up to ``timeout_s`` (default ``config.timeout_s``)."""
        timeout_s = self.config.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._sequence == self._returned and self._error is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None:
                    raise TimeoutError(
                        f"camera {self.name!r} (RealSense {self.serial}): no frame within {timeout_s} s; "
                        "is it connected and streaming (call connect() first)?"
                    )
                self._cond.wait(remaining)
            if self._error is not None:
                raise DeviceError(f"camera {self.name!r} (RealSense {self.serial}) stopped: {self._error}") from self._error
            self._returned = self._sequence
            assert self._latest is not None
            return self._latest

    def disconnect(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._pipeline is not None:
            self._pipeline.stop()
            self._pipeline = None


def list_devices(sdk: ModuleType | None = None) -> list[dict[str, Any]]:
    """Connected RealSense cameras: serial, name, firmware, USB type and color/depth modes."""
    rs = sdk or load_sdk()
    cameras = []
    for device in rs.context().query_devices():

        def info(key: Any, device: Any = device) -> str:
            return device.get_info(key) if device.supports(key) else ""

        modes = set()
        for sensor in device.query_sensors():
            for profile in sensor.get_stream_profiles():
                if not profile.is_video_stream_profile():
                    continue
                stream, fmt = profile.stream_type(), profile.format()
                if (stream, fmt) not in ((rs.stream.color, rs.format.rgb8), (rs.stream.depth, rs.format.z16)):
                    continue
                video = profile.as_video_stream_profile()
                modes.add((stream.name, video.width(), video.height(), profile.fps()))
        cameras.append(
            {
                "type": "realsense",
                "serial": info(rs.camera_info.serial_number),
                "name": info(rs.camera_info.name),
                "firmware": info(rs.camera_info.firmware_version),
                "usb": info(rs.camera_info.usb_type_descriptor),
                "modes": [f"{s} {w}x{h}@{f}" for s, w, h, f in sorted(modes)],
            }
        )
    return cameras
