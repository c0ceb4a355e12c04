"""ROS 2 nodes for robolearn over Zenoh (rmw_zenoh-compatible, pure pip) or rclpy.

See ``robolearn.ros.node`` for the node API, ``robolearn.ros.zenoh_backend`` for the wire protocol
and network layout, ``robolearn.ros.nodes`` for the camera, arm, teleop, recorder, policy and twin nodes.
"""

from robolearn.ros.node import Node, Publisher, Received, Timer
from robolearn.ros.zenoh_backend import ZenohSettings

__all__ = ["Node", "Publisher", "Received", "Timer", "ZenohSettings"]
