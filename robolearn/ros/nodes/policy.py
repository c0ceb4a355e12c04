"""The policy node: runs a ``Policy`` at the control rate on observations assembled from the graph.

It acts only on fresh data: every key in ``policy.observation_keys`` must have arrived, and every
camera image must be younger than ``safety.frame_timeout_s``. Ages compare like with like: the
image's header stamp (ROS system time, set from the capture time by the camera or twin node, which
may run on another machine) against this host's system time, allowing ``max_clock_offset_s`` of
disagreement between the two machines' clocks (keep them in sync with chrony, docs/hardware.md):
an image counts as stale when older than ``frame_timeout_s + max_clock_offset_s``, and one stamped
more than ``max_clock_offset_s`` in the future is refused as a clock problem. When it must not act
it publishes no command (the arm node's watchdog then holds the arm) and publishes a
``stale_frame`` violation saying which key is missing, how old it is or how far the clocks
disagree, once per change.
"""

from __future__ import annotations

import numpy as np

from robolearn.cell import CellConfig
from robolearn.env import action_to_command
from robolearn.interfaces import Policy, Violation
from robolearn.ros import messages
from robolearn.ros.clock import ros_now_ns
from robolearn.ros.node import Node, Received
from robolearn.ros.nodes import topics
from robolearn.ros.nodes.arm_state import ArmStateSubscriber

DEFAULT_MAX_CLOCK_OFFSET_S = 0.01
"""Clock disagreement tolerated between the camera's machine and this one (chrony on a LAN keeps
it well under a millisecond)."""


class PolicyNode:
    """``policy`` acting on ``observation_keys`` from the cell's topics. Parameter
    ``max_clock_offset_s``: see the module docstring."""

    def __init__(self, node: Node, policy: Policy, cell: CellConfig, observation_keys: list[str]):
        self.node, self.policy, self.cell = node, policy, cell
        self.keys = list(observation_keys)
        self.frame_timeout_ns = int(cell.safety.frame_timeout_s * 1e9)
        self.max_clock_offset_s = node.declare_parameter("max_clock_offset_s", DEFAULT_MAX_CLOCK_OFFSET_S)
        self.clock_offset_ns = int(self.max_clock_offset_s * 1e9)
        self.latest: dict[str, np.ndarray] = {}
        self.stamps: dict[str, int] = {}
        self.refused_key: str | None = None
        self.actions = 0
        ArmStateSubscriber(node, lambda proprio, _: self.latest.__setitem__("state", proprio))
        node.create_subscription(messages.OBJECT_STATE, topics.OBJECT_STATE,
                                 lambda r: self.latest.__setitem__("object_state", messages.object_state(r.msg)))
        for key in self.keys:
            kind, _, camera = key.partition("_")
            if kind in ("rgb", "depth"):
                topic = topics.camera_image(camera) if kind == "rgb" else topics.camera_depth(camera)
                node.create_subscription(messages.IMAGE, topic, lambda r, key=key: self.on_image(key, r), depth=1)
        self.command_pub = node.create_publisher(messages.EE_DELTA_COMMAND, topics.ARM_COMMAND)
        self.violation_pub = node.create_publisher(messages.SAFETY_VIOLATION, topics.VIOLATIONS, depth=100)
        node.create_timer(cell.control_dt_s, self.tick)
        policy.reset()

    def on_image(self, key: str, received: Received) -> None:
        self.latest[key] = messages.image_array(received.msg)
        self.stamps[key] = messages.stamp_ns(received.msg)

    def check(self, now: int) -> tuple[str, str] | None:
        """``(what, reason)`` when the node must not act now (``what`` = ``<key>:missing`` or
        ``<key>:stale``, to say each refusal once), else None."""
        for key in self.keys:
            if key not in self.latest:
                return f"{key}:missing", f"no {key} received yet; not acting"
            if key not in self.stamps:
                continue
            age_ns = now - self.stamps[key]
            if age_ns < -self.clock_offset_ns:
                return f"{key}:future", (f"{key} is stamped {-age_ns / 1e6:.0f} ms in the future: its machine's clock is "
                                         f"ahead of this one by more than max_clock_offset_s {self.max_clock_offset_s}; "
                                         "sync the clocks (chrony, docs/hardware.md); not acting")
            if age_ns > self.frame_timeout_ns + self.clock_offset_ns:
                return f"{key}:stale", (f"{key} is {age_ns / 1e6:.0f} ms old (frame_timeout_s "
                                        f"{self.cell.safety.frame_timeout_s} + max_clock_offset_s {self.max_clock_offset_s}); "
                                        "not acting")
        return None

    def tick(self) -> None:
        now = ros_now_ns()
        blocked = self.check(now)
        if blocked is not None:
            key, reason = blocked
            if key != self.refused_key:
                self.violation_pub.publish(messages.violation_msg(Violation("stale_frame", reason), now))
                print(f"robolearn policy node: {reason}", flush=True)
            self.refused_key = key
            return
        self.refused_key = None
        action = np.asarray(self.policy.act({key: self.latest[key] for key in self.keys}), dtype=np.float64)
        if action.ndim == 2:  # an action chunk (H, 7): act on its first step, re-plan on the next tick
            action = action[0]
        safety = self.cell.safety
        command = action_to_command(action, safety.max_step_m, safety.max_rot_step_rad)
        self.command_pub.publish(messages.ee_delta_msg(command, now))
        self.actions += 1
