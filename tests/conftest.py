"""Shared test setup: headless rendering, and skipping of hardware/GPU tests where they cannot run."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

import pytest  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    import torch

    # The test networks are tiny; one thread avoids oversubscribing the cores that the worker
    # processes, renderers and zenoh threads of the same tests use.
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    no_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(no_gpu)
