"""Algorithm name → (config dataclass, agent class); builds agents from a checkpoint's JSON config."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from torch import nn

from robolearn.config import ConfigError, from_dict
from robolearn.errors import UsageError
from robolearn.learn.bc import BCAgent, BCConfig
from robolearn.learn.iql import IQLAgent, IQLConfig
from robolearn.learn.observation import check_cacheable
from robolearn.learn.sac import SACAgent, SACConfig

ALGOS: dict[str, tuple[type, type]] = {
    "bc": (BCConfig, BCAgent),
    "iql": (IQLConfig, IQLAgent),
    "calql": (SACConfig, SACAgent),
    "rlpd": (SACConfig, SACAgent),
    "wsrl": (SACConfig, SACAgent),
    "sac": (SACConfig, SACAgent),
}
LEGACY_ENCODER_KEYS = {"image_encoder": "image", "image_latent_dim": "image_latent_dim",
                       "proprio_latent_dim": "proprio_latent_dim", "pretrained_encoder": "weights",
                       "augment": "augment", "normalize_obs": "normalize_obs"}
"""Encoder settings that checkpoints of robolearn 0.1 kept at the top of the algorithm config."""


def config_class(algo: str) -> type:
    if algo not in ALGOS:
        raise UsageError(f"unknown algorithm {algo!r}; choose one of {sorted(ALGOS)}")
    return ALGOS[algo][0]


def config_from_dict(algo: str, data: dict[str, Any], source: str = "checkpoint config") -> Any:
    """The typed config of ``algo`` from plain data (a checkpoint's ``algo_config``), validated by the
    config layer; a wrong key names the keys ``algo`` takes."""
    data = dict(data)
    legacy = {LEGACY_ENCODER_KEYS[k]: data.pop(k) for k in list(data) if k in LEGACY_ENCODER_KEYS}
    if legacy:
        data["encoder"] = {**legacy, **data.get("encoder", {})}
    try:
        return from_dict(config_class(algo), {**data, "algo": algo}, source=source)
    except ConfigError as err:
        raise UsageError(f"{err}; this {algo} config was written by another robolearn version, or edited") from err


def make_agent(cfg: Any, obs_shapes: dict[str, tuple[int, ...]], action_dim: int) -> nn.Module:
    shapes = {k: tuple(v) for k, v in obs_shapes.items()}
    check_cacheable(cfg.encoder, shapes)
    return ALGOS[cfg.algo][1](cfg, shapes, action_dim)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    return asdict(cfg)
