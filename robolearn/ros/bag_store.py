"""Export to and import from rosbag2 MCAP bags that play like a recording of the live cell graph
(``rosbags``; standard ROS 2 Jazzy types and robolearn's ``robolearn_msgs``).

Every message of a step is logged at the step's ``stamp_ns`` (the store's one clock) and, where the
message has a header, stamped with it, so ``ros2 bag play --clock``, tf, message_filters and
Foxglove's timeline see the recording's own times. Each stream goes on the topic, with the type,
that the live graph (``robolearn.ros.nodes``) publishes it on:

- ``rgb_<cam>`` → ``/robolearn/camera/<cam>/image/compressed`` ``sensor_msgs/CompressedImage``:
  the stored JPEG itself (never re-encoded), frame ``<cam>_optical_frame``;
- ``depth_<cam>`` → ``/robolearn/camera/<cam>/depth`` ``sensor_msgs/Image`` ``32FC1`` metres;
- ``/robolearn/camera/<cam>/camera_info`` ``sensor_msgs/CameraInfo`` with every frame, from the
  store's camera calibration;
- ``state`` (joints, end-effector pose, gripper) → ``/robolearn/arm/joint_states`` ``JointState``
  (the cell's joint names plus ``gripper``), ``/robolearn/arm/ee_pose`` ``PoseStamped`` and ``/tf``
  (``world`` → ``tcp``);
- ``object_state`` → ``/robolearn/twin/object_state`` ``robolearn_msgs/ObjectState``;
- ``action`` with ``intervention`` → ``/robolearn/teleop`` ``robolearn_msgs/TeleopCommand`` (the
  command the recorder turns into a step);
- ``reward`` with ``success`` → ``/robolearn/reward`` ``Float32MultiArray`` ``[reward, NaN, success]``
  (the reward node's ``[reward, success_prob, success]``; the store has no probability);
- episodes → ``/robolearn/episode`` ``robolearn_msgs/EpisodeControl``: START (with the task) at an
  episode's first step, SUCCESS (successful episodes) and STOP at its last; a bag splits back into
  the same episodes.

What no live node publishes goes under ``/robolearn/store/``: ``attrs`` (``std_msgs/String`` JSON:
the store's attributes, keys and dtypes; once), ``episode`` (JSON metadata at each episode's first
step) and every other key (``terminated``, ...) as ``std_msgs/{Float32,Int64,UInt8}MultiArray``.
A store whose stamps are not one increasing clock (recorded before robolearn kept one) is logged on a
clock rebuilt from them (each episode one control period after the previous one), and its own
``stamp_ns`` travels as ``/robolearn/store/stamp_ns``. store → MCAP → store is lossless.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.errors import AlreadyExistsError, DataError, NotFoundError
from robolearn.interfaces import CameraIntrinsics
from robolearn.ros import messages
from robolearn.ros.nodes import topics
from robolearn.store.codecs import kind_of
from robolearn.store.store import DemoStore

STORE_PREFIX = "/robolearn/store/"
ATTRS_TOPIC, EPISODE_META_TOPIC = STORE_PREFIX + "attrs", STORE_PREFIX + "episode"
STRING, FLOAT_ARRAY = "std_msgs/msg/String", "std_msgs/msg/Float32MultiArray"
MULTI_ARRAY = {"f": ("std_msgs/msg/Float32MultiArray", np.float32), "i": ("std_msgs/msg/Int64MultiArray", np.int64),
               "u": ("std_msgs/msg/Int64MultiArray", np.int64), "b": ("std_msgs/msg/UInt8MultiArray", np.uint8)}
EE_DIM = 8
"""``state`` beyond the joints: end-effector position (3), quaternion wxyz (4), gripper opening (1)."""
EPISODE = messages.msg_class(messages.EPISODE_CONTROL)


def joint_names(cell: dict[str, Any] | None, n_joints: int) -> list[str]:
    """The names the arm node gives the cell's joints."""
    from robolearn.store.convert_lerobot import state_names

    return state_names(cell, n_joints + EE_DIM)[:n_joints]


def store_topics(store: DemoStore) -> dict[str, str]:
    """``{topic: type}`` of the export of ``store``: the live graph's for the streams it has, then
    ``/robolearn/store/...``."""
    return {topic: msgtype for topic, (msgtype, _) in _streams(store).items()}


