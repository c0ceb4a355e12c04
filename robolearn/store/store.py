"""``DemoStore``: demonstrations, interventions and online episodes in one zarr store.

Layout (zarr 3 writing ``zarr_format=2``, the diffusion_policy / UMI replay-buffer layout)::

    <path>/                     root attrs ``robolearn``: schema_version, cell_config, cameras, jpeg_quality
      data/<key>                (N_steps, ...) all episodes back to back, time first
      meta/episode_ends         (N_episodes,) int64, cumulative end index of every episode
      meta/episode_info         (N_episodes,) str, one JSON object per episode (task, success, operator,
                                source, duration_s, length, missing/late frame counts, gaps where
                                control steps were dropped, ...)
      meta/.zattrs ``stats``    normalization statistics of the low-dimensional keys

Compressors per key kind: see ``robolearn.store.codecs``. Readers using plain ``zarr`` call
``imagecodecs.numcodecs.register_codecs()`` first (the RGB arrays use the ``imagecodecs_jpeg`` codec).

Commit protocol: an episode's arrays are written first (images may stream in while recording), then
its ``episode_info`` entry, and ``episode_ends`` last. zarr's local store writes every file to a
temporary name and renames it, so a process killed at any moment leaves each file either old or new:
committed episodes are never touched, and anything past the last valid episode end is a partial tail
that the next writer removes. A new store is built in a hidden sibling directory and renamed into
place, so a store exists only complete.

One writing process at a time: a writer holds the store's writer lock (``robolearn.store.lock``) as
long as it keeps the store open, and only the holder removes a partial tail; a second writer waits
for it (``lock_timeout_s``) and then fails with ``StoreLockedError`` naming the holder. Readers
(``mode="r"``) never wait and see committed episodes only.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import shutil
import tempfile
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from robolearn.cell import CellConfig
from robolearn.config import from_dict, to_dict
from robolearn.errors import AlreadyExistsError, NotFoundError
from robolearn.store.codecs import (
    DEFAULT_JPEG_QUALITY,
    array_spec,
    kind_of,
    prepare_depth,
    register_image_codecs,
)
from robolearn.store.lock import DEFAULT_LOCK_TIMEOUT_S, LOCK_FILE, StoreLockedError, WriterLock

if TYPE_CHECKING:
    from robolearn.store.writer import EpisodeWriter

SCHEMA_VERSION = 1
SOURCES = ("teleop", "expert", "policy", "online")
STATS_KEYS_SKIPPED = ("stamp_ns",)
FRAME_ARRAY_CONFIG = {"write_empty_chunks": True}
"""Chunk-per-frame arrays write every frame, a black one too: one chunk file per step, always."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return value


def _store_dtype(key: str, dtype: np.dtype) -> np.dtype:
    """The dtype a new array gets: float64 low-dimensional data is kept as float32."""
    kind = kind_of(key)
    if kind == "rgb":
        return np.dtype(np.uint8)
    if kind == "depth" or dtype == np.float64 or dtype == np.float16:
        return np.dtype(np.float32)
    return np.dtype(dtype)


def chunk_key(array: zarr.Array, index: int) -> str:
    """Store key (relative to the array) of the per-frame chunk ``index`` of a chunk-per-frame array."""
    sep = array.metadata.dimension_separator
    return sep.join([str(index)] + ["0"] * (array.ndim - 1))


