"""``robolearn launch``: every node its own process, crashes reported and restarted, clean stop;
twin_collect records expert episodes through the graph and survives a killed recorder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from robolearn.ros import Node, ZenohSettings
from robolearn.ros.launch import LaunchConfig, LaunchNode, Supervisor, load_launch
from robolearn.ros.zenoh_backend import free_endpoint


def test_launch_yaml_arguments_and_overrides():
    config = load_launch("launch/twin_collect.yaml", ["episodes=5", "store=/tmp/x.zarr", "router=tcp/127.0.0.1:1"])
    nodes = {n.name: n for n in config.nodes}
    assert nodes["twin"].params["episodes"] == "5" and nodes["twin"].required
    assert nodes["recorder"].params["store"] == "/tmp/x.zarr" and nodes["recorder"].restart
    assert config.cell == "configs/cells/sim_panda.yaml" and config.router == "tcp/127.0.0.1:1"
    assert nodes["recorder"].params["source"] == "expert" and "teleop" not in nodes  # the expert needs no teleop node


def test_launch_teleop_choice_selects_nodes_and_cell_overrides():
    config = load_launch("launch/twin_collect.yaml", ["teleop=keyboard", "router=tcp/127.0.0.1:1"])
    nodes = {n.name: n for n in config.nodes}
    assert sorted(nodes) == ["recorder", "teleop", "twin"]
    assert nodes["recorder"].params["source"] == "teleop" and nodes["twin"].params["teleop"] == "keyboard"
    command = Supervisor(config).command(nodes["teleop"])
    assert command[command.index("--set") + 1] == "teleop={type: keyboard}"
    assert command[command.index("--router") + 1] == "tcp/127.0.0.1:1"
    assert nodes["teleop"].required and nodes["twin"].required


def test_launch_yaml_refuses_unknown_node_types_and_duplicate_names(tmp_path):
    from robolearn.config import ConfigError

    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("cell: configs/cells/sim_panda.yaml\nnodes:\n  - {name: cam, node: camra}\n")
    with pytest.raises(ConfigError, match="nodes.cam.node: unknown node 'camra'; choose one of: twin, recorder"):
        load_launch(unknown)
    duplicate = tmp_path / "duplicate.yaml"
    duplicate.write_text("args: {mode: a}\ncell: configs/cells/sim_panda.yaml\nnodes:\n"
                         "  - {name: rec, node: recorder}\n  - {name: rec, node: recorder, when: {mode: a}}\n"
                         "  - {name: twin, node: twin}\n")
    with pytest.raises(ConfigError, match="nodes.rec: two enabled nodes have this name"):
        load_launch(duplicate)
    config = load_launch(duplicate, ["mode=b"])  # the second one is disabled: no clash
    assert [n.name for n in config.nodes] == ["rec", "twin"]


def _wait_for_nodes(endpoint: str, names: set[str], proc: subprocess.Popen, timeout_s: float) -> set[str]:
    """Poll the graph (liveliness tokens through the router at ``endpoint``) from one observer until
    it shows every node in ``names``; returns the node names seen last."""
    seen: set[str] = set()
    with Node("observer", settings=ZenohSettings(router_endpoint=endpoint)) as observer:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not names <= seen:
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.5)
            seen = {token.split("/")[-1] for token in observer.backend_impl.graph() if "/NN/" in token}
    return seen


@pytest.mark.parametrize("sig, said", [(signal.SIGINT, "interrupted; stopping all nodes"),
                                       (signal.SIGHUP, "SIGHUP; stopping all nodes")], ids=["ctrl-c", "hangup"])
def test_ctrl_c_or_hangup_stops_every_node_cleanly(tmp_path, sig, said):
    """Ctrl-C in the launch's terminal, or the terminal (an SSH session) closing: every node stops."""
    endpoint = free_endpoint()
    store = tmp_path / "ctrl_c.zarr"
    proc = subprocess.Popen(
        [sys.executable, "-m", "robolearn", "launch", "launch/twin_collect.yaml", "--set", "episodes=0",
         "--set", f"store={store}", "--set", f"router={endpoint}", "--set", "task=reach", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "MUJOCO_GL": "egl"})
    try:
        assert {"twin", "recorder"} <= _wait_for_nodes(endpoint, {"twin", "recorder"}, proc, timeout_s=120)
        proc.send_signal(sig)  # what Ctrl-C in its terminal, or closing that terminal, does
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # a failed assertion above: let the launcher stop its nodes, then kill it
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    assert proc.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["exit_codes"] == {"recorder": 0, "twin": 0}
    assert said in err
    leftovers = [p for p in Path("/proc").glob("[0-9]*") if str(store) in _cmdline(p)]
    assert not leftovers  # no node process outlives the launcher


