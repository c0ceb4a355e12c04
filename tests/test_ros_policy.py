"""The policy node refuses to act on missing, stale or future-stamped frames, says so, and acts on
fresh ones (stamps are ROS system time, compared with this machine's)."""

from __future__ import annotations

import numpy as np

from robolearn.cell import load_cell
from robolearn.env import action_to_command
from robolearn.interfaces import ArmState
from robolearn.ros import Node, ZenohSettings, messages
from robolearn.ros.clock import ros_now_ns as now_ns
from robolearn.ros.nodes import topics
from robolearn.ros.nodes.policy import PolicyNode
from robolearn.ros.zenoh_backend import free_endpoint, open_router


class MeanPixelPolicy:
    """Moves +x in proportion to the image's mean brightness: depends on both observation keys."""

    observation_keys = ["state", "rgb_front"]

    def reset(self) -> None:
        self.calls = 0

    def act(self, obs):
        self.calls += 1
        assert obs["state"].shape == (15,)
        return np.array([obs["rgb_front"].mean() / 255.0, 0, 0, 0, 0, 0, -1], np.float32)


def test_policy_node_refuses_missing_and_stale_frames():
    endpoint = free_endpoint()
    router = open_router(endpoint)
    settings = ZenohSettings(router_endpoint=endpoint)
    cell = load_cell("configs/cells/sim_panda.yaml")
    policy = MeanPixelPolicy()
    with Node("policy", settings=settings) as node, Node("cell", settings=settings) as cell_node:
        policy_node = PolicyNode(node, policy, cell, policy.observation_keys)
        violations, commands = [], []
        cell_node.create_subscription(messages.SAFETY_VIOLATION, topics.VIOLATIONS,
                                      lambda r: violations.append(messages.violation(r.msg)), depth=100)
        cell_node.create_subscription(messages.EE_DELTA_COMMAND, topics.ARM_COMMAND,
                                      lambda r: commands.append(messages.ee_delta_command(r.msg)), depth=100)
        joints = cell_node.create_publisher(messages.JOINT_STATE, topics.JOINT_STATES)
        pose = cell_node.create_publisher(messages.POSE_STAMPED, topics.EE_POSE)
        image = cell_node.create_publisher(messages.IMAGE, topics.camera_image("front"))
        cell_node.spin(until=lambda: policy_node.violation_pub.has_subscribers()
                       and policy_node.command_pub.has_subscribers(), timeout_s=10)
        state = ArmState(np.zeros(7), np.zeros(7), np.array([0.5, 0, 0.3]), np.array([1.0, 0, 0, 0]), 0.08, now_ns())

        def run(seconds: float, image_age_s: float | None) -> None:
            for _ in range(int(seconds / 0.05)):
                joints.publish(messages.joint_state_msg(state, [f"j{i}" for i in range(7)]))
                pose.publish(messages.pose_msg(state.ee_pos_m, state.ee_quat_wxyz, now_ns()))
                if image_age_s is not None:
                    rgb = np.full((8, 8, 3), 255, np.uint8)
                    image.publish(messages.image_msg(rgb, now_ns() - int(image_age_s * 1e9), "front"))
                node.spin(timeout_s=0.025)
                cell_node.spin(timeout_s=0.025)

        run(0.6, image_age_s=None)
        assert policy.calls == 0 and not commands
        assert any(v.kind == "stale_frame" and "no rgb_front" in v.detail for v in violations)
        run(0.6, image_age_s=2.0)
        assert policy.calls == 0
        assert any(v.kind == "stale_frame" and "ms old" in v.detail for v in violations)
        run(0.6, image_age_s=-1.0)  # stamped by a machine whose clock runs a second ahead
        assert policy.calls == 0
        assert any(v.kind == "stale_frame" and "in the future" in v.detail and "chrony" in v.detail for v in violations)
        run(0.6, image_age_s=-0.005)  # within max_clock_offset_s (10 ms): fresh
        assert policy.calls > 0
        run(0.6, image_age_s=0.0)
        cell_node.spin(timeout_s=0.3)
    router.close()
    assert policy.calls > 0 and policy_node.actions == policy.calls
    expected = action_to_command(np.array([1.0, 0, 0, 0, 0, 0, -1]), cell.safety.max_step_m, cell.safety.max_rot_step_rad)
    np.testing.assert_allclose(commands[-1].translation_m, expected.translation_m)
    assert commands[-1].gripper_closed == 0.0
