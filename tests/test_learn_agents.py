"""Agent-level checks: the RLPD target, actor objective and Cal-QL floor are wired as the equations say."""

import math

import numpy as np
import pytest
import torch

from robolearn.learn import losses
from robolearn.learn.iql import IQLAgent, IQLConfig
from robolearn.learn.sac import SACAgent, SACConfig

SHAPES = {"state": (3,)}


def batch(b=8, seed=0, **extra):
    g = torch.Generator().manual_seed(seed)
    out = {"obs": {"state": torch.randn(b, 3, generator=g)}, "next_obs": {"state": torch.randn(b, 3, generator=g)},
           "action": torch.rand(b, 2, generator=g) * 2 - 1, "reward": torch.rand(b, generator=g),
           "done": torch.zeros(b), "mc_return": torch.zeros(b)}
    out.update(extra)
    return out


def constant_target_critics(agent):
    """Target critic i outputs the constant i (zero output weights, bias i)."""
    with torch.no_grad():
        agent.target_critic.out.weight.zero_()
        agent.target_critic.out.bias.copy_(torch.arange(agent.cfg.n_critics, dtype=torch.float32).view(-1, 1, 1))


def test_rlpd_critic_regresses_on_min_over_the_random_subset(monkeypatch):
    torch.manual_seed(0)
    agent = SACAgent(SACConfig(n_critics=10, critic_subset=2, hidden=(16, 16), gamma=0.5, backup_entropy=False), SHAPES, 2)
    constant_target_critics(agent)
    chosen = []
    real = losses.random_subset

    def recording(n, k, generator=None, device="cpu"):
        chosen.append(real(n, k, generator, device))
        return chosen[-1]

    monkeypatch.setattr(losses, "random_subset", recording)
    b = batch()
    q_before = agent.critic(agent.encoder(b["obs"]), b["action"]).detach()
    info = agent.critic_step(b)
    members = chosen[0].tolist()
    assert len(members) == 2 and len(set(members)) == 2
    target = b["reward"] + 0.5 * min(members)
    expected = ((q_before - target) ** 2).mean(-1).sum()
    assert info["critic_loss"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_rlpd_actor_loss_is_alpha_log_pi_minus_ensemble_mean():
    torch.manual_seed(0)
    agent = SACAgent(SACConfig(n_critics=5, hidden=(16, 16), init_temperature=0.1), SHAPES, 2)
    b = batch()
    features = agent.encoder(b["obs"])
    torch.manual_seed(1)
    action, log_prob = agent.actor.sample(features)
    expected = (0.1 * log_prob - agent.critic(features, action).mean(0)).mean()
    torch.manual_seed(1)
    info = agent.actor_step(b)
    assert info["actor_loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert agent.target_entropy == -0.5 * 2  # −|A|/2


def test_calql_regularizer_is_floored_at_the_batch_mc_return():
    torch.manual_seed(0)
    cfg = SACConfig(algo="calql", n_critics=2, hidden=(16, 16), cql_alpha=5.0, cql_n_actions=10, actor_q="min")
    agent = SACAgent(cfg, SHAPES, 2)
    samples = []
    sample = agent.actor.sample
    agent.actor.sample = lambda features, deterministic=False: samples.append(sample(features, deterministic)) or samples[-1]
    floor = 1000.0
    b = batch(mc_return=torch.full((8,), floor))
    q_data = agent.critic(agent.encoder(b["obs"]), b["action"]).detach()
    info = agent.critic_step(b)
    # calls: next action for the TD target, then N policy(s) and N policy(s′) actions per state
    lp_pi, lp_next = samples[1][1].view(8, 10), samples[2][1].view(8, 10)
    # every policy-action Q is raised to 1000 ≫ the random-action terms, which vanish from the logsumexp
    lse = torch.logsumexp(torch.cat([floor - lp_pi, floor - lp_next], -1), -1)
    expected = 5.0 * (lse - q_data).mean(-1).sum()
    assert info["cql_loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    unfloored = SACAgent(SACConfig(**{**cfg.__dict__, "calql_floor": False}), SHAPES, 2)
    assert unfloored.critic_step(b)["cql_loss"].item() < 1000.0


def test_calql_max_target_backup_uses_the_best_of_n_next_actions():
    torch.manual_seed(0)
    cfg = SACConfig(algo="calql", n_critics=2, hidden=(16, 16), gamma=0.5, backup_entropy=False,
                    max_target_backup=True, cql_n_actions=4)
    agent = SACAgent(cfg, SHAPES, 2)
    with torch.no_grad():  # target Q = first action coordinate, same for both critics
        agent.target_critic.layers[0].weight.zero_()
        agent.target_critic.out.weight.zero_()
    b = batch(b=4)
    seen = []
    original = agent.target_critic.forward

    def spy(features, action, members=None):
        seen.append(action.clone())
        return original(features, action, members) + action[:, 0]

    agent.target_critic.forward = spy
    q_before = agent.critic(agent.encoder(b["obs"]), b["action"]).detach()
    info = agent.critic_step(b)
    bias = agent.target_critic.out.bias.detach().view(2, 1, 1)
    per_action = (seen[0][:, 0].view(1, 4, 4) + bias).min(0).values  # (B, N)
    target = b["reward"] + 0.5 * per_action.max(-1).values
    assert seen[0].shape == (16, 2)
    assert info["critic_loss"].item() == pytest.approx(((q_before - target) ** 2).mean(-1).sum().item(), rel=1e-4)


def test_iql_actor_lr_follows_a_cosine_over_the_run():
    agent = IQLAgent(IQLConfig(hidden=(8,), batch_size=4, actor_lr_decay_steps=4, lr=1e-3), SHAPES, 2)
    lrs = []
    for step in range(5):
        agent.update([batch(b=4, seed=step)])
        lrs.append(agent.actor_optim.param_groups[0]["lr"])
    assert lrs == pytest.approx([1e-3 * 0.5 * (1 + math.cos(math.pi * t / 4)) for t in range(4)] + [0.0])
    assert int(agent.state_dict()["actor_steps"]) == 5  # checkpointed with the weights


def test_update_returns_floats_from_one_sync():
    agent = SACAgent(SACConfig(n_critics=2, hidden=(8,), cql_alpha=1.0), SHAPES, 2)
    info = agent.update([batch(), batch(seed=1)])
    assert set(info) == {"critic_loss", "q_mean", "cql_loss", "actor_loss", "temperature", "entropy"}
    assert all(isinstance(v, float) and np.isfinite(v) for v in info.values())
