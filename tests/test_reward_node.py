"""The reward node on a Zenoh graph: scores fresh images, skips stale ones, marks an episode's success once."""

from __future__ import annotations

import numpy as np
import pytest

from robolearn.cell import load_cell
from robolearn.ros import Node, ZenohSettings, messages
from robolearn.ros.clock import ros_now_ns as now_ns
from robolearn.ros.nodes import topics
from robolearn.ros.nodes.reward import EPISODE, RewardNode, reward_cameras
from robolearn.ros.nodes.twin import FLOAT_ARRAY
from robolearn.ros.zenoh_backend import free_endpoint, open_router


class Brightness:
    """A reward model reading ``rgb_front``: reward and success probability = mean brightness."""

    cameras = ["front"]
    threshold = 0.5

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, obs):
        self.calls += 1
        value = float(obs["rgb_front"].mean() / 255.0)
        return value, value


def test_reward_node_scores_fresh_images_and_marks_success_once():
    endpoint = free_endpoint()
    router = open_router(endpoint)
    settings = ZenohSettings(router_endpoint=endpoint)
    cell = load_cell("configs/cells/sim_panda.yaml")
    model = Brightness()
    with Node("reward", settings=settings) as node, Node("cell", settings=settings) as cell_node:
        reward_node = RewardNode(node, model, cell, mark_success=True)
        rewards, controls = [], []
        cell_node.create_subscription(FLOAT_ARRAY, topics.REWARD, lambda r: rewards.append(list(r.msg.data)), depth=100)
        cell_node.create_subscription(messages.EPISODE_CONTROL, topics.EPISODE_CONTROL,
                                      lambda r: controls.append(r.msg.command), depth=100)
        image = cell_node.create_publisher(messages.IMAGE, topics.camera_image("front"))
        episode = cell_node.create_publisher(messages.EPISODE_CONTROL, topics.EPISODE_CONTROL, depth=100)
        cell_node.spin(until=lambda: reward_node.reward_pub.has_subscribers() and image.has_subscribers()
                       and episode.has_subscribers(), timeout_s=10)

        def run(seconds: float, brightness: int | None, age_s: float = 0.0) -> None:
            for _ in range(int(seconds / 0.05)):
                if brightness is not None:
                    frame = np.full((8, 8, 3), brightness, np.uint8)
                    image.publish(messages.image_msg(frame, now_ns() - int(age_s * 1e9), "front"))
                node.spin(timeout_s=0.025)
                cell_node.spin(timeout_s=0.025)

        def settle() -> None:  # deliver what is still in flight, score it, deliver the scores
            for _ in range(8):
                node.spin(timeout_s=0.025)
                cell_node.spin(timeout_s=0.025)

        episode.publish(messages.episode_control_msg(EPISODE.START, now_ns()))
        run(0.5, None)
        assert model.calls == 0 and reward_node.skipped_stale > 0
        run(0.5, 255, age_s=2.0)
        assert model.calls == 0
        run(0.6, 51)
        settle()
        assert model.calls > 0 and rewards and rewards[-1] == pytest.approx([0.2, 0.2, 0.0])
        assert EPISODE.SUCCESS not in controls
        calls = model.calls
        run(0.5, None)  # no new frame: nothing is scored again
        assert model.calls == calls
        run(0.6, 230)
        settle()
        assert rewards[-1] == pytest.approx([230 / 255, 230 / 255, 1.0])
        assert controls.count(EPISODE.SUCCESS) == 1 and reward_node.successes_marked == 1
        episode.publish(messages.episode_control_msg(EPISODE.START, now_ns()))
        run(0.6, 230)
        settle()
        assert controls.count(EPISODE.SUCCESS) == 2
    router.close()


def test_reward_cameras_refuses_the_oracle():
    from robolearn.env import make_env
    from robolearn.reward import load_reward_model

    with pytest.raises(ValueError, match="not the twin's oracle"):
        reward_cameras(load_reward_model("oracle", env=make_env(task="reach", cameras=False)))
    assert reward_cameras(Brightness()) == ["front"]
