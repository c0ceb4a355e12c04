"""MJCF for the built-in arms (``robolearn.kinematics``): the body tree, joint and finger classes,
the gripper actuator, with primitive geometry (capsules and boxes; a Menagerie checkout gives
full-fidelity meshes: ``robot.model: mjcf``). The bodies sit where the arm's published DH table puts
them, so the twin's forward kinematics and limits equal the real arm's.

Names in the generated MJCF, used by the twin's controller: joints ``joint1..n``,
``finger_joint1/2``; site ``tcp`` at the tool centre point (z along the approach direction); body
``hand`` (wrist cameras attach there); actuator ``gripper``.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

from robolearn.kinematics.serial_arm import Pose, SerialArmModel

JOINT_DAMPING_NMS_RAD = 0.5
JOINT_ARMATURE_KG_M2 = 0.1
GRIPPER_KP_N_M = 300.0
GRIPPER_KV_NS_M = 20.0


def _fmt(values) -> str:
    """Numbers for MJCF attributes, precise enough that the compiled kinematics equal the DH table."""
    return " ".join(f"{float(v):.12g}" for v in values)


def _yaw_quat(yaw_rad: float) -> str:
    return _fmt((math.cos(yaw_rad / 2), 0.0, 0.0, math.sin(yaw_rad / 2)))


def _link_geoms(model: SerialArmModel, index: int, next_pos: tuple[float, float, float]) -> str:
    """A joint housing on the joint axis and a capsule to the next joint's origin."""
    rgba = model.colors[index % 2]
    radius = model.link_radius_m[index]
    housing = radius + 0.01
    geoms = [f'<geom class="robot_link" type="cylinder" size="{housing:.6g} {housing:.6g}" rgba="{rgba}"/>']
    if float(np.linalg.norm(next_pos)) > 1e-6:
        geoms.append(f'<geom class="robot_link" type="capsule" size="{radius:.6g}" fromto="0 0 0 {_fmt(next_pos)}" rgba="{rgba}"/>')
    return "\n".join(geoms)


def _hand_xml(model: SerialArmModel, flange: Pose, wrist_cameras_xml: str, tcp_m: float) -> str:
    g = model.gripper
    flange_pos, flange_quat = flange
    pad = _fmt(g.pad_half_size_m)
    pad_y, pad_z = g.pad_center_m
    finger = """<body name="{side}_finger" pos="0 0 {base:.6g}" gravcomp="1">
<inertial pos="0 0 0.02" mass="0.015" diaginertia="1e-5 1e-5 1e-5"/>
<joint name="{joint}" class="robot_finger" axis="0 {sign}1 0"/>
<geom class="robot_finger_pad" type="box" size="{pad}" pos="0 {sign}{pad_y:.6g} {pad_z:.6g}"/>
</body>"""
    fingers = "\n".join(finger.format(side=side, base=g.finger_base_m, joint=joint, sign=sign, pad=pad, pad_y=pad_y, pad_z=pad_z)
                        for side, joint, sign in (("left", "finger_joint1", ""), ("right", "finger_joint2", "-")))
    # The flange frame, then the gripper's yaw about it (two bodies would add nothing to the physics).
    quat = np.empty(4)
    mujoco.mju_mulQuat(quat, np.asarray(flange_quat, float), np.array([math.cos(g.yaw_rad / 2), 0.0, 0.0, math.sin(g.yaw_rad / 2)]))
    return f"""<body name="hand" pos="{_fmt(flange_pos)}" quat="{_fmt(quat)}" gravcomp="1">
<inertial pos="0 0 {g.palm_center_m:.6g}" mass="{g.palm_mass_kg:.6g}" diaginertia="0.002 0.002 0.001"/>
<geom class="robot_link" type="box" size="{_fmt(g.palm_half_size_m)}" pos="0 0 {g.palm_center_m:.6g}" rgba="{model.colors[0]}"/>
<site name="tcp" pos="0 0 {tcp_m:.6g}" size="0.005" rgba="1 0 0 0"/>
{wrist_cameras_xml}
{fingers}
</body>"""


