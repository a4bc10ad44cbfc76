"""Lattice rendering and marginal calibration of the GAN (integer-signal tables, e.g. HITChip)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from biofluxopt.synth import CompositionWGAN
from biofluxopt.synth._gan import LATTICE_MAX_MULTIPLE, _quantile_map, lattice_totals

SMALL = {"latent_dim": 8, "hidden": 32, "batch_size": 32, "n_critic": 2}


@pytest.fixture
def toy_signal(toy_compositions) -> np.ndarray:
    """Integer signal (60 × 8): the toy compositions at totals 20 … 300, rounded, with a
    background of 1–3 units on every present taxon (like a microarray's low end)."""
    rng = np.random.default_rng(1)
    x = toy_compositions.to_numpy()
    totals = rng.integers(20, 300, size=(len(x), 1))
    signal = np.round(x * totals) + rng.integers(1, 4, size=x.shape) * (x > 0)
    assert lattice_totals(signal) is not None
    return signal


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.int64, st.tuples(st.integers(2, 12), st.integers(2, 10)), elements=st.integers(0, 5000)
    ),
    st.integers(1, 5),
)
def test_lattice_totals_recover_integer_rows_at_any_scale(counts, scale):
    # Any integer table, closed: the totals in units are the row sums divided by their
    # greatest common divisor (found as the smallest value / m, m ≤ LATTICE_MAX_MULTIPLE).
    counts = counts.copy()
    counts[:, 0] += 1  # no empty row
    rel = counts / (scale * counts.sum(axis=1, keepdims=True))
    totals = lattice_totals(rel)
    gcd = np.gcd.reduce(counts, axis=1)
    smallest = np.where(counts > 0, counts, np.iinfo(np.int64).max).min(axis=1)
    findable = smallest // gcd <= LATTICE_MAX_MULTIPLE
    if findable.all():
        np.testing.assert_array_equal(totals, counts.sum(axis=1) // gcd)
    else:
        assert totals is None


def test_continuous_compositions_are_on_no_lattice(toy_compositions):
    assert lattice_totals(toy_compositions.to_numpy()) is None
    # Tiny noise on an integer table takes it off the lattice.
    counts = (np.arange(40) % 7 + 1).astype(float).reshape(10, 4) * [1, 3, 20, 100]
    assert lattice_totals(counts) is not None
    assert (
        lattice_totals(counts * (1 + 1e-4 * np.random.default_rng(0).random(counts.shape))) is None
    )


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float64, (30, 3), elements=st.floats(0.01, 1e4)),
    st.lists(st.floats(-3, 3), min_size=5, max_size=5).map(sorted),
    st.lists(st.floats(-3, 3), min_size=5, max_size=5).map(sorted),
)
def test_quantile_map_is_monotone_keeps_zeros_and_hits_the_knots(units, generated, training):
    units = units.copy()
    units[::4, 1] = 0.0
    knots = [None, [generated, training], [generated, training]]
    out = _quantile_map(units, knots)
    np.testing.assert_array_equal(out[:, 0], units[:, 0])  # no map: unchanged
    assert ((out[:, 1] == 0) == (units[:, 1] == 0)).all()  # zeros stay zeros
    order = np.argsort(units[:, 2])
    assert np.all(np.diff(out[order, 2]) >= -1e-9 * out[order, 2][1:])  # monotone
    lo, hi = np.exp(training[0]), np.exp(training[-1])
    present = out[:, 2] > 0
    assert np.all(out[present, 2] >= lo * (1 - 1e-9)) and np.all(out[present, 2] <= hi * (1 + 1e-9))


def test_gan_renders_lattice_tables_on_a_lattice(one_thread, toy_signal):
    rel = toy_signal / toy_signal.sum(axis=1, keepdims=True)
    gan = CompositionWGAN(iterations=5, random_state=0, **SMALL).fit(rel)
    np.testing.assert_array_equal(gan.lattice_totals_, lattice_totals(rel))
    assert gan.generator_.floor == 0.0  # the lattice replaces the detection floor
    x = gan.sample(300, seed=2)
    np.testing.assert_allclose(x.sum(axis=1), 1.0, atol=1e-12)
    # Every row is on a lattice (integer units), and a different one per row.
    totals = lattice_totals(x)
    assert totals is not None and len(np.unique(totals)) > 10
    # The marginal calibration gives each taxon the training values' range in units.
    knots = gan.marginal_calibration_["knots"]
    assert len(knots) == rel.shape[1]
    assert all(k is None for k in knots[6:])  # the two never-present taxa get no map
    assert knots[0] is not None and knots[0][1][0] >= 0.0  # log units ≥ log 1


