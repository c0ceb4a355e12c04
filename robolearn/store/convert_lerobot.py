"""Export to and import from the LeRobotDataset v3.0 layout (parquet via pyarrow, mp4 via PyAV)::

    <root>/meta/info.json                              codebase_version "v3.0", fps, features, path templates
    <root>/meta/stats.json                             per-feature mean/std/min/max/count
    <root>/meta/tasks.parquet                          task (pandas index) → task_index
    <root>/meta/episodes/chunk-000/file-000.parquet    one row per episode: length, tasks, data and video files
                                                       (chunk and file index) and the episode's place in them
    <root>/data/chunk-CCC/file-FFF.parquet             one row per frame, many episodes per file
    <root>/videos/<video_key>/chunk-CCC/file-FFF.mp4   a camera's episodes back to back, many per file

A data or video file takes whole episodes until it reaches ``data_files_size_in_mb`` /
``video_files_size_in_mb`` (100 / 500 MB, LeRobot's defaults), then the next file index starts; a
chunk holds ``chunks_size`` (1000) files. Export and import stream episode by episode, so neither
holds more than one episode's data (and one frame per camera on import) in memory.

Key names: ``state`` ↔ ``observation.state``, ``object_state`` ↔ ``observation.environment_state``,
``rgb_<cam>`` ↔ ``observation.images.<cam>`` (video), ``depth_<cam>`` ↔ ``observation.depth.<cam>``
(float32 metres in parquet), ``reward`` ↔ ``next.reward``, ``terminated`` ↔ ``next.done``,
``success`` ↔ ``next.success``; other keys keep their names. robolearn's store attributes and
per-episode metadata travel in ``info.json["robolearn"]`` and the episodes table's
``robolearn_meta`` column, so store → LeRobot → store keeps everything (RGB within video-codec
tolerance). Datasets written by LeRobot itself import too (video features only, no PNG images).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.errors import AlreadyExistsError, NotFoundError
from robolearn.store.codecs import kind_of
from robolearn.store.store import DemoStore

CODEBASE_VERSION = "v3.0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
CHUNKS_SIZE = 1000
DATA_FILE_MB = 100.0
VIDEO_FILE_MB = 500.0
FRAME_BLOCK = 256
RENAMES = {"state": "observation.state", "object_state": "observation.environment_state", "reward": "next.reward",
           "terminated": "next.done", "success": "next.success"}
BOOKKEEPING = ("timestamp", "frame_index", "episode_index", "index", "task_index")


def feature_name(key: str) -> str:
    if key.startswith("rgb_"):
        return f"observation.images.{key[4:]}"
    if key.startswith("depth_"):
        return f"observation.depth.{key[6:]}"
    return RENAMES.get(key, key)


def key_name(feature: str) -> str:
    if feature.startswith("observation.images."):
        return "rgb_" + feature[len("observation.images."):].replace(".", "_")
    if feature.startswith("observation.depth."):
        return "depth_" + feature[len("observation.depth."):].replace(".", "_")
    inverse = {v: k for k, v in RENAMES.items()}
    return inverse.get(feature, feature.replace(".", "_"))


def _require_pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError as err:
        raise ImportError("LeRobot export/import needs pyarrow: pip install pyarrow") from err
    return pyarrow


def _column(pa: Any, values: np.ndarray) -> Any:
    """A pyarrow column of per-frame values ``(N, ...)``: scalars, or nested fixed-size lists."""
    flat = pa.array(np.ascontiguousarray(values).reshape(-1))
    for size in reversed(values.shape[1:]):
        flat = pa.FixedSizeListArray.from_arrays(flat, int(size))
    return flat


def _fps(store: DemoStore) -> float:
    return float((store.cell_config or {}).get("control_hz", 10.0))


class _ParquetFiles:
    """Frames appended episode by episode to ``data/chunk-CCC/file-FFF.parquet``, a new file once the
    current one holds ``file_mb`` of (uncompressed) columns (an episode never spans two files; 0: one
    episode per file), a new chunk every
    ``chunks_size`` files (LeRobot's ``update_chunk_file_indices``)."""

    def __init__(self, root: Path, chunks_size: int, file_mb: float):
        self.root, self.chunks_size, self.limit_bytes = root, chunks_size, file_mb * 1e6
        self.chunk, self.file, self.bytes = 0, -1, 0.0
        self.writer: Any = None

    def write(self, table: Any) -> tuple[int, int]:
        """Write one episode's frames; returns ``(chunk_index, file_index)`` of its file."""
        import pyarrow.parquet as pq

        if self.writer is None or self.bytes >= self.limit_bytes:
            self.close()
            self.chunk, self.file = _next_file(self.chunk, self.file, self.chunks_size)
            path = self.root / DATA_PATH.format(chunk_index=self.chunk, file_index=self.file)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.writer, self.bytes = pq.ParquetWriter(path, table.schema), 0.0
        self.writer.write_table(table)
        self.bytes += table.nbytes
        return self.chunk, self.file

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class _VideoFiles:
    """One camera's episodes encoded back to back into ``videos/<key>/chunk-CCC/file-FFF.mp4``, a
    new file once the encoded packets of the current one reach ``file_mb`` (0: one episode per
    file); frames stream from the store in blocks."""

    def __init__(self, root: Path, video_key: str, fps: float, codec: str, crf: int, pix_fmt: str,
                 chunks_size: int, file_mb: float):
        self.root, self.video_key, self.fps = root, video_key, fps
        self.codec, self.crf, self.pix_fmt = codec, crf, pix_fmt
        self.chunks_size, self.limit_bytes = chunks_size, file_mb * 1e6
        self.chunk, self.file, self.frames_in_file, self.bytes = 0, -1, 0, 0
        self.path: Path | None = None
        self.container: Any = None
        self.stream: Any = None

    def write(self, array: Any, span: slice) -> tuple[int, int, float, float]:
        """Encode frames ``span`` of ``array`` ``(N, H, W, 3)``; returns ``(chunk_index, file_index,
        from_timestamp, to_timestamp)`` of the episode within its file."""
        import av

        if self.container is None or self.bytes >= self.limit_bytes:
            self.close()
            self.chunk, self.file = _next_file(self.chunk, self.file, self.chunks_size)
            self.path = self.root / VIDEO_PATH.format(video_key=self.video_key, chunk_index=self.chunk,
                                                      file_index=self.file)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.container = av.open(str(self.path), mode="w")
            self.stream = self.container.add_stream(self.codec, rate=Fraction(self.fps).limit_denominator(1001))
            self.stream.width, self.stream.height, self.stream.pix_fmt = array.shape[2], array.shape[1], self.pix_fmt
            self.stream.options = {"crf": str(self.crf)}
            self.frames_in_file, self.bytes = 0, 0
        first = self.frames_in_file
        for start in range(span.start, span.stop, FRAME_BLOCK):
            for frame in array[start: min(start + FRAME_BLOCK, span.stop)]:
                for packet in self.stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    self.bytes += packet.size
                    self.container.mux(packet)
        self.frames_in_file += span.stop - span.start
        return self.chunk, self.file, first / self.fps, self.frames_in_file / self.fps

    def close(self) -> None:
        if self.container is not None:
            self.container.mux(self.stream.encode())
            self.container.close()
            self.container = None


def _next_file(chunk: int, file: int, chunks_size: int) -> tuple[int, int]:
    """The ``(chunk_index, file_index)`` after ``(chunk, file)``; ``file == -1``: the first file."""
    if file < 0:
        return 0, 0
    return (chunk + 1, 0) if file == chunks_size - 1 else (chunk, file + 1)


def export_lerobot(store: DemoStore, root: str | Path, fps: float | None = None, codec: str = "libx264",
                   crf: int = 10, pix_fmt: str = "yuv420p", progress: Callable[[int], None] | None = None,
                   chunks_size: int = CHUNKS_SIZE, data_file_mb: float = DATA_FILE_MB,
                   video_file_mb: float = VIDEO_FILE_MB) -> dict[str, Any]:
    """Write every episode of ``store`` as a LeRobotDataset v3.0 at ``root`` (a new directory),
    episode by episode: memory holds one episode's low-dimensional and depth columns and a block of
    frames, whatever the store's size. Data and video files roll over at ``data_file_mb`` /
    ``video_file_mb`` (LeRobot's defaults), ``chunks_size`` files per chunk. progress: called with
    the number of episodes written."""
    pa = _require_pyarrow()
    import pyarrow.parquet as pq

    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise AlreadyExistsError(f"{root} exists and is not empty; pick a new directory")
    if not store.n_episodes:
        raise ValueError(f"{store.path} has no episodes to export")
    fps = float(fps or _fps(store))
    n, metas = store.n_steps, store.episode_metas()
    starts, ends = store.episode_starts, store.episode_ends
    tasks = sorted({m["task"] for m in metas})
    task_index = {t: i for i, t in enumerate(tasks)}
    video_keys = [k for k in store.keys if kind_of(k) == "rgb"]
    data_keys = [k for k in store.keys if kind_of(k) != "rgb"]
    features: dict[str, Any] = {}
    for key in video_keys:
        h, w = store.array(key).shape[1:3]
        features[feature_name(key)] = {
            "dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"],
            "info": {"video.fps": fps, "video.height": h, "video.width": w, "video.channels": 3,
                     "video.codec": "h264" if codec == "libx264" else codec, "video.pix_fmt": pix_fmt,
                     "video.is_depth_map": False, "has_audio": False}}
    for key in data_keys:
        array = store.array(key)
        features[feature_name(key)] = {"dtype": "bool" if array.dtype == np.bool_ else str(array.dtype),
                                       "shape": list(array.shape[1:]) or [1], "names": None}
    for name, dtype in (("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"),
                        ("index", "int64"), ("task_index", "int64")):
        features[name] = {"dtype": dtype, "shape": [1], "names": None}

    data_files = _ParquetFiles(root, chunks_size, data_file_mb)
    videos = {key: _VideoFiles(root, feature_name(key), fps, codec, crf, pix_fmt, chunks_size, video_file_mb)
              for key in video_keys}
    rows: list[dict[str, Any]] = []
    try:
        for episode in range(store.n_episodes):
            span = slice(int(starts[episode]), int(ends[episode]))
            length = span.stop - span.start
            frame_index = np.arange(length, dtype=np.int64)
            columns = {feature_name(key): _column(pa, store.array(key)[span]) for key in data_keys}
            columns.update({
                "timestamp": pa.array((frame_index / fps).astype(np.float32)), "frame_index": pa.array(frame_index),
                "episode_index": pa.array(np.full(length, episode, np.int64)),
                "index": pa.array(np.arange(span.start, span.stop, dtype=np.int64)),
                "task_index": pa.array(np.full(length, task_index[metas[episode]["task"]], np.int64))})
            chunk, file = data_files.write(pa.table(columns))
            row: dict[str, Any] = {"episode_index": episode, "tasks": [metas[episode]["task"]], "length": length,
                                   "data/chunk_index": chunk, "data/file_index": file,
                                   "dataset_from_index": span.start, "dataset_to_index": span.stop}
            for key in video_keys:
                prefix = f"videos/{feature_name(key)}/"
                chunk, file, from_s, to_s = videos[key].write(store.array(key), span)
                row.update({prefix + "chunk_index": chunk, prefix + "file_index": file,
                            prefix + "from_timestamp": from_s, prefix + "to_timestamp": to_s})
            row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0,
                        "robolearn_meta": json.dumps(metas[episode])})
            rows.append(row)
            if progress:
                progress(episode + 1)
    finally:
        data_files.close()
        for video in videos.values():
            video.close()
    episodes_path = root / EPISODES_PATH.format(chunk_index=0, file_index=0)
    episodes_path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), episodes_path)
    _write_tasks(pa, pq, tasks, root / "meta" / "tasks.parquet")
    stats = {feature_name(k): v for k, v in store.stats(save=False).items()}
    for key in video_keys:
        stats[feature_name(key)] = _image_stats(store, key)
    (root / "meta" / "stats.json").write_text(json.dumps(stats, indent=2))
    cell = store.cell_config or {}
    info = {
        "codebase_version": CODEBASE_VERSION, "robot_type": (cell.get("robot") or {}).get("model"),
        "total_episodes": store.n_episodes, "total_frames": n, "total_tasks": len(tasks), "chunks_size": chunks_size,
        "data_files_size_in_mb": data_file_mb, "video_files_size_in_mb": video_file_mb, "fps": fps,
        "splits": {"train": f"0:{store.n_episodes}"}, "data_path": DATA_PATH, "video_path": VIDEO_PATH if video_keys else None,
        "features": features, "robolearn": store.attrs,
    }
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=2))
    return {"path": str(root), "episodes": store.n_episodes, "frames": n, "videos": len(video_keys), "fps": fps}


