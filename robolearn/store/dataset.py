"""Training windows from a ``DemoStore``: observation history plus an action chunk, for PyTorch.

A sample is anchored at a step ``t`` of an episode ``[s, e)``: observations at ``t − n_obs_steps + 1
… t`` and actions at ``t … t + horizon − 1``. Indices outside the episode repeat its first or last
step (edge padding, as in diffusion_policy); ``action_is_pad`` marks the padded actions. Where the
recorder dropped control steps (``gaps`` in the episode's metadata), the episode is cut in two: a
window never spans the gap, it is padded there as at an episode edge.

Low-dimensional arrays are read into memory once (contiguous slices). Images are decoded in the
DataLoader's worker processes: each worker opens the store lazily and reads the per-frame chunks
with plain file reads and the array's own codec (no zarr indexing on the hot path, never
``oindex``). The dataset takes a whole list of indices (``make_dataloader`` feeds it batches), so
a worker decodes a full batch straight into one of its reused shared-memory buffers
(``robolearn.store.shared_frames``) with no per-sample collation and no copy on the way to the
main process.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr

from robolearn.store.codecs import kind_of
from robolearn.store.shared_frames import FramePool, SharedFrames
from robolearn.store.store import DemoStore

NORMALIZATIONS = ("mean_std", "min_max", None)


class FrameReader:
    """Decodes single frames of chunk-per-frame arrays straight from the store's files; open one
    per process (it holds the codecs)."""

    def __init__(self, path: str | Path, keys: Sequence[str]):
        from robolearn.store.codecs import register_image_codecs

        register_image_codecs()
        self.path = Path(path)
        root = zarr.open_group(str(self.path), mode="r", zarr_format=2)
        self.arrays: dict[str, Any] = {}
        for key in keys:
            array = root["data"][key]
            codecs = [*array.compressors][::-1] + [*(array.filters or ())][::-1]
            sep = array.metadata.dimension_separator
            prefix, suffix = f"{self.path / 'data' / key}{os.sep}", sep + sep.join(["0"] * (array.ndim - 1))
            self.arrays[key] = (array, codecs, tuple(array.shape[1:]), array.dtype, prefix, suffix)
        self.pid = os.getpid()

    def read(self, key: str, index: int, out: np.ndarray | None = None) -> np.ndarray:
        """Frame ``index`` of ``data/<key>`` as ``(H, W, 3)`` or ``(H, W)``, decoded into ``out``
        when given (an RGB frame decodes in place, with no copy)."""
        array, codecs, shape, dtype, prefix, suffix = self.arrays[key]
        try:
            value: Any = _read_file(f"{prefix}{index}{suffix}")
        except FileNotFoundError:
            frame = np.full(shape, array.fill_value, dtype=dtype)
        else:
            if len(codecs) == 1 and out is not None:
                return codecs[0].decode(value, out=out)
            for codec in codecs:
                value = codec.decode(value)
            frame = np.frombuffer(value, dtype=dtype).reshape(shape) if not isinstance(value, np.ndarray) \
                else value.view(dtype).reshape(shape)
        if out is None:
            return frame
        out[...] = frame
        return out


def _read_file(path: str) -> bytes:
    """The whole file with one ``fstat`` and one ``read`` (less than ``open().read()`` costs)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


