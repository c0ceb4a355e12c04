"""Export to and import from the LeRobotDataset v3.0 layout, as LeRobot 0.6's own writer
(``LeRobotDataset.create`` + ``add_frame`` + ``save_episode``) lays it out (parquet via pyarrow,
mp4 via PyAV)::

    <root>/meta/info.json                              codebase_version "v3.0", integer fps, features, path templates
    <root>/meta/stats.json                             per feature: min max mean std count q01 q10 q50 q90 q99
    <root>/meta/tasks.parquet                          task (pandas index) → task_index
    <root>/meta/episodes/chunk-000/file-000.parquet    one row per episode: length, tasks, data and video files
                                                       (chunk and file index) and the episode's place in them,
                                                       its ``stats/<feature>/<stat>``, and ``robolearn_meta``
    <root>/data/chunk-CCC/file-FFF.parquet             one row per frame, one row group per episode
    <root>/videos/<video_key>/chunk-CCC/file-FFF.mp4   a camera's episodes back to back, many per file

Every number LeRobot derives (statistics, depth codes) is computed with its own arithmetic, ported
in ``robolearn.store.lerobot_format``; so LeRobot's tools (``LeRobotDataset.resume`` +
``save_episode``, ``lerobot-edit-dataset`` merge and delete) work on an export.

A data file takes whole episodes while its size on disk plus the episode's estimated size stays
under ``data_files_size_in_mb`` (LeRobot's rule; default 100), a video file while it stays under
``video_files_size_in_mb`` (200); then the next file index starts; a chunk holds ``chunks_size``
(1000) files. Export and import stream episode by episode, so neither holds more than one
episode's data (and one frame per camera on import) in memory.

Key names: ``state`` ↔ ``observation.state``, ``object_state`` ↔ ``observation.environment_state``,
``rgb_<cam>`` ↔ ``observation.images.<cam>`` (video), ``depth_<cam>`` ↔ ``observation.depth.<cam>``
(a LeRobot depth video: ``is_depth_map``, HEVC ``gray12le`` lossless, 12-bit log codes between
0.01 and 10 m), ``reward`` ↔ ``next.reward``, ``terminated`` ↔ ``next.done``, ``success`` ↔
``next.success``; other keys keep their names. The store's attributes (cell, cameras, JPEG
quality, ...) travel in the ``info`` of the first feature (``features[...]["info"]["robolearn"]``,
which LeRobot copies through append, merge and delete; merge needs them equal, as it needs equal
features), each episode's metadata in the episodes table's ``robolearn_meta`` column (kept by
append and merge; LeRobot's delete drops it, and an episode without it imports with defaults).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.errors import AlreadyExistsError, DataError, NotFoundError, UsageError
from robolearn.store import lerobot_format as fmt
from robolearn.store.codecs import kind_of
from robolearn.store.store import DemoStore

CODEBASE_VERSION = "v3.0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
CHUNKS_SIZE = 1000
DATA_FILE_MB = 100
VIDEO_FILE_MB = 200
EPISODE_ROWS_PER_GROUP = 10
SVTAV1_PRESET = 12
FRAME_BLOCK = 256
MIB = 1024.0**2
RENAMES = {"state": "observation.state", "object_state": "observation.environment_state", "reward": "next.reward",
           "terminated": "next.done", "success": "next.success"}
BOOKKEEPING = ("timestamp", "frame_index", "episode_index", "index", "task_index")
BOOKKEEPING_DTYPES = {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64", "index": "int64",
                      "task_index": "int64"}
IMAGE_NAMES = ["height", "width", "channels"]
EE_NAMES = ["ee_x_m", "ee_y_m", "ee_z_m", "ee_qw", "ee_qx", "ee_qy", "ee_qz", "gripper_width_m"]
ACTION_NAMES = ["ee_dx", "ee_dy", "ee_dz", "ee_drx", "ee_dry", "ee_drz", "gripper"]
OBJECT_NAMES = ["object_x_m", "object_y_m", "object_z_m", "object_qw", "object_qx", "object_qy", "object_qz",
                "goal_x_m", "goal_y_m", "goal_z_m"]
STORE_ATTRS_KEY = "robolearn"
EPISODE_META_COLUMN = "robolearn_meta"


def feature_name(key: str) -> str:
    if key.startswith("rgb_"):
        return f"observation.images.{key[4:]}"
    if key.startswith("depth_"):
        return f"observation.depth.{key[6:]}"
    return RENAMES.get(key, key)


def key_name(feature: str, depth: bool = False) -> str:
    """The store key of a LeRobot feature; ``depth``: a video feature with ``is_depth_map``."""
    for prefix in ("observation.images.", "observation.depth."):
        if feature.startswith(prefix):
            return ("depth_" if depth or prefix == "observation.depth." else "rgb_") + \
                feature[len(prefix):].replace(".", "_")
    inverse = {v: k for k, v in RENAMES.items()}
    return inverse.get(feature, feature.replace(".", "_"))


def _require_pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError as err:
        raise ImportError("LeRobot export/import needs pyarrow: pip install pyarrow") from err
    return pyarrow


def integer_fps(store: DemoStore, fps: float | None = None) -> int:
    """The dataset's fps: ``fps`` or the cell's control rate, which must be a whole number
    (LeRobot's ``DatasetInfo.fps`` is an int, and PyAV's frame rate a rational of it)."""
    rate = float(fps or store.control_hz)
    if rate <= 0 or rate != round(rate):
        raise DataError(f"LeRobot datasets have a whole number of frames per second; this store's control rate is "
                         f"{rate} Hz: export with fps= (--set is not enough), or record at a whole-number control_hz")
    return int(round(rate))


def state_names(cell: dict[str, Any] | None, dim: int) -> list[str]:
    """Names of ``state`` ``(n_joints + 8,)``: the arm's joints (a built-in robot model's names, an
    MJCF robot's ``joint_names``, else ``joint1..N``, as the arm node names them), then the
    end-effector position, quaternion and gripper opening (``ArmState.proprio``)."""
    from robolearn.kinematics import robot_models

    n_joints = dim - len(EE_NAMES)
    if n_joints <= 0:
        return [f"state_{i}" for i in range(dim)]
    robot = (cell or {}).get("robot") or {}
    builtin = robot_models().get(robot.get("model"))
    joints = [j.name for j in builtin.joints] if builtin is not None else list(robot.get("joint_names") or [])
    return [*(joints if len(joints) == n_joints else [f"joint{i + 1}" for i in range(n_joints)]), *EE_NAMES]


def dimension_names(key: str, shape: tuple[int, ...], cell: dict[str, Any] | None) -> list[str] | None:
    """LeRobot ``names`` of a vector feature (None for a scalar)."""
    if not shape:
        return None
    known = {"state": lambda: state_names(cell, shape[0]), "action": lambda: ACTION_NAMES,
             "object_state": lambda: OBJECT_NAMES}
    names = known[key]() if key in known else None
    return names if names is not None and len(names) == shape[0] else [f"{key}_{i}" for i in range(shape[0])]


def _column(pa: Any, values: np.ndarray, dtype: str) -> Any:
    """A pyarrow column of per-frame values ``(N,)`` or ``(N, D)`` of the feature's ``dtype``, typed as
    ``datasets`` types LeRobot's features (``Value``; a fixed-length ``List`` of ``element``)."""
    flat = pa.array(np.ascontiguousarray(values, dtype=np.bool_ if dtype == "bool" else dtype).reshape(-1))
    if values.ndim == 1:
        return flat
    return pa.FixedSizeListArray.from_arrays(flat, type=pa.list_(pa.field("element", flat.type), int(values.shape[1])))


