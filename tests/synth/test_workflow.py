"""``train_model`` and ``TrainResult`` without the CLI: split, filter, fit, save, load."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from biofluxopt._util import ConfigError, DataError
from biofluxopt.data import AbundanceTable, load_hitchip_atlas
from biofluxopt.synth import (
    CompositionWGAN,
    DirichletMultinomial,
    TrainResult,
    load_model,
    train_model,
)

SMALL_GAN = {"latent_dim": 8, "hidden": 16, "batch_size": 16, "n_critic": 1}


@pytest.fixture
def counts_table() -> AbundanceTable:
    rng = np.random.default_rng(0)
    n = 40
    p = rng.dirichlet([3, 2, 1, 0.5, 0.3, 0.2], size=n)
    depths = rng.integers(800, 3000, size=n)
    counts = np.stack([rng.multinomial(d, pi) for d, pi in zip(depths, p, strict=True)])
    ids = [f"s{i:02d}" for i in range(n)]
    frame = pd.DataFrame(counts, index=ids, columns=[f"g__G{j}" for j in range(6)])
    meta = pd.DataFrame(
        {"person": [f"p{i // 2}" for i in range(n)], "arm": ["x", "y"] * (n // 2)}, index=ids
    )
    return AbundanceTable.from_dataframe(frame, sample_metadata=meta, source="toy.csv")


def test_gan_workflow_splits_by_subject_fits_and_evaluates(one_thread, counts_table):
    result = train_model(
        counts_table,
        iterations=3,
        gan_params=SMALL_GAN,
        subject_column="person",
        test_fraction=0.25,
        random_state=2,
        min_depth=1000,
        evaluate=True,
        n_evaluate=40,
    )
    assert isinstance(result.model, CompositionWGAN) and result.model.random_state == 2
    assert result.model.depths_ is not None  # read counts: read sampling on
    kept = counts_table.depth >= 1000
    assert len(result.train) + len(result.heldout) == int(kept.sum())
    people = counts_table.sample_metadata["person"]
    assert not set(people[result.train.index]) & set(people[result.heldout.index])
    np.testing.assert_allclose(result.train.sum(axis=1), 1.0)
    assert result.training["subject_column"] == "person"
    assert result.training["n_heldout"] == len(result.heldout)
    assert result.near_copy_filter.reference_.shape == result.train.shape
    assert result.metrics["n_synthetic"] == 40 and result.metrics["memorisation"] is not None
    assert result.history is not None and len(result.history) == 3
    again = train_model(
        counts_table,
        iterations=3,
        gan_params=SMALL_GAN,
        subject_column="person",
        test_fraction=0.25,
        random_state=2,
        min_depth=1000,
    )
    np.testing.assert_array_equal(again.model.sample(10), result.model.sample(10))
    assert again.metrics is None


def test_save_and_load_round_trip(one_thread, tmp_path, counts_table):
    result = train_model(
        counts_table, iterations=2, gan_params=SMALL_GAN, subject_column="person", random_state=0
    )
    written = result.save(tmp_path / "m")
    names = sorted(p.name for p in written)
    assert names == sorted(
        ["model.json", "model.safetensors", "train.csv", "heldout.csv", "history.csv"]
    )
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["training"]["subject_column"] == "person"
    loaded = TrainResult.load(tmp_path / "m")
    pd.testing.assert_frame_equal(loaded.train, result.train, check_names=False, atol=1e-9)
    assert loaded.near_copy_filter.threshold_ == pytest.approx(result.near_copy_filter.threshold_)
    np.testing.assert_array_equal(loaded.model.sample(8, seed=3), result.model.sample(8, seed=3))
    model, _ = load_model(tmp_path / "m")
    assert model.get_params() == result.model.get_params()


def test_baselines_and_relative_tables(counts_table):
    dm = train_model(counts_table, model="dirichlet-multinomial", random_state=4)
    assert isinstance(dm.model, DirichletMultinomial) and dm.model.random_state == 4
    assert dm.training["read_counts"] is True
    rel = train_model(counts_table, model="bootstrap", relative=True, test_fraction=0)
    assert rel.heldout is None and rel.training["read_counts"] is False
    assert len(rel.train) == 40  # no depth filter on relative tables
    assert any("own subject" in note for note in rel.notes)  # auto: no subject_rsid column


def test_atlas_signal_is_never_read_sampled(one_thread):
    atlas = load_hitchip_atlas(baseline_only=True)
    small = atlas.subset(samples=atlas.samples[:60]).filter(max_taxa=12)
    result = train_model(small, iterations=1, gan_params=SMALL_GAN, subject_column="subject")
    assert result.model.depths_ is None and result.training["read_counts"] is False
    x = result.train.to_numpy()
    assert result.model.min_abundance_ == pytest.approx(x[x > 0].min())


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"model": "vae"}, ConfigError, "model"),
        ({"test_fraction": 0.95}, ConfigError, "test_fraction"),
        ({"near_copy_quantile": 0.0}, ConfigError, "near_copy_quantile"),
        ({"min_depth": float("inf")}, ConfigError, "min_depth"),
        ({"min_depth": 1e9}, DataError, "min_depth"),
        ({"subject_column": "nobody"}, DataError, "subject_column"),
        ({"condition_column": "nothing"}, DataError, "condition_column"),
        ({"test_fraction": 0.9, "subject_column": "person"}, DataError, "test_fraction"),
        ({"max_taxa": 1}, DataError, "table"),
    ],
)
def test_errors_name_the_argument(counts_table, kwargs, error, field):
    with pytest.raises(error) as info:
        train_model(counts_table, **{"model": "bootstrap", **kwargs})
    assert info.value.field == field


def test_notes_report_missing_subjects_and_tiny_hold_outs(counts_table):
    plain = AbundanceTable.from_dataframe(counts_table.counts_or_values.iloc[:12])
    result = train_model(plain, model="bootstrap", test_fraction=0.1)
    assert any("own subject" in note for note in result.notes)
    assert any("held-out samples" in note for note in result.notes)
