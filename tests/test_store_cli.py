"""``robolearn collect`` on the twin and ``robolearn data info|episodes|delete|view|resize|stats|
export|import``, with their JSON last lines and their errors."""

from __future__ import annotations

import contextlib
import io
import json

import av
import imagecodecs
import imagecodecs.numcodecs
import numpy as np
import pytest
import zarr

from robolearn.cli import main
from robolearn.store import DemoStore
from robolearn.store.store import copy_episodes

SMALL = ["--set", "cameras.0.width_px=32", "--set", "cameras.0.height_px=24",
         "--set", "cameras.1.width_px=32", "--set", "cameras.1.height_px=24"]


def run(args: list[str], capsys) -> tuple[int, dict | None, str]:
    """Exit code, the JSON last line (None when there is none) and stderr."""
    code = main(args)
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        result = None
    return code, result, captured.err


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    """Two reach episodes by the scripted expert on the twin, cameras at 32×24."""
    path = tmp_path_factory.mktemp("collect") / "demos.zarr"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["collect", "--task", "reach", "--episodes", "2", "--store", str(path), "--operator", "ana",
                     "--json", *SMALL])
    return path, code, json.loads(out.getvalue().strip().splitlines()[-1])


def test_collect_writes_a_store_plain_zarr_reads(collected):
    path, code, result = collected
    assert code == 0
    assert result["episodes_committed"] == 2 and result["n_episodes"] == 2 and result["missing_frames"] == 0
    assert result["success_rate"] == 1.0
    imagecodecs.numcodecs.register_codecs()
    root = zarr.open_group(str(path), mode="r")
    assert root.metadata.zarr_format == 2
    keys = set(root["data"].array_keys())
    assert {"rgb_front", "rgb_wrist", "depth_front", "state", "object_state", "action", "reward", "success",
            "terminated", "intervention", "stamp_ns"} == keys
    ends = root["meta/episode_ends"][:]
    assert ends.dtype == np.int64 and len(ends) == 2 and (np.diff(ends) > 0).all() and ends[0] > 0
    assert all(root[f"data/{k}"].shape[0] == ends[-1] for k in keys)
    assert root["data/rgb_front"].shape[1:] == (24, 32, 3) and root["data/rgb_front"].chunks == (1, 24, 32, 3)
    assert root["data/rgb_front"][int(ends[-1]) - 1].std() > 1.0, "the twin rendered a scene"
    depth = root["data/depth_front"][:]
    assert depth.shape[1:] == (24, 32) and 0.1 < np.median(depth) < 5.0
    infos = [json.loads(s) for s in root["meta/episode_info"][:]]
    for i, info in enumerate(infos):
        assert (info["task"], info["source"], info["operator"], info["success"]) == ("reach", "expert", "ana", True)
        assert info["length"] == ends[i] - (ends[i - 1] if i else 0) and info["seed"] == i
        assert info["frames"]["rgb_front"]["missing"] == 0
    attrs = root.attrs["robolearn"]
    assert attrs["cell_config"]["name"] == "sim_panda" and attrs["cell_config"]["cameras"][0]["width_px"] == 32
    assert attrs["cameras"]["front"]["intrinsics"]["width_px"] == 32
    assert "stats" in root["meta"].attrs and root["meta"].attrs["stats"]["n_steps"] == ends[-1]


def test_data_info_and_episodes(collected, capsys):
    path, _, _ = collected
    code, info, _ = run(["data", "info", str(path), "--json"], capsys)
    store = DemoStore.open(path)
    assert code == 0
    assert (info["n_episodes"], info["n_steps"], info["schema_version"]) == (2, store.n_steps, 1)
    assert info["keys"]["rgb_front"] == {"shape": [24, 32, 3], "dtype": "uint8", "compressor": "imagecodecs_jpeg"}
    assert info["keys"]["depth_front"]["compressor"] == "blosc" and info["keys"]["state"]["shape"] == [15]
    assert info["tasks"] == {"reach": 2} and info["sources"] == {"expert": 2} and info["success_rate"] == 1.0
    assert info["cameras"] == ["front", "wrist"] and info["size_mb"] > 0
    code, _, _ = run(["data", "info", str(path)], capsys)
    assert code == 0

    code, listing, _ = run(["data", "episodes", str(path), "--json"], capsys)
    assert code == 0 and [r["length"] for r in listing["episodes"]] == store.episode_lengths.tolist()
    assert listing["episodes"][1]["operator"] == "ana" and listing["episodes"][1]["success"] is True


