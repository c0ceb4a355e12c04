"""The reward node: a reward model on the ROS graph, scoring the cell's camera images at the control rate.

It subscribes to the images of the cameras the model reads (``model.cameras``) and to the arm's
joint states and pose (``state``, for models that read it), and at every control tick where a new
image has arrived and every image is fresh (younger than ``safety.frame_timeout_s`` by its capture
stamp) publishes ``[reward, success_prob, success]`` as a ``std_msgs/Float32MultiArray`` on
``topics.REWARD``. With ``mark_success`` it also publishes ``EpisodeControl`` SUCCESS the first time
an episode is called a success (episodes start with ``EpisodeControl`` START), so the recorder marks
the episode as the teleop's success button would: on the real cell the reward model labels the
data. Stale or missing images are skipped and counted, never scored.
"""

from __future__ import annotations

import numpy as np

from robolearn.cell import CellConfig
from robolearn.errors import UsageError
from robolearn.interfaces import RewardModel, success_threshold
from robolearn.ros import messages
from robolearn.ros.clock import ros_now_ns
from robolearn.ros.node import Node, Received
from robolearn.ros.nodes import topics
from robolearn.ros.nodes.arm_state import ArmStateSubscriber
from robolearn.ros.nodes.twin import FLOAT_ARRAY, float_array_msg

EPISODE = messages.msg_class(messages.EPISODE_CONTROL)


def reward_cameras(model: RewardModel) -> list[str]:
    """The cameras whose ``rgb_<camera>`` images a learned reward model reads."""
    cameras = list(getattr(model, "cameras", []))
    if not cameras:
        raise UsageError(f"{type(model).__name__} reads no camera images; the reward node serves image-based "
                         "reward models (classifier, clip, vlm, preference), not the twin's oracle")
    return cameras


class RewardNode:
    """Scores images with ``model`` on ``node`` (see the module docstring). ``scored``: ticks that
    published; ``skipped_stale``: ticks whose images were missing or too old; ``successes_marked``:
    episodes marked as successes."""

    def __init__(self, node: Node, model: RewardModel, cell: CellConfig, mark_success: bool = False):
        self.node, self.model, self.cell = node, model, cell
        self.cameras = reward_cameras(model)
        self.threshold = success_threshold(model)
        self.frame_timeout_ns = int(cell.safety.frame_timeout_s * 1e9)
        self.mark_success = mark_success
        self.images: dict[str, np.ndarray] = {}
        self.stamps: dict[str, int] = {}
        self.scored_stamps: dict[str, int] = {}
        self.state: np.ndarray | None = None
        self.episode_marked = False
        self.scored = self.skipped_stale = self.successes_marked = 0
        self.last: tuple[float, float] | None = None
        for camera in self.cameras:
            node.create_subscription(messages.IMAGE, topics.camera_image(camera),
                                     lambda r, camera=camera: self.on_image(camera, r), depth=1)
        ArmStateSubscriber(node, lambda proprio, _: setattr(self, "state", proprio))
        node.create_subscription(messages.EPISODE_CONTROL, topics.EPISODE_CONTROL, self.on_episode, depth=100)
        self.reward_pub = node.create_publisher(FLOAT_ARRAY, topics.REWARD)
        self.episode_pub = node.create_publisher(messages.EPISODE_CONTROL, topics.EPISODE_CONTROL, depth=100)
        node.create_timer(cell.control_dt_s, self.tick)

    def on_image(self, camera: str, received: Received) -> None:
        self.images[camera] = messages.image_array(received.msg)
        self.stamps[camera] = messages.stamp_ns(received.msg)

    def on_episode(self, received: Received) -> None:
        if received.msg.command == EPISODE.START:
            self.episode_marked = False

    def stale(self, now: int) -> bool:
        """Whether some camera has no image yet or only one older than the frame timeout."""
        return any(c not in self.stamps or now - self.stamps[c] > self.frame_timeout_ns for c in self.cameras)

    def tick(self) -> None:
        now = ros_now_ns()  # header stamps are ROS system time
        if self.stale(now):
            self.skipped_stale += 1
            return
        if all(self.stamps[c] == self.scored_stamps.get(c) for c in self.cameras):
            return  # nothing new since the last score
        obs = {f"rgb_{c}": self.images[c] for c in self.cameras}
        if self.state is not None:
            obs["state"] = self.state
        reward, prob = self.model(obs)
        success = prob >= self.threshold
        self.scored_stamps = {c: self.stamps[c] for c in self.cameras}
        self.reward_pub.publish(float_array_msg(np.array([reward, prob, float(success)])))
        self.scored += 1
        self.last = (float(reward), float(prob))
        if success and self.mark_success and not self.episode_marked:
            self.episode_pub.publish(messages.episode_control_msg(EPISODE.SUCCESS, now))
            self.episode_marked = True
            self.successes_marked += 1