class SequenceDataset(torch.utils.data.Dataset):
    """Windows of ``n_obs_steps`` observations and ``horizon`` actions from a store.

    obs_keys: e.g. ``["state", "rgb_front", "rgb_wrist"]``. episodes: which episodes (default all).
    normalization: ``mean_std`` or ``min_max`` (to [−1, 1]) for low-dimensional observations and the
    action, with statistics stored in the store (``DemoStore.stats``), or None.

    ``dataset[indices]`` (a list) returns a batch: low-dimensional keys ``(B, n_obs_steps, D)
    float32``, images ``(B, n_obs_steps, 3, H, W) uint8``, depth ``(B, n_obs_steps, H, W) float32``
    metres, ``action`` ``(B, horizon, A) float32``, ``action_is_pad`` ``(B, horizon) bool``;
    ``dataset[i]`` returns one sample without the batch axis.
    """

    def __init__(self, path: str | Path, obs_keys: Sequence[str], n_obs_steps: int = 2, horizon: int = 10,
                 episodes: Sequence[int] | None = None, normalization: str | None = "mean_std",
                 action_key: str = "action"):
        if n_obs_steps < 1 or horizon < 1:
            raise ValueError(f"n_obs_steps and horizon must be ≥ 1, got {n_obs_steps}, {horizon}")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
        store = DemoStore.open(path, mode="r")
        missing = [k for k in [*obs_keys, action_key] if k not in store.keys]
        if missing:
            raise KeyError(f"{path} has no {missing}; it has {store.keys}")
        self.path, self.n_obs_steps, self.horizon = Path(path), n_obs_steps, horizon
        self.obs_keys, self.action_key, self.normalization = list(obs_keys), action_key, normalization
        self.frame_keys = [k for k in self.obs_keys if kind_of(k) != "lowdim"]
        lowdim = [k for k in self.obs_keys if kind_of(k) == "lowdim"] + [action_key]
        n_steps = store.n_steps
        self.lowdim = {k: np.asarray(store.array(k)[:n_steps], dtype=np.float32).reshape(n_steps, -1) for k in lowdim}
        self.frame_shapes = {k: tuple(store.array(k).shape[1:]) for k in self.frame_keys}
        self.stats = _stats(store, lowdim, self.lowdim) if normalization else {}
        chosen = range(store.n_episodes) if episodes is None else episodes
        segments = [segment for i in chosen for segment in store.episode_segments(i)]
        empty = [np.zeros(0, np.int64)]
        self.anchor = np.concatenate([np.arange(s, e) for s, e in segments] or empty)
        self.anchor_start = np.concatenate([np.full(e - s, s) for s, e in segments] or empty)
        self.anchor_end = np.concatenate([np.full(e - s, e) for s, e in segments] or empty)
        self._normalized = {k: self._normalize(k, v) for k, v in self.lowdim.items()}
        self._reader: FrameReader | None = None
        self._pool: FramePool | None = None

    def __len__(self) -> int:
        return len(self.anchor)

    def _normalize(self, key: str, values: np.ndarray) -> np.ndarray:
        if not self.normalization:
            return values
        stats = self.stats[key]
        if self.normalization == "mean_std":
            return ((values - stats["mean"]) / np.maximum(stats["std"], 1e-6)).astype(np.float32)
        span = np.maximum(stats["max"] - stats["min"], 1e-6)
        return ((values - stats["min"]) / span * 2.0 - 1.0).astype(np.float32)

    def unnormalize_action(self, action: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Undo the action normalization (``(..., A)``)."""
        if not self.normalization:
            return action
        stats = {k: (torch.as_tensor(v, dtype=torch.float32) if isinstance(action, torch.Tensor) else v)
                 for k, v in self.stats[self.action_key].items()}
        if self.normalization == "mean_std":
            return action * stats["std"].clip(min=1e-6) + stats["mean"] if isinstance(action, torch.Tensor) \
                else action * np.maximum(stats["std"], 1e-6) + stats["mean"]
        span = (stats["max"] - stats["min"])
        span = span.clip(min=1e-6) if isinstance(action, torch.Tensor) else np.maximum(span, 1e-6)
        return (action + 1.0) / 2.0 * span + stats["min"]

    def reader(self) -> FrameReader:
        """This process's frame reader (opened on first use in every DataLoader worker)."""
        if self._reader is None or self._reader.pid != os.getpid():
            self._reader, self._pool = FrameReader(self.path, self.frame_keys), None
        return self._reader

    def __getitem__(self, index: int | Sequence[int] | np.ndarray) -> dict[str, torch.Tensor | SharedFrames]:
        """One sample (``index`` an int) or a batch (a list of indices); see the class docstring.
        Inside a DataLoader worker a batch's frames are ``SharedFrames``, which arrive in the main
        process as tensors."""
        single = np.ndim(index) == 0
        rows = np.atleast_1d(np.asarray(index, dtype=np.int64))
        t, start, end = self.anchor[rows], self.anchor_start[rows], self.anchor_end[rows]
        obs_index = np.clip(t[:, None] + np.arange(1 - self.n_obs_steps, 1), start[:, None], end[:, None] - 1)
        raw_action_index = t[:, None] + np.arange(self.horizon)
        action_index = np.minimum(raw_action_index, end[:, None] - 1)
        batch: dict[str, torch.Tensor] = {}
        for key in self.obs_keys:
            if key in self._normalized:
                batch[key] = torch.from_numpy(self._normalized[key][obs_index])
        batch[self.action_key] = torch.from_numpy(self._normalized[self.action_key][action_index])
        batch["action_is_pad"] = torch.from_numpy(raw_action_index >= end[:, None])
        if self.frame_keys:
            reader = self.reader()
            pooled = not single and torch.utils.data.get_worker_info() is not None
            for key in self.frame_keys:
                batch[key] = self._frames(reader, key, obs_index, pooled)
        return {k: v[0] for k, v in batch.items()} if single else batch

    def _frames(self, reader: FrameReader, key: str, obs_index: np.ndarray, pooled: bool) -> torch.Tensor | SharedFrames:
        """Decoded frames ``(B, n_obs_steps, H, W[, 3])`` straight into one buffer; RGB comes out as
        a ``(B, n_obs_steps, 3, H, W)`` channels-last view. pooled (a batch in a DataLoader worker):
        the buffer is one of the worker's reused shared-memory buffers (``shared_frames``), so
        handing the batch over copies nothing and allocates nothing."""
        rgb = kind_of(key) == "rgb"
        shape, dtype = (*obs_index.shape, *self.frame_shapes[key]), torch.uint8 if rgb else torch.float32
        dims = (0, 1, 4, 2, 3) if rgb else None
        if pooled:
            if self._pool is None:
                self._pool = FramePool()
            buffer, frames = self._pool.take(shape, dtype)
        else:
            out = torch.empty(shape, dtype=dtype)
            frames = out.numpy()
        for b, indices in enumerate(obs_index):
            previous = -1
            for k, index in enumerate(indices):
                if index == previous:
                    frames[b, k] = frames[b, k - 1]
                else:
                    reader.read(key, int(index), out=frames[b, k])
                    previous = index
        if pooled:
            return SharedFrames(buffer, shape, dtype, dims)
        return out.permute(dims) if dims else out


def _stats(store: DemoStore, keys: Sequence[str], values: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """The store's saved statistics, or the same statistics computed here when it has none yet."""
    cached = dict(store.root["meta"].attrs).get("stats", {})
    if cached.get("n_steps") == store.n_steps and all(k in cached.get("keys", {}) for k in keys):
        source = cached["keys"]
    else:
        source = {k: {"mean": v.mean(0), "std": v.std(0), "min": v.min(0), "max": v.max(0)} for k, v in values.items()}
    return {k: {name: np.asarray(source[k][name], dtype=np.float32) for name in ("mean", "std", "min", "max")} for k in keys}


def make_dataloader(dataset: SequenceDataset, batch_size: int, num_workers: int = 2, shuffle: bool = True,
                    drop_last: bool = True, seed: int | None = None, **kwargs: Any) -> torch.utils.data.DataLoader:
    """A DataLoader that hands whole batches of random windows to ``dataset`` (one worker decodes
    one batch)."""
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    base = torch.utils.data.RandomSampler(dataset, generator=generator) if shuffle else torch.utils.data.SequentialSampler(dataset)
    sampler = torch.utils.data.BatchSampler(base, batch_size=batch_size, drop_last=drop_last)
    return torch.utils.data.DataLoader(dataset, batch_size=None, sampler=sampler, num_workers=num_workers,
                                       persistent_workers=num_workers > 0, **kwargs)
