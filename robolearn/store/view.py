"""Look at an episode: an mp4 of all cameras side by side, or a PNG contact sheet."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robolearn.store.codecs import kind_of
from robolearn.store.store import DemoStore


def episode_panels(store: DemoStore, index: int) -> np.ndarray:
    """``(T, H, W_total, 3) uint8``: every RGB and depth stream of an episode side by side (depth
    as grey, near bright, scaled to the episode's range); streams are padded to the tallest."""
    keys = [k for k in store.keys if kind_of(k) != "lowdim"]
    if not keys:
        raise ValueError(f"{store.path} has no camera streams to view (keys: {store.keys})")
    data = store.episode(index, keys)
    panels = []
    for key in keys:
        frames = data[key]
        if kind_of(key) == "depth":
            valid = frames[frames > 0]
            near, far = (float(valid.min()), float(valid.max())) if valid.size else (0.0, 1.0)
            grey = np.where(frames > 0, 1.0 - (frames - near) / max(far - near, 1e-6), 0.0)
            frames = np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=-1)
        panels.append(frames)
    height = max(p.shape[1] for p in panels)
    padded = [np.pad(p, ((0, 0), (0, height - p.shape[1]), (0, 0), (0, 0))) for p in panels]
    return np.concatenate(padded, axis=2)


def write_grid(frames: np.ndarray, path: str | Path, n_frames: int = 16, columns: int = 4) -> None:
    """A PNG contact sheet of ``n_frames`` evenly spaced frames, ``columns`` per row."""
    import imagecodecs

    picks = np.unique(np.linspace(0, len(frames) - 1, min(n_frames, len(frames))).astype(int))
    tiles = list(frames[picks])
    rows = -(-len(tiles) // columns)
    tiles += [np.zeros_like(tiles[0])] * (rows * columns - len(tiles))
    grid = np.concatenate([np.concatenate(tiles[r * columns:(r + 1) * columns], axis=1) for r in range(rows)], axis=0)
    Path(path).write_bytes(imagecodecs.png_encode(grid))


def view_episode(store: DemoStore, index: int, path: str | Path, fps: float | None = None) -> dict[str, object]:
    """Write episode ``index`` to ``path``: ``.mp4`` (video) or ``.png`` (grid)."""
    path = Path(path)
    frames = episode_panels(store, index)
    if path.suffix.lower() == ".mp4":
        from robolearn.video import write_mp4

        write_mp4(path, frames, fps or store.control_hz)
    elif path.suffix.lower() == ".png":
        write_grid(frames, path)
    else:
        raise ValueError(f"{path}: write an .mp4 video or a .png grid")
    return {"path": str(path), "episode": index, "frames": len(frames), "size_px": [frames.shape[2], frames.shape[1]]}
