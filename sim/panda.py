"""Franka Emika Panda from the manufacturer's published kinematics, with primitive geometry.

Kinematics: the modified (Craig) Denavit–Hartenberg parameters, joint limits and joint velocity
limits from Franka's documentation ("Robot and interface specifications"), so forward kinematics
and limits match the real arm exactly; geometry is capsules and boxes (a Menagerie checkout gives
full-fidelity meshes: set ``robot.model: mjcf``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# (a_{i-1} m, d_i m, alpha_{i-1} rad) for joints 1..7, then the flange (Craig convention).
PANDA_DH = (
    (0.0, 0.333, 0.0),
    (0.0, 0.0, -math.pi / 2),
    (0.0, 0.316, math.pi / 2),
    (0.0825, 0.0, math.pi / 2),
    (-0.0825, 0.384, -math.pi / 2),
    (0.0, 0.0, math.pi / 2),
    (0.088, 0.0, math.pi / 2),
)
PANDA_FLANGE_D_M = 0.107
# The Franka Hand: tool centre point 0.1034 m beyond the flange, rotated −45° about the flange z.
PANDA_TCP_D_M = 0.1034
PANDA_HAND_YAW_RAD = -math.pi / 4
PANDA_Q_LOWER_RAD = (-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973)
PANDA_Q_UPPER_RAD = (2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973)
PANDA_DQ_MAX_RAD_S = (2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61)
PANDA_TAU_MAX_NM = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)
PANDA_FINGER_MAX_M = 0.04
PANDA_LINK_MASS_KG = (4.97, 0.65, 3.23, 3.59, 1.23, 1.67, 0.74)


@dataclass(frozen=True)
class JointSpec:
    name: str
    lower_rad: float
    upper_rad: float
    max_vel_rad_s: float
    max_torque_nm: float


PANDA_JOINTS = tuple(
    JointSpec(f"joint{i + 1}", lo, hi, v, t)
    for i, (lo, hi, v, t) in enumerate(zip(PANDA_Q_LOWER_RAD, PANDA_Q_UPPER_RAD, PANDA_DQ_MAX_RAD_S, PANDA_TAU_MAX_NM))
)


def _fmt(values) -> str:
    return " ".join(f"{v:.6g}" for v in values)


def dh_body_pose(a_m: float, d_m: float, alpha_rad: float) -> tuple[tuple[float, float, float], tuple[float, ...]]:
    """Pose of link i in link i−1 for modified DH: ``RotX(alpha) TransX(a) TransZ(d)``; the joint
    turns about the link's z. Returns ``(pos_m, quat_wxyz)``."""
    pos = (a_m, -math.sin(alpha_rad) * d_m, math.cos(alpha_rad) * d_m)
    quat = (math.cos(alpha_rad / 2), math.sin(alpha_rad / 2), 0.0, 0.0)
    return pos, quat


def _link_geoms(index: int, next_pos: tuple[float, float, float]) -> str:
    """A capsule from the joint axis to the next joint's origin, plus a joint housing."""
    rgba = "0.95 0.95 0.95 1" if index % 2 == 0 else "0.25 0.25 0.28 1"
    geoms = [f'<geom class="panda_link" type="cylinder" size="0.06 0.06" rgba="{rgba}"/>']
    length = float(np.linalg.norm(next_pos))
    if length > 1e-6:
        geoms.append(
            f'<geom class="panda_link" type="capsule" size="0.05" fromto="0 0 0 {_fmt(next_pos)}" rgba="{rgba}"/>'
        )
    return "\n".join(geoms)