def test_lattice_rendering_moves_background_onto_whole_units(one_thread, toy_signal):
    # Without rendering the generator's smallest values are continuous; with it the share of
    # values at exactly one unit of their row is close to the training share.
    rel = toy_signal / toy_signal.sum(axis=1, keepdims=True)
    on = CompositionWGAN(iterations=30, random_state=0, **SMALL).fit(rel)
    off = CompositionWGAN(iterations=30, random_state=0, lattice_rendering=False, **SMALL).fit(rel)
    assert off.lattice_totals_ is None and off.marginal_calibration_ is None
    assert lattice_totals(off.sample(200, seed=1)) is None
    x = on.sample(2000, seed=1)

    def share(u):
        return (u == 1).sum() / (u > 0).sum()

    train_units = np.round(rel * on.lattice_totals_[:, None])
    syn_units = np.round(x * lattice_totals(x)[:, None])
    assert share(syn_units) == pytest.approx(share(train_units), abs=0.1)


def test_same_seed_same_numbers_and_checkpoint_round_trip(one_thread, toy_signal, tmp_path):
    from biofluxopt.synth import load_model, save_model

    rel = toy_signal / toy_signal.sum(axis=1, keepdims=True)
    a = CompositionWGAN(iterations=5, random_state=4, **SMALL).fit(rel)
    b = CompositionWGAN(iterations=5, random_state=4, **SMALL).fit(rel)
    np.testing.assert_array_equal(a.sample(50, seed=1), b.sample(50, seed=1))
    assert a.marginal_calibration_ == b.marginal_calibration_
    save_model(a, tmp_path / "m")
    again, _ = load_model(tmp_path / "m")
    np.testing.assert_array_equal(again.lattice_totals_, a.lattice_totals_)
    np.testing.assert_array_equal(again.sample(50, seed=1), a.sample(50, seed=1))


def test_counts_keep_read_sampling(one_thread, toy_signal):
    # Integer input that looks like read counts is sequenced (Poisson), not rendered.
    gan = CompositionWGAN(iterations=2, random_state=0, **SMALL).fit(toy_signal)
    assert gan.depths_ is not None and gan.lattice_totals_ is None
    assert gan.marginal_calibration_ is None


def test_correlation_gap_is_zero_for_equal_batches_and_ignores_constant_taxa():
    torch = pytest.importorskip("torch")
    from biofluxopt.synth._gan import _correlation_gap

    rng = np.random.default_rng(0)
    a = rng.dirichlet(np.ones(6), size=32)
    a[:, 5] = 0.0  # absent throughout: constant, no correlation defined
    a /= a.sum(axis=1, keepdims=True)
    real = torch.as_tensor(a, dtype=torch.float32)
    assert float(_correlation_gap(real, real, 1000.0)) == pytest.approx(0.0, abs=1e-6)
    # Reversing one taxon's order across samples breaks its correlations.
    b = a.copy()
    b[:, 0] = b[::-1, 0]
    fake = torch.as_tensor(b / b.sum(axis=1, keepdims=True), dtype=torch.float32)
    fake.requires_grad_(True)
    gap = _correlation_gap(fake, real, 1000.0)
    gap.backward()
    assert float(gap.detach()) > 0.01 and bool(torch.isfinite(fake.grad).all())
    # Nothing varies: no pair, no term.
    flat = torch.full((4, 3), 1 / 3)
    assert float(_correlation_gap(flat, flat, 1000.0)) == 0.0


@pytest.mark.parametrize("correlation_weight", [0.0, 1.0])
def test_correlation_term_is_deterministic_and_finite(one_thread, toy_signal, correlation_weight):
    rel = toy_signal / toy_signal.sum(axis=1, keepdims=True)

    def fit():
        return CompositionWGAN(
            iterations=10, correlation_weight=correlation_weight, random_state=2, **SMALL
        ).fit(rel)

    a, b = fit(), fit()
    np.testing.assert_array_equal(a.sample(40, seed=3), b.sample(40, seed=3))
    assert np.isfinite(a.history_["generator_loss"]).all()


def test_auto_log_scale_is_one_over_the_detection_unit(one_thread, toy_signal):
    from biofluxopt.synth._gan import detection_unit

    rel = toy_signal / toy_signal.sum(axis=1, keepdims=True)
    gan = CompositionWGAN(iterations=2, log_scale="auto", random_state=0, **SMALL).fit(rel)
    smallest = np.where(rel > 0, rel, np.inf).min(axis=1)
    assert detection_unit(rel) == pytest.approx(np.median(smallest))
    assert gan.log_scale_ == pytest.approx(1 / np.median(smallest))
    assert gan.config_.log_scale == gan.log_scale_
    assert CompositionWGAN(iterations=1, **SMALL).fit(rel).log_scale_ == 1000.0
