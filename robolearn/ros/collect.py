"""``collect_via_ros``: record demonstrations through the ROS 2 graph (what ``robolearn collect
--via-ros`` calls): the same processes as ``launch/twin_collect.yaml``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from robolearn.ros.launch import LaunchConfig, LaunchNode, Supervisor
from robolearn.ros.zenoh_backend import free_endpoint


def collect_via_ros(cell: str | Path, task: str, episodes: int, store_path: str | Path, teleop: str = "expert",
                    seed: int = 0, router: str | None = None, *, noise_scale: float = 0.0, operator: str = "",
                    overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Record episodes into ``store_path`` through a twin + recorder (+ teleop) node graph.

    cell: cell YAML path; overrides: ``KEY=VALUE`` cell overrides for every node. teleop: ``expert``
    (the twin node hosts the task's scripted expert, with ``noise_scale``, and drives ``episodes``
    episodes), ``cell`` (the cell's teleop device) or a teleop type (``keyboard``, ``spacemouse``,
    ``gamepad``) in its own node: the operator's success button commits an episode, failure or reset
    discards it, and collection ends after ``episodes`` successes or on quit. router: zenoh router
    endpoint; default: a private one on a free localhost port. Returns exit codes, restarts and the
    store's episode count.
    """
    if episodes <= 0:
        raise ValueError(f"episodes must be positive, got {episodes}")
    device_set = [] if teleop in ("expert", "cell") else [f"teleop={{type: {teleop}}}"]
    source = "expert" if teleop == "expert" else "teleop"
    nodes = [
        LaunchNode(name="recorder", node="recorder", restart=True,
                   params={"store": str(store_path), "task": task, "source": source, "operator": operator}),
        LaunchNode(name="twin", node="twin", required=True,
                   params={"task": task, "episodes": episodes, "seed": seed, "noise_scale": noise_scale,
                           "teleop": "expert" if teleop == "expert" else "device"}),
    ]
    if teleop != "expert":
        nodes.append(LaunchNode(name="teleop", node="teleop", required=True, set=device_set))
    config = LaunchConfig(cell=str(cell), cell_set=list(overrides), router=router or free_endpoint(), nodes=nodes)
    result = Supervisor(config, log=lambda line: print(line, file=sys.stderr, flush=True)).run()
    n_episodes = None
    if Path(store_path).exists():
        from robolearn.store import DemoStore

        n_episodes = DemoStore.open(store_path, mode="r").n_episodes
    return {"store": str(store_path), "task": task, "episodes_requested": episodes, "n_episodes": n_episodes,
            "via": "ros", **result}
