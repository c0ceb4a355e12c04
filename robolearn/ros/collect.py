"""``collect_via_ros``: record demonstrations through the ROS 2 graph (what ``robolearn collect
--via-ros`` calls): the same processes as ``launch/twin_collect.yaml``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from robolearn.ros.launch import LaunchConfig, LaunchNode, Supervisor
from robolearn.ros.zenoh_backend import free_endpoint


def collect_via_ros(cell: str | Path, task: str, episodes: int, store_path: str | Path, teleop: str = "expert",
                    seed: int = 0, router: str | None = None) -> dict[str, Any]:
    """Record episodes into ``store_path`` through a twin + recorder (+ teleop) node graph.

    cell: cell YAML path. teleop: ``expert`` (the twin node hosts the task's scripted expert and drives
    ``episodes`` episodes) or ``cell`` (the cell's teleop device in its own node; the operator's
    success/failure buttons end episodes and ``quit`` ends collection). router: zenoh router endpoint;
    default: a private one on a free localhost port. Returns exit codes, restarts and the store's
    episode count.
    """
    if episodes <= 0:
        raise ValueError(f"episodes must be positive, got {episodes}")
    nodes = [LaunchNode(name="recorder", node="recorder", restart=True,
                        params={"store": str(store_path), "task": task,
                                "source": "expert" if teleop == "expert" else "teleop"})]
    if teleop == "expert":
        nodes.append(LaunchNode(name="twin", node="twin", required=True,
                                params={"task": task, "episodes": episodes, "seed": seed}))
    elif teleop == "cell":
        nodes.append(LaunchNode(name="twin", node="twin", params={"task": task, "seed": seed}))
        nodes.append(LaunchNode(name="teleop", node="teleop", required=True))
    else:
        raise ValueError(f"teleop must be 'expert' or 'cell', got {teleop!r}")
    config = LaunchConfig(cell=str(cell), router=router or free_endpoint(), nodes=nodes)
    result = Supervisor(config, log=lambda line: print(line, file=sys.stderr, flush=True)).run()
    n_episodes = None
    if Path(store_path).exists():
        from robolearn.store import DemoStore

        n_episodes = DemoStore.open(store_path, mode="r").n_episodes
    return {"store": str(store_path), "task": task, "episodes_requested": episodes, "n_episodes": n_episodes,
            "via": "ros", **result}
