"""What every hardware arm driver shares: the end-effector target, the SafetyFilter, the frames.

A driver subclasses ``CartesianArmDriver`` and implements five SDK-facing methods:
``_open`` (connect the SDK objects), ``_read`` (joint state, flange pose, gripper width in the
robot *base* frame), ``_send`` (one absolute end-effector target in the base frame, plus a gripper
target when it changed), ``_send_joints`` (one absolute joint target, plus the gripper) and
``_close``. Everything above the SDK call is common and identical to the twin's ``SimArm``: each
``command`` goes through ``robolearn.safety.SafetyFilter`` against the latched target, the target
moves by the filtered delta, and the returned ``AppliedCommand`` says what was sent and which rules
fired.

The end-effector rules (NaN/inf rejection, per-step translation and rotation caps, workspace box,
gripper range) are the twin's exactly. Joint commands (``command_joints``) get the twin's joint
rules too (limits less the margin, joint speed, and the workspace box at the target, by forward
kinematics): they need a built-in robot model (``robot.model: panda | ur5e | xarm7``), whose
published limits and kinematics the filter uses. Beyond that, joint limits on hardware are enforced
by the vendor controller (franky's joint-limit repulsion, the UR safety configuration, the xArm
firmware), which stops the arm with an error the driver reports as ``ArmFault`` or a ``reflex``
violation.

Frames: the cell frame (the one the SafetyFilter's workspace box is written in) has the robot base
at ``cell.robot.base_pos_m`` turned by ``cell.robot.base_yaw_rad`` about z; the SDKs speak in the
base frame. The driver converts both ways.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from robolearn.cell import ArmConfig, CellConfig
from robolearn.errors import RobolearnError
from robolearn.interfaces import AppliedCommand, ArmState, EEDeltaCommand, JointCommand, Violation, now_ns
from robolearn.kinematics import SerialArmModel, robot_models
from robolearn.kinematics.rotations import matrix_to_quat, orthonormalize, rotvec_to_matrix
from robolearn.safety import SafetyFilter

REFLEX = "reflex"
"""Violation kind reported when the arm's controller stopped on an error and the driver recovered."""


class ArmFault(RobolearnError, RuntimeError):
    """The arm's controller stopped (reflex, protective stop, error code); the message says how to recover."""


@dataclass
class HardwareArmConfig(ArmConfig):
    """Fields shared by the hardware arms.

    ip: the robot controller's address. gripper: drive the gripper. auto_recover: on a controller
    error (Franka reflex, UR protective stop, xArm error code) clear it, re-latch the current pose
    and report a ``reflex`` violation instead of raising ``ArmFault``.
    """

    ip: str = ""
    gripper: bool = True
    auto_recover: bool = False

    def __post_init__(self) -> None:
        if not self.ip:
            raise ValueError(f"arm.ip is required for a {self.type} arm (the robot controller's address)")


@dataclass
class BasePose:
    """A pose in the robot base frame: position ``(3,)`` m and rotation 3×3."""

    pos_m: np.ndarray
    rot: np.ndarray


@dataclass
class RawArmState:
    """What a driver reads from its SDK, in the base frame."""

    q_rad: np.ndarray
    dq_rad_s: np.ndarray
    ee: BasePose
    gripper_width_m: float


