"""Each loss pinned to values computed by hand."""

import math

import numpy as np
import pytest
import torch

from robolearn.learn import losses


def test_expectile_loss_weights_negative_errors_by_one_minus_tau():
    diff = torch.tensor([2.0, -1.0])
    # (0.7·4 + 0.3·1) / 2
    assert losses.expectile_loss(diff, 0.7).item() == pytest.approx(1.55)


def test_iql_value_loss_uses_min_of_target_critics():
    target_q = torch.tensor([[3.0, 0.0], [1.0, 2.0]])  # min → [1, 0]
    v = torch.tensor([0.0, 1.0])  # u = [1, -1]
    assert losses.iql_value_loss(target_q, v, 0.9).item() == pytest.approx((0.9 * 1 + 0.1 * 1) / 2)


def test_iql_q_loss_regresses_on_current_v():
    q = torch.tensor([[1.0], [2.0]])
    loss = losses.iql_q_loss(q, torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([2.0]), gamma=0.5)
    # target 1 + 0.5·2 = 2 → (1−2)² + (2−2)²
    assert loss.item() == pytest.approx(1.0)


def test_iql_advantage_weights_clip_at_100():
    w = losses.iql_actor_weights(torch.tensor([0.0, 1.0, 10.0]), beta=3.0)
    assert w.tolist() == pytest.approx([1.0, math.exp(3.0), 100.0])
    loss = losses.iql_actor_loss(torch.tensor([0.0, 10.0]), torch.tensor([-1.0, -2.0]), beta=3.0)
    assert loss.item() == pytest.approx(-(1.0 * -1.0 + 100.0 * -2.0) / 2)


def test_mc_return_to_go_sparse_success_is_the_discounted_return():
    # sparse task, r_neg = 0, success reward 1 on the last step
    rtg = losses.mc_return_to_go(np.array([0.0, 0.0, 1.0]), gamma=0.9, r_neg=0.0)
    assert rtg.tolist() == pytest.approx([0.81, 0.9, 1.0])
    # sparse task with r_neg = −1 until success (reward 0 there): −1 − 0.9·1 = −1.9, −1 + 0.9·0 = −1, 0
    rtg = losses.mc_return_to_go(np.array([-1.0, -1.0, 0.0]), gamma=0.9, r_neg=-1.0)
    assert rtg.tolist() == pytest.approx([-1.9, -1.0, 0.0])


def test_mc_return_to_go_failed_sparse_trajectory_is_r_neg_over_one_minus_gamma():
    # every reward is r_neg: the value of failing forever, −1 / (1 − 0.99) = −100 at every step
    rtg = losses.mc_return_to_go(np.array([-1.0, -1.0]), gamma=0.99, r_neg=-1.0)
    assert rtg.tolist() == pytest.approx([-100.0, -100.0])
    assert losses.mc_return_to_go(np.array([-1.0, -1.0]), gamma=0.99).tolist() == pytest.approx([-1.99, -1.0])


def test_mc_return_to_go_dense_negative_rewards_are_never_r_neg_over_one_minus_gamma():
    # a dense-reward trajectory that did not succeed keeps its own discounted return-to-go:
    # −0.2 + 0.5·(−0.5 + 0.5·(−1)) = −0.7, −0.5 + 0.5·(−1) = −1, −1
    rewards = np.array([-0.2, -0.5, -1.0])
    assert losses.mc_return_to_go(rewards, gamma=0.5, r_neg=None).tolist() == pytest.approx([-0.7, -1.0, -1.0])
    # with r_neg set, only a trajectory of r_neg at every step gets r_neg / (1 − γ)
    assert losses.mc_return_to_go(rewards, gamma=0.5, r_neg=-1.0).tolist() == pytest.approx([-0.7, -1.0, -1.0])


def test_non_finite_loss_raises_naming_the_loss():
    with pytest.raises(losses.NonFiniteLossError, match="critic_loss is nan.*learning rate"):
        losses.as_floats({"actor_loss": torch.tensor(1.0), "critic_loss": torch.tensor(float("nan"))})
    assert losses.as_floats({"q": torch.tensor(2.0)}) == {"q": 2.0}


def test_calql_floor_raises_policy_q_to_mc_return_but_not_random_term():
    n_actions, a_dim = 1, 1
    q_data = torch.tensor([[0.0]])
    q_rand = torch.tensor([[[-5.0]]])
    q_pi = torch.tensor([[[-3.0]]])
    q_next = torch.tensor([[[-4.0]]])
    zero = torch.zeros(1, n_actions)
    mc = torch.tensor([2.0])
    floored = losses.calql_conservative_loss(q_data, q_rand, q_pi, zero, q_next, zero, mc, 1.0, a_dim)
    rand_term = -5.0 - a_dim * math.log(0.5)
    expected = math.log(math.exp(rand_term) + 2 * math.exp(2.0)) - 0.0
    assert floored.item() == pytest.approx(expected, rel=1e-6)
    plain = losses.calql_conservative_loss(q_data, q_rand, q_pi, zero, q_next, zero, None, 1.0, a_dim)
    assert plain.item() == pytest.approx(math.log(math.exp(rand_term) + math.exp(-3.0) + math.exp(-4.0)), rel=1e-6)


