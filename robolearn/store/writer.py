"""``EpisodeWriter``: stream one episode into a ``DemoStore`` step by step.

Chunk-per-frame arrays (RGB, depth) are encoded and written as steps arrive, so a long episode at
high resolution never sits in memory; low-dimensional rows are kept in memory and written at
commit. Nothing is committed until ``commit``: a writer that dies mid-episode leaves a partial
tail that the next writer removes (never while this process is still streaming the episode).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from robolearn.store.codecs import kind_of

if TYPE_CHECKING:
    from robolearn.store.store import DemoStore

GROW_STEPS = 64


class EpisodeWriter:
    """Writes one episode; get one from ``DemoStore.begin_episode()``."""

    def __init__(self, store: DemoStore):
        store._require_writable()
        store._lock.stream_started()  # another DemoStore of this process must not clean our tail
        self.store = store
        self.start = store.n_steps
        self.length = 0
        self.keys: list[str] | None = None
        self._rows: dict[str, list[np.ndarray]] = {}
        self._capacity: dict[str, int] = {}
        self.open = True

    def add(self, step: Mapping[str, Any]) -> None:
        """Append one step ``{key: value of one step}``; every step needs the same keys."""
        if not self.open:
            raise RuntimeError("this episode was already committed or discarded; begin a new one")
        values = {key: np.asarray(value) for key, value in step.items()}
        if self.keys is None:
            self.store.prepare_keys({key: (value.shape, value.dtype) for key, value in values.items()})
            self.keys = sorted(values)
            self._rows = {key: [] for key in self.keys if kind_of(key) == "lowdim"}
        elif sorted(values) != self.keys:
            raise ValueError(f"step keys {sorted(values)} differ from the episode's {self.keys}")
        index = self.start + self.length
        for key, value in values.items():
            if key in self._rows:
                self._rows[key].append(value.copy())
                continue
            if self._capacity.get(key, 0) <= index:
                self._capacity[key] = index + GROW_STEPS
                self.store.reserve(key, self._capacity[key])
            self.store.write_block(key, index, value[None])
        self.length += 1

    def commit(self, meta: Mapping[str, Any]) -> int:
        """Write the low-dimensional rows and commit the episode; returns its index."""
        if not self.open:
            raise RuntimeError("this episode was already committed or discarded")
        if not self.length:
            raise ValueError("cannot commit an episode with no steps; discard it instead")
        for key, rows in self._rows.items():
            self.store.write_block(key, self.start, np.stack(rows))
        index = self.store.commit(self.length, meta)
        self._close()
        return index

    def discard(self) -> None:
        """Drop the episode: remove its frames from the store's tail."""
        if self.open:
            self._close()
            self.store.repair()

    def _close(self) -> None:
        self.open = False
        self.store._lock.stream_ended()
