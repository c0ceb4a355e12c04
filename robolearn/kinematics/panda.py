"""Franka Emika Panda (and FR3, same kinematics) with the Franka Hand.

Kinematics: the modified (Craig) Denavit–Hartenberg parameters, joint limits, joint velocity and
torque limits from Franka's documentation ("Robot and interface specifications"). The Franka Hand's
tool centre point is 0.1034 m beyond the flange, the hand rotated −45° about the flange z.
"""

from __future__ import annotations

import math

from robolearn.kinematics.serial_arm import GripperSpec, JointSpec, SerialArmModel, modified_dh_chain

# (a_{i-1} m, d_i m, alpha_{i-1} rad) for joints 1..7, then the flange (Craig convention).
PANDA_DH = (
    (0.0, 0.333, 0.0),
    (0.0, 0.0, -math.pi / 2),
    (0.0, 0.316, math.pi / 2),
    (0.0825, 0.0, math.pi / 2),
    (-0.0825, 0.384, -math.pi / 2),
    (0.0, 0.0, math.pi / 2),
    (0.088, 0.0, math.pi / 2),
    (0.0, 0.107, 0.0),
)
PANDA_Q_LOWER_RAD = (-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973)
PANDA_Q_UPPER_RAD = (2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973)
PANDA_DQ_MAX_RAD_S = (2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61)
PANDA_TAU_MAX_NM = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)

PANDA = SerialArmModel(
    name="panda",
    joints=tuple(JointSpec(f"joint{i + 1}", *limits)
                 for i, limits in enumerate(zip(PANDA_Q_LOWER_RAD, PANDA_Q_UPPER_RAD, PANDA_DQ_MAX_RAD_S, PANDA_TAU_MAX_NM))),
    link_poses=modified_dh_chain(PANDA_DH),
    link_mass_kg=(4.97, 0.65, 3.23, 3.59, 1.23, 1.67, 0.74),
    link_inertia_kg_m2=(0.02,) * 7,
    link_radius_m=(0.05,) * 7,
    base_radius_m=0.07,
    colors=("0.95 0.95 0.95 1", "0.25 0.25 0.28 1"),
    gripper=GripperSpec(tcp_m=0.1034, yaw_rad=-math.pi / 4, finger_travel_m=0.04, palm_half_size_m=(0.025, 0.1, 0.03),
                        palm_center_m=0.04, palm_mass_kg=0.73, finger_base_m=0.0584, pad_half_size_m=(0.01, 0.006, 0.02),
                        pad_center_m=(0.006, 0.035)),
)
