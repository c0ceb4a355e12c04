"""Real-is-Sim mirroring: the twin follows the real arm's joint states and reports how well it can.

The twin's arm tracks the stream of joint samples with a computed-torque joint controller
(``robolearn.sim.joint_tracking``): when a
sample arrives, the twin runs physics over the interval since the previous one along the straight
line between them (so it trails the stream by one sample period), no faster than the cell's
``max_joint_vel_rad_s`` and within the arm's torque limits, moving under physics and pushing the
twin's objects as the real arm does. At every sample the tracking error is measured;
per joint we report its RMS and 99th percentile, the lag (the time shift that best aligns the twin's
trajectory with the real one) and divergence events: a joint off by more than
``divergence_threshold_rad`` for at least ``divergence_min_ms`` (the twin cannot follow: a collision
that does not exist on the real cell, a model error, a jump in the stream). After an event the twin
is re-synced to the real joints. A sample whose stamp does not move forward (a duplicate, or one
delivered out of order) is skipped and counted (``skipped_samples``). Object poses come from a configured source: ``fixed`` (the cell's
poses, or given ones), ``replayed`` (recorded ``object_state``) or ``fiducial`` (ArUco markers seen
by one of the cell's cameras).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robolearn.config import ChoiceBase, ChoiceRegistry
from robolearn.errors import DataError, UsageError


@dataclass
class JointSample:
    """One joint-state reading of the real arm: ``q_rad`` ``(n_joints,)``, gripper opening, stamp."""

    stamp_ns: int
    q_rad: np.ndarray
    gripper_width_m: float = float("nan")
    object_state: np.ndarray | None = None


@dataclass
class ObjectSourceConfig(ChoiceBase):
    """Where the twin's object poses come from."""

    registry = ChoiceRegistry("object source")

    def create(self, twin: Any, cameras: dict[str, Any] | None = None) -> ObjectSource:
        raise NotImplementedError


class ObjectSource:
    """Sets the twin's object poses for a sample (``update``); ``start`` once before the first."""

    def start(self, twin: Any) -> None:
        """Nothing to place."""

    def update(self, twin: Any, sample: JointSample) -> None:
        """Nothing to update."""


@ObjectSourceConfig.register("fixed")
@dataclass
class FixedObjectsConfig(ObjectSourceConfig):
    """Objects stay where the cell config puts them, or at ``poses``: name → ``[x, y, z, qw, qx, qy, qz]``."""

    poses: dict[str, list[float]] = field(default_factory=dict)

    def create(self, twin: Any, cameras: dict[str, Any] | None = None) -> ObjectSource:
        return FixedObjects(self.poses)


class FixedObjects(ObjectSource):
    def __init__(self, poses: dict[str, list[float]]):
        self.poses = poses

    def start(self, twin: Any) -> None:
        for name, pose in self.poses.items():
            twin.set_object_pose(name, np.asarray(pose[:3]), np.asarray(pose[3:7]))


@ObjectSourceConfig.register("replayed")
@dataclass
class ReplayedObjectsConfig(ObjectSourceConfig):
    """Object poses from the recorded ``object_state`` (position xyz then quaternion wxyz of ``object``)
    of each sample, as stored by the twin's tasks."""

    object: str = "cube"

    def create(self, twin: Any, cameras: dict[str, Any] | None = None) -> ObjectSource:
        return ReplayedObjects(self.object)


class ReplayedObjects(ObjectSource):
    def __init__(self, name: str):
        self.name = name

    def update(self, twin: Any, sample: JointSample) -> None:
        if sample.object_state is None:
            raise DataError("the replayed object source needs samples with object_state (record it, or use fixed)")
        twin.set_object_pose(self.name, sample.object_state[:3], sample.object_state[3:7])


@ObjectSourceConfig.register("fiducial")
@dataclass
class FiducialObjectsConfig(ObjectSourceConfig):
    """ArUco markers on the objects, seen by ``camera`` (a camera of the cell, whose configured pose is
    its extrinsics). markers: marker id → object name; marker_size_m: printed side length; the marker
    sits ``offset_m`` above the object's centre (on its top face)."""

    camera: str = "front"
    dictionary: str = "DICT_4X4_50"
    markers: dict[int, str] = field(default_factory=lambda: {0: "cube"})
    marker_size_m: float = 0.03
    offset_m: float = 0.02

    def create(self, twin: Any, cameras: dict[str, Any] | None = None) -> ObjectSource:
        if not cameras or self.camera not in cameras:
            raise UsageError(f"the fiducial object source needs camera {self.camera!r} of the cell")
        return FiducialObjects(self, cameras[self.camera])


