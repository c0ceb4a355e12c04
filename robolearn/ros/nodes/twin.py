"""The twin node: the cell's MuJoCo twin (SimArm and SimCameras) behind the same topics as the real
arm and camera nodes, so every graph runs on the twin.

Each control tick: apply the newest arm command (``ArmNode``, through the SafetyFilter), advance the
physics one control period, then publish the observation of that instant — joint states, pose,
camera images and the privileged ``object_state`` — all with one stamp (the tick's ROS system time).

Episodes, with ``teleop: expert`` and ``episodes > 0``: the node hosts the task's scripted expert
(which needs the simulator's state) and drives them exactly as in-process ``robolearn collect``
does: episode attempt i resets the task with seed ``seed + i`` and publishes ``EpisodeControl``
START and the reset scene's observation; on every tick the expert reads the scene and its
``TeleopCommand`` is published with the observation's stamp (what the recorder pairs it with) and
applied to the arm on the next tick. An episode ends when the task succeeds (and terminates on
success) or after ``max_episode_steps`` commands: SUCCESS when it succeeded, then STOP — or, with
``only_success``, DISCARD for a failed one, which is redone (at most 3× ``episodes`` attempts).
After ``episodes`` kept episodes the node exits.

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

from robolearn.env import RobotEnv, action_to_command
from robolearn.interfaces import Teleop
from robolearn.ros import messages
from robolearn.ros.clock import ros_now_ns
from robolearn.ros.node import Node, Received
from robolearn.ros.nodes import topics
from robolearn.ros.nodes.arm import ArmNode
from robolearn.ros.nodes.camera import CameraPublisher

EPISODE = messages.msg_class(messages.EPISODE_CONTROL)
FLOAT_ARRAY = "std_msgs/msg/Float32MultiArray"
MAX_ATTEMPTS_PER_EPISODE = 3
"""With ``only_success``: attempts allowed per requested episode (as in-process ``collect``)."""


def float_array_msg(values: np.ndarray) -> object:
    store = messages.typestore()
    layout = store.types["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
    return store.types[FLOAT_ARRAY](layout=layout, data=np.asarray(values, dtype=np.float32))


class TwinNode:
    """The twin env ``env`` (``robolearn.env.make_env`` of the cell, with cameras) behind the cell's
    topics. expert: the task's scripted expert, hosted to drive ``episodes`` episodes (0: none);
    follow_teleop: instead follow the ``TeleopCommand`` stream of a teleop node (see the module
    docstring). only_success: with the expert, discard and redo failed episodes. compressed_quality:
    also publish JPEG camera streams (see ``CameraPublisher``)."""

    def __init__(self, node: Node, env: RobotEnv, expert: Teleop | None = None, episodes: int = 0, seed: int = 0,
                 wait_for_recorder_s: float = 30.0, follow_teleop: bool = False, compressed_quality: int = 0,
                 only_success: bool = False):
        self.node, self.cell = node, env.cell
        self.env = env
        self.env.reset(seed=seed)
        self.twin = self.env.twin
        self.task_name = env.task.name
        self.seed = seed
        self.cameras = [CameraPublisher(node, camera, depth=f"depth_{name}" in self.env.observation_space.spaces,
                                        compressed_quality=compressed_quality)
                        for name, camera in self.env.cameras.items()]
        self.object_pub = node.create_publisher(messages.OBJECT_STATE, topics.OBJECT_STATE, depth=10)
        self.episode_pub = node.create_publisher(messages.EPISODE_CONTROL, topics.EPISODE_CONTROL, depth=100)
        self.arm_node = ArmNode(node, self.twin.arm, self.cell, timer=False)
        self.episodes = episodes
        self.only_success = only_success
        self.completed = 0
        self.attempts = 0
        self.follow_teleop = follow_teleop
        self.expert = expert if episodes > 0 and not follow_teleop else None
        self.teleop_pub = (node.create_publisher(messages.TELEOP_COMMAND, topics.TELEOP, depth=100)
                           if self.expert is not None else None)
        if self.follow_teleop:
            node.create_subscription(messages.TELEOP_COMMAND, topics.TELEOP, self.on_teleop, depth=100)
        self.steps = -1
        self.ended = False
        self.wait_for_recorder_s = wait_for_recorder_s
        self.waiting_since_s: float | None = None
        node.create_timer(self.arm_node.period_s, self.tick)

    def tick(self) -> None:
        if self.ended:
            self.ended = False  # one ordinary tick first: the recorder gets the scene after the last command
        elif self.steps < 0 and (self.expert is not None or self.follow_teleop) and self.recorder_ready():
            self.begin_episode()
            return
        self.arm_node.apply_command()
        self.twin.advance(self.cell.control_dt_s)
        stamp = self.publish_observation()
        if self.expert is not None and self.steps >= 0:
            self.drive_episode(stamp)

    def publish_observation(self) -> int:
        """The scene now — arm state, every camera, object state — under one stamp; returns it."""
        stamp = ros_now_ns()
        self.arm_node.publish_state(stamp)
        for publisher in self.cameras:
            publisher.publish(publisher.camera.read(), stamp)
        self.object_pub.publish(messages.object_state_msg(self.twin.task.object_state(), stamp))
        return stamp

    def episode(self, command: int) -> None:
        self.episode_pub.publish(messages.episode_control_msg(command, ros_now_ns(), self.task_name))

    def recorder_ready(self) -> bool:
        """True once something listens to episode control, or ``wait_for_recorder_s`` passed."""
        if self.waiting_since_s is None:
            self.waiting_since_s = time.monotonic()
        if self.episode_pub.has_subscribers() or time.monotonic() - self.waiting_since_s >= self.wait_for_recorder_s:
            self.waiting_since_s = None
            return True
        return False

    def begin_episode(self) -> None:
        """Reset the task (seed ``seed + attempt``), publish START and the reset scene; the expert
        takes its first action on it."""
        self.env.reset(seed=self.seed + self.attempts)
        self.attempts += 1
        self.arm_node.pending = None
        if self.expert is not None:
            self.expert.reset()
        self.episode(EPISODE.START)
        self.steps = 0
        stamp = self.publish_observation()
        if self.expert is not None:
            self.act(stamp)

    def act(self, stamp: int) -> None:
        """The expert's command on the scene published at ``stamp``: to the recorder (as a
        ``TeleopCommand`` with that stamp) and to the arm for the next tick."""
        command = self.expert.read()
        self.teleop_pub.publish(messages.teleop_msg(command, stamp))
        safety = self.cell.safety
        self.arm_node.set_command(action_to_command(command.action(), safety.max_step_m, safety.max_rot_step_rad))

    def drive_episode(self, stamp: int) -> None:
        """One more command was applied: end the episode like the env would, else act again."""
        self.steps += 1
        _, success = self.twin.task.reward()
        if (success and self.env.terminate_on_success) or self.steps >= self.env.max_episode_steps:
            keep = success or not self.only_success
            if success:
                self.episode(EPISODE.SUCCESS)
            self.episode(EPISODE.STOP if keep else EPISODE.DISCARD)
            self.end_episode(counts=keep)
            return
        self.act(stamp)

    def end_episode(self, counts: bool) -> None:
        """After the last of ``episodes`` counted episodes (or, with the expert, the last allowed
        attempt) the node exits; otherwise the next begins on the next tick."""
        self.steps, self.ended = -1, True
        if counts:
            self.completed += 1
        out_of_attempts = self.expert is not None and self.attempts >= MAX_ATTEMPTS_PER_EPISODE * self.episodes
        if 0 < self.episodes <= self.completed or out_of_attempts:
            self.expert = None
            self.follow_teleop = False
            self.node.shutdown()

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
