"""Build and run one named node in this process (what ``robolearn node NAME`` and the launcher call).

``NODES`` in ``robolearn.ros.nodes`` lists the names and their parameters. Parameters are
``key=value`` strings typed by each node's defaults. Devices the node connects (arm, camera, teleop)
are disconnected when it stops, however it stops.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from robolearn.cell import CellConfig
from robolearn.errors import UsageError
from robolearn.ros.node import STOP_SIGNALS, Node
from robolearn.ros.nodes import NODE_NAMES
from robolearn.ros.nodes.twin import TwinNode
from robolearn.ros.zenoh_backend import ZenohSettings, open_router


def run_node(name: str, cell: CellConfig, params: dict[str, Any], backend: str = "auto",
             settings: ZenohSettings | None = None) -> dict[str, Any]:
    """Run node ``name`` until it finishes, Ctrl-C, SIGTERM or SIGHUP; returns a summary.

    backend: ``zenoh``, ``rclpy`` or ``auto`` (see ``robolearn.ros.node.Node``). settings: zenoh
    session settings (default: the cell's ``ros`` section, then the environment). SIGTERM or SIGHUP
    while the node is still starting raises ``KeyboardInterrupt`` (as Ctrl-C does), so a device
    already connected is disconnected on the way out.
    """
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, _interrupt) for sig in STOP_SIGNALS if sig != signal.SIGINT}
    try:
        return _run_node(name, cell, params, backend, settings)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _run_node(name: str, cell: CellConfig, params: dict[str, Any], backend: str,
              settings: ZenohSettings | None) -> dict[str, Any]:
    settings = settings or ZenohSettings.from_cell(cell)
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
        raise UsageError(f"unknown node {name!r}; choose one of: {', '.join(NODE_NAMES)}")
    _check_devices(name, cell, params)
    with ExitStack() as stack:
        node = stack.enter_context(Node(params.pop("node_name", name), backend=backend, parameters=params,
                                        settings=settings))
        summary = _build(name, node, cell, stack)
        unknown = node.undeclared_parameters()
        if unknown:
            raise UsageError(f"node {name} has no parameter {', '.join(map(repr, unknown))}; it takes: "
                             f"{', '.join(sorted(node.declared_parameters())) or 'none'} (robolearn node --help)")
        node.spin()
    return summary()


def _connect(device: Any, stack: ExitStack) -> Any:
    device.connect()
    stack.callback(device.disconnect)
    return device


def _check_devices(name: str, cell: CellConfig, params: dict[str, Any]) -> None:
    """Fail before starting when the node's device is missing from the cell or simulated."""
    if name == "arm":
        _require_hardware(cell.arm, "arm", cell)
    elif name == "camera":
        wanted = params.get("camera", cell.cameras[0].name if cell.cameras else "")
        config = next((c for c in cell.cameras if c.name == wanted), None)
        if config is None:
            raise UsageError(f"the cell has no camera {wanted!r}; it has {[c.name for c in cell.cameras]}")
        _require_hardware(config, f"camera {wanted!r}", cell)
    elif name == "teleop":
        if cell.teleop is None:
            raise UsageError("the cell config has no teleop device; set teleop.type")
        _require_hardware(cell.teleop, "teleop device", cell)
    elif name == "policy" and not params.get("checkpoint"):
        raise UsageError("the policy node needs --param checkpoint=DIR (a directory with model.safetensors)")
    elif name == "reward" and not params.get("reward"):
        raise UsageError("the reward node needs --param reward=SPEC (classifier:DIR, preference:DIR, "
                         "clip:YAML or vlm:YAML)")


def _require_hardware(config: Any, what: str, cell: CellConfig) -> None:
    if config.type == "sim":
        raise UsageError(f"the {what} of cell {cell.name!r} is simulated; the twin node publishes its "
                         f"topics: robolearn node twin --cell {cell.source_path or 'CELL'}")
    if config.type == "expert":
        raise UsageError("the scripted expert needs the simulator's state, so the twin node hosts it: "
                         "robolearn node twin --param teleop=expert --param episodes=N; for a device here, "
                         "--set 'teleop={type: keyboard}' (or spacemouse, gamepad)")


def _build(name: str, node: Node, cell: CellConfig, stack: ExitStack) -> Callable[[], dict[str, Any]]:
    if name == "twin":
        twin = twin_node(node, cell, task=node.declare_parameter("task", "pick_cube"),
                         episodes=node.declare_parameter("episodes", 0), seed=node.declare_parameter("seed", 0),
                         noise_scale=node.declare_parameter("noise_scale", 0.0),
                         wait_for_recorder_s=node.declare_parameter("wait_for_recorder_s", 30.0),
                         teleop=node.declare_parameter("teleop", "expert"),
                         compressed_quality=node.declare_parameter("compressed_quality", 0),
                         only_success=node.declare_parameter("only_success", False))
        stack.callback(twin.env.close)
        return lambda: {"node": "twin", "episodes_completed": twin.completed, "attempts": twin.attempts,
                        "dropped_messages": dict(node.dropped)}
    if name == "recorder":
        from robolearn.ros.nodes.recorder import RecorderNode

        recorder = RecorderNode(node, cell, node.declare_parameter("store", "data/demos.zarr"),
                                task=node.declare_parameter("task", ""), source=node.declare_parameter("source", "teleop"),
                                operator=node.declare_parameter("operator", ""),
                                jpeg_quality=node.declare_parameter("jpeg_quality", 95),
                                object_state=node.declare_parameter("object_state", cell.arm.type == "sim"),
                                start_on_motion=node.declare_parameter("start_on_motion", True),
                                tolerance_s=node.declare_parameter("tolerance_s", 0.0))
        stack.callback(recorder.close)
        return recorder.summary
    if name == "arm":
        from robolearn.ros.nodes.arm import ArmNode

        arm_node = ArmNode(node, _connect(cell.arm.create(cell), stack), cell)
        return lambda: {"node": "arm", "violations": arm_node.violation_count, "faults": arm_node.faults,
                        "dropped_messages": dict(node.dropped)}
    if name == "policy":
        from robolearn.learn import load_policy
        from robolearn.ros.nodes.policy import PolicyNode

        policy = load_policy(node.declare_parameter("checkpoint", ""))
        policy_node = PolicyNode(node, policy, cell, policy.observation_keys)
        return lambda: {"node": "policy", "actions": policy_node.actions}
    if name == "reward":
        from robolearn.reward import load_reward_model
        from robolearn.ros.nodes.reward import RewardNode

        spec = node.declare_parameter("reward", "")
        reward_node = RewardNode(node, load_reward_model(spec), cell, mark_success=node.declare_parameter("mark_success", False))
        return lambda: {"node": "reward", "reward": spec, "scored": reward_node.scored,
                        "skipped_stale": reward_node.skipped_stale, "successes_marked": reward_node.successes_marked}
    if name == "camera":
        from robolearn.ros.nodes.camera import CameraPublisher

        wanted = node.declare_parameter("camera", cell.cameras[0].name if cell.cameras else "")
        config = next(c for c in cell.cameras if c.name == wanted)
        camera = _connect(config.create(cell), stack)
        CameraPublisher(node, camera, depth=config.depth,
                        compressed_quality=node.declare_parameter("compressed_quality", 0)).spin_at(node, config.fps)
        return lambda: {"node": "camera", "camera": wanted}
    from robolearn.ros.nodes.teleop import run_teleop

    run_teleop(node, _connect(cell.teleop.create(cell), stack), cell)
    return lambda: {"node": "teleop"}


def twin_node(node: Node, cell: CellConfig, task: str, episodes: int = 0, seed: int = 0, noise_scale: float = 0.0,
              teleop: str = "expert", **options: Any) -> TwinNode:
    """The twin node of ``cell`` for ``task``: with ``teleop: expert`` it hosts the task's scripted
    expert (action noise ``noise_scale``, seeded ``seed``) for ``episodes`` episodes; with a teleop
    device name it follows a teleop node. ``options``: the rest of ``TwinNode``'s settings."""
    from robolearn.env import make_env
    from robolearn.sim.experts import make_expert

    env = make_env(cell, task=task, cameras=True)
    follow_teleop = teleop != "expert"
    expert = make_expert(env, noise_scale=noise_scale, seed=seed) if episodes > 0 and not follow_teleop else None
    return TwinNode(node, env, expert, episodes=episodes, seed=seed, follow_teleop=follow_teleop, **options)
