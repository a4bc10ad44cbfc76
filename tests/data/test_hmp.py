"""The shipped HMP table, its provenance, the subject split and the model-taxon aggregation."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biofluxopt._util import ConfigError
from biofluxopt.data import (
    aggregate_to_model_taxa,
    data_file,
    hitchip_lineages,
    load_hitchip_atlas,
    load_hmp,
    read_table,
    train_test_split_by_subject,
)
from biofluxopt.knowledge import load_taxa

MODEL_IDS = [t.id for t in load_taxa()]


def test_load_hmp_defaults_match_readme():
    hmp = load_hmp()
    assert hmp.shape == (306, 187)
    assert hmp.kind == "counts"
    assert (hmp.depth >= 1000).all()
    meta = hmp.sample_metadata
    assert meta["is_primary_run"].all()
    assert meta["srs"].is_unique  # one run per specimen
    sparsity = (hmp.counts_or_values == 0).mean(axis=1).mean()
    assert 0.78 < sparsity < 0.86  # README: ~0.83 over all runs


def test_load_hmp_filters():
    assert load_hmp(min_reads=0, primary_only=False).shape == (388, 187)
    assert load_hmp(min_reads=0).shape[0] == 313
    assert load_hmp(min_reads=10_000).depth.min() >= 10_000


def test_shipped_provenance_names_source_and_licences():
    text = data_file("PROVENANCE.md").read_text()
    for needle in (
        "CC0",
        "Artistic",
        "fe2a1c8c60681aa6df076359c014fd57defc7fab",
        "doi:10.1038/nature11234",
    ):
        assert needle in text


@pytest.mark.parametrize(
    "name",
    [
        "hmp_v35_stool_genus_counts.csv",
        "hmp_v35_stool_samples.csv",
        "hmp_v13_stool_genus_counts.csv",
        "hmp_v13_stool_samples.csv",
        "atlas1006_hitchip_genus_abundance.csv.gz",
        "atlas1006_samples.csv.gz",
        "atlas1006_taxonomy.csv",
    ],
)
def test_shipped_files_match_the_sha256_in_provenance(name):
    digest = hashlib.sha256(data_file(name).read_bytes()).hexdigest()
    assert digest in data_file("PROVENANCE.md").read_text()


def test_load_hmp_v13():
    v13 = load_hmp("v13")
    assert v13.shape == (171, 128) and v13.kind == "counts"
    assert (v13.depth >= 1000).all()
    assert v13.sample_metadata["subject_rsid"].nunique() == 136
    assert load_hmp("v13", min_reads=0, primary_only=False).shape == (210, 128)
    # Same people as V3-V5, other primers: most V1-V3 subjects also appear in V3-V5.
    shared = set(v13.sample_metadata["subject_rsid"]) & set(
        load_hmp().sample_metadata["subject_rsid"]
    )
    assert len(shared) > 100
    with pytest.raises(ConfigError, match="region"):
        load_hmp("v4")


def test_load_hitchip_atlas():
    atlas = load_hitchip_atlas()
    assert atlas.shape == (1151, 130)
    assert atlas.kind == "abundance"  # integer microarray signal, not reads
    meta = atlas.sample_metadata
    assert meta["subject"].nunique() == 1006
    assert (meta["time"] == 0).sum() == 1006
    baseline = load_hitchip_atlas(baseline_only=True)
    assert baseline.shape == (1006, 130)
    assert baseline.sample_metadata["subject"].is_unique
    assert baseline.filter(max_taxa=50).kind == "abundance"
    sparsity = (atlas.counts_or_values == 0).mean(axis=1).mean()
    assert 0.18 < sparsity < 0.24  # the atlas README: 0.21


def test_subject_split_is_disjoint_and_deterministic():
    hmp = load_hmp()
    train, test = train_test_split_by_subject(hmp, test_fraction=0.25, seed=3)
    subj_train = set(train.sample_metadata["subject_rsid"])
    subj_test = set(test.sample_metadata["subject_rsid"])
    assert not subj_train & subj_test
    assert len(train.samples) + len(test.samples) == 306
    assert 0.15 < len(test.samples) / 306 < 0.35
    again = train_test_split_by_subject(hmp, test_fraction=0.25, seed=3)[1]
    assert again.samples == test.samples
    other = train_test_split_by_subject(hmp, test_fraction=0.25, seed=4)[1]
    assert other.samples != test.samples


def test_aggregate_hmp_to_model_taxa():
    model = aggregate_to_model_taxa(load_hmp())
    assert list(model.columns) == MODEL_IDS
    np.testing.assert_allclose(model.sum(axis=1), 1.0)
    means = model.mean()
    # Bacteroides alone is ~50 % of HMP stool; Bacteroidales and Clostridiales dominate.
    assert means["bacteroidales"] > 0.5
    assert means["clostridiales"] > 0.15
    assert means["streptomyces"] == 0.0


def test_aggregate_maps_by_lineage_and_accepts_frames():
    frame = pd.DataFrame(
        {"Akkermansia": [1.0, 0.0], "Bacteroides": [1.0, 2.0], "Unknownia": [2.0, 2.0]},
        index=["a", "b"],
    )
    model = aggregate_to_model_taxa(frame)
    assert list(model.columns) == MODEL_IDS
    assert model.loc["a", "akkermansia"] == pytest.approx(0.25)
    # Bare genus names of common gut genera map too; unknown genera go to "other".
    assert model.loc["b", "bacteroidales"] == pytest.approx(0.5)
    assert model.loc["b", "other"] == pytest.approx(0.5)
    renamed = aggregate_to_model_taxa(
        frame,
        lineages={
            "Unknownia": "g__Bifidobacterium",
            "Bacteroides": "o__Bacteroidales;g__Bacteroides",
        },
    )
    assert renamed.loc["a", "bifidobacterium"] == pytest.approx(0.5)
    assert renamed.loc["b", "bacteroidales"] == pytest.approx(0.5)


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_aggregation_is_closed_and_permutation_invariant(data):
    hmp = load_hmp().counts_or_values
    rows = data.draw(st.lists(st.integers(0, len(hmp) - 1), min_size=1, max_size=5, unique=True))
    sub = hmp.iloc[rows]
    perm = data.draw(st.permutations(list(sub.columns)))
    a = aggregate_to_model_taxa(sub)
    b = aggregate_to_model_taxa(sub[perm])
    np.testing.assert_allclose(a.sum(axis=1), 1.0)
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), atol=1e-12)


def test_atlas_maps_onto_model_taxa_through_its_shipped_lineages():
    atlas = load_hitchip_atlas()
    assert "lineage" in atlas.taxon_metadata
    model = aggregate_to_model_taxa(atlas)
    np.testing.assert_allclose(model.sum(axis=1), 1.0)
    same = aggregate_to_model_taxa(atlas, lineages=hitchip_lineages(atlas.taxon_metadata))
    np.testing.assert_allclose(model.to_numpy(), same.to_numpy())
    means = model.mean()
    # HITChip stool: Firmicutes clusters dominate, Bacteroidetes second; all agents but the
    # non-gut Streptomyces and Propionibacterium (a transient probiotic that no stool lineage
    # maps to) are detected.
    assert means["clostridiales"] > means["bacteroidales"] > 0.05
    assert (means.drop(["streptomyces", "propionibacterium"]) > 0).all()
    assert means["other"] < 0.15


def test_shipped_tables_read_back_through_read_table():
    hmp = read_table(
        data_file("hmp_v13_stool_genus_counts.csv"),
        sample_metadata=data_file("hmp_v13_stool_samples.csv"),
    )
    assert hmp.shape == (210, 128) and hmp.kind == "counts"