class _ParquetFiles:
    """Frames appended episode by episode (one row group each) to ``data/chunk-CCC/file-FFF.parquet``;
    the next file starts when the current one's size on disk plus the episode's estimated size
    (the file's size per frame × its frames) reaches ``file_mb`` MiB, as LeRobot's
    ``DatasetWriter._save_episode_data`` decides; a new chunk every ``chunks_size`` files."""

    def __init__(self, root: Path, chunks_size: int, file_mb: float, metadata: dict[bytes, bytes]):
        self.root, self.chunks_size, self.file_mb, self.metadata = root, chunks_size, file_mb, metadata
        self.chunk, self.file, self.frames = 0, -1, 0
        self.path: Path | None = None
        self.writer: Any = None

    def write(self, table: Any) -> tuple[int, int]:
        """Write one episode's frames; returns ``(chunk_index, file_index)`` of its file."""
        import pyarrow.parquet as pq

        if self.writer is not None:
            size_mb = self.path.stat().st_size / MIB
            if size_mb + size_mb / max(self.frames, 1) * table.num_rows >= self.file_mb:
                self.close()
        if self.writer is None:
            self.chunk, self.file = _next_file(self.chunk, self.file, self.chunks_size)
            self.path = self.root / DATA_PATH.format(chunk_index=self.chunk, file_index=self.file)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.path, table.schema.with_metadata(self.metadata), compression="snappy",
                                           use_dictionary=True)
            self.frames = 0
        self.writer.write_table(table.replace_schema_metadata(self.metadata))
        self.frames += table.num_rows
        return self.chunk, self.file

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class _VideoFiles:
    """One camera's episodes in ``videos/<key>/chunk-CCC/file-FFF.mp4``, as LeRobot's writer makes
    them: each episode is encoded on its own with LeRobot's encoder settings (GOP ``g`` frames,
    ``crf``), so it starts on a key frame, then its packets are appended to the current file (what
    ``concatenate_video_files`` does, without rewriting the file); the next file starts when the
    current one plus the episode would reach ``file_mb`` MiB (``_save_episode_video``'s rule).
    Frames stream from the store in blocks. depth: the frames are metres, written as LeRobot's
    12-bit depth codes (``gray12le``)."""

    def __init__(self, root: Path, video_key: str, fps: int, codec: str, options: dict[str, str], pix_fmt: str,
                 depth: bool, chunks_size: int, file_mb: float):
        self.root, self.video_key, self.fps, self.depth = root, video_key, fps, depth
        self.codec, self.options, self.pix_fmt = codec, options, pix_fmt
        self.chunks_size, self.file_mb = chunks_size, file_mb
        self.chunk, self.file, self.frames_in_file, self.bytes = 0, -1, 0, 0
        self.container: Any = None
        self.stream: Any = None
        self.first_path: Path | None = None

    def write(self, array: Any, span: slice) -> tuple[int, int, float, float]:
        """Encode frames ``span`` of ``array`` ``(N, H, W, 3) uint8`` or ``(N, H, W) float32`` metres;
        returns ``(chunk_index, file_index, from_timestamp, to_timestamp)`` of the episode in its file."""
        import av

        episode = self._encode(av, array, span)
        size = episode.getbuffer().nbytes
        if self.container is not None and (self.bytes + size) / MIB >= self.file_mb:
            self.close()
        if self.container is None:
            self.chunk, self.file = _next_file(self.chunk, self.file, self.chunks_size)
            path = self.root / VIDEO_PATH.format(video_key=self.video_key, chunk_index=self.chunk, file_index=self.file)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.first_path = self.first_path or path
            self.container = av.open(str(path), mode="w", options={"movflags": "faststart"})
            self.stream, self.frames_in_file, self.bytes = None, 0, 0
        first = self.frames_in_file
        with av.open(episode, mode="r") as source:
            stream = source.streams.video[0]
            if self.stream is None:
                self.stream = self.container.add_stream_from_template(template=stream, opaque=True)
                self.stream.time_base = stream.time_base
            offset = round(Fraction(first, self.fps) / stream.time_base)
            for packet in source.demux(stream):
                if packet.dts is None:
                    continue
                packet.pts, packet.dts = packet.pts + offset, packet.dts + offset
                packet.stream = self.stream
                self.container.mux(packet)
        self.frames_in_file += span.stop - span.start
        self.bytes += size
        return self.chunk, self.file, first / self.fps, self.frames_in_file / self.fps

    def _encode(self, av: Any, array: Any, span: slice) -> io.BytesIO:
        """One episode as an mp4 in memory (``encode_video_frames``)."""
        buffer = io.BytesIO()
        with av.open(buffer, mode="w", format="mp4") as output:
            stream = output.add_stream(self.codec, self.fps, options=self.options)
            stream.pix_fmt = self.pix_fmt
            stream.width, stream.height = array.shape[2], array.shape[1]
            for start in range(span.start, span.stop, FRAME_BLOCK):
                for frame in array[start: min(start + FRAME_BLOCK, span.stop)]:
                    output.mux(stream.encode(self._frame(av, frame)))
            output.mux(stream.encode())
        buffer.seek(0)
        return buffer

    def _frame(self, av: Any, frame: np.ndarray) -> Any:
        if not self.depth:
            return av.VideoFrame.from_ndarray(frame, format="rgb24")
        codes = fmt.quantize_depth(frame)
        video_frame = av.VideoFrame.from_ndarray(codes, format=self.pix_fmt)
        plane = video_frame.planes[0]
        np.frombuffer(plane, dtype=np.uint16).reshape(codes.shape[0], -1)[:, :codes.shape[1]] = codes
        return video_frame

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None


