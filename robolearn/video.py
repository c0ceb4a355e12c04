"""Writing episodes as H.264 MP4 with PyAV (FFmpeg's libraries, bundled in the wheel)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import av
import numpy as np

from robolearn.errors import DataError


def write_mp4(path: str | Path, frames: Iterable[np.ndarray], fps: float, crf: int = 20) -> Path:
    """Encode ``(H, W, 3) uint8`` RGB frames to ``path``; odd sizes are padded to even (H.264)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = None
        for frame in frames:
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ValueError(f"frames must be (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
            height, width = frame.shape[0] + frame.shape[0] % 2, frame.shape[1] + frame.shape[1] % 2
            if stream is None:
                stream = container.add_stream("libx264", rate=round(fps), options={"crf": str(crf)})
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            padded = np.pad(frame, ((0, height - frame.shape[0]), (0, width - frame.shape[1]), (0, 0)), mode="edge")
            container.mux(stream.encode(av.VideoFrame.from_ndarray(padded, format="rgb24")))
        if stream is None:
            raise DataError(f"no frames to write to {path}")
        container.mux(stream.encode())
    return path


def read_mp4(path: str | Path) -> np.ndarray:
    """All frames of a video as ``(T, H, W, 3) uint8`` RGB."""
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
