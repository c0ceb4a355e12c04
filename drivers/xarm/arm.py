"""xArm driver on xarm-python-sdk: servo mode (``set_mode(1)``) with ``set_servo_cartesian`` for
end-effector targets and ``set_servo_angle_j`` for joint targets.

The SDK speaks millimetres and (with ``is_radian=True``) roll/pitch/yaw in radians, fixed axes
``R = Rz(yaw) Ry(pitch) Rx(roll)``; every call returns an integer code (0 is success). A
controller error (``has_err_warn`` with a non-zero ``error_code``) makes the next ``command`` raise
``ArmFault``, or, with ``auto_recover: true``, clears it (``clean_error``, ``motion_enable``, servo
mode, ready state), re-latches the pose and reports a ``reflex`` violation.

``stop()``: ``set_state(4)`` stops the motion and discards queued targets; the driver then re-arms
servo mode (``set_mode(1)``, ``set_state(0)``) and latches the measured pose, so the arm stands
still, servo-held, and the next ``command`` continues from there. ``disconnect()`` stops, returns to
position mode (mode 0) and closes the connection.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from robolearn.cell import CellConfig
from robolearn.interfaces import Violation
from robolearn.kinematics.rotations import matrix_to_rpy, rpy_to_matrix

from .._sdk import require_sdk
from ..arm_base import REFLEX, ArmFault, BasePose, CartesianArmDriver, RawArmState
from .config import XArmConfig

MM_PER_M = 1000.0
SERVO_MODE, POSITION_MODE = 1, 0
READY_STATE, STOP_STATE = 0, 4


class XArm(CartesianArmDriver):
    name = "xarm"

    def __init__(self, config: XArmConfig, cell: CellConfig, sdk: ModuleType | None = None):
        super().__init__(cell)
        self.config = config
        self._sdk = sdk
        self.api = None

    @property
    def sdk(self) -> ModuleType:
        if self._sdk is None:
            self._sdk = require_sdk("xarm.wrapper", "xarm", "xArm")
        return self._sdk

    def _call(self, what: str, code: int) -> None:
        if code != 0:
            raise ArmFault(f"xArm {what} failed with code {code} (see the xArm API code table); error_code={self.api.error_code}")

    def _value(self, what: str, result: tuple) -> object:
        code, value = result
        self._call(what, code)
        return value

    def _arm_servo_mode(self) -> None:
        self._call("motion_enable", self.api.motion_enable(enable=True))
        self._call("set_mode", self.api.set_mode(SERVO_MODE))
        self._call("set_state", self.api.set_state(READY_STATE))

    def _open(self) -> None:
        self.api = self.sdk.XArmAPI(self.config.ip, is_radian=True)
        self._call("clean_error", self.api.clean_error())
        self._arm_servo_mode()
        if self.config.gripper:
            self._call("set_gripper_mode", self.api.set_gripper_mode(0))
            self._call("set_gripper_enable", self.api.set_gripper_enable(True))
            self._call("set_gripper_speed", self.api.set_gripper_speed(self.config.gripper_speed_rpm))

    def _read(self) -> RawArmState:
        position, velocity, _effort = self._value("get_joint_states", self.api.get_joint_states(is_radian=True))
        pose = np.asarray(self._value("get_position", self.api.get_position(is_radian=True)), dtype=np.float64)
        width = 0.0
        if self.config.gripper:
            pulse = float(self._value("get_gripper_position", self.api.get_gripper_position()))
            config = self.config
            width = (pulse - config.gripper_closed_pulse) / (config.gripper_open_pulse - config.gripper_closed_pulse)
            width *= config.gripper_max_width_m
        return RawArmState(
            q_rad=np.asarray(position, dtype=np.float64),
            dq_rad_s=np.asarray(velocity, dtype=np.float64),
            ee=BasePose(pose[:3] / MM_PER_M, rpy_to_matrix(pose[3:])),
            gripper_width_m=width,
        )

    def _send(self, target: BasePose, gripper_closed: float | None) -> None:
        pose = [*map(float, target.pos_m * MM_PER_M), *map(float, matrix_to_rpy(target.rot))]
        self._call("set_servo_cartesian", self.api.set_servo_cartesian(pose, is_radian=True))
        self._move_gripper(gripper_closed)

    def _send_joints(self, q_rad: np.ndarray, gripper_closed: float | None) -> None:
        self._call("set_servo_angle_j", self.api.set_servo_angle_j([*map(float, q_rad)], is_radian=True))
        self._move_gripper(gripper_closed)

    def _move_gripper(self, gripper_closed: float | None) -> None:
        if gripper_closed is not None and self.config.gripper:
            config = self.config
            pulse = config.gripper_open_pulse + gripper_closed * (config.gripper_closed_pulse - config.gripper_open_pulse)
            self._call("set_gripper_position", self.api.set_gripper_position(pulse, wait=False))

    def _check_faults(self) -> list[Violation]:
        if not (self.api.has_err_warn and self.api.error_code):
            return []
        code = self.api.error_code
        if not self.config.auto_recover:
            raise ArmFault(
                f"xArm controller error {code} (see the xArm controller error table): clear the cause, then "
                "call recover() or reconnect; set arm.auto_recover: true to recover automatically"
            )
        self.recover()
        return [Violation(REFLEX, f"xArm controller error {code}; cleared and holding the current pose")]

    def recover(self) -> None:
        """Clear the controller error, re-arm servo mode and latch the measured pose."""
        self._call("clean_error", self.api.clean_error())
        self._arm_servo_mode()
        self.reset_target()

    def stop(self) -> None:
        """Stop the motion, re-arm servo mode and hold the measured pose."""
        self._call("set_state", self.api.set_state(STOP_STATE))
        self._call("set_mode", self.api.set_mode(SERVO_MODE))
        self._call("set_state", self.api.set_state(READY_STATE))
        self.reset_target()

    def _close(self) -> None:
        self.api.set_state(STOP_STATE)
        self.api.set_mode(POSITION_MODE)
        self.api.disconnect()
