"""The arm node: end-effector commands in, joint states and end-effector pose out.

Commands: ``robolearn_msgs/EEDeltaCommand`` on ``topics.ARM_COMMAND`` (one control step's
displacement, what teleop and policy nodes send), a standard ``geometry_msgs/TwistStamped`` on
``topics.ARM_TWIST`` (m/s and rad/s in the cell frame, applied for one control period; what ROS
tools such as teleop_twist_joy send), or an absolute joint target as ``sensor_msgs/JointState`` on
``topics.ARM_JOINT_COMMAND`` (positions in rad, by joint name or in order, plus an optional
``gripper_closed`` entry in [0, 1]). Every command goes through the arm's ``SafetyFilter`` (the
``Arm`` protocol: ``command`` / ``command_joints`` filter then send); what was actually sent is
published on ``topics.ARM_APPLIED`` (end-effector) or ``topics.ARM_JOINT_APPLIED`` (joints) and
every clip or rejection, including a malformed joint command, on ``topics.VIOLATIONS``. A ``Watchdog`` holds
the arm (``Arm.stop``) when no command arrived for ``safety.command_timeout_s`` and publishes a
``stale_command`` violation when the stream goes stale. Runs at the cell's ``control_hz``: each tick
applies the newest command received since the last tick (at most one), then publishes the state.
"""

from __future__ import annotations

from collections.abc import Callable

from robolearn.cell import CellConfig
from robolearn.interfaces import Arm, EEDeltaCommand, JointCommand, Violation, now_ns
from robolearn.ros import messages
from robolearn.ros.node import Node, Received
from robolearn.ros.nodes import topics
from robolearn.safety import Watchdog


class ArmNode:
    """Wires an ``Arm`` into ``node``. ``after_tick``: called after each command (the twin node
    advances physics there). ``joint_names``: names in ``JointState`` (default:
    ``default_joint_names``)."""

    def __init__(self, node: Node, arm: Arm, cell: CellConfig, joint_names: list[str] | None = None,
                 after_tick: Callable[[], None] | None = None):
        self.node, self.arm, self.cell = node, arm, cell
        self.after_tick = after_tick
        self.joint_names = joint_names or default_joint_names(cell, len(arm.state().q_rad))
        timeout_s = node.declare_parameter("command_timeout_s", float(cell.safety.command_timeout_s))
        self.watchdog = Watchdog(timeout_s, kind="stale_command")
        self.period_s = 1.0 / node.declare_parameter("control_hz", float(cell.control_hz))
        self.pending: EEDeltaCommand | JointCommand | None = None
        self.holding = True
        self.violation_count = 0
        self.joints_pub = node.create_publisher(messages.JOINT_STATE, topics.JOINT_STATES)
        self.pose_pub = node.create_publisher(messages.POSE_STAMPED, topics.EE_POSE)
        self.violation_pub = node.create_publisher(messages.SAFETY_VIOLATION, topics.VIOLATIONS, depth=100)
        self.applied_pub = node.create_publisher(messages.EE_DELTA_COMMAND, topics.ARM_APPLIED)
        self.joint_applied_pub = node.create_publisher(messages.JOINT_STATE, topics.ARM_JOINT_APPLIED)
        node.create_subscription(messages.EE_DELTA_COMMAND, topics.ARM_COMMAND, self.on_command)
        node.create_subscription(messages.TWIST_STAMPED, topics.ARM_TWIST, self.on_twist)
        node.create_subscription(messages.JOINT_STATE, topics.ARM_JOINT_COMMAND, self.on_joint_command)
        node.create_timer(self.period_s, self.tick)

    def on_command(self, received: Received) -> None:
        self.watchdog.feed(now_ns())
        self.pending = messages.ee_delta_command(received.msg)

    def on_twist(self, received: Received) -> None:
        self.watchdog.feed(now_ns())
        self.pending = messages.twist_to_ee_delta(received.msg, self.period_s)

    def on_joint_command(self, received: Received) -> None:
        try:
            command = messages.joint_command(received.msg, self.joint_names)
        except ValueError as err:
            self.publish_violation(Violation("nan", f"malformed joint command rejected: {err}"))
            return
        self.watchdog.feed(now_ns())
        self.pending = command

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
            joints = isinstance(self.pending, JointCommand)
            applied = self.arm.command_joints(self.pending) if joints else self.arm.command(self.pending)
            self.pending = None
            self.holding = False
            for violation in applied.violations:
                self.publish_violation(violation)
            if joints:
                self.joint_applied_pub.publish(messages.joint_command_msg(applied.command, self.joint_names, now_ns()))
            else:
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


def default_joint_names(cell: CellConfig, n_joints: int) -> list[str]:
    """The robot model's joint names (a built-in model's, or ``robot.joint_names`` of an MJCF
    robot), else ``joint1..jointN``."""
    from robolearn.sim.robots import robot_models

    builtin = robot_models().get(cell.robot.model)
    names = [j.name for j in builtin.joints] if builtin is not None else list(cell.robot.joint_names)
    return names if len(names) == n_joints else [f"joint{i + 1}" for i in range(n_joints)]
