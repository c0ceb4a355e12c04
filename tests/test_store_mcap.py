"""An MCAP export of a store collected on the twin is a real recording: log and header times are
the store's ``stamp_ns``, the topics and types are the live graph's, CameraInfo is the cell's, the
episodes are marked, the metadata.yaml summary is right, and the ``mcap`` + ``mcap-ros2-support``
readers decode every message (as well as rosbags)."""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np
import pytest
import yaml

from robolearn.cell import load_cell
from robolearn.collect import CollectSettings, collect
from robolearn.ros import messages
from robolearn.ros.bag_store import STORE_PREFIX, export_mcap
from robolearn.ros.nodes import topics
from robolearn.store import DemoStore

SMALL = ("cameras.0.width_px=32", "cameras.0.height_px=24", "cameras.1.width_px=32", "cameras.1.height_px=24")
EPISODE = messages.msg_class(messages.EPISODE_CONTROL)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """Two reach episodes collected in-process on the twin, and their MCAP export."""
    root = tmp_path_factory.mktemp("mcap")
    collect(CollectSettings(task="reach", store=str(root / "demos.zarr"), episodes=2, overrides=SMALL, progress=False))
    store = DemoStore.open(root / "demos.zarr")
    export_mcap(store, root / "bag")
    return store, root / "bag"


def read_all(bag):
    """``(topic, log_ns, msg)`` of every message, in log-time order, decoded by rosbags."""
    from rosbags.rosbag2 import Reader

    with Reader(bag) as reader:
        return [(c.topic, t, messages.deserialize(raw, c.msgtype)) for c, t, raw in reader.messages()]


def test_log_and_header_times_are_the_stores_clock(recording):
    store, bag = recording
    stamps = store.array("stamp_ns")[:]
    rows = read_all(bag)
    assert rows[0][1] == stamps[0], "the bag starts at the first episode's first stamp_ns"
    assert {t for _, t, _ in rows} == set(stamps.tolist()), "every message is logged at a step's stamp"
    headers = defaultdict(list)
    for topic, log_ns, msg in rows:
        if hasattr(msg, "header"):
            assert messages.stamp_ns(msg) == log_ns, topic
            headers[topic].append(log_ns)
        if topic == topics.TF:
            assert messages.stamp_ns(msg.transforms[0]) == log_ns
    for topic, times in headers.items():
        assert np.all(np.diff(times) >= 0), f"{topic} header stamps go back"
    assert len(headers[topics.JOINT_STATES]) == store.n_steps


def test_topics_are_the_live_graphs(recording):
    """The twin node's publishers (its liveliness tokens: what ``ros2 topic list -t`` shows) with JPEG
    streams on, the reward node's ``/robolearn/reward``; robolearn's store side channel apart."""
    from robolearn.cli.node_host import twin_node
    from robolearn.ros import Node, ZenohSettings
    from robolearn.ros.nodes.twin import FLOAT_ARRAY
    from robolearn.ros.zenoh_backend import free_endpoint, open_router

    store, bag = recording
    bag_topics = {topic: type(msg).__msgtype__ for topic, _, msg in read_all(bag)}
    endpoint = free_endpoint()
    router = open_router(endpoint)
    node = Node("twin", settings=ZenohSettings(router_endpoint=endpoint))
    try:
        twin_node(node, load_cell("configs/cells/sim_panda.yaml", list(SMALL)), task="reach", episodes=1,
                  compressed_quality=90)
        live = {}
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline and not set(bag_topics) - {topics.REWARD} <= set(live) | {
                t for t in bag_topics if t.startswith(STORE_PREFIX)}:
            for token in node.backend_impl.graph():  # a query may return before every token has come
                parts = token.split("/")
                if "MP" in parts:
                    topic, dds = parts[parts.index("MP") + 4], parts[parts.index("MP") + 5]
                    package, _, _, name = dds.split("::")
                    live["/" + topic.replace("%", "/").strip("/")] = f"{package}/msg/{name[:-1]}"
    finally:
        node.close()
        router.close()
    live[topics.REWARD] = FLOAT_ARRAY
    recorded = {t: m for t, m in bag_topics.items() if not t.startswith(STORE_PREFIX)}
    assert recorded == {t: live[t] for t in recorded}, "names and types as the live graph publishes them"
    expected = {topics.camera_compressed(c) for c in ("front", "wrist")} | {topics.camera_depth("front")} | \
        {topics.camera_info(c) for c in ("front", "wrist")} | \
        {topics.JOINT_STATES, topics.EE_POSE, topics.TF, topics.OBJECT_STATE, topics.TELEOP, topics.REWARD,
         topics.EPISODE_CONTROL}
    assert set(recorded) == expected
    assert {t[len(STORE_PREFIX):] for t in bag_topics if t.startswith(STORE_PREFIX)} == {"attrs", "episode", "terminated"}


