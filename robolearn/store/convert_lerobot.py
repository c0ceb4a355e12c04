"""Export to and import from the LeRobotDataset v3.0 layout (parquet via pyarrow, mp4 via PyAV)::

    <root>/meta/info.json                              codebase_version "v3.0", fps, features, path templates
    <root>/meta/stats.json                             per-feature mean/std/min/max/count
    <root>/meta/tasks.parquet                          task (pandas index) → task_index
    <root>/meta/episodes/chunk-000/file-000.parquet    one row per episode: length, tasks, data and video offsets
    <root>/data/chunk-000/file-000.parquet             one row per frame
    <root>/videos/<video_key>/chunk-000/file-000.mp4   every episode of a camera back to back

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
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.store.codecs import kind_of
from robolearn.store.store import DemoStore

CODEBASE_VERSION = "v3.0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
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


def export_lerobot(store: DemoStore, root: str | Path, fps: float | None = None, codec: str = "libx264",
                   crf: int = 10, pix_fmt: str = "yuv420p", progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Write every episode of ``store`` as a LeRobotDataset v3.0 at ``root`` (a new directory)."""
    pa = _require_pyarrow()
    import pyarrow.parquet as pq

    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} exists and is not empty; pick a new directory")
    if not store.n_episodes:
        raise ValueError(f"{store.path} has no episodes to export")
    fps = float(fps or _fps(store))
    n, metas = store.n_steps, store.episode_metas()
    starts, ends = store.episode_starts, store.episode_ends
    tasks = sorted({m["task"] for m in metas})
    task_index = {t: i for i, t in enumerate(tasks)}
    episode_index = np.repeat(np.arange(store.n_episodes), ends - starts)
    frame_index = np.arange(n) - starts[episode_index]
    columns: dict[str, Any] = {}
    features: dict[str, Any] = {}
    video_keys = []
    for key in store.keys:
        array = store.array(key)
        name = feature_name(key)
        if kind_of(key) == "rgb":
            video_keys.append(key)
            h, w = array.shape[1:3]
            features[name] = {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"],
                              "info": {"video.fps": fps, "video.height": h, "video.width": w, "video.channels": 3,
                                       "video.codec": "h264" if codec == "libx264" else codec, "video.pix_fmt": pix_fmt,
                                       "video.is_depth_map": False, "has_audio": False}}
            continue
        values = array[:n]
        columns[name] = _column(pa, values)
        shape = list(values.shape[1:]) or [1]
        features[name] = {"dtype": "bool" if values.dtype == np.bool_ else str(values.dtype), "shape": shape,
                          "names": None}
    bookkeeping = {"timestamp": (frame_index / fps).astype(np.float32), "frame_index": frame_index.astype(np.int64),
                   "episode_index": episode_index.astype(np.int64), "index": np.arange(n, dtype=np.int64),
                   "task_index": np.array([task_index[metas[e]["task"]] for e in episode_index], dtype=np.int64)}
    for name, values in bookkeeping.items():
        columns[name] = pa.array(values)
        features[name] = {"dtype": str(values.dtype), "shape": [1], "names": None}
    (root / "data" / "chunk-000").mkdir(parents=True)
    pq.write_table(pa.table(columns), root / DATA_PATH.format(chunk_index=0, file_index=0))
    for i, key in enumerate(video_keys):
        path = root / VIDEO_PATH.format(video_key=feature_name(key), chunk_index=0, file_index=0)
        _write_video(store, key, path, fps, codec, crf, pix_fmt)
        if progress:
            progress(i + 1)
    episodes: dict[str, Any] = {
        "episode_index": np.arange(store.n_episodes, dtype=np.int64),
        "tasks": [[m["task"]] for m in metas],
        "length": (ends - starts).astype(np.int64),
        "data/chunk_index": np.zeros(store.n_episodes, np.int64), "data/file_index": np.zeros(store.n_episodes, np.int64),
        "dataset_from_index": starts.astype(np.int64), "dataset_to_index": ends.astype(np.int64),
    }
    for key in video_keys:
        prefix = f"videos/{feature_name(key)}/"
        episodes[prefix + "chunk_index"] = np.zeros(store.n_episodes, np.int64)
        episodes[prefix + "file_index"] = np.zeros(store.n_episodes, np.int64)
        episodes[prefix + "from_timestamp"] = starts / fps
        episodes[prefix + "to_timestamp"] = ends / fps
    episodes["meta/episodes/chunk_index"] = np.zeros(store.n_episodes, np.int64)
    episodes["meta/episodes/file_index"] = np.zeros(store.n_episodes, np.int64)
    episodes["robolearn_meta"] = [json.dumps(m) for m in metas]
    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    pq.write_table(pa.table({k: pa.array(v) for k, v in episodes.items()}),
                   root / EPISODES_PATH.format(chunk_index=0, file_index=0))
    _write_tasks(pa, pq, tasks, root / "meta" / "tasks.parquet")
    stats = {feature_name(k): v for k, v in store.stats(save=False).items()}
    for key in video_keys:
        stats[feature_name(key)] = _image_stats(store, key)
    (root / "meta" / "stats.json").write_text(json.dumps(stats, indent=2))
    cell = store.cell_config or {}
    info = {
        "codebase_version": CODEBASE_VERSION, "robot_type": (cell.get("robot") or {}).get("model"),
        "total_episodes": store.n_episodes, "total_frames": n, "total_tasks": len(tasks), "chunks_size": 1000,
        "data_files_size_in_mb": 100, "video_files_size_in_mb": 500, "fps": fps,
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


def _write_video(store: DemoStore, key: str, path: Path, fps: float, codec: str, crf: int, pix_fmt: str) -> None:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    array = store.array(key)
    h, w = array.shape[1:3]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        stream.options = {"crf": str(crf)}
        for start in range(0, store.n_steps, 256):
            for frame in array[start: min(start + 256, store.n_steps)]:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def _read_video(path: Path, fps: float) -> dict[int, np.ndarray]:
    """Frames of one mp4 keyed by frame number (timestamp × fps, rounded)."""
    import av

    frames = {}
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames[round(float(frame.time) * fps)] = frame.to_ndarray(format="rgb24")
    return frames


def import_lerobot(root: str | Path, destination: str | Path, progress: Callable[[int], None] | None = None) -> DemoStore:
    """A new store at ``destination`` from the LeRobotDataset v3.0 at ``root``."""
    _require_pyarrow()
    import pyarrow.parquet as pq

    root = Path(root)
    info_path = root / "meta" / "info.json"
    if not info_path.exists():
        raise FileNotFoundError(f"{root} is not a LeRobotDataset (no meta/info.json)")
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
    data_files: dict[tuple[int, int], Any] = {}
    videos: dict[tuple[str, int, int], dict[int, np.ndarray]] = {}
    video_features = [f for f, spec in features.items() if spec["dtype"] == "video"]
    data_features = [f for f, spec in features.items() if spec["dtype"] not in ("video", "image") and f not in BOOKKEEPING]
    for count, episode in enumerate(episodes):
        file_key = (episode["data/chunk_index"], episode["data/file_index"])
        if file_key not in data_files:
            table = pq.read_table(root / info["data_path"].format(chunk_index=file_key[0], file_index=file_key[1]))
            data_files = {file_key: {name: table.column(name) for name in table.column_names}}
        table = data_files[file_key]
        rows = np.asarray(table["index"].to_numpy())
        select = (rows >= episode["dataset_from_index"]) & (rows < episode["dataset_to_index"])
        data: dict[str, np.ndarray] = {}
        for name in data_features:
            data[key_name(name)] = _to_numpy(table[name].filter(select).combine_chunks(), features[name])
        for name in video_features:
            prefix = f"videos/{name}/"
            file_id = (name, episode[prefix + "chunk_index"], episode[prefix + "file_index"])
            if file_id not in videos:
                path = root / info["video_path"].format(video_key=name, chunk_index=file_id[1], file_index=file_id[2])
                videos = {file_id: _read_video(path, fps)}
            first = round(episode[prefix + "from_timestamp"] * fps)
            data[key_name(name)] = np.stack([videos[file_id][first + t] for t in range(episode["length"])])
        meta = json.loads(episode["robolearn_meta"]) if episode.get("robolearn_meta") else {
            "task": tasks.get(int(np.asarray(table["task_index"].filter(select))[0]), "") if "task_index" in table else "",
            "source": "teleop", "success": bool(data.get("success", np.zeros(1, bool))[-1])}
        out.append_episode(data, meta)
        if progress:
            progress(count + 1)
    return out


def _to_numpy(column: Any, spec: dict[str, Any]) -> np.ndarray:
    """A parquet column of scalars or (nested) lists as ``(N,)`` or ``(N, *shape)`` with the feature's dtype."""
    import pyarrow as pa

    values, nested = column, False
    while pa.types.is_list(values.type) or pa.types.is_fixed_size_list(values.type) or pa.types.is_large_list(values.type):
        values, nested = values.flatten(), True
    flat = np.asarray(values.to_numpy(zero_copy_only=False))
    dtype = np.bool_ if spec["dtype"] == "bool" else np.dtype(spec["dtype"])
    return flat.astype(dtype).reshape(len(column), *spec["shape"]) if nested else flat.astype(dtype)