class FiducialObjects(ObjectSource):
    def __init__(self, config: FiducialObjectsConfig, camera: Any):
        try:
            import cv2
        except ImportError as err:
            raise ImportError("fiducial object poses need OpenCV: pip install robolearn[opencv]") from err
        self.cv2, self.config, self.camera = cv2, config, camera
        dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, config.dictionary))
        parameters = cv2.aruco.DetectorParameters()
        # Sub-pixel corners: a 3 cm marker spans a few dozen pixels, where whole-pixel corners put the
        # marker ~1 % too far away (several millimetres at a metre).
        parameters.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
        self.detector = cv2.aruco.ArucoDetector(dictionary, parameters)

    def detect(self, color: np.ndarray, cam_pos_m: np.ndarray, cam_rot: np.ndarray) -> dict[str, np.ndarray]:
        """Marker centres in the cell frame, name → ``(3,)``, from one ``(H, W, 3)`` RGB image taken by a
        camera whose optical frame (x right, y down, z forward) is at ``cam_pos_m`` with rotation ``cam_rot``."""
        cv2, config = self.cv2, self.config
        corners, ids, _ = self.detector.detectMarkers(cv2.cvtColor(color, cv2.COLOR_RGB2GRAY))
        found: dict[str, np.ndarray] = {}
        if ids is None:
            return found
        half = config.marker_size_m / 2
        square = np.array([[-half, half, 0], [half, half, 0], [half, -half, 0], [-half, -half, 0]], np.float64)
        matrix = self.camera.intrinsics.matrix()
        for marker_corners, marker_id in zip(corners, ids.ravel()):
            name = config.markers.get(int(marker_id))
            if name is None:
                continue
            ok, _, tvec = cv2.solvePnP(square, marker_corners.reshape(4, 2).astype(np.float64), matrix, None,
                                       flags=cv2.SOLVEPNP_IPPE_SQUARE)
            if ok:
                found[name] = cam_pos_m + cam_rot @ tvec.ravel() - np.array([0.0, 0.0, config.offset_m])
        return found

    def update(self, twin: Any, sample: JointSample) -> None:
        pose = twin.cameras[self.config.camera].pose_world() if self.config.camera in twin.cameras else None
        if pose is None:
            raise UsageError(f"camera {self.config.camera!r} is not in the cell, so its extrinsics are unknown")
        for name, pos_m in self.detect(self.camera.read().color, *pose).items():
            _, quat = twin.object_pose(name)
            twin.set_object_pose(name, pos_m, quat)


@dataclass
class MirrorConfig:
    """Tracking and divergence settings.

    bandwidth_hz: natural frequency of the twin's joint tracking loop (critically damped).
    divergence_threshold_rad / divergence_min_ms: an event is a joint error above the threshold for
    at least this long. max_lag_ms: the lag search range. objects: the object pose source.
    """

    bandwidth_hz: float = 15.0
    divergence_threshold_rad: float = 0.05
    divergence_min_ms: float = 100.0
    max_lag_ms: float = 300.0
    objects: ObjectSourceConfig = field(default_factory=FixedObjectsConfig)


@dataclass
class DivergenceEvent:
    start_s: float
    end_s: float | None
    joint: int
    max_error_rad: float


