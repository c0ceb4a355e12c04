"""Import any ROS 2 recording (a rosbag2 directory, MCAP or sqlite3, or a bare ``.mcap``/``.db3``)
into a new store with a topic map (``robolearn.ros.topic_map``), read by ``rosbags``.

Each episode (split as the map says: a marker topic, a time gap, or one bag per episode) is
resampled onto the map's control rate: at every tick each key takes the latest message of its
topics at or before the tick. A topic whose latest message is older than ``staleness_s`` (or that
has none yet) is stale there; the step is dropped (``on_stale: drop``; the episode's metadata lists
the gap, as the live recorder's does, and leading or trailing drops just trim it) or kept and
flagged in the ``stale`` key (``flag``; a topic with no message yet still drops the step). Every
step gets ``stamp_ns`` (the tick), and ``success``, ``terminated``, ``reward`` (1 at the last step
of a successful episode) and ``intervention`` (false), as the recorder writes them. The bag is
read one episode at a time, and within it in log-time order with a few messages per topic held.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.config import ConfigError
from robolearn.errors import DataError, NotFoundError
from robolearn.ros import messages
from robolearn.ros.bag_store import depth_m
from robolearn.ros.topic_map import Part, TopicMap, load_topic_map
from robolearn.store.store import DemoStore, cameras_from_cell

READ_SLACK_NS = 1_000_000_000
"""How far before an episode's first tick and after its last one messages are read (header stamps
lead log times by the transport's latency)."""
EPISODE = messages.msg_class(messages.EPISODE_CONTROL)
VECTOR_TYPES = {
    "sensor_msgs/msg/JointState": "JointState", "geometry_msgs/msg/PoseStamped": "PoseStamped",
    "geometry_msgs/msg/Pose": "Pose", "geometry_msgs/msg/WrenchStamped": "WrenchStamped",
    "geometry_msgs/msg/Wrench": "Wrench", "geometry_msgs/msg/TwistStamped": "TwistStamped",
    "geometry_msgs/msg/Twist": "Twist", "std_msgs/msg/Float32": "Float32", "std_msgs/msg/Float64": "Float64",
    "std_msgs/msg/Bool": "Bool", "std_msgs/msg/Int32": "Int32", "std_msgs/msg/Int64": "Int64",
    "std_msgs/msg/Float32MultiArray": "Float32MultiArray", "std_msgs/msg/Float64MultiArray": "Float64MultiArray",
    messages.TELEOP_COMMAND: "TeleopCommand", messages.OBJECT_STATE: "ObjectState"}
RGB_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")


def _xyz(v: Any) -> list[float]:
    return [v.x, v.y, v.z]


def _vector(msg: Any, msgtype: str, part: Part) -> np.ndarray:
    """The values of one vector part, before scale and offset."""
    if msgtype == "sensor_msgs/msg/JointState":
        values = np.asarray(getattr(msg, part.field), np.float64)
        if not part.names:
            return values
        index = {name: i for i, name in enumerate(msg.name)}
        return values[[index[n] for n in part.names]]
    inner = getattr(msg, "pose", getattr(msg, "wrench", getattr(msg, "twist", msg)))
    if msgtype.endswith(("PoseStamped", "/Pose")):
        q = inner.orientation
        return np.array([*_xyz(inner.position), q.w, q.x, q.y, q.z])
    if msgtype.endswith(("WrenchStamped", "/Wrench")):
        return np.array([*_xyz(inner.force), *_xyz(inner.torque)])
    if msgtype.endswith(("TwistStamped", "/Twist")):
        return np.array([*_xyz(inner.linear), *_xyz(inner.angular)])
    if msgtype == messages.TELEOP_COMMAND:
        return messages.teleop_command(msg).action().astype(np.float64)
    return np.atleast_1d(np.asarray(msg.data, np.float64))


