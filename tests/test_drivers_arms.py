"""Arm drivers with a double only at the SDK boundary: exact SDK calls, units, frames, SafetyFilter.

Expected rotations are computed with MuJoCo's quaternion routines, independently of the drivers'
own rotation helpers.
"""

from __future__ import annotations

import os
import socket
import threading
from types import SimpleNamespace

import mujoco
import numpy as np
import pytest

from robolearn.cell import load_cell
from robolearn.drivers.arm_base import ArmFault
from robolearn.drivers.franka.arm import FrankaArm
from robolearn.drivers.ur.arm import URArm
from robolearn.drivers.ur.robotiq import RobotiqSocketGripper
from robolearn.drivers.xarm.arm import XArm
from robolearn.interfaces import EEDeltaCommand, JointCommand
from robolearn.kinematics import robot_models

CELLS = "configs/cells"


def cmd(translation=(0.0, 0.0, 0.0), rotation=(0.0, 0.0, 0.0), gripper=float("nan")) -> EEDeltaCommand:
    return EEDeltaCommand(np.array(translation, float), np.array(rotation, float), gripper)


def quat_mul_rotvec(rotvec: np.ndarray, quat_wxyz: np.ndarray) -> np.ndarray:
    """Quaternion of ``Rot(rotvec) * Rot(quat)`` (world-frame rotation applied on the left)."""
    angle = float(np.linalg.norm(rotvec))
    q_delta = np.array([1.0, 0, 0, 0])
    if angle > 0:
        mujoco.mju_axisAngle2Quat(q_delta, np.asarray(rotvec) / angle, angle)
    out = np.empty(4)
    mujoco.mju_mulQuat(out, q_delta, np.asarray(quat_wxyz, float))
    return out if out[0] >= 0 else -out


def quat_to_rotvec(quat_wxyz: np.ndarray) -> np.ndarray:
    out = np.empty(3)
    mujoco.mju_quat2Vel(out, np.asarray(quat_wxyz, float), 1.0)
    return out


def rotvec_to_quat(rotvec) -> np.ndarray:
    angle = float(np.linalg.norm(rotvec))
    quat = np.array([1.0, 0, 0, 0])
    mujoco.mju_axisAngle2Quat(quat, np.asarray(rotvec, float) / angle, angle)
    return quat


def same_rotation(q1: np.ndarray, q2: np.ndarray) -> bool:
    return abs(abs(float(np.dot(q1, q2))) - 1.0) < 1e-9


# --------------------------------------------------------------------------- Franka (franky)