class Mirror:
    """Makes ``twin`` follow a stream of ``JointSample`` (``update`` per sample, ``report`` at the end)."""

    def __init__(self, twin: Any, config: MirrorConfig | None = None, cameras: dict[str, Any] | None = None):
        from robolearn.sim.joint_tracking import JointTracker

        self.twin = twin
        self.config = config or MirrorConfig()
        self.objects = self.config.objects.create(twin, cameras)
        self.tracker = JointTracker(twin, self.config.bandwidth_hz, twin.cell.safety.max_joint_vel_rad_s)
        self.last: JointSample | None = None
        self.t0_ns = 0
        self.errors: list[np.ndarray] = []
        self.sample_times_s: list[float] = []
        self.real_q: list[np.ndarray] = []
        self.twin_log_t: list[float] = []
        self.twin_log_q: list[np.ndarray] = []
        self.events: list[DivergenceEvent] = []
        self.skipped_samples = 0
        self._open: DivergenceEvent | None = None
        self._above_since_s: float | None = None

    def _sync(self, sample: JointSample) -> None:
        self.tracker.sync(sample.q_rad)
        self._gripper(sample)
        self.twin.forward()

    def _gripper(self, sample: JointSample) -> None:
        arm, binding = self.twin.arm, self.twin.binding
        if np.isfinite(sample.gripper_width_m):
            per_finger = sample.gripper_width_m / max(len(arm.finger_qpos_ids), 1)
            low, high = sorted((binding.gripper_closed_ctrl, binding.gripper_open_ctrl))
            self.twin.data.ctrl[arm.gripper_id] = float(np.clip(per_finger, low, high))

    def _follow(self, sample: JointSample) -> None:
        """Run physics from the last sample to ``sample``, tracking the straight line between them."""
        last = self.last
        times_s, joints = self.tracker.follow(last.q_rad, sample.q_rad, (sample.stamp_ns - last.stamp_ns) * 1e-9)
        self.twin_log_t.extend((last.stamp_ns - self.t0_ns) * 1e-9 + times_s)
        self.twin_log_q.extend(joints)
        self.twin.time_ns = sample.stamp_ns - self.t0_ns

    def update(self, sample: JointSample) -> list[DivergenceEvent]:
        """Advance the twin to this sample's time, measure the error, update objects; returns the
        divergence events that started at this sample. A sample not newer than the last one is
        skipped (counted in ``skipped_samples``)."""
        sample = JointSample(int(sample.stamp_ns), np.asarray(sample.q_rad, np.float64), float(sample.gripper_width_m),
                             None if sample.object_state is None else np.asarray(sample.object_state, np.float64))
        if self.last is None:
            self.t0_ns = sample.stamp_ns
            self.twin.time_ns = 0
            self._sync(sample)
            self.objects.start(self.twin)
        else:
            if sample.stamp_ns <= self.last.stamp_ns:
                self.skipped_samples += 1
                return []
            self._follow(sample)
        self.objects.update(self.twin, sample)
        self.twin.forward()
        error = self.tracker.q_rad - sample.q_rad
        t_s = (sample.stamp_ns - self.t0_ns) * 1e-9
        self.errors.append(error)
        self.sample_times_s.append(t_s)
        self.real_q.append(sample.q_rad)
        started = self._check_divergence(t_s, error, sample)
        self._gripper(sample)
        self.last = sample
        return started

    def _check_divergence(self, t_s: float, error: np.ndarray, sample: JointSample) -> list[DivergenceEvent]:
        worst = int(np.argmax(np.abs(error)))
        magnitude = float(np.abs(error[worst]))
        if magnitude <= self.config.divergence_threshold_rad:
            if self._open is not None:
                self._open.end_s = t_s
            self._open, self._above_since_s = None, None
            return []
        if self._open is not None:
            self._open.max_error_rad = max(self._open.max_error_rad, magnitude)
            return []
        if self._above_since_s is None:
            self._above_since_s = t_s
        if (t_s - self._above_since_s) * 1e3 + 1e-9 < self.config.divergence_min_ms:
            return []
        self._open = DivergenceEvent(self._above_since_s, None, worst, magnitude)
        self.events.append(self._open)
        self._sync(sample)
        return [self._open]

    def lag_ms(self) -> float | None:
        """The shift of the twin's trajectory (physics-rate log) that best matches the real samples
        (positive: the twin trails the real arm); None when the arm did not move."""
        if len(self.real_q) < 3 or not self.twin_log_t:
            return None
        real_t, real_q = np.array(self.sample_times_s), np.array(self.real_q)
        if np.ptp(real_q, axis=0).max() < 1e-3:
            return None
        log_t, log_q = np.array(self.twin_log_t), np.array(self.twin_log_q)
        shifts_ms = np.arange(-self.config.max_lag_ms, self.config.max_lag_ms + 1.0, 1.0)
        inside = (real_t > log_t[0] + self.config.max_lag_ms / 1e3) & (real_t < log_t[-1] - self.config.max_lag_ms / 1e3)
        if inside.sum() < 2:
            inside = real_t > log_t[0]
        costs = []
        for shift in shifts_ms:
            twin_at = np.stack([np.interp(real_t[inside] + shift / 1e3, log_t, log_q[:, j]) for j in range(log_q.shape[1])], 1)
            costs.append(float(np.mean((twin_at - real_q[inside]) ** 2)))
        return float(shifts_ms[int(np.argmin(costs))])

    def report(self) -> dict[str, Any]:
        """Per-joint RMS and p99 tracking error (rad), lag (ms), divergence events, skipped samples."""
        if not self.errors:
            raise DataError("no joint samples were mirrored: the replay is empty, or no joint_states message arrived "
                             "(is the arm node running, connected to the same zenoh router?)")
        errors = np.abs(np.array(self.errors))
        return {
            "samples": len(self.errors), "duration_s": self.sample_times_s[-1],
            "joint_rms_rad": np.sqrt(np.mean(errors**2, axis=0)).tolist(),
            "joint_p99_rad": np.percentile(errors, 99, axis=0).tolist(),
            "max_error_rad": float(errors.max()), "lag_ms": self.lag_ms(),
            "divergence_events": [vars(e) for e in self.events], "n_divergence_events": len(self.events),
            "skipped_samples": self.skipped_samples,
        }


