"""OpenCV camera on a video file the test writes."""

from __future__ import annotations

import numpy as np
import pytest

from robolearn.cell import CameraConfig
from robolearn.config import ConfigError, from_dict

cv2 = pytest.importorskip("cv2", reason="opencv-python-headless is needed")

W, H, FPS, N = 64, 48, 20.0, 5


def _write_video(path) -> list[np.ndarray]:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (W, H))
    frames = []
    for i in range(N):
        rgb = np.zeros((H, W, 3), np.uint8)
        rgb[..., 0] = 40 * i + 20  # red ramps up frame by frame
        rgb[:, : W // 2, 2] = 200  # blue left half
        writer.write(np.ascontiguousarray(rgb[..., ::-1]))
        frames.append(rgb)
    writer.release()
    return frames


def _camera(path, **extra):
    data = {"type": "opencv", "name": "file", "source": str(path), "width_px": W, "height_px": H, "fps": FPS, **extra}
    return from_dict(CameraConfig, data).create(cell=None)


def test_video_file_frames_colors_stamps_and_eof(tmp_path):
    path = tmp_path / "clip.avi"
    written = _write_video(path)
    camera = _camera(path)
    camera.connect()
    try:
        frames = [camera.read() for _ in range(N)]
        for frame, expected in zip(frames, written):
            assert frame.color.shape == (H, W, 3) and frame.color.dtype == np.uint8 and frame.depth_m is None
            assert np.abs(frame.color.astype(int) - expected).mean() < 4  # RGB order, JPEG-close
        assert [f.frame_index for f in frames] == list(range(N))
        np.testing.assert_allclose(np.diff([f.stamp_ns for f in frames]), 1e9 / FPS, atol=1e6)  # file timing kept
        with pytest.raises(EOFError, match="loop: true"):
            camera.read()
    finally:
        camera.disconnect()


def test_video_file_loops_and_resizes(tmp_path):
    path = tmp_path / "clip.avi"
    written = _write_video(path)
    camera = _camera(path, loop=True, width_px=32, height_px=24)
    camera.connect()
    try:
        frames = [camera.read() for _ in range(2 * N + 2)]
        assert frames[N].color.shape == (24, 32, 3)
        assert abs(int(frames[N].color[12, 24, 0]) - int(written[0][0, 0, 0])) < 6  # rewound to frame 0
        assert camera.intrinsics.width_px == 32 and camera.intrinsics.cx_px == 15.5
        # Time goes on across each rewind: one frame period between the last frame and the first again.
        np.testing.assert_allclose(np.diff([f.stamp_ns for f in frames]), 1e9 / FPS, atol=1e6)
    finally:
        camera.disconnect()


class FakeCapture:
    """``cv2.VideoCapture`` of a webcam (the SDK boundary): records ``set`` calls; snaps requested
    sizes to the modes in ``supported`` ({(fourcc, width, height): fps}) as V4L2 does."""

    def __init__(self, supported):
        self.supported, self.sets = supported, []
        self.fourcc, self.size = next(iter(supported))[0], next(iter(supported))[1:]

    def isOpened(self):
        return True

    def read(self):
        return True, np.zeros((self.size[1], self.size[0], 3), np.uint8)

    def set(self, prop, value):
        self.sets.append((prop, value))
        if prop == cv2.CAP_PROP_FOURCC:
            name = int(value).to_bytes(4, "little").decode()
            if any(f == name for f, *_ in self.supported):
                self.fourcc = name
        elif prop in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT):
            width, height = self.size
            wanted = (int(value), height) if prop == cv2.CAP_PROP_FRAME_WIDTH else (width, int(value))
            sizes = [(w, h) for f, w, h in self.supported if f == self.fourcc]
            self.size = min(sizes, key=lambda s: abs(s[0] - wanted[0]) + abs(s[1] - wanted[1]))
        return True

    def get(self, prop):
        return {cv2.CAP_PROP_FRAME_WIDTH: self.size[0], cv2.CAP_PROP_FRAME_HEIGHT: self.size[1],
                cv2.CAP_PROP_FPS: self.supported.get((self.fourcc, *self.size), 0.0),
                cv2.CAP_PROP_FOURCC: float(cv2.VideoWriter_fourcc(*self.fourcc))}[prop]

    def release(self):
        pass


def _fake_cv2(capture):
    """The real cv2's constants and helpers, with ``VideoCapture`` replaced by ``capture``."""
    from types import SimpleNamespace

    names = [n for n in dir(cv2) if n.startswith(("CAP_", "INTER_"))]
    return SimpleNamespace(**{n: getattr(cv2, n) for n in names}, VideoWriter_fourcc=cv2.VideoWriter_fourcc,
                           resize=cv2.resize, VideoCapture=lambda *args: capture)


def test_webcam_asks_for_a_one_frame_buffer_and_its_mode():
    from robolearn.drivers.opencv.camera import OpenCVCamera

    capture = FakeCapture({("YUYV", 640, 480): 30.0})
    config = from_dict(CameraConfig, {"type": "opencv", "name": "web", "source": "0", "width_px": 640,
                                      "height_px": 480, "fps": 30.0})
    camera = OpenCVCamera(config, sdk=_fake_cv2(capture))
    camera.connect()
    assert (cv2.CAP_PROP_BUFFERSIZE, 1) in capture.sets
    assert (cv2.CAP_PROP_FRAME_WIDTH, 640) in capture.sets and (cv2.CAP_PROP_FPS, 30.0) in capture.sets
    assert camera.read().color.shape == (480, 640, 3)


def test_find_cameras_probes_the_modes_a_webcam_accepts():
    from robolearn.drivers.opencv.camera import probe_modes

    capture = FakeCapture({("YUYV", 640, 480): 30.0, ("YUYV", 320, 240): 30.0, ("YUYV", 1280, 720): 10.0,
                           ("MJPG", 1280, 720): 30.0, ("MJPG", 1920, 1080): 30.0})
    assert probe_modes(capture, _fake_cv2(capture)) == [
        "color 320x240@30 YUYV", "color 640x480@30 YUYV", "color 1280x720@10 YUYV",
        "color 1280x720@30 MJPG", "color 1920x1080@30 MJPG",
    ]


def test_missing_source_and_depth_are_clear_errors(tmp_path):
    camera = _camera(tmp_path / "missing.avi")
    with pytest.raises(ConnectionError, match="cannot open"):
        camera.connect()
    with pytest.raises(ConfigError, match="no depth stream; set depth: false"):
        from_dict(CameraConfig, {"type": "opencv", "depth": True})