class FakeFranky:
    """The franky names the driver uses; every call lands in ``calls``."""

    def __init__(self, pos, quat_xyzw, real=None):
        calls = self.calls = []
        fake = self

        class ControlException(Exception):
            pass

        class Affine:
            def __init__(self, translation, quaternion):
                self.translation, self.quaternion = np.array(translation, float), np.array(quaternion, float)

        class CartesianReference:
            def __init__(self, target):
                self.target = target

        class CartesianImpedanceTrackingMotion:
            def __init__(self, **kwargs):
                calls.append(("motion", kwargs))

            def set_reference(self, reference):
                calls.append(("set_reference", reference.target.translation.copy(), reference.target.quaternion.copy()))

        class JointReference:
            def __init__(self, q):
                self.q = np.array(q, float)

        class JointImpedanceTrackingMotion:
            def __init__(self, **kwargs):
                calls.append(("joint_motion", kwargs))

            def set_reference(self, reference):
                calls.append(("set_joint_reference", reference.q.copy()))

        class Robot:
            def __init__(self, ip):
                calls.append(("Robot", ip))
                self.has_errors = False

            def __setattr__(self, name, value):
                if name == "relative_dynamics_factor":
                    calls.append(("relative_dynamics_factor", value))
                object.__setattr__(self, name, value)

            def recover_from_errors(self):
                calls.append(("recover_from_errors",))
                fake.reflex = None

            def set_collision_behavior(self, torque, force):
                calls.append(("set_collision_behavior", torque, force))

            def move(self, motion, asynchronous=False):
                calls.append(("move", asynchronous))
                fake.motion = motion

            def poll_motion(self):
                if fake.reflex:
                    raise fake.ControlException(fake.reflex)
                return fake.running

            @property
            def current_pose(self):
                return SimpleNamespace(end_effector_pose=fake.Affine(fake.pos, fake.quat_xyzw))

            @property
            def current_joint_state(self):
                return SimpleNamespace(position=fake.q.copy(), velocity=np.zeros(7))

            def stop(self):
                calls.append(("stop",))

        class Gripper:
            width = 0.08

            def __init__(self, ip):
                calls.append(("Gripper", ip))

            def grasp_async(self, width, speed, force, epsilon_inner, epsilon_outer):
                calls.append(("grasp_async", width, speed, force))

            def move_async(self, width, speed):
                calls.append(("move_async", width, speed))

        self.ControlException, self.Affine, self.CartesianReference = ControlException, Affine, CartesianReference
        self.CartesianImpedanceTrackingMotion, self.Robot, self.Gripper = CartesianImpedanceTrackingMotion, Robot, Gripper
        self.JointImpedanceTrackingMotion, self.JointReference = JointImpedanceTrackingMotion, JointReference
        self.pos, self.quat_xyzw, self.reflex, self.running = np.array(pos, float), np.array(quat_xyzw, float), None, True
        self.q = np.arange(7) * 0.1
        if real is not None:  # franky's own value types and motion; only Robot and Gripper stay doubles
            self.ControlException, self.Affine, self.CartesianReference = real.ControlException, real.Affine, real.CartesianReference
            self.CartesianImpedanceTrackingMotion = real.CartesianImpedanceTrackingMotion
            self.JointImpedanceTrackingMotion, self.JointReference = real.JointImpedanceTrackingMotion, real.JointReference

    def take(self):
        out, self.calls[:] = list(self.calls), []
        return out


def test_franka_sdk_calls_units_and_safety_filter():
    cell = load_cell(f"{CELLS}/real_franka.yaml", ["robot.base_pos_m=[0.1, 0.0, 0.0]"])
    down_xyzw = np.array([1.0, 0.0, 0.0, 0.0])  # gripper pointing down: 180° about x
    franky = FakeFranky([0.4, 0.0, 0.3], down_xyzw)
    arm = FrankaArm(cell.arm, cell, sdk=franky)
    arm.connect()
    assert franky.take()[:6] == [
        ("Robot", "172.16.0.2"),
        ("recover_from_errors",),
        ("relative_dynamics_factor", 0.2),
        ("set_collision_behavior", 30.0, 40.0),
        ("Gripper", "172.16.0.2"),
        ("motion", {"translational_stiffness": 2000.0, "rotational_stiffness": 150.0}),
    ]
    # The base sits at x = 0.1 in the cell: base x 0.4 is cell x 0.5.
    np.testing.assert_allclose(arm.state().ee_pos_m, [0.5, 0.0, 0.3])

    applied = arm.command(cmd([0.01, 0.0, 0.0], gripper=1.0))
    assert not applied.violations
    (name, translation, quat), grasp = franky.take()
    assert name == "set_reference"
    np.testing.assert_allclose(translation, [0.41, 0.0, 0.3])  # back in the base frame
    assert same_rotation(np.roll(quat, 1), np.roll(down_xyzw, 1))
    assert grasp == ("grasp_async", 0.0, 0.1, 40.0)

    applied = arm.command(cmd([0.05, 0.0, 0.0], gripper=1.0))  # over max_step_m 0.02; gripper unchanged
    assert [v.kind for v in applied.violations] == ["max_step"]
    calls = franky.take()
    assert len(calls) == 1
    np.testing.assert_allclose(calls[0][1], [0.43, 0.0, 0.3])

    arm.command(cmd(rotation=[0.0, 0.0, 0.05], gripper=0.0))
    (_, translation, quat), release = franky.take()
    np.testing.assert_allclose(translation, [0.43, 0.0, 0.3])
    assert same_rotation(np.roll(quat, 1), quat_mul_rotvec(np.array([0, 0, 0.05]), np.roll(down_xyzw, 1)))
    assert release == ("move_async", 0.08, 0.1)

    applied = arm.command(cmd([np.nan, 0.0, 0.0], gripper=1.0))
    assert [v.kind for v in applied.violations] == ["nan"]
    ((_, translation, _),) = franky.take()
    np.testing.assert_allclose(translation, [0.43, 0.0, 0.3])  # held

    for _ in range(4):
        assert not arm.command(cmd([0.0, 0.0, 0.02])).violations  # up to z = 0.38
    applied = arm.command(cmd([0.0, 0.0, 0.015]))
    applied = arm.command(cmd([0.0, 0.0, 0.015]))  # the cell's box stops at z = 0.4
    assert [v.kind for v in applied.violations] == ["workspace"]
    np.testing.assert_allclose(franky.take()[-1][1], [0.43, 0.0, 0.4])

    franky.pos = np.array([0.45, 0.01, 0.2])
    arm.stop()
    ((_, translation, _),) = franky.take()
    np.testing.assert_allclose(translation, [0.45, 0.01, 0.2])  # holds where it is
    arm.disconnect()
    assert franky.take() == [("stop",)]


