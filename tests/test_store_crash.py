"""A recorder killed with SIGKILL at random moments never damages committed episodes."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from robolearn.store import DemoStore
from robolearn.store.store import chunk_key

RECORDER = textwrap.dedent("""
    import sys
    from pathlib import Path

    import numpy as np

    from robolearn.store import DemoStore, EpisodeRecorder

    path = Path(sys.argv[1])
    store = DemoStore.open(path, mode="a") if path.exists() else DemoStore.create(path)
    recorder = EpisodeRecorder(store, ["state", "rgb_front", "depth_front"], control_hz=10)
    print("ready", flush=True)
    while True:
        episode = store.n_episodes
        rng = np.random.default_rng(episode)
        recorder.start(task="reach", source="teleop")
        for t in range(int(rng.integers(3, 8))):
            stamp_ns = t * 100_000_000
            recorder.add("state", rng.normal(size=15).astype(np.float32), stamp_ns)
            recorder.add("rgb_front", rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), stamp_ns)
            recorder.add("depth_front", rng.uniform(0.1, 3.0, (16, 16)).astype(np.float32), stamp_ns)
            recorder.step(rng.uniform(-1, 1, 7), stamp_ns, reward=float(t))
        index = recorder.commit(success=bool(episode % 2))
        print("committed", index, flush=True)
""")


def episode_digests(store: DemoStore) -> list[str]:
    """Per committed episode, a hash of every byte it owns: low-dimensional values, image and depth
    chunk files, metadata."""
    n = store.n_steps
    lowdim = {k: store.array(k)[:n] for k in store.keys if not k.startswith(("rgb_", "depth_"))}
    digests = []
    for index in range(store.n_episodes):
        digest = hashlib.sha256()
        span = store.episode_slice(index)
        for key in store.keys:
            if key in lowdim:
                digest.update(np.ascontiguousarray(lowdim[key][span]).tobytes())
                continue
            array = store.array(key)
            for t in range(span.start, span.stop):
                digest.update((store.path / "data" / key / chunk_key(array, t)).read_bytes())
        digest.update(repr(sorted(store.episode_meta(index).items())).encode())
        digests.append(digest.hexdigest())
    return digests


def expected_lowdim(index: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(index)
    steps = int(rng.integers(3, 8))
    state, action = [], []
    for _ in range(steps):
        state.append(rng.normal(size=15).astype(np.float32))
        rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
        rng.uniform(0.1, 3.0, (16, 16))
        action.append(rng.uniform(-1, 1, 7).astype(np.float32))
    return {"state": np.stack(state), "action": np.stack(action), "reward": np.arange(steps, dtype=np.float32)}


def run_and_kill(path: Path, rng: random.Random) -> list[int]:
    """Start the recorder, let it commit 0–2 episodes, SIGKILL it after a further random delay (at
    a random point of the next episode, on a busy machine too); returns the indices it reported
    committed."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", RECORDER, str(path)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    reported = [int(proc.stdout.readline().split()[1]) for _ in range(rng.randint(0, 2))]
    time.sleep(rng.uniform(0.0, 0.15))
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate()
    return reported + [int(line.split()[1]) for line in out.splitlines() if line.startswith("committed")]


def check_kills(path: Path, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    digests: list[str] = []
    for _ in range(kills):
        reported = run_and_kill(path, rng)
        store = DemoStore.open(path, mode="a")
        assert all(i < store.n_episodes for i in reported), "an episode reported committed is missing"
        now = episode_digests(store)
        assert now[: len(digests)] == digests, "a committed episode changed"
        digests = now
        for key in store.keys:
            assert store.array(key).shape[0] == store.n_steps, f"partial tail of {key} not removed"
        assert not list(path.rglob("*.partial"))
    assert len(digests) > kills // 2, "the recorder hardly ever committed: the test exercised nothing"
    store = DemoStore.open(path)
    for i in range(store.n_episodes):
        episode, expected = store.episode(i), expected_lowdim(i)
        for key, values in expected.items():
            np.testing.assert_array_equal(episode[key], values)
        assert episode["rgb_front"].shape == (len(expected["state"]), 16, 16, 3)
        assert store.episode_meta(i)["success"] == bool(i % 2)
    zarr_root = zarr.open_group(str(path), mode="r")
    np.testing.assert_array_equal(zarr_root["meta/episode_ends"][:], store.episode_ends)


def test_sigkill_at_random_points_keeps_committed_episodes(tmp_path):
    check_kills(tmp_path / "crash.zarr", kills=20, seed=0)


@pytest.mark.slow
def test_sigkill_many_times(tmp_path):
    check_kills(tmp_path / "crash.zarr", kills=200, seed=1)
