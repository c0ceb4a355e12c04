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
    mid_episode = 0
    for _ in range(kills):
        reported = run_and_kill(path, rng)
        with DemoStore.open(path, mode="a") as store:  # the next recorder needs the writer lock
            assert all(i < store.n_episodes for i in reported), "an episode reported committed is missing"
            mid_episode += bool(store.repaired["steps"] or store.repaired["partial_files"])
            now = episode_digests(store)
            assert now[: len(digests)] == digests, "a committed episode changed"
            digests = now
            for key in store.keys:
                assert store.array(key).shape[0] == store.n_steps, f"partial tail of {key} not removed"
            assert not list(path.rglob("*.partial"))
    assert len(digests) > kills // 2, "the recorder hardly ever committed: the test exercised nothing"
    assert mid_episode, "no kill landed in the middle of an episode: the test exercised no partial tail"
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


CREATOR = textwrap.dedent("""
    import os
    import signal
    import sys

    import zarr.storage

    from robolearn.store import store as store_module

    path, kill_at = sys.argv[1], int(sys.argv[2])
    writes = 0
    real_set, real_move = zarr.storage.LocalStore.set, store_module._move_into_place

    async def set_then_die(self, key, value):
        global writes
        writes += 1
        if writes == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        await real_set(self, key, value)

    def move_then_die(*args):
        if kill_at == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        real_move(*args)
        if kill_at == -1:
            os.kill(os.getpid(), signal.SIGKILL)

    zarr.storage.LocalStore.set, store_module._move_into_place = set_then_die, move_then_die
    store_module.DemoStore.create(path)
    print("writes", writes, flush=True)
""")


def test_a_kill_while_creating_a_store_leaves_nothing_open_or_create_cannot_handle(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    count = subprocess.run([sys.executable, "-c", CREATOR, str(tmp_path / "count.zarr"), "1000"], env=env,
                           capture_output=True, text=True, check=True)
    n_writes = int(count.stdout.split()[1])
    assert n_writes >= 4
    # Killed at every file write of the creation, just before the rename into place, just after it.
    points = [*range(1, n_writes + 1), 0, -1]
    runs = {k: subprocess.Popen([sys.executable, "-c", CREATOR, str(tmp_path / f"s{k}.zarr"), str(k)], env=env)
            for k in points}
    for k, proc in runs.items():
        assert proc.wait(timeout=120) == -signal.SIGKILL, k
    for k in points:
        path = tmp_path / f"s{k}.zarr"
        if k == -1:
            with DemoStore.open(path, mode="a") as store:  # renamed into place: complete
                assert store.n_episodes == 0 and store.append_episode(
                    {"state": np.zeros((2, 3), np.float32)}, {"source": "teleop"}) == 0
            continue
        assert not path.exists(), f"killed at write {k}: a half-built store is visible"
        assert list(tmp_path.glob(f".s{k}.zarr.creating-*")), "the half-built store is in its hidden sibling"
        with DemoStore.create(path) as store:
            assert store.n_episodes == 0
        assert not list(tmp_path.glob(f".s{k}.zarr.creating-*")), "create removes what a killed creator left"
        assert DemoStore.open(path).n_episodes == 0


HOLDER = textwrap.dedent("""
    import sys
    import time

    from robolearn.store import DemoStore

    store = DemoStore.open(sys.argv[1], mode="a")
    print("holding", flush=True)
    time.sleep(600)
""")


def test_a_second_writer_waits_then_names_the_holder_and_a_killed_holder_lets_go(tmp_path):
    from robolearn.errors import RobolearnError
    from robolearn.store.lock import StoreLockedError

    path = tmp_path / "s.zarr"
    with DemoStore.create(path) as store:
        store.append_episode({"state": np.zeros((3, 4), np.float32)}, {"source": "teleop"})
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "holding"
        started = time.monotonic()
        with pytest.raises(StoreLockedError, match=rf"s.zarr is being written by process {holder.pid} \(.*python.*\), "
                                                  r"which still held it after 0.5 s; let it finish"):
            DemoStore.open(path, mode="a", lock_timeout_s=0.5)
        assert time.monotonic() - started >= 0.5, "it waited for the holder first"
        assert issubclass(StoreLockedError, RobolearnError)
        assert DemoStore.open(path).n_episodes == 1, "readers never wait"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with DemoStore.open(path, mode="a", lock_timeout_s=5.0) as store:  # the kernel released the killed holder's lock
        assert store.append_episode({"state": np.ones((2, 4), np.float32)}, {"source": "teleop"}) == 1


def test_a_second_writer_never_blacks_out_a_live_recording(tmp_path):
    """``robolearn data stats`` (any second writer) started while a recorder streams an episode used
    to remove the recorder's uncommitted frames as a 'partial tail': they came back black."""
    from robolearn.store import EpisodeRecorder

    path = tmp_path / "live.zarr"
    rng = np.random.default_rng(0)
    frames = np.broadcast_to(rng.integers(60, 255, (8, 1, 1, 3), dtype=np.uint8), (8, 16, 16, 3))
    store = DemoStore.create(path)
    recorder = EpisodeRecorder(store, ["rgb_front", "state"], control_hz=10)

    def record(t: int) -> None:
        recorder.add("rgb_front", frames[t], t * 100_000_000)
        recorder.add("state", np.full(3, t, np.float32), t * 100_000_000)
        recorder.step(np.zeros(7), t * 100_000_000)

    recorder.start(task="reach", source="teleop")
    record(0)
    assert recorder.commit(success=True) == 0
    recorder.start(task="reach", source="teleop")
    for t in range(5):
        record(t)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    second = subprocess.Popen([sys.executable, "-m", "robolearn", "data", "stats", str(path), "--json"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock_file = os.path.realpath(path / "meta" / "episode_ends" / ".robolearn-writer.lock")

    def waiting_for_the_lock() -> bool:
        try:
            return any(os.path.realpath(f"/proc/{second.pid}/fd/{fd}") == lock_file
                       for fd in os.listdir(f"/proc/{second.pid}/fd"))
        except FileNotFoundError:  # it has just exited
            return False

    deadline = time.monotonic() + 60
    while second.poll() is None and not waiting_for_the_lock():
        assert time.monotonic() < deadline, "the second writer neither finished nor waited"
        time.sleep(0.02)
    for t in range(5, 8):
        record(t)
    assert recorder.commit(success=True) == 1
    recorder.close()
    store.close()
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    stored = DemoStore.open(path).episode(1)["rgb_front"]
    error = np.abs(stored.astype(np.int16) - frames)
    assert error.mean() < 3 and stored.min() >= 30, "every recorded frame survived (none black)"
