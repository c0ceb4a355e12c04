"""Export to and import from rosbag2 MCAP bags (``rosbags``; standard ROS 2 Jazzy message types only,
so ``ros2 bag play``, Foxglove and PlotJuggler read them).

One message per data key per step, all at the step's bag time ``t0 + global_step × control period``
(per-episode ``stamp_ns`` restarts in the twin, so it travels as its own topic):

- ``/rgb_<cam>/compressed`` ``sensor_msgs/msg/CompressedImage`` (format ``jpeg``): the stored JPEG
  chunk itself, so export and import never re-encode (the round trip is lossless);
- ``/depth_<cam>`` ``sensor_msgs/msg/Image`` ``16UC1`` millimetres (the store's own resolution);
- ``/robolearn/<key>`` ``std_msgs/msg/{Float32,Int64,UInt8}MultiArray`` with the step's shape in
  the layout: every low-dimensional key (float → Float32, integer → Int64, bool → UInt8);
- ``/joint_states`` ``sensor_msgs/msg/JointState`` from ``state`` (7 joints, gripper width) for
  ROS tools; import ignores it;
- ``/robolearn/episode`` ``std_msgs/msg/String`` JSON (index, length, metadata) at each episode's
  first step; ``/robolearn/store`` ``std_msgs/msg/String`` JSON ``{"attrs": store attributes,
  "dtypes": {low-dimensional key: dtype}}``, once.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.errors import AlreadyExistsError, NotFoundError
from robolearn.store.codecs import DEPTH_SCALE_PER_M, kind_of, prepare_depth
from robolearn.store.store import DemoStore

T0_NS = 1_000_000_000
STORE_TOPIC, EPISODE_TOPIC = "/robolearn/store", "/robolearn/episode"
MULTI_ARRAY = {"f": ("std_msgs/msg/Float32MultiArray", np.float32), "i": ("std_msgs/msg/Int64MultiArray", np.int64),
               "u": ("std_msgs/msg/Int64MultiArray", np.int64), "b": ("std_msgs/msg/UInt8MultiArray", np.uint8)}


def _typestore() -> Any:
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY)


def topic_of(key: str) -> str:
    kind = kind_of(key)
    if kind == "rgb":
        return f"/{key}/compressed"
    if kind == "depth":
        return f"/{key}"
    return f"/robolearn/{key}"


def _header(ts: Any, stamp_ns: int, frame_id: str) -> Any:
    time = ts.types["builtin_interfaces/msg/Time"](sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000))
    return ts.types["std_msgs/msg/Header"](stamp=time, frame_id=frame_id)


def _multi_array(ts: Any, msgtype: str, values: np.ndarray, dtype: type) -> Any:
    dims = [ts.types["std_msgs/msg/MultiArrayDimension"](label=f"dim{i}", size=int(size),
                                                         stride=int(np.prod(values.shape[i:], dtype=np.int64)))
            for i, size in enumerate(values.shape)]
    layout = ts.types["std_msgs/msg/MultiArrayLayout"](dim=dims, data_offset=0)
    return ts.types[msgtype](layout=layout, data=np.ascontiguousarray(values, dtype=dtype).reshape(-1))


def export_mcap(store: DemoStore, path: str | Path, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Write every episode of ``store`` to a new rosbag2 directory ``path`` (MCAP storage)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    path = Path(path)
    if path.exists():
        raise AlreadyExistsError(f"{path} exists; rosbag2 writes a new directory")
    if not store.n_episodes:
        raise ValueError(f"{store.path} has no episodes to export")
    ts = _typestore()
    period_ns = int(round(1e9 / float((store.cell_config or {}).get("control_hz", 10.0))))
    n = store.n_steps
    lowdim = {k: store.array(k)[:n] for k in store.keys if kind_of(k) == "lowdim"}
    string = ts.types["std_msgs/msg/String"]
    stamps = lowdim.get("stamp_ns", np.arange(n, dtype=np.int64) * period_ns)
    messages = 0
    with Writer(path, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = {STORE_TOPIC: writer.add_connection(STORE_TOPIC, "std_msgs/msg/String", typestore=ts),
                       EPISODE_TOPIC: writer.add_connection(EPISODE_TOPIC, "std_msgs/msg/String", typestore=ts)}
        for key in store.keys:
            kind = kind_of(key)
            msgtype = {"rgb": "sensor_msgs/msg/CompressedImage", "depth": "sensor_msgs/msg/Image"}.get(kind) \
                or MULTI_ARRAY[lowdim[key].dtype.kind][0]
            connections[key] = writer.add_connection(topic_of(key), msgtype, typestore=ts)
        joints = "state" in lowdim and lowdim["state"].shape[1:] == (15,)
        if joints:
            connections["/joint_states"] = writer.add_connection("/joint_states", "sensor_msgs/msg/JointState", typestore=ts)

        def write(name: str, msg: Any, msgtype: str, t_ns: int) -> None:
            nonlocal messages
            writer.write(connections[name], t_ns, ts.serialize_cdr(msg, msgtype))
            messages += 1

        header = {"attrs": store.attrs, "dtypes": {k: str(v.dtype) for k, v in lowdim.items()}}
        write(STORE_TOPIC, string(data=json.dumps(header)), "std_msgs/msg/String", T0_NS)
        starts = store.episode_starts
        for episode in range(store.n_episodes):
            span = store.episode_slice(episode)
            info = {"index": episode, "length": span.stop - span.start, "meta": store.episode_meta(episode)}
            write(EPISODE_TOPIC, string(data=json.dumps(info)), "std_msgs/msg/String", T0_NS + int(starts[episode]) * period_ns)
            for t in range(span.start, span.stop):
                t_ns, stamp_ns = T0_NS + t * period_ns, int(stamps[t])
                for key, connection in connections.items():
                    if key in (STORE_TOPIC, EPISODE_TOPIC, "/joint_states"):
                        continue
                    kind = kind_of(key)
                    if kind == "rgb":
                        payload = store.encoded_frame(key, t)
                        msg = ts.types["sensor_msgs/msg/CompressedImage"](
                            header=_header(ts, stamp_ns, key[4:]), format="jpeg", data=np.frombuffer(payload, np.uint8))
                    elif kind == "depth":
                        depth_mm = np.round(prepare_depth(store.array(key)[t]) * DEPTH_SCALE_PER_M).astype(np.uint16)
                        h, w = depth_mm.shape
                        msg = ts.types["sensor_msgs/msg/Image"](
                            header=_header(ts, stamp_ns, key[6:]), height=h, width=w, encoding="16UC1", is_bigendian=0,
                            step=w * 2, data=depth_mm.reshape(-1).view(np.uint8))
                    else:
                        msgtype, dtype = MULTI_ARRAY[lowdim[key].dtype.kind]
                        msg = _multi_array(ts, msgtype, np.asarray(lowdim[key][t]), dtype)
                    write(key, msg, connection.msgtype, t_ns)
                if joints:
                    state = lowdim["state"][t]
                    msg = ts.types["sensor_msgs/msg/JointState"](
                        header=_header(ts, stamp_ns, ""), name=[f"joint{i + 1}" for i in range(7)] + ["gripper_width"],
                        position=np.concatenate([state[:7], state[14:15]]).astype(np.float64),
                        velocity=np.zeros(0), effort=np.zeros(0))
                    write("/joint_states", msg, "sensor_msgs/msg/JointState", t_ns)
            if progress:
                progress(episode + 1)
    return {"path": str(path), "episodes": store.n_episodes, "steps": n, "messages": messages}


def import_mcap(path: str | Path, destination: str | Path, progress: Callable[[int], None] | None = None) -> DemoStore:
    """A new store at ``destination`` from a bag written by ``export_mcap``, read one episode at a
    time (the bag never sits in memory as a whole)."""
    from rosbags.rosbag2 import Reader, ReaderError

    path = Path(path)
    if not (path / "metadata.yaml").exists():
        raise NotFoundError(f"{path} is not a rosbag2 bag directory (no metadata.yaml); pass the directory "
                                "`robolearn data export --format mcap` wrote")
    try:
        with Reader(path) as reader:
            return _import_bag(reader, path, Path(destination), progress)
    except ReaderError as err:
        raise ValueError(f"{path}: cannot read the bag: {err}") from err


def _import_bag(reader: Any, path: Path, destination: Path, progress: Callable[[int], None] | None) -> DemoStore:
    ts = _typestore()
    by_topic = {c.topic: c for c in reader.connections}
    if STORE_TOPIC not in by_topic or EPISODE_TOPIC not in by_topic:
        raise ValueError(f"{path} was not written by `robolearn data export` (no {STORE_TOPIC} / {EPISODE_TOPIC} topics)")
    header: dict[str, Any] = {}
    episodes: list[dict[str, Any]] = []
    for connection, t_ns, raw in reader.messages([by_topic[STORE_TOPIC], by_topic[EPISODE_TOPIC]]):
        msg = ts.deserialize_cdr(raw, connection.msgtype)
        if connection.topic == STORE_TOPIC:
            header = json.loads(msg.data)
        else:
            episodes.append({**json.loads(msg.data), "t_ns": t_ns})
    episodes.sort(key=lambda e: e["t_ns"])
    data_connections = [c for c in reader.connections if _key_of(c.topic)]
    attrs, dtypes = header.get("attrs", {}), header.get("dtypes", {})
    out = DemoStore.create(destination, cell_config=attrs.get("cell_config"), cameras=attrs.get("cameras"),
                           **({"jpeg_quality": attrs["jpeg_quality"]} if "jpeg_quality" in attrs else {}))
    out.inherit_attrs(attrs)
    for count, episode in enumerate(episodes):
        stop = episodes[count + 1]["t_ns"] if count + 1 < len(episodes) else None
        steps: dict[str, dict[int, Any]] = defaultdict(dict)
        for connection, t_ns, raw in reader.messages(data_connections, start=episode["t_ns"], stop=stop):
            steps[_key_of(connection.topic)][t_ns] = ts.deserialize_cdr(raw, connection.msgtype)
        window = sorted(set().union(*(messages.keys() for messages in steps.values())))
        if len(window) != episode["length"]:
            raise ValueError(f"{path}: episode {episode['index']} has {len(window)} steps in the bag, its metadata "
                             f"says {episode['length']}; the bag is truncated or was not written by robolearn")
        data, encoded = {}, {}
        for key, messages in steps.items():
            missing = [t for t in window if t not in messages]
            if missing:
                raise ValueError(f"{path}: episode {episode['index']} lacks {len(missing)} {key} messages")
            if kind_of(key) == "rgb":
                encoded[key] = [bytes(messages[t].data) for t in window]
            elif kind_of(key) == "depth":
                data[key] = np.stack([_depth_m(messages[t]) for t in window])
            else:
                values = np.stack([_array(messages[t]) for t in window])
                data[key] = values.astype(dtypes[key]) if key in dtypes else values
        _append_with_jpeg(out, data, encoded, episode["meta"])
        if progress:
            progress(count + 1)
    return out


def _key_of(topic: str) -> str | None:
    if topic.startswith("/robolearn/") and topic not in (STORE_TOPIC, EPISODE_TOPIC):
        return topic[len("/robolearn/"):]
    if topic.startswith("/rgb_") and topic.endswith("/compressed"):
        return topic[1: -len("/compressed")]
    if topic.startswith("/depth_"):
        return topic[1:]
    return None


def _array(msg: Any) -> np.ndarray:
    shape = [int(d.size) for d in msg.layout.dim]
    values = np.asarray(msg.data)
    if type(msg).__name__ == "std_msgs__msg__UInt8MultiArray" or values.dtype == np.uint8:
        values = values.astype(bool)
    return values.reshape(shape)


def _depth_m(msg: Any) -> np.ndarray:
    if msg.encoding != "16UC1":
        raise ValueError(f"depth images must be 16UC1 millimetres, got {msg.encoding}")
    return np.asarray(msg.data).view(np.uint16).reshape(msg.height, msg.width).astype(np.float32) / DEPTH_SCALE_PER_M


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