def test_franka_reflex_raises_or_recovers():
    cell = load_cell(f"{CELLS}/real_franka.yaml")
    franky = FakeFranky([0.5, 0.0, 0.3], [1.0, 0.0, 0.0, 0.0])
    arm = FrankaArm(cell.arm, cell, sdk=franky)
    arm.connect()
    franky.take()
    franky.reflex = "cartesian_reflex: collision detected"
    with pytest.raises(ArmFault, match="cartesian_reflex.*auto_recover"):
        arm.command(cmd([0.01, 0, 0]))
    franky.reflex, franky.running = None, False  # the motion ended without an exception
    with pytest.raises(ArmFault, match="no longer running"):
        arm.command(cmd([0.01, 0, 0]))
    franky.running = True

    cell = load_cell(f"{CELLS}/real_franka.yaml", ["arm.auto_recover=true"])
    arm = FrankaArm(cell.arm, cell, sdk=franky)
    arm.connect()
    franky.take()
    franky.reflex = "joint_velocity_violation"
    applied = arm.command(cmd([0.01, 0, 0]))
    assert [v.kind for v in applied.violations] == ["reflex"]
    assert "joint_velocity_violation" in applied.violations[0].detail
    names = [c[0] for c in franky.take()]
    assert names == ["recover_from_errors", "motion", "set_reference", "move"]
    arm.command(cmd([0.01, 0, 0]))
    np.testing.assert_allclose(franky.take()[0][1], [0.51, 0.0, 0.3])


def tool_in_base(cell, q) -> np.ndarray:
    """The tool position the built-in model's kinematics give at ``q``, in the robot base frame."""
    return robot_models()[cell.robot.model].tcp_pose(np.asarray(q, float), cell.robot.tcp_offset_m)[:3, 3]


def test_franka_joint_commands_switch_motions_and_back():
    cell = load_cell(f"{CELLS}/real_franka.yaml")
    franky = FakeFranky([0.5, 0.0, 0.3], [1.0, 0.0, 0.0, 0.0])
    franky.q = np.array([0.0, -0.1, 0.0, -2.3, 0.0, 2.2, 0.785])
    arm = FrankaArm(cell.arm, cell, sdk=franky)
    arm.connect()
    franky.take()
    max_step = cell.safety.max_joint_vel_rad_s * cell.control_dt_s
    target = franky.q + np.array([0.05, 0.0, 0.0, 0.0, 0.0, 0.0, 3 * max_step])  # joint 7 too fast
    applied = arm.command_joints(JointCommand(target, 1.0))
    assert [v.kind for v in applied.violations] == ["joint_velocity"]
    expected = franky.q + np.array([0.05, 0.0, 0.0, 0.0, 0.0, 0.0, max_step])
    (motion, (name, q_sent), move, grasp) = franky.take()
    assert motion == ("joint_motion", {}) and name == "set_joint_reference" and move == ("move", True)
    np.testing.assert_allclose(q_sent, expected)
    assert grasp[0] == "grasp_async"
    arm.command_joints(JointCommand(expected))
    assert [c[0] for c in franky.take()] == ["set_joint_reference"]  # the same motion keeps running
    arm.command(cmd([0.01, 0.0, 0.0]))  # back to Cartesian tracking, from the tool's pose at the joint target
    calls = franky.take()
    assert [c[0] for c in calls] == ["motion", "set_reference", "move", "set_reference"]
    np.testing.assert_allclose(calls[-1][1], tool_in_base(cell, expected) + [0.01, 0.0, 0.0], atol=1e-9)