def _streams(store: DemoStore) -> dict[str, tuple[str, list[str]]]:
    """``{topic: (type, store keys it carries)}``."""
    keys = store.keys
    shapes = {k: store.array(k).shape[1:] for k in keys}
    out: dict[str, tuple[str, list[str]]] = {}
    cameras = store.cameras or {}
    for key in keys:
        if kind_of(key) == "rgb":
            out[topics.camera_compressed(key[4:])] = (messages.COMPRESSED_IMAGE, [key])
        elif kind_of(key) == "depth":
            out[topics.camera_depth(key[6:])] = (messages.IMAGE, [key])
    for name in sorted({k.split("_", 1)[1] for k in keys if kind_of(k) != "lowdim"}):
        if (cameras.get(name) or {}).get("intrinsics"):
            out[topics.camera_info(name)] = (messages.CAMERA_INFO, [])
    if "state" in keys and len(shapes["state"]) == 1 and shapes["state"][0] > EE_DIM:
        out[topics.JOINT_STATES] = (messages.JOINT_STATE, ["state"])
        out[topics.EE_POSE] = (messages.POSE_STAMPED, [])
        out[topics.TF] = (messages.TF_MESSAGE, [])
    if "object_state" in keys and len(shapes["object_state"]) == 1:
        out[topics.OBJECT_STATE] = (messages.OBJECT_STATE, ["object_state"])
    if "action" in keys and shapes["action"] == (7,):
        out[topics.TELEOP] = (messages.TELEOP_COMMAND, ["action"] + (["intervention"] if _is_flag(store, "intervention")
                                                                     else []))
    if "reward" in keys and shapes["reward"] == ():
        out[topics.REWARD] = (FLOAT_ARRAY, ["reward"] + (["success"] if _is_flag(store, "success") else []))
    out[topics.EPISODE_CONTROL] = (messages.EPISODE_CONTROL, [])
    out[ATTRS_TOPIC] = (STRING, [])
    out[EPISODE_META_TOPIC] = (STRING, [])
    carried = {k for _, ks in out.values() for k in ks}
    for key in keys:
        if key not in carried and key != "stamp_ns":
            out[STORE_PREFIX + key] = (MULTI_ARRAY[store.array(key).dtype.kind][0], [key])
    return out


def _is_flag(store: DemoStore, key: str) -> bool:
    return key in store.keys and store.array(key).shape[1:] == () and store.array(key).dtype == np.bool_


def log_times(store: DemoStore) -> tuple[np.ndarray, bool]:
    """Each step's log time (ns) and whether it is the store's own ``stamp_ns``: stamps strictly
    increasing across the store are used as they are; otherwise (or without ``stamp_ns``) each
    episode keeps its own spacing (or the control period) and starts one control period after the
    previous one ends, from the first stamp."""
    n = store.n_steps
    period_ns = int(round(1e9 / store.control_hz))
    if "stamp_ns" in store.keys:
        stamps = np.asarray(store.array("stamp_ns")[:n], dtype=np.int64)
        if n < 2 or np.all(np.diff(stamps) > 0):
            return stamps, True
    else:
        stamps = np.arange(n, dtype=np.int64) * period_ns
    times = np.empty(n, np.int64)
    next_ns = int(stamps[0]) if n else 0
    for episode in range(store.n_episodes):
        span = store.episode_slice(episode)
        steps = stamps[span] - stamps[span.start]
        if np.any(np.diff(steps) <= 0):
            steps = np.arange(span.stop - span.start, dtype=np.int64) * period_ns
        times[span] = next_ns + steps
        next_ns = int(times[span.stop - 1]) + period_ns
    return times, False


def _multi_array(msgtype: str, values: np.ndarray, dtype: type) -> Any:
    ts = messages.typestore()
    dims = [ts.types["std_msgs/msg/MultiArrayDimension"](label=f"dim{i}", size=int(size),
                                                         stride=int(np.prod(values.shape[i:], dtype=np.int64)))
            for i, size in enumerate(values.shape)]
    layout = ts.types["std_msgs/msg/MultiArrayLayout"](dim=dims, data_offset=0)
    return ts.types[msgtype](layout=layout, data=np.ascontiguousarray(values, dtype=dtype).reshape(-1))


def _string(data: Any) -> Any:
    return messages.msg_class(STRING)(data=json.dumps(data))