def _write_tasks(pa: Any, pq: Any, tasks: list[str], path: Path) -> None:
    """tasks.parquet as pandas writes ``DataFrame({"task_index": ...}, index=Index(tasks, name="task"))``."""
    table = pa.table({"task_index": pa.array(np.arange(len(tasks), dtype=np.int64)), "task": pa.array(tasks, pa.string())})
    pandas_meta = {"index_columns": ["task"], "column_indexes": [], "pandas_version": "2.2.0",
                   "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
                                "numpy_type": "int64", "metadata": None},
                               {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object",
                                "metadata": None}]}
    pq.write_table(table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()}), path)


def _image_stats(store: DemoStore, key: str, max_frames: int = 200) -> dict[str, Any]:
    """Per-channel statistics of up to ``max_frames`` evenly spaced frames, scaled to [0, 1],
    shaped ``(3, 1, 1)`` as LeRobot keeps them."""
    array = store.array(key)
    picks = np.unique(np.linspace(0, store.n_steps - 1, min(max_frames, store.n_steps)).astype(int))
    pixels = np.stack([array[i] for i in picks]).reshape(-1, 3).astype(np.float64) / 255.0
    shape = lambda v: [[[float(x)]] for x in v]  # noqa: E731
    return {"mean": shape(pixels.mean(0)), "std": shape(pixels.std(0)), "min": shape(pixels.min(0)),
            "max": shape(pixels.max(0)), "count": [int(len(picks))]}


