"""The arm node: end-effector delta commands in, joint states and end-effector pose out.

Every command goes through the arm's ``SafetyFilter`` (the ``Arm`` protocol: ``command`` filters
then sends) and every clip or rejection is published on ``topics.VIOLATIONS``. A ``Watchdog`` holds
the arm (``Arm.stop``) when no command arrived for ``safety.command_timeout_s`` and publishes a
``stale_command`` violation when the stream goes stale. Runs at the cell's ``control_hz``: each tick
applies the newest command received since the last tick (at most one), then publishes the state.
"""

from __future__ import annotations

from collections.abc import Callable

from robolearn.cell import CellConfig
from robolearn.interfaces import Arm, EEDeltaCommand, Violation, now_ns
from robolearn.ros import messages
from robolearn.ros.node import Node, Received
from robolearn.ros.nodes import topics
from robolearn.safety import Watchdog


class ArmNode:
    """Wires an ``Arm`` into ``node``. ``after_tick``: called after each command (the twin node
    advances physics there). ``joint_names``: names in ``JointState`` (default joint1..jointN)."""

    def __init__(self, node: Node, arm: Arm, cell: CellConfig, joint_names: list[str] | None = None,
                 after_tick: Callable[[], None] | None = None):
        self.node, self.arm, self.cell = node, arm, cell
        self.after_tick = after_tick
        n_joints = len(arm.state().q_rad)
        self.joint_names = joint_names or [f"joint{i + 1}" for i in range(n_joints)]
        timeout_s = node.declare_parameter("command_timeout_s", float(cell.safety.command_timeout_s))
        self.watchdog = Watchdog(timeout_s, kind="stale_command")
        self.pending: EEDeltaCommand | None = None
        self.holding = True
        self.violation_count = 0
        self.joints_pub = node.create_publisher(messages.JOINT_STATE, topics.JOINT_STATES)
        self.pose_pub = node.create_publisher(messages.POSE_STAMPED, topics.EE_POSE)
        self.violation_pub = node.create_publisher(messages.SAFETY_VIOLATION, topics.VIOLATIONS, depth=100)
        self.applied_pub = node.create_publisher(messages.EE_DELTA_COMMAND, topics.ARM_APPLIED)
        node.create_subscription(messages.EE_DELTA_COMMAND, topics.ARM_COMMAND, self.on_command)
        rate_hz = node.declare_parameter("control_hz", float(cell.control_hz))
        node.create_timer(1.0 / rate_hz, self.tick)

    def on_command(self, received: Received) -> None:
        self.watchdog.feed(now_ns())
        self.pending = messages.ee_delta_command(received.msg)

    def publish_violation(self, violation: Violation) -> None:
        self.violation_count += 1
        self.violation_pub.publish(messages.violation_msg(violation, now_ns()))

    def tick(self) -> None:
        stale = self.watchdog.check(now_ns())
        if stale is not None:
            if not self.holding:
                self.arm.stop()
                self.holding = True
                if self.watchdog.last_ns is not None:
                    self.publish_violation(stale)
            self.pending = None
        elif self.pending is not None:
            applied = self.arm.command(self.pending)
            self.pending = None
            self.holding = False
            for violation in applied.violations:
                self.publish_violation(violation)
            self.applied_pub.publish(messages.ee_delta_msg(applied.command, now_ns()))
        if self.after_tick is not None:
            self.after_tick()
        self.publish_state()

    def publish_state(self) -> None:
        state = self.arm.state()
        stamp = now_ns()
        state.stamp_ns = stamp
        self.joints_pub.publish(messages.joint_state_msg(state, self.joint_names))
        self.pose_pub.publish(messages.pose_msg(state.ee_pos_m, state.ee_quat_wxyz, stamp))
