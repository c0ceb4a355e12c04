"""Real-is-Sim mirroring: replaying twin-generated joint trajectories tracks to near zero; a
perturbed replay raises a divergence event."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from robolearn.evaluate.mirror import MirrorConfig, ReplayedObjectsConfig, mirror_samples, samples_from_arrays

CELL = "configs/cells/sim_panda.yaml"


@pytest.fixture(scope="module")
def trajectory():
    """One scripted pick: stamps (T,), proprio state (T, 15), object_state (T, 10), from the twin."""
    from robolearn.env import make_env
    from robolearn.sim.experts import make_expert

    env = make_env(CELL, "pick_cube", cameras=False)
    expert = make_expert(env)
    obs, info = env.reset(seed=3)
    expert.reset()
    rows = [(info["stamp_ns"], obs["state"], obs["object_state"])]
    while True:
        obs, _, terminated, truncated, info = env.step(expert.read().action())
        rows.append((info["stamp_ns"], obs["state"], obs["object_state"]))
        if terminated or truncated:
            break
    stamps, states, objects = (np.array(column) for column in zip(*rows))
    assert np.ptp(states[:, :7], axis=0).max() > 0.5  # the arm really moved
    return env.unwrapped.cell, stamps, states, objects


def test_replaying_a_twin_trajectory_tracks_to_near_zero(trajectory):
    from robolearn.sim import Twin

    cell, stamps, states, objects = trajectory
    report = mirror_samples(Twin(cell), samples_from_arrays(stamps, states, objects),
                            MirrorConfig(objects=ReplayedObjectsConfig()))
    assert report["samples"] == len(stamps) and report["n_divergence_events"] == 0
    assert max(report["joint_rms_rad"]) < 0.005 and max(report["joint_p99_rad"]) < 0.01
    assert abs(report["lag_ms"]) <= 10


def test_a_perturbed_replay_raises_a_divergence_event(trajectory):
    from robolearn.sim import Twin

    cell, stamps, states, _ = trajectory
    perturbed = states.copy()
    perturbed[10:, 1] += 0.5  # the shoulder jumps by 0.5 rad in one 100 ms sample (limit: 2 rad/s)
    report = mirror_samples(Twin(cell), samples_from_arrays(stamps, perturbed))
    assert report["n_divergence_events"] >= 1
    event = report["divergence_events"][0]
    assert event["joint"] == 1 and event["start_s"] == pytest.approx(1.0) and event["max_error_rad"] > 0.05


def test_samples_must_move_forward_in_time(trajectory):
    from robolearn.sim import Twin

    cell, stamps, states, _ = trajectory
    backwards = stamps.copy()
    backwards[5] = backwards[4]
    with pytest.raises(ValueError, match="increasing stamps"):
        mirror_samples(Twin(cell), samples_from_arrays(backwards, states))


def test_mirror_cli_replays_a_store_episode(trajectory, tmp_path):
    demo_store = getattr(pytest.importorskip("robolearn.store"), "DemoStore", None)
    if demo_store is None:
        pytest.skip("robolearn.store does not export DemoStore yet")
    _, stamps, states, objects = trajectory
    store = demo_store.create(tmp_path / "demos.zarr")
    n = len(stamps)
    store.append_episode({"state": states, "object_state": objects, "stamp_ns": stamps.astype(np.int64),
                          "action": np.zeros((n, 7), np.float32), "reward": np.zeros(n, np.float32),
                          "success": np.zeros(n, bool), "terminated": np.zeros(n, bool),
                          "intervention": np.zeros(n, bool)},
                         {"task": "pick_cube", "source": "expert", "success": True})
    out = subprocess.run([sys.executable, "-m", "robolearn", "mirror", "--store", str(tmp_path / "demos.zarr"), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.splitlines()[-1])
    assert report["objects"] == "replayed" and report["n_divergence_events"] == 0 and max(report["joint_rms_rad"]) < 0.005
