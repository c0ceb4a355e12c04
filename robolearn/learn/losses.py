"""Loss terms of BC, IQL, Cal-QL, RLPD/SAC and WSRL as pure functions (equations in
ALGORITHMS.md). Shapes: ``n`` critics, ``B`` batch, ``N`` sampled actions per state."""

from __future__ import annotations

import math

import numpy as np
import torch

from robolearn.errors import RobolearnError

IQL_MAX_WEIGHT = 100.0


# ----- BC ------------------------------------------------------------------------------------------
def bc_chunk_loss(pred_chunk: torch.Tensor, target_chunk: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MSE over an action chunk; pred/target ``(B, h, A)``, mask ``(B, h)`` (0 past the episode end)."""
    per_step = (pred_chunk - target_chunk).pow(2).mean(-1)
    return (per_step * mask).sum() / mask.sum().clamp(min=1.0)


# ----- IQL -----------------------------------------------------------------------------------------
def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """L = E[|τ − 1(u<0)| u²] with u = Q̂ − V."""
    weight = torch.where(diff < 0, 1.0 - expectile, expectile)
    return (weight * diff.pow(2)).mean()


def iql_value_loss(target_q: torch.Tensor, v: torch.Tensor, expectile: float) -> torch.Tensor:
    """target_q ``(n, B)`` target critics (min taken here), v ``(B,)``."""
    return expectile_loss(target_q.min(0).values - v, expectile)


def iql_q_loss(q: torch.Tensor, reward: torch.Tensor, done: torch.Tensor, next_v: torch.Tensor,
               gamma: float) -> torch.Tensor:
    """(r + γ(1−d)V(s′) − Q(s,a))² averaged over the batch, summed over critics ``q (n, B)``."""
    target = (reward + gamma * (1.0 - done) * next_v).detach()
    return (q - target).pow(2).mean(-1).sum()


def iql_actor_weights(advantage: torch.Tensor, beta: float) -> torch.Tensor:
    """min(exp(β·A), 100)."""
    return torch.exp(beta * advantage).clamp(max=IQL_MAX_WEIGHT)


def iql_actor_loss(advantage: torch.Tensor, log_prob: torch.Tensor, beta: float) -> torch.Tensor:
    return -(iql_actor_weights(advantage.detach(), beta) * log_prob).mean()


# ----- SAC / RLPD ----------------------------------------------------------------------------------
def random_subset(n: int, k: int, generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """Indices of ``k`` distinct critics out of ``n`` (RLPD target subset), on ``device``."""
    return torch.randperm(n, generator=generator).to(device)[:k]


def td_target(target_q: torch.Tensor, reward: torch.Tensor, done: torch.Tensor, gamma: float,
              next_log_prob: torch.Tensor | None = None, temperature: torch.Tensor | float = 0.0) -> torch.Tensor:
    """r + γ(1−d)(min_i Q′_i(s′,a′) − α log π(a′|s′)) ``(B,)``.

    target_q ``(k, B)``: the target critics (RLPD: a random subset) at one next action a′ per state.
    target_q ``(k, B, N)`` with next_log_prob ``(B, N)``: N sampled next actions, and the backup takes the
    one whose min-over-critics value is largest (CQL/Cal-QL max-target backup), with its log-prob.
    The entropy term is left out when ``next_log_prob`` is None.
    """
    next_v = target_q.min(0).values
    if next_v.dim() == 2:
        next_v, best = next_v.max(-1)
        if next_log_prob is not None:
            next_log_prob = next_log_prob.gather(-1, best.unsqueeze(-1)).squeeze(-1)
    if next_log_prob is not None:
        next_v = next_v - temperature * next_log_prob
    return reward + gamma * (1.0 - done) * next_v


def critic_loss(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum over critics of the batch-mean squared TD error; ``q (n, B)``, ``target (B,)``."""
    return (q - target.detach()).pow(2).mean(-1).sum()


def actor_loss(q_pi: torch.Tensor, log_prob: torch.Tensor, temperature: torch.Tensor | float,
               reduce: str = "mean") -> torch.Tensor:
    """E[α log π(a|s) − Q(s, a)], a ~ π(s), with Q the mean over all critics ``q_pi (n, B)`` (RLPD) or
    their min (``reduce="min"``: SAC/CQL/Cal-QL)."""
    q = q_pi.mean(0) if reduce == "mean" else q_pi.min(0).values
    return (temperature * log_prob - q).mean()


def temperature_loss(log_temperature: torch.Tensor, log_prob: torch.Tensor, target_entropy: float) -> torch.Tensor:
    return -(log_temperature.exp() * (log_prob.detach() + target_entropy)).mean()


# ----- Cal-QL --------------------------------------------------------------------------------------
def mc_return_to_go(rewards: np.ndarray, gamma: float, r_neg: float | None = None) -> np.ndarray:
    """Discounted Monte-Carlo return-to-go of one trajectory ``(T,)``, Cal-QL's floor V^μ.

    As in the official Cal-QL code: a sparse-reward task (``r_neg`` given) whose trajectory earned
    ``r_neg`` at every step never succeeded, and gets r_neg/(1−γ) at every step (the value of staying in
    failure forever); any other trajectory gets the plain discounted return-to-go.
    """
    rewards = np.asarray(rewards, np.float64)
    if r_neg is not None and len(rewards) and np.all(rewards == r_neg):
        return np.full(rewards.shape, r_neg / (1.0 - gamma), np.float32)
    out = np.zeros_like(rewards)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        out[t] = running
    return out.astype(np.float32)


def calql_conservative_loss(q_data: torch.Tensor, q_rand: torch.Tensor, q_pi: torch.Tensor,
                            log_prob_pi: torch.Tensor, q_next_pi: torch.Tensor, log_prob_next_pi: torch.Tensor,
                            mc_return: torch.Tensor | None, alpha: float, action_dim: int) -> torch.Tensor:
    """α·(E[logsumexp over importance-sampled actions] − E[Q(s,a_data)]) summed over critics.

    q_data ``(n, B)``; q_rand, q_pi, q_next_pi ``(n, B, N)``; log probs ``(B, N)``; mc_return ``(B,)``
    floors the two policy-action terms (Cal-QL), not the random-action term; ``None`` gives plain CQL,
    and a −inf entry leaves that transition unfloored (its return-to-go is not known yet).
    """
    if mc_return is not None:
        floor = mc_return.view(1, -1, 1)
        q_pi, q_next_pi = torch.maximum(q_pi, floor), torch.maximum(q_next_pi, floor)
    log_uniform_density = action_dim * math.log(0.5)
    cat_q = torch.cat([q_rand - log_uniform_density, q_pi - log_prob_pi.detach(),
                       q_next_pi - log_prob_next_pi.detach()], dim=-1)
    gap = torch.logsumexp(cat_q, dim=-1) - q_data  # (n, B)
    return alpha * gap.mean(-1).sum()


# ----- WSRL ----------------------------------------------------------------------------------------
def wsrl_in_warmup(env_step: int, warmup_steps: int) -> bool:
    """WSRL: the first ``warmup_steps`` env steps run the frozen pretrained policy with no updates."""
    return env_step < warmup_steps


def soft_update(target: torch.nn.Module, source: torch.nn.Module, tau: float) -> None:
    """Polyak averaging θ′ ← (1−τ)θ′ + τθ, one fused op over all parameters."""
    targets = list(target.parameters())
    if targets:
        with torch.no_grad():
            torch._foreach_lerp_(targets, list(source.parameters()), tau)


class NonFiniteLossError(RobolearnError, FloatingPointError):
    """An update produced a NaN or infinite loss: the run diverged."""


def as_floats(info: dict[str, torch.Tensor]) -> dict[str, float]:
    """Scalars to floats with a single device sync (one ``tolist`` instead of one ``item`` each);
    raises ``NonFiniteLossError`` naming the first NaN or infinite value."""
    if not info:
        return {}
    values = dict(zip(info, torch.stack([v.detach().float() for v in info.values()]).tolist()))
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if bad:
        raise NonFiniteLossError(
            f"{bad[0]} is {values[bad[0]]} after this update ({', '.join(f'{k}={values[k]}' for k in bad)}): training "
            "diverged. Lower the learning rates (--set critic_lr=... actor_lr=..., or lr=... for BC/IQL) and check the "
            "rewards and observations for huge or non-finite values (robolearn data stats)")
    return values
