"""Real-is-Sim mirroring: replaying twin-generated joint trajectories tracks to near zero; a
perturbed replay raises a divergence event."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from robolearn.deploy.mirror import MirrorConfig, ReplayedObjectsConfig, mirror_samples, samples_from_arrays

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


def test_duplicate_and_out_of_order_samples_are_skipped_and_counted(trajectory):
    from robolearn.sim import Twin

    cell, stamps, states, _ = trajectory
    samples = list(samples_from_arrays(stamps, states))
    stream = [*samples[:6], samples[5], samples[3], *samples[6:]]  # a duplicate, then a late one
    report = mirror_samples(Twin(cell), stream)
    clean = mirror_samples(Twin(cell), samples)
    assert report["skipped_samples"] == 2 and clean["skipped_samples"] == 0
    assert report["samples"] == clean["samples"] == len(stamps)
    assert report["joint_rms_rad"] == pytest.approx(clean["joint_rms_rad"])


def test_mirror_cli_replays_a_store_episode(trajectory, tmp_path):
    from robolearn.store import DemoStore

    _, stamps, states, objects = trajectory
    store = DemoStore.create(tmp_path / "demos.zarr")
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


def joint_state(stamp_ns: int, names: list[str], position) -> object:
    from robolearn.ros import messages

    position = np.asarray(position, np.float64)
    return messages.msg_class(messages.JOINT_STATE)(header=messages.header(int(stamp_ns)), name=names, position=position,
                                                    velocity=np.zeros(len(position)), effort=np.zeros(0))


def test_joint_states_are_read_by_the_cell_joint_names():
    from robolearn.cell import load_cell
    from robolearn.deploy.mirror import joint_sample
    from robolearn.ros.nodes.arm import default_joint_names

    names = default_joint_names(load_cell(CELL), 7)
    q = np.arange(7) * 0.1
    order = [3, 0, 6, 1, 5, 2, 4]
    shuffled = joint_state(5, ["finger_joint1", *(names[i] for i in order), "gripper"], [0.01, *q[order], 0.06])
    sample = joint_sample(shuffled, names)
    np.testing.assert_array_equal(sample.q_rad, q)
    assert sample.gripper_width_m == 0.06 and sample.stamp_ns == 5
    without_gripper = joint_sample(joint_state(6, names[::-1], q[::-1]), names)
    np.testing.assert_array_equal(without_gripper.q_rad, q)
    assert np.isnan(without_gripper.gripper_width_m)
    positional = joint_sample(joint_state(7, [], [*q, 0.04]), names)
    np.testing.assert_array_equal(positional.q_rad, q)
    assert positional.gripper_width_m == 0.04
    with pytest.raises(ValueError, match=r"lacks the cell's joints \['" + names[6]):
        joint_sample(joint_state(8, names[:6], q[:6]), names)
    with pytest.raises(ValueError, match="without names needs the 7 arm joints"):
        joint_sample(joint_state(9, [], q[:5]), names)


def test_mirror_live_follows_joint_states_over_zenoh(trajectory, capsys):
    """``robolearn mirror --live`` against JointState messages published on the arm node's topic by
    another node over the zenoh backend: joints by name in a driver's own order (plus a joint the
    twin does not model), one duplicate that is skipped, tracking near zero."""
    import threading
    import time

    from robolearn.cli import main
    from robolearn.ros import Node, ZenohSettings, messages
    from robolearn.ros.nodes import topics
    from robolearn.ros.nodes.arm import default_joint_names
    from robolearn.ros.zenoh_backend import free_endpoint, open_router

    cell, stamps, states, _ = trajectory
    names = default_joint_names(cell, 7)
    order = [6, 2, 0, 4, 1, 5, 3]
    endpoint = free_endpoint()
    router = open_router(endpoint)
    driver = Node("arm_driver", settings=ZenohSettings.from_cell(cell, router_endpoint=endpoint))
    publisher = driver.create_publisher(messages.JOINT_STATE, topics.JOINT_STATES, depth=100)
    published = []

    def publish():
        deadline = time.monotonic() + 10
        while not publisher.has_subscribers() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        for t in range(len(stamps)):
            msg = joint_state(stamps[t], [*(names[i] for i in order), "gripper", "finger_joint1"],
                              [*states[t, order], states[t, -1], 0.01])
            for _ in range(2 if t == 5 else 1):
                publisher.publish(msg)
                published.append(t)
            time.sleep(0.01)

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    try:
        assert main(["mirror", "--live", "--duration", "6", "--router", endpoint, "--json"]) == 0
    finally:
        thread.join(timeout=15)
        driver.close()
        router.close()
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(published) == len(stamps) + 1
    assert report["source"] == "live" and report["objects"] == "fixed"
    assert report["samples"] == len(stamps) and report["skipped_samples"] == 1
    assert report["n_divergence_events"] == 0 and max(report["joint_rms_rad"]) < 0.005


class StillCamera:
    """Stands in for a real camera at the ``Camera`` protocol boundary: one fixed image."""

    def __init__(self, color: np.ndarray, intrinsics):
        self.color, self.intrinsics, self.name = color, intrinsics, "still"

    def read(self):
        from robolearn.interfaces import Frame

        return Frame(self.color, None, 0)


def marker_view(center_m: np.ndarray, side_m: float, cam_pos_m: np.ndarray, cam_rot: np.ndarray, intrinsics,
                marker_id: int = 0) -> np.ndarray:
    """``(H, W, 3) uint8``: a white scene with ArUco marker ``marker_id`` (DICT_4X4_50) lying flat
    (face up) with its centre at ``center_m`` in the cell frame, as a pinhole camera with these
    intrinsics at pose ``(cam_pos_m, cam_rot)`` (optical frame x right, y down, z forward) sees it."""
    import cv2

    side_px = 240
    marker = cv2.aruco.generateImageMarker(cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50), marker_id, side_px)
    half = side_m / 2
    # Marker image top towards -x (away from a camera on the +x side), its right towards +y.
    corners_m = center_m + np.array([[-half, -half, 0], [-half, half, 0], [half, half, 0], [half, -half, 0]])
    pixels = intrinsics.project((corners_m - cam_pos_m) @ cam_rot)  # world → optical frame → pixels
    edge = side_px - 0.5
    homography = cv2.getPerspectiveTransform(np.float32([[-0.5, -0.5], [edge, -0.5], [edge, edge], [-0.5, edge]]),
                                             np.float32(pixels))
    gray = cv2.warpPerspective(marker, homography, (intrinsics.width_px, intrinsics.height_px),
                               flags=cv2.INTER_LINEAR, borderValue=255)
    return np.repeat(gray[..., None], 3, axis=-1)


def test_fiducial_source_recovers_a_marker_at_a_known_pose():
    """A marker rendered at a known pose into a synthetic image with known intrinsics, seen from
    the cell's front camera pose: the fiducial source puts the cube there in the twin."""
    from robolearn.cell import load_cell
    from robolearn.deploy.mirror import FiducialObjectsConfig, JointSample
    from robolearn.interfaces import CameraIntrinsics
    from robolearn.sim import Twin

    twin = Twin(load_cell(CELL))
    cam_pos_m, cam_rot = twin.cameras["front"].pose_world()
    intrinsics = CameraIntrinsics(1280, 720, 920.0, 920.0, 639.5, 359.5)  # a RealSense D435's color stream
    cube_m = np.array([0.56, 0.07, 0.02])
    config = FiducialObjectsConfig(camera="front", markers={0: "cube"}, marker_size_m=0.05, offset_m=0.02)
    image = marker_view(cube_m + [0, 0, config.offset_m], config.marker_size_m, cam_pos_m, cam_rot, intrinsics)
    camera = StillCamera(image, intrinsics)
    source = config.create(twin, {"front": camera})
    found = source.detect(image, cam_pos_m, cam_rot)
    np.testing.assert_allclose(found["cube"], cube_m, atol=0.005)  # corners to a fraction of a pixel, 0.8 m away
    other = marker_view(cube_m + [0, 0, config.offset_m], config.marker_size_m, cam_pos_m, cam_rot, intrinsics,
                        marker_id=7)
    assert source.detect(other, cam_pos_m, cam_rot) == {}  # a marker not in the config is ignored
    assert np.linalg.norm(twin.object_pose("cube")[0][:2] - cube_m[:2]) > 0.05
    q = twin.arm.state().q_rad
    report = mirror_samples(twin, [JointSample(0, q), JointSample(100_000_000, q)], MirrorConfig(objects=config),
                            {"front": camera})
    assert report["samples"] == 2
    np.testing.assert_allclose(twin.object_pose("cube")[0], found["cube"], atol=1e-3)


def test_mirror_objects_option_merges_with_the_config(tmp_path):
    from robolearn.cli.mirror_cmd import mirror_config
    from robolearn.config import ConfigError

    path = tmp_path / "mirror.yaml"
    path.write_text("bandwidth_hz: 10.0\nobjects: {type: fiducial, camera: wrist, markers: {3: cube}, marker_size_m: 0.04}\n")
    config = mirror_config(str(path), "fiducial", default="fixed")
    assert config.bandwidth_hz == 10.0 and config.objects.type == "fiducial"
    assert config.objects.camera == "wrist" and config.objects.markers == {3: "cube"} and config.objects.marker_size_m == 0.04
    assert mirror_config(str(path), None, default="replayed").objects.camera == "wrist"
    with pytest.raises(ConfigError, match="sets objects of type 'fiducial'"):
        mirror_config(str(path), "replayed", default="fixed")
    path.write_text("divergence_threshold_rad: 0.1\n")
    config = mirror_config(str(path), None, default="replayed")
    assert config.objects.type == "replayed" and config.divergence_threshold_rad == 0.1
    assert mirror_config(None, "fixed", default="replayed").objects.type == "fixed"
