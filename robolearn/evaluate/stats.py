"""Statistics for evaluations: success-rate intervals and SIMPLER's sim-vs-real metrics.

SIMPLER (Li et al., 2024, "Evaluating Real-World Robot Manipulation Policies in Simulation") asks
whether the twin *ranks* policies like the real cell does: Pearson r between sim and real success
rates over policies, and the mean maximum rank violation (MMRV), whose magnitudes are real success
gaps. Both follow ``simpler_env/utils/metrics.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from robolearn.errors import DataError

Z_95 = 1.959963984540054


def wilson_interval(successes: int, episodes: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial success rate (95% for the default ``z``).

    Unlike the normal approximation it stays inside [0, 1] and is not degenerate at 0/N or N/N.
    """
    if episodes <= 0:
        raise ValueError(f"episodes must be positive, got {episodes}")
    if not 0 <= successes <= episodes:
        raise ValueError(f"successes must be in [0, {episodes}], got {successes}")
    p = successes / episodes
    denominator = 1.0 + z * z / episodes
    centre = (p + z * z / (2 * episodes)) / denominator
    half = z * math.sqrt(p * (1 - p) / episodes + z * z / (4 * episodes * episodes)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == episodes else min(1.0, centre + half)
    return low, high


def _paired(sim: Sequence[float], real: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    sim_a, real_a = np.asarray(sim, dtype=np.float64), np.asarray(real, dtype=np.float64)
    if sim_a.ndim != 1 or sim_a.shape != real_a.shape:
        raise DataError(f"sim and real must be 1-D and paired, got shapes {sim_a.shape} and {real_a.shape}")
    if len(sim_a) < 2:
        raise DataError(f"comparing rankings needs at least 2 policies, got {len(sim_a)}")
    return sim_a, real_a


def pearson_r(sim: Sequence[float], real: Sequence[float]) -> float | None:
    """Pearson correlation of paired sim and real success rates over policies; None when either
    side is constant (the correlation is undefined)."""
    sim_a, real_a = _paired(sim, real)
    sim_c, real_c = sim_a - sim_a.mean(), real_a - real_a.mean()
    norm = math.sqrt(float(np.sum(sim_c**2)) * float(np.sum(real_c**2)))
    if norm == 0.0:
        return None
    return float(np.sum(sim_c * real_c) / norm)


def mmrv(*, sim: Sequence[float], real: Sequence[float]) -> float:
    """Mean maximum rank violation (SIMPLER), keyword-only so the two sides cannot be swapped.

    For each policy i: the largest ``|real[i] - real[j]|`` over the policies j that sim orders
    differently from real (``(sim[i] > sim[j]) != (real[i] > real[j])``, strict, so a tie on one side
    and an order on the other counts); 0 when none. Averaged over policies. In [0, 1]; 0 means sim
    ranks every pair as real does.
    """
    sim_a, real_a = _paired(sim, real)
    violates = (sim_a[:, None] > sim_a[None, :]) != (real_a[:, None] > real_a[None, :])
    gaps = np.abs(real_a[:, None] - real_a[None, :])
    return float(np.mean(np.max(np.where(violates, gaps, 0.0), axis=1)))
