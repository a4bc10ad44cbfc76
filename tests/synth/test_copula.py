"""The GAN's Gaussian-copula decoder (``copula_decoder``): fit, decode, sample, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import spearmanr

from biofluxopt.synth import CompositionWGAN, load_model, save_model
from biofluxopt.synth._gan import MARGINAL_QUANTILES, gaussian_copula
from biofluxopt.synth._gan import _copula_decode as copula_decode
from biofluxopt.synth._gan import _single_copula as single_copula

SMALL = {"latent_dim": 8, "hidden": 32, "batch_size": 32, "n_critic": 1}


@pytest.fixture
def paired() -> np.ndarray:
    """300 × 6 relative abundances: taxa 0 and 1 nearly functions of each other (CLR
    correlation ≈ 0.97, like HITChip's probe-sharing groups), taxon 5 absent in ~40 %."""
    rng = np.random.default_rng(3)
    n = 300
    base = rng.normal(0.0, 1.0, n)
    logs = np.column_stack(
        [
            base,
            base + rng.normal(0.0, 0.25, n),
            rng.normal(0.5, 1.0, n),
            rng.normal(1.0, 0.5, n),
            rng.normal(-1.0, 1.0, n),
            rng.normal(-2.0, 1.0, n),
        ]
    )
    x = np.exp(logs)
    x[rng.random(n) < 0.4, 5] = 0.0
    return x / x.sum(axis=1, keepdims=True)


def test_gaussian_copula_recovers_marginals_and_rank_correlation(paired):
    cop = single_copula(paired)
    root = np.asarray(cop["root"])
    corr = root @ root.T
    np.testing.assert_allclose(np.diag(corr), 1.0, atol=1e-12)
    # The Pearson correlation of normal scores is close to Spearman's ρ of the data (zeros as
    # ties); they differ by the normal-score transform's weight on the tails.
    np.testing.assert_allclose(corr, spearmanr(paired).statistic, atol=0.06)
    assert corr[0, 1] > 0.9
    np.testing.assert_allclose(cop["zero_rate"], (paired == 0).mean(axis=0))
    for j, knots in enumerate(cop["knots"]):
        present = paired[paired[:, j] > 0, j]
        assert len(knots) == MARGINAL_QUANTILES
        assert knots[0] == pytest.approx(np.log(present.min()))
        assert knots[-1] == pytest.approx(np.log(present.max()))


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(2, 15), st.integers(2, 6)), elements=st.floats(0, 1e3))
)
def test_gaussian_copula_is_a_valid_correlation_root_for_any_table(values):
    # Constant columns, all-zero columns and ties included: a finite root with unit rows
    # (a correlation matrix), non-decreasing knots, zero rates in [0, 1].
    cop = single_copula(values)
    root = np.asarray(cop["root"])
    assert np.isfinite(root).all()
    np.testing.assert_allclose(np.linalg.norm(root, axis=1), 1.0, atol=1e-9)
    assert np.all(np.abs(root @ root.T) <= 1 + 1e-9)
    knots = np.asarray(cop["knots"])
    assert np.isfinite(knots).all() and np.all(np.diff(knots, axis=1) >= 0)
    assert all(0.0 <= z <= 1.0 for z in cop["zero_rate"])


