"""The twin's arm following a joint trajectory under physics, as a mirror of the real arm needs it.

A computed-torque joint controller (critically damped at ``bandwidth_hz``) tracks the straight line
between two joint samples over the interval between them, no faster than ``max_joint_vel_rad_s``
and within the arm's torque limits, so the twin's arm moves under physics and pushes the twin's
objects as the real arm does. Coriolis, gravity and passive forces (the twin's gravity compensation
and joint damping) are cancelled exactly.
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np


class JointTracker:
    """Runs ``twin``'s physics so that its arm joints follow given joint positions."""

    def __init__(self, twin: Any, bandwidth_hz: float, max_joint_vel_rad_s: float):
        self.twin = twin
        self.dofs, self.qpos_ids = twin.arm.dof_ids, twin.arm.qpos_ids
        omega = 2 * np.pi * bandwidth_hz
        self.kp, self.kd = omega**2, 2 * omega
        self.max_joint_vel_rad_s = max_joint_vel_rad_s
        self.max_torque_nm = twin.arm.max_torque_nm
        self._accel, self._force = np.zeros(twin.model.nv), np.zeros(twin.model.nv)
        self.q_ref_rad = np.zeros(len(self.dofs))

    @property
    def q_rad(self) -> np.ndarray:
        """The twin arm's joint positions now ``(n_joints,)``."""
        return self.twin.data.qpos[self.qpos_ids].copy()

    def sync(self, q_rad: np.ndarray) -> None:
        """Put the arm at ``q_rad`` ``(n_joints,)`` at rest, and track from there."""
        self.twin.arm.set_joint_positions(q_rad)
        self.q_ref_rad = np.asarray(q_rad, np.float64).copy()

    def follow(self, q_from_rad: np.ndarray, q_to_rad: np.ndarray, interval_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Run physics for ``interval_s`` tracking the line from ``q_from_rad`` to ``q_to_rad``; returns
        the time of every physics step since the start ``(n,)`` s and the arm's joints then ``(n, n_joints)``."""
        model, data = self.twin.model, self.twin.data
        velocity = (q_to_rad - q_from_rad) / interval_s
        n_steps = max(1, round(interval_s * self.twin.physics_hz))
        dt_s = interval_s / n_steps
        max_step_rad = self.max_joint_vel_rad_s * dt_s
        times_s, joints = np.empty(n_steps), np.empty((n_steps, len(self.dofs)))
        for i in range(n_steps):
            mujoco.mj_step1(model, data)
            on_line = q_from_rad + velocity * ((i + 1) * dt_s)
            step = np.clip(on_line - self.q_ref_rad, -max_step_rad, max_step_rad)
            self.q_ref_rad = self.q_ref_rad + step
            error = self.q_ref_rad - data.qpos[self.qpos_ids]
            error_rate = step / dt_s - data.qvel[self.dofs]
            self._accel[self.dofs] = self.kp * error + self.kd * error_rate
            mujoco.mj_mulM(model, data, self._force, self._accel)
            bias = data.qfrc_bias[self.dofs] - data.qfrc_passive[self.dofs]
            data.qfrc_applied[self.dofs] = np.clip(self._force[self.dofs] + bias, -self.max_torque_nm, self.max_torque_nm)
            mujoco.mj_step2(model, data)
            times_s[i], joints[i] = (i + 1) * dt_s, data.qpos[self.qpos_ids]
        return times_s, joints
