"""Built-in robot models: forward kinematics equal the manufacturers' published DH tables (checked
against a DH product written here independently), limits are the published ones, and the twin's
controller drives each arm."""

from __future__ import annotations

import math
from pathlib import Path

import mujoco
import numpy as np
import pytest

from robolearn.cell import load_cell
from robolearn.config import ConfigError
from robolearn.interfaces import EEDeltaCommand
from robolearn.kinematics import robot_models
from robolearn.kinematics.panda import PANDA, PANDA_DH
from robolearn.kinematics.ur5e import UR5E, UR5E_DH
from robolearn.kinematics.xarm7 import XARM7, XARM7_DH
from robolearn.sim import Twin
from robolearn.sim.robot_mjcf import arm_mjcf_document

CELLS = Path(__file__).resolve().parents[1] / "configs" / "cells"


def rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1.0]])


def rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])


def trans(x: float, y: float, z: float) -> np.ndarray:
    out = np.eye(4)
    out[:3, 3] = (x, y, z)
    return out


def flange_modified_dh(rows, q) -> np.ndarray:
    """Craig: T = Π RotX(α_{i−1}) TransX(a_{i−1}) RotZ(θ_i) TransZ(d_i), then the flange row."""
    pose = np.eye(4)
    for (a, d, alpha), theta in zip(rows, [*q, 0.0]):
        pose = pose @ rot_x(alpha) @ trans(a, 0, 0) @ rot_z(theta) @ trans(0, 0, d)
    return pose


def flange_standard_dh(rows, q) -> np.ndarray:
    """Classic: T = Π RotZ(θ_i) TransZ(d_i) TransX(a_i) RotX(α_i)."""
    pose = np.eye(4)
    for (a, d, alpha), theta in zip(rows, q):
        pose = pose @ rot_z(theta) @ trans(0, 0, d) @ trans(a, 0, 0) @ rot_x(alpha)
    return pose


MODELS = [(PANDA, PANDA_DH, flange_modified_dh), (UR5E, UR5E_DH, flange_standard_dh), (XARM7, XARM7_DH, flange_modified_dh)]


@pytest.mark.parametrize(("model", "dh", "flange"), MODELS, ids=[m.name for m, _, _ in MODELS])
def test_flange_pose_matches_the_published_dh_table(model, dh, flange):
    mj = mujoco.MjModel.from_xml_string(arm_mjcf_document(model))
    data = mujoco.MjData(mj)
    rng = np.random.default_rng(0)
    n = len(model.joints)
    for _ in range(20):
        q = rng.uniform(np.maximum(model.q_lower_rad, -math.pi), np.minimum(model.q_upper_rad, math.pi))
        data.qpos[:n] = q
        mujoco.mj_kinematics(mj, data)
        expected = flange(dh, q)
        yaw = model.gripper.yaw_rad
        hand = data.body("hand")
        np.testing.assert_allclose(hand.xpos, expected[:3, 3], atol=1e-9)
        np.testing.assert_allclose(hand.xmat.reshape(3, 3), expected[:3, :3] @ rot_z(yaw)[:3, :3], atol=1e-9)
        tcp = expected @ trans(0, 0, model.gripper.tcp_m)
        np.testing.assert_allclose(data.site("tcp").xpos, tcp[:3, 3], atol=1e-9)


def test_ur5e_zero_pose_is_the_one_universal_robots_publishes():
    """At q = 0 the UR5e's flange is at (a2 + a3, −(d4 + d6), d1 − d5) = (−817.2, −232.9, 62.8) mm."""
    mj = mujoco.MjModel.from_xml_string(arm_mjcf_document(UR5E))
    data = mujoco.MjData(mj)
    mujoco.mj_kinematics(mj, data)
    np.testing.assert_allclose(data.body("hand").xpos, [-0.8172, -0.2329, 0.0628], atol=1e-9)


@pytest.mark.parametrize(("name", "lower", "upper", "torque"), [
    ("panda", (-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973),
     (2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973), (87, 87, 87, 87, 12, 12, 12)),
    ("ur5e", (-2 * math.pi, -2 * math.pi, -math.pi, -2 * math.pi, -2 * math.pi, -2 * math.pi),
     (2 * math.pi, 2 * math.pi, math.pi, 2 * math.pi, 2 * math.pi, 2 * math.pi), (150, 150, 150, 28, 28, 28)),
    ("xarm7", (-2 * math.pi, -2.059, -2 * math.pi, -0.19198, -2 * math.pi, -1.69297, -2 * math.pi),
     (2 * math.pi, 2.0944, 2 * math.pi, 3.927, 2 * math.pi, math.pi, 2 * math.pi), (50, 50, 30, 30, 30, 20, 20)),
])
def test_joint_limits_are_the_published_ones(name, lower, upper, torque):
    model = robot_models()[name]
    mj = mujoco.MjModel.from_xml_string(arm_mjcf_document(model))
    ranges = np.array([mj.joint(j.name).range for j in model.joints])
    np.testing.assert_allclose(ranges[:, 0], lower)
    np.testing.assert_allclose(ranges[:, 1], upper)
    assert model.max_torque_nm == torque


