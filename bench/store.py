"""Benchmark the demonstration store: live recording and training reads.

Recording: two 640×480 RGB cameras and one 640×480 depth stream at 30 Hz plus 100 Hz arm state,
control at 30 Hz, fed from their own threads into a threaded ``EpisodeRecorder`` for ``--seconds``;
reports camera frames dropped (lost from a full queue, or in steps not recorded because a stream had
no sample within tolerance: ``record_missing`` per stream) and the CPU cores the process used.

Reading: random windows (2 cameras at 128×128, 2 observation steps, state, an action chunk of 10)
in batches of 256 from a ``SequenceDataset`` with 2 DataLoader workers, against bare JPEG decoding
of the same frames, already in memory, in the same number of processes, in the same run (the two
take turns, so the machine's load weighs on both alike).

Prints one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
import torch

from robolearn.store import DemoStore, EpisodeRecorder
from robolearn.store.dataset import SequenceDataset, make_dataloader
from robolearn.store.store import chunk_key


def synthetic_frames(n: int, height: int, width: int, seed: int) -> np.ndarray:
    """Camera-like frames: smooth gradients, a moving block and sensor noise, ``(n, H, W, 3) uint8``."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        base = np.stack([x / width * 200, y / height * 180 + 40, (x + y) / (width + height) * 120 + 60], -1)
        cx, cy = (i * 7) % width, (i * 5) % height
        base[max(0, cy - height // 8): cy + height // 8, max(0, cx - width // 8): cx + width // 8] = (220, 40, 40)
        frames[i] = np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)
    return frames


def bench_record(seconds: float, root: Path) -> dict[str, Any]:
    rgb = synthetic_frames(30, 480, 640, 0)
    depth = np.random.default_rng(1).uniform(0.3, 2.0, (8, 480, 640)).astype(np.float32)
    store = DemoStore.create(root / "record.zarr")
    streams = ["rgb_left", "rgb_right", "depth_left", "state"]
    recorder = EpisodeRecorder(store, streams, control_hz=30.0, threaded=True)
    recorder.start(task="bench", source="teleop")
    stop = threading.Event()
    ticks = {"camera": 0}

    def arm() -> None:
        state = np.zeros(15, np.float32)
        next_ns = time.monotonic_ns()
        while not stop.is_set():
            recorder.add("state", state, time.monotonic_ns())
            next_ns += 10_000_000
            time.sleep(max(0.0, (next_ns - time.monotonic_ns()) / 1e9))

    def cameras() -> None:
        next_ns = time.monotonic_ns()
        period_ns = int(1e9 / 30)
        while not stop.is_set():
            stamp_ns, i = time.monotonic_ns(), ticks["camera"]
            recorder.add("rgb_left", rgb[i % len(rgb)], stamp_ns)
            recorder.add("rgb_right", rgb[(i + 15) % len(rgb)], stamp_ns)
            recorder.add("depth_left", depth[i % len(depth)], stamp_ns)
            recorder.step(np.zeros(7, np.float32), stamp_ns)
            ticks["camera"] += 1
            next_ns += period_ns
            time.sleep(max(0.0, (next_ns - time.monotonic_ns()) / 1e9))

    threads = [threading.Thread(target=arm), threading.Thread(target=cameras)]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    recorder.commit(success=True)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    report = recorder.report()
    recorder.close()
    camera_frames = 3 * ticks["camera"]
    recorded = 3 * report["steps_recorded"]
    return {"record_seconds": round(wall, 2), "record_camera_frames": camera_frames,
            "record_dropped_frames": camera_frames - recorded,
            "record_queue_drops": sum(s["dropped"] for s in report["streams"].values()),
            "record_missing": {name: s["missing"] for name, s in report["streams"].items()},
            "record_cpu_cores": round(cpu / wall, 3), "record_steps": report["steps_recorded"]}


def build_read_store(path: Path, episodes: int, steps: int) -> DemoStore:
    store = DemoStore.create(path)
    rng = np.random.default_rng(0)
    for e in range(episodes):
        store.append_episode({
            "rgb_front": synthetic_frames(steps, 128, 128, 2 * e), "rgb_wrist": synthetic_frames(steps, 128, 128, 2 * e + 1),
            "state": rng.normal(size=(steps, 15)).astype(np.float32), "action": rng.uniform(-1, 1, (steps, 7)).astype(np.float32),
        }, {"task": "bench", "source": "expert", "success": True})
    store.stats()
    return store


_PAYLOADS: list[list[bytes]] = []


def _decode_batch(batch: int) -> int:
    out = np.empty((128, 128, 3), np.uint8)
    for payload in _PAYLOADS[batch]:
        imagecodecs.jpeg8_decode(payload, out=out)
    return len(_PAYLOADS[batch])


def _batch_payloads(store: DemoStore, dataset: SequenceDataset, indices: list[int], n_obs: int) -> list[bytes]:
    """The JPEG files a batch of windows decodes (each frame of a window once, as the loader does)."""
    t = dataset.anchor[indices]
    obs = np.clip(t[:, None] + np.arange(1 - n_obs, 1), dataset.anchor_start[indices, None],
                  dataset.anchor_end[indices, None] - 1)
    payloads = []
    for key in ("rgb_front", "rgb_wrist"):
        array = store.array(key)
        for row in obs:
            for i in np.unique(row):
                payloads.append((store.path / "data" / key / chunk_key(array, int(i))).read_bytes())
    return payloads


def bench_read(root: Path, batches: int, workers: int, rounds: int = 6) -> dict[str, float]:
    """Loader and bare decoding take turns (``rounds`` times, ``batches`` batches each), so a
    change in the machine's load hits both alike."""
    batch_size, n_obs = 256, 2
    store = build_read_store(root / "read.zarr", episodes=20, steps=150)
    dataset = SequenceDataset(store.path, ["state", "rgb_front", "rgb_wrist"], n_obs_steps=n_obs, horizon=10)
    sampler = make_dataloader(dataset, batch_size=batch_size, num_workers=0, seed=0).sampler
    epoch = [list(b) for b in sampler]
    plans = [[epoch[(r * (batches + workers) + i) % len(epoch)] for i in range(batches + workers)] for r in range(rounds)]
    _PAYLOADS.clear()
    for plan in plans:
        _PAYLOADS.extend(_batch_payloads(store, dataset, indices, n_obs) for indices in plan[workers:])
    read_s = decode_s = 0.0
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        pool.map(_decode_batch, [i % len(_PAYLOADS) for i in range(workers)])
        for r, plan in enumerate(plans):
            loader = torch.utils.data.DataLoader(dataset, batch_size=None, sampler=plan, num_workers=workers,
                                                 prefetch_factor=2)
            iterator = iter(loader)
            for _ in range(workers):
                next(iterator)
            start = time.perf_counter()
            for _ in range(batches):
                batch = next(iterator)
            read_s += time.perf_counter() - start
            assert batch["rgb_front"].shape == (batch_size, n_obs, 3, 128, 128)
            del batch, iterator, loader
            start = time.perf_counter()
            pool.map(_decode_batch, range(r * batches, (r + 1) * batches), chunksize=1)
            decode_s += time.perf_counter() - start
    read_rate = rounds * batches * batch_size / read_s
    decode_rate = rounds * batches * batch_size / decode_s
    return {"read_samples_per_s": round(read_rate, 1), "decode_samples_per_s": round(decode_rate, 1),
            "read_vs_decode_limit": round(read_rate / decode_rate, 3), "read_workers": workers,
            "read_batch_size": batch_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="recording duration (default: %(default)s)")
    parser.add_argument("--batches", type=int, default=4, help="read batches timed per round (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=6, help="turns of loader and bare decoding (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers and decode processes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = bench_record(args.seconds, Path(tmp))
        result.update(bench_read(Path(tmp), args.batches, args.workers, args.rounds))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