def _next_file(chunk: int, file: int, chunks_size: int) -> tuple[int, int]:
    """The ``(chunk_index, file_index)`` after ``(chunk, file)``; ``file == -1``: the first file."""
    if file < 0:
        return 0, 0
    return (chunk + 1, 0) if file == chunks_size - 1 else (chunk, file + 1)


def _video_info(path: Path, encoder: dict[str, Any], depth: bool) -> dict[str, Any]:
    """A video feature's ``info`` as LeRobot's ``update_video_info`` records it: probed from the
    first file (``get_video_info``), then the encoder settings, then ``is_depth_map``."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        info = {"video.height": stream.height, "video.width": stream.width, "video.codec": stream.codec.canonical_name,
                "video.pix_fmt": stream.pix_fmt, "video.fps": int(stream.base_rate),
                "video.channels": len(av.VideoFormat(stream.pix_fmt).components), "has_audio": False}
    info.update({k: v for k, v in encoder.items() if k not in info})
    if depth:
        return {"is_depth_map": True, "depth_unit": "m", **info}
    return {**info, "is_depth_map": False}


def export_lerobot(store: DemoStore, root: str | Path, fps: int | None = None, codec: str = "libsvtav1", crf: int = 30,
                   gop: int = 2, depth: bool = True, progress: Callable[[int], None] | None = None,
                   chunks_size: int = CHUNKS_SIZE, data_file_mb: float = DATA_FILE_MB,
                   video_file_mb: float = VIDEO_FILE_MB) -> dict[str, Any]:
    """Write every episode of ``store`` as a LeRobotDataset v3.0 at ``root`` (a new directory),
    episode by episode: memory holds one episode's low-dimensional columns and a block of frames,
    whatever the store's size.

    fps: the dataset's (default: the cell's control rate; a whole number). codec / crf / gop: the
    RGB encoder, one LeRobot's ``RGBEncoderConfig`` accepts (``libsvtav1``, ``h264``, ``hevc``); the
    default is LeRobot's own (SVT-AV1, CRF 30, GOP 2, preset 12), so episodes LeRobot appends land in
    files its merge can concatenate; frames come back within about 1.5/255 of the store's (mean
    absolute error, 43 dB on the test frames; the store's JPEG is the larger loss). depth: write ``depth_*`` as
    LeRobot depth videos (False: leave them out). Data and video files roll over at
    ``data_file_mb`` / ``video_file_mb`` MiB, ``chunks_size`` files per chunk. progress: called with
    the number of episodes written."""
    pa = _require_pyarrow()
    import pyarrow.parquet as pq

    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise AlreadyExistsError(f"{root} exists and is not empty; pick a new directory")
    if not store.n_episodes:
        raise DataError(f"{store.path} has no episodes to export")
    fps = integer_fps(store, fps)
    if min(chunks_size, data_file_mb, video_file_mb) <= 0:
        raise UsageError(f"chunks_size ({chunks_size}), data_file_mb ({data_file_mb}) and video_file_mb "
                         f"({video_file_mb}) must be positive, as LeRobot's DatasetInfo requires")
    metas, starts, ends = store.episode_metas(), store.episode_starts, store.episode_ends
    tasks = list(dict.fromkeys(m["task"] for m in metas))
    task_index = {t: i for i, t in enumerate(tasks)}
    video_keys = [k for k in store.keys if kind_of(k) == "rgb" or (depth and kind_of(k) == "depth")]
    data_keys = [k for k in store.keys if kind_of(k) == "lowdim"]
    flat = [k for k in data_keys if store.array(k).ndim > 2]
    if flat:
        raise DataError(f"{flat} hold more than a vector per step; LeRobot's parquet features here are scalars or "
                         "vectors: export a store without them")
    rgb_encoder = {"video.g": gop, "video.crf": crf, "video.preset": SVTAV1_PRESET if codec == "libsvtav1" else None,
                   "video.fast_decode": 0,
                   "video.video_backend": "pyav", "video.extra_options": {}}
    encoders = {k: fmt.depth_encoder_info() if kind_of(k) == "depth" else rgb_encoder for k in video_keys}
    features = _features(store, data_keys, video_keys)
    hf_meta = {b"huggingface": json.dumps({"info": {"features": {
        name: fmt.hf_feature(spec) for name, spec in features.items() if spec["dtype"] != "video"}}}).encode()}
    data_files = _ParquetFiles(root, chunks_size, data_file_mb, hf_meta)
    videos = {key: _VideoFiles(root, feature_name(key), fps, "hevc" if kind_of(key) == "depth" else codec,
                               _codec_options(encoders[key], "hevc" if kind_of(key) == "depth" else codec),
                               "gray12le" if kind_of(key) == "depth" else "yuv420p", kind_of(key) == "depth",
                               chunks_size, video_file_mb)
              for key in video_keys}
    rows: list[dict[str, Any]] = []
    stats: dict[str, dict[str, np.ndarray]] | None = None
    try:
        for episode in range(store.n_episodes):
            span = slice(int(starts[episode]), int(ends[episode]))
            values = _episode_values(store, data_keys, span, episode, fps, task_index[metas[episode]["task"]])
            columns = {name: _column(pa, array, features[name]["dtype"]) for name, array in values.items()}
            chunk, file = data_files.write(pa.table(columns))
            row: dict[str, Any] = {"episode_index": episode, "tasks": [metas[episode]["task"]],
                                   "length": span.stop - span.start, "data/chunk_index": chunk, "data/file_index": file,
                                   "dataset_from_index": span.start, "dataset_to_index": span.stop}
            for key in video_keys:
                prefix = f"videos/{feature_name(key)}/"
                chunk, file, from_s, to_s = videos[key].write(store.array(key), span)
                row.update({prefix + "chunk_index": chunk, prefix + "file_index": file,
                            prefix + "from_timestamp": from_s, prefix + "to_timestamp": to_s})
            episode_stats = _episode_stats(store, features, values, video_keys, span)
            row.update({f"stats/{name}/{stat}": value.tolist() for name, s in episode_stats.items()
                        for stat, value in s.items()})
            row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0,
                        EPISODE_META_COLUMN: json.dumps(metas[episode])})
            rows.append(row)
            stats = fmt.aggregate_stats([stats, episode_stats]) if stats is not None else episode_stats
            if progress:
                progress(episode + 1)
    finally:
        data_files.close()
        for video in videos.values():
            video.close()
    for key in video_keys:
        features[feature_name(key)]["info"] = _video_info(videos[key].first_path, encoders[key], kind_of(key) == "depth")
    _write_episodes(pa, pq, rows, root / EPISODES_PATH.format(chunk_index=0, file_index=0))
    _write_tasks(pa, pq, tasks, root / "meta" / "tasks.parquet")
    _write_json(root / "meta" / "stats.json", {name: {k: v.tolist() for k, v in s.items()} for name, s in stats.items()})
    cell = store.cell_config or {}
    info = {"codebase_version": CODEBASE_VERSION, "fps": fps, "features": features, "total_episodes": store.n_episodes,
            "total_frames": store.n_steps, "total_tasks": len(tasks), "chunks_size": chunks_size,
            "data_files_size_in_mb": _mb(data_file_mb), "video_files_size_in_mb": _mb(video_file_mb),
            "data_path": DATA_PATH, "video_path": VIDEO_PATH if video_keys else None,
            "robot_type": (cell.get("robot") or {}).get("model"), "splits": {"train": f"0:{store.n_episodes}"}}
    _write_json(root / "meta" / "info.json", info)
    return {"path": str(root), "episodes": store.n_episodes, "frames": store.n_steps, "videos": len(video_keys),
            "fps": fps, "depth": "video" if depth else "left out"}


def _mb(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _codec_options(encoder: dict[str, Any], codec: str) -> dict[str, str]:
    """``VideoEncoderConfig.get_codec_options(as_strings=True)`` of software H.264/HEVC/SVT-AV1."""
    options = {"g": str(encoder["video.g"]), "crf": str(encoder["video.crf"])}
    if encoder["video.preset"] is not None:
        options["preset"] = str(encoder["video.preset"])
    if codec == "libsvtav1":
        options["svtav1-params"] = f"fast-decode={max(0, min(2, encoder['video.fast_decode']))}"
    options.update({k: str(v) for k, v in encoder["video.extra_options"].items() if k not in options})
    return options


def _features(store: DemoStore, data_keys: list[str], video_keys: list[str]) -> dict[str, Any]:
    """``info.json`` features in the store's key order, then LeRobot's five bookkeeping features; the
    first carries the store's attributes (all but its creation time)."""
    cell = store.cell_config
    features: dict[str, Any] = {}
    for key in store.keys:
        if key in video_keys:
            h, w = store.array(key).shape[1:3]
            features[feature_name(key)] = {"dtype": "video", "shape": [h, w, 3 if kind_of(key) == "rgb" else 1],
                                           "names": IMAGE_NAMES}
        elif key in data_keys:
            array = store.array(key)
            dtype = "bool" if array.dtype == np.bool_ else str(array.dtype)
            features[feature_name(key)] = {"dtype": dtype, "shape": list(array.shape[1:]) or [1],
                                           "names": dimension_names(key, tuple(array.shape[1:]), cell)}
    first = next(iter(features))
    features[first].setdefault("info", {})[STORE_ATTRS_KEY] = {k: v for k, v in store.attrs.items() if k != "created_utc"}
    features.update({name: {"dtype": dtype, "shape": [1], "names": None} for name, dtype in BOOKKEEPING_DTYPES.items()})
    return features


