"""Round trips store → LeRobotDataset v3 → store and store → rosbag2 MCAP → store keep every array
(RGB within video-codec tolerance through LeRobot, bit-exact through MCAP) and all metadata."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from robolearn.ros.bag_store import export_mcap, import_mcap
from robolearn.store import DemoStore
from robolearn.store.convert_lerobot import export_lerobot, import_lerobot
from robolearn.store.store import copy_episodes

H, W = 32, 48
T0_NS = 1_780_000_000_000_000_000
"""The recording's clock (ns since the Unix epoch): episode e starts 2 s after episode e − 1 did."""
CELL = {"name": "test_cell", "control_hz": 10.0, "robot": {"model": "panda"},
        "cameras": [{"type": "sim", "name": "front", "width_px": W, "height_px": H, "fov_y_deg": 45.0, "depth": True},
                    {"type": "sim", "name": "wrist", "width_px": W, "height_px": H, "fov_y_deg": 70.0}]}


def smooth_frames(n: int, seed: int) -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    frames = np.empty((n, H, W, 3), np.uint8)
    for i in range(n):
        frames[i] = np.clip(np.stack([x / W * 200 + 4 * i, y / H * 180 + 40, (x + y) / (W + H) * 120 + 20 * seed], -1), 0, 255)
    return frames


def make_store(path) -> DemoStore:
    """Two episodes of every kind of key a store holds (RGB, depth, state, flags, stamps, an extra int key)."""
    store = DemoStore.create(path, cell_config=CELL, jpeg_quality=92)
    rng = np.random.default_rng(0)
    for e, n in enumerate((6, 4)):
        store.append_episode({
            "rgb_front": smooth_frames(n, e), "rgb_wrist": smooth_frames(n, e + 2),
            "depth_front": rng.uniform(0.1, 2.5, (n, H, W)).astype(np.float32),
            "state": rng.normal(size=(n, 15)).astype(np.float32), "object_state": rng.normal(size=(n, 10)).astype(np.float32),
            "action": rng.uniform(-1, 1, (n, 7)).astype(np.float32), "reward": rng.uniform(size=n).astype(np.float32),
            "success": np.arange(n) == n - 1, "terminated": np.arange(n) == n - 1, "intervention": rng.uniform(size=n) < 0.3,
            "stamp_ns": (T0_NS + (20 * e + np.arange(n)) * 100_000_000).astype(np.int64),
            "contact_count": rng.integers(0, 5, (n, 2)).astype(np.int32),
        }, {"task": ["pick the cube", "push the cube"][e], "source": ["teleop", "online"][e], "success": bool(e),
            "operator": "ana", "duration_s": 0.6 + e, "frames": {"rgb_front": {"missing": e}}})
    store.root.attrs["robolearn"] = {**store.attrs, "resized_from": "/data/original.zarr"}
    return store


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("src") / "s.zarr")


def assert_same_store(copy: DemoStore, source: DemoStore, rgb_exact: bool, depth_atol_m: float = 0.0) -> None:
    assert copy.keys == source.keys
    np.testing.assert_array_equal(copy.episode_ends, source.episode_ends)
    assert copy.episode_metas() == source.episode_metas()
    assert {k: v for k, v in copy.attrs.items() if k != "created_utc"} == \
        {k: v for k, v in source.attrs.items() if k != "created_utc"}
    for key in source.keys:
        a, b = copy.array(key)[:], source.array(key)[:]
        assert a.dtype == b.dtype and a.shape == b.shape, key
        if key.startswith("rgb_") and not rgb_exact:
            error = np.abs(a.astype(np.int16) - b)
            psnr_db = 10 * np.log10(255.0**2 / np.mean(error.astype(np.float64) ** 2))
            assert error.mean() < 2.5 and psnr_db > 35.0, f"{key}: mean error {error.mean():.2f}, {psnr_db:.1f} dB"
        elif key.startswith("depth_"):
            np.testing.assert_allclose(a, b, rtol=0, atol=depth_atol_m, err_msg=key)
        else:
            np.testing.assert_array_equal(a, b, err_msg=key)