class CartesianArmDriver(ABC):
    """Implements ``robolearn.interfaces.Arm`` for an SDK that accepts absolute end-effector targets."""

    name = "arm"

    def __init__(self, cell: CellConfig):
        self.cell = cell
        self.robot_model = robot_models().get(cell.robot.model)
        if self.robot_model is None:
            self.safety = SafetyFilter(cell.safety)
        else:
            self.safety = SafetyFilter(cell.safety, np.array(self.robot_model.q_lower_rad), np.array(self.robot_model.q_upper_rad),
                                       tool_position_m=lambda q: self.tool_pose(q)[0])
        yaw = cell.robot.base_yaw_rad
        self._base_rot = np.array([[np.cos(yaw), -np.sin(yaw), 0.0], [np.sin(yaw), np.cos(yaw), 0.0], [0.0, 0.0, 1.0]])
        self._base_pos = np.asarray(cell.robot.base_pos_m, dtype=np.float64)
        self.target_pos_m = np.zeros(3)
        self.target_rot = np.eye(3)
        self.gripper_closed = float("nan")
        self.connected = False

    # SDK boundary, implemented per arm.
    @abstractmethod
    def _open(self) -> None: ...

    @abstractmethod
    def _read(self) -> RawArmState: ...

    @abstractmethod
    def _send(self, target: BasePose, gripper_closed: float | None) -> None:
        """Send one absolute target (base frame); ``gripper_closed`` in [0, 1] or None to leave it."""

    @abstractmethod
    def _send_joints(self, q_rad: np.ndarray, gripper_closed: float | None) -> None:
        """Send one absolute joint target ``(n_joints,)`` rad; ``gripper_closed`` as in ``_send``."""

    @abstractmethod
    def _close(self) -> None: ...

    def _check_faults(self) -> list[Violation]:
        """Raise ``ArmFault`` on a controller error, or recover and return a ``reflex`` violation."""
        return []

    # Frames.
    def to_base(self, pos_m: np.ndarray, rot: np.ndarray) -> BasePose:
        """Cell-frame position ``(3,)`` and rotation to the base frame."""
        inv = self._base_rot.T
        return BasePose(inv @ (np.asarray(pos_m, dtype=np.float64) - self._base_pos), inv @ rot)

    def to_cell(self, pose: BasePose) -> tuple[np.ndarray, np.ndarray]:
        """A base-frame pose as cell-frame position ``(3,)`` and rotation 3×3."""
        return self._base_rot @ pose.pos_m + self._base_pos, self._base_rot @ pose.rot

    def tool_pose(self, q_rad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Forward kinematics of the built-in robot model: the tool centre point at ``q_rad`` as
        cell-frame position ``(3,)`` and rotation 3×3 (``robot.tcp_offset_m`` must match the TCP set
        on the robot's controller)."""
        pose = self._require_robot_model().tcp_pose(q_rad, self.cell.robot.tcp_offset_m)
        return self.to_cell(BasePose(pose[:3, 3], pose[:3, :3]))

    def _require_robot_model(self) -> SerialArmModel:
        if self.robot_model is None:
            raise ArmFault(f"{self.name}: joint commands need a built-in robot model for the SafetyFilter's joint limits "
                           f"and workspace check; set robot.model to one of {', '.join(robot_models())} "
                           f"(the cell has {self.cell.robot.model!r})")
        return self.robot_model

    # The Arm protocol.
    def connect(self) -> None:
        """Open the SDK connection and latch the current end-effector pose as the target."""
        self._open()
        self.connected = True
        self.reset_target()

    def disconnect(self) -> None:
        if self.connected:
            self._close()
            self.connected = False

    def reset_target(self) -> None:
        """Latch the measured end-effector pose as the target (after connect, stop, recovery)."""
        pos, rot = self.to_cell(self._read().ee)
        self.target_pos_m, self.target_rot = pos, rot

    def state(self) -> ArmState:
        raw = self._read()
        pos, rot = self.to_cell(raw.ee)
        return ArmState(
            q_rad=np.asarray(raw.q_rad, dtype=np.float64),
            dq_rad_s=np.asarray(raw.dq_rad_s, dtype=np.float64),
            ee_pos_m=pos,
            ee_quat_wxyz=matrix_to_quat(rot),
            gripper_width_m=float(raw.gripper_width_m),
            stamp_ns=now_ns(),
        )

    def command(self, command: EEDeltaCommand) -> AppliedCommand:
        """Filter ``command`` through the SafetyFilter, move the target by it, and send the target."""
        if not self.connected:
            raise ArmFault(f"{self.name} arm is not connected; call connect() first")
        faults = self._check_faults()
        if faults:
            return AppliedCommand(EEDeltaCommand.hold(), faults, now_ns())
        safe, violations = self.safety.filter_ee_delta(command, self.target_pos_m, self.target_rot)
        self.target_pos_m = self.target_pos_m + safe.translation_m
        self.target_rot = orthonormalize(rotvec_to_matrix(safe.rotation_rad) @ self.target_rot)
        self._send(self.to_base(self.target_pos_m, self.target_rot), self._gripper_change(safe.gripper_closed))
        return AppliedCommand(safe, violations, now_ns())

    def command_joints(self, command: JointCommand) -> AppliedCommand:
        """Filter a joint target through the SafetyFilter, send it, and latch the tool's pose at it
        as the end-effector target (later ``command`` calls continue from there)."""
        if not self.connected:
            raise ArmFault(f"{self.name} arm is not connected; call connect() first")
        self._require_robot_model()
        q_now = np.asarray(self._read().q_rad, dtype=np.float64)
        faults = self._check_faults()
        if faults:
            return AppliedCommand(JointCommand(q_now), faults, now_ns())
        safe, violations = self.safety.filter_joint_command(command, q_now, self.cell.control_dt_s)
        self._send_joints(safe.q_rad, self._gripper_change(safe.gripper_closed))
        self.target_pos_m, self.target_rot = self.tool_pose(safe.q_rad)
        return AppliedCommand(safe, violations, now_ns())

    def _gripper_change(self, gripper_closed: float) -> float | None:
        """The gripper target to send: None when it is a hold (NaN) or unchanged."""
        if np.isnan(gripper_closed) or gripper_closed == self.gripper_closed:
            return None
        self.gripper_closed = float(gripper_closed)
        return self.gripper_closed