def _episode_values(store: DemoStore, data_keys: list[str], span: slice, episode: int, fps: int,
                    task: int) -> dict[str, np.ndarray]:
    """One episode's parquet columns as LeRobot's ``save_episode`` stacks them (its statistics are
    computed on these: ``timestamp`` as float64 ``frame_index / fps``, written as float32)."""
    length = span.stop - span.start
    frame_index = np.arange(length, dtype=np.int64)
    values = {feature_name(key): np.asarray(store.array(key)[span]) for key in data_keys}
    values.update({"timestamp": frame_index / fps, "frame_index": frame_index,
                   "episode_index": np.full(length, episode, np.int64),
                   "index": np.arange(span.start, span.stop, dtype=np.int64), "task_index": np.full(length, task, np.int64)})
    return values


def _episode_stats(store: DemoStore, features: dict[str, Any], values: dict[str, np.ndarray], video_keys: list[str],
                   span: slice) -> dict[str, dict[str, np.ndarray]]:
    """``compute_episode_stats``, in the order of the features: parquet columns on every frame,
    videos on ``sample_indices`` of the episode's frames."""
    out = {}
    video_by_feature = {feature_name(k): k for k in video_keys}
    for name in features:
        if name in video_by_feature:
            key = video_by_feature[name]
            array = store.array(key)
            depth = kind_of(key) == "depth"
            frames = [fmt.downsample(array[span.start + i][None] if depth else np.transpose(array[span.start + i], (2, 0, 1)))
                      for i in fmt.sample_indices(span.stop - span.start)]
            out[name] = fmt.frame_stats(np.stack(frames), depth=depth)
        else:
            out[name] = fmt.vector_stats(values[name])
    return out


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4, ensure_ascii=False))


