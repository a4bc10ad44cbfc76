"""The zero-inflated compositional WGAN-GP: simplex, exact zeros, determinism, conditioning."""

from __future__ import annotations

import numpy as np
import pytest

from biofluxopt._util import ConfigError, DataError
from biofluxopt.synth import CompositionWGAN, evaluate_synthetic

SMALL = {"latent_dim": 8, "hidden": 32, "batch_size": 32, "n_critic": 2}


def test_output_is_on_the_simplex_with_exact_zeros(one_thread, toy_compositions):
    gan = CompositionWGAN(iterations=10, random_state=0, **SMALL).fit(toy_compositions)
    x = gan.sample(200, seed=3)
    assert x.shape == (200, 8)
    assert np.all(x >= 0)
    np.testing.assert_allclose(x.sum(axis=1), 1.0, atol=1e-12)
    assert (x == 0).any(), "the presence gate must produce exact zeros"
    assert (x > 0).any(axis=1).all()
    nonzero = x[x > 0]
    assert nonzero.min() >= gan.min_abundance_ * 0.999  # the detection floor holds
    # 'auto': the smallest non-zero training abundance
    x_train = toy_compositions.to_numpy()
    assert gan.min_abundance_ == pytest.approx(x_train[x_train > 0].min())
    assert gan.taxa_ == list(toy_compositions.columns)
    assert len(gan.history_) > 0 and np.isfinite(gan.history_.to_numpy()).all()


def test_same_seed_same_numbers(one_thread, toy_compositions):
    a = CompositionWGAN(iterations=5, random_state=7, **SMALL).fit(toy_compositions)
    b = CompositionWGAN(iterations=5, random_state=7, **SMALL).fit(toy_compositions)
    np.testing.assert_array_equal(a.sample(20, seed=1), b.sample(20, seed=1))
    assert not np.array_equal(a.sample(20, seed=1), a.sample(20, seed=2))
    c = CompositionWGAN(iterations=5, random_state=8, **SMALL).fit(toy_compositions)
    assert not np.array_equal(a.sample(20, seed=1), c.sample(20, seed=1))


def test_ema_generator_differs_from_last_iterate(one_thread, toy_compositions):
    last = CompositionWGAN(iterations=20, random_state=0, **SMALL).fit(toy_compositions)
    ema = CompositionWGAN(iterations=20, random_state=0, ema_decay=0.9, **SMALL).fit(
        toy_compositions
    )
    # Same training trajectory, different kept weights.
    np.testing.assert_allclose(ema.history_["critic_loss"], last.history_["critic_loss"])
    assert not np.array_equal(ema.sample(10, seed=0), last.sample(10, seed=0))
    np.testing.assert_allclose(ema.sample(10, seed=0).sum(axis=1), 1.0)


def test_fit_leaves_global_torch_rng_alone(one_thread, toy_compositions):
    import torch

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    CompositionWGAN(iterations=2, random_state=0, **SMALL).fit(toy_compositions)
    assert torch.equal(torch.rand(3), expected)


def test_gate_learns_the_real_sparsity(one_thread, toy_compositions):
    # Softmax alone would give 0 % zeros; the toy data have ~41 % zeros, two taxa never present.
    options = {**SMALL, "n_critic": 5, "lr": 1e-3}
    gan = CompositionWGAN(iterations=150, random_state=0, **options).fit(toy_compositions)
    fake = gan.sample(300, seed=0)
    real_sparsity = (toy_compositions.to_numpy() == 0).mean()
    assert abs((fake == 0).mean() - real_sparsity) < 0.1
    assert (fake[:, 6:] == 0).mean() > 0.9  # never-present taxa stay (almost) absent
    metrics = evaluate_synthetic(toy_compositions.to_numpy(), fake)
    assert metrics["families"]["sparsity_taxon"]["pearson_r"] > 0.8


