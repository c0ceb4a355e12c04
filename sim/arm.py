"""The twin's arm: end-effector delta commands tracked by a compliant Cartesian controller.

Every command goes through the cell's ``SafetyFilter`` (workspace box, per-step caps, joint limits,
NaN/inf rejection), exactly as on the real arm. The controller is a Cartesian impedance law run at
every physics step (≥ 500 Hz)::

    tau = J^T (K_p e - K_d J dq) + N (k_null (q_posture - q) - d_null dq)

with gravity compensated by MuJoCo (``gravcomp``) and ``N`` the dynamically inconsistent null-space
projector ``I - J^T J^+T`` that keeps the elbow near ``q_posture`` (home, or the target of the last
joint command) without disturbing the end effector.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mujoco
import numpy as np

from robolearn.interfaces import AppliedCommand, ArmState, EEDeltaCommand, JointCommand, Violation
from robolearn.safety import SafetyFilter

if TYPE_CHECKING:
    from robolearn.sim.twin import Twin

NULL_STIFFNESS_NM_RAD = 10.0
NULL_DAMPING_NMS_RAD = 2.0
JOINT_DAMPING_NMS_RAD = 1.0
APPARENT_MASS_KG = 2.0
APPARENT_INERTIA_KG_M2 = 0.05
DLS_DAMPING = 1e-4 * np.eye(6)
PROJECTOR_EVERY_STEPS = 5


def quat_to_mat(quat_wxyz: np.ndarray) -> np.ndarray:
    mat = np.empty(9)
    mujoco.mju_quat2Mat(mat, np.asarray(quat_wxyz, dtype=np.float64))
    return mat.reshape(3, 3)


def mat_to_quat(mat: np.ndarray) -> np.ndarray:
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, np.asarray(mat, dtype=np.float64).reshape(9))
    return quat


def axis_angle_to_mat(rotation_rad: np.ndarray) -> np.ndarray:
    angle = float(np.linalg.norm(rotation_rad))
    if angle < 1e-12:
        return np.eye(3)
    quat = np.empty(4)
    mujoco.mju_axisAngle2Quat(quat, np.asarray(rotation_rad, dtype=np.float64) / angle, angle)
    return quat_to_mat(quat)


def orientation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Axis-angle ``(3,)`` rotating ``current`` to ``target`` (both 3×3), in the world frame."""
    quat = mat_to_quat(target @ current.T)
    velocity = np.empty(3)
    mujoco.mju_quat2Vel(velocity, quat, 1.0)
    return velocity