class DemoStore:
    """Episodes in a zarr directory store; see the module docstring for the layout.

    Open with ``DemoStore.create(path, ...)`` or ``DemoStore.open(path, mode)``; ``mode="r"`` reads,
    ``mode="a"`` appends (taking the writer lock, and removing a partial tail left by a killed
    writer). A writing store holds the lock until ``close()`` (or the end of a ``with`` block, or
    until it is garbage-collected). ``repaired``: what opening removed (``repair``), else None.
    """

    def __init__(self, root: zarr.Group, path: Path, mode: str, lock: WriterLock | None = None):
        self.root, self.path, self.mode = root, path, mode
        self._lock: WriterLock | None = None
        self._release_lock: weakref.finalize | None = None
        self._set_lock(lock)
        self.repaired: dict[str, int] | None = None
        self._ends = np.zeros(0, dtype=np.int64)
        self._info: list[dict[str, Any]] = []
        self._arrays: dict[str, zarr.Array] | None = None
        self._cell: CellConfig | None = None
        self.refresh()

    def _set_lock(self, lock: WriterLock | None) -> None:
        if self._release_lock is not None:
            self._release_lock.detach()
        self._lock = lock
        self._release_lock = weakref.finalize(self, lock.release) if lock is not None else None

    @property
    def writable(self) -> bool:
        """Open for writing and holding the writer lock (not closed)."""
        return self.mode == "a" and self._lock is not None and not self._lock.released

    def close(self) -> None:
        """Let go of the writer lock (a read-only store has none); the store stays readable."""
        if self._release_lock is not None:
            self._release_lock()

    def __enter__(self) -> DemoStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- opening ---------------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | Path, cell_config: Mapping[str, Any] | None = None,
               cameras: Mapping[str, Any] | None = None, jpeg_quality: int = DEFAULT_JPEG_QUALITY,
               overwrite: bool = False, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> DemoStore:
        """A new empty store at ``path`` (a directory that does not exist yet, or an empty one), open
        for writing. cell_config: the cell as a dict (``robolearn.config.to_dict(cell)``); cameras:
        calibration per camera name (intrinsics, extrinsics, serial); default: derived from
        ``cell_config["cameras"]``. overwrite: replace what is at ``path`` (a store there is replaced
        once its writer, if any, lets go: ``lock_timeout_s``).

        The store is built in a hidden sibling directory and renamed into place: a process killed
        while creating leaves ``path`` as it was (and the sibling, removed by the next ``create``)."""
        path = Path(path)
        if not 1 <= int(jpeg_quality) <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality}")
        if path.exists() and not path.is_dir():
            raise AlreadyExistsError(f"{path} is a file; pick a new path for the store")
        if path.exists() and any(path.iterdir()) and not overwrite:
            raise AlreadyExistsError(f"{path} already exists; open it with DemoStore.open(path, mode='a') or pick a new path")
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned_creations(path)
        register_image_codecs()
        building = Path(tempfile.mkdtemp(prefix=f".{path.name}.creating-", dir=path.parent))
        (building / LOCK_FILE).parent.mkdir(parents=True)
        lock = WriterLock.acquire(building, timeout_s=0.0)
        try:
            root = zarr.open_group(str(building), mode="a", zarr_format=2)
            cell = _jsonable(dict(cell_config)) if cell_config else None
            root.attrs["robolearn"] = {
                "schema_version": SCHEMA_VERSION,
                "cell_config": cell,
                "cameras": _jsonable(dict(cameras)) if cameras else cameras_from_cell(cell),
                "jpeg_quality": int(jpeg_quality),
                "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            }
            root.require_group("data")
            meta = root.require_group("meta")
            meta.create_array("episode_info", shape=(0,), chunks=(1024,), dtype=str)
            meta.create_array("episode_ends", shape=(0,), chunks=(4096,), dtype=np.int64, fill_value=0,
                              compressors=None)
            _move_into_place(building, path, overwrite, lock_timeout_s)
        except BaseException:
            lock.release()
            shutil.rmtree(building, ignore_errors=True)
            raise
        return cls(zarr.open_group(str(path), mode="r+", zarr_format=2), path, "a", lock)

    @classmethod
    def open(cls, path: str | Path, mode: str = "r", lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> DemoStore:
        """Open an existing store. ``mode="a"`` takes the writer lock (waiting up to
        ``lock_timeout_s`` for another process to let go, else StoreLockedError) and removes a partial
        tail left by a killed writer (not one this process is still streaming)."""
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', got {mode!r}")
        path = Path(path)
        _finish_rewrite(path, clean=False)
        if not path.exists():
            raise NotFoundError(f"no store at {path}; create one with DemoStore.create or `robolearn collect`")
        if not (path / ".zgroup").exists() or not (path / "meta" / "episode_ends" / ".zarray").exists():
            raise NotFoundError(f"{path} is not a robolearn store (no meta/episode_ends); create one with "
                                    "DemoStore.create or `robolearn collect`")
        lock = WriterLock.acquire(path, lock_timeout_s) if mode == "a" else None
        try:
            if lock is not None:
                _finish_rewrite(path, clean=True)
            register_image_codecs()
            root = zarr.open_group(str(path), mode="r" if mode == "r" else "r+", zarr_format=2)
            version = dict(root.attrs).get("robolearn", {}).get("schema_version", SCHEMA_VERSION)
            if version > SCHEMA_VERSION:
                raise ValueError(f"{path} has schema version {version}; this robolearn reads up to {SCHEMA_VERSION}: "
                                 "upgrade robolearn")
            store = cls(root, path, mode, lock)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        if lock is not None and not lock.streaming:
            store.repaired = store.repair()
        return store

    def inherit_attrs(self, attrs: Mapping[str, Any]) -> None:
        """Take over the store attributes of the store this one is derived from (a copy, a resize,
        an import), except this store's own schema version, creation time and JPEG quality."""
        self._require_writable()
        own = {k: self.attrs[k] for k in ("schema_version", "created_utc", "jpeg_quality")}
        self.root.attrs["robolearn"] = {**_jsonable(dict(attrs)), **own}

    def refresh(self) -> None:
        """Re-read the episode index (another process may have appended)."""
        self._arrays = None
        self._meta = dict(self.root["meta"].arrays())
        ends = np.asarray(self._meta["episode_ends"][:], dtype=np.int64)
        info_array = self._meta["episode_info"]
        lengths = [a.shape[0] for a in self._data_arrays().values()]
        data_len = min(lengths) if lengths else 0
        ok = (np.diff(np.concatenate([[0], ends])) > 0) & (ends <= data_len)
        n = int(np.argmin(ok)) if not ok.all() else len(ends)
        n = min(n, info_array.shape[0])
        self._ends = ends[:n].copy()
        self._info = [json.loads(s) for s in info_array[:n]] if n else []

    def repair(self) -> dict[str, int]:
        """Remove everything past the last committed episode (a killed writer's partial tail) and
        the temporary files of interrupted writes; returns how many steps and entries were removed."""
        self._require_writable()
        end = self.n_steps
        removed = {"steps": 0, "episode_ends": 0, "episode_info": 0, "partial_files": 0}
        for partial in self.path.rglob("*.partial"):
            partial.unlink(missing_ok=True)
            removed["partial_files"] += 1
        for array in self._data_arrays().values():
            if array.shape[0] != end:
                removed["steps"] = max(removed["steps"], array.shape[0] - end)
                array.resize((end, *array.shape[1:]))
        for name in ("episode_info", "episode_ends"):
            array = self._meta[name]
            if array.shape[0] != self.n_episodes:
                removed[name] = array.shape[0] - self.n_episodes
                _truncate_clean(array, self.n_episodes)
        return removed

    # ---- reading ---------------------------------------------------------------------------------

    def _data_arrays(self) -> dict[str, zarr.Array]:
        if self._arrays is None:
            self._arrays = {key: array if kind_of(key) == "lowdim" else array.with_config(FRAME_ARRAY_CONFIG)
                            for key, array in sorted(self.root["data"].arrays())}
        return self._arrays

    def _data_keys(self) -> list[str]:
        return list(self._data_arrays())

    @property
    def keys(self) -> list[str]:
        """Data keys (``data/<key>``), sorted."""
        return self._data_keys()

    @property
    def n_episodes(self) -> int:
        return len(self._ends)

    @property
    def n_steps(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    @property
    def episode_ends(self) -> np.ndarray:
        """``(N_episodes,) int64`` cumulative end index of every committed episode."""
        return self._ends.copy()

    @property
    def episode_starts(self) -> np.ndarray:
        return np.concatenate([[0], self._ends[:-1]]).astype(np.int64)

    @property
    def episode_lengths(self) -> np.ndarray:
        return np.diff(np.concatenate([[0], self._ends])).astype(np.int64)

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(dict(self.root.attrs).get("robolearn", {}))

    @property
    def cell_config(self) -> dict[str, Any] | None:
        return self.attrs.get("cell_config")

    @property
    def cameras(self) -> dict[str, Any] | None:
        return self.attrs.get("cameras")

    @property
    def cell(self) -> CellConfig | None:
        """The typed cell the store was recorded on (None when it keeps none, e.g. an import)."""
        if self._cell is None and self.cell_config:
            self._cell = typed_cell(self.cell_config, source=f"{self.path} (its cell_config)")
        return self._cell

    @property
    def control_hz(self) -> float:
        """The control rate of the recording: its cell's, else the ``CellConfig`` default."""
        return (self.cell or CellConfig()).control_hz

    @property
    def jpeg_quality(self) -> int:
        return int(self.attrs.get("jpeg_quality", DEFAULT_JPEG_QUALITY))

    def array(self, key: str) -> zarr.Array:
        """The zarr array ``data/<key>`` (all episodes; index it with contiguous slices)."""
        arrays = self._data_arrays()
        if key not in arrays:
            raise KeyError(f"no data key {key!r} in {self.path}; it has {self.keys}")
        return arrays[key]

    def episode_slice(self, index: int) -> slice:
        if not -self.n_episodes <= index < self.n_episodes:
            raise IndexError(f"episode {index} out of range; {self.path} has {self.n_episodes} episodes")
        index %= self.n_episodes
        start = int(self._ends[index - 1]) if index else 0
        return slice(start, int(self._ends[index]))

    def episode(self, index: int, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """All arrays of episode ``index`` (time first): ``{key: (T, ...)}``."""
        span = self.episode_slice(index)
        return {key: self.array(key)[span] for key in (self.keys if keys is None else keys)}

    def episode_segments(self, index: int) -> list[tuple[int, int]]:
        """The runs of consecutive control steps of episode ``index`` as ``[(start, stop), ...]``
        store rows: the whole episode, split where the recorder dropped steps (its metadata's
        ``gaps``), so no window of training data spans a time gap."""
        span = self.episode_slice(index)
        cuts = sorted({span.start + int(step) for step, _ in self._info[index % self.n_episodes].get("gaps") or ()
                       if 0 < int(step) < span.stop - span.start})
        bounds = [span.start, *cuts, span.stop]
        return list(zip(bounds[:-1], bounds[1:]))

    def encoded_frame(self, key: str, index: int) -> bytes:
        """The stored JPEG of RGB frame ``index`` of ``data/<key>`` (the chunk file itself; a
        frame never written is encoded from the fill value)."""
        if kind_of(key) != "rgb":
            raise ValueError(f"{key}: only rgb_* arrays hold JPEG frames")
        array = self.array(key)
        try:
            return (self.path / "data" / key / chunk_key(array, index)).read_bytes()
        except FileNotFoundError:
            blank = np.full(array.shape[1:], array.fill_value, dtype=array.dtype)
            return bytes(array.compressors[0].encode(blank))

    def episode_meta(self, index: int) -> dict[str, Any]:
        self.episode_slice(index)
        return dict(self._info[index])

    def episode_metas(self) -> list[dict[str, Any]]:
        return [dict(m) for m in self._info]

    # ---- writing ---------------------------------------------------------------------------------

    def _require_writable(self) -> None:
        if self.mode != "a":
            raise PermissionError(f"{self.path} is open read-only; use DemoStore.open(path, mode='a') to write")
        if not self.writable:
            raise PermissionError(f"{self.path} was closed; open it again with DemoStore.open(path, mode='a') to write")

    def check_keys(self, frame_specs: Mapping[str, tuple[tuple[int, ...], np.dtype]]) -> None:
        """Raise ``ValueError`` (naming the key and the fix) when an episode with these keys, frame
        shapes and dtypes cannot go into this store. An empty store takes any keys.

        frame_specs: ``{key: (shape of one step, dtype)}``.
        """
        if not self.n_episodes:
            return
        existing = set(self._data_keys())
        missing, extra = sorted(existing - set(frame_specs)), sorted(set(frame_specs) - existing)
        if missing or extra:
            raise ValueError(f"episode keys differ from the store's {sorted(existing)}: missing {missing}, "
                             f"extra {extra}; record the same keys, or write to a new store")
        for key, (shape, dtype) in frame_specs.items():
            array = self.array(key)
            if tuple(array.shape[1:]) != tuple(shape):
                raise ValueError(f"{key}: frames of shape {tuple(shape)} but the store holds {tuple(array.shape[1:])}; "
                                 "derive a resized store with `robolearn data resize` or write to a new store")
            if not np.can_cast(np.dtype(dtype), array.dtype, casting="same_kind"):
                raise ValueError(f"{key}: dtype {np.dtype(dtype)} cannot be stored as {array.dtype}; "
                                 "convert it, or write to a new store")

    def prepare_keys(self, frame_specs: Mapping[str, tuple[tuple[int, ...], np.dtype]]) -> None:
        """Check an episode's keys against the store (``check_keys``) and create missing arrays; an
        empty store takes the keys, shapes and dtypes of its first episode.

        frame_specs: ``{key: (shape of one step, dtype)}``.
        """
        self._require_writable()
        self.check_keys(frame_specs)
        data = self.root["data"]
        arrays = self._data_arrays()
        for key, (shape, dtype) in frame_specs.items():
            wanted = _store_dtype(key, np.dtype(dtype))
            if key in arrays:
                array = arrays[key]
                if tuple(array.shape[1:]) == tuple(shape) and (self.n_episodes or array.dtype == wanted):
                    continue
                del data[key]
            data.create_array(key, **array_spec(key, tuple(shape), wanted, self.jpeg_quality))
        if not self.n_episodes:
            for key in set(arrays) - set(frame_specs):
                del data[key]
        self._arrays = None

    def write_block(self, key: str, start: int, values: np.ndarray) -> None:
        """Write ``values`` ``(n, ...)`` into ``data/<key>[start:start + n]``, growing the array
        (uncommitted until ``commit``)."""
        self._require_writable()
        array = self.array(key)
        stop = start + len(values)
        if array.shape[0] < stop:
            array.resize((stop, *array.shape[1:]))
        if kind_of(key) == "depth":
            values = prepare_depth(values)
        array[start:stop] = np.asarray(values, dtype=array.dtype)

    def write_encoded(self, key: str, start: int, frames: Iterable[bytes]) -> None:
        """Write already-encoded RGB frames (JPEG files of the array's frame size) as the chunks
        ``start, start + 1, ...`` of ``data/<key>``, without re-encoding (uncommitted until ``commit``)."""
        import imagecodecs

        if kind_of(key) != "rgb":
            raise ValueError(f"{key}: only rgb_* arrays take encoded JPEG frames")
        array = self.array(key)
        frames = list(frames)
        self.reserve(key, start + len(frames))
        for offset, payload in enumerate(frames):
            shape = imagecodecs.jpeg8_decode(payload).shape
            if tuple(shape) != tuple(array.shape[1:]):
                raise ValueError(f"{key}: a JPEG frame of shape {shape} does not fit frames of {tuple(array.shape[1:])}")
            target = self.path / "data" / key / chunk_key(array, start + offset)
            partial = target.with_name(target.name + ".partial")
            partial.write_bytes(payload)
            os.replace(partial, target)

    def reserve(self, key: str, length: int) -> None:
        """Grow ``data/<key>`` to at least ``length`` steps (uncommitted space for streaming)."""
        self._require_writable()
        array = self.array(key)
        if array.shape[0] < length:
            array.resize((length, *array.shape[1:]))

    def commit(self, length: int, meta: Mapping[str, Any]) -> int:
        """Commit the ``length`` steps written after the last episode as a new episode; returns its index.

        meta: task, success, operator, source (teleop | expert | policy | online), duration_s and any
        JSON-serializable extras. ``episode_ends`` is written last: this is the commit point.
        """
        self._require_writable()
        if length <= 0:
            raise ValueError("an episode needs at least one step")
        info = normalize_meta(meta, length)
        start, n = self.n_steps, self.n_episodes
        end = start + length
        for key, array in self._data_arrays().items():
            if array.shape[0] < end:
                raise ValueError(f"{key} has {array.shape[0] - start} uncommitted steps, the episode has {length}")
            if array.shape[0] > end:
                array.resize((end, *array.shape[1:]))
        info_array, ends_array = self._meta["episode_info"], self._meta["episode_ends"]
        if info_array.shape[0] != n:
            _truncate_clean(info_array, n)
        info_array.resize((n + 1,))
        info_array[n] = json.dumps(info)
        ends_array.resize((n + 1,))
        ends_array[n] = end
        self._ends = np.concatenate([self._ends, [end]]).astype(np.int64)
        self._info.append(info)
        return n

    def append_episode(self, data: Mapping[str, np.ndarray], meta: Mapping[str, Any],
                       frames_from: tuple[DemoStore, int] | None = None) -> int:
        """Write one whole episode and commit it atomically; returns its index.

        data: ``{key: (T, ...)}`` with the same T for every key (see the module docstring for keys).
        frames_from: ``(store, episode)`` this episode was read from: its RGB and depth frames are
        linked from there (bit-exact, no JPEG re-encoding) instead of encoded from ``data``.
        """
        arrays = {key: np.asarray(value) for key, value in data.items()}
        lengths = {key: (value.shape[0] if value.ndim else -1) for key, value in arrays.items()}
        if not arrays or len(set(lengths.values())) != 1 or min(lengths.values()) <= 0:
            raise ValueError(f"every array of an episode needs the same number of steps T ≥ 1 along axis 0; got {lengths}")
        length = len(next(iter(arrays.values())))
        normalize_meta(meta, length)
        linked: set[str] = set()
        if frames_from is not None:
            source, index = frames_from
            span = source.episode_slice(index)
            if span.stop - span.start != length:
                raise ValueError(f"frames_from episode {index} has {span.stop - span.start} steps, the data {length}")
        self.prepare_keys({key: (value.shape[1:], value.dtype) for key, value in arrays.items()})
        if frames_from is not None:
            linked = {k for k in arrays if kind_of(k) != "lowdim" and k in source.keys
                      and _same_encoding(source.array(k), self.array(k))}
        start = self.n_steps
        try:
            for key, value in arrays.items():
                if key in linked:
                    self.link_frames(source, key, span.start, start, length)
                else:
                    self.write_block(key, start, value)
            return self.commit(length, meta)
        except Exception:
            self.repair()
            raise

    def link_frames(self, source: DemoStore, key: str, source_start: int, start: int, length: int) -> None:
        """Hard-link (or copy) ``length`` per-frame chunks of ``source``'s ``data/<key>`` from
        ``source_start`` to ``start`` in this store (uncommitted until ``commit``)."""
        src, dst = source.array(key), self.array(key)
        if not _same_encoding(src, dst):
            raise ValueError(f"{key}: the two stores encode frames differently; they cannot be linked")
        self.reserve(key, start + length)
        for offset in range(length):
            _link_chunk(source.path / "data" / key / chunk_key(src, source_start + offset),
                        self.path / "data" / key / chunk_key(dst, start + offset))

    def begin_episode(self) -> EpisodeWriter:
        """A streaming writer for one episode (frames reach disk as they are added)."""
        from robolearn.store.writer import EpisodeWriter

        return EpisodeWriter(self)

    # ---- statistics --------------------------------------------------------------------------------

    def stats(self, keys: Iterable[str] | None = None, save: bool = True) -> dict[str, dict[str, list[float]]]:
        """Normalization statistics (mean, std, min, max, q01, q99 per dimension) of the
        low-dimensional float keys over all committed steps, computed once and stored in
        ``meta/.zattrs["stats"]`` (recomputed when the store has grown)."""
        if not self.n_steps:
            raise ValueError(f"{self.path} has no committed episodes yet; statistics need at least one")
        wanted = [k for k in keys] if keys is not None else \
            [k for k in self.keys if kind_of(k) == "lowdim" and k not in STATS_KEYS_SKIPPED]
        cached = dict(self.root["meta"].attrs).get("stats", {})
        if cached.get("n_steps") == self.n_steps and all(k in cached.get("keys", {}) for k in wanted):
            return {k: cached["keys"][k] for k in wanted}
        computed = {}
        for key in self.keys:
            array = self.array(key)
            if kind_of(key) != "lowdim" or key in STATS_KEYS_SKIPPED or array.dtype.kind not in "fiub":
                continue
            values = np.asarray(array[: self.n_steps], dtype=np.float64).reshape(self.n_steps, -1)
            if not len(values):
                continue
            computed[key] = {
                "mean": values.mean(0).tolist(), "std": values.std(0).tolist(),
                "min": values.min(0).tolist(), "max": values.max(0).tolist(),
                "q01": np.quantile(values, 0.01, axis=0).tolist(), "q99": np.quantile(values, 0.99, axis=0).tolist(),
            }
        if save and self.writable:
            self.root["meta"].attrs["stats"] = {"n_steps": self.n_steps, "keys": computed}
        missing = [k for k in wanted if k not in computed]
        if missing:
            raise KeyError(f"no statistics for {missing}: not numeric low-dimensional keys of {self.path}")
        return {k: computed[k] for k in wanted}

    # ---- maintenance -------------------------------------------------------------------------------

    def delete_episodes(self, indices: Iterable[int], progress: Callable[[int], None] | None = None) -> int:
        """Remove episodes by index; returns the new episode count. progress: called with the number
        of kept episodes copied so far.

        The kept episodes are copied into ``<path>.rewrite`` (image chunks hard-linked or copied,
        never re-encoded), then swapped in: ``<path>`` → ``<path>.old``, ``<path>.rewrite`` →
        ``<path>``, ``<path>.old`` removed. A process killed at any point loses nothing:
        ``DemoStore.open`` finishes an interrupted swap or drops an unfinished copy.
        """
        self._require_writable()
        indices = [int(i) for i in indices]
        bad = [i for i in indices if not -self.n_episodes <= i < self.n_episodes]
        if bad:
            raise IndexError(f"episodes {bad} out of range; {self.path} has {self.n_episodes} episodes")
        drop = {i % self.n_episodes for i in indices}
        keep = [i for i in range(self.n_episodes) if i not in drop]
        tmp, old = _rewrite_paths(self.path)
        if tmp.exists():
            shutil.rmtree(tmp)
        copy = copy_episodes(self, tmp, keep, progress=progress)
        copy.root.attrs["robolearn"] = self.attrs
        (tmp / REWRITE_DONE).touch()
        os.replace(self.path, old)
        _finish_rewrite(self.path, clean=True)
        # The copy's lock file is now the store's: take it over (shared with the copy, which holds
        # it), then let go of the old one; a waiting writer finds the old file replaced and waits on.
        new_lock = WriterLock.acquire(self.path, timeout_s=0.0)
        copy.close()
        self._set_lock(new_lock)
        self.root = zarr.open_group(str(self.path), mode="r+", zarr_format=2)
        self.refresh()
        return self.n_episodes

    def __repr__(self) -> str:
        return f"DemoStore({str(self.path)!r}, episodes={self.n_episodes}, steps={self.n_steps}, keys={self.keys})"


REWRITE_DONE = ".robolearn-rewrite-complete"


def _rewrite_paths(path: Path) -> tuple[Path, Path]:
    """``(<path>.rewrite, <path>.old)``: the new copy and the old store during ``delete_episodes``."""
    return path.with_name(path.name + ".rewrite"), path.with_name(path.name + ".old")


def _finish_rewrite(path: Path, clean: bool) -> None:
    """Complete a ``delete_episodes`` swap that was interrupted: a finished copy whose store is
    already moved aside is moved into place. With ``clean`` (only under the writer lock), also
    remove a leftover old store (once the new one is in place) and an unfinished copy. Another
    process finishing the same swap at the same moment is harmless."""
    tmp, old = _rewrite_paths(path)
    for source in (tmp, old):
        if not path.exists() and source.exists() and (source is old or (tmp / REWRITE_DONE).exists()):
            try:
                os.replace(source, path)
            except OSError:
                if not path.exists():
                    raise
    (path / REWRITE_DONE).unlink(missing_ok=True)
    if clean:
        if old.exists():
            shutil.rmtree(old)
        if tmp.exists():
            shutil.rmtree(tmp)


ABANDONED_AFTER_S = 60.0
"""A creation directory whose lock file never appeared is abandoned after this long."""


def _remove_abandoned_creations(path: Path) -> None:
    """Remove hidden ``.<name>.creating-*`` siblings of ``path`` left by processes killed while
    creating a store there (their writer lock is free; one still being built is left alone)."""
    for leftover in path.parent.glob(f".{path.name}.creating-*"):
        if not (leftover / LOCK_FILE).exists():
            if time.time() - leftover.stat().st_mtime > ABANDONED_AFTER_S:
                shutil.rmtree(leftover, ignore_errors=True)
            continue
        try:
            lock = WriterLock.acquire(leftover, timeout_s=0.0)
        except StoreLockedError:
            continue
        shutil.rmtree(leftover, ignore_errors=True)
        lock.release()


def _move_into_place(building: Path, path: Path, overwrite: bool, lock_timeout_s: float) -> None:
    """Rename the finished store ``building`` to ``path`` (absent, or an empty directory; with
    ``overwrite``, whatever is there is removed first, a store once its writer lets go)."""
    if overwrite and path.exists() and any(path.iterdir()):
        held = WriterLock.acquire(path, lock_timeout_s) if (path / LOCK_FILE).parent.is_dir() else None
        aside = Path(tempfile.mkdtemp(prefix=f".{path.name}.replaced-", dir=path.parent))
        os.replace(path, aside)
        if held is not None:
            held.release()
        shutil.rmtree(aside)
    try:
        os.replace(building, path)
    except OSError as err:
        raise AlreadyExistsError(f"{path} appeared while the store was being created (another process?); pick "
                              "a new path") from err


def _truncate_clean(array: zarr.Array, n: int) -> None:
    """Shrink a 1-D meta array to ``n`` entries and reset the stale values past ``n`` in its last
    chunk to the fill value, so a later grow-then-write that is interrupted can never expose them."""
    chunk = array.chunks[0]
    padded = min(array.shape[0], -(-n // chunk) * chunk) if n else 0
    if padded > n:
        array[n:padded] = array.fill_value if array.dtype.kind != "O" else ""
    array.resize((n,))


def normalize_meta(meta: Mapping[str, Any], length: int) -> dict[str, Any]:
    """The stored form of an episode's metadata; raises on a missing or unknown ``source``."""
    info = _jsonable(dict(meta))
    source = info.get("source")
    if source not in SOURCES:
        raise ValueError(f"episode meta 'source' must be one of {', '.join(SOURCES)}, got {source!r}")
    info["task"] = str(info.get("task", ""))
    info["success"] = bool(info.get("success", False))
    info["operator"] = str(info.get("operator", ""))
    info["duration_s"] = float(info.get("duration_s", 0.0))
    info["length"] = int(length)
    info.setdefault("committed_utc", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    json.dumps(info)
    return info


CALIBRATION_KEYS = ("width_px", "height_px", "fps", "depth", "mount", "pos_m", "look_at_m", "up", "fov_y_deg")


def cameras_from_cell(cell: CellConfig | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Camera calibration of a cell (typed, or as the dict a store keeps): each camera's type, image
    size, rate, pose, and pinhole intrinsics from ``CameraConfig.intrinsics`` (its ``fx_px, fy_px,
    cx_px, cy_px`` when set, else from ``fov_y_deg``), what the twin renders."""
    if cell is not None and not isinstance(cell, CellConfig):
        cell = typed_cell(cell)
    if cell is None or not cell.cameras:
        return None
    return {camera.name: {"type": camera.type, **{k: to_dict(getattr(camera, k)) for k in CALIBRATION_KEYS},
                          "intrinsics": dataclasses.asdict(camera.intrinsics())} for camera in cell.cameras}


def typed_cell(cell_config: Mapping[str, Any] | None, source: str = "the store's cell_config") -> CellConfig | None:
    """The typed ``CellConfig`` of a cell dict a store keeps (None for a store that keeps none)."""
    return from_dict(CellConfig, dict(cell_config), source=source) if cell_config else None


def copy_episodes(source: DemoStore, destination: str | Path, episodes: Iterable[int],
                  transform: Callable[[str, np.ndarray], np.ndarray] | None = None, jpeg_quality: int | None = None,
                  progress: Callable[[int], None] | None = None) -> DemoStore:
    """A new store at ``destination`` with the given episodes of ``source`` (in that order).

    Chunk-per-frame arrays are hard-linked (or copied) chunk by chunk, never re-encoded, unless
    ``transform(key, frames) -> frames`` changes them (``robolearn data resize``).
    """
    out = DemoStore.create(destination, cell_config=source.cell_config, cameras=source.cameras,
                           jpeg_quality=jpeg_quality or source.jpeg_quality)
    out.inherit_attrs(source.attrs)
    for count, index in enumerate(episodes):
        span = source.episode_slice(index)
        length = span.stop - span.start
        specs, direct = {}, {}
        for key in source.keys:
            array = source.array(key)
            if transform is None and kind_of(key) != "lowdim":
                specs[key] = (tuple(array.shape[1:]), array.dtype)
            else:
                direct[key] = array[span] if transform is None else transform(key, array[span])
                specs[key] = (direct[key].shape[1:], direct[key].dtype)
        out.prepare_keys(specs)
        start = out.n_steps
        for key in specs:
            if key in direct:
                out.write_block(key, start, direct[key])
            else:
                out.link_frames(source, key, span.start, start, length)
        out.commit(length, source.episode_meta(index))
        if progress:
            progress(count + 1)
    return out


def _same_encoding(a: zarr.Array, b: zarr.Array) -> bool:
    """Whether chunks of ``a`` are valid chunks of ``b`` (same frame shape, dtype and codecs)."""
    return {**a.metadata.to_dict(), "shape": None} == {**b.metadata.to_dict(), "shape": None}


def _link_chunk(src: Path, dst: Path) -> None:
    """Make ``dst`` the same chunk as ``src`` (a hard link, else a copy); a missing ``src`` (a frame
    equal to the fill value in a store written without one chunk per frame) removes ``dst``."""
    dst.unlink(missing_ok=True)
    if not src.exists():
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