def _write_episodes(pa: Any, pq: Any, rows: list[dict[str, Any]], path: Path) -> None:
    """The episodes table as LeRobot's metadata buffer flushes it: row groups of 10 episodes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tables = [pa.Table.from_pylist(rows[i: i + EPISODE_ROWS_PER_GROUP]) for i in range(0, len(rows), EPISODE_ROWS_PER_GROUP)]
    schema = pa.unify_schemas([t.schema for t in tables])
    with pq.ParquetWriter(path, schema, compression="snappy", use_dictionary=True) as writer:
        for table in tables:
            writer.write_table(table.cast(schema))


def _write_tasks(pa: Any, pq: Any, tasks: list[str], path: Path) -> None:
    """tasks.parquet as pandas writes ``DataFrame({"task_index": ...}, index=Index(tasks, name="task"))``."""
    table = pa.table({"task_index": pa.array(np.arange(len(tasks), dtype=np.int64)), "task": pa.array(tasks, pa.string())})
    pandas_meta = {"index_columns": ["task"],
                   "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                                       "metadata": {"encoding": "UTF-8"}}],
                   "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
                                "numpy_type": "int64", "metadata": None},
                               {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object",
                                "metadata": None}],
                   "attributes": {}, "pandas_version": "2.3.3"}
    pq.write_table(table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()}), path)


class _VideoCursor:
    """Frames of one mp4 decoded in order, on demand: an episode takes its frames and decoding stops
    there until the next episode asks for more. Frame numbers are the frames' timestamps × fps,
    rounded. Going back to an earlier frame decodes the file again from the start."""

    def __init__(self, path: Path, fps: float, depth: bool):
        self.path, self.fps, self.depth = path, fps, depth
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
        """Frames ``first … first + count − 1`` as ``(H, W, 3) uint8`` (depth: ``(H, W) float32``
        metres), one at a time."""
        if self.container is None or first <= self.last:
            self._open()
        for wanted in range(first, first + count):
            while True:
                item = next(self.decoded, None)
                if item is None or item[0] > wanted:
                    raise DataError(f"{self.path} has no frame {wanted} (at {wanted / self.fps:.3f} s) that the "
                                     "episodes table points to; the dataset is incomplete")
                if item[0] == wanted:
                    break
            self.last = wanted
            if self.depth:
                yield fmt.dequantize_depth(item[1].to_ndarray(format="gray12le"))
            else:
                yield item[1].to_ndarray(format="rgb24")

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None


def import_lerobot(root: str | Path, destination: str | Path, progress: Callable[[int], None] | None = None) -> DemoStore:
    """A new store at ``destination`` from the LeRobotDataset v3.0 at ``root``, episode by episode:
    each episode's video frames are decoded as they are written into the store (one frame per camera
    in memory), and one data file is read at a time. Depth videos (``is_depth_map``) become
    ``depth_*`` in metres. An episode without robolearn's metadata (recorded by LeRobot, or kept
    through its delete) gets its task from the episodes table, ``source: teleop``, and success from
    its last ``next.success``; without a ``next.success`` feature, ``success: False`` and
    ``success_marked: False`` (``robolearn train --algo bc --set successful_only=false`` takes such
    episodes). progress: called with the number of episodes imported."""
    _require_pyarrow()
    import pyarrow.parquet as pq

    root = Path(root)
    info_path = root / "meta" / "info.json"
    if not info_path.exists():
        raise NotFoundError(f"{root} is not a LeRobotDataset (no meta/info.json)")
    info = json.loads(info_path.read_text())
    if not str(info.get("codebase_version", "")).startswith("v3"):
        raise DataError(f"{root} is LeRobotDataset {info.get('codebase_version')}; only v3.x imports (convert it with "
                         "lerobot's convert_dataset_v21_to_v30 first)")
    fps = float(info["fps"])
    features = info["features"]
    images = [f for f, spec in features.items() if spec["dtype"] == "image"]
    if images:
        raise DataError(f"{root}: image features {images} (PNG in parquet) are not supported; re-encode them as video")
    episodes = pq.read_table(sorted((root / "meta" / "episodes").rglob("*.parquet"))).to_pylist()
    episodes.sort(key=lambda e: e["episode_index"])
    tasks_table = pq.read_table(root / "meta" / "tasks.parquet").to_pylist()
    tasks = {row["task_index"]: row.get("task", row.get("__index_level_0__", "")) for row in tasks_table}
    attrs = store_attrs(info)
    out = DemoStore.create(destination, cell_config=attrs.get("cell_config"), cameras=attrs.get("cameras"),
                           **({"jpeg_quality": attrs["jpeg_quality"]} if "jpeg_quality" in attrs else {}))
    if attrs:
        out.inherit_attrs(attrs)
    data_file: tuple[tuple[int, int], dict[str, Any]] | None = None
    cursors: dict[str, tuple[tuple[int, int], _VideoCursor]] = {}
    video_features = [f for f, spec in features.items() if spec["dtype"] == "video"]
    depth_features = {f for f in video_features if _is_depth(features[f])}
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
                    cursors[name] = (file_id, _VideoCursor(path, fps, name in depth_features))
                first = round(episode[prefix + "from_timestamp"] * fps)
                frames[key_name(name, depth=name in depth_features)] = cursors[name][1].frames(first, length)
            meta = json.loads(episode[EPISODE_META_COLUMN]) if episode.get(EPISODE_META_COLUMN) else \
                _foreign_meta(episode, data, tasks, table, select)
            _append_streaming(out, data, frames, length, meta)
            if progress:
                progress(count + 1)
    finally:
        for _, cursor in cursors.values():
            cursor.close()
    return out


def store_attrs(info: dict[str, Any]) -> dict[str, Any]:
    """robolearn's store attributes in a dataset's ``info.json``: in a feature's ``info`` (where
    LeRobot's tools keep them), or at the top level (exports before LeRobot 0.6 compatibility)."""
    for spec in info.get("features", {}).values():
        attrs = (spec.get("info") or {}).get(STORE_ATTRS_KEY)
        if attrs:
            return attrs
    return info.get(STORE_ATTRS_KEY) or {}


