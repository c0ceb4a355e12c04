"""The writer lock of a store: one writing process at a time; readers never wait.

A process that opens a store to write (``DemoStore.create``, ``DemoStore.open(path, mode="a")``)
holds an exclusive ``flock`` on ``meta/episode_ends/.robolearn-writer.lock`` for as long as it keeps
the store open (inside an array directory, so plain zarr never lists it). The kernel drops the lock
when the process dies, SIGKILL included, so a crashed recorder never blocks the next writer. Only
the holder removes a partial tail, so a second writer (``robolearn data stats``, ``data delete``, a
second ``collect``) can no longer wipe the frames a live recorder has streamed but not committed:
it waits for the holder, then fails with ``StoreLockedError`` naming the holder's pid.

Within one process the lock is shared: every ``DemoStore`` writing the same store holds a reference
to one lock (keyed by the lock file's inode, which survives the directory swap of
``delete_episodes``), and the process keeps it until the last one is closed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from robolearn.errors import RobolearnError

LOCK_FILE = Path("meta") / "episode_ends" / ".robolearn-writer.lock"
DEFAULT_LOCK_TIMEOUT_S = 10.0
POLL_S = 0.05
MAX_COMMAND_CHARS = 120


class StoreLockedError(RobolearnError):
    """Another process is writing the store."""


@dataclass
class _Held:
    """This process's hold of one store's lock: the locked file descriptor, how many ``WriterLock``
    references share it, and how many episodes are being streamed into the store right now."""

    fd: int
    refs: int = 1
    streaming: int = 0


_HELD: dict[tuple[int, int], _Held] = {}
_GUARD = threading.Lock()


def _forget_in_child() -> None:
    """A forked child (a DataLoader worker) holds no store: drop its copies of the descriptors, so
    the lock ends when the parent lets go."""
    for held in _HELD.values():
        os.close(held.fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_forget_in_child)


def _holder(lock_path: Path) -> str:
    """``process <pid> (<command line>)`` from the lock file, as far as it can be read."""
    try:
        pid = int(lock_path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return "another process"
    try:
        command = " ".join(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").replace("\0", " ").split())
    except OSError:
        command = ""
    if len(command) > MAX_COMMAND_CHARS:
        command = command[: MAX_COMMAND_CHARS - 1] + "…"
    return f"process {pid}" + (f" ({command})" if command else "")


def _is_current(lock_path: Path, key: tuple[int, int]) -> bool:
    """Whether ``lock_path`` still names the file ``key`` (a ``delete_episodes`` swap replaces it)."""
    try:
        st = os.stat(lock_path)
    except FileNotFoundError:
        return False
    return (st.st_dev, st.st_ino) == key


class WriterLock:
    """One ``DemoStore``'s reference to its process's writer lock on a store.

    ``first``: this reference took the lock from no one in this process, so whatever lies past the
    last committed episode was left by a writer that is gone (its tail may be removed).
    """

    def __init__(self, key: tuple[int, int], held: _Held, first: bool):
        self.key, self._held, self.first = key, held, first
        self.released = False

    @classmethod
    def acquire(cls, store_path: str | Path, timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> WriterLock:
        """Take (or share) the writer lock of the store at ``store_path``, waiting up to ``timeout_s``
        for another process to let go; raises StoreLockedError naming the holder when it does not."""
        lock_path = Path(store_path) / LOCK_FILE
        deadline = time.monotonic() + timeout_s
        fd = -1
        try:
            while True:
                if fd < 0:
                    with contextlib.suppress(FileNotFoundError):  # a delete_episodes is swapping the store in
                        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                if fd >= 0:
                    st = os.fstat(fd)
                    key = (st.st_dev, st.st_ino)
                    with _GUARD:
                        held = _HELD.get(key)
                        if held is not None:
                            held.refs += 1
                            return cls(key, held, first=False)
                        try:
                            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        except BlockingIOError:
                            pass
                        else:
                            if _is_current(lock_path, key):
                                os.ftruncate(fd, 0)
                                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                                _HELD[key], fd = _Held(fd), -1
                                return cls(key, _HELD[key], first=True)
                            os.close(fd)  # a swap has just replaced the file we locked
                            fd = -1
                            continue
                if time.monotonic() >= deadline:
                    raise StoreLockedError(
                        f"{Path(store_path)} is being written by {_holder(lock_path)}, which still held it after "
                        f"{timeout_s:g} s; let it finish (a recorder commits or discards its episode, then closes the "
                        "store) or stop it, then retry. Reading the store (data info, episodes, view, export, "
                        "training) works meanwhile.")
                time.sleep(POLL_S)
        finally:
            if fd >= 0:
                os.close(fd)

    @property
    def streaming(self) -> int:
        """Episodes being streamed into the store by this process (``EpisodeWriter``)."""
        return self._held.streaming

    def stream_started(self) -> None:
        self._held.streaming += 1

    def stream_ended(self) -> None:
        self._held.streaming = max(0, self._held.streaming - 1)

    def release(self) -> None:
        """Drop this reference; the process lets go of the lock with its last one."""
        if self.released:
            return
        self.released = True
        with _GUARD:
            self._held.refs -= 1
            if self._held.refs == 0 and _HELD.get(self.key) is self._held:
                del _HELD[self.key]
                os.close(self._held.fd)
