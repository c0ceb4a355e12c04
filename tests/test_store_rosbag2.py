"""Importing a foreign ROS 2 recording with a topic map: a bag written here by rosbags' writer with
the topics a Franka + two RealSense + SpaceMouse cell records (franka_ros2, realsense2_camera,
spacenav; header stamps a little before log times, cameras at 30 Hz, the arm at 100 Hz), imported
with the shipped ``configs/maps/franka_realsense.yaml``, resampled onto 10 Hz, split by its marker
topic, and trained on with BC; a bad map names the missing topic."""

from __future__ import annotations

import json
from pathlib import Path

import imagecodecs
import numpy as np
import pytest

from robolearn.cli import main
from robolearn.config import ConfigError
from robolearn.interfaces import CameraIntrinsics
from robolearn.ros import messages
from robolearn.ros.bag_import import import_rosbag2
from robolearn.ros.topic_map import load_topic_map
from robolearn.store import DemoStore

MAP = Path("configs/maps/franka_realsense.yaml")
T0 = 1_780_000_000_000_000_000
S = 1_000_000_000
H, W = 24, 32
EPISODES_S = [(0.5, 3.5), (5.0, 8.0)]
DROPOUT_S = (6.0, 6.6)
"""The front camera sends nothing in this window of the second episode."""
JOINTS = [f"fr3_joint{i}" for i in range(1, 8)]


def joint_positions(t_s: float) -> np.ndarray:
    return np.sin(t_s + np.arange(7))


def finger(t_s: float) -> float:
    return 0.02 + 0.01 * np.sin(t_s)


def pose(t_s: float) -> tuple[np.ndarray, np.ndarray]:
    angle = 0.3 * t_s
    return np.array([0.5 + 0.1 * np.sin(t_s), 0.1 * np.cos(t_s), 0.3]), np.array([np.cos(angle / 2), 0, 0, np.sin(angle / 2)])


def twist(t_s: float) -> np.ndarray:
    return np.array([np.sin(2 * t_s), 0.5, -0.25, 0.0, 0.1, np.cos(t_s)]) * 0.5


def gripper(t_s: float) -> float:
    return 1.0 if int(t_s) % 2 else 0.0


def camera_frames(end_s: float = 9.0) -> list[float]:
    frames = [k / 30 for k in range(int(end_s * 30))]
    return [t for t in frames if not DROPOUT_S[0] < t < DROPOUT_S[1]]


def front_color(index: int) -> np.ndarray:
    return np.array([(7 * index) % 200 + 20, 100, 180 - index % 100], np.uint8)


