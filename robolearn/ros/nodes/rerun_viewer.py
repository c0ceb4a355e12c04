"""The live graph in the Rerun viewer: subscribes (through the node API) to what the cell's nodes
publish and logs it as ``robolearn data view --rerun`` logs a stored episode, on the ``time``
timeline (each message's header stamp): every camera's image (raw or JPEG) and depth under its
pinhole (from ``CameraInfo``), the arm state (``state/<dimension>``: joints, end-effector pose,
gripper), the teleop command (``action/<dimension>``), the twin's ``object_state``, the reward
node's ``reward`` / ``success_prob`` / ``success``, and episode control as text
(``episode``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from robolearn.cell import CellConfig
from robolearn.config import to_dict
from robolearn.ros import messages
from robolearn.ros.node import Node, Received
from robolearn.ros.nodes import topics
from robolearn.ros.nodes.arm_state import ArmStateSubscriber
from robolearn.ros.nodes.twin import FLOAT_ARRAY
from robolearn.store.view_rerun import require_rerun, scalar_paths

EPISODE = messages.msg_class(messages.EPISODE_CONTROL)
COMMANDS = {EPISODE.START: "start", EPISODE.STOP: "stop", EPISODE.SUCCESS: "success", EPISODE.DISCARD: "discard"}


class RerunViewerNode:
    """Logs ``cell``'s graph to ``recording`` (a ``rerun.RecordingStream``); ``logged``: messages
    logged per entity path."""

    def __init__(self, node: Node, cell: CellConfig, recording: Any):
        self.rr, self.recording, self.cell = require_rerun(), recording, to_dict(cell)
        self.logged: dict[str, int] = {}
        self.pinholes: set[str] = set()
        for camera in cell.cameras:
            name = camera.name
            node.create_subscription(messages.IMAGE, topics.camera_image(name),
                                     lambda r, name=name: self.on_image(name, r), depth=2)
            node.create_subscription(messages.COMPRESSED_IMAGE, topics.camera_compressed(name),
                                     lambda r, name=name: self.on_compressed(name, r), depth=2)
            node.create_subscription(messages.IMAGE, topics.camera_depth(name),
                                     lambda r, name=name: self.on_depth(name, r), depth=2)
            node.create_subscription(messages.CAMERA_INFO, topics.camera_info(name),
                                     lambda r, name=name: self.on_camera_info(name, r), depth=2)
        ArmStateSubscriber(node, lambda proprio, stamp: self.log_vector("state", proprio, stamp), depth=100)
        node.create_subscription(messages.TELEOP_COMMAND, topics.TELEOP, self.on_teleop, depth=100)
        node.create_subscription(messages.OBJECT_STATE, topics.OBJECT_STATE, self.on_object_state, depth=100)
        node.create_subscription(FLOAT_ARRAY, topics.REWARD, self.on_reward, depth=100)
        node.create_subscription(messages.EPISODE_CONTROL, topics.EPISODE_CONTROL, self.on_episode, depth=100)

    def _log(self, path: str, stamp_ns: int, value: Any) -> None:
        self.recording.set_time("time", timestamp=np.datetime64(int(stamp_ns), "ns"))
        self.recording.log(path, value)
        self.logged[path] = self.logged.get(path, 0) + 1

    def log_vector(self, key: str, values: np.ndarray, stamp_ns: int) -> None:
        for path, value in zip(scalar_paths(key, values.shape, self.cell), np.asarray(values, np.float64)):
            self._log(path, stamp_ns, self.rr.Scalars([value]))

    def on_image(self, camera: str, received: Received) -> None:
        self._log(f"cameras/{camera}/rgb", messages.stamp_ns(received.msg),
                  self.rr.Image(np.array(messages.image_array(received.msg))))

    def on_compressed(self, camera: str, received: Received) -> None:
        self._log(f"cameras/{camera}/rgb", messages.stamp_ns(received.msg),
                  self.rr.EncodedImage(contents=bytes(received.msg.data), media_type="image/jpeg"))

    def on_depth(self, camera: str, received: Received) -> None:
        depth = np.array(messages.image_array(received.msg))
        self._log(f"cameras/{camera}/depth", messages.stamp_ns(received.msg), self.rr.DepthImage(depth, meter=1.0))

    def on_camera_info(self, camera: str, received: Received) -> None:
        if camera in self.pinholes:
            return
        k = np.asarray(received.msg.k, np.float64).reshape(3, 3)
        self.recording.log(f"cameras/{camera}", self.rr.Pinhole(
            image_from_camera=k, width=int(received.msg.width), height=int(received.msg.height),
            camera_xyz=self.rr.ViewCoordinates.RDF), static=True)
        self.pinholes.add(camera)

    def on_teleop(self, received: Received) -> None:
        self.log_vector("action", messages.teleop_command(received.msg).action(), messages.stamp_ns(received.msg))

    def on_object_state(self, received: Received) -> None:
        self.log_vector("object_state", messages.object_state(received.msg), messages.stamp_ns(received.msg))

    def on_reward(self, received: Received) -> None:
        values = np.asarray(received.msg.data, np.float64)
        stamp = received.source_stamp_ns
        for name, value in zip(("reward", "success_prob", "success"), values):
            self._log(name, stamp, self.rr.Scalars([value]))

    def on_episode(self, received: Received) -> None:
        command = COMMANDS.get(received.msg.command, str(received.msg.command))
        text = f"{command} {received.msg.task}".strip()
        self._log("episode", messages.stamp_ns(received.msg), self.rr.TextLog(text))
