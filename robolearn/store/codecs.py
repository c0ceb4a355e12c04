"""Compressor choices of the demonstration store, one per kind of array.

- ``rgb_<camera>`` ``(T, H, W, 3) uint8``: one JPEG per frame (chunk ``(1, H, W, 3)``), imagecodecs'
  numcodecs codec ``imagecodecs_jpeg``. Readers other than robolearn register it once with
  ``imagecodecs.numcodecs.register_codecs()`` before opening the store with plain ``zarr``.
- ``depth_<camera>`` ``(T, H, W) float32`` metres: stored as uint16 millimetres (numcodecs
  ``FixedScaleOffset``, scale 1000) compressed with Blosc-zstd bit-shuffle, one chunk per frame. Plain
  ``zarr`` returns float32 metres again; resolution 1 mm, range 0–65.535 m, 0 means "no depth"
  (writers map NaN/inf and negatives to 0 and clip the far end).
- everything else (``state``, ``action``, ``reward``, flags, stamps): Blosc-lz4 with byte shuffle,
  chunked along time only (about 1 MiB per chunk).
"""

from __future__ import annotations

from typing import Any

import numcodecs
import numpy as np

DEPTH_SCALE_PER_M = 1000.0
DEPTH_MAX_M = 65.535
LOWDIM_CHUNK_BYTES = 1 << 20
DEFAULT_JPEG_QUALITY = 95


def register_image_codecs() -> None:
    """Make imagecodecs' numcodecs codecs (``imagecodecs_jpeg``) known to numcodecs and zarr."""
    import imagecodecs.numcodecs

    imagecodecs.numcodecs.register_codecs(verbose=False)


def kind_of(key: str) -> str:
    """``rgb``, ``depth`` or ``lowdim``, from the data key's prefix."""
    if key.startswith("rgb_"):
        return "rgb"
    if key.startswith("depth_"):
        return "depth"
    return "lowdim"


def array_spec(key: str, frame_shape: tuple[int, ...], dtype: np.dtype, jpeg_quality: int) -> dict[str, Any]:
    """Keyword arguments of ``zarr.Group.create_array`` for a new ``data/<key>`` array (length 0).

    frame_shape: the shape of one step (without the time axis).
    """
    kind = kind_of(key)
    if kind == "rgb":
        if len(frame_shape) != 3 or frame_shape[2] != 3 or dtype != np.uint8:
            raise ValueError(f"{key}: RGB frames must be (H, W, 3) uint8, got {frame_shape} {dtype}")
        import imagecodecs.numcodecs

        register_image_codecs()
        return {"shape": (0, *frame_shape), "chunks": (1, *frame_shape), "dtype": np.uint8,
                "compressors": imagecodecs.numcodecs.Jpeg(level=int(jpeg_quality)), "fill_value": 0}
    if kind == "depth":
        if len(frame_shape) != 2:
            raise ValueError(f"{key}: depth frames must be (H, W), got {frame_shape}")
        return {"shape": (0, *frame_shape), "chunks": (1, *frame_shape), "dtype": np.float32,
                "filters": [numcodecs.FixedScaleOffset(offset=0, scale=DEPTH_SCALE_PER_M, dtype="<f4", astype="<u2")],
                "compressors": numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.BITSHUFFLE),
                "fill_value": 0.0}
    row_bytes = max(1, int(np.prod(frame_shape, dtype=np.int64)) * np.dtype(dtype).itemsize)
    chunk_len = int(min(65536, max(1024, LOWDIM_CHUNK_BYTES // row_bytes)))
    return {"shape": (0, *frame_shape), "chunks": (chunk_len, *frame_shape), "dtype": dtype,
            "compressors": numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE),
            "fill_value": False if np.dtype(dtype) == np.bool_ else 0}


def prepare_depth(depth_m: np.ndarray) -> np.ndarray:
    """Depth in metres as the store keeps it: float32, non-finite and negative values → 0 (no
    depth), clipped at 65.535 m."""
    depth = np.asarray(depth_m, dtype=np.float32)
    depth = np.where(np.isfinite(depth) & (depth > 0), depth, np.float32(0.0))
    return np.minimum(depth, np.float32(DEPTH_MAX_M))