def _image(msg: Any, msgtype: str, key: str) -> np.ndarray:
    """An ``rgb_*`` ``(H, W, 3) uint8`` or ``depth_*`` ``(H, W) float32`` metres frame."""
    if key.startswith("depth_"):
        return depth_m(msg)
    if msgtype == messages.COMPRESSED_IMAGE:
        return messages.compressed_image_array(msg)
    if msg.encoding not in RGB_ENCODINGS:
        raise DataError(f"an rgb_ image must be one of {', '.join(RGB_ENCODINGS)}, got {msg.encoding!r}")
    channels = {"mono8": 1, "rgb8": 3, "bgr8": 3}.get(msg.encoding, 4)
    pixels = np.asarray(msg.data, np.uint8).reshape(msg.height, msg.step)[:, :msg.width * channels]
    pixels = pixels.reshape(msg.height, msg.width, channels)
    if channels == 1:
        return np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(pixels[..., [2, 1, 0]] if msg.encoding.startswith("bgr") else pixels[..., :3])


@dataclass
class _Topic:
    """One topic of the map during an episode: its queued ``(time, message)`` and the latest at or
    before the current tick."""

    name: str
    msgtype: str
    queue: deque = field(default_factory=deque)
    latest: tuple[int, Any] | None = None
    received: int = 0
    used: int = 0
    stale: int = 0

    def advance(self, tick_ns: int) -> None:
        while self.queue and self.queue[0][0] <= tick_ns:
            self.latest = self.queue.popleft()


class _Bag:
    """One opened recording: its connections by topic, and its messages' times."""

    def __init__(self, path: Path, reader: Any, topic_map: TopicMap, map_path: str):
        self.path, self.reader, self.map = path, reader, topic_map
        self.connections = {c.topic: c for c in reader.connections}
        for topic, where in topic_map.topics().items():
            if topic not in self.connections:
                have = ", ".join(sorted(self.connections)) or "none"
                raise ConfigError(map_path, where, f"topic {topic} is not in {path} (its topics: {have}); fix the "
                                  "topic name in the map, or record that topic")
        for key, parts in topic_map.streams.items():
            for i, part in enumerate(parts):
                _check_type(self.connections[part.topic].msgtype, key, part.topic, map_path, f"streams.{key}.{i}")

    def time(self, msg: Any, log_ns: int) -> int:
        if self.map.stamps == "header" and hasattr(msg, "header"):
            return messages.stamp_ns(msg)
        return log_ns

    def read(self, topics: list[str], start: int | None = None, stop: int | None = None) -> Iterator[tuple[str, int, bytes]]:
        """``(topic, log_ns, raw CDR)`` in log-time order."""
        for connection, log_ns, raw in self.reader.messages([self.connections[t] for t in topics], start=start, stop=stop):
            yield connection.topic, log_ns, raw

    def decoded(self, topic: str) -> Iterator[tuple[int, Any]]:
        """``(time, message)`` of every message on ``topic`` (small topics: markers, camera info)."""
        msgtype = self.connections[topic].msgtype
        for _, log_ns, raw in self.read([topic]):
            msg = messages.deserialize(raw, msgtype)
            yield self.time(msg, log_ns), msg


def _check_type(msgtype: str, key: str, topic: str, map_path: str, where: str) -> None:
    if key.startswith("rgb_"):
        ok = msgtype in (messages.IMAGE, messages.COMPRESSED_IMAGE)
        want = "sensor_msgs/Image or CompressedImage"
    elif key.startswith("depth_"):
        ok, want = msgtype == messages.IMAGE, "sensor_msgs/Image (16UC1 or 32FC1)"
    else:
        ok, want = msgtype in VECTOR_TYPES, ", ".join(sorted(set(VECTOR_TYPES.values())))
    if not ok:
        raise ConfigError(map_path, where, f"{topic} is {msgtype}, but {key} takes {want}; map it to a key of its kind")


