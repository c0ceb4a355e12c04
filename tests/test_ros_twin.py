"""The twin node following a teleop device's buttons, and the recorder committing or discarding
episodes from those buttons: the graph of ``twin_collect.yaml --set teleop=keyboard``."""

from __future__ import annotations

import threading

import numpy as np

from robolearn.cell import load_cell
from robolearn.cli.node_host import twin_node as host_twin_node
from robolearn.interfaces import TeleopCommand
from robolearn.ros import Node, ZenohSettings, messages
from robolearn.ros.clock import ros_now_ns as now_ns
from robolearn.ros.nodes import topics
from robolearn.ros.nodes.recorder import RecorderNode
from robolearn.ros.nodes.teleop import TeleopPublisher
from robolearn.ros.zenoh_backend import free_endpoint, open_router

EPISODE = messages.msg_class(messages.EPISODE_CONTROL)


def test_twin_follows_teleop_buttons_and_recorder_commits_successes(tmp_path):
    from robolearn.store import DemoStore

    endpoint = free_endpoint()
    router = open_router(endpoint)
    settings = ZenohSettings(router_endpoint=endpoint)
    cell = load_cell("configs/cells/sim_panda.yaml", ["cameras=[]"])
    twin_node, recorder_node = Node("twin", settings=settings), Node("recorder", settings=settings)
    operator = Node("operator", settings=settings)
    try:
        twin = host_twin_node(twin_node, cell, task="reach", episodes=2, teleop="keyboard", wait_for_recorder_s=30)
        recorder = RecorderNode(recorder_node, cell, tmp_path / "demos.zarr", task="reach", source="teleop")
        twin_thread = threading.Thread(target=twin_node.spin)
        recorder_thread = threading.Thread(target=recorder_node.spin)
        twin_thread.start()
        recorder_thread.start()
        starts: list[int] = []
        operator.create_subscription(messages.EPISODE_CONTROL, topics.EPISODE_CONTROL,
                                     lambda r: starts.append(1) if r.msg.command == EPISODE.START else None, depth=100)
        device = TeleopPublisher(operator, cell)

        def episode(moves: int, **button: bool) -> None:
            """Wait for the twin's START, drive ``moves`` steps in +x, then press ``button``."""
            seen = len(starts)
            operator.spin(until=lambda: len(starts) > seen, timeout_s=60)
            assert len(starts) > seen, "the twin did not start an episode"
            operator.spin(timeout_s=0.3)  # the recorder has the START and the arm state by now
            for _ in range(moves):
                device.publish(TeleopCommand(np.array([1.0, 0, 0, 0, 0, 0]), 0.0))
                operator.spin(timeout_s=0.1)
            device.publish(TeleopCommand(np.zeros(6), 0.0, **button))

        episode(4, success=True)
        episode(2, failure=True)
        episode(3, success=True)
        twin_thread.join(timeout=30)
        assert not twin_thread.is_alive()  # two successes: the twin node is done
        assert twin.completed == 2
        operator.spin(timeout_s=0.5)
        recorder_node.shutdown()
        recorder_thread.join(timeout=30)
    finally:
        twin_node.shutdown()
        recorder_node.shutdown()
        for node in (operator, recorder_node, twin_node):
            node.close()
        router.close()
    assert recorder.committed == [0, 1]
    store = DemoStore.open(tmp_path / "demos.zarr", mode="r")
    assert store.n_episodes == 2
    for index, moves in ((0, 4), (1, 3)):  # the failed episode in between was discarded
        data, meta = store.episode(index), store.episode_meta(index)
        assert meta["success"] and meta["source"] == "teleop"
        assert len(data["action"]) == moves + 1  # every command, the success press included
        np.testing.assert_allclose(data["action"][0], [1.0, 0, 0, 0, 0, 0, -1.0])
        assert data["state"][-1][7] > data["state"][0][7]  # the arm moved in +x within the episode


def test_recorder_episode_control_topic(tmp_path):
    """START / DISCARD / SUCCESS / STOP on the episode topic: only the kept episode is committed."""
    from robolearn.interfaces import ArmState
    from robolearn.store import DemoStore

    endpoint = free_endpoint()
    router = open_router(endpoint)
    settings = ZenohSettings(router_endpoint=endpoint)
    cell = load_cell("configs/cells/sim_panda.yaml", ["cameras=[]"])
    with Node("recorder", settings=settings) as recorder_node, Node("cell", settings=settings) as cell_node:
        recorder = RecorderNode(recorder_node, cell, tmp_path / "demos.zarr", task="reach", source="teleop",
                                object_state=False, start_on_motion=False)
        control = cell_node.create_publisher(messages.EPISODE_CONTROL, topics.EPISODE_CONTROL, depth=100)
        joints = cell_node.create_publisher(messages.JOINT_STATE, topics.JOINT_STATES)
        pose = cell_node.create_publisher(messages.POSE_STAMPED, topics.EE_POSE)
        device = TeleopPublisher(cell_node, cell)
        cell_node.spin(until=control.has_subscribers, timeout_s=10)

        def send(command: int | None = None, steps: int = 0, task: str = "") -> None:
            if command is not None:
                control.publish(messages.episode_control_msg(command, now_ns(), task))
            for i in range(steps):
                state = ArmState(np.zeros(7), np.zeros(7), np.array([0.4 + 0.01 * i, 0, 0.3]), np.array([1.0, 0, 0, 0]),
                                 0.08, now_ns())
                joints.publish(messages.joint_state_msg(state, [f"j{k}" for k in range(7)]))
                pose.publish(messages.pose_msg(state.ee_pos_m, state.ee_quat_wxyz, state.stamp_ns))
                cell_node.spin(timeout_s=0.05)
                device.publish(TeleopCommand(np.array([0, 1.0, 0, 0, 0, 0]), 1.0))
            for _ in range(4):
                recorder_node.spin(timeout_s=0.05)
                cell_node.spin(timeout_s=0.05)

        send(EPISODE.START, steps=3)
        send(EPISODE.DISCARD)
        send(steps=2)  # not recording: ignored
        send(EPISODE.START, steps=4, task="reach_left")
        send(EPISODE.SUCCESS)
        send(EPISODE.STOP)
    router.close()
    assert recorder.committed == [0]
    store = DemoStore.open(tmp_path / "demos.zarr", mode="r")
    data, meta = store.episode(0), store.episode_meta(0)
    assert store.n_episodes == 1 and meta["success"] and meta["task"] == "reach_left"
    assert len(data["action"]) == 4 and data["success"].tolist() == [False, False, False, True]
    np.testing.assert_allclose(data["action"][:, :3], [[0, 1.0, 0]] * 4)
