"""Simulated-cohort inputs: documented host-factor distributions and real compositions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from biofluxopt._util import ConfigError
from biofluxopt.bn import (
    DIET_SHARES,
    LITERATURE_PRIORS,
    discretise_cohort,
    sample_compositions,
    sample_host_factors,
)


def test_host_factors_follow_the_documented_distributions():
    hosts = sample_host_factors(20000, seed=0)
    shares = hosts["diet"].value_counts(normalize=True)
    for diet, share in DIET_SHARES.items():
        assert shares[diet] == pytest.approx(share, abs=0.015)
    fut2 = next(p for p in LITERATURE_PRIORS if p.node == "fut2").table[()]
    assert (hosts["fut2"] == "nonsecretor").mean() == pytest.approx(fut2["nonsecretor"], abs=0.015)
    assert (hosts["mthfr_677"] == "TT").mean() == pytest.approx(0.15, abs=0.015)
    assert (hosts["tcn2_776"] == "GG").mean() == pytest.approx(0.16, abs=0.015)
    median = hosts.groupby("diet")["b12_intake_ug_per_day"].median()
    assert median["omnivore"] == pytest.approx(4.5, rel=0.05)
    assert median["vegan"] == pytest.approx(0.45, rel=0.1)
    users = hosts.assign(user=hosts["supplement_ug_per_day"] > 0).groupby("diet")["user"].mean()
    assert users["vegan"] == pytest.approx(0.5, abs=0.06)
    old = hosts["age_years"] >= 65
    impaired = hosts["gastric_release"] == "impaired"
    assert impaired[old].mean() == pytest.approx(0.20, abs=0.03)
    assert impaired[hosts["age_years"] < 50].mean() == pytest.approx(0.05, abs=0.015)


def test_host_factors_are_deterministic_and_valid():
    a, b = sample_host_factors(50, seed=3), sample_host_factors(50, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(sample_host_factors(50, seed=4))
    assert (a["b12_intake_ug_per_day"] >= 0).all() and (a["supplement_ug_per_day"] >= 0).all()
    assert a["patient_id"].is_unique
    with pytest.raises(ConfigError, match="n: must be an integer >= 1; got 0"):
        sample_host_factors(0)


def test_compositions_are_real_hmp_rows():
    comps = sample_compositions(40, seed=1)
    np.testing.assert_allclose(comps.sum(axis=1), 1.0, atol=1e-9)
    assert (comps.to_numpy() >= 0).all()
    from biofluxopt.knowledge import load_taxa

    assert list(comps.columns) == [t.id for t in load_taxa()]


def test_discretise_cohort_uses_literature_cutoffs():
    n = 60
    rng = np.random.default_rng(0)
    cohort = pd.concat([sample_host_factors(n, seed=0), sample_compositions(n, seed=0)], axis=1)
    cohort["serum_b12_pmol_l"] = rng.uniform(50, 600, n)
    cohort["mma_umol_l"] = rng.uniform(0.1, 1.0, n)
    table, disc = discretise_cohort(cohort)
    assert "patient_id" not in table.columns and "streptomyces" not in table.columns
    assert set(table["serum_b12"]) <= {"deficient", "marginal", "normal"}
    assert disc.interval("serum_b12", "marginal") == (148.0, 258.0)
    assert (table.nunique() >= 2).all() and (table.nunique() <= 4).all()
