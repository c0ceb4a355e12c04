"""The map that says which topics of a ROS 2 recording fill which store keys
(``robolearn data import --format rosbag2 BAG --map MAP.yaml``); docs/store.md shows one, and
``configs/maps/franka_realsense.yaml`` is a documented example.

A store key is filled from one topic or the concatenation of several (``parts``):

- ``rgb_<cam>``: ``sensor_msgs/Image`` (rgb8, bgr8, rgba8, bgra8, mono8) or ``CompressedImage``
  (JPEG, PNG);
- ``depth_<cam>``: ``sensor_msgs/Image`` (16UC1 millimetres, 32FC1 metres);
- any other key, a float32 vector: ``JointState`` (``field`` of the joints ``names``, in that
  order; default every joint in message order), ``PoseStamped``/``Pose`` (x y z qw qx qy qz),
  ``WrenchStamped``/``Wrench`` (force xyz, torque xyz), ``TwistStamped``/``Twist`` (linear xyz,
  angular xyz), ``std_msgs`` ``Float32``/``Float64``/``Bool``/``Int*`` (one value),
  ``Float32MultiArray``/``Float64MultiArray``, robolearn's ``TeleopCommand`` (its 7-d action) and
  ``ObjectState``;
  each part's values become ``value * scale + offset``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from robolearn.config import ConfigError, from_dict, read_yaml

SOURCES = ("teleop", "expert", "policy", "online")


@dataclass
class Part:
    """One topic's contribution to a store key. names / field: with ``JointState``, which joints
    (in this order) and which of position, velocity, effort. scale, offset: ``value * scale + offset``
    (e.g. ``scale: 2, offset: -1`` turns a 0..1 gripper closure into robolearn's −1..1 action)."""

    topic: str
    names: tuple[str, ...] = ()
    field: Literal["position", "velocity", "effort"] = "position"
    scale: float = 1.0
    offset: float = 0.0


@dataclass
class EpisodeSplit:
    """How the recording splits into episodes.

    by: ``marker`` (a topic: ``std_msgs/Bool`` true starts and false ends an episode,
    ``std_msgs/String`` one of ``start_values`` / ``stop_values``, or robolearn's
    ``EpisodeControl`` START / STOP / DISCARD), ``gap`` (a new episode where the first stream of
    ``streams`` logs no message for ``gap_s`` seconds; an episode spans that stream's log times), or
    ``bag`` (each bag given is one episode, from the first time every stream has a message)."""

    by: Literal["marker", "gap", "bag"] = "bag"
    topic: str = ""
    start_values: tuple[str, ...] = ("start",)
    stop_values: tuple[str, ...] = ("stop", "end")
    gap_s: float = 1.0

    def __post_init__(self) -> None:
        if self.by == "marker" and not self.topic:
            raise ValueError("episodes.by: marker needs episodes.topic, the marker topic")
        if self.gap_s <= 0:
            raise ValueError(f"episodes.gap_s must be positive, got {self.gap_s}")


@dataclass
class SuccessMarker:
    """A topic that marks an episode successful: ``std_msgs/Bool`` true, or ``std_msgs/String``
    equal (ignoring case) to one of ``values``, at any time within the episode."""

    topic: str
    values: tuple[str, ...] = ("success", "succeeded", "true")


@dataclass
class TopicMap:
    """The whole map.

    control_hz: the store's control rate; every stream is resampled onto its ticks, taking the
    latest message at or before each tick. staleness_s: a stream whose latest message is older than
    this at a tick is stale there; on_stale: ``drop`` the step (the episode records a gap, as the
    live recorder does) or ``flag`` it (kept, with ``stale: true`` in the per-step ``stale`` key).
    stamps: a message's time is its header stamp (``header``; messages without one use their log
    time) or its log time (``log``). streams: store key → its parts (one part may be written as a
    mapping). cameras: camera name → ``CameraInfo`` topic, for the store's camera calibration.
    cell: a cell YAML whose config the store keeps (its robot, cameras). success: see
    ``SuccessMarker`` (without it, episodes import with ``success_marked: false``). task, source,
    operator: the episodes' metadata."""

    control_hz: float
    streams: dict[str, list[Part]]
    episodes: EpisodeSplit = field(default_factory=EpisodeSplit)
    staleness_s: float = 0.2
    on_stale: Literal["drop", "flag"] = "drop"
    stamps: Literal["header", "log"] = "header"
    cameras: dict[str, str] = field(default_factory=dict)
    cell: Path | None = None
    success: SuccessMarker | None = None
    task: str = ""
    source: str = "teleop"
    operator: str = ""

    def __post_init__(self) -> None:
        if self.control_hz <= 0:
            raise ValueError(f"control_hz must be positive, got {self.control_hz}")
        if self.staleness_s <= 0:
            raise ValueError(f"staleness_s must be positive, got {self.staleness_s}")
        if not self.streams:
            raise ValueError("streams is empty: name at least one store key and its topic")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        for key, parts in self.streams.items():
            if key.startswith(("rgb_", "depth_")) and len(parts) != 1:
                raise ValueError(f"streams.{key}: an image key takes one topic, got {len(parts)} parts")
            if not parts:
                raise ValueError(f"streams.{key}: no parts; give it a topic")
            if key in ("stamp_ns", "success", "terminated", "reward", "intervention", "stale"):
                raise ValueError(f"streams.{key}: the import writes {key} itself; map this topic to another key")

    @property
    def period_ns(self) -> int:
        return int(round(1e9 / self.control_hz))

    def topics(self) -> dict[str, str]:
        """Every topic the map reads → where in the map it is named."""
        out = {part.topic: f"streams.{key}.{i}" for key, parts in self.streams.items() for i, part in enumerate(parts)}
        out.update({topic: f"cameras.{name}" for name, topic in self.cameras.items()})
        if self.episodes.by == "marker":
            out[self.episodes.topic] = "episodes.topic"
        if self.success is not None:
            out[self.success.topic] = "success.topic"
        return out


def load_topic_map(path: str | Path) -> TopicMap:
    """Read a map YAML; a single part may be written as a mapping instead of a one-item list."""
    path = Path(path)
    if not path.exists():
        raise ConfigError("--map", str(path), "no such file; write a topic map (see configs/maps/franka_realsense.yaml)")
    data = read_yaml(path)
    if isinstance(data, dict) and isinstance(data.get("streams"), dict):
        data["streams"] = {k: [v] if isinstance(v, dict) else v for k, v in data["streams"].items()}
    topic_map = from_dict(TopicMap, data, source=str(path))
    if topic_map.cell is not None and not topic_map.cell.is_absolute():
        topic_map.cell = (path.parent / topic_map.cell) if (path.parent / topic_map.cell).exists() else topic_map.cell
    return topic_map