def test_camera_info_is_the_cells(recording):
    store, bag = recording
    cell = load_cell("configs/cells/sim_panda.yaml", list(SMALL))
    infos = {topic: msg for topic, _, msg in read_all(bag) if topic.endswith("/camera_info")}
    for camera in cell.cameras:
        msg = infos[topics.camera_info(camera.name)]
        f_px = camera.height_px / 2.0 / np.tan(np.deg2rad(camera.fov_y_deg) / 2.0)
        assert (msg.width, msg.height) == (camera.width_px, camera.height_px)
        np.testing.assert_allclose(msg.k.reshape(3, 3), [[f_px, 0, (camera.width_px - 1) / 2],
                                                         [0, f_px, (camera.height_px - 1) / 2], [0, 0, 1]])
        assert msg.header.frame_id == f"{camera.name}_optical_frame" and msg.distortion_model == "plumb_bob"


def test_episodes_are_marked_and_split_back(recording):
    store, bag = recording
    controls = [(t, msg.command, msg.task) for topic, t, msg in read_all(bag) if topic == topics.EPISODE_CONTROL]
    stamps = store.array("stamp_ns")[:]
    expected = []
    for i in range(store.n_episodes):
        span = store.episode_slice(i)
        expected.append((stamps[span.start], EPISODE.START, "reach"))
        if store.episode_meta(i)["success"]:
            expected.append((stamps[span.stop - 1], EPISODE.SUCCESS, ""))
        expected.append((stamps[span.stop - 1], EPISODE.STOP, ""))
    assert controls == expected


def test_metadata_yaml_summary_is_right(recording):
    store, bag = recording
    rows = read_all(bag)
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    stamps = store.array("stamp_ns")[:]
    assert info["starting_time"]["nanoseconds_since_epoch"] == stamps[0]
    assert info["duration"]["nanoseconds"] == stamps[-1] - stamps[0]
    assert info["message_count"] == len(rows) and info["storage_identifier"] == "mcap"
    counts = {t["topic_metadata"]["name"]: t["message_count"] for t in info["topics_with_message_count"]}
    assert counts[topics.camera_compressed("front")] == store.n_steps
    assert counts[topics.EPISODE_CONTROL] == 2 * store.n_episodes + sum(m["success"] for m in store.episode_metas())


def test_the_mcap_readers_decode_every_message(recording):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    store, bag = recording
    rows = read_all(bag)
    seen = []
    with open(next(bag.glob("*.mcap")), "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        for schema, channel, message, decoded in reader.iter_decoded_messages():
            seen.append((channel.topic, message.log_time, schema.name))
            if channel.topic == topics.JOINT_STATES:
                assert list(decoded.name)[-1] == "gripper" and len(decoded.position) == 8
            if channel.topic == topics.camera_compressed("front"):
                assert bytes(decoded.data)[:2] == b"\xff\xd8", "a JPEG"
    assert [(topic, t) for topic, t, _ in rows] == [(topic, t) for topic, t, _ in seen]
    assert {name for _, _, name in seen} >= {"sensor_msgs/msg/CompressedImage", "tf2_msgs/msg/TFMessage",
                                             "robolearn_msgs/msg/TeleopCommand"}


def test_the_export_imports_as_any_recording_into_the_same_episodes(recording, tmp_path):
    """Read as a foreign recording (``--format rosbag2`` with ``configs/maps/robolearn_graph.yaml``,
    what a ``ros2 bag record`` of the live graph imports with), the export splits back into the same
    episodes on its EpisodeControl marks, with the same steps, stamps, state, action and success."""
    from robolearn.ros.bag_import import import_rosbag2

    store, bag = recording
    copy = import_rosbag2([bag], "configs/maps/robolearn_graph.yaml", tmp_path / "back.zarr")
    assert copy.n_episodes == store.n_episodes
    np.testing.assert_array_equal(copy.episode_ends, store.episode_ends)
    for key in ("stamp_ns", "state", "action", "object_state", "success", "depth_front"):
        np.testing.assert_array_equal(copy.array(key)[:], store.array(key)[:], err_msg=key)
    assert [m["success"] for m in copy.episode_metas()] == [m["success"] for m in store.episode_metas()]
    assert copy.cameras["front"]["intrinsics"] == pytest.approx(store.cameras["front"]["intrinsics"])
