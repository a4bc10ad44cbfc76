"""Dirichlet-multinomial and bootstrap baselines."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import dirichlet_multinomial

from biofluxopt._util import ConfigError, DataError
from biofluxopt.synth import BootstrapSampler, DirichletMultinomial


def _dm_counts(alpha, n, depth, seed):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(alpha, size=n)
    return np.stack([rng.multinomial(depth, pi) for pi in p]).astype(float)


def test_dm_mle_recovers_parameters():
    alpha = np.array([4.0, 2.0, 1.0, 0.5, 0.2])
    counts = _dm_counts(alpha, 3000, 500, seed=1)
    dm = DirichletMultinomial().fit(counts)
    np.testing.assert_allclose(dm.alpha_, alpha, rtol=0.12)
    # The MLE beats the truth on its own sample (it maximises the likelihood).
    ll = lambda a: dirichlet_multinomial.logpmf(counts, a, 500).sum()  # noqa: E731
    assert ll(dm.alpha_) >= ll(alpha) - 1e-6


def test_dm_samples_are_closed_counts_with_zeros():
    counts = _dm_counts(np.array([3.0, 1.0, 0.1, 0.05]), 200, 50, seed=2)
    dm = DirichletMultinomial().fit(counts)
    x = dm.sample(300, seed=0)
    np.testing.assert_allclose(x.sum(axis=1), 1.0)
    assert (x == 0).mean() > 0.1
    # Values are multiples of 1/depth for some training depth (here always 50).
    np.testing.assert_allclose(x * 50, np.round(x * 50), atol=1e-9)
    np.testing.assert_array_equal(x, dm.sample(300, seed=0))


def test_dm_accepts_compositions_and_rejects_unfitted():
    rel = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [0.1, 0.1, 0.8]])
    dm = DirichletMultinomial(default_depth=100).fit(rel)
    assert dm.depths_.tolist() == [100, 100, 100]
    with pytest.raises(DataError, match="not fitted"):
        DirichletMultinomial().sample(2)


def test_bootstrap_keeps_zero_pattern_and_jitters():
    rng = np.random.default_rng(0)
    train = rng.random((20, 6)) * (rng.random((20, 6)) < 0.6)
    train[:, 0] += 0.1
    train /= train.sum(axis=1, keepdims=True)
    boot = BootstrapSampler(noise_sd=0.3).fit(train)
    x = boot.sample(50, seed=1)
    np.testing.assert_allclose(x.sum(axis=1), 1.0)
    patterns = {tuple(row > 0) for row in train}
    assert all(tuple(row > 0) in patterns for row in x)
    # Profiles with two or more taxa move (a single-taxon profile is [1, 0, ...] regardless).
    assert not any(np.allclose(row, t) for row in x if (row > 0).sum() > 1 for t in train)
    exact = BootstrapSampler(noise_sd=0.0).fit(train).sample(10, seed=1)
    assert all(any(np.allclose(row, t) for t in train) for row in exact)
    with pytest.raises(ConfigError, match="noise_sd"):
        BootstrapSampler(noise_sd=-1).fit(train)
