"""The near-copy privacy filter: leave-subject-out threshold, filtering, redraw rounds, config."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.distance import braycurtis

from biofluxopt._util import ConfigError, DataError
from biofluxopt.synth import (
    TRAIN_NAME,
    BootstrapSampler,
    CompositionWGAN,
    NearCopyFilter,
    load_near_copy_filter,
    sample_filtered,
    save_model,
)


def _visits(n_subjects: int = 20, n_taxa: int = 8, seed: int = 0):
    """Two almost identical visits per subject: (compositions (2n, taxa), subject ids (2n,))."""
    rng = np.random.default_rng(seed)
    people = rng.dirichlet(np.full(n_taxa, 0.7), size=n_subjects)
    visits = np.repeat(people, 2, axis=0) * rng.uniform(0.98, 1.02, size=(2 * n_subjects, n_taxa))
    return visits / visits.sum(axis=1, keepdims=True), np.repeat(np.arange(n_subjects), 2)


def test_threshold_uses_other_subjects_only():
    x, subjects = _visits()
    grouped = NearCopyFilter(quantile=0.05).fit(x, groups=subjects)
    loo = NearCopyFilter(quantile=0.05).fit(x)
    # Brute force: nearest sample of another subject.
    expected = np.array(
        [
            min(braycurtis(x[i], x[j]) for j in range(len(x)) if subjects[j] != subjects[i])
            for i in range(len(x))
        ]
    )
    np.testing.assert_allclose(grouped.nearest_other_, expected)
    assert grouped.threshold_ == pytest.approx(np.quantile(expected, 0.05))
    # Leave-one-out would find each person's other visit (distance ~0.01): a useless threshold.
    assert loo.threshold_ < 0.05 < grouped.threshold_
    assert grouped.grouped_ and not loo.grouped_


def test_filtered_rows_are_above_threshold_and_on_the_simplex():
    x, subjects = _visits()
    f = NearCopyFilter(quantile=0.2).fit(x, groups=subjects)
    rng = np.random.default_rng(1)
    candidates = np.vstack([x[:5], rng.dirichlet(np.ones(8), size=50)])  # 5 exact copies
    keep = f.mask(candidates)
    assert not keep[:5].any()
    kept = f.filter(candidates)
    assert len(kept) == keep.sum()
    assert (f.nearest_distance(kept) >= f.threshold_).all()
    np.testing.assert_allclose(kept.sum(axis=1), 1.0)
    frame = pd.DataFrame(candidates, columns=[f"t{j}" for j in range(8)])
    assert list(f.filter(frame).index) == list(np.flatnonzero(keep))


def test_sample_filtered_rejects_copies_deterministically():
    x, subjects = _visits(n_subjects=30)
    boot = BootstrapSampler(noise_sd=0.05).fit(x)  # small noise: near-copies
    f = NearCopyFilter(quantile=0.05).fit(x, groups=subjects)

    def draw(m, seed):
        """Every other draw a near-copy of a training sample, the others new profiles."""
        rng = np.random.default_rng(seed)
        out = rng.dirichlet(np.full(8, 0.7), size=m)
        out[::2] = boot.sample(len(out[::2]), seed=seed)
        return out

    assert (~f.mask(draw(200, 3))).mean() > 0.4  # the raw sampler copies
    out, n_rejected = sample_filtered(draw, 40, f, seed=3)
    again, _ = sample_filtered(draw, 40, f, seed=3)
    other, _ = sample_filtered(draw, 40, f, seed=4)
    assert out.shape == (40, 8) and n_rejected >= 20
    assert f.mask(out).all()
    np.testing.assert_array_equal(out, again)
    assert not np.array_equal(out, other)


def test_filter_that_rejects_everything_is_a_clear_error():
    x, subjects = _visits()
    f = NearCopyFilter(quantile=0.5).fit(x, groups=subjects)
    with pytest.raises(DataError, match=r"kept only 0 of .* --no-near-copy-filter"):
        sample_filtered(lambda m, seed: x[np.arange(m) % len(x)], 10, f, seed=0)


def test_gan_sample_with_filter(one_thread, toy_compositions):
    gan = CompositionWGAN(iterations=5, latent_dim=8, hidden=16, random_state=0).fit(
        toy_compositions
    )
    # A high quantile so that some raw draws are rejected (no subjects: leave-one-out).
    f = NearCopyFilter(quantile=0.5).fit(toy_compositions)
    raw = gan.sample(300, seed=2)
    assert not f.mask(raw).all(), "the test needs raw draws below the threshold"
    x = gan.sample(300, seed=2, near_copy_filter=f)
    assert x.shape == (300, 8)
    assert f.mask(x).all()
    np.testing.assert_allclose(x.sum(axis=1), 1.0, atol=1e-12)
    assert (x >= 0).all()
    np.testing.assert_array_equal(x, gan.sample(300, seed=2, near_copy_filter=f))


@pytest.mark.parametrize("quantile", [0.0, 1.0, -0.1, 1.5, float("nan"), "0.05", None, True])
def test_bad_quantile_is_a_config_error(quantile):
    x, subjects = _visits()
    with pytest.raises(ConfigError, match="quantile"):
        NearCopyFilter(quantile=quantile).fit(x, groups=subjects)


def test_bad_inputs_are_data_errors():
    x, subjects = _visits()
    with pytest.raises(DataError, match="groups has 3 entries"):
        NearCopyFilter().fit(x, groups=["a", "b", "c"])
    with pytest.raises(DataError, match="at least 2 subjects"):
        NearCopyFilter().fit(x, groups=["same"] * len(x))
    with pytest.raises(DataError, match="not fitted"):
        NearCopyFilter().mask(x)
    with pytest.raises(DataError, match="taxa"):
        NearCopyFilter().fit(x, groups=subjects).mask(x[:, :3])
    with pytest.raises(ConfigError, match="threshold"):
        NearCopyFilter.from_threshold(x, -1.0)


@settings(max_examples=25, deadline=None)
@given(x=arrays(float, (12, 4), elements=st.floats(0.0, 1.0)), q=st.floats(0.01, 0.99))
def test_kept_rows_are_never_closer_than_the_threshold(x, q):
    x = x + 1e-3  # no empty rows
    train = x[:8]
    f = NearCopyFilter(quantile=q).fit(train, groups=[0, 0, 1, 1, 2, 2, 3, 3])
    assert f.nearest_other_.min() <= f.threshold_ <= f.nearest_other_.max()
    d = f.nearest_distance(x)
    np.testing.assert_array_equal(f.mask(x), d >= f.threshold_)
    np.testing.assert_allclose(d[:8], 0.0, atol=1e-12)  # training rows are in the reference
    if f.threshold_ > 1e-12:
        assert not f.mask(train).any()


def test_checkpoint_roundtrip_keeps_the_threshold(tmp_path, toy_compositions):
    subjects = np.arange(len(toy_compositions)) // 2
    f = NearCopyFilter(quantile=0.1).fit(toy_compositions, groups=subjects)
    model = BootstrapSampler().fit(toy_compositions)
    save_model(model, tmp_path, near_copy_filter=f)
    toy_compositions.to_csv(tmp_path / TRAIN_NAME, float_format="%.17g")
    loaded = load_near_copy_filter(tmp_path, taxa=model.taxa_)
    assert loaded.threshold_ == f.threshold_
    assert loaded.quantile == 0.1 and loaded.grouped_
    probe = model.sample(50, seed=0)
    np.testing.assert_array_equal(loaded.mask(probe), f.mask(probe))
    # A model saved without a filter has none; a train.csv of the wrong size is an error.
    save_model(model, tmp_path / "plain")
    assert load_near_copy_filter(tmp_path / "plain") is None
    toy_compositions.iloc[:10].to_csv(tmp_path / TRAIN_NAME)
    with pytest.raises(DataError, match="10 samples, but the filter was fitted on 60"):
        load_near_copy_filter(tmp_path)