def test_joint_commands_need_a_builtin_robot_model(tmp_path):
    robot_xml = tmp_path / "panda.xml"
    from robolearn.sim.robot_mjcf import arm_mjcf_document

    robot_xml.write_text(arm_mjcf_document(robot_models()["panda"]))
    cell = load_cell(f"{CELLS}/real_franka.yaml", ["robot.model=mjcf", f"robot.mjcf_path={robot_xml}",
                                                   "robot.joint_names=[joint1, joint2, joint3, joint4, joint5, joint6, joint7]"])
    arm = FrankaArm(cell.arm, cell, sdk=FakeFranky([0.5, 0.0, 0.3], [1.0, 0.0, 0.0, 0.0]))
    arm.connect()
    with pytest.raises(ArmFault, match="joint commands need a built-in robot model.*robot.model to one of panda, ur5e, xarm7"):
        arm.command_joints(JointCommand(np.zeros(7)))


def test_franka_driver_against_the_real_franky_types():
    real = pytest.importorskip("franky", reason="franky-control is needed (pip install 'robolearn[franka]')")
    cell = load_cell(f"{CELLS}/real_franka.yaml", ["arm.auto_recover=true"])
    franky = FakeFranky([0.4, 0.0, 0.3], [1.0, 0.0, 0.0, 0.0], real=real)
    arm = FrankaArm(cell.arm, cell, sdk=franky)
    arm.connect()
    target = franky.motion.get_reference().target
    np.testing.assert_allclose(np.ravel(target.translation), [0.4, 0.0, 0.3])
    arm.command(cmd([0.01, 0.0, -0.01], [0.0, 0.0, 0.05]))
    target = franky.motion.get_reference().target
    np.testing.assert_allclose(np.ravel(target.translation), [0.41, 0.0, 0.29])
    expected = quat_mul_rotvec(np.array([0, 0, 0.05]), np.array([0.0, 1.0, 0.0, 0.0]))
    assert same_rotation(np.roll(np.ravel(target.quaternion), 1), expected)
    franky.q = np.array([0.0, -0.1, 0.0, -2.3, 0.0, 2.2, 0.785])
    arm.command_joints(JointCommand(franky.q + 0.01))
    assert isinstance(franky.motion, real.JointImpedanceTrackingMotion)
    np.testing.assert_allclose(np.ravel(franky.motion.get_reference().q), franky.q + 0.01)
    franky.reflex = "cartesian_reflex"
    assert [v.kind for v in arm.command(cmd()).violations] == ["reflex"]


# --------------------------------------------------------------------------- UR (ur-rtde)


