"""``EpisodeRecorder``: multi-rate streams aligned to the control clock, written episode by episode.

Observation streams arrive at their own rates (cameras at 30 Hz, arm state at 100 Hz and more), each
sample with its capture ``stamp_ns``; control steps (the action, at the control rate) come with the
stamp of the observation they answer. Every control step takes from each stream the sample nearest
its stamp within that stream's tolerance. A step for which some stream has no sample within
tolerance is **not recorded** (nothing is filled in from an older or newer frame): the step is
counted as dropped and the stream's ``missing`` count grows. A sample that arrives after the steps
it could belong to were decided counts as ``late``. All counts go into the episode's metadata and
``report()``. Where steps were dropped between two recorded ones, the episode's metadata lists the
gap, ``gaps: [[step, n_dropped], ...]`` (``step``: index in the episode of the first recorded step
after it), so training never treats the rows on either side as consecutive
(``DemoStore.episode_segments``).

With ``threaded=True`` (what a live cell uses) ``add`` and ``step`` only enqueue; one background
thread aligns, encodes and writes, so the caller's control loop never waits for JPEG encoding. A
sample that finds the queue full is dropped and counted (``dropped``); control steps always wait.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from robolearn.store.store import DemoStore
from robolearn.store.writer import EpisodeWriter


@dataclass
class StreamCounts:
    """Per-stream bookkeeping of one episode."""

    received: int = 0
    used: int = 0
    missing: int = 0
    late: int = 0
    dropped: int = 0


class EpisodeRecorder:
    """Records episodes of ``streams`` (data keys such as ``rgb_front``, ``depth_front``, ``state``)
    into ``store``.

    control_hz: the control rate; the default tolerance of every stream is half a control period.
    tolerance_ns: one tolerance for all streams or ``{stream: tolerance}``. max_pending_steps: control
    steps that may wait for a slow stream before they are decided with what has arrived.
    buffer_s: how far back (behind its newest sample) a stream keeps samples for control steps that
    have not come yet. Samples arriving while no episode is open are ignored.
    """

    def __init__(self, store: DemoStore, streams: Iterable[str], control_hz: float,
                 tolerance_ns: int | Mapping[str, int] | None = None, threaded: bool = False,
                 max_queue: int = 256, max_pending_steps: int = 8, buffer_s: float = 2.0):
        self.store = store
        self.streams = list(streams)
        default = int(0.5e9 / control_hz)
        if isinstance(tolerance_ns, Mapping):
            self.tolerance_ns = {s: int(tolerance_ns.get(s, default)) for s in self.streams}
        else:
            self.tolerance_ns = {s: int(default if tolerance_ns is None else tolerance_ns) for s in self.streams}
        self.max_pending_steps = max_pending_steps
        self.buffer_ns = int(buffer_s * 1e9)
        self.writer: EpisodeWriter | None = None
        self.meta: dict[str, Any] = {}
        self._reset_counts()
        self._queue: queue.Queue | None = None
        self._error: BaseException | None = None
        if threaded:
            self._queue = queue.Queue(maxsize=max_queue)
            self._thread = threading.Thread(target=self._run, name="episode-recorder", daemon=True)
            self._thread.start()

    def _reset_counts(self) -> None:
        self.counts = {s: StreamCounts() for s in self.streams}
        self.steps_recorded = 0
        self.steps_dropped = 0
        self.gaps: list[list[int]] = []
        self._dropped_in_a_row = 0
        self._buffers: dict[str, deque[tuple[int, Any]]] = {s: deque() for s in self.streams}
        self._pending: deque[tuple[int, dict[str, Any]]] = deque()
        self._decided_ns: int | None = None
        self._started_s = time.monotonic()

    # ---- caller side -----------------------------------------------------------------------------

    def start(self, task: str = "", source: str = "teleop", operator: str = "", **meta: Any) -> None:
        """Begin a new episode (an unfinished one is discarded)."""
        self._call(self._start, {"task": task, "source": source, "operator": operator, **meta})

    def add(self, stream: str, value: np.ndarray, stamp_ns: int) -> None:
        """A sample of an observation stream, captured at ``stamp_ns``."""
        if stream not in self.counts:
            raise KeyError(f"unknown stream {stream!r}; the recorder has {self.streams}")
        if self._queue is None:
            self._add(stream, value, int(stamp_ns))
            return
        self._raise_worker_error()
        try:
            self._queue.put_nowait((self._add, (stream, np.array(value, copy=True), int(stamp_ns))))
        except queue.Full:
            self.counts[stream].dropped += 1

    def check_store(self, stream_specs: Mapping[str, tuple[tuple[int, ...], np.dtype]],
                    action_shape: tuple[int, ...]) -> None:
        """Raise ``ValueError`` before recording when the episodes this recorder would write do not
        fit the store (other keys, frame shapes or dtypes).

        stream_specs: ``{stream: (shape of one sample, dtype)}``; action_shape: e.g. ``(7,)``.
        """
        unknown = sorted(set(stream_specs) ^ set(self.streams))
        if unknown:
            raise ValueError(f"stream_specs must describe exactly the streams {self.streams}; differs in {unknown}")
        fixed = {"action": (tuple(action_shape), np.dtype(np.float32)), "reward": ((), np.dtype(np.float32)),
                 "success": ((), np.dtype(np.bool_)), "terminated": ((), np.dtype(np.bool_)),
                 "intervention": ((), np.dtype(np.bool_)), "stamp_ns": ((), np.dtype(np.int64))}
        self.store.check_keys({**fixed, **{k: (tuple(shape), np.dtype(dtype)) for k, (shape, dtype) in stream_specs.items()}})

    def step(self, action: np.ndarray, stamp_ns: int, reward: float = 0.0, success: bool = False,
             terminated: bool = False, intervention: bool = False, **extra: Any) -> None:
        """One control step: the action taken at ``stamp_ns`` and what followed it."""
        fields = {"action": np.asarray(action, dtype=np.float32), "reward": np.float32(reward),
                  "success": bool(success), "terminated": bool(terminated), "intervention": bool(intervention),
                  "stamp_ns": np.int64(stamp_ns), **extra}
        self._call(self._step, int(stamp_ns), fields)

    def commit(self, success: bool | None = None, **meta: Any) -> int | None:
        """Decide the remaining steps and commit the episode; returns its index (None when no step
        could be recorded: the episode is discarded)."""
        return self._call(self._commit, success, meta, wait=True)

    def discard(self) -> None:
        """Drop the current episode (redo it with ``start``)."""
        self._call(self._discard, wait=True)

    def report(self) -> dict[str, Any]:
        """Counts of the current (or last) episode."""
        self.flush()
        return {"steps_recorded": self.steps_recorded, "steps_dropped": self.steps_dropped,
                "gaps": [list(g) for g in self.gaps], "streams": {s: asdict(c) for s, c in self.counts.items()}}

    def flush(self) -> None:
        """Wait until the background thread has processed everything queued."""
        if self._queue is not None:
            self._queue.join()
            self._raise_worker_error()

    def close(self) -> None:
        """Discard an uncommitted episode and stop the background thread."""
        if self.writer is not None:
            self.discard()
        if self._queue is not None:
            self._queue.put((None, ()))
            self._thread.join()
            self._queue = None

    def _call(self, fn: Any, *args: Any, wait: bool = False) -> Any:
        if self._queue is None:
            return fn(*args)
        self._raise_worker_error()
        if not wait:
            self._queue.put((fn, args))
            return None
        self.flush()
        return fn(*args)

    def _raise_worker_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"the recorder thread failed: {error}") from error

    def _run(self) -> None:
        assert self._queue is not None
        while True:
            fn, args = self._queue.get()
            try:
                if fn is None:
                    return
                if self._error is None:
                    fn(*args)
            except BaseException as err:  # reported to the caller on its next call
                self._error = err
            finally:
                self._queue.task_done()

    # ---- worker side -----------------------------------------------------------------------------

    def _start(self, meta: dict[str, Any]) -> None:
        if self.writer is not None:
            self.writer.discard()
        self._reset_counts()
        self.meta = meta
        self.writer = self.store.begin_episode()

    def _add(self, stream: str, value: np.ndarray, stamp_ns: int) -> None:
        if self.writer is None:
            return
        counts = self.counts[stream]
        counts.received += 1
        buffer = self._buffers[stream]
        decided = self._decided_ns
        if (decided is not None and stamp_ns < decided - self.tolerance_ns[stream]) or (buffer and stamp_ns < buffer[-1][0]):
            counts.late += 1
            return
        buffer.append((stamp_ns, value))
        while buffer[0][0] < stamp_ns - self.buffer_ns:
            buffer.popleft()
        self._decide(force=False)

    def _step(self, stamp_ns: int, fields: dict[str, Any]) -> None:
        if self.writer is None:
            raise RuntimeError("call start() before recording steps")
        self._pending.append((stamp_ns, fields))
        self._decide(force=False)

    def _decide(self, force: bool) -> None:
        while self._pending:
            stamp_ns, fields = self._pending[0]
            ready = all(buf and buf[-1][0] >= stamp_ns for buf in self._buffers.values())
            if not (ready or force or len(self._pending) > self.max_pending_steps):
                return
            self._pending.popleft()
            step = dict(fields)
            missing = []
            for stream, buffer in self._buffers.items():
                tolerance = self.tolerance_ns[stream]
                while len(buffer) > 1 and abs(buffer[1][0] - stamp_ns) <= abs(buffer[0][0] - stamp_ns):
                    buffer.popleft()
                if buffer and abs(buffer[0][0] - stamp_ns) <= tolerance:
                    step[stream] = buffer[0][1]
                else:
                    missing.append(stream)
            self._decided_ns = stamp_ns
            if missing:
                self.steps_dropped += 1
                self._dropped_in_a_row += 1
                for stream in missing:
                    self.counts[stream].missing += 1
                continue
            for stream in self.streams:
                self.counts[stream].used += 1
            assert self.writer is not None
            if self._dropped_in_a_row and self.steps_recorded:
                self.gaps.append([self.steps_recorded, self._dropped_in_a_row])
            self._dropped_in_a_row = 0
            self.writer.add(step)
            self.steps_recorded += 1

    def _commit(self, success: bool | None, meta: dict[str, Any]) -> int | None:
        if self.writer is None:
            raise RuntimeError("no episode to commit; call start() first")
        self._decide(force=True)
        writer, self.writer = self.writer, None
        if not writer.length:
            writer.discard()
            return None
        info = {**self.meta, **meta, "duration_s": time.monotonic() - self._started_s,
                "steps_dropped": self.steps_dropped, "gaps": [list(g) for g in self.gaps],
                "frames": {s: asdict(c) for s, c in self.counts.items()}}
        if success is not None:
            info["success"] = bool(success)
        return writer.commit(info)

    def _discard(self) -> None:
        if self.writer is not None:
            self.writer.discard()
            self.writer = None
        self._pending.clear()
