"""EpisodeRecorder: streams at different rates aligned to the control clock by timestamp within a
tolerance; missing and late frames counted, never filled; discard and redo; the threaded recorder
writes the same episodes."""

from __future__ import annotations

import numpy as np
import pytest

from robolearn.store import DemoStore, EpisodeRecorder

MS = 1_000_000
CONTROL_PERIOD_NS = 100 * MS
CAMERA_PERIOD_NS = 100 * MS / 3
H, W = 8, 12


def camera_stamp(k: int) -> int:
    """Frame k of a 30 Hz camera, with a little deterministic jitter."""
    return int(round(k * CAMERA_PERIOD_NS)) + (k % 3 - 1) * MS


def depth_frame(k: int) -> np.ndarray:
    """Frame k carries its number: (k + 1) cm everywhere (the store keeps depth to the millimetre)."""
    return np.full((H, W), (k + 1) * 0.01, np.float32)


def record(recorder: EpisodeRecorder, seconds: float = 1.0, skip_frames: range = range(0),
           late: list[tuple[int, int]] = ()) -> None:
    """Feed 100 Hz state, 30 Hz camera and 10 Hz control in time order, as a live cell would.

    skip_frames: camera frames that never arrive. late: ``(frame, after control step)``: frames that
    arrive only after that control step was sent."""
    events = []
    for i in range(int(seconds * 100)):
        events.append((i * 10 * MS, 0, "state", i))
    for k in range(int(seconds * 30)):
        if k not in skip_frames and k not in dict(late):
            events.append((camera_stamp(k), 1, "camera", k))
    for n in range(int(seconds * 10)):
        events.append((n * CONTROL_PERIOD_NS + 5 * MS, 2, "step", n))
    events.sort()
    delayed = {step: frame for frame, step in late}
    for _, _, kind, i in events:
        if kind == "state":
            recorder.add("state", np.full(15, i, np.float32), i * 10 * MS)
        elif kind == "camera":
            recorder.add("depth_cam", depth_frame(i), camera_stamp(i))
        else:
            recorder.step(np.full(7, i, np.float32), i * CONTROL_PERIOD_NS, reward=float(i), intervention=i % 4 == 0)
            if i in delayed:
                k = delayed[i]
                recorder.add("depth_cam", depth_frame(k), camera_stamp(k))


def nearest_frame(stamp_ns: int) -> int:
    return min(range(40), key=lambda k: abs(camera_stamp(k) - stamp_ns))


def make_recorder(tmp_path, threaded: bool = False, name: str = "s.zarr") -> EpisodeRecorder:
    store = DemoStore.create(tmp_path / name)
    return EpisodeRecorder(store, ["state", "depth_cam"], control_hz=10.0, threaded=threaded)


def test_streams_are_aligned_to_the_control_clock(tmp_path):
    recorder = make_recorder(tmp_path)
    recorder.start(task="reach", source="teleop", operator="ana")
    record(recorder)
    assert recorder.commit(success=True) == 0
    episode = recorder.store.episode(0)
    steps = np.arange(10)
    np.testing.assert_array_equal(episode["stamp_ns"], steps * CONTROL_PERIOD_NS)
    np.testing.assert_array_equal(episode["state"][:, 0], steps * 10, err_msg="state sample at the step's stamp")
    frames = np.round(episode["depth_cam"][:, 0, 0] * 100).astype(int) - 1
    np.testing.assert_array_equal(frames, [nearest_frame(t) for t in steps * CONTROL_PERIOD_NS])
    np.testing.assert_array_equal(episode["action"][:, 0], steps)
    np.testing.assert_array_equal(episode["intervention"], steps % 4 == 0)
    info = recorder.store.episode_meta(0)
    assert (info["task"], info["source"], info["operator"], info["success"]) == ("reach", "teleop", "ana", True)
    assert info["steps_dropped"] == 0 and info["duration_s"] > 0
    assert info["frames"]["depth_cam"] == {"received": 30, "used": 10, "missing": 0, "late": 0, "dropped": 0}
    assert info["frames"]["state"]["received"] == 100


