"""Clocks at the ROS boundary.

ROS 2 stamps — message headers and the rmw attachment's source timestamp — are system time:
nanoseconds since the Unix epoch (``rclcpp::Clock(RCL_SYSTEM_TIME)``), what rviz, tf,
message_filters and nodes on other machines compare against. robolearn's devices stamp on the
host's monotonic clock (``robolearn.interfaces.now_ns``), which never jumps and is what watchdogs
and durations use, but means nothing on another machine. So every stamp that leaves a node is
system time: ``ros_now_ns`` for "now", ``ros_stamp_ns`` for a device's monotonic capture stamp.
Comparing a received stamp with this host's ``ros_now_ns`` assumes the clocks agree: run NTP
(chrony) on every machine of the graph (docs/hardware.md, "Clocks").
"""

from __future__ import annotations

import time


def ros_now_ns() -> int:
    """System time (ns since the Unix epoch): the stamp of a message about "now"."""
    return time.time_ns()


def ros_stamp_ns(monotonic_ns: int) -> int:
    """A host-monotonic stamp (``robolearn.interfaces.now_ns``, what drivers report) as system time."""
    return int(monotonic_ns) + time.time_ns() - time.monotonic_ns()
