"""Checkpoints: a directory with ``model.safetensors`` (all agent weights, targets included),
``optim.safetensors`` (optimizer state and RNG state), optional ``replay.safetensors`` and
``config.json``. Written to a temporary directory and renamed into place, so a crash mid-save leaves
the previous checkpoint intact. Save → load is bit-exact."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy
import torch
from safetensors.torch import load_file, save_file
from torch import nn


def _flatten_optim(name: str, optim: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = optim.state_dict()
    tensors = {}
    for pid, entries in state["state"].items():
        for key, value in entries.items():
            tensors[f"{name}/{pid}/{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return tensors, {"param_groups": state["param_groups"]}


def _unflatten_optim(name: str, tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for full_key, value in tensors.items():
        prefix, pid, key = full_key.split("/")
        if prefix == name:
            state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(path: str | Path, agent: nn.Module, config: dict[str, Any],
                    optimizers: dict[str, torch.optim.Optimizer] | None = None,
                    replay: dict[str, np.ndarray] | None = None) -> Path:
    """Write a checkpoint directory atomically; ``config`` must be JSON-serializable."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = {k: v.detach().contiguous().cpu() for k, v in agent.state_dict().items()}
    save_file(weights, str(tmp / "model.safetensors"))
    optim_meta = {}
    if optimizers:
        tensors = {"rng/torch": torch.get_rng_state()}
        for name, optim in optimizers.items():
            flat, optim_meta[name] = _flatten_optim(name, optim)
            tensors.update({k: v.contiguous().cpu() for k, v in flat.items()})
        save_file(tensors, str(tmp / "optim.safetensors"))
    if replay is not None:
        safetensors.numpy.save_file({k: np.ascontiguousarray(v) for k, v in replay.items()}, str(tmp / "replay.safetensors"))
    (tmp / "config.json").write_text(json.dumps({**config, "optimizers": optim_meta}, indent=2))
    old = path.with_name(path.name + ".old")
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def read_config(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not (path / "config.json").exists() or not (path / "model.safetensors").exists():
        raise FileNotFoundError(f"{path} is not a robolearn checkpoint (needs model.safetensors and config.json)")
    return json.loads((path / "config.json").read_text())


def load_checkpoint(path: str | Path, agent: nn.Module, optimizers: dict[str, torch.optim.Optimizer] | None = None,
                    device: torch.device | str = "cpu") -> tuple[dict[str, Any], dict[str, np.ndarray] | None]:
    """Load weights (and optimizer + RNG state when ``optimizers`` is given) into ``agent``;
    returns (config, replay arrays or None)."""
    path = Path(path)
    config = read_config(path)
    agent.load_state_dict(load_file(str(path / "model.safetensors"), device=str(device)))
    if optimizers and (path / "optim.safetensors").exists():
        tensors = load_file(str(path / "optim.safetensors"))
        torch.set_rng_state(tensors.pop("rng/torch"))
        for name, optim in optimizers.items():
            optim.load_state_dict(_unflatten_optim(name, tensors, config["optimizers"][name]))
    replay = None
    if (path / "replay.safetensors").exists():
        replay = safetensors.numpy.load_file(str(path / "replay.safetensors"))
    return config, replay


def recover_checkpoint(path: str | Path) -> None:
    """Restore the previous checkpoint when a crash hit ``save_checkpoint`` between its two renames."""
    path = Path(path)
    old = path.with_name(path.name + ".old")
    if not path.exists() and old.exists():
        os.replace(old, path)