def episode_windows(bags: list[_Bag], topic_map: TopicMap) -> list[tuple[int, int | None, int | None]]:
    """``(bag index, first tick ns, last tick ns)`` of every episode (None: from the streams)."""
    split = topic_map.episodes
    if split.by == "bag":
        return [(i, None, None) for i in range(len(bags))]
    windows: list[tuple[int, int | None, int | None]] = []
    for i, bag in enumerate(bags):
        if split.by == "gap":
            first = next(iter(topic_map.streams.values()))[0].topic
            times = sorted(log_ns for _, log_ns, _ in bag.read([first]))
            cuts = [j + 1 for j, gap in enumerate(np.diff(times)) if gap > split.gap_s * 1e9]
            windows += [(i, times[a], times[b - 1]) for a, b in zip([0, *cuts], [*cuts, len(times)]) if b > a]
            continue
        start = None
        for t, msg in bag.decoded(split.topic):
            command = _marker(msg, split)
            if command == "start":
                start = t
            elif command == "stop" and start is not None:
                windows.append((i, start, t))
                start = None
            elif command == "discard":
                start = None
    if not windows:
        raise DataError(f"no episodes found: the {split.by} split ({split.topic or f'gaps of {split.gap_s} s'}) "
                         "marks none; check episodes.topic and its start/stop values in the map")
    return windows


def _marker(msg: Any, split: Any) -> str | None:
    """``start``, ``stop``, ``discard`` or None for one marker message."""
    msgtype = type(msg).__msgtype__
    if msgtype == "std_msgs/msg/Bool":
        return "start" if msg.data else "stop"
    if msgtype == "std_msgs/msg/String":
        text = msg.data.strip().lower()
        starts, stops = {v.lower() for v in split.start_values}, {v.lower() for v in split.stop_values}
        return "start" if text in starts else "stop" if text in stops else None
    if msgtype == messages.EPISODE_CONTROL:
        return {EPISODE.START: "start", EPISODE.STOP: "stop", EPISODE.DISCARD: "discard"}.get(msg.command)
    raise DataError(f"episode marker {split.topic} is {msgtype}; use std_msgs/Bool, std_msgs/String or "
                     "robolearn_msgs/EpisodeControl")


def _successes(bag: _Bag, topic_map: TopicMap) -> list[int]:
    """Times the recording marks success (the map's success topic, or EpisodeControl SUCCESS)."""
    out = []
    if topic_map.success is not None:
        values = {v.lower() for v in topic_map.success.values}
        for t, msg in bag.decoded(topic_map.success.topic):
            if (msg.data if isinstance(msg.data, bool) else str(msg.data).strip().lower() in values):
                out.append(t)
    if topic_map.episodes.by == "marker" and bag.connections[topic_map.episodes.topic].msgtype == messages.EPISODE_CONTROL:
        out += [t for t, msg in bag.decoded(topic_map.episodes.topic) if msg.command == EPISODE.SUCCESS]
    return sorted(out)


def _calibration(bags: list[_Bag], topic_map: TopicMap, cell: dict[str, Any] | None) -> dict[str, Any] | None:
    """Camera calibration: the cell's, with each mapped camera's first ``CameraInfo``."""
    cameras = cameras_from_cell(cell) or {}
    for name, topic in topic_map.cameras.items():
        for _, msg in bags[0].decoded(topic):
            k = np.asarray(msg.k, np.float64).reshape(3, 3)
            cameras.setdefault(name, {})["intrinsics"] = {"width_px": int(msg.width), "height_px": int(msg.height),
                                                          "fx_px": k[0, 0], "fy_px": k[1, 1], "cx_px": k[0, 2],
                                                          "cy_px": k[1, 2]}
            cameras[name]["frame_id"] = msg.header.frame_id
            break
    return cameras or None


