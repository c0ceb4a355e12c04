"""SAC with a LayerNorm critic ensemble: RLPD (random-subset min target, ensemble-mean actor), Cal-QL
(calibrated CQL regularizer, max-target backup, min-Q actor) and WSRL (warm-up, then online-only SAC)
are configurations of it (``configs/algos/*.yaml``; equations in ALGORITHMS.md).

One ``update(batches)`` call = ``len(batches)`` critic steps (the update-to-data ratio) followed by
one actor step and one temperature step, as in RLPD.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from robolearn.learn import losses
from robolearn.learn.models import CriticEnsemble, GaussianTanhActor
from robolearn.learn.observation import EncoderConfig, ObservationEncoder


@dataclass
class SACConfig:
    """Hyperparameters; defaults are RLPD's (configs/algos/*.yaml hold each algorithm's).

    critic_subset: critics in the TD target's min (RLPD: a random 2 of 10). actor_q: ``mean`` over
    the critics (RLPD) or ``min`` (SAC, CQL, Cal-QL). utd: critic steps per actor step (and per env
    step online). target_entropy_per_dim × |A| is the temperature's entropy target. offline_fraction:
    share of each online batch drawn from the demonstrations. start_steps: env steps before the first
    update (random actions meanwhile when there is neither a pretrained agent nor demonstrations).
    cql_alpha > 0 adds the CQL regularizer, floored at the Monte-Carlo return-to-go when calql_floor.
    r_neg: the per-step reward of a sparse-reward task while it has not succeeded (Cal-QL floors a
    trajectory whose every reward is r_neg at r_neg/(1−γ), any other at its discounted return-to-go);
    None for dense rewards (always the plain discounted return-to-go).
    max_target_backup: the TD target takes the best of cql_n_actions sampled next actions. warmup_steps:
    WSRL's env steps of the frozen pretrained policy before any update. encoder: how observations
    become features (``EncoderConfig``).

    Pretraining and fine-tuning the same agent: offline (``robolearn train``), ``pretrain`` ``bc``
    trains the encoder and the actor by behaviour cloning (``GaussianTanhActor.bc_loss``), ``rl``
    runs the algorithm's own update (Cal-QL). Online, from such a
    checkpoint, ``critic_warmup_steps`` update cycles train only the critics (on the demonstrations
    and the first online data) before the actor moves, so a pretrained actor is not pulled around by
    untrained critics; ``bc_weight`` > 0 adds that many times the behaviour-cloning loss on the
    demonstration share of every batch to the actor's loss.
    """

    algo: str = "rlpd"  # rlpd | calql | wsrl | sac
    n_critics: int = 10
    critic_subset: int = 2
    hidden: tuple[int, ...] = (256, 256)
    activation: str = "relu"
    critic_layer_norm: bool = True
    actor_layer_norm: bool = False
    actor_q: str = "mean"
    batch_size: int = 256
    utd: int = 20
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    temperature_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    init_temperature: float = 1.0
    target_entropy_per_dim: float = -0.5
    backup_entropy: bool = True
    offline_fraction: float = 0.5
    start_steps: int = 5000
    cql_alpha: float = 0.0
    cql_n_actions: int = 10
    calql_floor: bool = True
    r_neg: float | None = 0.0
    max_target_backup: bool = False
    warmup_steps: int = 0
    pretrain: str = "rl"
    bc_weight: float = 0.0
    critic_warmup_steps: int = 0
    encoder: EncoderConfig = field(default_factory=EncoderConfig)

    def __post_init__(self) -> None:
        if self.actor_q not in ("mean", "min"):
            raise ValueError(f"actor_q must be 'mean' or 'min', got {self.actor_q!r}")
        if not 1 <= self.critic_subset <= self.n_critics:
            raise ValueError(f"critic_subset must be in 1..n_critics={self.n_critics}, got {self.critic_subset}")
        if self.pretrain not in ("bc", "rl"):
            raise ValueError(f"pretrain must be 'bc' (behaviour cloning of the actor) or 'rl', got {self.pretrain!r}")


class SACAgent(nn.Module):
    def __init__(self, cfg: SACConfig, obs_shapes: dict[str, tuple[int, ...]], action_dim: int):
        super().__init__()
        self.cfg, self.obs_shapes, self.action_dim = cfg, obs_shapes, action_dim
        self.encoder = ObservationEncoder(obs_shapes, cfg.encoder)
        f = self.encoder.out_dim
        self.actor = GaussianTanhActor(f, action_dim, cfg.hidden, cfg.actor_layer_norm, cfg.activation)
        self.critic = CriticEnsemble(f, action_dim, cfg.n_critics, cfg.hidden, cfg.critic_layer_norm, cfg.activation)
        self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(cfg.init_temperature)))
        self.target_entropy = cfg.target_entropy_per_dim * action_dim
        self.critic_optim = torch.optim.Adam(list(self.critic.parameters()) + list(self.encoder.parameters()),
                                             lr=cfg.critic_lr)
        self.actor_optim = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.temperature_optim = torch.optim.Adam([self.log_temperature], lr=cfg.temperature_lr)
        self.bc_optim = torch.optim.Adam(list(self.actor.parameters()) + list(self.encoder.parameters()), lr=cfg.actor_lr)
        self.register_buffer("updates", torch.zeros((), dtype=torch.int64))  # update cycles; checkpointed
        self._updates: int | None = None  # host copy, so the warm-up check needs no device sync per step
        self.register_load_state_dict_post_hook(lambda module, keys: setattr(module, "_updates", None))

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"critic": self.critic_optim, "actor": self.actor_optim, "temperature": self.temperature_optim,
                "bc": self.bc_optim}

    @torch.no_grad()
    def act(self, obs: dict[str, torch.Tensor], deterministic: bool = False) -> torch.Tensor:
        """obs: batched tensors → actions ``(B, A)`` in (−1, 1)."""
        return self.actor.sample(self.encoder(obs), deterministic)[0]

    def critic_step(self, batch: dict) -> dict[str, torch.Tensor]:
        """One gradient step of every critic (and the encoder) on the TD error (+ the Cal-QL term)."""
        cfg = self.cfg
        obs, action, reward, done = batch["obs"], batch["action"], batch["reward"], batch["done"]
        b, n_next = action.shape[0], cfg.cql_n_actions if cfg.max_target_backup else 1
        temperature = self.log_temperature.exp().detach()
        with torch.no_grad():
            next_features = self.encoder(batch["next_obs"])
            next_action, next_log_prob = self.actor.sample(next_features.repeat_interleave(n_next, 0))
            members = losses.random_subset(cfg.n_critics, cfg.critic_subset, device=action.device)
            target_features = self.target_encoder(batch["next_obs"]).repeat_interleave(n_next, 0)
            target_q = self.target_critic(target_features, next_action, members)  # (k, B·N)
            if cfg.max_target_backup:
                target_q, next_log_prob = target_q.view(-1, b, n_next), next_log_prob.view(b, n_next)
            target = losses.td_target(target_q, reward, done, cfg.gamma,
                                      next_log_prob if cfg.backup_entropy else None, temperature)
        features = self.encoder(obs)
        q = self.critic(features, action)  # (n, B)
        loss = losses.critic_loss(q, target)
        info = {"critic_loss": loss.detach(), "q_mean": q.detach().mean()}
        if cfg.cql_alpha > 0:
            cql = self._cql_term(features, next_features, q, batch.get("mc_return"))
            info["cql_loss"] = cql.detach()
            loss = loss + cql
        self.critic_optim.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_optim.step()
        losses.soft_update(self.target_critic, self.critic, cfg.tau)
        losses.soft_update(self.target_encoder, self.encoder, cfg.tau)
        return info

    def _cql_term(self, features: torch.Tensor, next_features: torch.Tensor, q_data: torch.Tensor,
                  mc_return: torch.Tensor | None) -> torch.Tensor:
        """Cal-QL regularizer over N random, N policy(s) and N policy(s′) actions, all scored at s."""
        cfg, n = self.cfg, self.cfg.cql_n_actions
        b = features.shape[0]
        rep = features.repeat_interleave(n, 0)  # (B·N, F), row b·N + j is state b
        rand = torch.empty(b * n, self.action_dim, device=features.device).uniform_(-1, 1)
        with torch.no_grad():
            a_pi, lp_pi = self.actor.sample(rep.detach())
            a_next, lp_next = self.actor.sample(next_features.repeat_interleave(n, 0))
        q_all = self.critic(rep.repeat(3, 1), torch.cat([rand, a_pi, a_next])).view(cfg.n_critics, 3, b, n)
        floor = mc_return if (cfg.calql_floor and mc_return is not None) else None
        return losses.calql_conservative_loss(q_data, q_all[:, 0], q_all[:, 1], lp_pi.view(b, n), q_all[:, 2],
                                              lp_next.view(b, n), floor, cfg.cql_alpha, self.action_dim)

    def actor_step(self, batch: dict) -> dict[str, torch.Tensor]:
        """One step of the actor on E[α log π − Q] (critics frozen; plus ``bc_weight`` × the
        behaviour-cloning loss on the batch's demonstrations), then one of the temperature."""
        features = self.encoder(batch["obs"]).detach()
        action, log_prob = self.actor.sample(features)
        self.critic.requires_grad_(False)
        q_pi = self.critic(features, action)
        self.critic.requires_grad_(True)
        loss = losses.actor_loss(q_pi, log_prob, self.log_temperature.exp().detach(), self.cfg.actor_q)
        info = {}
        if self.cfg.bc_weight > 0 and "demo" in batch and bool(batch["demo"].any()):
            demo = batch["demo"] > 0
            bc = self.actor.bc_loss(features[demo], batch["action"][demo])
            loss = loss + self.cfg.bc_weight * bc
            info["bc_loss"] = bc.detach()
        self.actor_optim.zero_grad(set_to_none=True)
        loss.backward()
        self.actor_optim.step()
        t_loss = losses.temperature_loss(self.log_temperature, log_prob, self.target_entropy)
        self.temperature_optim.zero_grad(set_to_none=True)
        t_loss.backward()
        self.temperature_optim.step()
        return {"actor_loss": loss.detach(), "temperature": self.log_temperature.detach().exp(),
                "entropy": -log_prob.detach().mean(), **info}

    def bc_step(self, batch: dict) -> dict[str, torch.Tensor]:
        """Behaviour cloning: one step of the encoder and the actor on the batch's actions (``bc_loss``)."""
        loss = self.actor.bc_loss(self.encoder(batch["obs"]), batch["action"])
        self.bc_optim.zero_grad(set_to_none=True)
        loss.backward()
        self.bc_optim.step()
        return {"bc_loss": loss.detach()}

    def update(self, batches: list[dict]) -> dict[str, float]:
        """``len(batches)`` critic steps, then one actor and temperature step on the last batch (the
        first ``critic_warmup_steps`` update cycles train the critics only)."""
        info: dict[str, torch.Tensor] = {}
        for batch in batches:
            info = self.critic_step(batch)
        if self._updates is None:
            self._updates = int(self.updates)
        if self._updates >= self.cfg.critic_warmup_steps:
            info.update(self.actor_step(batches[-1]))
        self.updates += 1
        self._updates += 1
        return losses.as_floats(info)

    def offline_update(self, batches: list[dict]) -> dict[str, float]:
        """One offline step of ``robolearn train``: behaviour cloning (``pretrain: bc``) or ``update``."""
        if self.cfg.pretrain == "rl":
            return self.update(batches)
        info: dict[str, torch.Tensor] = {}
        for batch in batches:
            info = self.bc_step(batch)
        return losses.as_floats(info)