def write_cell_bag(path: Path, storage: str = "mcap", episodes: list[tuple[float, float]] = EPISODES_S) -> Path:
    """What `ros2 bag record` of the cell writes: every topic with its own rate and latency."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    ts = messages.typestore()
    types = ts.types
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    rows: list[tuple[int, str, str, object]] = []

    def add(topic: str, msgtype: str, stamp_s: float, latency_s: float, msg: object) -> None:
        rows.append((T0 + int(round((stamp_s + latency_s) * S)), topic, msgtype, msg))

    def header(t_s: float, frame: str = "") -> object:
        return messages.header(T0 + int(round(t_s * S)), frame)

    vector = types["geometry_msgs/msg/Vector3"]
    for k in range(900):
        t = k / 100
        add("/franka/joint_states", messages.JOINT_STATE, t, 0.001, types[messages.JOINT_STATE](
            header=header(t), name=JOINTS, position=joint_positions(t), velocity=np.zeros(7), effort=np.zeros(7)))
        add("/franka_gripper/joint_states", messages.JOINT_STATE, t, 0.001, types[messages.JOINT_STATE](
            header=header(t), name=["fr3_finger_joint1", "fr3_finger_joint2"], position=np.full(2, finger(t)),
            velocity=np.zeros(2), effort=np.zeros(2)))
        position, quat = pose(t)
        msg = messages.pose_msg(position, quat, T0 + int(round(t * S)), "fr3_link0")
        add("/franka_robot_state_broadcaster/current_pose", messages.POSE_STAMPED, t, 0.001, msg)
        wrench = types["geometry_msgs/msg/Wrench"](force=vector(1.0, 2.0, t), torque=vector(0.0, 0.1, 0.2))
        add("/franka_robot_state_broadcaster/external_wrench_in_base_frame", "geometry_msgs/msg/WrenchStamped", t,
            0.001, types["geometry_msgs/msg/WrenchStamped"](header=header(t), wrench=wrench))
        if k % 2 == 0:
            linear, angular = twist(t)[:3], twist(t)[3:]
            add("/spacenav/twist", "geometry_msgs/msg/Twist", t, 0.002,
                types["geometry_msgs/msg/Twist"](linear=vector(*linear), angular=vector(*angular)))
        if k % 10 == 0:
            add("/teleop/gripper", "std_msgs/msg/Float64", t, 0.002, types["std_msgs/msg/Float64"](data=gripper(t)))
    info = messages.camera_info_msg(CameraIntrinsics(W, H, 30.0, 31.0, 15.5, 11.5), 0, "")
    for index, t in enumerate(k / 30 for k in range(270)):
        wrist = np.full((H, W, 3), index % 250, np.uint8)
        add("/camera_wrist/color/image_raw", messages.IMAGE, t, 0.015, messages.image_msg(wrist, T0 + int(round(t * S)),
                                                                                       "camera_wrist_color_optical_frame"))
        add("/camera_wrist/color/camera_info", messages.CAMERA_INFO, t, 0.015,
            types[messages.CAMERA_INFO](**{**vars(info), "header": header(t, "camera_wrist_color_optical_frame")}))
        if DROPOUT_S[0] < t < DROPOUT_S[1]:
            continue
        jpeg = imagecodecs.jpeg_encode(np.broadcast_to(front_color(index), (H, W, 3)).copy(), level=95)
        add("/camera_front/color/image_raw/compressed", messages.COMPRESSED_IMAGE, t, 0.02,
            types[messages.COMPRESSED_IMAGE](header=header(t, "camera_front_color_optical_frame"),
                                            format="rgb8; jpeg compressed bgr8", data=np.frombuffer(jpeg, np.uint8)))
        depth = np.full((H, W), 1000 + index, np.uint16)
        add("/camera_front/aligned_depth_to_color/image_raw", messages.IMAGE, t, 0.02, types[messages.IMAGE](
            header=header(t, "camera_front_color_optical_frame"), height=H, width=W, encoding="16UC1",
            is_bigendian=0, step=2 * W, data=depth.reshape(-1).view(np.uint8)))
        add("/camera_front/color/camera_info", messages.CAMERA_INFO, t, 0.02,
            types[messages.CAMERA_INFO](**{**vars(info), "header": header(t, "camera_front_color_optical_frame")}))
    for start, stop in episodes:
        add("/episode/recording", "std_msgs/msg/Bool", start, 0.0, types["std_msgs/msg/Bool"](data=True))
        add("/episode/recording", "std_msgs/msg/Bool", stop, 0.0, types["std_msgs/msg/Bool"](data=False))
    add("/episode/success", "std_msgs/msg/Bool", episodes[0][1] - 0.1, 0.0, types["std_msgs/msg/Bool"](data=True))
    rows.sort(key=lambda row: row[0])
    with Writer(path, version=Writer.VERSION_LATEST, storage_plugin=plugin) as writer:
        connections = {}
        for log_ns, topic, msgtype, msg in rows:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=ts)
            writer.write(connections[topic], log_ns, ts.serialize_cdr(msg, msgtype))
    return path


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    return write_cell_bag(tmp_path_factory.mktemp("bag") / "cell_bag")


@pytest.fixture(scope="module")
def imported(bag, tmp_path_factory):
    return import_rosbag2([bag], MAP, tmp_path_factory.mktemp("store") / "demos.zarr")


def expected_ticks(start_s: float, stop_s: float) -> tuple[list[float], list[float]]:
    """The ticks kept and dropped: each stream's latest message at or before the tick (by header
    stamp) must be at most 0.2 s old; only the front camera ever is not."""
    frames = np.array(camera_frames())
    kept, dropped = [], []
    for tick in np.arange(round((stop_s - start_s) * 10) + 1) / 10 + start_s:
        latest = frames[frames <= tick + 1e-9].max()
        (kept if tick - latest <= 0.2 + 1e-9 else dropped).append(float(tick))
    return kept, dropped


def test_imports_resampled_episodes_with_the_cells_values(imported):
    store = imported
    assert store.n_episodes == 2
    assert set(store.keys) == {"rgb_front", "rgb_wrist", "depth_front", "state", "wrench", "action", "stamp_ns",
                               "success", "terminated", "reward", "intervention"}
    for episode, (start, stop) in enumerate(EPISODES_S):
        kept, dropped = expected_ticks(start, stop)
        data = store.episode(episode)
        ticks_s = (data["stamp_ns"] - T0) / S
        np.testing.assert_allclose(ticks_s, kept, atol=1e-9)
        meta = store.episode_meta(episode)
        assert meta["steps_dropped"] == len(dropped) and meta["imported_from"].endswith("cell_bag")
        assert (meta["gaps"] == [[kept.index(dropped[-1] + 0.1), len(dropped)]]) if dropped else meta["gaps"] == []
        for t, tick in enumerate(kept):
            arm_s = np.floor(tick * 100 + 1e-6) / 100
            position, quat = pose(arm_s)
            expected_state = np.concatenate([joint_positions(arm_s), position, quat, [2 * finger(arm_s)]])
            np.testing.assert_allclose(data["state"][t], expected_state, rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(data["wrench"][t], [1.0, 2.0, arm_s, 0.0, 0.1, 0.2], atol=1e-6)
            # Twist and Float64 have no header: their time is the log time, 2 ms after they were sent.
            twist_s = np.floor((tick - 0.002) * 50 + 1e-6) / 50
            gripper_s = np.floor((tick - 0.002) * 10 + 1e-6) / 10
            np.testing.assert_allclose(data["action"][t], [*twist(twist_s), 2 * gripper(gripper_s) - 1], atol=1e-6)
            index = int(np.floor(tick * 30 + 1e-6))
            front = max(i for i, ft in enumerate(k / 30 for k in range(270))
                        if ft <= tick + 1e-9 and not DROPOUT_S[0] < ft < DROPOUT_S[1])
            assert np.abs(data["rgb_front"][t].reshape(-1, 3).mean(0) - front_color(front)).max() < 3
            assert data["depth_front"][t][0, 0] == pytest.approx((1000 + front) / 1000)
            assert data["rgb_wrist"][t][0, 0, 0] == index % 250
    first, second = store.episode(0), store.episode(1)
    assert store.episode_meta(0)["success"] and not store.episode_meta(1)["success"]
    assert first["success"][-1] and first["terminated"][-1] and first["reward"][-1] == 1.0 and first["success"].sum() == 1
    assert not second["success"].any() and not second["intervention"].any()
    meta = store.episode_meta(0)
    assert (meta["task"], meta["source"]) == ("pick_cube", "teleop") and "success_marked" not in meta
    assert meta["frames"]["/camera_front/color/image_raw/compressed"]["used"] == len(first["stamp_ns"])


def test_the_store_keeps_the_cell_and_the_camera_calibration(imported):
    store = imported
    assert store.cell_config["name"] == "real_franka"
    assert store.cameras["front"]["intrinsics"] == {"width_px": W, "height_px": H, "fx_px": 30.0, "fy_px": 31.0,
                                                    "cx_px": 15.5, "cy_px": 11.5}
    assert store.cameras["wrist"]["frame_id"] == "camera_wrist_color_optical_frame"


def test_the_imported_store_trains_bc(imported, tmp_path, capsys):
    code = main(["train", "--algo", "bc", "--store", str(imported.path), "--task", "pick_cube", "--steps", "2",
                 "--eval-every", "0", "--set", "batch_size=8", "--set", "hidden=[8]", "--out", str(tmp_path / "bc"),
                 "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["transitions"] == imported.episode_ends[0], "bc trains on the successful episode"


def test_cli_import_and_sqlite3_and_bare_mcap_recordings(bag, imported, tmp_path, capsys):
    sqlite_bag = write_cell_bag(tmp_path / "sqlite_bag", storage="sqlite3")
    assert list(sqlite_bag.glob("*.db3"))
    code = main(["data", "import", "--format", "rosbag2", str(sqlite_bag), "--map", str(MAP), "--out",
                 str(tmp_path / "s.zarr"), "--json"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and result["n_episodes"] == 2 and result["steps_dropped"] == imported.episode_meta(1)["steps_dropped"]
    from_sqlite = DemoStore.open(tmp_path / "s.zarr")
    bare = import_rosbag2([next(bag.glob("*.mcap"))], MAP, tmp_path / "bare.zarr")
    for copy in (from_sqlite, bare):
        for key in ("state", "action", "stamp_ns", "depth_front", "rgb_wrist"):
            np.testing.assert_array_equal(copy.array(key)[:], imported.array(key)[:], err_msg=key)


def test_split_by_gap_and_by_bag(bag, tmp_path):
    topic_map = load_topic_map(MAP)
    topic_map.episodes.by, topic_map.episodes.gap_s = "gap", 0.5
    topic_map.success = None
    gapped = write_cell_bag(tmp_path / "one_episode", episodes=[(0.5, 3.5)])
    by_gap = import_rosbag2([gapped], topic_map, tmp_path / "gap.zarr")
    assert by_gap.n_episodes == 2, "the first stream, rgb_front, pauses for 0.6 s"
    ends_s = [(by_gap.episode(i)["stamp_ns"][[0, -1]] - T0) / S for i in range(2)]
    # The windows are the first stream's log times: the frames of 6.0 s and 6.6 s arrive 20 ms later.
    np.testing.assert_allclose([ends_s[0][-1], ends_s[1][0]], [6.02, 6.62], atol=1e-9)
    assert by_gap.episode_meta(0)["success_marked"] is False
    topic_map.episodes.gap_s = 1.0
    assert import_rosbag2([gapped], topic_map, tmp_path / "gap1.zarr").n_episodes == 1
    topic_map.episodes.by = "bag"
    by_bag = import_rosbag2([gapped, bag], topic_map, tmp_path / "bags.zarr")
    assert by_bag.n_episodes == 2
    stamps = by_bag.episode(1)["stamp_ns"]
    assert (stamps[0] - T0) / S == pytest.approx(0.002), "from when every stream has a message (the Twist's log time)"


def test_a_bad_map_names_the_missing_topic_and_the_fix(bag, tmp_path, capsys):
    text = MAP.read_text().replace("/franka/joint_states", "/franka/joint_state")
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"streams\.state\.0: topic /franka/joint_state is not in .*cell_bag "
                                          r"\(its topics: .*/franka/joint_states.*fix the topic name in the map"):
        import_rosbag2([bag], tmp_path / "bad.yaml", tmp_path / "x.zarr")
    assert not (tmp_path / "x.zarr").exists()
    code = main(["data", "import", "--format", "rosbag2", str(bag), "--map", str(tmp_path / "bad.yaml"), "--out",
                 str(tmp_path / "y.zarr")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "/franka/joint_state is not in" in err[0]
    assert not (tmp_path / "y.zarr").exists()
    wrong = MAP.read_text().replace("wrench: {topic: /franka_robot_state_broadcaster/external_wrench_in_base_frame}",
                                    "rgb_top: {topic: /franka_robot_state_broadcaster/external_wrench_in_base_frame}")
    (tmp_path / "wrong.yaml").write_text(wrong)
    with pytest.raises(ConfigError, match="is geometry_msgs/msg/WrenchStamped, but rgb_top takes sensor_msgs/Image"):
        import_rosbag2([bag], tmp_path / "wrong.yaml", tmp_path / "z.zarr")
    names = MAP.read_text().replace("names: [fr3_finger_joint1]", "names: [fr3_finger_joint9]")
    (tmp_path / "names.yaml").write_text(names)
    with pytest.raises(ConfigError, match=r"streams\.state\.2\.names: JointState on /franka_gripper/joint_states has "
                                          r"no joint 'fr3_finger_joint9'"):
        import_rosbag2([bag], tmp_path / "names.yaml", tmp_path / "n.zarr")
    stale = MAP.read_text().replace("staleness_s: 0.2", "staleness_s: 0.001").replace("stamps: header", "stamps: log")
    (tmp_path / "stale.yaml").write_text(stale)
    with pytest.raises(ValueError, match="no control tick had every stream within staleness_s = 0.001 s; the stalest"):
        import_rosbag2([bag], tmp_path / "stale.yaml", tmp_path / "s.zarr")


def test_stale_steps_can_be_kept_and_flagged(bag, tmp_path):
    topic_map = load_topic_map(MAP)
    topic_map.on_stale = "flag"
    store = import_rosbag2([bag], topic_map, tmp_path / "flagged.zarr")
    second = store.episode(1)
    kept, dropped = expected_ticks(*EPISODES_S[1])
    assert len(second["stamp_ns"]) == len(kept) + len(dropped) and store.episode_meta(1)["gaps"] == []
    flagged = ((second["stamp_ns"][second["stale"]] - T0) / S).tolist()
    np.testing.assert_allclose(flagged, dropped, atol=1e-9)
    assert not store.episode(0)["stale"].any()
