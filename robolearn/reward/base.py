"""Reward model configs, their registry, checkpoints, and :func:`load_reward_model`.

A reward model maps one observation to ``(reward, success_prob)`` (``robolearn.interfaces.RewardModel``).
Backends register as ``RewardConfig`` choices (``type:`` key in YAML): ``oracle`` (the twin's ground
truth), ``classifier`` (success classifier on a frozen CLIP/SigLIP encoder), ``clip`` (VLM-RM
goal–baseline similarity), ``vlm`` (a VLM judge over an OpenAI-compatible endpoint) and
``preference`` (RL-VLM-F Bradley–Terry reward model).

One rule decides success everywhere (evaluation, relabeling, the reward node, fine-tuning, live
trials): ``success_prob >= threshold``, with the model's ``threshold`` (``success_threshold``):
calibrated at training for the classifier and the preference model, configurable for every
backend, 0.5 for a model without one.

Learned reward checkpoints are directories holding ``model.safetensors`` and ``config.json``; the
JSON's ``type`` names the backend, so a bare checkpoint directory is a valid spec.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from robolearn.config import ChoiceBase, ChoiceRegistry, ConfigError, from_dict, read_yaml
from robolearn.interfaces import Observation, RewardModel

SPEC_HELP = (
    "oracle | classifier:<checkpoint dir> | preference:<checkpoint dir> | clip:<yaml> | vlm:<yaml> | "
    "a checkpoint directory | a reward YAML with a `type` key"
)


@dataclass
class RewardConfig(ChoiceBase):
    """Base of the reward model configs; ``create(env)`` builds the ``RewardModel``."""

    registry = ChoiceRegistry("reward")

    def create(self, env: Any = None) -> RewardModel:
        raise NotImplementedError


for _module in ("classifier", "clip_similarity", "vlm_judge", "preference"):
    RewardConfig.registry.add_lazy_module(f"robolearn.reward.{_module}")


class OracleReward:
    """The twin's ground truth: ``(task reward, 1.0 if success else 0.0)`` from the env's task
    (``Task.reward(obs)``), which reads the simulator's state, so it is exact and needs the env."""

    def __init__(self, env: Any):
        task = getattr(getattr(env, "unwrapped", env), "task", None)
        if task is None or not callable(getattr(task, "reward", None)):
            raise ConfigError("reward", "oracle", "the oracle reward needs a twin env (robolearn.env.make_env); "
                              "on the real cell use classifier, clip, vlm or preference")
        self.task = task

    def __call__(self, obs: Observation) -> tuple[float, float]:
        reward, success = self.task.reward(obs)
        return float(reward), float(success)


@RewardConfig.register("oracle")
@dataclass
class OracleRewardConfig(RewardConfig):
    """Ground-truth reward and success from the twin's task (sim only)."""

    def create(self, env: Any = None) -> RewardModel:
        if env is None:
            raise ConfigError("reward", "oracle", "the oracle reward needs env=make_env(...)")
        return OracleReward(env)


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], config: dict[str, Any]) -> Path:
    """Write ``model.safetensors`` and ``config.json`` (``config["type"]`` names the backend)."""
    if "type" not in config:
        raise ValueError("a reward checkpoint config needs a 'type' key")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps(config, indent=2, default=_jsonable) + "\n")
    return path


def load_checkpoint(path: str | Path, expected_type: str | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a reward checkpoint directory; errors name the missing file or the wrong type."""
    path = Path(path)
    for name in ("config.json", "model.safetensors"):
        if not (path / name).is_file():
            raise ConfigError(str(path), name, "missing: a reward checkpoint is a directory with config.json and "
                              "model.safetensors (written by `robolearn reward train`)")
    config = json.loads((path / "config.json").read_text())
    if expected_type is not None and config.get("type") != expected_type:
        raise ConfigError(str(path), "config.json.type", f"is {config.get('type')!r}, expected {expected_type!r}")
    return load_file(str(path / "model.safetensors")), config


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def parse_reward_spec(spec: str | RewardConfig) -> RewardConfig:
    """Turn a spec string (see ``SPEC_HELP``) into a typed ``RewardConfig``."""
    if isinstance(spec, RewardConfig):
        return spec
    spec = str(spec).strip()
    kind, _, arg = spec.partition(":")
    if spec == "oracle":
        return OracleRewardConfig()
    if kind in ("classifier", "preference") and arg:
        return from_dict(RewardConfig, {"type": kind, "checkpoint": arg}, source=f"--reward {spec}")
    if kind in ("clip", "vlm") and arg:
        data = read_yaml(arg)
        data.setdefault("type", kind)
        if data["type"] != kind:
            raise ConfigError(arg, "type", f"is {data['type']!r} but the spec says {kind!r}")
        return from_dict(RewardConfig, data, source=arg)
    path = Path(spec)
    if path.is_dir() and (path / "config.json").is_file():
        kind = json.loads((path / "config.json").read_text()).get("type")
        if kind not in ("classifier", "preference"):
            raise ConfigError(str(path), "config.json.type", f"{kind!r} is not a reward checkpoint type")
        return from_dict(RewardConfig, {"type": kind, "checkpoint": spec}, source=spec)
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        return from_dict(RewardConfig, read_yaml(path), source=spec)
    raise ConfigError("--reward", spec, f"not a reward spec; use one of: {SPEC_HELP}")


def load_reward_model(spec: str | RewardConfig, env: Any = None) -> RewardModel:
    """Build a ``RewardModel`` from a spec (``SPEC_HELP``) or a config; ``env`` is needed by ``oracle``."""
    return parse_reward_spec(spec).create(env)
