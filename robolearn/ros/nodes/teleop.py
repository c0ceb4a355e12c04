"""The teleop node: a ``Teleop`` device → ``TeleopCommand`` (buttons and normalized motion) and the
arm command it stands for (the env's action scaling, ``robolearn.env.action_to_command``: the cell's
``max_step_m`` / ``max_rot_step_rad``)."""

from __future__ import annotations

from robolearn.cell import CellConfig
from robolearn.env import action_to_command
from robolearn.interfaces import Teleop, TeleopCommand
from robolearn.ros import messages
from robolearn.ros.clock import ros_now_ns
from robolearn.ros.node import Node
from robolearn.ros.nodes import topics


class TeleopPublisher:
    def __init__(self, node: Node, cell: CellConfig):
        self.cell = cell
        self.teleop_pub = node.create_publisher(messages.TELEOP_COMMAND, topics.TELEOP, depth=100)
        self.command_pub = node.create_publisher(messages.EE_DELTA_COMMAND, topics.ARM_COMMAND)

    def publish(self, command: TeleopCommand) -> None:
        stamp = ros_now_ns()
        self.teleop_pub.publish(messages.teleop_msg(command, stamp))
        safety = self.cell.safety
        arm_command = action_to_command(command.action(), safety.max_step_m, safety.max_rot_step_rad)
        self.command_pub.publish(messages.ee_delta_msg(arm_command, stamp))


def run_teleop(node: Node, teleop: Teleop, cell: CellConfig) -> None:
    """Standalone teleop node: read the device at the control rate and publish; ``quit`` ends the node."""
    publisher = TeleopPublisher(node, cell)

    def tick() -> None:
        command = teleop.read()
        publisher.publish(command)
        if command.quit:
            node.shutdown()

    node.create_timer(cell.control_dt_s, tick)