def test_calql_scales_by_alpha_and_subtracts_policy_log_prob():
    q = torch.zeros(1, 1, 1)
    lp = torch.tensor([[1.0]])
    loss = losses.calql_conservative_loss(torch.tensor([[1.0]]), q - 100, q, lp, q, lp, None, 5.0, 1)
    assert loss.item() == pytest.approx(5.0 * (math.log(2 * math.exp(-1.0) + math.exp(-100 + math.log(2))) - 1.0), rel=1e-5)


def test_random_subset_min_target():
    gen = torch.Generator().manual_seed(0)
    members = losses.random_subset(10, 2, gen)
    assert len(set(members.tolist())) == 2
    q_all = torch.arange(10.0).view(10, 1).expand(10, 2) + torch.tensor([0.0, 100.0])
    target = losses.td_target(q_all[members], torch.tensor([1.0, 1.0]), torch.tensor([0.0, 1.0]), 0.5)
    lo = float(min(members.tolist()))
    assert target.tolist() == pytest.approx([1.0 + 0.5 * lo, 1.0])
    with_entropy = losses.td_target(torch.tensor([[4.0], [2.0]]), torch.tensor([0.0]), torch.tensor([0.0]), 0.5,
                                    torch.tensor([1.0]), temperature=0.2)
    assert with_entropy.item() == pytest.approx(0.5 * (2.0 - 0.2))


def test_random_subset_covers_all_critics():
    gen = torch.Generator().manual_seed(1)
    seen = set()
    for _ in range(200):
        seen.update(losses.random_subset(10, 2, gen).tolist())
    assert seen == set(range(10))


def test_actor_maximizes_ensemble_mean():
    q_pi = torch.tensor([[1.0, 3.0], [3.0, 5.0], [-1.0, 4.0]])  # means [1, 4]
    loss = losses.actor_loss(q_pi, torch.tensor([0.5, -0.5]), 0.1)
    assert loss.item() == pytest.approx(((0.05 - 1.0) + (-0.05 - 4.0)) / 2)


def test_calql_actor_maximizes_min_over_critics():
    q_pi = torch.tensor([[1.0, 3.0], [3.0, 5.0], [-1.0, 4.0]])  # mins [-1, 3]
    loss = losses.actor_loss(q_pi, torch.tensor([0.5, -0.5]), 0.1, reduce="min")
    assert loss.item() == pytest.approx(((0.05 + 1.0) + (-0.05 - 3.0)) / 2)


def test_max_target_backup_takes_best_sampled_action_after_min_over_critics():
    # 2 critics, 1 state, 3 sampled next actions: min over critics → [1, 4, 2]; best action 1
    target_q = torch.tensor([[[1.0, 4.0, 5.0]], [[3.0, 6.0, 2.0]]])
    log_prob = torch.tensor([[0.0, 2.0, -1.0]])
    target = losses.td_target(target_q, torch.tensor([1.0]), torch.tensor([0.0]), 0.5, log_prob, temperature=0.25)
    assert target.item() == pytest.approx(1.0 + 0.5 * (4.0 - 0.25 * 2.0))
    terminal = losses.td_target(target_q, torch.tensor([1.0]), torch.tensor([1.0]), 0.5)
    assert terminal.item() == pytest.approx(1.0)


def test_critic_loss_sums_over_critics():
    q = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    assert losses.critic_loss(q, torch.tensor([0.0, 0.0])).item() == pytest.approx(2.5)


def test_temperature_loss_gradient_sign():
    log_t = torch.tensor(0.0, requires_grad=True)
    losses.temperature_loss(log_t, torch.tensor([1.0]), target_entropy=-3.0).backward()
    # log π + H̄ = 1 − 3 = −2, loss = 2·e^{log α}: gradient 2, so descent lowers α
    assert log_t.grad.item() == pytest.approx(2.0)


def test_wsrl_warmup_boundary():
    assert losses.wsrl_in_warmup(4999, 5000)
    assert not losses.wsrl_in_warmup(5000, 5000)
    assert not losses.wsrl_in_warmup(0, 0)


def test_bc_chunk_loss_masks_padding():
    pred = torch.zeros(1, 2, 1)
    target = torch.tensor([[[1.0], [3.0]]])
    assert losses.bc_chunk_loss(pred, target, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(1.0)