@pytest.mark.parametrize("cell_name", ["real_ur5e", "real_xarm7"])
def test_controller_drives_each_builtin_arm_to_targets(cell_name):
    twin = Twin(load_cell(CELLS / f"{cell_name}.yaml"))
    workspace_min, workspace_max = np.array(twin.cell.safety.workspace_min_m), np.array(twin.cell.safety.workspace_max_m)
    start = twin.arm.state().ee_pos_m
    assert np.all(start > workspace_min) and np.all(start < workspace_max), "the home pose is inside the workspace"
    for offset in ([0.08, 0.1, -0.1], [-0.1, -0.1, 0.05]):
        target = np.clip(start + offset, workspace_min + 0.02, workspace_max - 0.02)
        for _ in range(40):
            twin.arm.command(EEDeltaCommand(target - twin.arm.target_pos_m, np.zeros(3), 1.0))
            twin.advance(twin.cell.control_dt_s)
        assert np.linalg.norm(twin.arm.state().ee_pos_m - target) < 0.005
    assert twin.arm.state().gripper_width_m < 0.01, "the gripper closed"


def test_tcp_offset_override_moves_the_tool_site():
    base = Twin(load_cell(CELLS / "real_ur5e.yaml", ["robot.tcp_offset_m=0.174"]))
    longer = Twin(load_cell(CELLS / "real_ur5e.yaml", ["robot.tcp_offset_m=0.224"]))
    approach = base.data.site("tcp").xmat.reshape(3, 3)[:, 2]
    assert approach[2] < -0.999, "at home the tool points down"
    np.testing.assert_allclose(longer.arm.state().ee_pos_m - base.arm.state().ee_pos_m, 0.05 * approach, atol=1e-9)


def test_home_pose_with_the_wrong_number_of_joints_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"real_ur5e.yaml: robot.home_q_rad: has 7 values but the ur5e arm has 6 joints"):
        Twin(load_cell(CELLS / "real_ur5e.yaml", ["robot.home_q_rad=[0, 0, 0, 0, 0, 0, 0]"]))
    with pytest.raises(ConfigError, match="robot.model: got 'ur5'; allowed values: 'panda', 'ur5e', 'xarm7', 'mjcf'"):
        Twin(load_cell(CELLS / "real_ur5e.yaml", ["robot.model=ur5"]))


@pytest.mark.parametrize("cell_path", sorted(CELLS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_home_pose_is_inside_its_workspace_box(cell_path):
    cell = load_cell(cell_path)
    tool_m = Twin(cell).arm.state().ee_pos_m
    assert np.all(tool_m >= cell.safety.workspace_min_m) and np.all(tool_m <= cell.safety.workspace_max_m)


def test_a_home_pose_outside_the_workspace_box_fails_at_load(tmp_path):
    # sim_panda's home puts the tool at z = 0.403 m.
    with pytest.raises(ConfigError, match=r"sim_panda.yaml: robot.home_q_rad: puts the tool at \(0.4635, .*0.4028\) m, "
                                          r"outside the workspace box .* on z; change the home pose or widen"):
        load_cell(CELLS / "sim_panda.yaml", ["safety.workspace_max_m=[0.75, 0.35, 0.3]"])
    with pytest.raises(ConfigError, match="on x, y"):
        load_cell(CELLS / "real_ur5e.yaml", ["robot.base_pos_m=[1.0, 1.0, 0.0]"])
    robot_xml = tmp_path / "panda.xml"  # an mjcf robot is checked when its twin is built
    robot_xml.write_text(arm_mjcf_document(PANDA))
    mjcf = ["robot.model=mjcf", f"robot.mjcf_path={robot_xml}", "robot.gripper_actuator=gripper", "cameras=[]",
            "robot.joint_names=[joint1, joint2, joint3, joint4, joint5, joint6, joint7]"]
    Twin(load_cell(CELLS / "sim_panda.yaml", mjcf))
    with pytest.raises(ConfigError, match="robot.home_q_rad: puts the tool at"):
        Twin(load_cell(CELLS / "sim_panda.yaml", [*mjcf, "safety.workspace_max_m=[0.75, 0.35, 0.3]"]))


@pytest.mark.parametrize("cell_name", ["sim_panda", "real_ur5e", "real_xarm7"])
def test_sim_arm_tracks_joint_targets_and_rejects_ones_outside_the_workspace(cell_name):
    from robolearn.interfaces import JointCommand

    twin = Twin(load_cell(CELLS / f"{cell_name}.yaml"))
    q_home = twin.arm.state().q_rad
    target = q_home + np.linspace(0.15, -0.15, len(q_home))
    for _ in range(30):
        applied = twin.arm.command_joints(JointCommand(target, 0.0))
        twin.advance(twin.cell.control_dt_s)
    assert not applied.violations
    np.testing.assert_allclose(twin.arm.state().q_rad, target, atol=0.02)
    # End-effector commands continue from where the joint target put the tool.
    np.testing.assert_allclose(twin.arm.target_pos_m, twin.arm.tool_pose(target)[0])
    far = target.copy()
    far[1] += 0.05  # one allowed step, but the workspace ceiling is lowered below the tool
    twin.cell.safety.workspace_max_m = (*twin.cell.safety.workspace_max_m[:2], float(twin.arm.state().ee_pos_m[2]) - 0.05)
    applied = twin.arm.command_joints(JointCommand(far))
    assert [v.kind for v in applied.violations] == ["workspace"]
    np.testing.assert_allclose(applied.command.q_rad, twin.arm.state().q_rad)
