"""The twin node: the cell's MuJoCo twin (SimArm and SimCameras) behind the same topics as the real
arm and camera nodes, so every graph runs on the twin.

Each control tick: apply the newest arm command (``ArmNode``, through the SafetyFilter), advance the
physics one control period, publish joint states, pose, camera images and the privileged
``object_state``. Episodes, with ``teleop: expert`` and ``episodes > 0``: the node hosts the task's scripted expert
(which needs the simulator's state) and drives them: it resets the task, publishes ``EpisodeControl``
START, then the expert's ``TeleopCommand`` and arm command every tick, SUCCESS when the task
succeeds, STOP at the end (success or ``max_episode_steps``); after the last episode the node exits.
With ``teleop`` naming a device (``keyboard``, ``spacemouse``, ...), a teleop node drives the arm and
the twin follows its buttons: it resets the task and publishes START, the operator's success button
ends the episode (counted), failure or reset end it uncounted, and after ``episodes`` counted
episodes (0: until the operator quits) the node exits. Before each episode it waits (up to
``wait_for_recorder_s``) until something subscribes to episode control, so a restarting recorder
misses no episode start. Recording is someone else's job (the recorder node).
"""

from __future__ import annotations

import time

import numpy as np

from robolearn.cell import CellConfig
from robolearn.interfaces import now_ns
from robolearn.ros import messages
from robolearn.ros.node import Node, Received
from robolearn.ros.nodes import topics
from robolearn.ros.nodes.arm import ArmNode
from robolearn.ros.nodes.camera import CameraPublisher
from robolearn.ros.nodes.teleop import TeleopPublisher

EPISODE = messages.msg_class(messages.EPISODE_CONTROL)
FLOAT_ARRAY = "std_msgs/msg/Float32MultiArray"


def float_array_msg(values: np.ndarray) -> object:
    store = messages.typestore()
    layout = store.types["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
    return store.types[FLOAT_ARRAY](layout=layout, data=np.asarray(values, dtype=np.float32))


class TwinNode:
    """The twin behind the cell's topics. teleop: ``expert`` (host the task's scripted expert and drive
    ``episodes`` episodes; 0: none) or the name of a teleop device (anything else: follow the
    ``TeleopCommand`` stream of a teleop node, see the module docstring). compressed_quality: also
    publish JPEG camera streams (see ``CameraPublisher``)."""

    def __init__(self, node: Node, cell: CellConfig, task: str, episodes: int = 0, seed: int = 0,
                 noise_scale: float = 0.0, wait_for_recorder_s: float = 30.0, teleop: str = "expert",
                 compressed_quality: int = 0):
        from robolearn.env import make_env
        from robolearn.sim.experts import make_expert

        self.node, self.cell = node, cell
        self.env = make_env(cell, task=task, cameras=True)
        self.env.reset(seed=seed)
        self.twin = self.env.twin
        self.task_name = task
        self.cameras = [CameraPublisher(node, camera, depth=f"depth_{name}" in self.env.observation_space.spaces,
                                        compressed_quality=compressed_quality)
                        for name, camera in self.env.cameras.items()]
        self.object_pub = node.create_publisher(FLOAT_ARRAY, topics.OBJECT_STATE, depth=2)
        self.episode_pub = node.create_publisher(messages.EPISODE_CONTROL, topics.EPISODE_CONTROL, depth=100)
        self.arm_node = ArmNode(node, self.twin.arm, cell, after_tick=self.after_tick)
        self.episodes = episodes
        self.completed = 0
        self.follow_teleop = teleop != "expert"
        self.expert = make_expert(self.env, noise_scale=noise_scale, seed=seed) if episodes > 0 and not self.follow_teleop else None
        self.teleop = TeleopPublisher(node, cell) if self.expert is not None else None
        if self.follow_teleop:
            node.create_subscription(messages.TELEOP_COMMAND, topics.TELEOP, self.on_teleop, depth=100)
        self.steps = -1
        self.wait_for_recorder_s = wait_for_recorder_s
        self.waiting_since_s: float | None = None

    def after_tick(self) -> None:
        self.twin.advance(self.cell.control_dt_s)
        for publisher in self.cameras:
            publisher.publish(publisher.camera.read())
        self.object_pub.publish(float_array_msg(self.twin.task.object_state()))
        if self.steps < 0 and (self.expert is not None or self.follow_teleop):
            self.begin_episode()
        elif self.expert is not None:
            self.drive_episode()

    def episode(self, command: int) -> None:
        self.episode_pub.publish(messages.episode_control_msg(command, now_ns(), self.task_name))

    def begin_episode(self) -> None:
        """Once a recorder listens (or ``wait_for_recorder_s`` passed): reset the task, publish START."""
        if self.waiting_since_s is None:
            self.waiting_since_s = time.monotonic()
        recorder_absent = not self.episode_pub.has_subscribers()
        if recorder_absent and time.monotonic() - self.waiting_since_s < self.wait_for_recorder_s:
            return
        self.waiting_since_s = None
        self.env.reset()
        if self.expert is not None:
            self.expert.reset()
        self.episode(EPISODE.START)
        self.steps = 0

    def end_episode(self, counts: bool) -> None:
        """After the last of ``episodes`` counted episodes the node exits; otherwise the next begins
        on the next tick."""
        self.steps = -1
        if counts:
            self.completed += 1
            if 0 < self.episodes <= self.completed:
                self.expert = None
                self.follow_teleop = False
                self.node.shutdown()

    def drive_episode(self) -> None:
        _, success = self.twin.task.reward()
        if success or self.steps >= self.env.max_episode_steps:
            if success:
                self.episode(EPISODE.SUCCESS)
            self.episode(EPISODE.STOP)
            self.end_episode(counts=True)
            return
        self.teleop.publish(self.expert.read())
        self.steps += 1

    def on_teleop(self, received: Received) -> None:
        """Operator buttons: success ends the episode (the recorder commits it; it counts towards
        ``episodes``), failure and reset end it uncounted (the recorder discards it); the next
        episode starts from a reset scene either way."""
        command = messages.teleop_command(received.msg)
        if self.steps < 0:
            return
        if command.success:
            self.end_episode(counts=True)
        elif command.failure or command.reset:
            self.end_episode(counts=False)
        else:
            self.steps += 1
