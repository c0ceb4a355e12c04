"""ROS 2 nodes for robolearn over Zenoh (rmw_zenoh-compatible, pure pip) or rclpy.

See ``robolearn.ros.node`` for the node API, ``robolearn.ros.zenoh_backend`` for the wire protocol
and network layout, ``robolearn.ros.nodes`` for the camera, arm, teleop, recorder, policy, reward
and twin nodes. The names below load on first use, so reading ``robolearn.ros.nodes.NODES`` (the
CLI's help) does not start zenoh.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"Node": "robolearn.ros.node", "Publisher": "robolearn.ros.node", "Received": "robolearn.ros.node",
            "Timer": "robolearn.ros.node", "ZenohSettings": "robolearn.ros.zenoh_backend"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'robolearn.ros' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
