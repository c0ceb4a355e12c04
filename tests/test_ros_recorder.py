"""The recorder node on a live graph: a SpaceMouse (no reset button) starts episodes by moving, a
camera whose first frame is late is recorded with its missing frames counted, and malformed
foreign messages are dropped and counted without stopping the node."""

from __future__ import annotations

import struct
import threading
import time

import numpy as np
import pytest
from sdk_doubles import FakeHID

from robolearn.cell import TeleopConfig, load_cell
from robolearn.config import from_dict
from robolearn.drivers.spacemouse.device import SpaceMouse
from robolearn.interfaces import ArmState, TeleopCommand
from robolearn.ros import Node, ZenohSettings, messages
from robolearn.ros.clock import ros_now_ns
from robolearn.ros.nodes import topics
from robolearn.ros.nodes.arm import ArmNode
from robolearn.ros.nodes.recorder import RecorderNode
from robolearn.ros.nodes.teleop import TeleopPublisher
from robolearn.ros.zenoh_backend import free_endpoint, open_router

EPISODE = messages.msg_class(messages.EPISODE_CONTROL)
CELL = "configs/cells/sim_panda.yaml"
SMALL_CAMERA = ("cameras=[{type: sim, name: front, width_px: 32, height_px: 24, depth: false, mount: world, "
                "pos_m: [1.15, 0.0, 0.55], look_at_m: [0.5, 0.0, 0.05]}]")


@pytest.fixture
def graph(tmp_path):
    """``make(cell_overrides, **recorder_kwargs)``: a recorder node spinning on a thread, plus a
    ``cell`` node the test publishes from and spins itself."""
    endpoint = free_endpoint()
    router = open_router(endpoint)
    settings = ZenohSettings(router_endpoint=endpoint)
    nodes: list[Node] = []
    threads: list[threading.Thread] = []
    recorders: list[RecorderNode] = []

    def make(overrides: list[str], **kwargs):
        cell = load_cell(CELL, overrides)
        recorder_node, cell_node = Node("recorder", settings=settings), Node("cell", settings=settings)
        nodes.extend([recorder_node, cell_node])
        recorder = RecorderNode(recorder_node, cell, tmp_path / "demos.zarr", task="reach", **kwargs)
        recorders.append(recorder)
        thread = threading.Thread(target=recorder_node.spin)
        thread.start()
        threads.append(thread)
        return cell, recorder, recorder_node, cell_node, settings

    yield make
    for node in nodes:
        node.shutdown()
    for thread in threads:
        thread.join(timeout=30)
    for recorder in recorders:
        recorder.close()
    for node in reversed(nodes):
        node.close()
    router.close()


def wait(node: Node, condition, timeout_s: float = 10.0) -> None:
    node.spin(until=condition, timeout_s=timeout_s)
    assert condition()


def motion(raw_y: int) -> bytes:
    """A 12-byte axes report: only raw y (towards the operator) set; the default mapping makes
    -raw y the cell's +x."""
    return bytes([1]) + struct.pack("<6h", 0, raw_y, 0, 0, 0, 0)


RIGHT_BUTTON, RELEASED = bytes([3, 0b10, 0]), bytes([3, 0, 0])


def test_spacemouse_starts_episodes_by_moving_and_commits_with_its_success_button(graph):
    """A real cell's graph (arm node, SpaceMouse teleop, recorder), no EpisodeControl publisher:
    moving the cap starts an episode, the right button commits it, and the hand still on the cap
    after the press starts nothing until the cap has been at rest."""
    from robolearn.sim import Twin
    from robolearn.store import DemoStore

    # The arm node and the SpaceMouse run on their own clocks here; a generous tolerance keeps a slow
    # machine from dropping steps whose nearest arm state is a little more than one period away.
    cell, recorder, _, operator, settings = graph(["cameras=[]"], object_state=False, tolerance_s=1.0)
    twin = Twin(cell)
    arm_node = Node("arm", settings=settings)
    ArmNode(arm_node, twin.arm, cell, advance=lambda: twin.advance(cell.control_dt_s))
    arm_thread = threading.Thread(target=arm_node.spin)
    arm_thread.start()
    try:
        hid = FakeHID()
        mouse = SpaceMouse(from_dict(TeleopConfig, {"type": "spacemouse"}), sdk=hid)
        mouse.connect()
        device = TeleopPublisher(operator, cell)
        poses: list = []
        operator.create_subscription(messages.POSE_STAMPED, topics.EE_POSE, poses.append)
        wait(operator, lambda: device.teleop_pub.has_subscribers() and len(poses) > 2)

        def read(*reports: bytes, times: int = 1) -> None:
            for _ in range(times):
                hid.reports.extend(reports)
                device.publish(mouse.read())
                operator.spin(timeout_s=0.1)

        read(motion(0), times=2)  # at rest: nothing starts
        assert not recorder.recording
        read(motion(-350), times=4)  # push the cap away (+x at full scale): the first read starts it
        assert recorder.recording
        read(RIGHT_BUTTON)  # success, the hand still pushing
        wait(operator, lambda: recorder.committed == [0])
        read(RELEASED)
        read(motion(-350), times=3)  # still pushing after the press: no new episode
        assert not recorder.recording
        read(motion(0))  # let go
        read(motion(-350), times=2)
        assert recorder.recording
        read(RIGHT_BUTTON)
        wait(operator, lambda: recorder.committed == [0, 1])
    finally:
        arm_node.shutdown()
        arm_thread.join(timeout=10)
        arm_node.close()
    store = DemoStore.open(recorder.recorder.store.path)
    lengths = [len(store.episode(i)["action"]) for i in range(2)]
    assert lengths == [5, 3]  # the motion reads plus the success press (taken while still pushing)
    first = store.episode(0)
    assert first["action"][0][0] == 1.0 and first["intervention"].all()
    assert first["success"].tolist() == [False] * 4 + [True]
    assert first["state"][-1][7] > first["state"][0][7]  # the arm moved +x during the episode