class _Step:
    """The messages of one step ``t`` of ``store``, stamped ``stamp_ns``."""

    def __init__(self, store: DemoStore, lowdim: dict[str, np.ndarray], names: list[str]):
        self.store, self.lowdim, self.names = store, lowdim, names
        self.intrinsics = {name: CameraIntrinsics(**{k: v for k, v in (spec.get("intrinsics") or {}).items()})
                           for name, spec in (store.cameras or {}).items() if spec.get("intrinsics")}

    def messages(self, streams: dict[str, tuple[str, list[str]]], t: int, stamp_ns: int) -> Iterator[tuple[str, Any]]:
        for topic, (msgtype, keys) in streams.items():
            if topic in (topics.EPISODE_CONTROL, ATTRS_TOPIC, EPISODE_META_TOPIC):
                continue
            msg = self._message(topic, msgtype, keys, t, stamp_ns)
            if msg is not None:
                yield topic, msg

    def _message(self, topic: str, msgtype: str, keys: list[str], t: int, stamp_ns: int) -> Any:
        lowdim = self.lowdim
        if msgtype == messages.COMPRESSED_IMAGE:
            camera = keys[0][4:]
            return messages.msg_class(msgtype)(header=messages.header(stamp_ns, f"{camera}_optical_frame"),
                                               format=messages.JPEG_FORMAT,
                                               data=np.frombuffer(self.store.encoded_frame(keys[0], t), np.uint8))
        if msgtype == messages.IMAGE:
            return messages.image_msg(np.asarray(self.store.array(keys[0])[t], np.float32), stamp_ns,
                                      f"{keys[0][6:]}_optical_frame")
        if msgtype == messages.CAMERA_INFO:
            camera = topic.split("/")[3]
            return messages.camera_info_msg(self.intrinsics[camera], stamp_ns, f"{camera}_optical_frame")
        state = lowdim["state"][t] if "state" in lowdim else None
        if topic == topics.JOINT_STATES:
            n = len(state) - EE_DIM
            return messages.msg_class(msgtype)(header=messages.header(stamp_ns), name=[*self.names, "gripper"],
                                               position=np.append(state[:n], state[-1]).astype(np.float64),
                                               velocity=np.zeros(0), effort=np.zeros(0))
        if topic == topics.EE_POSE:
            n = len(state) - EE_DIM
            return messages.pose_msg(state[n:n + 3], state[n + 3:n + 7], stamp_ns)
        if topic == topics.TF:
            n = len(state) - EE_DIM
            return messages.tf_msg(state[n:n + 3], state[n + 3:n + 7], stamp_ns)
        if topic == topics.OBJECT_STATE:
            return messages.object_state_msg(lowdim["object_state"][t], stamp_ns)
        if topic == topics.TELEOP:
            action = lowdim["action"][t].astype(np.float64)
            return messages.msg_class(msgtype)(
                header=messages.header(stamp_ns), ee_delta=action[:6], gripper_closed=(action[6] + 1.0) / 2.0,
                intervene=bool(lowdim["intervention"][t]) if "intervention" in keys else False,
                success=False, failure=False, reset=False, quit=False)
        if topic == topics.REWARD:
            success = float(lowdim["success"][t]) if "success" in keys else float("nan")
            return _multi_array(FLOAT_ARRAY, np.array([lowdim["reward"][t], np.nan, success]), np.float32)
        key = keys[0]
        return _multi_array(msgtype, np.asarray(lowdim[key][t]), MULTI_ARRAY[lowdim[key].dtype.kind][1])


