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
applies the newest command received since the last tick (at most one), then publishes the state
(stamped with the tick's ROS system time).

Faults: when the arm's controller stops (``ArmFault``: a Franka reflex, a UR protective stop, an
xArm error code) the node stays up: it stops the arm, publishes an ``arm_fault`` violation naming
the fault and how to recover, and ignores commands until the arm is recovered. With
``arm.auto_recover: true`` it calls the driver's ``recover()`` every ``RECOVER_RETRY_S`` until that
succeeds; otherwise an operator clears the cause and publishes ``std_msgs/Empty`` on
``topics.ARM_RECOVER``. A successful recovery is published as a ``reflex`` violation (recovered,
holding the current pose).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from robolearn.cell import CellConfig
from robolearn.drivers.arm_base import REFLEX, ArmFault
from robolearn.interfaces import Arm, EEDeltaCommand, JointCommand, Violation, now_ns
from robolearn.ros import messages
from robolearn.ros.clock import ros_now_ns
from robolearn.ros.node import Node, Received
from robolearn.ros.nodes import topics
from robolearn.safety import Watchdog

ARM_FAULT = "arm_fault"
"""Violation kind of a controller stop the driver could not clear by itself."""
RECOVER_RETRY_S = 1.0
"""Seconds between automatic recovery attempts (``arm.auto_recover: true``)."""
EMPTY = "std_msgs/msg/Empty"