def test_conditioning(one_thread, toy_compositions):
    labels = ["a"] * 30 + ["b"] * 30
    gan = CompositionWGAN(iterations=5, random_state=0, **SMALL).fit(toy_compositions, labels)
    assert gan.conditions_ == ["a", "b"]
    xa, xb = gan.sample(10, seed=0, condition="a"), gan.sample(10, seed=0, condition="b")
    assert not np.array_equal(xa, xb)
    with pytest.raises(DataError, match="condition must be one of"):
        gan.sample(3, condition="c")
    with pytest.raises(DataError, match="2 labels for 60 samples"):
        CompositionWGAN(iterations=1, **SMALL).fit(toy_compositions, ["a", "b"])
    plain = CompositionWGAN(iterations=1, random_state=0, **SMALL).fit(toy_compositions)
    with pytest.raises(DataError, match="without conditions"):
        plain.sample(3, condition="a")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"iterations": 0}, "iterations"),
        ({"lr": -1.0}, "lr"),
        ({"hidden": 2.5}, "hidden"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"critic_dropout": 1.0}, "critic_dropout"),
        ({"richness_scale": -0.1}, "richness_scale"),
        ({"sample_moment_weight": -1.0}, "sample_moment_weight"),
        ({"copy_penalty": -1.0}, "copy_penalty"),
        ({"copy_penalty_quantile": 1.0}, "copy_penalty_quantile"),
    ],
)
def test_bad_options_are_named(toy_compositions, kwargs, field):
    with pytest.raises(ConfigError, match=rf"^CompositionWGAN\.{field}: must be .*; got "):
        CompositionWGAN(**kwargs).fit(toy_compositions)


def test_bad_data_and_unfitted_use():
    with pytest.raises(DataError, match="non-negative"):
        CompositionWGAN(iterations=1).fit(np.array([[0.5, -0.5], [0.5, 0.5]]))
    with pytest.raises(DataError, match="sum to zero"):
        CompositionWGAN(iterations=1).fit(np.array([[0.0, 0.0], [0.5, 0.5]]))
    with pytest.raises(DataError, match="not fitted"):
        CompositionWGAN().sample(3)


@pytest.mark.parametrize("depth_conditioning", [False, True])
def test_counts_input_gives_sequenced_profiles(one_thread, toy_compositions, depth_conditioning):
    rng = np.random.default_rng(0)
    depths = rng.integers(300, 3000, size=len(toy_compositions))
    counts = np.stack(
        [rng.multinomial(d, p) for d, p in zip(depths, toy_compositions.to_numpy(), strict=True)]
    )
    gan = CompositionWGAN(
        iterations=5, random_state=0, depth_conditioning=depth_conditioning, **SMALL
    ).fit(counts)
    np.testing.assert_array_equal(gan.depths_, counts.sum(axis=1))
    assert gan._n_inputs_cond() == int(depth_conditioning)
    x = gan.sample(100, seed=0)
    # Each row is reads / total reads: some read total N <= 1.5 × the deepest sample makes
    # every entry of x·N an integer.
    totals = np.arange(1, int(1.5 * depths.max()) + 1)[:, None, None]
    scaled = x[None, :, :] * totals  # (totals, samples, taxa)
    integer = (np.abs(scaled - np.round(scaled)) < 1e-6).all(axis=2).any(axis=0)
    assert integer.all()


def test_richness_offset_spreads_the_number_of_taxa_present(one_thread, toy_compositions):
    # One shared gate offset per sample correlates the taxa's presence, so the per-sample
    # fraction present varies more than with independent gates (same seed, 1 iteration; the
    # MLP generator, whose gates are otherwise independent).
    def sparsity_sd(scale):
        gan = CompositionWGAN(
            iterations=1,
            richness_scale=scale,
            gate_calibration=False,
            copula_decoder=False,
            random_state=0,
            **SMALL,
        )
        x = gan.fit(toy_compositions).sample(400, seed=1)
        return (x == 0).mean(axis=1).std()

    assert sparsity_sd(3.0) > 1.5 * sparsity_sd(0.0)


def test_copy_penalty_pushes_samples_away_from_training_profiles(one_thread, toy_compositions):
    from biofluxopt.synth import NearCopyFilter

    subjects = np.arange(len(toy_compositions)) // 2
    options = {**SMALL, "lr": 1e-3, "min_abundance": 0.0}

    def fitted(penalty):
        return CompositionWGAN(
            iterations=40,
            random_state=0,
            copy_penalty=penalty,
            copy_penalty_quantile=0.5,
            **options,
        ).fit(toy_compositions, groups=subjects)

    plain, penalised = fitted(0.0), fitted(50.0)
    f = NearCopyFilter(quantile=0.5).fit(toy_compositions, groups=subjects)
    assert plain.copy_threshold_ is None
    assert penalised.copy_threshold_ == pytest.approx(f.threshold_)
    near = [(~f.mask(m.sample(400, seed=1))).mean() for m in (plain, penalised)]
    assert near[1] < near[0]


