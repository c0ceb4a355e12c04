"""``robolearn data view --rerun``: a stored episode, and the live graph, logged to Rerun, read
back with rerun-sdk's own reader (``rerun.chunk.RrdReader``)."""

from __future__ import annotations

import json
import threading

import numpy as np
import pyarrow as pa
import pytest
from test_store_convert import make_store

from robolearn.cli import main

rr = pytest.importorskip("rerun", reason="rerun-sdk is not installed (pip install 'robolearn[rerun]')")


def read_rrd(path) -> dict[str, dict[str, list]]:
    """``{entity path: {column: values}}`` of every chunk of a recording, rows in step order
    (timestamps as ns since the Unix epoch)."""
    from rerun.chunk import RrdReader

    out: dict[str, dict[str, list]] = {}
    for chunk in RrdReader(path).store().stream().to_chunks():
        batch = chunk.to_record_batch()
        columns = out.setdefault(str(chunk.entity_path), {})
        for name in batch.schema.names:
            column = batch.column(name)
            if pa.types.is_timestamp(column.type):
                column = column.cast(pa.int64())
            columns.setdefault(name, []).extend(column.to_pylist())
    for columns in out.values():
        if "step" in columns:
            order = np.argsort(columns["step"], kind="stable")
            for name in columns:
                columns[name] = [columns[name][i] for i in order]
    return out


def run(args, capsys):
    code = main([*args, "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out.strip().splitlines()[-1])


def test_a_stored_episode_on_one_timeline(tmp_path, capsys):
    store = make_store(tmp_path / "s.zarr")
    result = run(["data", "view", str(store.path), "--episode", "1", "--rerun", "--out", str(tmp_path / "ep.rrd")], capsys)
    assert result["steps"] == 4
    logged = read_rrd(tmp_path / "ep.rrd")
    span = store.episode_slice(1)
    rgb = logged["/cameras/front/rgb"]
    assert rgb["step"] == [0, 1, 2, 3]
    assert [bytes(b[0]) for b in rgb["EncodedImage:blob"]] == [store.encoded_frame("rgb_front", t) for t in
                                                               range(span.start, span.stop)], "the stored JPEG itself"
    stamps = store.array("stamp_ns")[span]
    assert rgb["time"] == stamps.tolist()
    depth = logged["/cameras/front/depth"]
    assert len(depth["step"]) == 4 and depth["DepthImage:meter"][0] == [1.0]
    pinhole = logged["/cameras/front"]
    assert pinhole["Pinhole:resolution"][0] == [[48.0, 32.0]]
    state = store.array("state")[span]
    np.testing.assert_allclose([v[0] for v in logged["/state/joint1"]["Scalars:scalars"]], state[:, 0], rtol=1e-6)
    np.testing.assert_allclose([v[0] for v in logged["/state/gripper_width_m"]["Scalars:scalars"]], state[:, -1], rtol=1e-6)
    np.testing.assert_allclose([v[0] for v in logged["/action/gripper"]["Scalars:scalars"]],
                               store.array("action")[span][:, 6], rtol=1e-6)
    assert [v[0] for v in logged["/success"]["Scalars:scalars"]] == [0.0, 0.0, 0.0, 1.0]
    assert "/reward" in logged and "/stamp_ns" not in logged


def test_the_live_graph(tmp_path, capsys):
    from robolearn.cell import load_cell
    from robolearn.cli.node_host import twin_node
    from robolearn.ros import Node, ZenohSettings
    from robolearn.ros.zenoh_backend import free_endpoint, open_router

    endpoint = free_endpoint()
    router = open_router(endpoint)
    small = ["cameras.0.width_px=32", "cameras.0.height_px=24", "cameras.1.width_px=32", "cameras.1.height_px=24"]
    twins: list = []
    cell = load_cell("configs/cells/sim_panda.yaml", small)

    def run_twin() -> None:
        """The twin renders on the thread that made its EGL context: build and spin it here."""
        with Node("twin", settings=ZenohSettings(router_endpoint=endpoint)) as node:
            twins.append(twin_node(node, cell, task="reach", episodes=1, wait_for_recorder_s=0.5))
            node.spin(timeout_s=6.0)

    thread = threading.Thread(target=run_twin)
    thread.start()
    try:
        overrides = [arg for item in small + [f"ros.router_endpoint={endpoint}", "ros.backend=zenoh"]
                     for arg in ("--set", item)]
        result = run(["data", "view", "--rerun", "--live", *overrides, "--duration-s", "4",
                      "--out", str(tmp_path / "live.rrd")], capsys)
    finally:
        thread.join(timeout=20)
        router.close()
    assert twins and twins[0].completed + twins[0].attempts > 0, "the twin ran an episode"
    logged = read_rrd(tmp_path / "live.rrd")
    assert result["logged"]["cameras/front/rgb"] > 5 and len(logged["/cameras/front/rgb"]["time"]) > 5
    assert "/cameras/front/depth" in logged and "/cameras/wrist" in logged, "depth and the pinhole from CameraInfo"
    assert len(logged["/state/joint1"]["Scalars:scalars"]) > 5
    times = logged["/state/joint1"]["time"]
    assert times == sorted(times), "on the graph's one clock, the header stamps"
    assert "/action/ee_dx" in logged, "the expert's teleop commands"
    assert any("start reach" in str(t) for t in logged["/episode"]["TextLog:text"])
