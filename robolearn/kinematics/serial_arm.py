"""Serial arms from their manufacturers' published kinematics, with a parallel gripper.

A ``SerialArmModel`` holds one arm's kinematic chain (the pose of every joint's body in its
parent, derived from the published Denavit–Hartenberg table in the convention the manufacturer
uses), its joint limits, the masses and radii of its links, and its gripper. Forward kinematics
(``tcp_pose``) is numpy only, so real-arm drivers, the cell check, the SafetyFilter and the ROS
nodes use it without the simulator; the twin builds its MJCF from the same model
(``robolearn.sim.robot_mjcf``), so the twin's kinematics equal the real arm's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robolearn.kinematics.rotations import quat_to_matrix

Pose = tuple[tuple[float, float, float], tuple[float, float, float, float]]
"""``(pos_m, quat_wxyz)`` of a body in its parent."""

@dataclass(frozen=True)
class JointSpec:
    name: str
    lower_rad: float
    upper_rad: float
    max_vel_rad_s: float
    max_torque_nm: float


@dataclass(frozen=True)
class GripperSpec:
    """A parallel gripper on the flange: a palm box, two fingers on slide joints, and the tool
    centre point.

    tcp_m: tool centre point along the flange z. yaw_rad: rotation of the gripper about the flange z
    (the fingers close along the rotated y). finger_travel_m: travel of each finger (the opening is
    twice that). palm_half_size_m / palm_center_m: the palm box. finger_base_m: where the fingers'
    slide joints sit along the flange z; pad_half_size_m / pad_center_m: finger pads in the finger
    frame. max_force_n: force of the finger actuator.
    """

    tcp_m: float
    yaw_rad: float
    finger_travel_m: float
    palm_half_size_m: tuple[float, float, float]
    palm_center_m: float
    palm_mass_kg: float
    finger_base_m: float
    pad_half_size_m: tuple[float, float, float]
    pad_center_m: tuple[float, float]
    max_force_n: float = 40.0


@dataclass(frozen=True)
class SerialArmModel:
    """One arm. link_poses: the body of joint i in its parent, for i = 1..n, then the flange in the
    body of joint n (``n + 1`` poses). link_mass_kg / link_inertia_kg_m2: per joint body (isotropic
    inertia about the joint origin). link_radius_m: capsule radius of each link's geometry."""

    name: str
    joints: tuple[JointSpec, ...]
    link_poses: tuple[Pose, ...]
    link_mass_kg: tuple[float, ...]
    link_inertia_kg_m2: tuple[float, ...]
    link_radius_m: tuple[float, ...]
    base_radius_m: float
    colors: tuple[str, str]
    gripper: GripperSpec

    def __post_init__(self) -> None:
        n = len(self.joints)
        sizes = {"link_poses": (len(self.link_poses), n + 1), "link_mass_kg": (len(self.link_mass_kg), n),
                 "link_inertia_kg_m2": (len(self.link_inertia_kg_m2), n), "link_radius_m": (len(self.link_radius_m), n)}
        wrong = {k: got for k, (got, want) in sizes.items() if got != want}
        if wrong:
            raise ValueError(f"{self.name}: {n} joints but {wrong} entries")

    @property
    def q_lower_rad(self) -> tuple[float, ...]:
        return tuple(j.lower_rad for j in self.joints)

    @property
    def q_upper_rad(self) -> tuple[float, ...]:
        return tuple(j.upper_rad for j in self.joints)

    @property
    def max_torque_nm(self) -> tuple[float, ...]:
        return tuple(j.max_torque_nm for j in self.joints)

    def tcp_pose(self, q_rad: np.ndarray, tcp_offset_m: float | None = None) -> np.ndarray:
        """Forward kinematics: the ``(4, 4)`` pose of the tool centre point in the robot base frame
        at joint positions ``q_rad`` ``(n_joints,)`` (the pose the twin's ``tcp`` site has)."""
        pose = np.eye(4)
        for link, q in zip(self.link_poses, q_rad):
            pose = pose @ _pose_matrix(link) @ _rot_z_matrix(float(q))
        tcp_m = self.gripper.tcp_m if tcp_offset_m is None else float(tcp_offset_m)
        tool = _rot_z_matrix(self.gripper.yaw_rad)
        tool[2, 3] = tcp_m
        return pose @ _pose_matrix(self.link_poses[-1]) @ tool


def _rot_z_matrix(angle_rad: float) -> np.ndarray:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([[c, -s, 0.0, 0.0], [s, c, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])


def _pose_matrix(pose: Pose) -> np.ndarray:
    pos, quat = pose
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = quat_to_matrix(quat), pos
    return out


def _rot_x_quat(alpha_rad: float) -> tuple[float, float, float, float]:
    return (math.cos(alpha_rad / 2), math.sin(alpha_rad / 2), 0.0, 0.0)


def modified_dh_chain(rows: tuple[tuple[float, float, float], ...]) -> tuple[Pose, ...]:
    """Body poses from a modified (Craig) DH table. rows: ``(a_{i-1} m, d_i m, alpha_{i-1} rad)``
    for joints 1..n, then one more row for the flange in frame n. Link i in link i−1 is
    ``RotX(alpha) TransX(a) TransZ(d)`` (the joint turns about the new z, so TransZ commutes)."""
    return tuple(((a, -math.sin(alpha) * d, math.cos(alpha) * d), _rot_x_quat(alpha)) for a, d, alpha in rows)


def standard_dh_chain(rows: tuple[tuple[float, float, float], ...]) -> tuple[Pose, ...]:
    """Body poses from a standard (classic) DH table. rows: ``(a_i m, d_i m, alpha_i rad)`` for
    joints 1..n. Joint i turns about z_{i−1}, so its body sits at frame i−1: the first at the base,
    each next one ``TransZ(d) TransX(a) RotX(alpha)`` of the previous row further, and the flange
    (frame n) that much beyond the last."""
    identity: Pose = ((0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0))
    return (identity, *(((a, 0.0, d), _rot_x_quat(alpha)) for a, d, alpha in rows))


def rod_inertia_kg_m2(mass_kg: float, length_m: float, radius_m: float) -> float:
    """Transverse inertia of a solid cylinder about its centre, used isotropically."""
    return mass_kg * (3 * radius_m**2 + length_m**2) / 12.0


def robot_models() -> dict[str, SerialArmModel]:
    """The built-in models by the name a cell gives in ``robot.model``."""
    from robolearn.kinematics.panda import PANDA
    from robolearn.kinematics.ur5e import UR5E
    from robolearn.kinematics.xarm7 import XARM7

    return {m.name: m for m in (PANDA, UR5E, XARM7)}