def _cmdline(proc_dir: Path) -> str:
    try:
        return (proc_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_crashed_node_is_reported_and_restarted_and_required_exit_stops_all():
    config = LaunchConfig(
        cell="configs/cells/sim_panda.yaml", router=free_endpoint(), stop_timeout_s=20,
        nodes=[
            LaunchNode(name="badcam", node="camera", params={"camera": "nope"}, restart=True, max_restarts=1),
            LaunchNode(name="twin", node="twin", required=True,
                       # No recorder comes: the twin waits 10 s, time for badcam to crash twice.
                       params={"task": "reach", "episodes": 1, "wait_for_recorder_s": 10}),
        ],
    )
    lines: list[str] = []
    result = Supervisor(config, log=lines.append).run()
    assert result["exit_codes"]["twin"] == 0
    assert result["exit_codes"]["badcam"] != 0
    assert result["restarts"] == {"badcam": 1}
    assert any("badcam crashed" in line for line in lines)


def test_twin_collect_survives_a_killed_recorder(tmp_path):
    store_module = pytest.importorskip("robolearn.store")
    store_path = tmp_path / "demos.zarr"
    config = load_launch("launch/twin_collect.yaml", [
        "episodes=4", f"store={store_path}", f"router={free_endpoint()}", "task=reach"])
    supervisor = Supervisor(config, log=lambda line: None)
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(supervisor.run()))
    runner.start()
    committed_before_kill = 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and runner.is_alive():
        if store_path.exists():
            committed_before_kill = store_module.DemoStore.open(store_path, mode="r").n_episodes
            if committed_before_kill >= 1:
                break
        time.sleep(0.2)
    time.sleep(0.5)  # mid-episode: the next episode has started
    supervisor.procs["recorder"].kill()
    runner.join(timeout=300)
    assert not runner.is_alive()
    assert result["restarts"].get("recorder") == 1
    store = store_module.DemoStore.open(store_path, mode="r")
    assert committed_before_kill >= 1
    # Only the episode in progress at the kill is lost: the restarted recorder records the rest.
    assert store.n_episodes >= 4 - 1 and store.n_episodes > committed_before_kill
    for i in range(store.n_episodes):
        episode = store.episode(i)
        assert len(episode["action"]) == len(episode["state"]) > 0
        assert store.episode_meta(i)["source"] == "expert"


def test_collect_via_ros_records_expert_episodes(tmp_path):
    store_module = pytest.importorskip("robolearn.store")
    from robolearn.ros.graph_collect import collect_via_ros

    result = collect_via_ros("configs/cells/sim_panda.yaml", "reach", episodes=2, store_path=tmp_path / "d.zarr")
    assert result["exit_codes"] == {"twin": 0, "recorder": 0}
    store = store_module.DemoStore.open(tmp_path / "d.zarr", mode="r")
    assert result["n_episodes"] == store.n_episodes == 2
    episode = store.episode(0)
    assert episode["action"].shape[1] == 7 and episode["rgb_front"].shape[1:] == (128, 128, 3)


def test_twin_collect_launch_records_exactly_n_episodes(tmp_path):
    """The Done-when of the launch: ``robolearn launch launch/twin_collect.yaml`` with the episode
    count and store path, run to completion, leaves exactly that many expert episodes."""
    store_module = pytest.importorskip("robolearn.store")
    store_path = tmp_path / "launched.zarr"
    proc = subprocess.run(
        [sys.executable, "-m", "robolearn", "launch", "launch/twin_collect.yaml", "--set", "episodes=3",
         "--set", f"store={store_path}", "--set", f"router={free_endpoint()}", "--set", "task=reach", "--json"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "MUJOCO_GL": "egl"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["exit_codes"] == {"recorder": 0, "twin": 0}
    store = store_module.DemoStore.open(store_path, mode="r")
    assert store.n_episodes == 3
    for i in range(3):
        meta = store.episode_meta(i)
        assert meta["source"] == "expert" and meta["recorded_via"] == "ros" and meta["task"] == "reach"
        assert store.episode_meta(i)["steps_dropped"] == 0