def _state(x_m: float, stamp_ns: int) -> ArmState:
    return ArmState(np.zeros(7), np.zeros(7), np.array([x_m, 0, 0.3]), np.array([1.0, 0, 0, 0]), 0.08, stamp_ns)


def test_a_late_camera_is_kept_and_its_missing_frames_counted(graph):
    """The camera's first frame arrives at the fourth step: the episode still has ``rgb_front``
    (the cell's cameras fix the keys); the three steps without a frame are counted, not hidden."""
    from robolearn.store import DemoStore

    cell, recorder, _, cell_node, _ = graph([SMALL_CAMERA], object_state=False, start_on_motion=False, tolerance_s=0.05)
    control = cell_node.create_publisher(messages.EPISODE_CONTROL, topics.EPISODE_CONTROL, depth=100)
    joints = cell_node.create_publisher(messages.JOINT_STATE, topics.JOINT_STATES)
    pose = cell_node.create_publisher(messages.POSE_STAMPED, topics.EE_POSE)
    image = cell_node.create_publisher(messages.IMAGE, topics.camera_image("front"))
    teleop = cell_node.create_publisher(messages.TELEOP_COMMAND, topics.TELEOP, depth=100)
    wait(cell_node, lambda: control.has_subscribers() and image.has_subscribers() and teleop.has_subscribers())
    control.publish(messages.episode_control_msg(EPISODE.START, ros_now_ns()))
    for i in range(8):
        stamp = ros_now_ns()
        state = _state(0.4 + 0.01 * i, stamp)
        joints.publish(messages.joint_state_msg(state, [f"j{k}" for k in range(7)]))
        pose.publish(messages.pose_msg(state.ee_pos_m, state.ee_quat_wxyz, stamp))
        if i >= 3:
            image.publish(messages.image_msg(np.full((24, 32, 3), 10 * i, np.uint8), stamp, "front"))
        teleop.publish(messages.teleop_msg(TeleopCommand(np.array([0, 1.0, 0, 0, 0, 0]), 1.0), stamp))
        cell_node.spin(timeout_s=0.1)
    control.publish(messages.episode_control_msg(EPISODE.STOP, ros_now_ns()))
    wait(cell_node, lambda: recorder.committed == [0])
    store = DemoStore.open(recorder.recorder.store.path)
    data, meta = store.episode(0), store.episode_meta(0)
    assert len(data["action"]) == 5 and data["rgb_front"].shape == (5, 24, 32, 3)
    assert meta["steps_dropped"] == 3 and meta["frames"]["rgb_front"]["missing"] == 3
    assert recorder.missing_frames == 3
    np.testing.assert_allclose(data["state"][:, 7], 0.4 + 0.01 * np.arange(3, 8), atol=1e-6)  # each step's own state
    assert abs(int(data["rgb_front"][0].mean()) - 30) <= 2  # the frame of step 3 (JPEG-close)


def test_malformed_foreign_messages_are_dropped_counted_and_the_node_goes_on(graph):
    from robolearn.store import DemoStore

    cell, recorder, recorder_node, cell_node, _ = graph([SMALL_CAMERA], object_state=False, start_on_motion=False)
    joints = cell_node.create_publisher(messages.JOINT_STATE, topics.JOINT_STATES)
    pose = cell_node.create_publisher(messages.POSE_STAMPED, topics.EE_POSE)
    image = cell_node.create_publisher(messages.IMAGE, topics.camera_image("front"))
    control = cell_node.create_publisher(messages.EPISODE_CONTROL, topics.EPISODE_CONTROL, depth=100)
    teleop = cell_node.create_publisher(messages.TELEOP_COMMAND, topics.TELEOP, depth=100)
    wait(cell_node, lambda: image.has_subscribers() and teleop.has_subscribers() and joints.has_subscribers())
    joints.publish_cdr(b"\x00\x01\x00\x00not a JointState")  # bytes that do not deserialize
    image.publish(messages.image_msg(np.zeros((480, 640, 3), np.uint8), ros_now_ns(), "front"))  # not the configured size
    wait(cell_node, lambda: sum(recorder_node.dropped.values()) == 2)
    assert recorder_node.dropped == {topics.JOINT_STATES: 1, topics.camera_image("front"): 1}
    assert recorder_node.ok

    control.publish(messages.episode_control_msg(EPISODE.START, ros_now_ns()))
    for _ in range(3):
        stamp = ros_now_ns()
        state = _state(0.4, stamp)
        joints.publish(messages.joint_state_msg(state, [f"j{k}" for k in range(7)]))
        pose.publish(messages.pose_msg(state.ee_pos_m, state.ee_quat_wxyz, stamp))
        image.publish(messages.image_msg(np.zeros((24, 32, 3), np.uint8), stamp, "front"))
        teleop.publish(messages.teleop_msg(TeleopCommand(np.zeros(6), 0.0), stamp))
        cell_node.spin(timeout_s=0.1)
    control.publish(messages.episode_control_msg(EPISODE.STOP, ros_now_ns()))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and recorder.committed != [0]:
        cell_node.spin(timeout_s=0.1)
    assert recorder.committed == [0] and len(DemoStore.open(recorder.recorder.store.path).episode(0)["action"]) == 3
