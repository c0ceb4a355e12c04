"""Checkpoints: a directory with ``model.safetensors`` (all agent weights, targets included),
``optim.safetensors`` (optimizer state and the torch CPU/CUDA RNG states), optional
``replay.safetensors`` and ``config.json`` (which also holds the replay buffers' numpy RNG states).
Written to a temporary directory and renamed into place, so a crash mid-save leaves the previous
checkpoint intact. Save → load is bit-exact; a damaged or mismatched checkpoint is refused with a
``CheckpointError`` naming the path and the fix."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from robolearn.errors import RobolearnError


class CheckpointError(RobolearnError):
    """A checkpoint that is damaged or does not fit the agent it is loaded into."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A directory that is not a checkpoint."""


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
        if full_key.startswith(f"{name}/"):
            _, pid, key = full_key.split("/")
            state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def _rng_tensors() -> dict[str, torch.Tensor]:
    """torch's CPU RNG state, and every CUDA device's once CUDA is in use."""
    tensors = {"rng/torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors.update({f"rng/cuda/{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    return tensors


def _restore_rng(tensors: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(tensors["rng/torch"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("rng/cuda/")), key=lambda k: int(k[9:]))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(path: str | Path, agent: nn.Module, config: dict[str, Any],
                    optimizers: dict[str, torch.optim.Optimizer] | None = None,
                    replay: dict[str, np.ndarray] | None = None,
                    rngs: dict[str, np.random.Generator] | None = None) -> Path:
    """Write a checkpoint directory atomically; ``config`` must be JSON-serializable. With
    ``optimizers`` the torch RNG states are saved too; ``rngs`` (e.g. a replay buffer's sampler) are
    saved in ``config.json`` under ``rng_states``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = {k: v.detach().contiguous().cpu() for k, v in agent.state_dict().items()}
    save_file(weights, str(tmp / "model.safetensors"))
    optim_meta = {}
    if optimizers:
        tensors = _rng_tensors()
        for name, optim in optimizers.items():
            flat, optim_meta[name] = _flatten_optim(name, optim)
            tensors.update({k: v.contiguous().cpu() for k, v in flat.items()})
        save_file(tensors, str(tmp / "optim.safetensors"))
    if replay is not None:
        safetensors.numpy.save_file({k: np.ascontiguousarray(v) for k, v in replay.items()}, str(tmp / "replay.safetensors"))
    rng_states = {name: rng.bit_generator.state for name, rng in (rngs or {}).items()}
    (tmp / "config.json").write_text(json.dumps({**config, "optimizers": optim_meta, "rng_states": rng_states}, indent=2))
    old = path.with_name(path.name + ".old")
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def _damaged(path: Path, file: str, err: Exception) -> CheckpointError:
    return CheckpointError(f"checkpoint {path}: {file} is damaged ({err}); delete {path} to start over, or point to "
                           "another checkpoint (e.g. OUT/best or an OUT/step_<N>)")


def read_config(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not (path / "config.json").exists() or not (path / "model.safetensors").exists():
        raise CheckpointNotFoundError(f"{path} is not a robolearn checkpoint (needs model.safetensors and config.json)")
    try:
        config = json.loads((path / "config.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _damaged(path, "config.json", err) from err
    if not isinstance(config, dict) or "algo" not in config:
        raise _damaged(path, "config.json", ValueError("no 'algo' entry"))
    return config


def _load_tensors(path: Path, file: str, device: str = "cpu") -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path / file), device=device)
    except (SafetensorError, OSError) as err:
        raise _damaged(path, file, err) from err


def _check_fits(path: Path, config: dict[str, Any], agent: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    own = agent.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    wrong = [f"{k} {tuple(weights[k].shape)} vs {tuple(own[k].shape)}" for k in own
             if k in weights and weights[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"checkpoint {path} ({config.get('algo')}, observations {sorted(config.get('obs_shapes', {}))}) does not fit "
            f"this {getattr(getattr(agent, 'cfg', None), 'algo', 'agent')} agent: missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}, wrong shape {wrong[:3]} (of {len(missing)}, {len(unexpected)}, {len(wrong)}); it was "
            "trained with other settings (n_critics, hidden, --obs): use the same ones, or a new --out to start over")


def load_checkpoint(path: str | Path, agent: nn.Module, optimizers: dict[str, torch.optim.Optimizer] | None = None,
                    device: torch.device | str = "cpu", rngs: dict[str, np.random.Generator] | None = None,
                    ) -> tuple[dict[str, Any], dict[str, np.ndarray] | None]:
    """Load weights (and optimizer + torch RNG state when ``optimizers`` is given, and the state of
    each generator in ``rngs`` saved under its name) into ``agent``; returns (config, replay arrays or
    None)."""
    path = Path(path)
    config = read_config(path)
    weights = _load_tensors(path, "model.safetensors", str(device))
    _check_fits(path, config, agent, weights)
    agent.load_state_dict(weights)
    if optimizers and (path / "optim.safetensors").exists():
        tensors = _load_tensors(path, "optim.safetensors")
        _restore_rng(tensors)
        for name, optim in optimizers.items():
            try:
                optim.load_state_dict(_unflatten_optim(name, tensors, config["optimizers"][name]))
            except (KeyError, ValueError) as err:
                raise CheckpointError(f"checkpoint {path}: optimizer {name!r} does not fit ({err}); it was saved by "
                                      "another algorithm or settings: use the same ones, or a new --out") from err
    for name, rng in (rngs or {}).items():
        if name in config.get("rng_states", {}):
            rng.bit_generator.state = config["rng_states"][name]
    replay = None
    if (path / "replay.safetensors").exists():
        try:
            replay = safetensors.numpy.load_file(str(path / "replay.safetensors"))
        except (SafetensorError, OSError) as err:
            raise _damaged(path, "replay.safetensors", err) from err
    return config, replay


def recover_checkpoint(path: str | Path) -> None:
    """Restore the previous checkpoint when a crash hit ``save_checkpoint`` between its two renames."""
    path = Path(path)
    old = path.with_name(path.name + ".old")
    if not path.exists() and old.exists():
        os.replace(old, path)