def _is_depth(spec: dict[str, Any]) -> bool:
    """LeRobot's ``depth_keys`` test: ``is_depth_map`` in the feature's info (or its legacy names)."""
    info, video_info = spec.get("info") or {}, spec.get("video_info") or {}
    return bool(info.get("is_depth_map") or info.get("video.is_depth_map") or video_info.get("video.is_depth_map"))


def _foreign_meta(episode: dict[str, Any], data: dict[str, np.ndarray], tasks: dict[int, str], table: dict[str, Any],
                  select: np.ndarray) -> dict[str, Any]:
    """Metadata of an episode robolearn did not write: its task, ``source: teleop``, and its success
    from the last ``next.success`` (``success_marked: False`` when there is none)."""
    if episode.get("tasks"):
        task = episode["tasks"][0]
    else:
        task = tasks.get(int(np.asarray(table["task_index"].filter(select))[0]), "") if "task_index" in table else ""
    if "success" in data and len(data["success"]):
        return {"task": task, "source": "teleop", "success": bool(data["success"][-1])}
    return {"task": task, "source": "teleop", "success": False, "success_marked": False}


def _append_streaming(store: DemoStore, data: dict[str, np.ndarray], frames: dict[str, Iterator[np.ndarray]],
                      length: int, meta: dict[str, Any]) -> int:
    """Commit one episode, taking its video frames one step at a time (``EpisodeWriter``)."""
    lengths = {key: len(values) for key, values in data.items() if len(values) != length}
    if lengths:
        raise DataError(f"the episodes table gives {length} frames but the data has {lengths}")
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