def test_data_view_writes_png_and_mp4(collected, capsys, tmp_path):
    path, _, _ = collected
    store = DemoStore.open(path)
    code, result, _ = run(["data", "view", str(path), "--episode", "-1", "--out", str(tmp_path / "e.png"), "--json"], capsys)
    assert code == 0 and result["episode"] == 1 and result["size_px"] == [96, 24]
    grid = imagecodecs.png_decode((tmp_path / "e.png").read_bytes())
    assert grid.shape[1] == 4 * 96 and grid.shape[0] % 24 == 0 and grid.std() > 1.0
    code, result, _ = run(["data", "view", str(path), "--out", str(tmp_path / "e.mp4"), "--json"], capsys)
    assert code == 0 and result["frames"] == store.episode_lengths[0]
    with av.open(str(tmp_path / "e.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == store.episode_lengths[0]


def test_data_resize_and_stats(collected, capsys, tmp_path):
    path, _, _ = collected
    out = tmp_path / "small.zarr"
    code, result, _ = run(["data", "resize", str(path), "--size", "12x16", "--quality", "80", "--out", str(out),
                           "--json"], capsys)
    assert code == 0 and result["size_px"] == [12, 16]
    source, small = DemoStore.open(path), DemoStore.open(out)
    assert small.jpeg_quality == 80 and small.array("rgb_front").compressors[0].level == 80
    assert small.array("rgb_wrist").shape[1:] == (12, 16, 3) and small.array("depth_front").shape[1:] == (12, 16)
    np.testing.assert_array_equal(small.array("state")[:], source.array("state")[:])
    assert small.episode_metas() == source.episode_metas()
    scaled, original = small.cameras["front"]["intrinsics"], source.cameras["front"]["intrinsics"]
    assert scaled["fx_px"] == pytest.approx(original["fx_px"] / 2) and scaled["width_px"] == 16
    assert small.attrs["resized_from"] == str(path)

    code, result, _ = run(["data", "stats", str(out), "--json"], capsys)
    assert code == 0 and result["n_steps"] == small.n_steps
    np.testing.assert_allclose(result["stats"]["action"]["mean"], small.array("action")[:].mean(0), rtol=1e-5, atol=1e-7)
    assert zarr.open_group(str(out), mode="r")["meta"].attrs["stats"]["keys"]["state"] == result["stats"]["state"]


def test_data_delete_needs_yes(collected, capsys, tmp_path):
    path, _, _ = collected
    copy = tmp_path / "copy.zarr"
    copy_episodes(DemoStore.open(path), copy, [0, 1, 0])
    code, result, _ = run(["data", "delete", str(copy), "0:2", "--json"], capsys)
    assert code == 2 and result["would_delete"] == [0, 1] and DemoStore.open(copy).n_episodes == 3
    code, result, _ = run(["data", "delete", str(copy), "0", "-1", "--yes", "--json"], capsys)
    assert code == 0 and result["deleted"] == [0, 2] and result["n_episodes"] == 1
    np.testing.assert_array_equal(DemoStore.open(copy).episode(0)["action"], DemoStore.open(path).episode(1)["action"])


def test_data_export_and_import(collected, capsys, tmp_path):
    path, _, _ = collected
    source = DemoStore.open(path)
    for fmt in ("lerobot", "mcap"):
        code, result, _ = run(["data", "export", str(path), "--format", fmt, "--out", str(tmp_path / fmt), "--json"], capsys)
        assert code == 0 and result["episodes"] == 2
        back = tmp_path / f"{fmt}.zarr"
        code, result, _ = run(["data", "import", str(tmp_path / fmt), "--format", fmt, "--out", str(back), "--json"], capsys)
        assert code == 0 and result["n_episodes"] == 2 and result["keys"] == source.keys
        np.testing.assert_array_equal(DemoStore.open(back).array("state")[:], source.array("state")[:])


def test_collect_stamps_every_episode_on_one_clock(collected, capsys):
    """The twin's clock restarts at 0 every episode; the store's ``stamp_ns`` does not: one clock
    (ns since the Unix epoch) across episodes and across collect runs appending to the store."""
    import time

    path, _, _ = collected
    store = DemoStore.open(path)
    stamps = store.array("stamp_ns")[:]
    period_ns = 100_000_000
    assert np.all(np.diff(stamps) > 0), "monotonic across episodes"
    for i in range(store.n_episodes):
        span = store.episode_slice(i)
        assert np.all(np.diff(stamps[span]) == period_ns), "an episode keeps the control period"
    assert abs(int(stamps[0]) - time.time_ns()) < 3600 * 10**9, "wall-clock time, not the twin's 0"
    copy = path.parent / "appended.zarr"
    copy_episodes(store, copy, range(store.n_episodes))
    before = int(DemoStore.open(copy).array("stamp_ns")[-1])
    code, _, _ = run(["collect", "--task", "reach", "--episodes", "1", "--store", str(copy), "--json", *SMALL], capsys)
    assert code == 0
    assert int(DemoStore.open(copy).array("stamp_ns")[store.n_steps]) >= before + period_ns


def test_collect_refuses_a_store_with_other_keys(collected, capsys, tmp_path):
    path, _, _ = collected
    code, _, err = run(["collect", "--task", "reach", "--episodes", "1", "--store", str(path), "--no-cameras"], capsys)
    assert code == 2 and "episode keys differ" in err and "missing ['depth_front', 'rgb_front', 'rgb_wrist']" in err
    assert DemoStore.open(path).n_episodes == 2
    code, _, err = run(["collect", "--task", "reach", "--episodes", "1", "--store", str(path)], capsys)
    assert code == 2 and "robolearn data resize" in err, "128×128 frames do not fit a 32×24 store"
    (tmp_path / "not_a_store").mkdir()
    (tmp_path / "not_a_store" / "notes.txt").write_text("x")
    code, _, err = run(["collect", "--episodes", "1", "--store", str(tmp_path / "not_a_store")], capsys)
    assert code == 2 and "is not a robolearn store" in err


def test_collect_into_an_existing_empty_directory(capsys, tmp_path):
    empty = tmp_path / "demos.zarr"
    empty.mkdir()
    code, result, err = run(["collect", "--task", "reach", "--episodes", "1", "--store", str(empty), "--no-cameras",
                             "--json"], capsys)
    assert code == 0, err
    assert result["episodes_committed"] == 1 and DemoStore.open(empty).n_episodes == 1
    code, info, _ = run(["data", "info", str(empty), "--json"], capsys)
    assert code == 0 and info["cameras"] == [], "a state-only store lists no cameras"


@pytest.mark.parametrize("args, message", [
    (["data", "info", "{tmp}/missing.zarr"], "no store at"),
    (["data", "episodes", "{tmp}"], "is not a robolearn store"),
    (["data", "resize", "{store}", "--size", "96", "--out", "{tmp}/r.zarr"], "expected HxW"),
    (["data", "resize", "{store}", "--size", "8x8", "--out", "{store}"], "already exists"),
    (["data", "view", "{store}", "--out", "{tmp}/e.gif"], "write an .mp4 video, a .png grid or an .rrd Rerun recording"),
    (["data", "view", "{store}", "--episode", "5", "--out", "{tmp}/e.png"], "out of range"),
    (["data", "delete", "{store}", "7", "--yes"], "out of range"),
    (["data", "delete", "{store}", "x"], "expected an index"),
    (["data", "import", "{tmp}/nothing", "--format", "mcap", "--out", "{tmp}/i.zarr"], "no such file"),
    (["data", "import", "{tmp}", "--format", "mcap", "--out", "{tmp}/i.zarr"], "not a rosbag2 bag directory"),
    (["data", "import", "{tmp}", "--format", "lerobot", "--out", "{tmp}/i.zarr"], "not a LeRobotDataset"),
    (["data", "import", "{tmp}", "--format", "rosbag2", "--out", "{tmp}/i.zarr"], "needs a topic map"),
    (["data", "view", "{store}"], "or view in Rerun with --rerun"),
    (["data", "view", "{store}", "--rerun", "--out", "{tmp}/e.mp4"], "name it .rrd"),
    (["data", "view", "{store}", "--rerun", "--live"], "without a store path"),
])
def test_bad_input_gives_one_clear_line(collected, capsys, tmp_path, args, message):
    path, _, _ = collected
    code, _, err = run([a.format(tmp=tmp_path, store=path) for a in args], capsys)
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "i.zarr").exists(), "a failed import leaves no half-written store"
