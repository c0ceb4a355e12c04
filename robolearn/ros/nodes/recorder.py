"""The recorder node: subscribes to the cell's topics and writes episodes into a ``DemoStore``.

One step is recorded per ``TeleopCommand`` (the action), paired with the newest state, object state
and camera images received before it (the twin and arm nodes publish the observation before the
action that follows it). Episodes are driven by ``EpisodeControl`` (START, STOP, SUCCESS, DISCARD) or
by the teleop buttons (``success``: mark and commit, ``failure``: discard, ``reset``: start anew).
An episode lives in memory until STOP and is committed with one atomic ``append_episode``, so killing
the recorder mid-episode loses only that episode, never a committed one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.cell import CellConfig
from robolearn.config import to_dict
from robolearn.ros import messages
from robolearn.ros.node import Node, Received
from robolearn.ros.nodes import topics
from robolearn.ros.nodes.twin import FLOAT_ARRAY

EPISODE = messages.msg_class(messages.EPISODE_CONTROL)


class RecorderNode:
    def __init__(self, node: Node, cell: CellConfig, store_path: str | Path, task: str = "", source: str = "teleop",
                 operator: str = ""):
        from robolearn.store import DemoStore

        path = Path(store_path)
        self.store = DemoStore.open(path, mode="a") if path.exists() else DemoStore.create(path, cell_config=to_dict(cell))
        self.node, self.task, self.source, self.operator = node, task, source, operator
        self.latest: dict[str, np.ndarray] = {}
        self.steps: list[dict[str, Any]] = []
        self.recording = False
        self.success = False
        self.started_s = 0.0
        self.committed: list[int] = []
        node.create_subscription(messages.JOINT_STATE, topics.JOINT_STATES, self.on_joints)
        node.create_subscription(messages.POSE_STAMPED, topics.EE_POSE, self.on_pose)
        node.create_subscription(FLOAT_ARRAY, topics.OBJECT_STATE, self.on_object_state)
        for camera in cell.cameras:
            node.create_subscription(messages.IMAGE, topics.camera_image(camera.name),
                                     lambda r, key=f"rgb_{camera.name}": self.on_image(key, r), depth=2)
            if camera.depth:
                node.create_subscription(messages.IMAGE, topics.camera_depth(camera.name),
                                         lambda r, key=f"depth_{camera.name}": self.on_image(key, r), depth=2)
        node.create_subscription(messages.TELEOP_COMMAND, topics.TELEOP, self.on_teleop, depth=100)
        node.create_subscription(messages.EPISODE_CONTROL, topics.EPISODE_CONTROL, self.on_episode, depth=100)
        self._joints: Any = None
        self._pose: Any = None

    def on_joints(self, received: Received) -> None:
        self._joints = received.msg
        self._update_state()

    def on_pose(self, received: Received) -> None:
        self._pose = received.msg
        self._update_state()

    def _update_state(self) -> None:
        if self._joints is not None and self._pose is not None:
            self.latest["state"] = messages.arm_state(self._joints, self._pose).proprio()

    def on_object_state(self, received: Received) -> None:
        self.latest["object_state"] = np.asarray(received.msg.data, dtype=np.float32)

    def on_image(self, key: str, received: Received) -> None:
        self.latest[key] = messages.image_array(received.msg).copy()

    def on_teleop(self, received: Received) -> None:
        command = messages.teleop_command(received.msg)
        if command.reset:
            self.start()
        if self.recording and "state" in self.latest:
            step = dict(self.latest)
            step["action"] = command.action()
            step["intervention"] = command.intervene
            step["stamp_ns"] = messages.stamp_ns(received.msg)
            self.steps.append(step)
        if command.success:
            self.success = True
            self.stop()
        elif command.failure:
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

    def start(self) -> None:
        self.steps, self.success, self.recording, self.started_s = [], False, True, time.monotonic()

    def discard(self) -> None:
        self.steps, self.recording = [], False

    def stop(self) -> None:
        """Commit the episode (if it has steps) with one atomic append."""
        if self.recording and self.steps:
            n = len(self.steps)
            data = {key: np.stack([step[key] for step in self.steps]) for key in self.steps[0]}
            data["action"] = data["action"].astype(np.float32)
            data["intervention"] = data["intervention"].astype(bool)
            data["stamp_ns"] = data["stamp_ns"].astype(np.int64)
            final = np.zeros(n, dtype=bool)
            final[-1] = self.success
            data["success"] = final
            data["terminated"] = final.copy()
            data["reward"] = final.astype(np.float32)
            meta = {"task": self.task, "success": self.success, "operator": self.operator, "source": self.source,
                    "duration_s": time.monotonic() - self.started_s, "recorded_via": "ros"}
            self.committed.append(self.store.append_episode(data, meta))
        self.discard()
