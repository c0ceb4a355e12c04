"""Algorithm name → (config dataclass, agent class); builds agents from a checkpoint's JSON config."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from torch import nn

from robolearn.errors import UsageError
from robolearn.learn.bc import BCAgent, BCConfig
from robolearn.learn.iql import IQLAgent, IQLConfig
from robolearn.learn.sac import SACAgent, SACConfig

ALGOS: dict[str, tuple[type, type]] = {
    "bc": (BCConfig, BCAgent),
    "iql": (IQLConfig, IQLAgent),
    "calql": (SACConfig, SACAgent),
    "rlpd": (SACConfig, SACAgent),
    "wsrl": (SACConfig, SACAgent),
    "sac": (SACConfig, SACAgent),
}


def config_class(algo: str) -> type:
    if algo not in ALGOS:
        raise UsageError(f"unknown algorithm {algo!r}; choose one of {sorted(ALGOS)}")
    return ALGOS[algo][0]


def config_from_dict(algo: str, data: dict[str, Any]) -> Any:
    cls = config_class(algo)
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise UsageError(f"unknown {algo} config keys {sorted(unknown)}; known keys: {sorted(known)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return cls(**{**values, "algo": algo})


def make_agent(cfg: Any, obs_shapes: dict[str, tuple[int, ...]], action_dim: int) -> nn.Module:
    return ALGOS[cfg.algo][1](cfg, {k: tuple(v) for k, v in obs_shapes.items()}, action_dim)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    return asdict(cfg)