def mirror_samples(twin: Any, samples: Iterable[JointSample], config: MirrorConfig | None = None,
                   cameras: dict[str, Any] | None = None) -> dict[str, Any]:
    """Mirror a whole stream (a replay, or a live generator) and return the report."""
    mirror = Mirror(twin, config, cameras)
    for sample in samples:
        mirror.update(sample)
    return mirror.report()


def samples_from_arrays(stamp_ns: np.ndarray, state: np.ndarray, object_state: np.ndarray | None = None,
                        n_joints: int = 7) -> Iterator[JointSample]:
    """Samples from recorded arrays: ``state`` ``(T, 15)`` (``ArmState.proprio``: joints first, gripper
    width last), ``stamp_ns`` ``(T,)``, optional ``object_state`` ``(T, K)``."""
    for t in range(len(stamp_ns)):
        yield JointSample(int(stamp_ns[t]), state[t, :n_joints], float(state[t, -1]),
                          None if object_state is None else object_state[t])


def samples_from_store(store_path: str, episode: int) -> Iterator[JointSample]:
    """Replay one episode of a DemoStore (``state``, ``stamp_ns``, ``object_state`` when stored)."""
    from robolearn.store import DemoStore

    data = DemoStore.open(store_path, mode="r").episode(episode)
    for key in ("state", "stamp_ns"):
        if key not in data:
            raise DataError(f"episode {episode} of {store_path} has no {key!r}; mirroring needs joint states and stamps")
    return samples_from_arrays(data["stamp_ns"], data["state"], data.get("object_state"))


GRIPPER_JOINT = "gripper"


def joint_sample(msg: Any, joint_names: Sequence[str]) -> JointSample:
    """A ``sensor_msgs/JointState`` as a sample of the arm joints ``joint_names`` (the cell's robot
    model's, in its order). A message with names is read by name, in any order, extra joints
    ignored, the gripper opening (m) from its ``gripper`` entry (robolearn's arm node) when there is
    one; a message without names must list the arm joints in order, optionally then the gripper."""
    from robolearn.ros import messages

    position = np.asarray(msg.position, np.float64)
    names = list(msg.name)
    if names:
        if len(names) != len(position):
            raise DataError(f"a joint_states message has {len(names)} names but {len(position)} positions")
        index = {name: i for i, name in enumerate(names)}
        missing = [name for name in joint_names if name not in index]
        if missing:
            raise DataError(f"the joint_states message lacks the cell's joints {missing} (it names {names}); set "
                             "robot.joint_names in the cell to the names the arm driver publishes")
        q_rad = position[[index[name] for name in joint_names]]
        gripper_m = float(position[index[GRIPPER_JOINT]]) if GRIPPER_JOINT in index else float("nan")
    else:
        n = len(joint_names)
        if len(position) not in (n, n + 1):
            raise DataError(f"a joint_states message without names needs the {n} arm joints in order (and "
                             f"optionally the gripper); it has {len(position)} positions")
        q_rad = position[:n]
        gripper_m = float(position[n]) if len(position) > n else float("nan")
    return JointSample(messages.stamp_ns(msg), q_rad, gripper_m)


def samples_from_topic(node: Any, duration_s: float, joint_names: Sequence[str]) -> Iterator[JointSample]:
    """Live joint states from the arm node's topic (``robolearn.ros``) for ``duration_s`` seconds,
    mapped onto ``joint_names`` (``joint_sample``). The node must stay open while this is iterated."""
    import queue
    import time

    from robolearn.ros import messages
    from robolearn.ros.nodes import topics

    received: queue.SimpleQueue = queue.SimpleQueue()
    node.create_subscription(messages.JOINT_STATE, topics.JOINT_STATES, lambda r: received.put(r.msg), depth=100)
    end = time.monotonic() + duration_s
    while time.monotonic() < end:
        node.spin_once(timeout_s=0.05)
        while not received.empty():
            yield joint_sample(received.get(), joint_names)
