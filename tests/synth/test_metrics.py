"""Fidelity metrics and the memorisation check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.distance import pdist, squareform

from biofluxopt._util import DataError
from biofluxopt.synth import (
    FAMILIES,
    align_columns,
    compare_families,
    evaluate_synthetic,
    memorisation,
    save_figures,
    shannon,
    sparsity,
)
from biofluxopt.synth._figures import pcoa


def _sample(n, seed, shape=0.3, n_taxa=12):
    rng = np.random.default_rng(seed)
    x = rng.gamma(shape, size=(n, n_taxa)) * (rng.random((n, n_taxa)) < 0.6)
    x[:, 0] += 0.05
    return x / x.sum(axis=1, keepdims=True)


def test_identical_sets_score_zero():
    x = _sample(60, 0)
    m = evaluate_synthetic(x, x.copy(), train=_sample(60, 1))
    fam = m["families"]
    assert set(fam) == set(FAMILIES)
    for name in ("sparsity_sample", "sparsity_taxon", "shannon", "bray_curtis", "spearman"):
        assert fam[name]["score"] == pytest.approx(0.0, abs=1e-12), name
    assert fam["c2st"]["auc"] < 0.6  # cannot tell a set from itself


def test_scores_separate_good_from_bad_generators():
    real, same_law = _sample(150, 0), _sample(150, 1)
    rng = np.random.default_rng(2)
    dense = rng.dirichlet(np.ones(12), size=150)  # no zeros, flat
    good = evaluate_synthetic(real, same_law)
    bad = evaluate_synthetic(real, dense)
    cmp = compare_families(good, bad)
    assert cmp["n_better"] == 6
    assert bad["families"]["c2st"]["auc"] > 0.95
    assert good["families"]["c2st"]["auc"] < 0.7
    assert bad["families"]["sparsity_sample"]["mean_synthetic"] == 0.0


def test_memorisation_flags_copies_not_fresh_draws():
    train, real = _sample(100, 0), _sample(60, 1)
    copies = memorisation(train, real, train[:40] * 1.0)
    assert copies["n_flagged"] == 40 and copies["n_near_copies"] == 40
    assert copies["memorised"]
    fresh = memorisation(train, real, _sample(400, 2))
    assert fresh["fraction_flagged"] < 0.12
    assert not fresh["memorised"]


def test_shape_and_value_errors():
    with pytest.raises(DataError, match="synthetic"):
        evaluate_synthetic(_sample(10, 0), _sample(10, 1, n_taxa=5))
    with pytest.raises(DataError, match="non-negative"):
        evaluate_synthetic(_sample(10, 0), -_sample(10, 1))
    real = pd.DataFrame(_sample(5, 0, n_taxa=3), columns=["a", "b", "c"])
    with pytest.raises(DataError, match="missing"):
        align_columns(real, real[["a", "b"]])
    extra = real.assign(d=0.0)[["d", "c", "b", "a"]]
    assert list(align_columns(real, extra).columns) == ["a", "b", "c"]
    with pytest.raises(DataError, match="carry abundance"):
        align_columns(real, real.assign(d=0.1))


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(2, 10)), elements=st.floats(0, 1e3))
)
def test_shannon_and_sparsity_bounds(x):
    x[:, 0] += 1.0
    x = x / x.sum(axis=1, keepdims=True)
    h = shannon(x)
    richness = (x > 0).sum(axis=1)
    assert np.all(h >= -1e-12)
    assert np.all(h <= np.log(richness) + 1e-9)
    s = sparsity(x)
    np.testing.assert_allclose(s, 1 - richness / x.shape[1])


def test_pcoa_recovers_euclidean_configuration(tmp_path):
    rng = np.random.default_rng(0)
    points = rng.normal(size=(30, 2)) * [3.0, 1.0]
    d = squareform(pdist(points))
    coords = pcoa(d)
    np.testing.assert_allclose(squareform(pdist(coords)), d, atol=1e-8)
    written = save_figures(_sample(20, 0), _sample(20, 1), tmp_path / "fig")
    assert [p.name for p in written] == ["sparsity.png", "shannon.png", "pcoa_braycurtis.png"]
    assert all(p.stat().st_size > 1000 for p in written)


def test_figures_use_the_object_api_not_the_global_backend(tmp_path, monkeypatch):
    import matplotlib

    def no_switch(*args, **kwargs):
        raise AssertionError("save_figures must not switch matplotlib's global backend")

    monkeypatch.setattr(matplotlib, "use", no_switch)
    backend = matplotlib.rcParams._get_backend_or_none()
    first = save_figures(_sample(20, 0), _sample(20, 1), tmp_path / "a")
    second = save_figures(_sample(20, 0), _sample(20, 1), tmp_path / "b")
    assert matplotlib.rcParams._get_backend_or_none() == backend
    # Same data, same bytes.
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


def test_identical_synthetic_samples_give_defined_metrics():
    real, train = _sample(30, 0), _sample(30, 5)
    same = np.repeat(train[:1], 20, axis=0)  # zero variance in every taxon
    metrics = evaluate_synthetic(real, same, train, seed=0)
    fam = metrics["families"]
    for name in ("sparsity_sample", "sparsity_taxon", "shannon", "bray_curtis", "spearman", "c2st"):
        assert np.isfinite(fam[name]["score"]), name
    assert fam["bray_curtis"]["mean_within_synthetic"] == 0.0
    assert metrics["memorisation"]["n_near_copies"] == 20


def test_too_few_samples_name_the_short_set():
    with pytest.raises(DataError, match="synthetic: need at least 4 samples, got 3"):
        evaluate_synthetic(_sample(10, 0), _sample(3, 1))
    with pytest.raises(DataError, match="real: need at least 4 samples, got 2"):
        evaluate_synthetic(_sample(2, 0), _sample(10, 1))
