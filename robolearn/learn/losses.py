"""Loss terms of BC, IQL, Cal-QL, RLPD/SAC and WSRL as pure functions (equations in
ALGORITHMS.md). Shapes: ``n`` critics, ``B`` batch, ``N`` sampled actions per state."""

from __future__ import annotations

import math

import numpy as np
import torch

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
def random_subset(n: int, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices of ``k`` distinct critics out of ``n`` (RLPD target subset)."""
    return torch.randperm(n, generator=generator)[:k]


def td_target(target_q_subset: torch.Tensor, reward: torch.Tensor, done: torch.Tensor, gamma: float,
              next_log_prob: torch.Tensor | None = None, temperature: float = 0.0) -> torch.Tensor:
    """r + γ(1−d)(min_subset Q′(s′,a′) − α log π(a′|s′)); ``target_q_subset (k, B)``."""
    next_v = target_q_subset.min(0).values
    if next_log_prob is not None:
        next_v = next_v - temperature * next_log_prob
    return reward + gamma * (1.0 - done) * next_v


def critic_loss(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum over critics of the batch-mean squared TD error; ``q (n, B)``, ``target (B,)``."""
    return (q - target.detach()).pow(2).mean(-1).sum()


def ensemble_mean_actor_loss(q_pi: torch.Tensor, log_prob: torch.Tensor, temperature: torch.Tensor | float) -> torch.Tensor:
    """E[α log π − mean_i Q_i(s, a~π)]; ``q_pi (n, B)``."""
    return (temperature * log_prob - q_pi.mean(0)).mean()


def temperature_loss(log_temperature: torch.Tensor, log_prob: torch.Tensor, target_entropy: float) -> torch.Tensor:
    return -(log_temperature.exp() * (log_prob.detach() + target_entropy)).mean()


# ----- Cal-QL --------------------------------------------------------------------------------------
def mc_return_to_go(rewards: np.ndarray, gamma: float, success: bool, r_neg: float | None = None) -> np.ndarray:
    """Discounted Monte-Carlo return-to-go of one trajectory ``(T,)``.

    A sparse-reward trajectory that never succeeds gets r_neg/(1−γ) at every step (Cal-QL: the value of
    staying in failure forever) when ``r_neg`` is given.
    """
    rewards = np.asarray(rewards, np.float64)
    if not success and r_neg is not None:
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
    floors the two policy-action terms (Cal-QL), not the random-action term; ``None`` gives plain CQL.
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
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters()):
            t.lerp_(s, tau)