class SimArm:
    """Implements ``robolearn.interfaces.Arm`` on the twin.

    ``command`` filters and latches a new end-effector target; the twin's ``advance`` moves the arm
    towards it. ``stop`` latches the current pose as the target (the arm holds where it is).
    """

    name = "sim"

    def __init__(self, twin: Twin):
        self.twin = twin
        model, binding = twin.model, twin.binding
        linear = getattr(twin.cell.arm, "stiffness_n_m", 2000.0)
        angular = getattr(twin.cell.arm, "stiffness_nm_rad", 150.0)
        self.stiffness = np.array([linear] * 3 + [angular] * 3)
        # Critical damping for the arm's typical apparent mass and inertia at the tool.
        self.damping = 2.0 * np.sqrt(self.stiffness * np.array([APPARENT_MASS_KG] * 3 + [APPARENT_INERTIA_KG_M2] * 3))
        self.qpos_ids = np.array([model.joint(n).qposadr[0] for n in binding.joint_names])
        self.dof_ids = np.array([model.joint(n).dofadr[0] for n in binding.joint_names])
        self.site_id = model.site(binding.ee_site).id
        self.gripper_id = model.actuator(binding.gripper_actuator).id
        self.finger_qpos_ids = np.array([model.joint(n).qposadr[0] for n in binding.finger_joints], dtype=int)
        ranges = model.jnt_range[[model.joint(n).id for n in binding.joint_names]]
        self._kinematics = mujoco.MjData(model)
        self.safety = SafetyFilter(twin.cell.safety, ranges[:, 0].copy(), ranges[:, 1].copy(),
                                   tool_position_m=lambda q: self.tool_pose(q)[0])
        self.max_torque_nm = np.asarray(binding.max_torque_nm, dtype=np.float64)
        self.home_q_rad = np.asarray(twin.cell.robot.home_q_rad, dtype=np.float64)
        self.posture_q_rad = self.home_q_rad.copy()
        self._jac = np.zeros((6, model.nv))
        self._error = np.zeros(6)
        self._projector = np.eye(len(self.dof_ids))
        self._steps_since_projector = 0
        self.dof_slice = _as_slice(self.dof_ids)
        self.qpos_slice = _as_slice(self.qpos_ids)
        self.target_pos_m = np.zeros(3)
        self.target_rot = np.eye(3)
        self.gripper_closed = 0.0

    def connect(self) -> None:
        """Nothing to connect: the twin is in-process."""

    def disconnect(self) -> None:
        """Nothing to release."""

    @property
    def n_joints(self) -> int:
        return len(self.qpos_ids)

    def set_joint_positions(self, q_rad: np.ndarray) -> None:
        """Teleport the arm to ``q_rad`` ``(n_joints,)`` at rest, gripper open (resets and
        mirroring); the null-space posture returns to home."""
        self.posture_q_rad = self.home_q_rad.copy()
        data = self.twin.data
        data.qpos[self.qpos_ids] = q_rad
        data.qvel[self.dof_ids] = 0.0
        gripper_open = self.twin.binding.gripper_open_ctrl
        if len(self.finger_qpos_ids):
            data.qpos[self.finger_qpos_ids] = gripper_open
        data.ctrl[self.gripper_id] = gripper_open
        self.gripper_closed = 0.0

    def reset_target(self) -> None:
        """Latch the current end-effector pose as the controller's target."""
        data = self.twin.data
        self.target_pos_m = data.site_xpos[self.site_id].copy()
        self.target_rot = data.site_xmat[self.site_id].reshape(3, 3).copy()

    def state(self) -> ArmState:
        data = self.twin.data
        return ArmState(
            q_rad=data.qpos[self.qpos_ids].copy(),
            dq_rad_s=data.qvel[self.dof_ids].copy(),
            ee_pos_m=data.site_xpos[self.site_id].copy(),
            ee_quat_wxyz=mat_to_quat(data.site_xmat[self.site_id]),
            gripper_width_m=float(self._gripper_width_m()),
            stamp_ns=self.twin.time_ns,
        )

    def _gripper_width_m(self) -> float:
        if len(self.finger_qpos_ids):
            return float(self.twin.data.qpos[self.finger_qpos_ids].sum())
        return float(self.twin.data.ctrl[self.gripper_id])

    def _jacobian(self) -> np.ndarray:
        """``(6, n_joints)``: linear rows then angular rows, at the tool site."""
        mujoco.mj_jacSite(self.twin.model, self.twin.data, self._jac[:3], self._jac[3:], self.site_id)
        return self._jac[:, self.dof_slice]

    def tool_pose(self, q_rad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Forward kinematics: the tool centre point ``(pos_m (3,), rotation 3×3)`` in the cell frame
        at arm joint positions ``q_rad`` (the rest of the scene as it is now)."""
        model, scratch = self.twin.model, self._kinematics
        scratch.qpos[:] = self.twin.data.qpos
        scratch.qpos[self.qpos_ids] = q_rad
        mujoco.mj_kinematics(model, scratch)
        return scratch.site_xpos[self.site_id].copy(), scratch.site_xmat[self.site_id].reshape(3, 3).copy()

    def command(self, command: EEDeltaCommand) -> AppliedCommand:
        """Filter ``command`` and latch the new target; returns what will be tracked."""
        safe, violations = self.safety.filter_ee_delta(command, self.target_pos_m, self.target_rot)
        safe, joint_violations = self._respect_joint_limits(safe)
        violations += joint_violations
        self.target_pos_m = self.target_pos_m + safe.translation_m
        self.target_rot = _orthonormal(axis_angle_to_mat(safe.rotation_rad) @ self.target_rot)
        self._command_gripper(safe.gripper_closed)
        return AppliedCommand(safe, violations, self.twin.time_ns)

    def command_joints(self, command: JointCommand) -> AppliedCommand:
        """Filter a joint target and track it: the tool's pose at the target becomes the Cartesian
        target and the target itself the null-space posture (so a redundant arm settles there too)."""
        q_now = self.twin.data.qpos[self.qpos_ids].copy()
        safe, violations = self.safety.filter_joint_command(command, q_now, self.twin.cell.control_dt_s)
        self.target_pos_m, self.target_rot = self.tool_pose(safe.q_rad)
        self.posture_q_rad = safe.q_rad.copy()
        self._command_gripper(safe.gripper_closed)
        return AppliedCommand(safe, violations, self.twin.time_ns)

    def _command_gripper(self, gripper_closed: float) -> None:
        if np.isnan(gripper_closed):
            return
        self.gripper_closed = float(gripper_closed)
        binding = self.twin.binding
        self.twin.data.ctrl[self.gripper_id] = binding.gripper_open_ctrl + self.gripper_closed * (
            binding.gripper_closed_ctrl - binding.gripper_open_ctrl
        )

    def _respect_joint_limits(self, command: EEDeltaCommand) -> tuple[EEDeltaCommand, list[Violation]]:
        """Scale the motion down when the joint step it needs would leave the limits (less margin)."""
        q_now = self.twin.data.qpos[self.qpos_ids]
        twist = np.concatenate([command.translation_m, command.rotation_rad])
        if not np.any(twist):
            return command, []
        dq = np.linalg.pinv(self._jacobian(), rcond=1e-3) @ twist
        limited, violations = self.safety.filter_joint_target(q_now + dq, q_now, dt_s=self.twin.cell.control_dt_s)
        if not violations:
            return command, []
        scale = float(np.clip(np.min(np.where(np.abs(dq) > 1e-12, (limited - q_now) / np.where(dq == 0, 1, dq), 1.0)), 0.0, 1.0))
        return EEDeltaCommand(command.translation_m * scale, command.rotation_rad * scale, command.gripper_closed), violations

    def stop(self) -> None:
        """Hold: the current pose becomes the target; the gripper keeps its command."""
        self.reset_target()

    def apply_control(self) -> None:
        """One step of the Cartesian impedance law (called by the twin at every physics step)."""
        data = self.twin.data
        jacobian = self._jacobian()
        dq = data.qvel[self.dof_slice]
        r = (self.target_rot @ data.site_xmat[self.site_id].reshape(3, 3).T).ravel()
        error = self._error
        np.subtract(self.target_pos_m, data.site_xpos[self.site_id], out=error[:3])
        # sin(angle)·axis of the error rotation: the standard small-angle orientation error.
        error[3], error[4], error[5] = 0.5 * (r[7] - r[5]), 0.5 * (r[2] - r[6]), 0.5 * (r[3] - r[1])
        wrench = self.stiffness * error - self.damping * (jacobian @ dq)
        if self._steps_since_projector % PROJECTOR_EVERY_STEPS == 0:
            # N = I - J^T (J J^T + λI)^-1 J, the damped-least-squares null-space projector; J moves
            # little within a few physics steps, so it is refreshed at PROJECTOR_EVERY_STEPS.
            self._projector = np.eye(self.n_joints) - jacobian.T @ np.linalg.solve(jacobian @ jacobian.T + DLS_DAMPING, jacobian)
        self._steps_since_projector += 1
        null_torque = NULL_STIFFNESS_NM_RAD * (self.posture_q_rad - data.qpos[self.qpos_slice]) - NULL_DAMPING_NMS_RAD * dq
        torque = jacobian.T @ wrench + self._projector @ null_torque - JOINT_DAMPING_NMS_RAD * dq
        np.maximum(np.minimum(torque, self.max_torque_nm), -self.max_torque_nm, out=data.qfrc_applied[self.dof_slice])


def _as_slice(indices: np.ndarray) -> slice | np.ndarray:
    """A slice for contiguous indices (views instead of copies on the controller's hot path)."""
    if len(indices) and np.array_equal(indices, np.arange(indices[0], indices[0] + len(indices))):
        return slice(int(indices[0]), int(indices[0]) + len(indices))
    return indices


def _orthonormal(rotation: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(rotation)
    return u @ vt