def export_mcap(store: DemoStore, path: str | Path, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Write every episode of ``store`` to a new rosbag2 directory ``path`` (MCAP storage)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    path = Path(path)
    if path.exists():
        raise AlreadyExistsError(f"{path} exists; rosbag2 writes a new directory")
    if not store.n_episodes:
        raise DataError(f"{store.path} has no episodes to export")
    ts = messages.typestore()
    n = store.n_steps
    lowdim = {k: np.asarray(store.array(k)[:n]) for k in store.keys if kind_of(k) == "lowdim"}
    times, own_clock = log_times(store)
    streams = _streams(store)
    if not own_clock and "stamp_ns" in lowdim:
        streams[STORE_PREFIX + "stamp_ns"] = (MULTI_ARRAY["i"][0], ["stamp_ns"])
    names = joint_names(store.cell_config, lowdim["state"].shape[1] - EE_DIM) if topics.JOINT_STATES in streams else []
    step = _Step(store, lowdim, names)
    count = 0
    with Writer(path, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = {topic: writer.add_connection(topic, msgtype, typestore=ts) for topic, (msgtype, _) in streams.items()}

        def write(topic: str, msg: Any, t_ns: int) -> None:
            nonlocal count
            writer.write(connections[topic], int(t_ns), messages.serialize(msg, streams[topic][0]))
            count += 1

        header = {"attrs": store.attrs, "dtypes": {k: str(v.dtype) for k, v in lowdim.items()}, "keys": store.keys,
                  "own_clock": own_clock}
        write(ATTRS_TOPIC, _string(header), times[0])
        for episode in range(store.n_episodes):
            span = store.episode_slice(episode)
            meta = store.episode_meta(episode)
            first, last = int(times[span.start]), int(times[span.stop - 1])
            write(topics.EPISODE_CONTROL, messages.episode_control_msg(EPISODE.START, first, meta.get("task", "")), first)
            write(EPISODE_META_TOPIC, _string({"index": episode, "length": span.stop - span.start, "meta": meta}), first)
            for t in range(span.start, span.stop):
                for topic, msg in step.messages(streams, t, int(times[t])):
                    write(topic, msg, times[t])
            if meta.get("success"):
                write(topics.EPISODE_CONTROL, messages.episode_control_msg(EPISODE.SUCCESS, last), last)
            write(topics.EPISODE_CONTROL, messages.episode_control_msg(EPISODE.STOP, last), last)
            if progress:
                progress(episode + 1)
    return {"path": str(path), "episodes": store.n_episodes, "steps": n, "messages": count,
            "clock": "stamp_ns" if own_clock else "rebuilt (the store's stamps are not one increasing clock)"}


def import_mcap(path: str | Path, destination: str | Path, progress: Callable[[int], None] | None = None) -> DemoStore:
    """A new store at ``destination`` from a bag written by ``export_mcap``, read one episode at a
    time (the bag never sits in memory as a whole). Other bags import with a topic map
    (``robolearn.ros.bag_import``)."""
    from rosbags.rosbag2 import Reader, ReaderError

    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"{path} does not exist")
    if path.is_dir() and not (path / "metadata.yaml").exists():
        raise NotFoundError(f"{path} is not a rosbag2 bag directory (no metadata.yaml); pass the bag directory or "
                                "its .mcap file")
    try:
        with Reader(path) as reader:
            return _import_bag(reader, path, Path(destination), progress)
    except ReaderError as err:
        raise DataError(f"{path}: cannot read the bag: {err}") from err


def _import_bag(reader: Any, path: Path, destination: Path, progress: Callable[[int], None] | None) -> DemoStore:
    by_topic = {c.topic: c for c in reader.connections}
    if ATTRS_TOPIC not in by_topic or EPISODE_META_TOPIC not in by_topic:
        raise DataError(f"{path} was not written by `robolearn data export --format mcap` (no {ATTRS_TOPIC} topic); "
                         "import a ROS 2 recording with `robolearn data import --format rosbag2 BAG --map MAP.yaml` "
                         "(docs/store.md, Importing rosbag2 recordings)")
    header: dict[str, Any] = {}
    episodes: list[dict[str, Any]] = []
    for connection, t_ns, raw in reader.messages([by_topic[ATTRS_TOPIC], by_topic[EPISODE_META_TOPIC]]):
        data = json.loads(messages.deserialize(raw, STRING).data)
        if connection.topic == ATTRS_TOPIC:
            header = data
        else:
            episodes.append({**data, "t_ns": t_ns})
    episodes.sort(key=lambda e: e["t_ns"])
    attrs, dtypes, keys = header.get("attrs", {}), header.get("dtypes", {}), header.get("keys", [])
    data_connections = [c for c in reader.connections if c.topic not in (ATTRS_TOPIC, EPISODE_META_TOPIC)]
    out = DemoStore.create(destination, cell_config=attrs.get("cell_config"), cameras=attrs.get("cameras"),
                           **({"jpeg_quality": attrs["jpeg_quality"]} if "jpeg_quality" in attrs else {}))
    out.inherit_attrs(attrs)
    for count, episode in enumerate(episodes):
        stop = episodes[count + 1]["t_ns"] if count + 1 < len(episodes) else None
        steps: dict[str, dict[int, Any]] = defaultdict(dict)
        for connection, t_ns, raw in reader.messages(data_connections, start=episode["t_ns"], stop=stop):
            if connection.topic != topics.EPISODE_CONTROL:
                steps[connection.topic][t_ns] = messages.deserialize(raw, connection.msgtype)
        window = sorted(set().union(*(m.keys() for m in steps.values())))
        if len(window) != episode["length"]:
            raise DataError(f"{path}: episode {episode['index']} has {len(window)} steps in the bag, its metadata "
                             f"says {episode['length']}; the bag is truncated or was not written by robolearn")
        for topic, by_time in steps.items():
            missing = [t for t in window if t not in by_time]
            if missing:
                raise DataError(f"{path}: episode {episode['index']} lacks {len(missing)} {topic} messages")
        data, encoded = _episode_arrays(steps, window, keys, dtypes, bool(header.get("own_clock", True)))
        _append_with_jpeg(out, data, encoded, episode["meta"])
        if progress:
            progress(count + 1)
    return out


def _episode_arrays(steps: dict[str, dict[int, Any]], window: list[int], keys: list[str], dtypes: dict[str, str],
                    own_clock: bool) -> tuple[dict[str, np.ndarray], dict[str, list[bytes]]]:
    """The store keys of one episode from its messages by topic and log time (``window``: the steps)."""
    def each(topic: str) -> list[Any]:
        return [steps[topic][t] for t in window]

    data: dict[str, np.ndarray] = {}
    encoded: dict[str, list[bytes]] = {}
    for key in keys:
        if kind_of(key) == "rgb":
            encoded[key] = [bytes(m.data) for m in each(topics.camera_compressed(key[4:]))]
        elif kind_of(key) == "depth":
            data[key] = np.stack([depth_m(m) for m in each(topics.camera_depth(key[6:]))])
        elif STORE_PREFIX + key in steps:
            data[key] = np.stack([multi_array(m) for m in each(STORE_PREFIX + key)])
        elif key == "state":
            data[key] = np.stack([messages.arm_state(j, p).proprio() for j, p in
                                  zip(each(topics.JOINT_STATES), each(topics.EE_POSE))])
        elif key == "object_state":
            data[key] = np.stack([messages.object_state(m) for m in each(topics.OBJECT_STATE)])
        elif key == "action":
            data[key] = np.stack([messages.teleop_command(m).action() for m in each(topics.TELEOP)])
        elif key == "intervention":
            data[key] = np.array([m.intervene for m in each(topics.TELEOP)])
        elif key in ("reward", "success"):
            data[key] = np.array([m.data[0 if key == "reward" else 2] for m in each(topics.REWARD)])
        elif key == "stamp_ns" and own_clock:
            data[key] = np.array(window, np.int64)
        if key in data and key in dtypes:
            data[key] = data[key].astype(dtypes[key])
    return data, encoded


def multi_array(msg: Any) -> np.ndarray:
    """A ``std_msgs/*MultiArray`` as an array of its layout's shape (UInt8 → bool)."""
    shape = [int(d.size) for d in msg.layout.dim]
    values = np.asarray(msg.data)
    if values.dtype == np.uint8:
        values = values.astype(bool)
    return values.reshape(shape)


def depth_m(msg: Any) -> np.ndarray:
    """A depth ``sensor_msgs/Image`` (``32FC1`` metres, ``16UC1`` millimetres) as ``(H, W) float32`` metres."""
    if msg.encoding == "32FC1":
        return np.asarray(messages.image_array(msg), np.float32).copy()
    if msg.encoding in ("16UC1", "mono16"):
        return np.asarray(msg.data).view(np.uint16).reshape(msg.height, msg.width).astype(np.float32) / 1000.0
    raise DataError(f"depth images must be 32FC1 metres or 16UC1 millimetres, got {msg.encoding!r}")


def _append_with_jpeg(store: DemoStore, data: dict[str, np.ndarray], encoded: dict[str, list[bytes]],
                      meta: dict[str, Any]) -> int:
    """Append an episode whose RGB frames are given as JPEG files (written as chunks, not re-encoded)."""
    import imagecodecs

    length = len(next(iter(encoded.values()))) if encoded else len(next(iter(data.values())))
    shapes = {k: imagecodecs.jpeg8_decode(frames[0]).shape for k, frames in encoded.items()}
    store.prepare_keys({**{k: (v.shape[1:], v.dtype) for k, v in data.items()},
                        **{k: (shape, np.dtype(np.uint8)) for k, shape in shapes.items()}})
    start = store.n_steps
    for key, values in data.items():
        store.write_block(key, start, values)
    for key, frames in encoded.items():
        store.write_encoded(key, start, frames)
    return store.commit(length, meta)