class _Episode:
    """Resamples one episode onto the control ticks and writes it (see the module docstring)."""

    def __init__(self, bag: _Bag, topic_map: TopicMap, map_path: str):
        self.bag, self.map, self.map_path = bag, topic_map, map_path
        names = sorted({part.topic for parts in topic_map.streams.values() for part in parts})
        self.topics = {name: _Topic(name, bag.connections[name].msgtype) for name in names}
        self.steps: list[dict[str, Any]] = []
        self.gaps: list[list[int]] = []
        self.dropped = 0
        self.pending_drops = 0
        self.stalest: tuple[float, str] = (0.0, "")

    def run(self, first_ns: int | None, last_ns: int | None) -> None:
        staleness_ns = int(self.map.staleness_s * 1e9)
        start = None if first_ns is None else first_ns - staleness_ns - READ_SLACK_NS
        stop = None if last_ns is None else last_ns + READ_SLACK_NS + 1
        ticks: Iterator[int] | None = None if first_ns is None else self._ticks(first_ns, last_ns)
        tick = next(ticks) if ticks is not None else None
        for topic, log_ns, raw in self.bag.read(list(self.topics), start, stop):
            state = self.topics[topic]
            msg = messages.deserialize(raw, state.msgtype)
            state.queue.append((self.bag.time(msg, log_ns), msg))
            state.received += 1
            if ticks is None and all(t.queue or t.latest for t in self.topics.values()):
                ticks = self._ticks(max(t.queue[0][0] for t in self.topics.values()), last_ns)
                tick = next(ticks, None)
            # A tick is decided once every topic has a message after it, or the log is well past it
            # (a topic that fell silent must not hold every other topic's messages in memory).
            while tick is not None and (all(t.queue and t.queue[-1][0] > tick for t in self.topics.values())
                                        or log_ns - tick > READ_SLACK_NS):
                self._step(tick)
                tick = next(ticks, None)
        while ticks is not None and tick is not None:
            self._step(tick)
            tick = next(ticks, None)

    def _ticks(self, first_ns: int, last_ns: int | None) -> Iterator[int]:
        tick = first_ns
        while last_ns is None or tick <= last_ns:
            if last_ns is None and all(not t.queue and t.latest is not None for t in self.topics.values()) \
                    and tick > max(t.latest[0] for t in self.topics.values()):
                return
            yield tick
            tick += self.map.period_ns

    def _step(self, tick_ns: int) -> None:
        staleness_ns = self.map.staleness_s * 1e9
        stale = False
        for state in self.topics.values():
            state.advance(tick_ns)
            age_ns = float("inf") if state.latest is None else tick_ns - state.latest[0]
            if age_ns > staleness_ns:
                state.stale += 1
                stale = True
                self.stalest = max(self.stalest, (age_ns / 1e9, state.name))
        missing = any(state.latest is None for state in self.topics.values())
        if missing or (stale and self.map.on_stale == "drop"):
            if self.steps:
                self.pending_drops += 1
            return
        if self.pending_drops:
            self.gaps.append([len(self.steps), self.pending_drops])
            self.dropped += self.pending_drops
            self.pending_drops = 0
        step = {key: self._value(key, parts) for key, parts in self.map.streams.items()}
        step["stamp_ns"] = np.int64(tick_ns)
        if self.map.on_stale == "flag":
            step["stale"] = np.bool_(stale)
        for state in self.topics.values():
            state.used += 1
        self.steps.append(step)

    def _value(self, key: str, parts: list[Part]) -> np.ndarray:
        if key.startswith(("rgb_", "depth_")):
            state = self.topics[parts[0].topic]
            return _image(state.latest[1], state.msgtype, key)
        values = []
        for i, part in enumerate(parts):
            state = self.topics[part.topic]
            try:
                values.append(_vector(state.latest[1], state.msgtype, part) * part.scale + part.offset)
            except KeyError as err:
                raise ConfigError(self.map_path, f"streams.{key}.{i}.names",
                                  f"JointState on {part.topic} has no joint {err.args[0]!r}; it has "
                                  f"{list(state.latest[1].name)}") from err
        return np.concatenate(values).astype(np.float32)