def arm_body_xml(model: SerialArmModel, base_pos_m, base_yaw_rad: float, wrist_cameras_xml: str = "",
                 tcp_offset_m: float | None = None) -> str:
    """The ``<body>`` tree of the arm, hand and fingers for the worldbody. ``wrist_cameras_xml`` is
    inserted into the hand; ``tcp_offset_m`` overrides the gripper's tool centre point."""
    bodies, closing = [], []
    for i, joint in enumerate(model.joints):
        pos, quat = model.link_poses[i]
        next_pos = model.link_poses[i + 1][0]
        bodies.append(
            f'<body name="link{i + 1}" pos="{_fmt(pos)}" quat="{_fmt(quat)}" gravcomp="1">\n'
            f'<inertial pos="0 0 0" mass="{model.link_mass_kg[i]:.6g}" diaginertia="{_fmt([model.link_inertia_kg_m2[i]] * 3)}"/>\n'
            f'<joint name="{joint.name}" class="robot_joint" range="{joint.lower_rad} {joint.upper_rad}"/>\n'
            f"{_link_geoms(model, i, next_pos)}"
        )
        closing.append("</body>")
    tcp_m = model.gripper.tcp_m if tcp_offset_m is None else float(tcp_offset_m)
    hand = _hand_xml(model, model.link_poses[-1], wrist_cameras_xml, tcp_m)
    r = model.base_radius_m
    return (
        f'<body name="robot_base" pos="{_fmt(base_pos_m)}" quat="{_yaw_quat(base_yaw_rad)}">\n'
        f'<geom class="robot_link" type="cylinder" size="{r:.6g} 0.05" pos="0 0 0.05" rgba="{model.colors[0]}"/>\n'
        + "\n".join(bodies) + "\n" + hand + "\n" + "\n".join(closing) + "\n</body>"
    )


def arm_defaults_xml(model: SerialArmModel) -> str:
    """The default classes the arm's bodies use (goes inside the document's ``<default>``)."""
    return f"""<default class="robot">
<default class="robot_joint"><joint axis="0 0 1" damping="{JOINT_DAMPING_NMS_RAD}" armature="{JOINT_ARMATURE_KG_M2}" limited="true"/></default>
<default class="robot_link"><geom contype="0" conaffinity="0" group="1"/></default>
<default class="robot_finger"><joint type="slide" range="0 {model.gripper.finger_travel_m:.6g}" damping="10" armature="0.01" limited="true"/></default>
<default class="robot_finger_pad"><geom contype="1" conaffinity="1" friction="1.5 0.05 0.001" condim="4" solref="0.005 1" rgba="0.2 0.2 0.2 1" group="1"/></default>
</default>"""


def arm_actuators_xml(model: SerialArmModel) -> str:
    """The finger actuator (the arm joints are torque-driven by the twin's controller through
    ``qfrc_applied``, clipped to each joint's max torque)."""
    g = model.gripper
    return (f'<actuator><position name="gripper" joint="finger_joint1" kp="{GRIPPER_KP_N_M:g}" kv="{GRIPPER_KV_NS_M:g}" '
            f'ctrlrange="0 {g.finger_travel_m:.6g}" forcerange="-{g.max_force_n:g} {g.max_force_n:g}"/></actuator>')


def arm_equality_xml() -> str:
    """The two fingers move together."""
    return '<equality><joint joint1="finger_joint1" joint2="finger_joint2" polycoef="0 1 0 0 0" solref="0.005 1"/></equality>'


def arm_mjcf_document(model: SerialArmModel) -> str:
    """The arm alone as a standalone MJCF document (to inspect it, or to edit it and load it back
    with ``robot.model: mjcf``)."""
    return (f'<mujoco model="{model.name}"><compiler angle="radian" autolimits="true"/>'
            f"<default>{arm_defaults_xml(model)}</default><worldbody>{arm_body_xml(model, (0, 0, 0), 0.0)}</worldbody>"
            f"{arm_actuators_xml(model)}{arm_equality_xml()}</mujoco>")
