"""Universal Robots UR5e with a Robotiq 2F-85 gripper.

Kinematics: the standard DH parameters Universal Robots publishes ("DH parameters for calculations
of kinematics and dynamics"); their frame 0 is the controller's base frame and frame 6 the tool
flange, so the twin's poses are the ones the arm reports. Joint limits, speeds and torques from the
UR5e user manual and UR's "max joint torques" article (as in ``ur_description``'s
``joint_limits.yaml``); link masses from its ``physical_parameters.yaml``. The elbow is limited to
±π, as the arm's construction does. The 2F-85's tool centre point (0.174 m beyond the flange) is
the URCap's default; set ``robot.tcp_offset_m`` to the TCP configured on the pendant.
"""

from __future__ import annotations

import math

from robolearn.kinematics.serial_arm import (
    GripperSpec,
    JointSpec,
    SerialArmModel,
    rod_inertia_kg_m2,
    standard_dh_chain,
)

# (a_i m, d_i m, alpha_i rad) for joints 1..6.
UR5E_DH = (
    (0.0, 0.1625, math.pi / 2),
    (-0.425, 0.0, 0.0),
    (-0.3922, 0.0, 0.0),
    (0.0, 0.1333, math.pi / 2),
    (0.0, 0.0997, -math.pi / 2),
    (0.0, 0.0996, 0.0),
)
UR5E_JOINT_NAMES = ("shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint", "wrist_1_joint", "wrist_2_joint",
                    "wrist_3_joint")
UR5E_Q_LIMIT_RAD = (2 * math.pi, 2 * math.pi, math.pi, 2 * math.pi, 2 * math.pi, 2 * math.pi)
UR5E_DQ_MAX_RAD_S = (math.pi,) * 6
UR5E_TAU_MAX_NM = (150.0, 150.0, 150.0, 28.0, 28.0, 28.0)
UR5E_LINK_MASS_KG = (3.761, 8.058, 2.846, 1.37, 1.3, 0.365)
UR5E_LINK_RADIUS_M = (0.06, 0.055, 0.045, 0.04, 0.04, 0.035)

_poses = standard_dh_chain(UR5E_DH)
UR5E = SerialArmModel(
    name="ur5e",
    joints=tuple(JointSpec(name, -limit, limit, speed, torque)
                 for name, limit, speed, torque in zip(UR5E_JOINT_NAMES, UR5E_Q_LIMIT_RAD, UR5E_DQ_MAX_RAD_S, UR5E_TAU_MAX_NM)),
    link_poses=_poses,
    link_mass_kg=UR5E_LINK_MASS_KG,
    link_inertia_kg_m2=tuple(rod_inertia_kg_m2(m, math.dist((0, 0, 0), nxt[0]), r)
                             for m, nxt, r in zip(UR5E_LINK_MASS_KG, _poses[1:], UR5E_LINK_RADIUS_M)),
    link_radius_m=UR5E_LINK_RADIUS_M,
    base_radius_m=0.075,
    colors=("0.75 0.8 0.85 1", "0.3 0.55 0.75 1"),
    gripper=GripperSpec(tcp_m=0.174, yaw_rad=0.0, finger_travel_m=0.0425, palm_half_size_m=(0.04, 0.06, 0.05),
                        palm_center_m=0.05, palm_mass_kg=0.925, finger_base_m=0.12, pad_half_size_m=(0.011, 0.004, 0.019),
                        pad_center_m=(0.004, 0.054), max_force_n=100.0),
)
