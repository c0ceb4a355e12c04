"""Run a trained agent: ``load_policy(ckpt_dir)`` returns a ``robolearn.interfaces.Policy``."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from robolearn.errors import MissingKeyError
from robolearn.learn.agents import config_from_dict, make_agent
from robolearn.learn.checkpoint import load_checkpoint, read_config


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The requested device, else CUDA when available, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class AgentPolicy:
    """Wraps an agent for single unbatched observations; actions ``(A,) float32`` in [−1, 1].
    Agents with action chunks (BC) execute ``execute`` actions of each predicted chunk, then re-plan."""

    def __init__(self, agent: nn.Module, observation_keys: list[str], device: torch.device,
                 config: dict[str, Any] | None = None, deterministic: bool = True):
        self.agent, self.observation_keys, self.device = agent, observation_keys, device
        self.config = config or {}
        self.deterministic = deterministic
        self._queue: deque[np.ndarray] = deque()

    def reset(self) -> None:
        self._queue.clear()

    def batch(self, obs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        missing = [k for k in self.observation_keys if k not in obs]
        if missing:
            raise MissingKeyError(f"observation lacks {missing}; this policy needs {self.observation_keys}")
        return {k: torch.as_tensor(np.asarray(obs[k])).unsqueeze(0).to(self.device) for k in self.observation_keys}

    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        if not self._queue:
            was_training = self.agent.training
            self.agent.eval()
            batch = self.batch(obs)
            if hasattr(self.agent, "predict_chunk"):
                chunk = self.agent.predict_chunk(batch)[0, : self.agent.cfg.execute]
            else:
                chunk = self.agent.act(batch, self.deterministic)
            self.agent.train(was_training)
            self._queue.extend(chunk.float().cpu().numpy())
        return np.clip(self._queue.popleft(), -1.0, 1.0).astype(np.float32)


def agent_from_checkpoint(ckpt_dir: str | Path, device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
    config = read_config(ckpt_dir)
    cfg = config_from_dict(config["algo"], config["algo_config"])
    agent = make_agent(cfg, config["obs_shapes"], config["action_dim"]).to(device)
    load_checkpoint(ckpt_dir, agent, device=device)
    return agent, config


def load_policy(ckpt_dir: str | Path, device: str | torch.device | None = None) -> AgentPolicy:
    """Load a checkpoint directory (``model.safetensors`` + ``config.json``) as a Policy."""
    device = pick_device(device)
    agent, config = agent_from_checkpoint(ckpt_dir, device)
    agent.eval()
    return AgentPolicy(agent, sorted(config["obs_shapes"]), device, config)