class FakeURCap:
    """A localhost server speaking the Robotiq URCap socket protocol, recording SET commands."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.values = {"STA": 0, "POS": 0}
        self.sets: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        conn, _ = self.server.accept()
        with conn, conn.makefile("rw", newline="\n") as stream:
            for line in stream:
                verb, var, *value = line.split()
                if verb == "SET":
                    self.sets.append(f"{var} {value[0]}")
                    self.values[var] = int(value[0])
                    if var == "ACT":
                        self.values["STA"] = 3
                    stream.write("ack\n")
                else:
                    stream.write(f"{var} {self.values.get(var, 0)}\n")
                stream.flush()


class FakeRTDE:
    def __init__(self, tcp_pose):
        self.calls = []
        self.tcp_pose = list(tcp_pose)
        self.q = [0.0, -1.57, 1.57, -1.57, -1.57, 0.0]
        self.protective_stop = False
        calls, fake = self.calls, self

        class Control:
            def __init__(self, ip):
                calls.append(("RTDEControlInterface", ip))

            def __getattr__(self, name):
                return lambda *args: calls.append((name, *args)) or True

        class Receive:
            def __init__(self, ip):
                calls.append(("RTDEReceiveInterface", ip))

            def getActualTCPPose(self):
                return list(fake.tcp_pose)

            def getActualQ(self):
                return list(fake.q)

            def getActualQd(self):
                return [0.0] * 6

            def isProtectiveStopped(self):
                return fake.protective_stop

            def isEmergencyStopped(self):
                return False

            def disconnect(self):
                calls.append(("receive.disconnect",))

        class DashboardClient:
            def __init__(self, ip):
                calls.append(("DashboardClient", ip))

            def unlockProtectiveStop(self):
                calls.append(("unlockProtectiveStop",))
                fake.protective_stop = False

            def __getattr__(self, name):
                return lambda *args: calls.append((name, *args))

        self.RTDEControlInterface, self.RTDEReceiveInterface, self.DashboardClient = Control, Receive, DashboardClient
        self.RobotiqGripper = RobotiqSocketGripper

    def take(self):
        out, self.calls[:] = list(self.calls), []
        return out


def test_ur_servo_speed_gripper_and_stop():
    urcap = FakeURCap()
    tool_rotvec = [2.0, 0.5, 0.1]
    rtde = FakeRTDE([0.4, 0.1, 0.3, *tool_rotvec])
    cell = load_cell(f"{CELLS}/real_ur5e.yaml", ["arm.ip=127.0.0.1", f"arm.gripper_port={urcap.port}"])
    arm = URArm(cell.arm, cell, sdk=rtde)
    arm.connect()
    assert rtde.take() == [("RTDEReceiveInterface", "127.0.0.1"), ("RTDEControlInterface", "127.0.0.1")]
    assert urcap.sets == ["ACT 1", "GTO 1"]
    np.testing.assert_allclose(arm.state().gripper_width_m, 0.085)  # POS 0: open

    arm.command(cmd([0.01, 0.0, 0.0], [0.0, 0.0, 0.05], gripper=1.0))
    ((name, pose, speed, accel, time_s, lookahead_s, gain),) = rtde.take()
    assert (name, speed, accel, time_s, lookahead_s, gain) == ("servoL", 0.0, 0.0, 0.1, 0.1, 300.0)
    np.testing.assert_allclose(pose[:3], [0.41, 0.1, 0.3])
    expected = quat_mul_rotvec(np.array([0, 0, 0.05]), rotvec_to_quat(tool_rotvec))
    assert same_rotation(rotvec_to_quat(pose[3:]), expected)
    assert urcap.sets[-3:] == ["SPE 255", "FOR 100", "POS 255"]

    applied = arm.command(cmd([0.0, 0.1, 0.0], gripper=0.5))
    assert [v.kind for v in applied.violations] == ["max_step"]
    np.testing.assert_allclose(rtde.take()[0][1][:3], [0.41, 0.12, 0.3])
    assert urcap.sets[-1] == "POS 128"
    np.testing.assert_allclose(arm.state().gripper_width_m, (1 - 128 / 255) * 0.085)

    arm.stop()
    assert rtde.take() == [("servoStop", 2.0)]
    rtde.protective_stop = True
    with pytest.raises(ArmFault, match="protective stop"):
        arm.command(cmd([0.01, 0.0, 0.0]))
    rtde.protective_stop = False
    arm.disconnect()
    assert [c[0] for c in rtde.take()] == ["stopScript", "disconnect", "receive.disconnect"]


def test_ur_speed_mode_sends_velocity_to_reach_target_in_one_step():
    rtde = FakeRTDE([0.4, 0.1, 0.3, 0.0, 3.0, 0.0])
    cell = load_cell(f"{CELLS}/real_ur5e.yaml", ["arm.mode=speed", "arm.gripper=false", "control_hz=20"])
    arm = URArm(cell.arm, cell, sdk=rtde)
    arm.connect()
    rtde.take()
    arm.command(cmd([0.01, -0.005, 0.0], [0.02, 0.0, 0.0]))
    ((name, xd, accel, time_s),) = rtde.take()
    assert (name, accel, time_s) == ("speedL", 0.5, 0.05)
    np.testing.assert_allclose(xd, [0.2, -0.1, 0.0, 0.4, 0.0, 0.0], atol=1e-9)  # m/s and rad/s
    arm.stop()
    assert rtde.take() == [("speedStop", 2.0)]


def test_ur_protective_stop_auto_recovery(monkeypatch):
    import robolearn.drivers.ur.arm as ur_arm

    clock = [100.0]
    monkeypatch.setattr(ur_arm.time, "monotonic", lambda: clock[0])
    rtde = FakeRTDE([0.4, 0.1, 0.3, 0.0, 3.0, 0.0])
    cell = load_cell(f"{CELLS}/real_ur5e.yaml", ["arm.gripper=false", "arm.auto_recover=true"])
    arm = URArm(cell.arm, cell, sdk=rtde)
    arm.connect()
    rtde.take()
    rtde.protective_stop = True
    for now_s, left_s in ((100.0, 5.0), (103.0, 2.0)):  # the controller refuses an unlock for 5 s
        clock[0] = now_s
        applied = arm.command(cmd([0.01, 0.0, 0.0]))
        assert [v.kind for v in applied.violations] == ["reflex"] and f"unlocking in {left_s:.1f} s" in applied.violations[0].detail
        assert rtde.take() == []  # held: nothing sent
    clock[0] = 105.0
    applied = arm.command(cmd([0.01, 0.0, 0.0]))
    assert [v.kind for v in applied.violations] == ["reflex"] and "unlocked" in applied.violations[0].detail
    assert [c[0] for c in rtde.take()] == [
        "DashboardClient", "connect", "closeSafetyPopup", "unlockProtectiveStop", "disconnect", "reuploadScript",
    ]
    arm.command(cmd([0.01, 0.0, 0.0]))
    np.testing.assert_allclose(rtde.take()[0][1][:3], [0.41, 0.1, 0.3])


def test_ur_joint_commands_servo_j_and_speed_j():
    rtde = FakeRTDE([0.4, 0.1, 0.3, 0.0, 3.0, 0.0])
    rtde.q = [np.pi, -1.571, 1.571, -1.571, -1.571, 0.0]
    cell = load_cell(f"{CELLS}/real_ur5e.yaml", ["arm.gripper=false"])
    arm = URArm(cell.arm, cell, sdk=rtde)
    arm.connect()
    rtde.take()
    target = np.array(rtde.q) + [0.05, -0.02, 0.0, 0.0, 0.0, 0.1]
    assert not arm.command_joints(JointCommand(target)).violations
    ((name, q, speed, accel, time_s, lookahead_s, gain),) = rtde.take()
    assert (name, speed, accel, time_s, lookahead_s, gain) == ("servoJ", 0.0, 0.0, 0.1, 0.1, 300.0)
    np.testing.assert_allclose(q, target)
    arm.command(cmd([0.0, 0.0, -0.01]))  # continues from the tool's pose at the joint target
    np.testing.assert_allclose(rtde.take()[0][1][:3], tool_in_base(cell, target) + [0.0, 0.0, -0.01], atol=1e-9)
    arm.control.servoJ = lambda *args: False
    with pytest.raises(ArmFault, match="refused servoJ"):
        arm.command_joints(JointCommand(target))

    cell = load_cell(f"{CELLS}/real_ur5e.yaml", ["arm.gripper=false", "arm.mode=speed", "control_hz=20"])
    arm = URArm(cell.arm, cell, sdk=rtde)
    arm.connect()
    rtde.take()
    arm.command_joints(JointCommand(np.array(rtde.q) + [0.02, 0.0, 0.0, 0.0, 0.0, -0.01]))
    ((name, qd, accel, time_s),) = rtde.take()
    assert (name, accel, time_s) == ("speedJ", 1.4, 0.05)
    np.testing.assert_allclose(qd, [0.4, 0.0, 0.0, 0.0, 0.0, -0.2], atol=1e-9)  # rad/s to reach it in one step


def test_ur_refused_servo_raises():
    rtde = FakeRTDE([0.4, 0.1, 0.3, 0.0, 3.0, 0.0])
    cell = load_cell(f"{CELLS}/real_ur5e.yaml", ["arm.gripper=false"])
    arm = URArm(cell.arm, cell, sdk=rtde)
    arm.connect()
    arm.control.servoL = lambda *args: False  # what ur_rtde returns when its control script is not running
    with pytest.raises(ArmFault, match="refused servoL.*remote control"):
        arm.command(cmd([0.01, 0.0, 0.0]))


# --------------------------------------------------------------------------- xArm (xarm-python-sdk)


class FakeXArmSDK:
    def __init__(self, position_mm_rpy):
        self.calls = []
        self.position = list(position_mm_rpy)
        self.fail_servo_code = 0
        calls, fake = self.calls, self

        class XArmAPI:
            has_err_warn = False
            error_code = 0

            def __init__(self, ip, is_radian=False):
                calls.append(("XArmAPI", ip, is_radian))

            def clean_error(self):
                calls.append(("clean_error",))
                self.has_err_warn, self.error_code = False, 0
                return 0

            def get_position(self, is_radian=None):
                return 0, list(fake.position)

            def get_joint_states(self, is_radian=None):
                return 0, [[0.1] * 7, [0.0] * 7, [0.0] * 7]

            def get_gripper_position(self):
                return 0, 425.0

            def set_servo_cartesian(self, pose, is_radian=None):
                calls.append(("set_servo_cartesian", list(pose), is_radian))
                return fake.fail_servo_code

            def __getattr__(self, name):
                def record(*args, **kwargs):
                    calls.append((name, *args, *(f"{k}={v}" for k, v in kwargs.items())))
                    return 0

                return record

        self.XArmAPI = XArmAPI

    def take(self):
        out, self.calls[:] = list(self.calls), []
        return out


def test_xarm_servo_cartesian_units_gripper_and_errors():
    sdk = FakeXArmSDK([400.0, 0.0, 300.0, np.pi, 0.0, 0.0])
    cell = load_cell(f"{CELLS}/real_xarm7.yaml")
    arm = XArm(cell.arm, cell, sdk=sdk)
    arm.connect()
    assert sdk.take() == [
        ("XArmAPI", "192.168.1.213", True),
        ("clean_error",),
        ("motion_enable", "enable=True"),
        ("set_mode", 1),
        ("set_state", 0),
        ("set_gripper_mode", 0),
        ("set_gripper_enable", True),
        ("set_gripper_speed", 3000.0),
    ]
    state = arm.state()
    np.testing.assert_allclose(state.ee_pos_m, [0.4, 0.0, 0.3])
    np.testing.assert_allclose(state.gripper_width_m, 0.0425)

    arm.command(cmd([0.01, 0.0, -0.005], [0.0, 0.0, 0.1], gripper=0.25))
    (name, pose, is_radian), gripper = sdk.take()
    assert (name, is_radian) == ("set_servo_cartesian", True)
    np.testing.assert_allclose(pose[:3], [410.0, 0.0, 295.0])  # millimetres
    roll, pitch, yaw = pose[3:]
    # Rz(0.1) applied to roll = π: fixed-axis rpy (π, 0, 0.1) up to the equivalent (−π, 0, 0.1).
    np.testing.assert_allclose([abs(roll), pitch, yaw], [np.pi, 0.0, 0.1], atol=1e-9)
    assert gripper == ("set_gripper_position", 850.0 - 0.25 * 850.0, "wait=False")

    sdk.fail_servo_code = 9
    with pytest.raises(ArmFault, match="set_servo_cartesian failed with code 9"):
        arm.command(cmd([0.01, 0.0, 0.0]))
    sdk.fail_servo_code = 0
    sdk.take()
    arm.stop()
    assert sdk.take() == [("set_state", 4), ("set_mode", 1), ("set_state", 0)]
    arm.api.has_err_warn, arm.api.error_code = True, 22
    with pytest.raises(ArmFault, match="controller error 22"):
        arm.command(cmd([0.01, 0.0, 0.0]))
    arm.config.auto_recover = True
    sdk.take()
    applied = arm.command(cmd([0.01, 0.0, 0.0]))
    assert [v.kind for v in applied.violations] == ["reflex"] and "22" in applied.violations[0].detail
    assert sdk.take() == [("clean_error",), ("motion_enable", "enable=True"), ("set_mode", 1), ("set_state", 0)]


def test_xarm_joint_commands_use_servo_angle_j():
    sdk = FakeXArmSDK([400.0, 0.0, 300.0, np.pi, 0.0, 0.0])
    cell = load_cell(f"{CELLS}/real_xarm7.yaml")
    arm = XArm(cell.arm, cell, sdk=sdk)
    arm.connect()
    sdk.take()
    home = np.array(cell.robot.home_q_rad)
    arm.api.get_joint_states = lambda is_radian=None: (0, [list(home), [0.0] * 7, [0.0] * 7])
    target = home + [0.0, 0.05, 0.0, -0.05, 0.0, 0.0, 0.1]
    assert not arm.command_joints(JointCommand(target, 0.0)).violations
    (name, angles, radian), gripper = sdk.take()
    assert (name, radian) == ("set_servo_angle_j", "is_radian=True")
    np.testing.assert_allclose(angles, target)
    assert gripper == ("set_gripper_position", 850.0, "wait=False")


def test_arm_config_errors_name_the_key():
    from robolearn.config import ConfigError

    with pytest.raises(ConfigError, match="arm: arm.ip is required"):
        load_cell(f"{CELLS}/real_franka.yaml", ['arm.ip=""'])
    with pytest.raises(ConfigError, match="lookahead_time_s"):
        load_cell(f"{CELLS}/real_ur5e.yaml", ["arm.lookahead_time_s=0.5"])


@pytest.mark.hardware
@pytest.mark.parametrize("arm_type, cell_file", [("franka", "real_franka"), ("ur", "real_ur5e"), ("xarm", "real_xarm7")])
def test_real_arm_holds_still(arm_type, cell_file):
    """On a robot: ROBOLEARN_TEST_<TYPE>_IP=<address> pytest -m hardware. Sends zero motion only."""
    ip = os.environ.get(f"ROBOLEARN_TEST_{arm_type.upper()}_IP")
    if not ip:
        pytest.skip(f"set ROBOLEARN_TEST_{arm_type.upper()}_IP to run on a real {arm_type} arm")
    cell = load_cell(f"{CELLS}/{cell_file}.yaml", [f"arm.ip={ip}"])
    arm = cell.arm.create(cell)
    arm.connect()
    try:
        before = arm.state()
        for _ in range(5):
            assert not arm.command(cmd()).violations
        after = arm.state()
        np.testing.assert_allclose(after.ee_pos_m, before.ee_pos_m, atol=0.005)
        arm.stop()
    finally:
        arm.disconnect()


def test_rotation_conversions_round_trip_against_mujoco():
    from robolearn.kinematics import rotations

    rng = np.random.default_rng(0)
    for rotvec in [*rng.uniform(-3.0, 3.0, size=(50, 3)), np.array([np.pi, 0, 0]), np.zeros(3)]:
        quat = np.array([1.0, 0, 0, 0]) if not rotvec.any() else rotvec_to_quat(rotvec)
        matrix = np.empty(9)
        mujoco.mju_quat2Mat(matrix, quat)
        matrix = matrix.reshape(3, 3)
        np.testing.assert_allclose(rotations.rotvec_to_matrix(rotvec), matrix, atol=1e-12)
        assert same_rotation(rotations.matrix_to_quat(matrix), quat)
        np.testing.assert_allclose(rotations.quat_to_matrix(quat), matrix, atol=1e-12)
        np.testing.assert_allclose(rotations.rotvec_to_matrix(rotations.matrix_to_rotvec(matrix)), matrix, atol=1e-9)
        np.testing.assert_allclose(rotations.rpy_to_matrix(rotations.matrix_to_rpy(matrix)), matrix, atol=1e-9)
