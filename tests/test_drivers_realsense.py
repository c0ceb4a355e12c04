"""RealSense driver through the real pyrealsense2, with frames injected by ``rs.software_device``."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest

from robolearn.config import from_dict

rs = pytest.importorskip("pyrealsense2", reason="pyrealsense2 is needed (pip install 'robolearn[realsense]')")

from robolearn.cell import CameraConfig  # noqa: E402
from robolearn.drivers.realsense.camera import RealSenseCamera, list_devices  # noqa: E402
from robolearn.ros.clock import ros_stamp_ns  # noqa: E402

W, H, FPS = 64, 48, 30
DEPTH_UNITS_M = 0.001


def _intrinsics(fx: float, ppx: float) -> rs.intrinsics:
    intr = rs.intrinsics()
    intr.width, intr.height = W, H
    intr.fx, intr.fy, intr.ppx, intr.ppy = fx, fx, ppx, H / 2
    intr.model, intr.coeffs = rs.distortion.none, [0.0] * 5
    return intr


def _range(low: float, high: float, default: float) -> rs.option_range:
    option_range = rs.option_range()  # set by name: the positional order differs between versions
    option_range.min, option_range.max, option_range.step, option_range.default = low, high, 1, default
    return option_range


class SoftwareRealSense:
    """A RealSense made of ``rs.software_device`` sensors feeding an ``rs.syncer``."""

    def __init__(self, depth_translation_m: tuple[float, float, float] = (0.0, 0.0, 0.0)):
        self.device = rs.software_device()
        self.device.create_matcher(rs.matchers.default)
        self.depth_sensor = self.device.add_sensor("Depth")
        self.color_sensor = self.device.add_sensor("Color")
        stream = rs.video_stream()
        stream.type, stream.uid, stream.index = rs.stream.depth, 0, 0
        stream.width, stream.height, stream.fps, stream.bpp, stream.fmt = W, H, FPS, 2, rs.format.z16
        stream.intrinsics = _intrinsics(50.0, W / 2)
        self.depth_profile = rs.video_stream_profile(self.depth_sensor.add_video_stream(stream))
        stream = rs.video_stream()
        stream.type, stream.uid, stream.index = rs.stream.color, 1, 0
        stream.width, stream.height, stream.fps, stream.bpp, stream.fmt = W, H, FPS, 3, rs.format.rgb8
        stream.intrinsics = _intrinsics(60.0, 20.5)
        self.color_profile = rs.video_stream_profile(self.color_sensor.add_video_stream(stream))
        self.depth_sensor.add_read_only_option(rs.option.depth_units, DEPTH_UNITS_M)
        for sensor in (self.depth_sensor, self.color_sensor):
            sensor.add_option(rs.option.global_time_enabled, _range(0, 1, 0), True)
        self.color_sensor.add_option(rs.option.enable_auto_exposure, _range(0, 1, 1), True)
        self.color_sensor.add_option(rs.option.exposure, _range(1, 10000, 156), True)
        self.device.register_info(rs.camera_info.name, "Software RealSense")
        self.device.register_info(rs.camera_info.serial_number, "123")
        self.device.register_info(rs.camera_info.firmware_version, "5.16.0.1")
        extrinsics = rs.extrinsics()
        extrinsics.rotation = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        extrinsics.translation = list(depth_translation_m)
        self.depth_profile.register_extrinsics_to(self.color_profile, extrinsics)
        self.syncer = rs.syncer(100)
        for sensor, profile in ((self.depth_sensor, self.depth_profile), (self.color_sensor, self.color_profile)):
            sensor.open(profile)
            sensor.start(self.syncer)

    def inject(self, number: int, stamp_ms: float, color: np.ndarray, depth_raw: np.ndarray) -> None:
        for sensor, profile, pixels, bpp in (
            (self.depth_sensor, self.depth_profile, depth_raw, 2),
            (self.color_sensor, self.color_profile, color, 3),
        ):
            frame = rs.software_video_frame()
            frame.pixels, frame.bpp, frame.stride = np.ascontiguousarray(pixels), bpp, W * bpp
            frame.timestamp, frame.domain, frame.frame_number = stamp_ms, rs.timestamp_domain.global_time, number
            frame.profile = profile
            if bpp == 2:
                frame.depth_units = DEPTH_UNITS_M
            sensor.on_video_frame(frame)

    def close(self) -> None:
        for sensor in (self.color_sensor, self.depth_sensor):
            sensor.stop()
            sensor.close()


def _camera(**extra) -> RealSenseCamera:
    data = {"type": "realsense", "name": "front", "serial": "123", "width_px": W, "height_px": H, **extra}
    return from_dict(CameraConfig, data).create(cell=None)


def _images(number: int) -> tuple[np.ndarray, np.ndarray]:
    color = np.zeros((H, W, 3), np.uint8)
    color[..., 0] = number
    color[:, : W // 2, 1] = 200
    depth = np.full((H, W), 500 + number, np.uint16)
    depth[:, W // 2 :] = 1500
    return color, depth


@pytest.fixture
def streaming():
    device = SoftwareRealSense()
    camera = _camera()
    camera.start_streaming(device.syncer)
    yield device, camera
    camera.disconnect()
    device.close()


def test_aligned_frames_stamps_and_intrinsics(streaming):
    device, camera = streaming
    base_ms = time.time() * 1000.0
    for number in range(1, 4):
        color, depth = _images(number)
        device.inject(number, base_ms + number * 1000.0 / FPS, color, depth)
        if number == 1:
            continue  # the syncer releases the first depth and color apart (it has not seen both yet)
        frame = camera.read(timeout_s=5.0)
        assert frame.frame_index == number
        np.testing.assert_array_equal(frame.color, color)
        assert frame.depth_m is not None and frame.depth_m.shape == (H, W) and frame.depth_m.dtype == np.float32
        # Depth is re-projected into the color camera (fx 50 → 60, cx 32 → 20.5): the depth edge at
        # u_depth = 32 lands at u_color = 60 / 50 * (32 - 32) + 20.5, twelve columns left of where it was.
        row = frame.depth_m[H // 2]
        np.testing.assert_allclose(row[5:20], (500 + number) * DEPTH_UNITS_M, rtol=1e-6)
        np.testing.assert_allclose(row[21:58], 1.5, rtol=1e-6)
        assert np.all(row[60:] == 0.0)  # outside the depth camera's field of view
        hardware_ns = int(round((base_ms + number * 1000.0 / FPS) * 1e6))  # global time: epoch
        assert frame.stamp_ns == hardware_ns - camera.clock_offset_ns
        assert abs(frame.stamp_ns - time.monotonic_ns()) < 5e9  # on the host monotonic clock
        assert abs(ros_stamp_ns(frame.stamp_ns) - hardware_ns) < 2e6  # the camera node's header stamp: capture time
    assert camera.stamp_domain == "global_time"
    intr = camera.intrinsics
    assert (intr.width_px, intr.height_px, intr.fx_px, intr.fy_px, intr.cx_px, intr.cy_px) == (W, H, 60.0, 60.0, 20.5, H / 2)
    assert camera.dropped_frames == 0


def test_dropped_frames_are_counted(streaming):
    device, camera = streaming
    base_ms = time.time() * 1000.0
    for number in (1, 2, 3, 6, 7):  # 4 and 5 never arrive
        color, depth = _images(number)
        device.inject(number, base_ms + number * 1000.0 / FPS, color, depth)
    indices = []
    while len(indices) < 4:
        indices.append(camera.read(timeout_s=5.0).frame_index)
        if indices[-1] == 7:
            break
    assert indices[-1] == 7
    assert camera.dropped_frames == 2
    assert camera.frames_received == 4


def test_read_times_out_without_frames(streaming):
    _device, camera = streaming
    with pytest.raises(TimeoutError, match="no frame within"):
        camera.read(timeout_s=0.2)


def test_connect_names_missing_serial_and_list_is_empty_without_cameras():
    if list_devices():
        pytest.skip("a RealSense is connected")
    with pytest.raises(ConnectionError, match="no RealSense with serial '123'"):
        _camera().connect()


def test_exposure_preset_and_global_time_reach_the_sensors():
    device = SoftwareRealSense()
    try:
        _camera(exposure_us=8000.0)._configure_sensors(device.device)
        assert device.color_sensor.get_option(rs.option.enable_auto_exposure) == 0
        assert device.color_sensor.get_option(rs.option.exposure) == 80  # 100 µs units
        assert device.depth_sensor.get_option(rs.option.global_time_enabled) == 1
        assert device.color_sensor.get_option(rs.option.global_time_enabled) == 1
        _camera()._configure_sensors(device.device)
        assert device.color_sensor.get_option(rs.option.enable_auto_exposure) == 1
        with pytest.raises(ValueError, match="has no gain option; remove gain"):
            _camera(gain=16.0)._configure_sensors(device.device)
    finally:
        device.close()


def test_list_devices_reports_serial_and_modes():
    device = SoftwareRealSense()
    try:
        with_device = SimpleNamespace(**{k: getattr(rs, k) for k in dir(rs) if not k.startswith("__")})
        with_device.context = lambda: SimpleNamespace(query_devices=lambda: [device.device])
        (found,) = list_devices(with_device)
        assert found["serial"] == "123" and found["name"] == "Software RealSense" and found["firmware"] == "5.16.0.1"
        assert found["modes"] == [f"color {W}x{H}@{FPS}", f"depth {W}x{H}@{FPS}"]
    finally:
        device.close()


@pytest.mark.hardware
def test_real_camera_streams():
    devices = list_devices()
    if not devices:
        pytest.skip("no RealSense connected")
    config = from_dict(CameraConfig, {"type": "realsense", "serial": devices[0]["serial"], "width_px": 640, "height_px": 480})
    camera = config.create(cell=None)
    camera.connect()
    try:
        frames = [camera.read() for _ in range(10)]
        assert frames[-1].color.shape == (480, 640, 3) and frames[-1].depth_m.shape == (480, 640)
        assert camera.stamp_domain == "global_time"
    finally:
        camera.disconnect()
