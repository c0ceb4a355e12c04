"""Franka arm driver on franky-control (>= 2.0): Cartesian impedance tracking of end-effector targets.

``connect`` starts one ``CartesianImpedanceTrackingMotion`` asynchronously; each ``command`` publishes
a new absolute reference with ``set_reference`` (the controller runs at 1 kHz on the robot PC and
picks it up on its next cycle). Reflexes (collision, joint limit, velocity violations) abort the
motion: the next ``command`` raises ``ArmFault`` with libfranka's message, or, with
``auto_recover: true``, calls ``recover_from_errors``, restarts the motion at the current pose and
reports a ``reflex`` violation.

Joint commands (``command_joints``) switch to a ``JointImpedanceTrackingMotion`` (franky's default
gains) and stream ``JointReference`` targets; the next end-effector command switches back to the
Cartesian tracking motion, starting from the measured pose.

``stop()``: the reference is re-latched to the measured pose; the impedance controller keeps
running and holds the arm there, compliant. ``disconnect()`` ends the motion (``Robot.stop``);
libfranka then holds the arm with its internal controller until the user stops FCI.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from robolearn.cell import CellConfig
from robolearn.interfaces import Violation
from robolearn.kinematics.rotations import matrix_to_quat, quat_to_matrix

from .._sdk import require_sdk
from ..arm_base import REFLEX, ArmFault, BasePose, CartesianArmDriver, RawArmState
from .config import FrankaArmConfig

HAND_MAX_WIDTH_M = 0.08


class FrankaArm(CartesianArmDriver):
    name = "franka"

    def __init__(self, config: FrankaArmConfig, cell: CellConfig, sdk: ModuleType | None = None):
        super().__init__(cell)
        self.config = config
        self._sdk = sdk
        self.robot = None
        self.gripper = None
        self.motion = None
        self.joint_mode = False
        self._hand_closed: bool | None = None

    @property
    def sdk(self) -> ModuleType:
        if self._sdk is None:
            self._sdk = require_sdk("franky", "franka", "Franka")
        return self._sdk

    def _open(self) -> None:
        franky, config = self.sdk, self.config
        self.robot = franky.Robot(config.ip)
        self.robot.recover_from_errors()
        self.robot.relative_dynamics_factor = config.relative_dynamics_factor
        self.robot.set_collision_behavior(config.collision_torque_nm, config.collision_force_n)
        if config.gripper:
            self.gripper = franky.Gripper(config.ip)
        self._start_motion()

    def _start_motion(self) -> None:
        """A fresh tracking motion whose first reference is the measured pose (no jump at start)."""
        franky = self.sdk
        self.motion = franky.CartesianImpedanceTrackingMotion(
            translational_stiffness=self.config.translational_stiffness_n_m,
            rotational_stiffness=self.config.rotational_stiffness_nm_rad,
        )
        self.motion.set_reference(franky.CartesianReference(self.robot.current_pose.end_effector_pose))
        self.robot.move(self.motion, asynchronous=True)
        self.joint_mode = False

    def _read(self) -> RawArmState:
        joints = self.robot.current_joint_state
        pose = self.robot.current_pose.end_effector_pose
        quat_xyzw = np.asarray(pose.quaternion, dtype=np.float64).reshape(4)
        width = float(self.gripper.width) if self.gripper is not None else 0.0
        return RawArmState(
            q_rad=np.asarray(joints.position, dtype=np.float64).reshape(-1),
            dq_rad_s=np.asarray(joints.velocity, dtype=np.float64).reshape(-1),
            ee=BasePose(np.asarray(pose.translation, dtype=np.float64).reshape(3), quat_to_matrix(np.roll(quat_xyzw, 1))),
            gripper_width_m=width,
        )

    def _send(self, target: BasePose, gripper_closed: float | None) -> None:
        franky = self.sdk
        if self.joint_mode:
            self._start_motion()
        quat_xyzw = np.roll(matrix_to_quat(target.rot), -1)
        self.motion.set_reference(franky.CartesianReference(franky.Affine(target.pos_m, quat_xyzw)))
        self._move_hand(gripper_closed)

    def _send_joints(self, q_rad: np.ndarray, gripper_closed: float | None) -> None:
        franky = self.sdk
        reference = franky.JointReference(np.asarray(q_rad, dtype=np.float64))
        if not self.joint_mode:
            self.motion = franky.JointImpedanceTrackingMotion()
            self.motion.set_reference(reference)
            self.robot.move(self.motion, asynchronous=True)
            self.joint_mode = True
        else:
            self.motion.set_reference(reference)
        self._move_hand(gripper_closed)

    def _move_hand(self, gripper_closed: float | None) -> None:
        if gripper_closed is not None and self.gripper is not None:
            closed = gripper_closed >= 0.5
            if closed != self._hand_closed:
                self._hand_closed = closed
                speed = self.config.gripper_speed_m_s
                if closed:
                    # Wide epsilons: the grasp counts as successful at whatever width the object has.
                    self.gripper.grasp_async(0.0, speed, self.config.grasp_force_n, epsilon_inner=1.0, epsilon_outer=1.0)
                else:
                    self.gripper.move_async(HAND_MAX_WIDTH_M, speed)

    def _check_faults(self) -> list[Violation]:
        franky = self.sdk
        try:
            running = self.robot.poll_motion()
            message = "robot reports errors" if self.robot.has_errors else ""
            if not message and not running:
                message = "the tracking motion is no longer running"
        except franky.ControlException as err:
            message = str(err)
        if not message:
            return []
        if not self.config.auto_recover:
            raise ArmFault(
                f"Franka reflex: {message}. Move the arm clear, then call recover() (or reconnect); "
                "set arm.auto_recover: true to recover automatically"
            )
        self.recover()
        return [Violation(REFLEX, f"Franka reflex: {message}; recovered and holding the current pose")]

    def recover(self) -> None:
        """Clear a reflex, latch the current pose and restart the tracking motion."""
        self.robot.recover_from_errors()
        self.reset_target()
        self._start_motion()

    def stop(self) -> None:
        """Hold: the reference becomes the measured pose (joint positions in joint mode); the
        impedance controller keeps running."""
        self.reset_target()
        if self.joint_mode:
            self.motion.set_reference(self.sdk.JointReference(np.asarray(self._read().q_rad, dtype=np.float64)))
        else:
            self._send(self.to_base(self.target_pos_m, self.target_rot), None)

    def _close(self) -> None:
        self.robot.stop()
