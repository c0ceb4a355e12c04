"""The recorder node: subscribes to the cell's topics and writes episodes into a ``DemoStore``.

Alignment is by stamp, not by arrival order: every sample (arm state, object state, each camera
image) goes into an ``EpisodeRecorder`` with its header stamp, and one control step is recorded per
``TeleopCommand`` (the action) with, from every stream, the sample nearest the command's stamp
within ``tolerance_s`` (default one control period). The twin node stamps the state, images, object
state and its expert's command of one control tick with the same stamp, so a step holds exactly
what in-process ``robolearn collect`` records: the observation and the action taken on it. On a
real cell the teleop, arm and camera nodes run on their own clocks and the nearest samples are
taken.

The streams are fixed up front from the cell config (``stream_specs``): the arm state, every
configured camera (``rgb_<name>``, and ``depth_<name>`` when the camera has depth) and, on a
simulated cell, ``object_state``. A step that lacks a stream (a camera whose first frame is late,
a dropped frame) is not recorded; it is counted in the episode's metadata (``steps_dropped`` and
per-stream ``missing``) and in ``missing_frames``. A sample of the wrong shape is refused with an
error naming the stream and the config key.

Episodes: ``EpisodeControl`` START, SUCCESS, STOP (commit), DISCARD, or the teleop buttons
(``reset``: start anew, ``success``: mark and commit, ``failure``: discard). An ended episode is
committed once every stream has delivered a sample at or after its last step (or ``tolerance_s``
later, or when the next episode starts), so the last step gets its observation too. With
``start_on_motion`` (default) the first ``TeleopCommand`` that moves (or intervenes) while no
episode is open starts one, so a device without a reset button (the SpaceMouse) can record: move
to start, press success to commit. After an episode ends the device must come to rest once before
motion starts the next, so the hand still on the cap after a success press does not start a new
episode. The last step of a successful episode has ``success``, ``terminated`` and ``reward`` 1.
An episode is committed atomically, so killing the recorder mid-episode loses only that episode.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.cell import CellConfig
from robolearn.config import ConfigError, to_dict
from robolearn.errors import DataError
from robolearn.interfaces import TeleopCommand
from robolearn.ros import messages
from robolearn.ros.node import Node, Received
from robolearn.ros.nodes import topics
from robolearn.ros.nodes.arm_state import ArmStateSubscriber

EPISODE = messages.msg_class(messages.EPISODE_CONTROL)
STATE_EXTRA_DIM = 8
"""Proprio beyond the joints: end-effector position (3), quaternion (4), gripper opening (1)."""


def n_joints(cell: CellConfig) -> int:
    from robolearn.kinematics import robot_models

    builtin = robot_models().get(cell.robot.model)
    if builtin is not None:
        return len(builtin.joints)
    return len(cell.robot.joint_names) or 7


def stream_specs(cell: CellConfig, object_state: bool) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``{stream: (shape of one sample, dtype)}`` the recorder expects from ``cell``: ``state``,
    ``object_state`` (when asked), and ``rgb_<camera>`` / ``depth_<camera>`` per configured camera."""
    from robolearn.env import OBJECT_STATE_DIM

    specs: dict[str, tuple[tuple[int, ...], np.dtype]] = {"state": ((n_joints(cell) + STATE_EXTRA_DIM,), np.dtype(np.float32))}
    if object_state:
        specs["object_state"] = ((OBJECT_STATE_DIM,), np.dtype(np.float32))
    for camera in cell.cameras:
        specs[f"rgb_{camera.name}"] = ((camera.height_px, camera.width_px, 3), np.dtype(np.uint8))
        if camera.depth:
            specs[f"depth_{camera.name}"] = ((camera.height_px, camera.width_px), np.dtype(np.float32))
    return specs