def test_mixture_of_copulas_finds_the_groups_and_keeps_their_shares():
    # Two groups ("enterotypes") in which a different taxon dominates: k-means on the normal
    # scores separates them, and each cluster's copula has its own marginals.
    rng = np.random.default_rng(0)
    a = rng.lognormal([3.0, 3.0, 0.0, 0.0, 0.0], 0.3, size=(90, 5))
    b = rng.lognormal([0.0, 0.0, 3.0, 3.0, 0.0], 0.3, size=(30, 5))
    cop = gaussian_copula(np.vstack([a, b]), n_components=2, seed=0)
    assert sorted(cop["weights"]) == pytest.approx([0.25, 0.75], abs=0.02)
    big = int(np.argmax(cop["weights"]))
    medians = np.asarray(cop["knots"])[:, :, MARGINAL_QUANTILES // 2]  # (cluster, taxon)
    assert medians[big, 0] > medians[big, 2] + 2 and medians[1 - big, 2] > medians[1 - big, 0] + 2
    one = gaussian_copula(np.vstack([a, b]), n_components=1)
    assert one["weights"] == [1.0] and np.asarray(one["root"]).shape == (1, 5, 5)


def test_copula_decode_maps_scores_to_quantiles_and_gates_at_the_zero_quantile():
    torch = pytest.importorskip("torch")
    knots = torch.tensor(np.tile(np.linspace(0.0, 10.0, MARGINAL_QUANTILES), (2, 1)))
    zero_rate = torch.tensor([0.0, 0.5])
    scores = torch.tensor([[-8.0, -1.0], [0.0, 0.0], [8.0, 1.0]])
    logits, gate = copula_decode(scores, knots, zero_rate, torch.zeros(3, 2))
    # Taxon 0 (never zero): Φ(g) is the quantile; Φ(0) = ½ → the median knot.
    assert logits[0, 0] == pytest.approx(0.0, abs=1e-3)
    assert logits[1, 0] == pytest.approx(5.0, abs=1e-5)
    assert logits[2, 0] == pytest.approx(10.0, abs=1e-3)
    # Taxon 1 (half zeros): closed below g = 0, open above; abundance rises with g.
    assert gate[0, 1] < 0 < gate[2, 1] and gate[1, 1] == pytest.approx(0.0, abs=1e-5)
    assert logits[0, 1] <= logits[1, 1] < logits[2, 1]


def test_untrained_copula_generator_reproduces_pairs_and_zero_rates(one_thread, paired):
    # With one iteration the generator is (nearly) the copula itself: the near-deterministic
    # pair survives in the draws, which the MLP generator does not give.
    kwargs = {"iterations": 1, "gate_calibration": False, "random_state": 0, **SMALL}
    on = CompositionWGAN(copula_decoder=True, copula_components=1, **kwargs).fit(paired)
    off = CompositionWGAN(copula_decoder=False, **kwargs).fit(paired)
    assert on.copula_components_ == 1
    assert on.copula_ == {"n_components": 1, "weights": [1.0], "labels": [0]}
    x_on, x_off = on.sample(2000, seed=1), off.sample(2000, seed=1)
    real_rho = spearmanr(paired[:, 0], paired[:, 1]).statistic
    rho_on = spearmanr(x_on[:, 0], x_on[:, 1]).statistic
    rho_off = spearmanr(x_off[:, 0], x_off[:, 1]).statistic
    assert rho_on == pytest.approx(real_rho, abs=0.1)
    assert rho_off < real_rho - 0.3
    np.testing.assert_allclose((x_on == 0).mean(axis=0), (paired == 0).mean(axis=0), atol=0.05)


def test_auto_components_follow_the_samples_per_taxon(one_thread, paired):
    # 'auto' = n_train // n_taxa: 300 samples of 6 taxa → 50 clusters asked; k-means on
    # 300 samples gives them, each drawn in proportion to its size.
    gan = CompositionWGAN(iterations=2, copula_decoder=True, random_state=0, **SMALL).fit(paired)
    assert gan.copula_components_ == len(paired) // paired.shape[1] == 50
    assert sum(gan.copula_["weights"]) == pytest.approx(1.0)
    x = gan.sample(500, seed=3)
    np.testing.assert_allclose(x.sum(axis=1), 1.0)
    two = CompositionWGAN(
        iterations=2, copula_decoder=True, copula_components=2, random_state=0, **SMALL
    ).fit(paired)
    assert two.copula_components_ == 2 and two.copula_["n_components"] == 2


@pytest.mark.parametrize("kind", ["relative", "counts", "lattice"])
def test_same_seed_same_samples_and_checkpoint_round_trip(one_thread, tmp_path, paired, kind):
    if kind == "counts":
        data = np.round(paired * np.linspace(2_000, 9_000, len(paired))[:, None])
    elif kind == "lattice":  # closed integer signal, ≥ 1 unit where present
        units = np.maximum(np.round(paired * 400), 1) * (paired > 0)
        data = units / units.sum(axis=1, keepdims=True)
    else:
        data = paired
    kwargs = {
        "iterations": 4,
        "copula_decoder": True,
        "copula_components": 3,
        "random_state": 2,
        **SMALL,
    }
    a = CompositionWGAN(**kwargs).fit(data)
    b = CompositionWGAN(**kwargs).fit(data)
    assert (a.lattice_totals_ is not None) == (kind == "lattice")
    assert (a.depths_ is not None) == (kind == "counts")
    np.testing.assert_array_equal(a.sample(64, seed=5), b.sample(64, seed=5))
    save_model(a, tmp_path / "m")
    again, _ = load_model(tmp_path / "m")
    assert again.copula_ == a.copula_
    np.testing.assert_array_equal(again.sample(64, seed=5), a.sample(64, seed=5))


@pytest.mark.parametrize("copula", [False, True])
def test_local_redraw_passes_the_filter_is_deterministic_and_keeps_accepted_draws(
    one_thread, paired, copula
):
    from biofluxopt.synth import NearCopyFilter

    gan = CompositionWGAN(
        iterations=3, copula_decoder=copula, copula_components=2, random_state=0, **SMALL
    ).fit(paired)
    # A strict filter (quantile 0.5) so that many raw draws are rejected.
    near = NearCopyFilter(quantile=0.5).fit(paired)
    raw = gan.sample(200, seed=4)
    rejected = ~near.mask(raw)
    assert 10 < rejected.sum() < 190
    gan.set_params(near_copy_redraw="local")
    a = gan.sample(200, seed=4, near_copy_filter=near)
    b = gan.sample(200, seed=4, near_copy_filter=near)
    np.testing.assert_array_equal(a, b)
    assert near.mask(a).all()
    np.testing.assert_allclose(a.sum(axis=1), 1.0)
    # Accepted raw draws stay where they were; only rejected ones are replaced.
    np.testing.assert_array_equal(a[~rejected], raw[~rejected])
    assert not np.isclose(a[rejected], raw[rejected]).all(axis=1).any()


def test_local_redraws_stay_closer_to_the_rejected_draw_than_fresh_ones(one_thread, paired):
    # The point of 'local': a replacement resembles the draw it replaces (here: its Shannon
    # index), unlike a fresh draw from anywhere.
    from biofluxopt.synth import NearCopyFilter, shannon

    gan = CompositionWGAN(
        iterations=3, copula_decoder=True, copula_components=1, random_state=0, **SMALL
    ).fit(paired)
    near = NearCopyFilter(quantile=0.5).fit(paired)
    raw = gan.sample(400, seed=2)
    rejected = ~near.mask(raw)
    gan.set_params(near_copy_redraw="fresh")
    fresh = gan.sample(400, seed=2, near_copy_filter=near)
    gan.set_params(near_copy_redraw="local")
    local = gan.sample(400, seed=2, near_copy_filter=near)
    gap_local = np.abs(shannon(local[rejected]) - shannon(raw[rejected])).mean()
    gap_fresh = np.abs(shannon(fresh[rejected]) - shannon(raw[rejected])).mean()
    assert gap_local < 0.7 * gap_fresh


def test_checkpoints_written_before_the_copula_default_load_as_they_were_trained(
    one_thread, tmp_path, paired
):
    import json

    from biofluxopt.synth import META_NAME

    mlp = CompositionWGAN(
        iterations=3, copula_decoder=False, near_copy_redraw="fresh", random_state=1, **SMALL
    ).fit(paired)
    save_model(mlp, tmp_path)
    meta_path = tmp_path / META_NAME
    meta = json.loads(meta_path.read_text())
    model_meta = meta["model"] if "model" in meta else meta
    for section in ("params", "config"):
        for key in ("copula_decoder", "near_copy_redraw", "copula_components"):
            model_meta[section].pop(key)
    meta_path.write_text(json.dumps(meta))
    again, _ = load_model(tmp_path)
    assert again.copula_decoder is False and again.near_copy_redraw == "fresh"
    np.testing.assert_array_equal(again.sample(20, seed=3), mlp.sample(20, seed=3))


@pytest.mark.parametrize("redraw", ["local", "fresh"])
def test_sample_with_filter_counts_the_rejected_draws(one_thread, paired, redraw):
    from biofluxopt.synth import NearCopyFilter

    gan = CompositionWGAN(
        iterations=3, near_copy_redraw=redraw, copula_components=1, random_state=0, **SMALL
    ).fit(paired)
    near = NearCopyFilter(quantile=0.5).fit(paired)
    x, n_rejected = gan.sample_with_filter(150, near, seed=6)
    np.testing.assert_array_equal(x, gan.sample(150, seed=6, near_copy_filter=near))
    assert near.mask(x).all()
    first_round = int((~near.mask(gan.sample(150, seed=6))).sum())
    if redraw == "local":  # round 0 is the raw draw itself; every redraw is counted too
        assert n_rejected >= first_round > 0
    else:
        assert n_rejected > 0


def test_conditioned_copula_fits_clusters_per_condition_and_draws_within_it(one_thread):
    # Two labelled groups in which different taxa dominate: each condition gets its own
    # clusters, and sample(condition=...) draws that group's profiles (untrained generator).
    rng = np.random.default_rng(1)
    a = rng.lognormal([3.0, 0.0, 0.0, 0.0], 0.3, size=(40, 4))
    b = rng.lognormal([0.0, 0.0, 3.0, 0.0], 0.3, size=(20, 4))
    x = np.vstack([a, b])
    y = ["a"] * 40 + ["b"] * 20
    gan = CompositionWGAN(
        iterations=1, gate_calibration=False, copula_components=2, random_state=0, **SMALL
    ).fit(x, y)
    assert gan.copula_components_ == 4 and sorted(set(gan.copula_["labels"])) == [0, 1]
    assert sum(gan.copula_["weights"]) == pytest.approx(2.0)  # 1 per condition
    share = {c: gan.sample(500, seed=2, condition=c).mean(axis=0) for c in ("a", "b")}
    assert share["a"][0] > 0.6 > share["b"][0] and share["b"][2] > 0.6 > share["a"][2]
