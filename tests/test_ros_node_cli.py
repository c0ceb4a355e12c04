"""``robolearn node``: useful help, and a clear refusal (before any session opens) where the node
cannot run on the given cell."""

from __future__ import annotations

import re

import pytest

from robolearn.cli import main
from robolearn.ros.nodes import NODES


def test_node_help_lists_every_node_with_its_params(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["node", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in NODES:
        assert f"  {name}: " in out
    assert "episodes=0" in out and "checkpoint=DIR" in out and "docs/ros.md" in out


@pytest.mark.parametrize("args, message", [
    (["arm"], "the arm of cell 'sim_panda' is simulated; the twin node publishes its topics"),
    (["camera", "--param", "camera=wrist"], "camera 'wrist' of cell 'sim_panda' is simulated"),
    (["camera", "--param", "camera=top"], "the cell has no camera 'top'; it has ['front', 'wrist']"),
    (["teleop"], "the scripted expert needs the simulator's state, so the twin node hosts it"),
    (["policy"], "needs --param checkpoint=DIR"),
])
def test_nodes_refuse_what_the_cell_cannot_give(args, message, capsys):
    assert main(["node", *args, "--cell", "configs/cells/sim_panda.yaml", "--router", "tcp/127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("robolearn: error: ") and message in err


def test_bool_parameters_parse_words_and_reject_others():
    from robolearn.ros import Node
    from robolearn.ros.zenoh_backend import ZenohSettings, free_endpoint, open_router

    endpoint = free_endpoint()
    router = open_router(endpoint)
    try:
        with Node("params", parameters={"a": "false", "b": "True", "c": "maybe"},
                  settings=ZenohSettings(router_endpoint=endpoint)) as node:
            assert node.declare_parameter("a", True) is False and node.declare_parameter("b", False) is True
            with pytest.raises(ValueError, match="'c' of node 'params' must be true or false"):
                node.declare_parameter("c", False)
    finally:
        router.close()


def test_reward_node_needs_a_reward_spec(capsys):
    assert main(["node", "reward", "--cell", "configs/cells/sim_panda.yaml"]) == 2
    assert "reward node needs --param reward=SPEC" in capsys.readouterr().err


def test_a_node_stops_cleanly_when_its_terminal_hangs_up():
    """SIGHUP (the SSH session running ``robolearn node`` closed) stops the node like Ctrl-C: its
    devices disconnected, its summary printed, exit code 0."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from robolearn.ros import Node, messages
    from robolearn.ros.nodes import topics
    from robolearn.ros.zenoh_backend import ZenohSettings, free_endpoint, open_router

    endpoint = free_endpoint()
    router = open_router(endpoint)
    proc = subprocess.Popen([sys.executable, "-m", "robolearn", "node", "twin", "--param", "task=reach",
                             "--set", "cameras=[]", "--router", endpoint, "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "MUJOCO_GL": "egl"})
    try:
        with Node("observer", settings=ZenohSettings(router_endpoint=endpoint)) as observer:
            states: list = []
            observer.create_subscription(messages.JOINT_STATE, topics.JOINT_STATES, states.append)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not states:  # the twin is up and spinning
                assert proc.poll() is None, proc.stderr.read()
                observer.spin(timeout_s=0.5)
        proc.send_signal(signal.SIGHUP)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        router.close()
    assert proc.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["node"] == "twin"


def test_a_misspelt_param_is_refused_with_the_params_the_node_takes(capsys):
    from robolearn.ros.zenoh_backend import free_endpoint, open_router

    endpoint = free_endpoint()
    router = open_router(endpoint)
    try:
        assert main(["node", "twin", "--param", "tsak=reach", "--cell", "configs/cells/sim_panda.yaml",
                     "--router", endpoint]) == 2
        assert re.search(r"node twin has no parameter 'tsak'; it takes: .*\btask\b", capsys.readouterr().err)
    finally:
        router.close()
