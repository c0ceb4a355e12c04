"""Recording through the ROS graph records what in-process ``robolearn collect`` records: the same
steps (state, object state, images and action of one instant), the same seeds, and the collect
options (--only-success, --quality, --no-cameras) carried through the graph."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from robolearn.cell import load_cell
from robolearn.cli.node_host import twin_node as host_twin_node
from robolearn.ros import Node, ZenohSettings
from robolearn.ros.nodes.recorder import RecorderNode
from robolearn.ros.nodes.twin import TwinNode
from robolearn.ros.zenoh_backend import free_endpoint, open_router

CELL = "configs/cells/sim_panda.yaml"
SMALL_CAMERA = ("cameras=[{type: sim, name: front, width_px: 64, height_px: 48, mount: world, pos_m: [1.15, 0.0, 0.55], "
                "look_at_m: [0.5, 0.0, 0.05]}]")


def record_via_graph(store, task: str, episodes: int, seed: int = 0, overrides: tuple[str, ...] = (),
                     jpeg_quality: int = 95, only_success: bool = False) -> tuple[RecorderNode, TwinNode]:
    """A twin node (hosting the expert) and a recorder node, each spinning on its own thread of this
    process, until the twin has run its episodes and the recorder has committed or discarded each."""
    endpoint = free_endpoint()
    router = open_router(endpoint)
    settings = ZenohSettings(router_endpoint=endpoint)
    cell = load_cell(CELL, list(overrides))
    twin_node, recorder_node = Node("twin", settings=settings), Node("recorder", settings=settings)
    recorder = None
    try:
        recorder = RecorderNode(recorder_node, cell, store, task=task, source="expert", jpeg_quality=jpeg_quality)
        twin = host_twin_node(twin_node, cell, task=task, episodes=episodes, seed=seed, only_success=only_success)
        recorder_thread = threading.Thread(target=recorder_node.spin)
        recorder_thread.start()
        twin_node.spin(timeout_s=180)  # returns when the twin has driven its episodes
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(recorder.committed) + recorder.discarded < twin.attempts:
            time.sleep(0.05)
        recorder_node.shutdown()
        recorder_thread.join(timeout=30)
    finally:
        twin_node.shutdown()
        recorder_node.shutdown()
        if recorder is not None:
            recorder.close()
        for node in (recorder_node, twin_node):
            node.close()
        router.close()
    return recorder, twin


def test_graph_records_the_same_steps_as_in_process_collect(tmp_path):
    """State, object state, images and action of every step equal an in-process collect with the
    same seed: the graph pairs each command with the observation it was taken on (not the previous one)."""
    from robolearn.collect import CollectSettings, collect
    from robolearn.store import DemoStore

    collect(CollectSettings(cell=CELL, task="reach", store=str(tmp_path / "local.zarr"), episodes=2, seed=3,
                            progress=False))
    recorder, twin = record_via_graph(tmp_path / "ros.zarr", "reach", episodes=2, seed=3)
    assert twin.completed == 2 and recorder.committed == [0, 1] and recorder.missing_frames == 0
    local, ros = DemoStore.open(tmp_path / "local.zarr"), DemoStore.open(tmp_path / "ros.zarr")
    assert ros.n_episodes == local.n_episodes == 2
    for i in range(2):
        expected, got = local.episode(i), ros.episode(i)
        assert sorted(got) == sorted(expected)
        assert len(got["action"]) > 5
        for key in sorted(set(expected) - {"stamp_ns"}):
            np.testing.assert_array_equal(got[key], expected[key], err_msg=f"episode {i}, {key}")
        assert ros.episode_meta(i)["success"] == local.episode_meta(i)["success"]
        assert ros.episode_meta(i)["recorded_via"] == "ros"
        assert np.all(np.diff(got["stamp_ns"]) > 0)


def test_only_success_discards_and_redoes_failed_expert_episodes(tmp_path):
    """An expert that cannot finish in 3 steps: with only_success every attempt is discarded and the
    twin stops after 3 attempts per episode (as in-process); without it the failure is kept."""
    from robolearn.store import DemoStore

    task = tmp_path / "reach_short.yaml"
    task.write_text("type: reach\nmax_episode_steps: 3\n")
    recorder, twin = record_via_graph(tmp_path / "only.zarr", str(task), episodes=1, only_success=True,
                                      overrides=("cameras=[]",))
    assert twin.attempts == 3 and twin.completed == 0
    assert recorder.committed == [] and recorder.discarded == 3
    recorder, twin = record_via_graph(tmp_path / "any.zarr", str(task), episodes=1, overrides=("cameras=[]",))
    assert twin.attempts == 1 and recorder.committed == [0]
    store = DemoStore.open(tmp_path / "any.zarr")
    assert not store.episode_meta(0)["success"] and len(store.episode(0)["action"]) == 3


def test_jpeg_quality_reaches_a_new_store(tmp_path):
    from robolearn.store import DemoStore

    recorder, _ = record_via_graph(tmp_path / "q.zarr", "reach", episodes=1, jpeg_quality=40,
                                   overrides=(SMALL_CAMERA,))
    store = DemoStore.open(tmp_path / "q.zarr")
    assert store.jpeg_quality == 40 and recorder.committed == [0]
    assert store.episode(0)["rgb_front"].shape[1:] == (48, 64, 3)


def test_collect_via_ros_cli_carries_the_options(tmp_path, capsys):
    """``robolearn collect --via-ros --only-success --quality 60 --no-cameras``: node processes,
    a state-only store with that quality, successful episodes only."""
    from robolearn.cli import main
    from robolearn.store import DemoStore

    store_path = tmp_path / "cli.zarr"
    code = main(["collect", "--via-ros", "--task", "reach", "--episodes", "1", "--store", str(store_path),
                 "--only-success", "--quality", "60", "--no-cameras", "--json"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and result["episodes_committed"] == 1 and result["exit_codes"] == {"recorder": 0, "twin": 0}
    store = DemoStore.open(store_path)
    assert store.jpeg_quality == 60
    assert not [key for key in store.keys if key.startswith(("rgb_", "depth_"))]
    assert store.episode_meta(0)["success"]


def test_collect_via_ros_refuses_a_store_of_another_shape_before_starting(tmp_path):
    from robolearn.config import ConfigError
    from robolearn.ros.graph_collect import collect_via_ros

    record_via_graph(tmp_path / "state_only.zarr", "reach", episodes=1, overrides=("cameras=[]",))
    with pytest.raises(ConfigError, match="rgb_front"):
        collect_via_ros(CELL, "reach", 1, tmp_path / "state_only.zarr")
