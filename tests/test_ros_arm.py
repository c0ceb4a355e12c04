"""The arm node clips, rejects and holds, publishing a violation each time (on the twin's SimArm)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from robolearn.cell import load_cell
from robolearn.interfaces import EEDeltaCommand, JointCommand, now_ns
from robolearn.ros import Node, ZenohSettings, messages
from robolearn.ros.nodes import topics
from robolearn.ros.nodes.arm import ArmNode
from robolearn.ros.zenoh_backend import free_endpoint, open_router

CELL = "configs/cells/sim_panda.yaml"


LOW_CEILING_M = (0.75, 0.35, 0.05)


@pytest.fixture
def graph(request):
    """An arm node on the twin (by default with the workspace ceiling at z = 0.05 m, below the home
    pose; ``request.param`` replaces those overrides) spinning in a thread, and a client node that
    commands it and collects violations."""
    from robolearn.sim import Twin

    endpoint = free_endpoint()
    router = open_router(endpoint)
    settings = ZenohSettings(router_endpoint=endpoint)
    overrides = getattr(request, "param", [])
    cell = load_cell(CELL, [*overrides, "safety.command_timeout_s=0.3", "cameras=[]"])
    if not hasattr(request, "param"):
        # Lowered after loading (a cell whose home is outside its box does not load): the target a
        # real arm latches when it connects above the box.
        cell.safety.workspace_max_m = LOW_CEILING_M
    twin = Twin(cell)
    arm_node = Node("arm", settings=settings)
    arm = ArmNode(arm_node, twin.arm, cell, advance=lambda: twin.advance(cell.control_dt_s))
    spinner = threading.Thread(target=arm_node.spin, daemon=True)
    spinner.start()
    client = Node("client", settings=settings)
    violations: list = []
    client.create_subscription(messages.SAFETY_VIOLATION, topics.VIOLATIONS,
                               lambda r: violations.append(messages.violation(r.msg)), depth=100)
    poses: list = []
    client.create_subscription(messages.POSE_STAMPED, topics.EE_POSE, lambda r: poses.append(r.msg))
    command = client.create_publisher(messages.EE_DELTA_COMMAND, topics.ARM_COMMAND)
    client.spin(until=lambda: len(poses) > 2, timeout_s=10)
    yield client, command, violations, arm, poses
    arm_node.shutdown()
    spinner.join(timeout=5)
    client.close()
    arm_node.close()
    router.close()


def send(client, command, cmd: EEDeltaCommand, times: int = 1) -> None:
    for _ in range(times):
        command.publish(messages.ee_delta_msg(cmd, now_ns()))
        client.spin(timeout_s=0.1)


def wait_for(client, violations, kind: str, timeout_s: float = 5.0) -> list:
    client.spin(until=lambda: any(v.kind == kind for v in violations), timeout_s=timeout_s)
    return [v for v in violations if v.kind == kind]


def test_out_of_workspace_command_is_clipped_and_reported(graph):
    client, command, violations, arm, _ = graph
    start_z = arm.arm.target_pos_m[2]
    send(client, command, EEDeltaCommand(np.array([0.0, 0.0, 0.02]), np.zeros(3), 0.0), times=3)
    clipped = wait_for(client, violations, "workspace")
    assert clipped and "clipped into box" in clipped[0].detail
    assert arm.arm.target_pos_m[2] < start_z  # the upward command became a move towards the box


def test_nan_command_is_rejected_and_reported(graph):
    client, command, violations, arm, _ = graph
    before = arm.arm.target_pos_m.copy()
    send(client, command, EEDeltaCommand(np.array([np.nan, 0.0, 0.0]), np.zeros(3), 0.0))
    rejected = wait_for(client, violations, "nan")
    assert rejected and "rejected" in rejected[0].detail
    np.testing.assert_allclose(arm.arm.target_pos_m, before)


def test_stale_command_stream_holds_the_arm(graph):
    client, command, violations, arm, _ = graph
    send(client, command, EEDeltaCommand(np.array([0.005, 0.0, 0.0]), np.zeros(3), 0.0), times=3)
    assert not any(v.kind == "stale_command" for v in violations)
    stale = wait_for(client, violations, "stale_command")
    assert stale and "holding" in stale[0].detail
    assert arm.holding
    held = arm.arm.target_pos_m.copy()
    client.spin(timeout_s=0.5)
    np.testing.assert_allclose(arm.arm.target_pos_m, held)


@pytest.mark.parametrize("graph", [[]], indirect=True)
def test_twist_command_moves_one_control_period(graph):
    client, _command, violations, arm, _ = graph
    applied: list = []
    client.create_subscription(messages.EE_DELTA_COMMAND, topics.ARM_APPLIED,
                               lambda r: applied.append(messages.ee_delta_command(r.msg)), depth=100)
    twist = client.create_publisher(messages.TWIST_STAMPED, topics.ARM_TWIST)
    client.spin(until=twist.has_subscribers, timeout_s=5)
    before = arm.arm.target_pos_m.copy()
    twist.publish(messages.twist_msg(np.array([0.0, 0.05, 0.0]), np.array([0.0, 0.0, 0.2]), now_ns()))
    client.spin(until=lambda: bool(applied), timeout_s=5)
    # 0.05 m/s and 0.2 rad/s for one period of the 10 Hz control loop; the gripper is left alone.
    np.testing.assert_allclose(applied[0].translation_m, [0.0, 0.005, 0.0], atol=1e-12)
    np.testing.assert_allclose(applied[0].rotation_rad, [0.0, 0.0, 0.02], atol=1e-12)
    assert np.isnan(applied[0].gripper_closed)
    np.testing.assert_allclose(arm.arm.target_pos_m - before, [0.0, 0.005, 0.0], atol=1e-9)
    assert not [v for v in violations if v.kind != "stale_command"]


@pytest.mark.parametrize("graph", [[]], indirect=True)
def test_joint_command_is_filtered_tracked_and_malformed_ones_are_reported(graph):
    client, _command, violations, arm, _ = graph
    applied: list = []
    client.create_subscription(messages.JOINT_STATE, topics.ARM_JOINT_APPLIED, lambda r: applied.append(r.msg), depth=100)
    joints = client.create_publisher(messages.JOINT_STATE, topics.ARM_JOINT_COMMAND)
    client.spin(until=joints.has_subscribers, timeout_s=5)
    names = arm.joint_names
    assert names == [f"joint{i + 1}" for i in range(7)]  # the Panda's joint names
    q_now = arm.arm.state().q_rad
    target = q_now + np.array([0.03, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5])  # joint 7 asks for 5 rad/s
    reordered = messages.joint_command_msg(JointCommand(target[::-1].copy(), 1.0), names[::-1], now_ns())
    joints.publish(reordered)
    client.spin(until=lambda: bool(applied), timeout_s=5)
    sent = messages.joint_command(applied[0], names)
    max_step = arm.cell.safety.max_joint_vel_rad_s * arm.cell.control_dt_s
    np.testing.assert_allclose(sent.q_rad, q_now + [0.03, 0, 0, 0, 0, 0, max_step], atol=1e-9)
    assert sent.gripper_closed == 1.0
    assert any(v.kind == "joint_velocity" for v in wait_for(client, violations, "joint_velocity"))
    joints.publish(messages.msg_class(messages.JOINT_STATE)(
        header=messages.header(now_ns()), name=["joint1"], position=np.zeros(1), velocity=np.zeros(0), effort=np.zeros(0)))
    malformed = [v for v in wait_for(client, violations, "nan") if "malformed joint command" in v.detail]
    assert malformed and "missing ['joint2'" in malformed[0].detail


class FakeXArmAPI:
    """``xarm.wrapper``'s SDK surface the xArm driver uses (the hardware boundary); ``calls`` records
    what reached the controller, ``servo_code`` is what ``set_servo_cartesian`` returns."""

    def __init__(self):
        self.calls: list[str] = []
        self.servo_code = 0
        fake = self

        class XArmAPI:
            has_err_warn, error_code = False, 0

            def __init__(self, ip, is_radian=False):
                fake.api = self

            def clean_error(self):
                fake.calls.append("clean_error")
                self.has_err_warn, self.error_code = False, 0
                return 0

            def motion_enable(self, enable):
                return 0

            def set_mode(self, mode):
                return 0

            def set_state(self, state):
                fake.calls.append(f"set_state {state}")
                return 0

            def get_joint_states(self, is_radian=None):
                return 0, [[0.0] * 7, [0.0] * 7, [0.0] * 7]

            def get_position(self, is_radian=None):
                return 0, [400.0, 0.0, 300.0, np.pi, 0.0, 0.0]

            def set_servo_cartesian(self, pose, is_radian=None):
                fake.calls.append("servo")
                return fake.servo_code

            def disconnect(self):
                pass

        self.XArmAPI = XArmAPI


@pytest.fixture
def xarm_graph(request):
    """An arm node on the xArm driver over an SDK double (``request.param``: arm.auto_recover),
    spinning in a thread, and a client node that commands it and collects violations and poses."""
    from robolearn.drivers.xarm.arm import XArm

    endpoint = free_endpoint()
    router = open_router(endpoint)
    settings = ZenohSettings(router_endpoint=endpoint)
    cell = load_cell("configs/cells/real_xarm7.yaml", ["arm.gripper=false", f"arm.auto_recover={request.param}"])
    sdk = FakeXArmAPI()
    arm = XArm(cell.arm, cell, sdk=sdk)
    arm.connect()
    arm_node = Node("arm", settings=settings)
    node = ArmNode(arm_node, arm, cell)
    spinner = threading.Thread(target=arm_node.spin, daemon=True)
    spinner.start()
    client = Node("client", settings=settings)
    violations: list = []
    client.create_subscription(messages.SAFETY_VIOLATION, topics.VIOLATIONS,
                               lambda r: violations.append(messages.violation(r.msg)), depth=100)
    poses: list = []
    client.create_subscription(messages.POSE_STAMPED, topics.EE_POSE, lambda r: poses.append(r.msg), depth=100)
    command = client.create_publisher(messages.EE_DELTA_COMMAND, topics.ARM_COMMAND)
    client.spin(until=lambda: len(poses) > 2 and command.has_subscribers(), timeout_s=10)
    yield client, command, violations, poses, node, sdk
    arm_node.shutdown()
    spinner.join(timeout=5)
    client.close()
    arm_node.close()
    router.close()


SMALL_STEP = EEDeltaCommand(np.array([0.002, 0.0, 0.0]), np.zeros(3), float("nan"))


@pytest.mark.parametrize("xarm_graph", [False], indirect=True)
def test_arm_fault_holds_reports_and_recovers_on_request(xarm_graph):
    client, command, violations, poses, node, sdk = xarm_graph
    send(client, command, SMALL_STEP, times=3)
    assert "servo" in sdk.calls
    sdk.api.has_err_warn, sdk.api.error_code = True, 22  # the controller stopped with error 22
    send(client, command, SMALL_STEP, times=2)
    (fault,) = wait_for(client, violations, "arm_fault")
    assert "controller error 22" in fault.detail and "stopped the arm" in fault.detail
    assert topics.ARM_RECOVER in fault.detail and "auto_recover" in fault.detail
    assert "set_state 4" in sdk.calls  # the node stopped the arm
    sdk.calls.clear()
    seen = len(poses)
    send(client, command, SMALL_STEP, times=5)
    assert "servo" not in sdk.calls  # commands are ignored while faulted
    assert len(poses) > seen and node.fault is not None  # the node is alive and still publishing

    recover = client.create_publisher("std_msgs/msg/Empty", topics.ARM_RECOVER)
    client.spin(until=recover.has_subscribers, timeout_s=5)
    recover.publish(messages.msg_class("std_msgs/msg/Empty")())
    recovered = wait_for(client, violations, "reflex")
    assert recovered and "recovered from: xArm controller error 22" in recovered[0].detail
    assert "clean_error" in sdk.calls and node.fault is None
    send(client, command, SMALL_STEP, times=3)
    assert "servo" in sdk.calls and node.faults == 1


@pytest.mark.parametrize("xarm_graph", [True], indirect=True)
def test_arm_fault_recovers_automatically_with_auto_recover(xarm_graph):
    client, command, violations, poses, node, sdk = xarm_graph
    sdk.servo_code = 9  # the controller refuses the servo target: the driver raises ArmFault
    send(client, command, SMALL_STEP, times=2)
    (fault,) = wait_for(client, violations, "arm_fault")
    assert "set_servo_cartesian failed with code 9" in fault.detail and "recovering automatically" in fault.detail
    sdk.servo_code = 0
    sdk.calls.clear()
    recovered = wait_for(client, violations, "reflex", timeout_s=5)
    assert recovered and "clean_error" in sdk.calls and node.fault is None
    send(client, command, SMALL_STEP, times=3)
    assert sdk.calls.count("servo") >= 2 and node.faults == 1
