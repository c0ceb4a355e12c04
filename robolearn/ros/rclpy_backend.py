"""The ``rclpy`` backend, for robot PCs with ROS 2 installed (rclpy is not on PyPI).

Thin: messages are serialized by rosbags (the same CDR as the zenoh backend) and handed to rclpy as
serialized messages, so node code is identical on both backends. An executor thread receives
(serialized) messages and hands them to the ``Node``'s spin thread. robolearn's own types
(``robolearn_msgs``) must be built in the ROS workspace for rclpy to resolve them:
``python -m robolearn.ros.msg_package`` writes the package.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from robolearn.ros import messages


class RclpyNodeBackend:
    def __init__(self, name: str, namespace: str = "/"):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions

        if not rclpy.ok():
            # robolearn's Node.spin handles SIGINT/SIGTERM (clean stop, devices disconnected), not rclpy.
            rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
        self._rclpy = rclpy
        self.node = rclpy.create_node(name, namespace=namespace)
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    @staticmethod
    def _message_type(typename: str) -> Any:
        from rosidl_runtime_py.utilities import get_message

        return get_message(typename)

    def create_publisher(self, typename: str, topic: str, depth: int = 10, reliable: bool = True) -> Any:
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        qos = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT)
        publisher = self.node.create_publisher(self._message_type(typename), topic, qos)
        return _RclpyPublisher(publisher, typename)

    def create_subscription(self, typename: str, topic: str, callback: Callable[[bytes, bytes | None], None],
                            depth: int = 10, reliable: bool = True) -> Any:
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        qos = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT)
        return self.node.create_subscription(
            self._message_type(typename), topic, lambda data: callback(bytes(data), None), qos, raw=True)

    def close(self) -> None:
        self._executor.shutdown()
        self.node.destroy_node()


class _RclpyPublisher:
    def __init__(self, publisher: Any, typename: str):
        self._publisher, self.typename = publisher, typename

    def publish(self, msg: Any) -> None:
        self.publish_cdr(messages.serialize(msg, self.typename))

    def publish_cdr(self, cdr: bytes | memoryview) -> None:
        self._publisher.publish(bytes(cdr))

    def has_subscribers(self) -> bool:
        return self._publisher.get_subscription_count() > 0
