"""IQL (Kostrikov et al., 2022): expectile value loss on the min target Q, Q regressed on r + γV(s′)
with the current V, advantage-weighted actor with weights clipped at 100."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from robolearn.learn import losses
from robolearn.learn.models import CriticEnsemble, GaussianTanhActor, ObservationEncoder, mlp


@dataclass
class IQLConfig:
    algo: str = "iql"
    n_critics: int = 2
    hidden: tuple[int, ...] = (256, 256)
    batch_size: int = 256
    lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    expectile: float = 0.7
    beta: float = 3.0
    image_encoder: str = "cnn"
    image_latent_dim: int = 50
    pretrained_encoder: str | None = None
    augment: bool = True


class IQLAgent(nn.Module):
    def __init__(self, cfg: IQLConfig, obs_shapes: dict[str, tuple[int, ...]], action_dim: int):
        super().__init__()
        self.cfg, self.obs_shapes, self.action_dim = cfg, obs_shapes, action_dim
        self.encoder = ObservationEncoder(obs_shapes, cfg.image_encoder, cfg.image_latent_dim,
                                          augment=cfg.augment, pretrained_path=cfg.pretrained_encoder)
        f = self.encoder.out_dim
        self.actor = GaussianTanhActor(f, action_dim, cfg.hidden)
        self.critic = CriticEnsemble(f, action_dim, cfg.n_critics, cfg.hidden, layer_norm=False)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.value = mlp(f, cfg.hidden, 1)
        self.critic_optim = torch.optim.Adam(list(self.critic.parameters()) + list(self.encoder.parameters()), lr=cfg.lr)
        self.value_optim = torch.optim.Adam(self.value.parameters(), lr=cfg.lr)
        self.actor_optim = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"critic": self.critic_optim, "value": self.value_optim, "actor": self.actor_optim}

    @torch.no_grad()
    def act(self, obs: dict[str, torch.Tensor], deterministic: bool = True) -> torch.Tensor:
        return self.actor.sample(self.encoder(obs), deterministic)[0]

    def update(self, batches: list[dict]) -> dict[str, float]:
        info: dict[str, float] = {}
        for batch in batches:
            info = self._step(batch)
        return info

    def _step(self, batch: dict) -> dict[str, float]:
        cfg = self.cfg
        features = self.encoder(batch["obs"])
        with torch.no_grad():
            target_q = self.target_critic(features.detach(), batch["action"])
            next_v = self.value(self.encoder(batch["next_obs"])).squeeze(-1)
        v = self.value(features.detach()).squeeze(-1)
        v_loss = losses.iql_value_loss(target_q, v, cfg.expectile)
        self.value_optim.zero_grad(set_to_none=True)
        v_loss.backward()
        self.value_optim.step()

        q = self.critic(features, batch["action"])
        q_loss = losses.iql_q_loss(q, batch["reward"], batch["done"], next_v, cfg.gamma)
        self.critic_optim.zero_grad(set_to_none=True)
        q_loss.backward()
        self.critic_optim.step()
        losses.soft_update(self.target_critic, self.critic, cfg.tau)

        advantage = target_q.min(0).values - v.detach()
        log_prob = self.actor.log_prob(features.detach(), batch["action"])
        a_loss = losses.iql_actor_loss(advantage, log_prob, cfg.beta)
        self.actor_optim.zero_grad(set_to_none=True)
        a_loss.backward()
        self.actor_optim.step()
        return {"value_loss": v_loss.item(), "critic_loss": q_loss.item(), "actor_loss": a_loss.item()}