class _VideoCursor:
    """Frames of one mp4 decoded in order, on demand: an episode takes its frames and decoding stops
    there until the next episode asks for more. Frame numbers are the frames' timestamps × fps,
    rounded. Going back to an earlier frame decodes the file again from the start."""

    def __init__(self, path: Path, fps: float):
        self.path, self.fps = path, fps
        self.container: Any = None
        self.decoded: Iterator[tuple[int, Any]] = iter(())
        self.last = -1

    def _open(self) -> None:
        import av

        self.close()
        self.container = av.open(str(self.path))
        self.decoded = ((round(float(frame.time) * self.fps), frame) for frame in self.container.decode(video=0))
        self.last = -1

    def frames(self, first: int, count: int) -> Iterator[np.ndarray]:
        """Frames ``first … first + count − 1`` as ``(H, W, 3) uint8``, one at a time."""
        if self.container is None or first <= self.last:
            self._open()
        for wanted in range(first, first + count):
            while True:
                item = next(self.decoded, None)
                if item is None or item[0] > wanted:
                    raise ValueError(f"{self.path} has no frame {wanted} (at {wanted / self.fps:.3f} s) that the "
                                     "episodes table points to; the dataset is incomplete")
                if item[0] == wanted:
                    break
            self.last = wanted
            yield item[1].to_ndarray(format="rgb24")

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None