def panda_mjcf_body(base_pos_m, base_yaw_rad: float, wrist_cameras_xml: str = "") -> str:
    """The ``<body>`` tree of the Panda (arm + hand + fingers) for the worldbody.

    Named elements used by the twin: joints ``joint1..7``, ``finger_joint1/2``; site ``tcp`` at
    the tool centre point (z along the approach direction); body ``hand`` (wrist cameras attach
    here, ``wrist_cameras_xml`` is inserted into it).
    """
    bodies: list[str] = []
    closing: list[str] = []
    params = list(PANDA_DH) + [(0.0, PANDA_FLANGE_D_M, 0.0)]
    for i, spec in enumerate(PANDA_JOINTS):
        pos, quat = dh_body_pose(*params[i])
        next_pos, _ = dh_body_pose(*params[i + 1])
        bodies.append(
            f'<body name="link{i + 1}" pos="{_fmt(pos)}" quat="{_fmt(quat)}" gravcomp="1">\n'
            f'<inertial pos="0 0 0" mass="{PANDA_LINK_MASS_KG[i]}" diaginertia="0.02 0.02 0.02"/>\n'
            f'<joint name="{spec.name}" class="panda_joint" range="{spec.lower_rad} {spec.upper_rad}"/>\n'
            f"{_link_geoms(i, next_pos)}"
        )
        closing.append("</body>")
    half_yaw = PANDA_HAND_YAW_RAD / 2
    hand = f"""<body name="hand" pos="0 0 {PANDA_FLANGE_D_M}" quat="{math.cos(half_yaw):.6g} 0 0 {math.sin(half_yaw):.6g}" gravcomp="1">
<inertial pos="0 0 0.04" mass="0.73" diaginertia="0.002 0.002 0.001"/>
<geom class="panda_link" type="box" size="0.025 0.1 0.03" pos="0 0 0.04" rgba="0.95 0.95 0.95 1"/>
<site name="tcp" pos="0 0 {PANDA_TCP_D_M}" size="0.005" rgba="1 0 0 0"/>
{wrist_cameras_xml}
<body name="left_finger" pos="0 0 0.0584" gravcomp="1">
<inertial pos="0 0 0.02" mass="0.015" diaginertia="1e-5 1e-5 1e-5"/>
<joint name="finger_joint1" class="panda_finger" axis="0 1 0"/>
<geom class="panda_finger_pad" type="box" size="0.01 0.006 0.02" pos="0 0.006 0.035"/>
</body>
<body name="right_finger" pos="0 0 0.0584" gravcomp="1">
<inertial pos="0 0 0.02" mass="0.015" diaginertia="1e-5 1e-5 1e-5"/>
<joint name="finger_joint2" class="panda_finger" axis="0 -1 0"/>
<geom class="panda_finger_pad" type="box" size="0.01 0.006 0.02" pos="0 -0.006 0.035"/>
</body>
</body>"""
    half_base = base_yaw_rad / 2
    return (
        f'<body name="panda_base" pos="{_fmt(base_pos_m)}" quat="{math.cos(half_base):.6g} 0 0 {math.sin(half_base):.6g}">\n'
        '<geom class="panda_link" type="cylinder" size="0.07 0.05" pos="0 0 0.05" rgba="0.95 0.95 0.95 1"/>\n'
        + "\n".join(bodies)
        + "\n"
        + hand
        + "\n"
        + "\n".join(closing)
        + "\n</body>"
    )


PANDA_DEFAULTS = f"""<default class="panda">
<default class="panda_joint"><joint axis="0 0 1" damping="0.5" armature="0.1" limited="true"/></default>
<default class="panda_link"><geom contype="0" conaffinity="0" group="1"/></default>
<default class="panda_finger"><joint type="slide" range="0 {PANDA_FINGER_MAX_M}" damping="10" armature="0.01" limited="true"/></default>
<default class="panda_finger_pad"><geom contype="1" conaffinity="1" friction="1.5 0.05 0.001" condim="4" solref="0.005 1" rgba="0.2 0.2 0.2 1" group="1"/></default>
</default>"""

# Arm joints are torque-driven by the twin's controller (``qfrc_applied``, clipped to
# PANDA_TAU_MAX_NM); the fingers by a position actuator, coupled by an equality.
PANDA_ACTUATORS = (
    f'<position name="gripper" joint="finger_joint1" kp="300" kv="20" ctrlrange="0 {PANDA_FINGER_MAX_M}"'
    ' forcerange="-40 40"/>'
)

PANDA_EQUALITY = '<joint joint1="finger_joint1" joint2="finger_joint2" polycoef="0 1 0 0 0" solref="0.005 1"/>'
