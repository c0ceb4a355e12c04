"""IQL (Kostrikov et al., 2022): expectile value loss on the min target Q, Q regressed on r + γV(s′)
with the current V (no target V), advantage-weighted actor with weights clipped at 100 and a cosine
learning-rate decay."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from robolearn.learn import losses
from robolearn.learn.models import CriticEnsemble, GaussianTanhActor, mlp
from robolearn.learn.observation import EncoderConfig, ObservationEncoder


@dataclass
class IQLConfig:
    """IQL hyperparameters (locomotion defaults). actor_lr_decay_steps: length of the actor's cosine
    learning-rate decay (IQL decays over the whole offline run); ``None`` takes the run's step count,
    0 keeps the rate constant. encoder: how observations become features (``EncoderConfig``)."""

    algo: str = "iql"
    n_critics: int = 2
    hidden: tuple[int, ...] = (256, 256)
    batch_size: int = 256
    lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    expectile: float = 0.7
    beta: float = 3.0
    actor_lr_decay_steps: int | None = None
    encoder: EncoderConfig = field(default_factory=EncoderConfig)


class IQLAgent(nn.Module):
    def __init__(self, cfg: IQLConfig, obs_shapes: dict[str, tuple[int, ...]], action_dim: int):
        super().__init__()
        self.cfg, self.obs_shapes, self.action_dim = cfg, obs_shapes, action_dim
        self.encoder = ObservationEncoder(obs_shapes, cfg.encoder)
        f = self.encoder.out_dim
        self.actor = GaussianTanhActor(f, action_dim, cfg.hidden)
        self.critic = CriticEnsemble(f, action_dim, cfg.n_critics, cfg.hidden, layer_norm=False)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.value = mlp(f, cfg.hidden, 1)
        self.register_buffer("actor_steps", torch.zeros((), dtype=torch.int64))  # drives the lr decay; checkpointed
        self._actor_steps: int | None = None  # host copy, so the schedule needs no device sync per step
        self.register_load_state_dict_post_hook(lambda module, keys: setattr(module, "_actor_steps", None))
        self.critic_optim = torch.optim.Adam(list(self.critic.parameters()) + list(self.encoder.parameters()), lr=cfg.lr)
        self.value_optim = torch.optim.Adam(self.value.parameters(), lr=cfg.lr)
        self.actor_optim = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"critic": self.critic_optim, "value": self.value_optim, "actor": self.actor_optim}

    @torch.no_grad()
    def act(self, obs: dict[str, torch.Tensor], deterministic: bool = True) -> torch.Tensor:
        return self.actor.sample(self.encoder(obs), deterministic)[0]

    def actor_lr(self) -> float:
        """Cosine decay from ``lr`` to 0 over ``actor_lr_decay_steps`` actor steps."""
        total = self.cfg.actor_lr_decay_steps
        if not total:
            return self.cfg.lr
        if self._actor_steps is None:
            self._actor_steps = int(self.actor_steps)
        progress = min(self._actor_steps, total) / total
        return self.cfg.lr * 0.5 * (1.0 + math.cos(math.pi * progress))

    def update(self, batches: list[dict]) -> dict[str, float]:
        info: dict[str, torch.Tensor] = {}
        for batch in batches:
            info = self._step(batch)
        return losses.as_floats(info)

    def _step(self, batch: dict) -> dict[str, torch.Tensor]:
        """IQL's order: V on the target critics' min, then the actor and Q with the updated V."""
        cfg = self.cfg
        features = self.encoder(batch["obs"])
        with torch.no_grad():
            target_q = self.target_critic(features.detach(), batch["action"])  # (n, B)
        v = self.value(features.detach()).squeeze(-1)
        v_loss = losses.iql_value_loss(target_q, v, cfg.expectile)
        self.value_optim.zero_grad(set_to_none=True)
        v_loss.backward()
        self.value_optim.step()

        with torch.no_grad():
            advantage = target_q.min(0).values - self.value(features.detach()).squeeze(-1)  # Q̂ − V, updated V
            next_v = self.value(self.encoder(batch["next_obs"])).squeeze(-1)
        log_prob = self.actor.log_prob(features.detach(), batch["action"])
        a_loss = losses.iql_actor_loss(advantage, log_prob, cfg.beta)
        for group in self.actor_optim.param_groups:
            group["lr"] = self.actor_lr()
        self.actor_optim.zero_grad(set_to_none=True)
        a_loss.backward()
        self.actor_optim.step()
        self.actor_steps += 1
        if self._actor_steps is not None:
            self._actor_steps += 1

        q = self.critic(features, batch["action"])
        q_loss = losses.iql_q_loss(q, batch["reward"], batch["done"], next_v, cfg.gamma)
        self.critic_optim.zero_grad(set_to_none=True)
        q_loss.backward()
        self.critic_optim.step()
        losses.soft_update(self.target_critic, self.critic, cfg.tau)
        return {"value_loss": v_loss.detach(), "critic_loss": q_loss.detach(), "actor_loss": a_loss.detach()}