def import_rosbag2(bags: list[str | Path], topic_map: str | Path | TopicMap, destination: str | Path,
                   progress: Callable[[int], None] | None = None) -> DemoStore:
    """A new store at ``destination`` from the recordings ``bags`` with ``topic_map`` (a path or a
    ``TopicMap``); see the module docstring. progress: called with the episodes done so far."""
    from rosbags.rosbag2 import Reader, ReaderError

    map_path = str(topic_map) if not isinstance(topic_map, TopicMap) else "<topic map>"
    topic_map = topic_map if isinstance(topic_map, TopicMap) else load_topic_map(topic_map)
    paths = [Path(p) for p in bags]
    for path in paths:
        if not path.exists():
            raise NotFoundError(f"{path} does not exist")
        if path.is_dir() and not (path / "metadata.yaml").exists():
            raise NotFoundError(f"{path} is not a rosbag2 bag directory (no metadata.yaml); pass the bag directory "
                                    "or its .mcap / .db3 file")
    cell = None
    if topic_map.cell is not None:
        from robolearn.cell import load_cell
        from robolearn.config import to_dict

        cell = to_dict(load_cell(topic_map.cell))
    with contextlib.ExitStack() as stack:
        try:
            opened = [_Bag(p, stack.enter_context(Reader(p)), topic_map, map_path) for p in paths]
        except ReaderError as err:
            raise DataError(f"cannot read the recording: {err}") from err
        out = DemoStore.create(destination, cell_config=cell, cameras=_calibration(opened, topic_map, cell))
        successes = {i: _successes(bag, topic_map) for i, bag in enumerate(opened)}
        marked = topic_map.success is not None or (
            topic_map.episodes.by == "marker"
            and opened[0].connections[topic_map.episodes.topic].msgtype == messages.EPISODE_CONTROL)
        stalest: tuple[float, str] = (0.0, "")
        for done, (i, first_ns, last_ns) in enumerate(episode_windows(opened, topic_map)):
            episode = _Episode(opened[i], topic_map, map_path)
            episode.run(first_ns, last_ns)
            stalest = max(stalest, episode.stalest)
            if episode.steps:
                low = -np.inf if first_ns is None else first_ns - topic_map.staleness_s * 1e9
                high = np.inf if last_ns is None else last_ns + topic_map.period_ns
                success = any(low <= t <= high for t in successes[i])
                _commit(out, episode, topic_map, success if marked else None, opened[i].path)
            if progress:
                progress(done + 1)
    if not out.n_episodes:
        raise DataError(f"no control tick had every stream within staleness_s = {topic_map.staleness_s} s; the stalest "
                         f"was {stalest[1]} ({stalest[0]:.2f} s old): check its rate, or raise staleness_s in the map")
    return out


def _commit(store: DemoStore, episode: _Episode, topic_map: TopicMap, success: bool | None, path: Path) -> int:
    """Write the episode's steps; success None: the recording has no success marks."""
    steps = episode.steps
    first, last = int(steps[0]["stamp_ns"]), int(steps[-1]["stamp_ns"])
    writer = store.begin_episode()
    try:
        for t, step in enumerate(steps):
            end = bool(success) and t == len(steps) - 1
            writer.add({**step, "success": np.bool_(end), "terminated": np.bool_(end), "reward": np.float32(end),
                        "intervention": np.bool_(False)})
        meta = {"task": topic_map.task, "source": topic_map.source, "operator": topic_map.operator,
                "success": bool(success),
                "duration_s": (last - first) / 1e9, "steps_dropped": episode.dropped, "gaps": episode.gaps,
                "frames": {s.name: {"received": s.received, "used": s.used, "stale": s.stale}
                           for s in episode.topics.values()},
                "imported_from": str(path)}
        if success is None:
            meta["success_marked"] = False
        return writer.commit(meta)
    except BaseException:
        writer.discard()
        raise
