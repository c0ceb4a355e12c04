"""Build and run one named node in this process (what ``robolearn node NAME`` and the launcher call).

Names: ``twin`` (SimArm + SimCameras, optionally driving expert episodes), ``recorder``, ``arm``,
``camera``, ``teleop`` (hardware drivers from the cell config), ``policy`` (a checkpoint acting at the
control rate), ``router`` (a zenoh router, the
pure-pip stand-in for ``rmw_zenohd``). Parameters are ``key=value`` strings typed by each node's
defaults.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from robolearn.cell import CellConfig
from robolearn.ros.node import Node
from robolearn.ros.nodes import NODE_NAMES
from robolearn.ros.zenoh_backend import ZenohSettings, open_router


def run_node(name: str, cell: CellConfig, params: dict[str, Any], backend: str = "zenoh",
             settings: ZenohSettings | None = None) -> dict[str, Any]:
    """Run node ``name`` until it finishes, Ctrl-C or SIGTERM; returns a summary."""
    settings = settings or ZenohSettings.from_env()
    if name == "router":
        router = open_router(settings.router_endpoint)
        print(f"robolearn: zenoh router listening on {settings.router_endpoint}", file=sys.stderr, flush=True)
        try:
            while True:
                time.sleep(1.0)
        except KeyboardInterrupt:
            return {"node": "router"}
        finally:
            router.close()
    if name not in NODE_NAMES:
        raise SystemExit(f"robolearn: unknown node {name!r}; choose one of: {', '.join(NODE_NAMES)}")
    with Node(params.pop("node_name", name), backend=backend, parameters=params, settings=settings) as node:
        summary = _build(name, node, cell)
        node.spin()
        return summary()


def _build(name: str, node: Node, cell: CellConfig):  # noqa: ANN202
    if name == "twin":
        from robolearn.ros.nodes.twin import TwinNode

        twin = TwinNode(node, cell, task=node.declare_parameter("task", "pick_cube"),
                        episodes=node.declare_parameter("episodes", 0), seed=node.declare_parameter("seed", 0),
                        noise_scale=node.declare_parameter("noise_scale", 0.0),
                        wait_for_recorder_s=node.declare_parameter("wait_for_recorder_s", 30.0))
        return lambda: {"node": "twin", "episodes_driven": twin.completed}
    if name == "recorder":
        from robolearn.ros.nodes.recorder import RecorderNode

        recorder = RecorderNode(node, cell, node.declare_parameter("store", "data/demos.zarr"),
                                task=node.declare_parameter("task", ""), source=node.declare_parameter("source", "teleop"),
                                operator=node.declare_parameter("operator", ""))
        return lambda: {"node": "recorder", "committed": recorder.committed}
    if name == "arm":
        from robolearn.ros.nodes.arm import ArmNode

        arm = cell.arm.create(cell)
        arm.connect()
        arm_node = ArmNode(node, arm, cell)
        return lambda: {"node": "arm", "violations": arm_node.violation_count}
    if name == "policy":
        from robolearn.learn import load_policy
        from robolearn.ros.nodes.policy import PolicyNode

        checkpoint = node.declare_parameter("checkpoint", "")
        if not checkpoint:
            raise SystemExit("robolearn: the policy node needs --param checkpoint=DIR (a directory with model.safetensors)")
        policy = load_policy(checkpoint)
        policy_node = PolicyNode(node, policy, cell, policy.observation_keys)
        return lambda: {"node": "policy", "actions": policy_node.actions}
    if name == "camera":
        from robolearn.ros.nodes.camera import CameraPublisher

        wanted = node.declare_parameter("camera", cell.cameras[0].name if cell.cameras else "")
        config = next((c for c in cell.cameras if c.name == wanted), None)
        if config is None:
            raise SystemExit(f"robolearn: the cell has no camera {wanted!r}; it has {[c.name for c in cell.cameras]}")
        camera = config.create(cell)
        camera.connect()
        CameraPublisher(node, camera, depth=config.depth).spin_at(node, config.fps)
        return lambda: {"node": "camera", "camera": wanted}
    from robolearn.ros.nodes.teleop import run_teleop

    if cell.teleop is None:
        raise SystemExit("robolearn: the cell config has no teleop device; set teleop.type")
    teleop = cell.teleop.create(cell)
    teleop.connect()
    run_teleop(node, teleop, cell)
    return lambda: {"node": "teleop"}