def import_lerobot(root: str | Path, destination: str | Path, progress: Callable[[int], None] | None = None) -> DemoStore:
    """A new store at ``destination`` from the LeRobotDataset v3.0 at ``root``, episode by episode:
    each episode's video frames are decoded as they are written into the store (one frame per camera
    in memory), and one data file is read at a time. progress: called with the number of episodes
    imported."""
    _require_pyarrow()
    import pyarrow.parquet as pq

    root = Path(root)
    info_path = root / "meta" / "info.json"
    if not info_path.exists():
        raise NotFoundError(f"{root} is not a LeRobotDataset (no meta/info.json)")
    info = json.loads(info_path.read_text())
    if not str(info.get("codebase_version", "")).startswith("v3"):
        raise ValueError(f"{root} is LeRobotDataset {info.get('codebase_version')}; only v3.x imports (convert it with "
                         "lerobot's convert_dataset_v21_to_v30 first)")
    fps = float(info["fps"])
    features = info["features"]
    images = [f for f, spec in features.items() if spec["dtype"] == "image"]
    if images:
        raise ValueError(f"{root}: image features {images} (PNG in parquet) are not supported; re-encode them as video")
    episodes = pq.read_table(sorted((root / "meta" / "episodes").rglob("*.parquet"))).to_pylist()
    episodes.sort(key=lambda e: e["episode_index"])
    tasks_table = pq.read_table(root / "meta" / "tasks.parquet").to_pylist()
    tasks = {row["task_index"]: row.get("task", row.get("__index_level_0__", "")) for row in tasks_table}
    attrs = info.get("robolearn") or {}
    out = DemoStore.create(destination, cell_config=attrs.get("cell_config"), cameras=attrs.get("cameras"),
                           **({"jpeg_quality": attrs["jpeg_quality"]} if "jpeg_quality" in attrs else {}))
    if attrs:
        out.inherit_attrs(attrs)
    data_file: tuple[tuple[int, int], dict[str, Any]] | None = None
    cursors: dict[str, tuple[tuple[int, int], _VideoCursor]] = {}
    video_features = [f for f, spec in features.items() if spec["dtype"] == "video"]
    data_features = [f for f, spec in features.items() if spec["dtype"] not in ("video", "image") and f not in BOOKKEEPING]
    try:
        for count, episode in enumerate(episodes):
            file_key = (episode["data/chunk_index"], episode["data/file_index"])
            if data_file is None or data_file[0] != file_key:
                path = root / info["data_path"].format(chunk_index=file_key[0], file_index=file_key[1])
                table = pq.read_table(path, memory_map=True)
                data_file = (file_key, {name: table.column(name) for name in table.column_names})
            table = data_file[1]
            rows = np.asarray(table["index"].to_numpy())
            select = (rows >= episode["dataset_from_index"]) & (rows < episode["dataset_to_index"])
            data = {key_name(name): _to_numpy(table[name].filter(select).combine_chunks(), features[name])
                    for name in data_features}
            length = int(episode["length"])
            frames: dict[str, Iterator[np.ndarray]] = {}
            for name in video_features:
                prefix = f"videos/{name}/"
                file_id = (episode[prefix + "chunk_index"], episode[prefix + "file_index"])
                if name not in cursors or cursors[name][0] != file_id:
                    if name in cursors:
                        cursors[name][1].close()
                    path = root / info["video_path"].format(video_key=name, chunk_index=file_id[0], file_index=file_id[1])
                    cursors[name] = (file_id, _VideoCursor(path, fps))
                first = round(episode[prefix + "from_timestamp"] * fps)
                frames[key_name(name)] = cursors[name][1].frames(first, length)
            meta = json.loads(episode["robolearn_meta"]) if episode.get("robolearn_meta") else {
                "task": tasks.get(int(np.asarray(table["task_index"].filter(select))[0]), "") if "task_index" in table else "",
                "source": "teleop", "success": bool(data.get("success", np.zeros(1, bool))[-1])}
            _append_streaming(out, data, frames, length, meta)
            if progress:
                progress(count + 1)
    finally:
        for _, cursor in cursors.values():
            cursor.close()
    return out