@pytest.mark.parametrize("n", [2, 4, 8])
def test_tiny_training_sets_give_finite_weights(one_thread, n):
    # Minibatches of a few samples leave some critic features constant under dropout; the
    # gradient penalty used to differentiate their SD twice (NaN) and poison every weight.
    rng = np.random.default_rng(0)
    counts = np.stack(
        [rng.multinomial(2000, p) for p in rng.dirichlet([3, 2, 1, 0.5, 0.3, 0.2], size=n)]
    )
    gan = CompositionWGAN(iterations=3, random_state=0).fit(counts)
    assert all(bool(v.isfinite().all()) for v in gan.state_dict().values())
    assert np.isfinite(gan.sample(5, seed=0)).all()


def test_fit_and_sample_use_one_torch_thread_and_restore_the_callers(toy_compositions):
    import torch

    from biofluxopt.synth import _gan

    before = torch.get_num_threads()
    seen = []
    try:
        torch.set_num_threads(2)
        gan = CompositionWGAN(iterations=1, random_state=0, **SMALL)
        gan.fit(toy_compositions, progress=lambda *_: seen.append(torch.get_num_threads()))
        assert seen == [_gan.TORCH_THREADS] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_divergence_is_a_data_error_not_nan_weights(one_thread, toy_compositions):
    with pytest.raises(DataError, match="diverged: non-finite critic loss at iteration 1"):
        CompositionWGAN(iterations=3, lr=1e30, random_state=0, **SMALL).fit(toy_compositions)


def test_auto_richness_scale_reproduces_the_training_sparsity_spread():
    from biofluxopt.synth import auto_richness_scale

    rng = np.random.default_rng(0)
    n, taxa = 400, 60
    prevalence = rng.uniform(0.05, 0.9, size=taxa)
    logits = np.log(prevalence / (1 - prevalence))

    def cohort(scale):
        offset = scale * rng.standard_normal((n, 1))
        return (rng.random((n, taxa)) < 1 / (1 + np.exp(-(logits + offset)))).astype(float)

    # A cohort generated with a known offset SD gives back about that SD; a cohort with
    # independent presence (binomial richness) gives the lower bound.
    assert auto_richness_scale(cohort(1.0)) == pytest.approx(1.0, abs=0.2)
    assert auto_richness_scale(cohort(2.0)) == pytest.approx(2.0, abs=0.4)
    assert auto_richness_scale(cohort(0.0)) < 0.3


def test_gate_calibration_matches_training_sparsity(one_thread, toy_compositions):
    # Training leaves the gate ~0.015 off the training presence rates per taxon; the
    # calibration brings synthetic per-taxon presence and per-sample sparsity (mean and SD)
    # to the training set's (20,000 fresh draws: sampling SE < 0.004).
    def fitted(calibrate):
        # The MLP generator: the copula decoder's gates start at the training rates.
        return CompositionWGAN(
            iterations=15,
            gate_calibration=calibrate,
            copula_decoder=False,
            random_state=0,
            **SMALL,
        ).fit(toy_compositions)

    present = toy_compositions.to_numpy() > 0
    errors = {}
    for calibrate in (False, True):
        x = fitted(calibrate).sample(20_000, seed=5) > 0
        errors[calibrate] = (
            np.abs(x.mean(axis=0) - present.mean(axis=0)).mean(),
            abs(x.mean(axis=1).std() - present.mean(axis=1).std()),
        )
    assert errors[True][0] < 0.008 < errors[False][0]
    assert errors[True][1] < 0.005
    record = fitted(True).gate_calibration_
    assert record["after"]["taxon_presence_mean_abs_delta"] < 0.02
    assert record["training"]["mean_sparsity"] == pytest.approx(1 - present.mean())
    assert fitted(False).gate_calibration_ is None


def test_estimator_api(one_thread, toy_compositions):
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    gan = CompositionWGAN(iterations=2, richness_scale=0.5, random_state=3, **SMALL)
    params = gan.get_params()
    assert params["richness_scale"] == 0.5 and params["random_state"] == 3
    assert params["min_abundance"] == "auto"  # stored unchanged, resolved in fit
    assert set(params) == set(CompositionWGAN._parameter_constraints)
    with pytest.raises(NotFittedError):
        check_is_fitted(gan)
    with pytest.raises(TypeError, match="unexpected keyword"):
        CompositionWGAN(iteration=3)
    gan.fit(toy_compositions)
    check_is_fitted(gan)
    twin = clone(gan)
    assert twin.get_params() == params and not hasattr(twin, "generator_")
    np.testing.assert_array_equal(twin.fit(toy_compositions).sample(10), gan.sample(10))
    assert gan.set_params(lr=1e-3).lr == 1e-3