def test_lerobot_v3_round_trip(source, tmp_path):
    root = tmp_path / "lerobot"
    result = export_lerobot(source, root)
    assert result == {"path": str(root), "episodes": 2, "frames": 10, "videos": 3, "fps": 10, "depth": "video"}
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 10 and info["total_episodes"] == 2
    assert info["robot_type"] == "panda" and info["total_tasks"] == 2
    features = info["features"]
    assert features["observation.images.front"]["dtype"] == "video"
    assert features["observation.images.front"]["shape"] == [H, W, 3]
    assert features["observation.state"]["shape"] == [15] and len(features["observation.state"]["names"]) == 15
    assert features["observation.environment_state"]["shape"] == [10]
    assert features["next.reward"]["dtype"] == "float32" and features["next.done"]["dtype"] == "bool"
    frames = pq.read_table(root / "data" / "chunk-000" / "file-000.parquet").to_pydict()
    assert frames["episode_index"] == [0] * 6 + [1] * 4 and frames["frame_index"] == [*range(6), *range(4)]
    np.testing.assert_allclose(frames["timestamp"][6:], np.arange(4) / 10.0, rtol=1e-6)
    np.testing.assert_array_equal(np.array(frames["observation.state"], np.float32), source.array("state")[:])
    episodes = pq.read_table(root / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pydict()
    assert episodes["length"] == [6, 4] and episodes["dataset_from_index"] == [0, 6]
    assert episodes["tasks"] == [["pick the cube"], ["push the cube"]]
    assert episodes["videos/observation.images.front/from_timestamp"] == [0.0, 0.6]
    tasks = pq.read_table(root / "meta" / "tasks.parquet")
    assert tasks.to_pydict() == {"task_index": [0, 1], "task": ["pick the cube", "push the cube"]}
    assert tasks.schema.pandas_metadata["index_columns"] == ["task"], "pandas reads the task as the index"
    assert (root / "videos" / "observation.images.wrist" / "chunk-000" / "file-000.mp4").stat().st_size > 0
    stats = json.loads((root / "meta" / "stats.json").read_text())
    np.testing.assert_allclose(stats["observation.state"]["mean"], source.array("state")[:].mean(0), rtol=1e-5, atol=1e-6)
    assert np.array(stats["observation.images.front"]["mean"]).shape == (3, 1, 1)

    copy = import_lerobot(root, tmp_path / "back.zarr")
    assert_same_store(copy, source, rgb_exact=False, depth_atol_m=0.0011)
    with pytest.raises(FileExistsError, match="not empty"):
        export_lerobot(source, root)


def test_mcap_round_trip_is_lossless(source, tmp_path):
    from rosbags.rosbag2 import Reader

    bag = tmp_path / "bag"
    result = export_mcap(source, bag)
    assert result["episodes"] == 2 and result["steps"] == 10 and result["clock"] == "stamp_ns"
    with Reader(bag) as reader:
        topics = {c.topic: c.msgtype for c in reader.connections}
        assert reader.message_count == result["messages"]
    assert topics["/robolearn/camera/front/image/compressed"] == "sensor_msgs/msg/CompressedImage"
    assert topics["/robolearn/camera/front/depth"] == "sensor_msgs/msg/Image"
    assert topics["/robolearn/camera/wrist/camera_info"] == "sensor_msgs/msg/CameraInfo"
    assert topics["/robolearn/arm/joint_states"] == "sensor_msgs/msg/JointState"
    assert topics["/robolearn/teleop"] == "robolearn_msgs/msg/TeleopCommand"
    assert topics["/robolearn/store/contact_count"] == "std_msgs/msg/Int64MultiArray"
    assert topics["/robolearn/store/terminated"] == "std_msgs/msg/UInt8MultiArray"
    assert list(bag.glob("*.mcap"))

    copy = import_mcap(bag, tmp_path / "back.zarr")
    assert_same_store(copy, source, rgb_exact=True)
    assert [copy.encoded_frame("rgb_wrist", t) for t in range(10)] == \
        [source.encoded_frame("rgb_wrist", t) for t in range(10)], "the JPEG files travel unchanged"
    bare = import_mcap(next(bag.glob("*.mcap")), tmp_path / "bare.zarr")
    assert_same_store(bare, source, rgb_exact=True)
    with pytest.raises(FileExistsError, match="rosbag2 writes a new directory"):
        export_mcap(source, bag)


def test_mcap_export_of_a_store_without_one_clock_rebuilds_it(source, tmp_path):
    """Stamps restarting every episode (stores recorded before robolearn kept one clock) are logged on
    a clock rebuilt from them and still come back as they were."""
    old = copy_episodes(source, tmp_path / "old.zarr", range(source.n_episodes))
    old.write_block("stamp_ns", 0, np.concatenate([np.arange(6), np.arange(4)]).astype(np.int64) * 100_000_000)
    result = export_mcap(old, tmp_path / "bag")
    assert result["clock"].startswith("rebuilt")
    copy = import_mcap(tmp_path / "bag", tmp_path / "back.zarr")
    np.testing.assert_array_equal(copy.array("stamp_ns")[:], old.array("stamp_ns")[:])


def test_bad_inputs_name_the_problem(source, tmp_path):
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not a LeRobotDataset"):
        import_lerobot(tmp_path / "empty", tmp_path / "a.zarr")
    old = tmp_path / "v21"
    (old / "meta").mkdir(parents=True)
    (old / "meta" / "info.json").write_text(json.dumps({"codebase_version": "v2.1", "fps": 30, "features": {}}))
    with pytest.raises(ValueError, match="convert_dataset_v21_to_v30"):
        import_lerobot(old, tmp_path / "b.zarr")
    (old / "meta" / "info.json").write_text(json.dumps({"codebase_version": "v3.0", "fps": 30, "features": {
        "observation.image": {"dtype": "image", "shape": [8, 8, 3]}}}))
    with pytest.raises(ValueError, match="re-encode them as video"):
        import_lerobot(old, tmp_path / "c.zarr")

    with pytest.raises(FileNotFoundError, match="not a rosbag2 bag directory"):
        import_mcap(tmp_path / "empty", tmp_path / "d.zarr")
    typestore = get_typestore(Stores.ROS2_JAZZY)
    other = tmp_path / "other_bag"
    with Writer(other, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=typestore)
        writer.write(connection, 1, typestore.serialize_cdr(typestore.types["std_msgs/msg/String"](data="hi"),
                                                            "std_msgs/msg/String"))
    with pytest.raises(ValueError, match="--format rosbag2 BAG --map MAP.yaml"):
        import_mcap(other, tmp_path / "e.zarr")
    assert not (tmp_path / "e.zarr").exists()

    empty = DemoStore.create(tmp_path / "none.zarr")
    with pytest.raises(ValueError, match="no episodes to export"):
        export_lerobot(empty, tmp_path / "f")
    with pytest.raises(ValueError, match="no episodes to export"):
        export_mcap(empty, tmp_path / "g")


def test_lerobot_dataset_without_robolearn_extras_imports(source, tmp_path):
    """What LeRobot itself writes: no ``robolearn`` block in a feature's info, no ``robolearn_meta`` column."""
    root = tmp_path / "lerobot"
    export_lerobot(source, root)
    info = json.loads((root / "meta" / "info.json").read_text())
    for spec in info["features"].values():
        (spec.get("info") or {}).pop("robolearn", None)
    (root / "meta" / "info.json").write_text(json.dumps(info))
    episodes_path = root / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    pq.write_table(pq.read_table(episodes_path).drop(["robolearn_meta"]), episodes_path)
    assert "robolearn_meta" not in pq.read_schema(episodes_path).names

    copy = import_lerobot(root, tmp_path / "back.zarr")
    assert copy.keys == source.keys and copy.episode_ends.tolist() == [6, 10]
    assert [(m["task"], m["success"], m["source"]) for m in copy.episode_metas()] == \
        [("pick the cube", True, "teleop"), ("push the cube", True, "teleop")]
    np.testing.assert_array_equal(copy.array("action")[:], source.array("action")[:])
    assert copy.cell_config is None


def test_lerobot_export_rolls_over_data_and_video_files_and_chunks(source, tmp_path):
    """Files take whole episodes up to their size limit, then the next file (here: one episode per
    file, one file per chunk), as LeRobot's own writer does."""
    root = tmp_path / "lerobot"
    export_lerobot(source, root, chunks_size=1, data_file_mb=1e-6, video_file_mb=1e-6)
    episodes = pq.read_table(root / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pydict()
    assert episodes["data/chunk_index"] == [0, 1] and episodes["data/file_index"] == [0, 0]
    assert episodes["videos/observation.images.front/chunk_index"] == [0, 1]
    assert episodes["videos/observation.images.front/from_timestamp"] == [0.0, 0.0]
    assert episodes["videos/observation.images.front/to_timestamp"] == [0.6, 0.4]
    second = pq.read_table(root / "data" / "chunk-001" / "file-000.parquet").to_pydict()
    assert second["episode_index"] == [1] * 4 and second["index"] == [6, 7, 8, 9]
    assert (root / "videos" / "observation.images.wrist" / "chunk-001" / "file-000.mp4").exists()
    info = json.loads((root / "meta" / "info.json").read_text())
    assert (info["chunks_size"], info["data_files_size_in_mb"], info["video_files_size_in_mb"]) == (1, 1e-6, 1e-6)
    with pytest.raises(ValueError, match="must be positive"):
        export_lerobot(source, tmp_path / "zero", data_file_mb=0)
    assert_same_store(import_lerobot(root, tmp_path / "back.zarr"), source, rgb_exact=False, depth_atol_m=0.0011)


def test_lerobot_import_decodes_video_episode_by_episode(source, tmp_path, monkeypatch):
    import av

    root = tmp_path / "lerobot"
    export_lerobot(source, root)  # both episodes of a camera in one mp4
    decoded: list[int] = []
    real_open = av.open

    class CountingContainer:
        def __init__(self, inner):
            self.inner = inner

        def decode(self, *args, **kwargs):
            for frame in self.inner.decode(*args, **kwargs):
                decoded.append(1)
                yield frame

        def __getattr__(self, name):
            return getattr(self.inner, name)

    monkeypatch.setattr(av, "open", lambda *args, **kwargs: CountingContainer(real_open(*args, **kwargs)))
    seen: list[tuple[int, int]] = []
    import_lerobot(root, tmp_path / "back.zarr", progress=lambda done: seen.append((done, len(decoded))))
    assert seen == [(1, 3 * 6), (2, 3 * 10)], "each episode decodes only its own frames (2 cameras, 1 depth)"