def _append_streaming(store: DemoStore, data: dict[str, np.ndarray], frames: dict[str, Iterator[np.ndarray]],
                      length: int, meta: dict[str, Any]) -> int:
    """Commit one episode, taking its video frames one step at a time (``EpisodeWriter``)."""
    lengths = {key: len(values) for key, values in data.items() if len(values) != length}
    if lengths:
        raise ValueError(f"the episodes table gives {length} frames but the data has {lengths}")
    writer = store.begin_episode()
    try:
        for t in range(length):
            writer.add({**{key: values[t] for key, values in data.items()},
                        **{key: next(stream) for key, stream in frames.items()}})
        return writer.commit(meta)
    except BaseException:
        writer.discard()
        raise


def _to_numpy(column: Any, spec: dict[str, Any]) -> np.ndarray:
    """A parquet column of scalars or (nested) lists as ``(N,)`` or ``(N, *shape)`` with the feature's dtype."""
    import pyarrow as pa

    values, nested = column, False
    while pa.types.is_list(values.type) or pa.types.is_fixed_size_list(values.type) or pa.types.is_large_list(values.type):
        values, nested = values.flatten(), True
    flat = np.asarray(values.to_numpy(zero_copy_only=False))
    dtype = np.bool_ if spec["dtype"] == "bool" else np.dtype(spec["dtype"])
    return flat.astype(dtype).reshape(len(column), *spec["shape"]) if nested else flat.astype(dtype)
