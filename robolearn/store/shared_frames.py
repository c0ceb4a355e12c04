"""Reused shared-memory buffers for the decoded frames a DataLoader worker hands to the main process.

A batch of 256 windows of two 128×128 cameras is 50 MB of pixels. Fresh shared memory for every
batch costs the kernel about as much as decoding the JPEGs (allocating, zeroing and mapping
12,000 pages; worse in a VM), so each worker keeps a few buffers and reuses one once the main
process has dropped the batch that used it:

- a buffer is a shared ``uint8`` storage: a ``HEADER_BYTES`` header whose first byte is 1 while the
  main process holds frames from it, then the frames. 80 bytes put the frames 16 bytes off a 32-byte
  boundary, where libjpeg-turbo (imagecodecs) decodes about 20 % faster than into 32-byte-aligned
  memory (measured on 128×128 frames);
- the worker sends ``SharedFrames`` (the buffer, shape, dtype); torch's pickling sends the shared
  buffer itself (a file descriptor), never a copy;
- unpickling in the main process (``_rebuild``) returns a plain tensor over the buffer and a
  ``weakref.finalize`` on the array behind it that clears the flag once that tensor and every view
  of it are gone (``.to(device)`` and ``pin_memory`` copies do not hold it).

A worker whose buffers are all held takes a fresh one (keeping at most ``MAX_BUFFERS`` per size).
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import torch

HEADER_BYTES = 80
MAX_BUFFERS = 8


class SharedFrames:
    """Frames in a pooled shared buffer on their way to the main process; they arrive there as a
    plain ``torch.Tensor`` of ``shape`` (permuted by ``dims`` when given)."""

    def __init__(self, buffer: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype,
                 dims: tuple[int, ...] | None = None):
        self.buffer, self.shape, self.dtype, self.dims = buffer, shape, dtype, dims

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _rebuild, (self.buffer, self.shape, self.dtype, self.dims)

    def tensor(self) -> torch.Tensor:
        """The frames as a tensor in this process (a view of the buffer)."""
        return _view(self.buffer, self.shape, self.dtype, self.dims)


class FramePool:
    """One worker's shared buffers, by size in bytes."""

    def __init__(self) -> None:
        self.buffers: dict[int, list[torch.Tensor]] = {}

    def take(self, shape: tuple[int, ...], dtype: torch.dtype) -> tuple[torch.Tensor, np.ndarray]:
        """A buffer no process holds, marked held, and a numpy view of its frames ``shape`` to fill."""
        nbytes = int(np.prod(shape, dtype=np.int64)) * torch.empty(0, dtype=dtype).element_size()
        pool = self.buffers.setdefault(nbytes, [])
        buffer = next((b for b in pool if not b[0]), None)
        if buffer is None:
            buffer = torch.empty(0, dtype=torch.uint8).set_(torch.UntypedStorage._new_shared(HEADER_BYTES + nbytes))
            if len(pool) < MAX_BUFFERS:
                pool.append(buffer)
        buffer[0] = 1
        return buffer, _view(buffer, shape, dtype).numpy()


def _view(buffer: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype,
          dims: tuple[int, ...] | None = None) -> torch.Tensor:
    frames = buffer[HEADER_BYTES:].view(dtype).view(shape)
    return frames.permute(dims) if dims else frames


def _release(flag: torch.Tensor) -> None:
    flag.zero_()


def _rebuild(buffer: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype,
             dims: tuple[int, ...] | None) -> torch.Tensor:
    """In the receiving process: the frames as a tensor whose storage keeps ``array`` alive; when
    the last tensor using it goes, the finalizer tells the worker the buffer is free."""
    array = _view(buffer, shape, dtype).numpy()
    frames = torch.from_numpy(array)
    weakref.finalize(array, _release, buffer[:1])
    return frames.permute(dims) if dims else frames
