"""Behaviour cloning with action chunking: an MLP on the encoded observation predicts the next
``chunk`` actions (tanh-squashed); at run time the policy executes ``execute`` of them, then re-plans."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from robolearn.learn import losses
from robolearn.learn.models import mlp
from robolearn.learn.observation import EncoderConfig, ObservationEncoder


@dataclass
class BCConfig:
    """chunk: actions predicted per observation; execute: how many of them run before re-planning.
    successful_only: train on the store's successful episodes only (a store also holds failed
    online episodes). encoder: how observations become features (``EncoderConfig``)."""

    algo: str = "bc"
    chunk: int = 4
    execute: int = 1
    hidden: tuple[int, ...] = (256, 256)
    batch_size: int = 256
    lr: float = 3e-4
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    successful_only: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.execute <= self.chunk:
            raise ValueError(f"execute must be in 1..chunk={self.chunk}, got {self.execute}")


class BCAgent(nn.Module):
    def __init__(self, cfg: BCConfig, obs_shapes: dict[str, tuple[int, ...]], action_dim: int):
        super().__init__()
        self.cfg, self.obs_shapes, self.action_dim = cfg, obs_shapes, action_dim
        self.encoder = ObservationEncoder(obs_shapes, cfg.encoder)
        self.head = mlp(self.encoder.out_dim, cfg.hidden, cfg.chunk * action_dim, layer_norm=True)
        self.optim = torch.optim.Adam(self.parameters(), lr=cfg.lr)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"bc": self.optim}

    def predict_chunk(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(B, chunk, A)`` actions in (−1, 1)."""
        out = torch.tanh(self.head(self.encoder(obs)))
        return out.view(out.shape[0], self.cfg.chunk, self.action_dim)

    @torch.no_grad()
    def act(self, obs: dict[str, torch.Tensor], deterministic: bool = True) -> torch.Tensor:
        return self.predict_chunk(obs)[:, 0]

    def update(self, batches: list[dict]) -> dict[str, float]:
        """One gradient step per batch on the masked chunk MSE."""
        loss = torch.zeros(())
        for batch in batches:
            loss = losses.bc_chunk_loss(self.predict_chunk(batch["obs"]), batch["action_chunk"], batch["chunk_mask"])
            self.optim.zero_grad(set_to_none=True)
            loss.backward()
            self.optim.step()
        return losses.as_floats({"bc_loss": loss.detach()})
