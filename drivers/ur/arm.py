"""UR arm driver on ur-rtde: ``servoL`` or ``speedL`` towards the latched end-effector target.

Poses on the RTDE interface are ``[x, y, z, rx, ry, rz]`` in the base frame: metres and an
axis-angle rotation vector in radians. A protective or emergency stop makes the next ``command``
raise ``ArmFault``, or, with ``auto_recover: true`` (protective stop only), hold until the controller
allows an unlock (``UNLOCK_DELAY_S`` after the stop), unlock it through the dashboard server,
re-upload the control script, re-latch the pose and report a ``reflex`` violation each step.
A ``servoL``/``speedL`` the controller refuses (control script not running: pendant not in remote
mode, or stopped) raises ``ArmFault``. Joint commands use ``servoJ`` (servo mode) or ``speedJ``
with the joint velocity that reaches the target in one control step (speed mode).

``stop()``: ``servoStop`` (or ``speedStop``) decelerates the tool at ``stop_deceleration_m_s2``
and leaves servo/speed mode; the arm then stands still with brakes released under the UR
controller, and the next ``command`` starts again from the measured pose.
``disconnect()`` stops, ends the RTDE control script and closes the connections.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np

from robolearn.cell import CellConfig
from robolearn.interfaces import Violation
from robolearn.kinematics.rotations import matrix_to_rotvec, rotvec_to_matrix

from .._sdk import require_sdk
from ..arm_base import REFLEX, ArmFault, BasePose, CartesianArmDriver, RawArmState
from .config import URArmConfig
from .robotiq import RobotiqSocketGripper

UNLOCK_DELAY_S = 5.0
"""UR controllers refuse to unlock a protective stop earlier than this after it happened."""


def load_sdk() -> SimpleNamespace:
    """The ur-rtde classes the driver uses (one namespace, so tests can pass their own)."""
    control = require_sdk("rtde_control", "ur", "UR")
    receive = require_sdk("rtde_receive", "ur", "UR")
    dashboard = require_sdk("dashboard_client", "ur", "UR")
    return SimpleNamespace(
        RTDEControlInterface=control.RTDEControlInterface,
        RTDEReceiveInterface=receive.RTDEReceiveInterface,
        DashboardClient=dashboard.DashboardClient,
        RobotiqGripper=RobotiqSocketGripper,
    )


class URArm(CartesianArmDriver):
    name = "ur"

    def __init__(self, config: URArmConfig, cell: CellConfig, sdk: SimpleNamespace | None = None):
        super().__init__(cell)
        self.config = config
        self._sdk = sdk
        self.control = None
        self.receive = None
        self.gripper = None
        self._moving = False
        self._protective_since_s: float | None = None

    @property
    def sdk(self) -> SimpleNamespace:
        if self._sdk is None:
            self._sdk = load_sdk()
        return self._sdk

    def _open(self) -> None:
        sdk = self.sdk
        self.receive = sdk.RTDEReceiveInterface(self.config.ip)
        self.control = sdk.RTDEControlInterface(self.config.ip)
        if self.config.gripper:
            self.gripper = sdk.RobotiqGripper(self.config.ip, self.config.gripper_port)
            self.gripper.connect()

    def _read(self) -> RawArmState:
        tcp = np.asarray(self.receive.getActualTCPPose(), dtype=np.float64)
        width = 0.0
        if self.gripper is not None:
            width = (1.0 - self.gripper.get("POS") / 255.0) * self.config.gripper_max_width_m
        return RawArmState(
            q_rad=np.asarray(self.receive.getActualQ(), dtype=np.float64),
            dq_rad_s=np.asarray(self.receive.getActualQd(), dtype=np.float64),
            ee=BasePose(tcp[:3], rotvec_to_matrix(tcp[3:])),
            gripper_width_m=width,
        )

    def _send(self, target: BasePose, gripper_closed: float | None) -> None:
        config, dt = self.config, self.cell.control_dt_s
        if config.mode == "servo":
            pose = [*map(float, target.pos_m), *map(float, matrix_to_rotvec(target.rot))]
            # speed and acceleration are ignored by servoL; time is how long this target is tracked.
            accepted = self.control.servoL(pose, 0.0, 0.0, dt, config.lookahead_time_s, config.servo_gain)
        else:
            tcp = np.asarray(self.receive.getActualTCPPose(), dtype=np.float64)
            linear = (target.pos_m - tcp[:3]) / dt
            angular = matrix_to_rotvec(target.rot @ rotvec_to_matrix(tcp[3:]).T) / dt
            accepted = self.control.speedL([*map(float, linear), *map(float, angular)], config.acceleration_m_s2, dt)
        self._check_accepted(accepted, "servoL" if config.mode == "servo" else "speedL")
        self._move_gripper(gripper_closed)

    def _send_joints(self, q_rad: np.ndarray, gripper_closed: float | None) -> None:
        config, dt = self.config, self.cell.control_dt_s
        if config.mode == "servo":
            accepted = self.control.servoJ([*map(float, q_rad)], 0.0, 0.0, dt, config.lookahead_time_s, config.servo_gain)
        else:
            q_now = np.asarray(self.receive.getActualQ(), dtype=np.float64)
            accepted = self.control.speedJ([*map(float, (q_rad - q_now) / dt)], config.joint_acceleration_rad_s2, dt)
        self._check_accepted(accepted, "servoJ" if config.mode == "servo" else "speedJ")
        self._move_gripper(gripper_closed)

    def _check_accepted(self, accepted: bool, call: str) -> None:
        if not accepted:
            raise ArmFault(f"UR refused {call}: is the pendant in remote control mode and the RTDE control script "
                           "running? Reconnect to restart it")
        self._moving = True

    def _move_gripper(self, gripper_closed: float | None) -> None:
        if gripper_closed is not None and self.gripper is not None:
            self.gripper.move(round(gripper_closed * 255), self.config.gripper_speed, self.config.gripper_force)

    def _check_faults(self) -> list[Violation]:
        if self.receive.isEmergencyStopped():
            raise ArmFault("UR emergency stop is pressed: release it, then reconnect")
        if not self.receive.isProtectiveStopped():
            self._protective_since_s = None
            return []
        if not self.config.auto_recover:
            raise ArmFault(
                "UR protective stop: clear the cause, unlock it on the pendant and reconnect; "
                "set arm.auto_recover: true to unlock automatically"
            )
        now_s = time.monotonic()
        if self._protective_since_s is None:
            self._protective_since_s = now_s
        wait_s = self._protective_since_s + UNLOCK_DELAY_S - now_s
        if wait_s > 0:
            return [Violation(REFLEX, f"UR protective stop; holding, unlocking in {wait_s:.1f} s")]
        self.recover()
        return [Violation(REFLEX, "UR protective stop; unlocked, script re-uploaded, holding the current pose")]

    def recover(self) -> None:
        """Unlock a protective stop (dashboard server), restart the control script, latch the pose."""
        dashboard = self.sdk.DashboardClient(self.config.ip)
        dashboard.connect()
        dashboard.closeSafetyPopup()
        dashboard.unlockProtectiveStop()
        dashboard.disconnect()
        self.control.reuploadScript()
        self._moving = False
        self._protective_since_s = None
        self.reset_target()

    def stop(self) -> None:
        """Decelerate to rest, leave servo/speed mode, and latch the measured pose."""
        if self._moving:
            if self.config.mode == "servo":
                self.control.servoStop(self.config.stop_deceleration_m_s2)
            else:
                self.control.speedStop(self.config.stop_deceleration_m_s2)
            self._moving = False
        self.reset_target()

    def _close(self) -> None:
        self.stop()
        self.control.stopScript()
        self.control.disconnect()
        self.receive.disconnect()
        if self.gripper is not None:
            self.gripper.disconnect()
