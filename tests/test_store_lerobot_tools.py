"""A LeRobot export is what LeRobot 0.6's own writer produces, so LeRobot's tools work on it.

Without LeRobot, the files are checked field by field against what its writer does (each check
cites the lerobot 0.6.1 source it follows). With LeRobot (``-m lerobot``; LeRobot 0.6 needs
Python ≥ 3.12, so it runs in its own interpreter, named by ``ROBOLEARN_LEROBOT_PYTHON``; see the
README), LeRobot's writer writes the same episodes for a file-by-file comparison, and its own
append (``LeRobotDataset.resume`` + ``save_episode``), merge (``lerobot-edit-dataset``) and delete
(``delete_episodes``) run on an export and every result is decoded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_store_convert import CELL, H, W, make_store

from robolearn.store import DemoStore
from robolearn.store.convert_lerobot import export_lerobot, import_lerobot

STATS = ["min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"]
BOOKKEEPING = ["timestamp", "frame_index", "episode_index", "index", "task_index"]
PANDA_JOINTS = [f"joint{i}" for i in range(1, 8)]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("src") / "s.zarr")


@pytest.fixture(scope="module")
def export(store, tmp_path_factory):
    root = tmp_path_factory.mktemp("lerobot") / "export"
    export_lerobot(store, root)
    return root


def read_json(path: Path):
    return json.loads(path.read_text())


def test_info_json_is_what_lerobots_writer_writes(export):
    info = read_json(export / "meta" / "info.json")
    # lerobot/datasets/utils.py DatasetInfo: these fields in this order, fps an int (PyAV takes
    # Fraction(fps) when encoding appended episodes), sizes ints; from_dict drops (and warns about)
    # any other top-level key, so robolearn's attributes cannot live there.
    assert list(info) == ["codebase_version", "fps", "features", "total_episodes", "total_frames", "total_tasks",
                          "chunks_size", "data_files_size_in_mb", "video_files_size_in_mb", "data_path", "video_path",
                          "robot_type", "splits"]
    assert info["fps"] == 10 and isinstance(info["fps"], int)
    assert (info["data_files_size_in_mb"], info["video_files_size_in_mb"], info["chunks_size"]) == (100, 200, 1000)
    assert info["robot_type"] == "panda" and info["splits"] == {"train": "0:2"}
    features = info["features"]
    # lerobot/datasets/dataset_metadata.py create(): DEFAULT_FEATURES are appended last.
    assert list(features)[-5:] == BOOKKEEPING
    assert features["timestamp"] == {"dtype": "float32", "shape": [1], "names": None}
    state = features["observation.state"]
    assert state["names"] == [*PANDA_JOINTS, "ee_x_m", "ee_y_m", "ee_z_m", "ee_qw", "ee_qx", "ee_qy", "ee_qz",
                              "gripper_width_m"]
    assert features["action"]["names"] == ["ee_dx", "ee_dy", "ee_dz", "ee_drx", "ee_dry", "ee_drz", "gripper"]
    assert features["observation.environment_state"]["names"][:3] == ["object_x_m", "object_y_m", "object_z_m"]
    assert features["contact_count"]["names"] == ["contact_count_0", "contact_count_1"]
    assert features["next.reward"] == {"dtype": "float32", "shape": [1], "names": None}
    rgb = features["observation.images.front"]
    assert rgb["shape"] == [H, W, 3] and rgb["names"] == ["height", "width", "channels"]
    # lerobot/datasets/video_utils.py get_video_info + configs/video.py RGBEncoderConfig defaults.
    assert rgb["info"] == {"video.height": H, "video.width": W, "video.codec": "av1", "video.pix_fmt": "yuv420p",
                           "video.fps": 10, "video.channels": 3, "has_audio": False, "video.g": 2, "video.crf": 30,
                           "video.preset": 12, "video.fast_decode": 0, "video.video_backend": "pyav",
                           "video.extra_options": {}, "is_depth_map": False}
    depth = features["observation.depth.front"]
    assert depth["shape"] == [H, W, 1] and depth["dtype"] == "video"
    # DepthEncoderConfig defaults; depth_unit "m" is what add_frame infers from float32 frames.
    assert depth["info"] == {"is_depth_map": True, "depth_unit": "m", "video.height": H, "video.width": W,
                             "video.codec": "hevc", "video.pix_fmt": "gray12le", "video.fps": 10, "video.channels": 1,
                             "has_audio": False, "video.g": 2, "video.crf": 30, "video.preset": None,
                             "video.fast_decode": 0, "video.video_backend": "pyav",
                             "video.extra_options": {"x265-params": "lossless=1"}, "video.depth_min": 0.01,
                             "video.depth_max": 10.0, "video.shift": 3.5, "video.use_log": True}
    carriers = [name for name, spec in features.items() if "robolearn" in (spec.get("info") or {})]
    assert carriers == [next(iter(features))], "one feature carries the store's attributes"


def test_stats_are_complete_and_lerobots_numbers(store, export):
    stats = read_json(export / "meta" / "stats.json")
    features = read_json(export / "meta" / "info.json")["features"]
    # compute_stats.py get_feature_stats: these ten for every feature, bookkeeping ones too.
    assert set(stats) == set(features)
    for name, feature_stats in stats.items():
        assert sorted(feature_stats) == sorted(STATS), name
    n = store.n_steps
    state = store.array("state")[:]
    s = stats["observation.state"]
    assert s["count"] == [n]
    np.testing.assert_array_equal(s["min"], state.min(0))
    np.testing.assert_array_equal(s["max"], state.max(0))
    np.testing.assert_allclose(s["mean"], state.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s["std"], state.std(0), rtol=1e-4, atol=1e-6)
    # Quantiles: per episode, interpolated in a histogram of 5000 bins over the episode's range
    # (RunningQuantileStats), then count-weighted across episodes: within a bin of np.quantile's.
    starts, ends = store.episode_starts, store.episode_ends
    lengths = ends - starts
    bin_width = max(np.ptp(state[a:b], axis=0).max() for a, b in zip(starts, ends)) / 5000
    for q, key in ((0.1, "q10"), (0.5, "q50"), (0.9, "q90")):
        expected = sum(np.quantile(state[a:b], q, axis=0, method="inverted_cdf") * (b - a)
                       for a, b in zip(starts, ends)) / n
        np.testing.assert_allclose(s[key], expected, rtol=0, atol=bin_width * 1.01 + 1e-7, err_msg=key)
    assert stats["timestamp"]["max"] == [(lengths.max() - 1) / 10]
    assert stats["index"]["min"] == [0] and stats["index"]["max"] == [n - 1]
    assert stats["episode_index"]["mean"] == [float((lengths * np.arange(2)).sum() / n)]
    assert stats["next.success"]["max"] == [1.0] and stats["next.success"]["count"] == [n]
    rgb = stats["observation.images.front"]
    # compute_episode_stats: frames sampled per episode (all of them below 100), channel stats / 255.
    assert rgb["count"] == [n] and np.array(rgb["mean"]).shape == (3, 1, 1)
    frames = store.array("rgb_front")[:].astype(np.float64) / 255.0
    np.testing.assert_allclose(np.array(rgb["mean"]).reshape(3), frames.reshape(-1, 3).mean(0), rtol=1e-5)
    np.testing.assert_allclose(np.array(rgb["max"]).reshape(3), frames.reshape(-1, 3).max(0), rtol=1e-6)
    depth = stats["observation.depth.front"]
    assert np.array(depth["mean"]).shape == (1, 1, 1), "depth stats stay in metres (is_depth_map: no /255)"
    np.testing.assert_allclose(depth["mean"][0][0][0], store.array("depth_front")[:].mean(), rtol=1e-5)


def test_episodes_table_has_lerobots_columns_and_stats(store, export):
    table = pq.read_table(export / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    features = list(read_json(export / "meta" / "info.json")["features"])
    videos = [f for f in features if f.startswith(("observation.images.", "observation.depth."))]
    # dataset_metadata.py save_episode / _save_episode_metadata: this column order.
    expected = ["episode_index", "tasks", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
                "dataset_to_index"]
    expected += [f"videos/{v}/{c}" for v in videos for c in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")]
    expected += [f"stats/{f}/{s}" for f in features for s in STATS]
    expected += ["meta/episodes/chunk_index", "meta/episodes/file_index", "robolearn_meta"]
    assert table.column_names == expected
    assert str(table.schema.field("stats/observation.state/mean").type) == "list<element: double>"
    assert str(table.schema.field("stats/index/count").type) == "list<element: int64>"
    assert str(table.schema.field("stats/observation.images.front/mean").type) == \
        "list<element: list<element: list<element: double>>>"
    rows = table.to_pylist()
    first = store.array("state")[:6]
    np.testing.assert_array_equal(rows[0]["stats/observation.state/min"], first.min(0))
    assert rows[1]["stats/index/min"] == [6.0] and rows[1]["stats/frame_index/max"] == [3.0]
    assert [r["tasks"] for r in rows] == [["pick the cube"], ["push the cube"]]
    assert json.loads(rows[1]["robolearn_meta"])["source"] == "online"


def test_data_files_are_typed_as_datasets_writes_them(export):
    path = export / "data" / "chunk-000" / "file-000.parquet"
    file = pq.ParquetFile(path)
    # dataset_writer.py _save_episode_data: one write_table (row group) per episode, snappy.
    assert file.metadata.num_row_groups == 2
    assert file.metadata.row_group(0).column(0).compression == "SNAPPY"
    schema = file.schema_arrow
    assert str(schema.field("observation.state").type) == "fixed_size_list<element: float>[15]"
    assert str(schema.field("timestamp").type) == "float" and str(schema.field("next.success").type) == "bool"
    hf = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
    assert hf["observation.state"] == {"feature": {"dtype": "float32", "_type": "Value"}, "length": 15, "_type": "List"}
    assert hf["index"] == {"dtype": "int64", "_type": "Value"}
    assert "observation.images.front" not in schema.names and "observation.depth.front" not in schema.names


def test_round_trip_keeps_depth_within_its_12_bit_codes(store, export, tmp_path):
    copy = import_lerobot(export, tmp_path / "back.zarr")
    depth, original = copy.array("depth_front")[:], store.array("depth_front")[:]
    # log codes between 0.01 and 10 m (depth_utils.py quantize_depth): a step of d(ln(z + 3.5)) =
    # ln(13.5 / 3.51) / 4095, 1.5 mm at 1 m, 2 mm at 2.5 m; the store keeps millimetres.
    step_m = (original + 3.5) * np.log(13.5 / 3.51) / 4095
    assert np.all(np.abs(depth - original) <= step_m / 2 + 0.0006)
    assert copy.attrs["cell_config"] == CELL and copy.episode_metas() == store.episode_metas()


def test_depth_can_be_left_out_and_fps_must_be_whole(store, tmp_path):
    result = export_lerobot(store, tmp_path / "no_depth", depth=False)
    assert result["depth"] == "left out"
    features = read_json(tmp_path / "no_depth" / "meta" / "info.json")["features"]
    assert "observation.depth.front" not in features and not list((tmp_path / "no_depth" / "videos").glob("*depth*"))
    odd = DemoStore.create(tmp_path / "odd.zarr", cell_config={**CELL, "control_hz": 7.5})
    odd.append_episode({"action": np.zeros((3, 7), np.float32)}, {"task": "t", "source": "teleop", "success": True})
    with pytest.raises(ValueError, match="whole number of frames per second"):
        export_lerobot(odd, tmp_path / "odd")


def lerobot_python() -> str | None:
    """An interpreter with LeRobot: ``ROBOLEARN_LEROBOT_PYTHON``, or this one when it imports lerobot."""
    named = os.environ.get("ROBOLEARN_LEROBOT_PYTHON")
    if named:
        return named
    try:
        import lerobot  # noqa: F401
    except ImportError:
        return None
    return sys.executable


def run_lerobot(*args: str) -> dict:
    python = lerobot_python()
    if python is None:
        pytest.skip("LeRobot is not installed here: set ROBOLEARN_LEROBOT_PYTHON to a Python ≥ 3.12 with "
                    "`pip install 'lerobot[dataset]==0.6.1'` (see the README)")
    result = subprocess.run([python, str(Path(__file__).with_name("lerobot_side.py")), *args], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-6000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.lerobot
def test_lerobots_append_merge_and_delete_work_on_an_export(store, export, tmp_path):
    report = run_lerobot("tools", str(export), str(tmp_path))
    video = {"observation.depth.front": [1, H, W], "observation.images.front": [3, H, W],
             "observation.images.wrist": [3, H, W]}
    assert report["opened"] == {"episodes": 2, "frames": 10, "decoded": 10, "video_shapes": video,
                                "depth_keys": ["observation.depth.front"]}
    np.testing.assert_array_equal(np.array(report["state"], np.float32), store.array("state")[:])
    assert report["appended"]["episodes"] == 3 and report["appended"]["decoded"] == 15
    assert report["merged"]["episodes"] == 5 and report["merged"]["decoded"] == 25
    assert report["deleted"]["episodes"] == 1 and report["deleted"]["decoded"] == 4
    assert report["deleted"]["video_shapes"] == video

    paths = report["paths"]
    appended = import_lerobot(paths["appended"], tmp_path / "appended.zarr")
    assert appended.episode_metas()[:2] == store.episode_metas(), "append keeps robolearn's episode metadata"
    assert appended.episode_metas()[2] == {**appended.episode_metas()[2], "task": "appended by lerobot",
                                           "source": "teleop", "success": False}
    merged = import_lerobot(paths["merged"], tmp_path / "merged.zarr")
    assert merged.n_episodes == 5 and merged.episode_metas()[:2] == store.episode_metas()
    assert merged.attrs["cell_config"] == CELL
    deleted = import_lerobot(paths["deleted"], tmp_path / "deleted.zarr")
    assert deleted.attrs["cell_config"] == CELL, "the store's attributes survive delete (they live in a feature)"
    assert deleted.episode_metas()[0]["task"] == "push the cube"
    np.testing.assert_array_equal(deleted.array("action")[:], store.array("action")[6:])


@pytest.mark.lerobot
def test_lerobots_own_writer_writes_the_same_files(store, export, tmp_path):
    """The same episodes through ``LeRobotDataset.create`` + ``add_frame`` + ``save_episode``."""
    features = read_json(export / "meta" / "info.json")["features"]
    arrays = {"n_episodes": np.array(store.n_episodes)}
    names = {"observation.state": "state", "observation.environment_state": "object_state", "next.reward": "reward",
             "next.done": "terminated", "next.success": "success", "observation.images.front": "rgb_front",
             "observation.images.wrist": "rgb_wrist", "observation.depth.front": "depth_front"}
    for episode in range(store.n_episodes):
        data = store.episode(episode)
        arrays[f"{episode}/task"] = np.array(store.episode_meta(episode)["task"])
        for name in features:
            if name not in BOOKKEEPING:
                arrays[f"{episode}/{name}"] = data[names.get(name, name)]
    np.savez(tmp_path / "episodes.npz", **arrays)
    (tmp_path / "features.json").write_text(json.dumps(features))
    reference = tmp_path / "reference"
    run_lerobot("write", str(tmp_path / "episodes.npz"), str(tmp_path / "features.json"), str(reference), "10", "panda")

    ours, theirs = read_json(export / "meta" / "info.json"), read_json(reference / "meta" / "info.json")
    for spec in ours["features"].values():
        (spec.get("info") or {}).pop("robolearn", None)
        if spec.get("info") == {}:
            del spec["info"]
    assert ours == theirs
    ours_stats, their_stats = read_json(export / "meta" / "stats.json"), read_json(reference / "meta" / "stats.json")
    assert set(ours_stats) == set(their_stats)
    for name in their_stats:
        for stat in STATS:
            np.testing.assert_allclose(ours_stats[name][stat], their_stats[name][stat], rtol=1e-6, atol=1e-9,
                                       err_msg=f"{name}/{stat}")
    path = "meta/episodes/chunk-000/file-000.parquet"
    ours_rows, their_rows = pq.read_table(export / path), pq.read_table(reference / path)
    assert ours_rows.column_names[:-1] == their_rows.column_names and ours_rows.column_names[-1] == "robolearn_meta"
    assert ours_rows.drop(["robolearn_meta"]).schema == their_rows.schema
    for column in their_rows.column_names:
        a, b = ours_rows[column].to_pylist(), their_rows[column].to_pylist()
        if column.startswith("stats/"):
            np.testing.assert_allclose(np.array(a, dtype=np.float64), np.array(b, dtype=np.float64), rtol=1e-6,
                                       atol=1e-9, err_msg=column)
        else:
            assert a == b, column
    data = "data/chunk-000/file-000.parquet"
    ours_data, their_data = pq.read_table(export / data), pq.read_table(reference / data)
    assert ours_data.schema.remove_metadata() == their_data.schema.remove_metadata()
    assert ours_data.equals(their_data.replace_schema_metadata(ours_data.schema.metadata))


def test_episodes_without_success_marks_import_usable_and_bc_says_how(tmp_path, capsys):
    """A LeRobot dataset without ``next.success`` (most real-robot ones): the import says so and
    marks the episodes ``success_marked: false``; ``train --algo bc`` (successful_only by default)
    names ``--set successful_only=false``, and trains with it."""
    from robolearn.cli import main

    store = DemoStore.create(tmp_path / "s.zarr", cell_config=CELL)
    rng = np.random.default_rng(1)
    for n in (6, 5):
        store.append_episode({"state": rng.normal(size=(n, 15)).astype(np.float32),
                              "action": rng.uniform(-1, 1, (n, 7)).astype(np.float32)},
                             {"task": "reach", "source": "teleop", "success": True})
    root = tmp_path / "lerobot"
    export_lerobot(store, root)
    info = read_json(root / "meta" / "info.json")
    for spec in info["features"].values():
        (spec.get("info") or {}).pop("robolearn", None)
    (root / "meta" / "info.json").write_text(json.dumps(info))
    episodes = root / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    pq.write_table(pq.read_table(episodes).drop(["robolearn_meta"]), episodes)

    assert main(["data", "import", str(root), "--format", "lerobot", "--out", str(tmp_path / "back.zarr"), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1])["episodes_without_success_mark"] == [0, 1]
    assert "2 of 2 episodes have no success mark" in captured.err and "--set successful_only=false" in captured.err
    back = DemoStore.open(tmp_path / "back.zarr")
    assert [(m["success"], m["success_marked"]) for m in back.episode_metas()] == [(False, False)] * 2
    train = ["train", "--algo", "bc", "--store", str(back.path), "--task", "reach", "--steps", "2", "--eval-every", "0",
             "--set", "batch_size=8", "--set", "hidden=[8]", "--out", str(tmp_path / "bc")]
    assert main(train) == 2
    err = capsys.readouterr().err
    assert "2 of its episodes have no success mark" in err and "--set successful_only=false" in err
    assert main([*train, "--set", "successful_only=false", "--json"]) == 0
    # every step but the last of each episode (no next.done: its next observation is unknown)
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["transitions"] == (6 - 1) + (5 - 1)