class RecorderNode:
    """Records the cell's topics into the store at ``store_path`` (created with ``jpeg_quality`` when
    missing). object_state: record the twin's ``object_state`` (default: when the cell's arm is
    simulated). tolerance_s: how far from a command's stamp a sample may be (0: one control period).
    start_on_motion: see the module docstring."""

    def __init__(self, node: Node, cell: CellConfig, store_path: str | Path, task: str = "", source: str = "teleop",
                 operator: str = "", jpeg_quality: int = 95, object_state: bool | None = None,
                 start_on_motion: bool = True, tolerance_s: float = 0.0):
        from robolearn.env import ACTION_DIM
        from robolearn.store import DemoStore, EpisodeRecorder

        path = Path(store_path)
        self.cell, self.node, self.task, self.source, self.operator = cell, node, task, source, operator
        self.start_on_motion = start_on_motion
        self.specs = stream_specs(cell, cell.arm.type == "sim" if object_state is None else object_state)
        tolerance_ns = int((tolerance_s or cell.control_dt_s) * 1e9)
        try:
            store = (DemoStore.open(path, mode="a") if path.exists()
                     else DemoStore.create(path, cell_config=to_dict(cell), jpeg_quality=jpeg_quality))
            self.recorder = EpisodeRecorder(store, list(self.specs), control_hz=cell.control_hz,
                                            tolerance_ns=tolerance_ns, threaded=True)
        except (FileNotFoundError, ValueError) as err:
            raise ConfigError("recorder store", str(path), str(err)) from err
        try:
            self.recorder.check_store(self.specs, (ACTION_DIM,))
        except ValueError as err:
            self.recorder.close()
            store.close()
            raise ConfigError("recorder store", str(path), f"{err} (record this cell into another store)") from err
        self.tolerance_s = tolerance_ns / 1e9
        self.recording = False
        self.closing_until_s: float | None = None
        self.last_step_ns: int | None = None
        self.newest_ns: dict[str, int] = {}
        self.success = False
        self.rested = True
        self.held: tuple[TeleopCommand, int] | None = None
        self.committed: list[int] = []
        self.discarded = 0
        self.missing_frames = 0
        ArmStateSubscriber(node, lambda proprio, stamp: self.add("state", proprio, stamp), exact=True, depth=100)
        if "object_state" in self.specs:
            node.create_subscription(messages.OBJECT_STATE, topics.OBJECT_STATE, self.on_object_state, depth=100)
        for camera in cell.cameras:
            depth = max(4, int(np.ceil(camera.fps)))  # a second of frames may wait while an episode commits
            node.create_subscription(messages.IMAGE, topics.camera_image(camera.name),
                                     lambda r, key=f"rgb_{camera.name}": self.on_image(key, r), depth=depth)
            if camera.depth:
                node.create_subscription(messages.IMAGE, topics.camera_depth(camera.name),
                                         lambda r, key=f"depth_{camera.name}": self.on_image(key, r), depth=depth)
        node.create_subscription(messages.TELEOP_COMMAND, topics.TELEOP, self.on_teleop, depth=100)
        node.create_subscription(messages.EPISODE_CONTROL, topics.EPISODE_CONTROL, self.on_episode, depth=100)
        node.create_timer(min(0.05, cell.control_dt_s), self._commit_when_complete)

    # ---- observation streams -----------------------------------------------------------------

    def add(self, stream: str, value: np.ndarray, stamp_ns: int) -> None:
        """One sample of ``stream`` (refused, with the reason, when its shape is not the config's)."""
        shape, dtype = self.specs[stream]
        if value.shape != shape:
            raise DataError(f"{stream} sample has shape {value.shape}, the cell config says {shape}; fix the "
                             "publisher or the cell's cameras / robot section")
        if self.recording:
            self.recorder.add(stream, value.astype(dtype, copy=False), stamp_ns)
            self.newest_ns[stream] = max(stamp_ns, self.newest_ns.get(stream, stamp_ns))
            self._commit_when_complete()

    def on_object_state(self, received: Received) -> None:
        self.add("object_state", messages.object_state(received.msg), messages.stamp_ns(received.msg))

    def on_image(self, key: str, received: Received) -> None:
        self.add(key, messages.image_array(received.msg), messages.stamp_ns(received.msg))

    # ---- episodes --------------------------------------------------------------------------------

    def on_teleop(self, received: Received) -> None:
        command = messages.teleop_command(received.msg)
        moving = bool(command.intervene or np.any(command.ee_delta != 0.0))
        starts_by_motion = moving and self.start_on_motion and self.rested and self.closing_until_s is None \
            and not self.recording
        if command.reset or starts_by_motion:
            self.start()
        if not moving:
            self.rested = True
        if self.recording and self.closing_until_s is None:
            self._hold_step(command, messages.stamp_ns(received.msg))
        if command.success:
            self.success = True
            self.stop()
        elif command.failure and self.closing_until_s is None:
            self.discard()

    def on_episode(self, received: Received) -> None:
        command = received.msg.command
        if received.msg.task:
            self.task = received.msg.task
        if command == EPISODE.START:
            self.start()
        elif command == EPISODE.SUCCESS:
            self.success = True
        elif command == EPISODE.STOP:
            self.stop()
        elif command == EPISODE.DISCARD:
            self.discard()

    def _hold_step(self, command: TeleopCommand, stamp_ns: int) -> None:
        """Steps are handed on one behind, so the last one can carry the episode's success."""
        if self.held is not None:
            self._record(*self.held, final_success=False)
        self.held = (command, stamp_ns)

    def _record(self, command: TeleopCommand, stamp_ns: int, final_success: bool) -> None:
        self.recorder.step(command.action(), stamp_ns, reward=float(final_success), success=final_success,
                           terminated=final_success, intervention=command.intervene)
        self.last_step_ns = stamp_ns

    def start(self) -> None:
        """Open a new episode: an ended one is committed first, an open one discarded."""
        if self.closing_until_s is not None:
            self._commit()
        elif self.recording:
            self.discarded += 1
        self.recorder.start(task=self.task, source=self.source, operator=self.operator, cell=self.cell.name,
                            recorded_via="ros")
        self.held, self.success, self.recording = None, False, True
        self.last_step_ns, self.newest_ns = None, {}

    def discard(self) -> None:
        if self.recording:
            self.recorder.discard()
            self.discarded += 1
        self.held, self.recording, self.rested, self.closing_until_s = None, False, False, None

    def stop(self) -> None:
        """End the episode: it is committed (with one atomic append) once every stream has a sample
        at or after its last step's stamp, or ``tolerance_s`` from now, or when the next one starts."""
        if not self.recording or self.closing_until_s is not None:
            return
        if self.held is not None:
            self._record(*self.held, final_success=self.success)
            self.held = None
        self.rested = False
        self.closing_until_s = time.monotonic() + self.tolerance_s
        self._commit_when_complete()

    def _commit_when_complete(self) -> None:
        if self.closing_until_s is None:
            return
        complete = self.last_step_ns is None or all(self.newest_ns.get(s, -1) >= self.last_step_ns for s in self.specs)
        if complete or time.monotonic() >= self.closing_until_s:
            self._commit()

    def _commit(self) -> None:
        index = self.recorder.commit(success=self.success, task=self.task)
        self.missing_frames += sum(s["missing"] for s in self.recorder.report()["streams"].values())
        if index is None:
            self.discarded += 1
        else:
            self.committed.append(index)
        self.recording, self.closing_until_s = False, None

    def close(self) -> None:
        """Commit an episode that has ended, drop one still open, stop the writer thread and let go
        of the store's writer lock."""
        if self.closing_until_s is not None:
            self._commit()
        self.recording = False
        self.recorder.close()
        self.recorder.store.close()

    def summary(self) -> dict[str, Any]:
        return {"node": "recorder", "committed": self.committed, "discarded": self.discarded,
                "missing_frames": self.missing_frames, "dropped_messages": dict(self.node.dropped)}
