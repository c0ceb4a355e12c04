"""Networks on features: MLPs, the Gaussian tanh actor, the batched critic ensemble. Observations
become features in ``robolearn.learn.observation``."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


ACTIVATIONS: dict[str, tuple] = {"relu": (F.relu, nn.ReLU), "tanh": (torch.tanh, nn.Tanh)}


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, layer_norm: bool = False,
        activation: str = "relu") -> nn.Sequential:
    """Linear → [LayerNorm] → activation per hidden width, then a Linear to ``out_dim``."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers.append(nn.Linear(in_dim, width))
        if layer_norm:
            layers.append(nn.LayerNorm(width))
        layers.append(ACTIVATIONS[activation][1]())
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class GaussianTanhActor(nn.Module):
    """π(a|s): MLP → mean, log-std; a = tanh(u), u ~ N(mean, std). Log-probs include the tanh
    Jacobian. ``action_dim`` may be a chunk (h·|A|)."""

    def __init__(self, in_dim: int, action_dim: int, hidden: tuple[int, ...] = (256, 256), layer_norm: bool = False,
                 activation: str = "relu"):
        super().__init__()
        self.trunk = mlp(in_dim, hidden, hidden[-1], layer_norm, activation)[:-1]  # hidden layers with activations
        self.head = nn.Linear(hidden[-1], 2 * action_dim)
        self.action_dim = action_dim

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, log_std)``, each ``(B, A)`` float32 (the head runs outside autocast)."""
        hidden = self.trunk(features)
        with torch.autocast(hidden.device.type, enabled=False):
            mean, log_std = self.head(hidden.float()).chunk(2, dim=-1)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1.0)
        return mean, log_std

    def sample(self, features: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(action (B, A) in (-1, 1), log_prob (B,))``."""
        mean, log_std = self(features)
        u = mean if deterministic else mean + log_std.exp() * torch.randn_like(mean)
        action = torch.tanh(u)
        log_prob = gaussian_log_prob(u, mean, log_std) - tanh_log_det(u)
        return action, log_prob

    def bc_loss(self, features: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Behaviour cloning of dataset actions ``(B, A)``: squared error of the deterministic action
        ``tanh(mean)``, plus the negative log-likelihood of the actions around that (detached) mean
        with the log-std read from detached hidden features, so the likelihood fits only the spread
        (the log-std outputs of the head) and never pulls the features the mean needs. Measured on 10
        camera demonstrations: letting it through the features raised the mean's error by 35%
        (0.035 vs 0.026), and maximizing the likelihood alone fits actions near ±1 (every gripper
        command) poorly, where ``atanh`` is steep."""
        hidden = self.trunk(features)
        with torch.autocast(hidden.device.type, enabled=False):
            mean = self.head(hidden.float()).chunk(2, dim=-1)[0]
            log_std = self.head(hidden.detach().float()).chunk(2, dim=-1)[1]
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1.0)
        mse = (torch.tanh(mean) - action).pow(2).sum(-1)
        u = torch.atanh(action.clamp(-1.0 + 1e-3, 1.0 - 1e-3))
        nll = -gaussian_log_prob(u, mean.detach(), log_std)
        return (mse + nll).mean()

    def log_prob(self, features: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Log-density of dataset actions (clipped inside (-1, 1))."""
        mean, log_std = self(features)
        action = action.clamp(-1.0 + 1e-5, 1.0 - 1e-5)
        u = torch.atanh(action)
        return gaussian_log_prob(u, mean, log_std) - tanh_log_det(u)


def gaussian_log_prob(u: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    z = (u - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def tanh_log_det(u: torch.Tensor) -> torch.Tensor:
    """log |d tanh(u)/du| summed over the action dims, numerically stable."""
    return (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)


class EnsembleLinear(nn.Module):
    """``n`` independent linear layers applied as one batched matmul: ``(n, B, in) → (n, B, out)``.
    ``members`` (k indices) applies only those layers: ``(k, B, in) → (k, B, out)``."""

    def __init__(self, n: int, in_dim: int, out_dim: int):
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)  # torch.nn.Linear's default initialization, per member
        self.weight = nn.Parameter(torch.empty(n, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        if members is None:
            return torch.baddbmm(self.bias, x, self.weight)
        return torch.baddbmm(self.bias[members], x, self.weight[members])


class EnsembleLayerNorm(nn.Module):
    """LayerNorm over the last axis with a learned scale and offset per ensemble member: ``(n, B, H)``."""

    def __init__(self, n: int, width: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n, 1, width))
        self.bias = nn.Parameter(torch.zeros(n, 1, width))

    def forward(self, h: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        weight, bias = (self.weight, self.bias) if members is None else (self.weight[members], self.bias[members])
        return torch.addcmul(bias, F.layer_norm(h, h.shape[-1:]), weight)


class CriticEnsemble(nn.Module):
    """``n`` LayerNorm MLP Q-functions computed together (RLPD/SERL) as one module.

    Every layer is one batched matmul over the ensemble axis (the shared input is broadcast, not
    copied), so activations stay contiguous ``(n, B, H)`` and each LayerNorm/activation is one op.
    forward(features (B, F), action (B, A), members=None) → Q ``(n, B)`` float32 (the output layer runs
    outside autocast); ``members`` (k indices) evaluates only those critics (the RLPD target subset),
    giving ``(k, B)``.
    """

    def __init__(self, in_dim: int, action_dim: int, n: int = 10, hidden: tuple[int, ...] = (256, 256),
                 layer_norm: bool = True, activation: str = "relu"):
        super().__init__()
        self.n, self.hidden = n, hidden
        widths = (in_dim + action_dim, *hidden)
        self.layers = nn.ModuleList(EnsembleLinear(n, a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.norms = nn.ModuleList(EnsembleLayerNorm(n, w) for w in hidden) if layer_norm else None
        self.out = EnsembleLinear(n, hidden[-1], 1)
        self.act = ACTIVATIONS[activation][0]

    def forward(self, features: torch.Tensor, action: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        x = torch.cat([features, action], dim=-1)
        n = self.n if members is None else len(members)
        h = x.expand(n, *x.shape)
        for i, layer in enumerate(self.layers):
            h = layer(h, members)
            if self.norms is not None:
                h = self.norms[i](h, members)
            h = self.act(h)
        with torch.autocast(h.device.type, enabled=False):
            return self.out(h.float(), members).squeeze(-1)


class LoopCriticEnsemble(nn.Module):
    """Reference implementation: a Python loop over ``n`` separate LayerNorm MLPs (for the benchmark
    and for tests that check the batched ensemble against it)."""

    def __init__(self, in_dim: int, action_dim: int, n: int = 10, hidden: tuple[int, ...] = (256, 256)):
        super().__init__()
        self.critics = nn.ModuleList(mlp(in_dim + action_dim, hidden, 1, layer_norm=True) for _ in range(n))
        self.n = n

    def forward(self, features: torch.Tensor, action: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        x = torch.cat([features, action], dim=-1)
        chosen = range(self.n) if members is None else members.tolist()
        return torch.stack([self.critics[i](x).squeeze(-1) for i in chosen])
