"""``collect_via_ros``: record demonstrations through the ROS 2 graph (what ``robolearn collect
--via-ros`` calls): the same processes as ``launch/twin_collect.yaml``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from robolearn.config import ConfigError
from robolearn.errors import UsageError
from robolearn.ros.launch import LaunchConfig, LaunchNode, Supervisor
from robolearn.ros.zenoh_backend import free_endpoint


def check_store_fits(store_path: str | Path, cell: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> None:
    """Raise ``ConfigError`` when the episodes the recorder node would write from ``cell`` do not fit
    the existing store at ``store_path`` (other keys, frame sizes or dtypes); before any node starts."""
    from robolearn.cell import load_cell
    from robolearn.env import ACTION_DIM
    from robolearn.ros.nodes.recorder import stream_specs
    from robolearn.store import DemoStore, EpisodeRecorder

    path = Path(store_path)
    if not path.exists():
        return
    cell_config = load_cell(cell, list(overrides))
    specs = stream_specs(cell_config, object_state=cell_config.arm.type == "sim")
    try:
        recorder = EpisodeRecorder(DemoStore.open(path, mode="r"), list(specs), control_hz=cell_config.control_hz)
        recorder.check_store(specs, (ACTION_DIM,))
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError("--store", str(store_path), str(err)) from err


def collect_via_ros(cell: str | Path, task: str, episodes: int, store_path: str | Path, teleop: str = "expert",
                    seed: int = 0, router: str | None = None, *, noise_scale: float = 0.0, operator: str = "",
                    only_success: bool = False, jpeg_quality: int = 95, cameras: bool = True,
                    overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Record episodes into ``store_path`` through a twin + recorder (+ teleop) node graph.

    cell: cell YAML path; overrides: ``KEY=VALUE`` cell overrides for every node. teleop: ``expert``
    (the twin node hosts the task's scripted expert, with ``noise_scale``, and drives ``episodes``
    episodes, attempt i seeded ``seed + i`` as in-process ``collect``), ``cell`` (the cell's teleop
    device) or a teleop type (``keyboard``, ``spacemouse``, ``gamepad``) in its own node: the
    operator's success button commits an episode, failure or reset discards it, and collection ends
    after ``episodes`` successes or on quit. only_success: the expert's failed episodes are discarded
    and redone (at most 3× ``episodes`` attempts; with a device only success-button episodes are
    committed anyway). jpeg_quality: of a new store. cameras: False records state only (every node
    runs the cell without cameras). router: zenoh router endpoint; default: a private one on a free
    localhost port. Returns exit codes, restarts and the store's episode count.
    """
    if episodes <= 0:
        raise UsageError(f"episodes must be positive, got {episodes}")
    cell_set = [*overrides, *([] if cameras else ["cameras=[]"])]
    check_store_fits(store_path, cell, cell_set)
    device_set = [] if teleop in ("expert", "cell") else [f"teleop={{type: {teleop}}}"]
    source = "expert" if teleop == "expert" else "teleop"
    nodes = [
        LaunchNode(name="recorder", node="recorder", restart=True,
                   params={"store": str(store_path), "task": task, "source": source, "operator": operator,
                           "jpeg_quality": jpeg_quality}),
        LaunchNode(name="twin", node="twin", required=True,
                   params={"task": task, "episodes": episodes, "seed": seed, "noise_scale": noise_scale,
                           "only_success": only_success, "teleop": "expert" if teleop == "expert" else "device"}),
    ]
    if teleop != "expert":
        nodes.append(LaunchNode(name="teleop", node="teleop", required=True, set=device_set))
    config = LaunchConfig(cell=str(cell), cell_set=cell_set, router=router or free_endpoint(), nodes=nodes)
    result = Supervisor(config, log=lambda line: print(line, file=sys.stderr, flush=True)).run()
    n_episodes = None
    if Path(store_path).exists():
        from robolearn.store import DemoStore

        n_episodes = DemoStore.open(store_path, mode="r").n_episodes
    return {"store": str(store_path), "task": task, "episodes_requested": episodes, "n_episodes": n_episodes,
            "via": "ros", **result}
