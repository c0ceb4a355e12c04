"""The twin node: the cell's MuJoCo twin (SimArm and SimCameras) behind the same topics as the real
arm and camera nodes, so every graph runs on the twin.

Each control tick: apply the newest arm command (``ArmNode``, through the SafetyFilter), advance the
physics one control period, publish joint states, pose, camera images and the privileged
``object_state``. With ``episodes > 0`` it also hosts the task's scripted expert (which needs the
simulator's state) and drives episodes: it resets the task, publishes ``EpisodeControl`` START, then the
expert's ``TeleopCommand`` and arm command every tick, SUCCESS when the task succeeds, STOP at the end;
after the last episode the node exits. Before each episode it waits (up to ``wait_for_recorder_s``)
until something subscribes to episode control, so a restarting recorder misses no episode start. Recording is someone else's job (the recorder node).
"""

from __future__ import annotations

import time

import numpy as np

from robolearn.cell import CellConfig
from robolearn.interfaces import now_ns
from robolearn.ros import messages
from robolearn.ros.node import Node
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
    def __init__(self, node: Node, cell: CellConfig, task: str, episodes: int = 0, seed: int = 0,
                 noise_scale: float = 0.0, wait_for_recorder_s: float = 30.0):
        from robolearn.env import make_env
        from robolearn.sim.experts import make_expert

        self.node, self.cell = node, cell
        self.env = make_env(cell, task=task, cameras=True)
        self.env.reset(seed=seed)
        self.twin = self.env.twin
        self.task_name = task
        self.cameras = [CameraPublisher(node, camera, depth=f"depth_{name}" in self.env.observation_space.spaces)
                        for name, camera in self.env.cameras.items()]
        self.object_pub = node.create_publisher(FLOAT_ARRAY, topics.OBJECT_STATE, depth=2)
        self.episode_pub = node.create_publisher(messages.EPISODE_CONTROL, topics.EPISODE_CONTROL, depth=100)
        self.arm_node = ArmNode(node, self.twin.arm, cell, after_tick=self.after_tick)
        self.episodes_left = episodes
        self.completed = 0
        self.expert = make_expert(self.env, noise_scale=noise_scale, seed=seed) if episodes > 0 else None
        self.teleop = TeleopPublisher(node, cell) if episodes > 0 else None
        self.steps = -1
        self.wait_for_recorder_s = wait_for_recorder_s
        self.waiting_since_s: float | None = None

    def after_tick(self) -> None:
        self.twin.advance(self.cell.control_dt_s)
        for publisher in self.cameras:
            publisher.publish(publisher.camera.read())
        self.object_pub.publish(float_array_msg(self.twin.task.object_state()))
        if self.expert is not None:
            self.drive_episode()

    def episode(self, command: int) -> None:
        self.episode_pub.publish(messages.episode_control_msg(command, now_ns(), self.task_name))

    def drive_episode(self) -> None:
        if self.steps < 0:
            if self.waiting_since_s is None:
                self.waiting_since_s = time.monotonic()
            recorder_absent = not self.episode_pub.has_subscribers()
            if recorder_absent and time.monotonic() - self.waiting_since_s < self.wait_for_recorder_s:
                return
            self.waiting_since_s = None
            self.env.reset()
            self.expert.reset()
            self.episode(EPISODE.START)
            self.steps = 0
            return
        _, success = self.twin.task.reward()
        if success or self.steps >= self.env.max_episode_steps:
            if success:
                self.episode(EPISODE.SUCCESS)
            self.episode(EPISODE.STOP)
            self.completed += 1
            self.episodes_left -= 1
            self.steps = -1
            if self.episodes_left <= 0:
                self.expert = None
                self.node.shutdown()
            return
        self.teleop.publish(self.expert.read())
        self.steps += 1
