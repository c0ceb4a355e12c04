"""DemoStore: the zarr layout as plain zarr sees it, metadata, the commit protocol and repair of a
partial tail, key checks, streaming writes, discard, delete, statistics and online episodes."""

from __future__ import annotations

import fcntl
import json
import os
import shutil

import imagecodecs
import imagecodecs.numcodecs
import numcodecs
import numpy as np
import pytest
import zarr

from robolearn.store import SCHEMA_VERSION, SOURCES, DemoStore
from robolearn.store.store import REWRITE_DONE, chunk_key, copy_episodes

H, W = 24, 32
CELL = {"name": "test_cell", "control_hz": 10.0,
        "cameras": [{"name": "front", "type": "sim", "width_px": W, "height_px": H, "fps": 30, "depth": True,
                     "fov_y_deg": 45.0}]}


def smooth_frames(n: int, seed: int = 0, height: int = H, width: int = W) -> np.ndarray:
    """``(n, H, W, 3) uint8`` camera-like frames (gradients that move with the step)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        frames[i] = np.clip(np.stack([x / width * 200 + 3 * i, y / height * 180 + 40,
                                      (x + y) / (width + height) * 120 + 60 + 10 * seed], -1), 0, 255)
    return frames


def make_episode(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "rgb_front": smooth_frames(n, seed),
        "depth_front": rng.uniform(0.2, 3.0, (n, H, W)).astype(np.float32),
        "state": rng.normal(size=(n, 15)).astype(np.float32),
        "action": rng.uniform(-1, 1, (n, 7)).astype(np.float32),
        "reward": rng.uniform(0, 1, n).astype(np.float32),
        "success": np.arange(n) == n - 1,
        "intervention": rng.uniform(size=n) < 0.5,
        "stamp_ns": (np.arange(n) * 100_000_000).astype(np.int64),
    }


def meta(index: int) -> dict:
    return {"task": "pick_cube", "success": bool(index % 2), "operator": f"op{index}", "source": SOURCES[index % 4],
            "duration_s": 1.5 + index, "note": {"take": index}}


@pytest.fixture
def two_episodes(tmp_path):
    store = DemoStore.create(tmp_path / "s.zarr", cell_config=CELL, jpeg_quality=90)
    episodes = [make_episode(5, 0), make_episode(7, 1)]
    for i, episode in enumerate(episodes):
        assert store.append_episode(episode, meta(i)) == i
    return store, episodes


def test_layout_opens_with_plain_zarr(two_episodes):
    store, episodes = two_episodes
    imagecodecs.numcodecs.register_codecs()
    root = zarr.open_group(str(store.path), mode="r")
    assert root.metadata.zarr_format == 2
    assert json.loads((store.path / "data" / "state" / ".zarray").read_text())["zarr_format"] == 2
    assert sorted(root["data"].array_keys()) == sorted(episodes[0])
    ends = root["meta/episode_ends"]
    assert ends.dtype == np.int64 and ends[:].tolist() == [5, 12]

    rgb = root["data/rgb_front"]
    assert rgb.shape == (12, H, W, 3) and rgb.dtype == np.uint8 and rgb.chunks == (1, H, W, 3)
    assert rgb.compressors[0].codec_id == "imagecodecs_jpeg" and rgb.compressors[0].level == 90
    chunk_files = sorted(p for p in os.listdir(store.path / "data" / "rgb_front") if not p.startswith("."))
    assert len(chunk_files) == 12
    sources = np.concatenate([e["rgb_front"] for e in episodes])
    for t in range(12):
        jpeg = (store.path / "data" / "rgb_front" / chunk_key(store.array("rgb_front"), t)).read_bytes()
        assert jpeg[:2] == b"\xff\xd8", "an RGB chunk is a JPEG file"
        np.testing.assert_array_equal(imagecodecs.jpeg8_decode(jpeg), rgb[t])
    error = np.abs(rgb[:].astype(np.int16) - sources)
    assert error.mean() < 2.0 and error.max() <= 12

    depth = root["data/depth_front"]
    assert depth.dtype == np.float32 and depth.chunks == (1, H, W)
    blosc = depth.compressors[0]
    assert (blosc.cname, blosc.shuffle) == ("zstd", numcodecs.Blosc.BITSHUFFLE)
    assert isinstance(depth.filters[0], numcodecs.FixedScaleOffset) and depth.filters[0].astype == np.dtype("<u2")
    np.testing.assert_allclose(depth[:], np.concatenate([e["depth_front"] for e in episodes]), atol=0.0005)

    for key in ("state", "action", "reward", "success", "intervention", "stamp_ns"):
        array = root[f"data/{key}"]
        assert array.compressors[0].cname == "lz4", key
        assert array.chunks[1:] == array.shape[1:] and array.chunks[0] >= 1024, f"{key}: chunked along time only"
        np.testing.assert_array_equal(array[:], np.concatenate([e[key] for e in episodes]))
    assert root["data/stamp_ns"].dtype == np.int64 and root["data/success"].dtype == np.bool_

    info = [json.loads(s) for s in root["meta/episode_info"][:]]
    assert [i["length"] for i in info] == [5, 7]
    attrs = root.attrs["robolearn"]
    assert attrs["schema_version"] == SCHEMA_VERSION and attrs["jpeg_quality"] == 90
    assert attrs["cell_config"] == CELL
    intrinsics = attrs["cameras"]["front"]["intrinsics"]
    assert intrinsics["fy_px"] == pytest.approx(H / 2 / np.tan(np.deg2rad(45.0) / 2))
    assert (intrinsics["cx_px"], intrinsics["cy_px"]) == ((W - 1) / 2, (H - 1) / 2)


def test_episode_metadata_and_reading(two_episodes):
    store, episodes = two_episodes
    assert store.n_episodes == 2 and store.n_steps == 12
    assert store.episode_lengths.tolist() == [5, 7] and store.episode_starts.tolist() == [0, 5]
    for i in range(2):
        info = store.episode_meta(i)
        expected = meta(i)
        for key in ("task", "success", "operator", "source", "duration_s", "note"):
            assert info[key] == expected[key], key
        assert info["length"] == len(episodes[i]["state"]) and "committed_utc" in info
        data = store.episode(i)
        np.testing.assert_array_equal(data["intervention"], episodes[i]["intervention"])
        np.testing.assert_array_equal(data["state"], episodes[i]["state"])
    assert store.episode(-1, ["action"])["action"].shape == (7, 7)
    with pytest.raises(IndexError, match="has 2 episodes"):
        store.episode(2)
    with pytest.raises(KeyError, match="no data key 'rgb_wrist'"):
        store.array("rgb_wrist")


def test_bad_episodes_are_refused_and_change_nothing(two_episodes):
    store, episodes = two_episodes
    before = {k: store.array(k).shape for k in store.keys}
    with pytest.raises(ValueError, match="source' must be one of teleop, expert, policy, online"):
        store.append_episode(make_episode(3, 2), {"task": "x", "source": "human"})
    bad = make_episode(3, 2)
    del bad["depth_front"]
    with pytest.raises(ValueError, match=r"missing \['depth_front'\]"):
        store.append_episode(bad, meta(0))
    bad = {**make_episode(3, 2), "rgb_front": smooth_frames(3, height=16, width=16)}
    with pytest.raises(ValueError, match="robolearn data resize"):
        store.append_episode(bad, meta(0))
    bad = {**make_episode(3, 2), "state": np.zeros((4, 15), np.float32)}
    with pytest.raises(ValueError, match="same number of steps"):
        store.append_episode(bad, meta(0))
    with pytest.raises(ValueError, match=r"RGB frames must be \(H, W, 3\) uint8"):
        DemoStore.create(store.path.with_name("other.zarr")).append_episode(
            {"rgb_front": np.zeros((2, 8, 8), np.uint8)}, meta(0))
    assert store.n_episodes == 2 and {k: store.array(k).shape for k in store.keys} == before
    assert DemoStore.open(store.path).n_episodes == 2


def test_open_and_create_errors(tmp_path, two_episodes):
    store, _ = two_episodes
    with pytest.raises(FileNotFoundError, match="no store at"):
        DemoStore.open(tmp_path / "missing.zarr")
    (tmp_path / "plain").mkdir()
    with pytest.raises(FileNotFoundError, match="is not a robolearn store"):
        DemoStore.open(tmp_path / "plain")
    with pytest.raises(FileExistsError, match="DemoStore.open"):
        DemoStore.create(store.path)
    with pytest.raises(ValueError, match="jpeg_quality"):
        DemoStore.create(tmp_path / "q.zarr", jpeg_quality=0)
    with pytest.raises(PermissionError, match="read-only"):
        DemoStore.open(store.path).append_episode(make_episode(2, 3), meta(0))
    root = zarr.open_group(str(store.path), mode="r+")
    root.attrs["robolearn"] = {**root.attrs["robolearn"], "schema_version": SCHEMA_VERSION + 1}
    with pytest.raises(ValueError, match="upgrade robolearn"):
        DemoStore.open(store.path)


def test_black_frames_still_get_one_chunk_each(tmp_path):
    store = DemoStore.create(tmp_path / "s.zarr")
    store.append_episode({"rgb_front": np.zeros((3, H, W, 3), np.uint8), "depth_front": np.zeros((3, H, W), np.float32),
                          "state": np.zeros((3, 4), np.float32)}, meta(0))
    for key in ("rgb_front", "depth_front"):
        array = store.array(key)
        assert all((store.path / "data" / key / chunk_key(array, t)).exists() for t in range(3)), key
    assert imagecodecs.jpeg8_decode(store.encoded_frame("rgb_front", 2)).max() == 0


def test_streaming_writer_commit_and_discard(tmp_path):
    store = DemoStore.create(tmp_path / "s.zarr")
    episode = make_episode(6, 0)
    writer = store.begin_episode()
    for t in range(6):
        writer.add({k: v[t] for k, v in episode.items()})
    rgb = store.array("rgb_front")
    assert (store.path / "data" / "rgb_front" / chunk_key(rgb, 5)).exists(), "frames reach disk while recording"
    assert DemoStore.open(store.path).n_episodes == 0, "nothing is visible before commit"
    assert writer.commit(meta(0)) == 0
    np.testing.assert_array_equal(DemoStore.open(store.path).episode(0)["state"], episode["state"])

    writer = store.begin_episode()
    for t in range(4):
        writer.add({k: v[t] for k, v in make_episode(4, 9).items()})
    writer.discard()
    assert store.n_episodes == 1
    assert all(store.array(k).shape[0] == 6 for k in store.keys), "a discarded episode leaves no tail"
    assert not (store.path / "data" / "rgb_front" / chunk_key(rgb, 6)).exists()
    with pytest.raises(RuntimeError, match="already committed or discarded"):
        writer.add({k: v[0] for k, v in episode.items()})

    redo = make_episode(3, 5)
    writer = store.begin_episode()
    for t in range(3):
        writer.add({k: v[t] for k, v in redo.items()})
    with pytest.raises(ValueError, match="differ from the episode's"):
        writer.add({"state": redo["state"][0]})
    assert writer.commit(meta(1)) == 1
    np.testing.assert_array_equal(store.episode(1)["action"], redo["action"])
    assert store.episode_ends.tolist() == [6, 9]


def test_writer_copies_rows_a_caller_reuses(tmp_path):
    store = DemoStore.create(tmp_path / "s.zarr")
    state = np.zeros(3, np.float32)
    writer = store.begin_episode()
    for t in range(4):
        state[:] = t
        writer.add({"state": state})
    writer.commit(meta(0))
    np.testing.assert_array_equal(store.episode(0)["state"][:, 0], [0, 1, 2, 3])


def test_reopen_repairs_a_partial_tail(two_episodes):
    store, episodes = two_episodes
    path = store.path
    writer = store.begin_episode()
    for t in range(4):
        writer.add({k: v[t] for k, v in make_episode(4, 7).items()})
    for key in ("state", "action", "reward", "success", "intervention", "stamp_ns"):
        store.write_block(key, 12, make_episode(4, 7)[key])
    info, ends = store.root["meta/episode_info"], store.root["meta/episode_ends"]
    info.resize((3,))
    info[2] = json.dumps(meta(2))
    ends.resize((3,))  # killed between growing episode_ends and writing its value: the commit point
    (path / "data" / "state" / "0.0.deadbeef.partial").write_bytes(b"half a chunk")
    same_process = DemoStore.open(path, mode="a")
    assert same_process.repaired is None and store.array("rgb_front").shape[0] > 12, \
        "the episode this process is streaming is left alone"
    same_process.close()
    store.close()  # the writer dies: its lock goes with it

    reader = DemoStore.open(path)
    assert reader.n_episodes == 2 and reader.n_steps == 12, "a reader sees committed episodes only"
    assert reader.array("rgb_front").shape[0] > 12, "a read-only open changes nothing"

    repaired = DemoStore.open(path, mode="a")
    assert repaired.n_episodes == 2 and repaired.repaired == {"steps": 64, "episode_ends": 1, "episode_info": 1,
                                                               "partial_files": 1}
    assert all(repaired.array(k).shape[0] == 12 for k in repaired.keys)
    assert zarr.open_group(str(path), mode="r")["meta/episode_ends"].shape == (2,)
    assert not list(path.rglob("*.partial"))
    for i, episode in enumerate(episodes):
        np.testing.assert_array_equal(repaired.episode(i)["state"], episode["state"])
    assert repaired.append_episode(make_episode(2, 8), meta(3)) == 2
    assert DemoStore.open(path).episode_ends.tolist() == [5, 12, 14]


def test_delete_episodes_keeps_the_rest_bit_exact(tmp_path):
    store = DemoStore.create(tmp_path / "s.zarr", cell_config=CELL)
    episodes = [make_episode(n, i) for i, n in enumerate((3, 4, 5))]
    for i, episode in enumerate(episodes):
        store.append_episode(episode, meta(i))
    kept_jpeg = [store.encoded_frame("rgb_front", t) for t in range(3, 7)]
    created = "2020-01-02T03:04:05+00:00"
    store.root.attrs["robolearn"] = {**store.attrs, "created_utc": created}
    copied: list[int] = []
    assert store.delete_episodes((i for i in (0, -1)), progress=copied.append) == 1
    assert copied == [1], "progress counts the kept episodes copied"
    assert store.episode_ends.tolist() == [4] and store.episode_meta(0)["operator"] == "op1"
    reopened = DemoStore.open(store.path)
    for key, values in episodes[1].items():
        if key != "rgb_front":
            np.testing.assert_allclose(reopened.episode(0)[key], values, atol=0.0005 if key.startswith("depth") else 0)
    assert [reopened.encoded_frame("rgb_front", t) for t in range(4)] == kept_jpeg, "JPEG chunks are not re-encoded"
    assert reopened.cell_config == CELL and reopened.attrs["created_utc"] == created
    assert not store.path.with_name("s.zarr.old").exists() and not store.path.with_name("s.zarr.rewrite").exists()
    with pytest.raises(IndexError, match="out of range"):
        store.delete_episodes([3])
    lock = os.open(store.path / "meta" / "episode_ends" / ".robolearn-writer.lock", os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):  # the rewritten store's lock is held, as the old one was
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        store.close()
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(lock)
    with pytest.raises(PermissionError, match="was closed"):
        store.append_episode(episodes[0], meta(0))


def test_an_interrupted_delete_loses_nothing(tmp_path):
    path = tmp_path / "s.zarr"
    store = DemoStore.create(path)
    for i in range(3):
        store.append_episode(make_episode(3 + i, i), meta(i))
    rewrite, old = tmp_path / "s.zarr.rewrite", tmp_path / "s.zarr.old"

    copy_episodes(store, rewrite, [2])  # killed while copying: the copy is unfinished
    assert DemoStore.open(path, mode="a").n_episodes == 3 and not rewrite.exists()

    copy_episodes(store, rewrite, [2])  # killed between moving the store aside and moving the copy in
    (rewrite / REWRITE_DONE).touch()
    os.replace(path, old)
    finished = DemoStore.open(path, mode="a")
    assert finished.n_episodes == 1 and finished.episode_meta(0)["operator"] == "op2"
    assert not old.exists() and not rewrite.exists() and not (path / REWRITE_DONE).exists()

    shutil.copytree(path, old)  # killed while removing the old store
    assert DemoStore.open(path, mode="a").n_episodes == 1 and not old.exists()


def test_stats_are_computed_once_and_stored(two_episodes):
    store, episodes = two_episodes
    stats = store.stats()
    state = np.concatenate([e["state"] for e in episodes]).astype(np.float64)
    np.testing.assert_allclose(stats["state"]["mean"], state.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats["state"]["std"], state.std(0), rtol=1e-6)
    np.testing.assert_allclose(stats["state"]["q99"], np.quantile(state, 0.99, axis=0), rtol=1e-6)
    assert "stamp_ns" not in stats and "rgb_front" not in stats and "depth_front" not in stats
    saved = zarr.open_group(str(store.path), mode="r")["meta"].attrs["stats"]
    assert saved["n_steps"] == 12 and saved["keys"]["action"]["max"] == stats["action"]["max"]
    assert DemoStore.open(store.path).stats(["state"]) == {"state": stats["state"]}
    store.append_episode(make_episode(3, 4), meta(0))
    assert store.stats()["state"]["mean"] != stats["state"]["mean"], "a grown store gets new statistics"
    assert zarr.open_group(str(store.path), mode="r")["meta"].attrs["stats"]["n_steps"] == 15
    with pytest.raises(KeyError, match="rgb_front"):
        store.stats(["rgb_front"])


def test_online_episodes_append_in_the_same_format(two_episodes):
    from robolearn.learn.finetune import episode_appender

    store, _ = two_episodes
    append = episode_appender(str(store.path), "pick_cube", store.keys)
    online = {**make_episode(4, 11), "not_stored": np.zeros(4)}
    append(online, {"success": True})
    reopened = DemoStore.open(store.path)
    assert reopened.n_episodes == 3 and reopened.keys == store.keys
    info = reopened.episode_meta(2)
    assert (info["source"], info["task"], info["success"], info["length"]) == ("online", "pick_cube", True, 4)
    np.testing.assert_array_equal(reopened.episode(2)["action"], online["action"])
    for key in reopened.keys:
        assert reopened.array(key).metadata.to_dict()["compressor"] == store.array(key).metadata.to_dict()["compressor"]
