"""UFACTORY xArm 7 with the xArm Gripper.

Kinematics: the modified DH parameters UFACTORY publishes ("Kinematic and Dynamic Parameters of
xArm 7", link masses of model 1); frame 7 is the tool flange. Joint limits from the xArm SDK's
defaults, joint speed 180°/s, joint torques as in UFACTORY's robot description. The xArm Gripper's
tool centre point is 0.172 m beyond the flange; set ``robot.tcp_offset_m`` to the TCP offset
configured in UFACTORY Studio.
"""

from __future__ import annotations

import math

from robolearn.kinematics.serial_arm import (
    GripperSpec,
    JointSpec,
    SerialArmModel,
    modified_dh_chain,
    rod_inertia_kg_m2,
)

# (a_{i-1} m, d_i m, alpha_{i-1} rad) for joints 1..7, then the flange (frame 7 itself).
XARM7_DH = (
    (0.0, 0.267, 0.0),
    (0.0, 0.0, -math.pi / 2),
    (0.0, 0.293, math.pi / 2),
    (0.0525, 0.0, math.pi / 2),
    (0.0775, 0.3425, math.pi / 2),
    (0.0, 0.0, math.pi / 2),
    (0.076, 0.097, -math.pi / 2),
    (0.0, 0.0, 0.0),
)
XARM7_Q_LOWER_RAD = (-2 * math.pi, -2.059, -2 * math.pi, -0.19198, -2 * math.pi, -1.69297, -2 * math.pi)
XARM7_Q_UPPER_RAD = (2 * math.pi, 2.0944, 2 * math.pi, 3.927, 2 * math.pi, math.pi, 2 * math.pi)
XARM7_DQ_MAX_RAD_S = (math.pi,) * 7
XARM7_TAU_MAX_NM = (50.0, 50.0, 30.0, 30.0, 30.0, 20.0, 20.0)
XARM7_LINK_MASS_KG = (2.177, 1.716, 1.485, 1.574, 1.209, 1.214, 0.17)
XARM7_LINK_RADIUS_M = (0.05, 0.05, 0.045, 0.045, 0.04, 0.04, 0.035)

_poses = modified_dh_chain(XARM7_DH)
XARM7 = SerialArmModel(
    name="xarm7",
    joints=tuple(JointSpec(f"joint{i + 1}", *limits)
                 for i, limits in enumerate(zip(XARM7_Q_LOWER_RAD, XARM7_Q_UPPER_RAD, XARM7_DQ_MAX_RAD_S, XARM7_TAU_MAX_NM))),
    link_poses=_poses,
    link_mass_kg=XARM7_LINK_MASS_KG,
    link_inertia_kg_m2=tuple(max(0.005, rod_inertia_kg_m2(m, math.dist((0, 0, 0), nxt[0]), r))
                             for m, nxt, r in zip(XARM7_LINK_MASS_KG, _poses[1:], XARM7_LINK_RADIUS_M)),
    link_radius_m=XARM7_LINK_RADIUS_M,
    base_radius_m=0.065,
    colors=("0.9 0.9 0.9 1", "0.2 0.2 0.22 1"),
    gripper=GripperSpec(tcp_m=0.172, yaw_rad=0.0, finger_travel_m=0.0425, palm_half_size_m=(0.035, 0.06, 0.05),
                        palm_center_m=0.05, palm_mass_kg=0.82, finger_base_m=0.118, pad_half_size_m=(0.01, 0.004, 0.02),
                        pad_center_m=(0.004, 0.054), max_force_n=30.0),
)
