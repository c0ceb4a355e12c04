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
        frames = [camera.read() for _ in range(N + 1)]
        assert frames[-1].color.shape == (24, 32, 3)
        assert abs(int(frames[-1].color[12, 24, 0]) - int(written[0][0, 0, 0])) < 6  # rewound to frame 0
        assert camera.intrinsics.width_px == 32 and camera.intrinsics.cx_px == 15.5
    finally:
        camera.disconnect()


def test_missing_source_and_depth_are_clear_errors(tmp_path):
    camera = _camera(tmp_path / "missing.avi")
    with pytest.raises(ConnectionError, match="cannot open"):
        camera.connect()
    with pytest.raises(ConfigError, match="no depth stream; set depth: false"):
        from_dict(CameraConfig, {"type": "opencv", "depth": True})
