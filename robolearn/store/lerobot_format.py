"""What LeRobot 0.6's own writer computes, ported so a robolearn export is what it would have written.

LeRobot cannot be a dependency (it pins torch, torchvision and Python ≥ 3.12), so the few pieces
of its writer whose numbers end up in the files are ported here from lerobot 0.6.1 (Apache-2.0),
keeping its arithmetic and dtypes:

- statistics: ``lerobot/datasets/compute_stats.py`` (``RunningQuantileStats`` with one update,
  ``get_feature_stats``, ``compute_episode_stats``' image sampling, ``aggregate_stats``);
- depth quantization: ``lerobot/datasets/depth_utils.py`` (``quantize_depth`` /
  ``dequantize_depth``, 12-bit log codes) with the defaults of ``lerobot/configs/video.py``
  (``DepthEncoderConfig``);
- the parquet schema metadata ``datasets`` writes for LeRobot's features
  (``lerobot/datasets/feature_utils.py`` ``get_hf_features_from_features``).

``tests/test_store_lerobot_tools.py`` runs LeRobot's own writer on the same frames and compares.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from robolearn.errors import DataError

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_KEYS = tuple(f"q{int(q * 100):02d}" for q in QUANTILES)
QUANTILE_BINS = 5000
DEPTH_QMAX = 4095
DEPTH_MIN_M, DEPTH_MAX_M, DEPTH_SHIFT_M, DEPTH_USE_LOG = 0.01, 10.0, 3.5, True


def _running_stats(batch: np.ndarray) -> dict[str, np.ndarray]:
    """``RunningQuantileStats().update(batch)`` then ``get_statistics()``: ``batch`` ``(N, D)``."""
    batch = batch.reshape(-1, batch.shape[-1])
    batch = batch.astype(np.result_type(batch.dtype, np.float32), copy=False)
    count = batch.shape[0]
    mean = np.mean(batch, axis=0)
    mean_of_squares = np.mean(batch**2, axis=0)
    low, high = np.min(batch, axis=0), np.max(batch, axis=0)
    edges = [np.linspace(low[i] - 1e-10, high[i] + 1e-10, QUANTILE_BINS + 1) for i in range(batch.shape[1])]
    histograms = [np.histogram(batch[:, i], bins=edges[i])[0].astype(np.float64) for i in range(batch.shape[1])]
    stats = {"min": low.copy(), "max": high.copy(), "mean": mean.copy(),
             "std": np.sqrt(np.maximum(0, mean_of_squares - mean**2)), "count": np.array([count])}
    for q, key in zip(QUANTILES, QUANTILE_KEYS):
        stats[key] = np.array([_quantile(h, e, q * count) for h, e in zip(histograms, edges)])
    return stats


def _quantile(hist: np.ndarray, edges: np.ndarray, target_count: float) -> float:
    cumsum = np.cumsum(hist)
    idx = np.searchsorted(cumsum, target_count)
    if idx == 0:
        return edges[0]
    if idx >= len(cumsum):
        return edges[-1]
    count_before = cumsum[idx - 1]
    count_in_bin = cumsum[idx] - count_before
    if count_in_bin == 0:
        return edges[idx]
    return edges[idx] + (target_count - count_before) / count_in_bin * (edges[idx + 1] - edges[idx])


def _feature_stats(array: np.ndarray, images: bool) -> dict[str, np.ndarray]:
    """``get_feature_stats``: images ``(N, C, H, W)`` per channel, kept as ``(1, C, 1, 1)``; else
    per dimension of ``(N,)`` (kept as ``(1,)``) or ``(N, D)``."""
    if images:
        reshaped, sample_count = array.transpose(0, 2, 3, 1).reshape(-1, array.shape[1]), array.shape[0]
    else:
        reshaped, sample_count = (array.reshape(-1, 1) if array.ndim == 1 else array), array.shape[0]
    if reshaped.shape[0] < 2:
        stats = {"min": np.min(reshaped, axis=0), "max": np.max(reshaped, axis=0), "mean": np.mean(reshaped, axis=0),
                 "std": np.std(reshaped, axis=0), "count": np.array([sample_count])}
        stats.update({key: stats["mean"].copy() for key in QUANTILE_KEYS})
    else:
        stats = _running_stats(reshaped)
        stats["count"] = np.array([sample_count])
    if images:
        return {k: v if k == "count" else (v.reshape(1, -1, 1, 1) if v.ndim == 1 else v) for k, v in stats.items()}
    if array.ndim == 1:
        return {k: v if k == "count" else (v.reshape(1) if v.ndim > 0 else v) for k, v in stats.items()}
    return stats


def vector_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """One episode's statistics of a parquet feature ``(N,)`` or ``(N, D)``, in the dtype LeRobot
    computes them in (the episode's stacked values)."""
    return _feature_stats(values, images=False)


def sample_indices(length: int) -> list[int]:
    """The frames of an episode LeRobot's image statistics read (``sample_indices``)."""
    num_samples = max(min(100, length), min(int(length**0.75), 10_000))
    return np.round(np.linspace(0, length - 1, num_samples)).astype(int).tolist()


def downsample(image_chw: np.ndarray) -> np.ndarray:
    """``auto_downsample_height_width``: every k-th pixel of frames of 300 px or more."""
    _, height, width = image_chw.shape
    if max(width, height) < 300:
        return image_chw
    factor = int(width / 150) if width > height else int(height / 150)
    return image_chw[:, ::factor, ::factor]


def frame_stats(frames_chw: np.ndarray, depth: bool) -> dict[str, np.ndarray]:
    """Statistics of an episode's sampled frames ``(N, C, h, w)`` (``sample_indices`` and
    ``downsample`` applied): RGB ``uint8`` scaled to [0, 1], depth in metres as recorded; each
    ``(C, 1, 1)``, ``count`` the number of frames."""
    stats = _feature_stats(frames_chw, images=True)
    scale = 1.0 if depth else 255.0
    return {k: v if k == "count" else np.squeeze(v / scale, axis=0) for k, v in stats.items()}


def aggregate_stats(stats_list: list[dict[str, dict[str, np.ndarray]]]) -> dict[str, dict[str, np.ndarray]]:
    """``aggregate_stats``: count-weighted means, quantiles and parallel variances, min of mins,
    max of maxes, over every feature any of ``stats_list`` has."""
    keys = {key for stats in stats_list for key in stats}
    out = {}
    for key in keys:
        items = [stats[key] for stats in stats_list if key in stats]
        means = np.stack([s["mean"] for s in items])
        variances = np.stack([s["std"] ** 2 for s in items])
        counts = np.stack([s["count"] for s in items])
        total_count = counts.sum(axis=0)
        while counts.ndim < means.ndim:
            counts = np.expand_dims(counts, axis=-1)
        total_mean = (means * counts).sum(axis=0) / total_count
        total_variance = ((variances + (means - total_mean) ** 2) * counts).sum(axis=0) / total_count
        merged = {"min": np.min(np.stack([s["min"] for s in items]), axis=0),
                  "max": np.max(np.stack([s["max"] for s in items]), axis=0),
                  "mean": total_mean, "std": np.sqrt(total_variance), "count": total_count}
        for q in (k for k in items[0] if k.startswith("q") and k[1:].isdigit()):
            if all(q in s for s in items):
                merged[q] = (np.stack([s[q] for s in items]) * counts).sum(axis=0) / total_count
        out[key] = merged
    return out


def _log_range() -> tuple[float, float]:
    return math.log(DEPTH_MIN_M + DEPTH_SHIFT_M), math.log(DEPTH_MAX_M + DEPTH_SHIFT_M)


def quantize_depth(depth_m: np.ndarray) -> np.ndarray:
    """``(H, W) float32`` metres → 12-bit codes ``uint16`` in ``0…4095`` (LeRobot's default log
    quantization between 0.01 and 10 m; 0 m, no depth, becomes code 0)."""
    depth = np.asarray(depth_m).astype(np.float32, order="K")
    log_min, log_max = _log_range()
    norm = (np.log(depth + np.float32(DEPTH_SHIFT_M)) - log_min) / (log_max - log_min)
    return np.rint(norm * DEPTH_QMAX).clip(0, DEPTH_QMAX).astype(np.uint16, copy=False)


def dequantize_depth(codes: np.ndarray) -> np.ndarray:
    """Inverse of ``quantize_depth``: ``(H, W)`` codes → ``float32`` metres; code 0 (depth at or
    below 0.01 m, which includes robolearn's 0 = no depth) → 0."""
    log_min, log_max = _log_range()
    metres = np.exp(np.asarray(codes, np.float32) * np.float32((log_max - log_min) / DEPTH_QMAX)
                    + np.float32(log_min)) - np.float32(DEPTH_SHIFT_M)
    metres = np.clip(metres, DEPTH_MIN_M, DEPTH_MAX_M).astype(np.float32)
    metres[np.asarray(codes) == 0] = 0.0
    return metres


def depth_encoder_info() -> dict[str, Any]:
    """The ``video.*`` keys LeRobot records for its default ``DepthEncoderConfig``, less those probed
    from the file (codec, pixel format, size, fps)."""
    return {"video.g": 2, "video.crf": 30, "video.preset": None, "video.fast_decode": 0, "video.video_backend": "pyav",
            "video.extra_options": {"x265-params": "lossless=1"}, "video.depth_min": DEPTH_MIN_M,
            "video.depth_max": DEPTH_MAX_M, "video.shift": DEPTH_SHIFT_M, "video.use_log": DEPTH_USE_LOG}


def hf_feature(spec: dict[str, Any]) -> dict[str, Any]:
    """The ``datasets`` feature (as serialized in parquet metadata) of a LeRobot parquet feature:
    ``Value`` for shape ``(1,)``, a fixed-length ``List`` for a vector."""
    value = {"dtype": spec["dtype"], "_type": "Value"}
    shape = tuple(spec["shape"])
    if shape == (1,):
        return value
    if len(shape) == 1:
        return {"feature": value, "length": shape[0], "_type": "List"}
    raise DataError(f"LeRobot parquet features are scalars or vectors here, got shape {shape}")