def test_missing_frames_drop_steps_and_are_never_filled(tmp_path):
    recorder = make_recorder(tmp_path)
    recorder.start(task="reach")
    record(recorder, skip_frames=range(11, 18))  # no camera frame between 0.34 s and 0.58 s
    recorder.commit()
    report = recorder.report()
    assert report["steps_recorded"] == 8 and report["steps_dropped"] == 2
    assert report["streams"]["depth_cam"]["missing"] == 2 and report["streams"]["state"]["missing"] == 0
    episode = recorder.store.episode(0)
    kept = np.array([0, 1, 2, 3, 6, 7, 8, 9])
    np.testing.assert_array_equal(episode["stamp_ns"], kept * CONTROL_PERIOD_NS)
    frames = np.round(episode["depth_cam"][:, 0, 0] * 100).astype(int) - 1
    assert all(abs(camera_stamp(k) - t) <= CONTROL_PERIOD_NS // 2 for k, t in zip(frames, episode["stamp_ns"]))
    assert recorder.store.episode_meta(0)["steps_dropped"] == 2
    assert report["gaps"] == [[4, 2]] and recorder.store.episode_meta(0)["gaps"] == [[4, 2]], \
        "2 steps were dropped before the 5th recorded one"
    assert recorder.store.episode_segments(0) == [(0, 4), (4, 8)]


def test_late_and_out_of_order_frames_are_counted(tmp_path):
    recorder = make_recorder(tmp_path, name="late.zarr")
    recorder.start(task="reach")
    record(recorder, late=[(12, 6)])  # frame 12 (0.40 s) arrives after the step at 0.60 s
    recorder.add("depth_cam", depth_frame(5), camera_stamp(5))  # older than what the stream already had
    recorder.commit()
    report = recorder.report()
    assert report["streams"]["depth_cam"]["late"] == 2
    assert report["steps_recorded"] == 10, "the step at 0.4 s used the frame nearest within tolerance"
    frames = np.round(recorder.store.episode(0)["depth_cam"][:, 0, 0] * 100).astype(int) - 1
    assert 12 not in frames.tolist() and frames[4] in (11, 13)

    strict = EpisodeRecorder(DemoStore.create(tmp_path / "strict.zarr"), ["state", "depth_cam"], control_hz=10.0,
                             tolerance_ns={"depth_cam": 5 * MS})
    strict.start(task="reach")
    record(strict, late=[(12, 6)])
    strict.commit()
    assert strict.report()["streams"]["depth_cam"]["missing"] == 1, "with a 5 ms tolerance the 0.4 s step has no frame"
    assert strict.report()["steps_recorded"] == 9


def test_discard_and_redo(tmp_path):
    recorder = make_recorder(tmp_path)
    recorder.start(task="reach")
    record(recorder, seconds=0.5)
    recorder.discard()
    store = recorder.store
    assert store.n_episodes == 0 and all(store.array(k).shape[0] == 0 for k in store.keys)
    recorder.start(task="reach")
    record(recorder, seconds=0.5)
    recorder.start(task="reach", operator="redo")  # an unfinished episode is discarded by the next start
    record(recorder, seconds=0.3)
    assert recorder.commit(success=False) == 0
    assert store.episode_lengths.tolist() == [3] and store.episode_meta(0)["operator"] == "redo"
    recorder.start(task="reach")
    assert recorder.commit() is None, "an episode with no recorded step is not committed"
    assert DemoStore.open(store.path).n_episodes == 1
    with pytest.raises(RuntimeError, match="call start"):
        recorder.step(np.zeros(7), 0)
    with pytest.raises(KeyError, match="unknown stream 'rgb_top'"):
        recorder.add("rgb_top", np.zeros((2, 2, 3), np.uint8), 0)


def test_threaded_recorder_writes_the_same_episodes(tmp_path):
    plain, threaded = make_recorder(tmp_path, name="plain.zarr"), make_recorder(tmp_path, threaded=True, name="threaded.zarr")
    for recorder in (plain, threaded):
        for _ in range(2):
            recorder.start(task="reach")
            record(recorder, skip_frames=range(11, 18))
            recorder.commit(success=True)
        recorder.close()
    assert threaded.store.episode_ends.tolist() == plain.store.episode_ends.tolist() == [8, 16]
    for key in plain.store.keys:
        np.testing.assert_array_equal(threaded.store.array(key)[:], plain.store.array(key)[:], err_msg=key)
    assert threaded.store.episode_meta(1)["frames"] == plain.store.episode_meta(1)["frames"]


def test_threaded_recorder_copies_frames_a_caller_reuses(tmp_path):
    recorder = make_recorder(tmp_path, threaded=True)
    recorder.start(task="reach")
    buffer = np.zeros((H, W), np.float32)
    for n in range(5):
        buffer[:] = (n + 1) * 0.01
        recorder.add("depth_cam", buffer, n * CONTROL_PERIOD_NS)
        recorder.add("state", np.zeros(15, np.float32), n * CONTROL_PERIOD_NS)
        recorder.step(np.zeros(7), n * CONTROL_PERIOD_NS)
    recorder.commit()
    recorder.close()
    np.testing.assert_allclose(recorder.store.episode(0)["depth_cam"][:, 0, 0], np.arange(1, 6) * 0.01, atol=1e-6)


def test_check_store_refuses_other_data_before_recording(tmp_path):
    recorder = make_recorder(tmp_path)
    specs = {"state": ((15,), np.float32), "depth_cam": ((H, W), np.float32)}
    recorder.check_store(specs, (7,))
    recorder.start(task="reach")
    record(recorder, seconds=0.3)
    recorder.commit()
    recorder.check_store(specs, (7,))
    with pytest.raises(ValueError, match="robolearn data resize"):
        recorder.check_store({**specs, "depth_cam": ((2 * H, W), np.float32)}, (7,))
    with pytest.raises(ValueError, match=r"action: frames of shape \(6,\)"):
        recorder.check_store(specs, (6,))
    with pytest.raises(ValueError, match=r"missing \['depth_cam'\]"):
        EpisodeRecorder(recorder.store, ["state"], control_hz=10.0).check_store({"state": ((15,), np.float32)}, (7,))