class ArmNode:
    """Wires an ``Arm`` into ``node``. ``joint_names``: names in ``JointState`` (default:
    ``default_joint_names``). ``advance``: called between the command and the state on each tick
    (lets a test's twin advance physics). ``timer``: run the control loop on this node's timer;
    False: the owner calls ``apply_command`` and ``publish_state`` itself (the twin node, which
    publishes its cameras and the expert's command in the same tick)."""

    def __init__(self, node: Node, arm: Arm, cell: CellConfig, joint_names: list[str] | None = None,
                 advance: Callable[[], None] | None = None, timer: bool = True):
        self.node, self.arm, self.cell = node, arm, cell
        self.advance = advance
        self.joint_names = joint_names or default_joint_names(cell, len(arm.state().q_rad))
        timeout_s = node.declare_parameter("command_timeout_s", float(cell.safety.command_timeout_s))
        self.watchdog = Watchdog(timeout_s, kind="stale_command")
        self.period_s = 1.0 / node.declare_parameter("control_hz", float(cell.control_hz))
        self.auto_recover = bool(getattr(cell.arm, "auto_recover", False))
        self.pending: EEDeltaCommand | JointCommand | None = None
        self.holding = True
        self.violation_count = 0
        self.fault: str | None = None
        self.faults = 0
        self._next_recover_s = 0.0
        self._recover_error = ""
        self.joints_pub = node.create_publisher(messages.JOINT_STATE, topics.JOINT_STATES)
        self.pose_pub = node.create_publisher(messages.POSE_STAMPED, topics.EE_POSE)
        self.tf_pub = node.create_publisher(messages.TF_MESSAGE, topics.TF, depth=100)
        self.violation_pub = node.create_publisher(messages.SAFETY_VIOLATION, topics.VIOLATIONS, depth=100)
        self.applied_pub = node.create_publisher(messages.EE_DELTA_COMMAND, topics.ARM_APPLIED)
        self.joint_applied_pub = node.create_publisher(messages.JOINT_STATE, topics.ARM_JOINT_APPLIED)
        node.create_subscription(messages.EE_DELTA_COMMAND, topics.ARM_COMMAND, self.on_command)
        node.create_subscription(messages.TWIST_STAMPED, topics.ARM_TWIST, self.on_twist)
        node.create_subscription(messages.JOINT_STATE, topics.ARM_JOINT_COMMAND, self.on_joint_command)
        node.create_subscription(EMPTY, topics.ARM_RECOVER, lambda _: self.recover(), depth=1)
        if timer:
            node.create_timer(self.period_s, self.tick)

    def set_command(self, command: EEDeltaCommand | JointCommand) -> None:
        """Take ``command`` for the next tick (what every command topic does)."""
        self.watchdog.feed(now_ns())
        self.pending = command

    def on_command(self, received: Received) -> None:
        self.set_command(messages.ee_delta_command(received.msg))

    def on_twist(self, received: Received) -> None:
        self.set_command(messages.twist_to_ee_delta(received.msg, self.period_s))

    def on_joint_command(self, received: Received) -> None:
        try:
            command = messages.joint_command(received.msg, self.joint_names)
        except ValueError as err:
            self.publish_violation(Violation("nan", f"malformed joint command rejected: {err}"))
            return
        self.set_command(command)

    def publish_violation(self, violation: Violation) -> None:
        self.violation_count += 1
        self.violation_pub.publish(messages.violation_msg(violation, ros_now_ns()))

    def tick(self) -> None:
        self.apply_command()
        if self.advance is not None:
            self.advance()
        self.publish_state(ros_now_ns())

    def apply_command(self) -> None:
        """Send the pending command through the SafetyFilter, or hold when the stream went stale;
        an ``ArmFault`` puts the node in the faulted state (see the module docstring)."""
        if self.fault is not None:
            self.pending = None
            if self.auto_recover and time.monotonic() >= self._next_recover_s:
                self.recover()
            return
        try:
            self._apply()
        except ArmFault as err:
            self.on_fault(err)

    def _apply(self) -> None:
        stale = self.watchdog.check(now_ns())
        if stale is not None:
            if not self.holding:
                self.arm.stop()
                self.holding = True
                if self.watchdog.last_ns is not None:
                    self.publish_violation(stale)
            self.pending = None
            return
        if self.pending is None:
            return
        command, self.pending = self.pending, None
        joints = isinstance(command, JointCommand)
        applied = self.arm.command_joints(command) if joints else self.arm.command(command)
        self.holding = False
        for violation in applied.violations:
            self.publish_violation(violation)
        if joints:
            self.joint_applied_pub.publish(messages.joint_command_msg(applied.command, self.joint_names, ros_now_ns()))
        else:
            self.applied_pub.publish(messages.ee_delta_msg(applied.command, ros_now_ns()))

    def on_fault(self, err: ArmFault) -> None:
        """Stop the arm, report the fault and how to recover, and ignore commands until recovered."""
        self.fault, self.pending, self.holding = str(err), None, True
        self.faults += 1
        try:
            self.arm.stop()
            held = "the arm node stopped the arm"
        except Exception as stop_err:  # the controller may refuse even a stop while faulted
            held = f"stopping the arm failed too ({stop_err}): use the robot's stop button"
        if self.auto_recover:
            recovery = f"recovering automatically (arm.auto_recover), retrying every {RECOVER_RETRY_S:g} s"
            self._next_recover_s = time.monotonic() + RECOVER_RETRY_S
        else:
            recovery = (f"commands are ignored until it is recovered: clear the cause, then run `ros2 topic pub --once "
                        f"{topics.ARM_RECOVER} {EMPTY}` (or restart the arm node); set arm.auto_recover: true to "
                        "recover automatically")
        detail = f"{err}; {held}; {recovery}"
        print(f"robolearn arm node: fault: {detail}", file=sys.stderr, flush=True)
        self.publish_violation(Violation(ARM_FAULT, detail))

    def recover(self) -> None:
        """Clear a fault with the driver's ``recover()`` (an arm without one: ``stop()``); on success
        commands are taken again, holding the current pose until the next one."""
        if self.fault is None:
            return
        try:
            getattr(self.arm, "recover", self.arm.stop)()
        except Exception as err:  # the cause persists (or the controller is still stopping): report, retry
            self._next_recover_s = time.monotonic() + RECOVER_RETRY_S
            if str(err) != self._recover_error:
                self._recover_error = str(err)
                self.publish_violation(Violation(ARM_FAULT, f"recovery failed: {err}; still holding"))
            return
        fault, self.fault, self._recover_error = self.fault, None, ""
        self.pending, self.holding = None, True
        self.publish_violation(Violation(REFLEX, f"recovered from: {fault}; holding the current pose, commands accepted again"))

    def publish_state(self, stamp_ns: int) -> None:
        """Joint states, end-effector pose and its ``/tf`` transform, stamped ``stamp_ns`` (ROS system time); nothing when
        the arm cannot be read (a fault, handled as in ``apply_command``)."""
        try:
            state = self.arm.state()
        except ArmFault as err:
            if self.fault is None:
                self.on_fault(err)
            return
        state.stamp_ns = stamp_ns
        self.joints_pub.publish(messages.joint_state_msg(state, self.joint_names))
        self.pose_pub.publish(messages.pose_msg(state.ee_pos_m, state.ee_quat_wxyz, stamp_ns))
        self.tf_pub.publish(messages.tf_msg(state.ee_pos_m, state.ee_quat_wxyz, stamp_ns))


def default_joint_names(cell: CellConfig, n_joints: int) -> list[str]:
    """The robot model's joint names (a built-in model's, or ``robot.joint_names`` of an MJCF
    robot), else ``joint1..jointN``."""
    from robolearn.kinematics import robot_models

    builtin = robot_models().get(cell.robot.model)
    names = [j.name for j in builtin.joints] if builtin is not None else list(cell.robot.joint_names)
    return names if len(names) == n_joints else [f"joint{i + 1}" for i in range(n_joints)]
