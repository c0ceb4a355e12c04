"""The rclpy backend (only where ROS 2 is installed): the same node code publishes and receives."""

from __future__ import annotations

import pytest

pytest.importorskip("rclpy")

from robolearn.ros import Node, messages  # noqa: E402


def test_rclpy_round_trip():
    got = []
    with Node("robolearn_rclpy_test", backend="rclpy") as node:
        node.create_subscription("std_msgs/msg/String", "/robolearn_test", got.append)
        publisher = node.create_publisher("std_msgs/msg/String", "/robolearn_test")
        msg = messages.msg_class("std_msgs/msg/String")(data="hello")
        for _ in range(50):
            publisher.publish(msg)
            node.spin(until=lambda: bool(got), timeout_s=0.1)
            if got:
                break
    assert got and got[0].msg.data == "hello"
    assert got[0].cdr == bytes(messages.serialize(msg, "std_msgs/msg/String"))
