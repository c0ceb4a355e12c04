"""Success-rate intervals and SIMPLER's sim-vs-real metrics on hand-computed tables."""

from __future__ import annotations

import math

import pytest

from robolearn.evaluate.stats import mmrv, pearson_r, wilson_interval


def test_wilson_interval_matches_the_published_formula():
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    assert wilson_interval(10, 10) == (pytest.approx(0.7225, abs=1e-4), 1.0)
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)
    with pytest.raises(ValueError, match="episodes"):
        wilson_interval(0, 0)


def test_pearson_r_hand_computed():
    # centred sim [-0.4, 0, 0.4], real [-0.3, -0.1, 0.4]: r = 0.28 / sqrt(0.32 * 0.26)
    assert pearson_r([0.1, 0.5, 0.9], [0.2, 0.4, 0.9]) == pytest.approx(0.28 / math.sqrt(0.32 * 0.26))
    assert pearson_r([0.1, 0.5, 0.9], [0.9, 0.5, 0.1]) == pytest.approx(-1.0)
    assert pearson_r([0.5, 0.5], [0.1, 0.9]) is None


def test_mmrv_takes_magnitudes_from_real_success_rates():
    sim = [0.5, 0.6, 0.1, 0.9]
    real = [0.7, 0.3, 0.2, 0.95]
    # Only policies 0 and 1 are ordered differently (sim 0 < 1, real 0 > 1); real gap 0.4, sim gap 0.1.
    # MMRV = (0.4 + 0.4 + 0 + 0) / 4 with real magnitudes; swapping the sides would give 0.05.
    assert mmrv(sim=sim, real=real) == pytest.approx(0.2)
    assert mmrv(sim=real, real=sim) == pytest.approx(0.05)


def test_mmrv_reversed_ranking_and_ties():
    # Fully reversed: violations (0,1): |0.2-0.6|, (0,2): |0.2-0.8|, (1,2): |0.6-0.8| → max per policy 0.6, 0.4, 0.6.
    assert mmrv(sim=[0.9, 0.5, 0.1], real=[0.2, 0.6, 0.8]) == pytest.approx(1.6 / 3)
    assert mmrv(sim=[0.1, 0.5, 0.9], real=[0.2, 0.6, 0.8]) == 0.0
    # SIMPLER's strict comparison: a sim tie where real has an order violates for the higher real policy only.
    assert mmrv(sim=[0.5, 0.5], real=[0.2, 0.6]) == pytest.approx(0.2)


def test_mmrv_is_keyword_only_and_checks_pairing():
    with pytest.raises(TypeError):
        mmrv([0.1, 0.2], [0.2, 0.1])  # type: ignore[misc]
    with pytest.raises(ValueError, match="paired"):
        mmrv(sim=[0.1, 0.2], real=[0.2])
