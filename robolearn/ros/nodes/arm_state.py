"""The arm state as the other nodes see it: the arm node's ``JointState`` and end-effector
``PoseStamped`` put back together into ``ArmState.proprio()``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from robolearn.ros import messages
from robolearn.ros.node import Node, Received
from robolearn.ros.nodes import topics


class ArmStateSubscriber:
    """Calls ``on_state(proprio, stamp_ns)`` with the proprioception ``(n_joints + 8,) float32`` of
    the latest joint state and pose.

    exact: call once per instant, when the joint state and the pose with the same stamp have both
    arrived (robolearn's arm node stamps both with its tick; the recorder needs samples of one
    instant). Otherwise call on every message with the newest of each (an arm driver from elsewhere
    may stamp them apart), stamped like the joint state."""

    def __init__(self, node: Node, on_state: Callable[[np.ndarray, int], None], exact: bool = False,
                 depth: int = 10):
        self.on_state, self.exact = on_state, exact
        self._joints: Any = None
        self._pose: Any = None
        self._stamp_ns: int | None = None
        node.create_subscription(messages.JOINT_STATE, topics.JOINT_STATES, self._on_joints, depth=depth)
        node.create_subscription(messages.POSE_STAMPED, topics.EE_POSE, self._on_pose, depth=depth)

    def _on_joints(self, received: Received) -> None:
        self._joints = received.msg
        self._update()

    def _on_pose(self, received: Received) -> None:
        self._pose = received.msg
        self._update()

    def _update(self) -> None:
        if self._joints is None or self._pose is None:
            return
        stamp = messages.stamp_ns(self._joints)
        if self.exact:
            if stamp == self._stamp_ns or messages.stamp_ns(self._pose) != stamp:
                return
            self._stamp_ns = stamp
        self.on_state(messages.arm_state(self._joints, self._pose).proprio(), stamp)
