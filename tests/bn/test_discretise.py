"""Discretisation: literature cut-offs, quantile bins, reversibility and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biofluxopt._util import ConfigError, DataError
from biofluxopt.bn import LITERATURE_CUTOFFS, MAX_STATES, Discretiser, cohort_to_nodes, safe_state


def test_serum_cutoffs_follow_nhanes():
    df = pd.DataFrame({"serum_b12": [100.0, 147.99, 148.0, 257.9, 258.0, 900.0]})
    states = Discretiser().fit_transform(df)["serum_b12"].tolist()
    assert states == ["deficient", "deficient", "marginal", "marginal", "normal", "normal"]


def test_biomarker_cutoffs():
    df = pd.DataFrame(
        {"mma": [0.2, 0.271, 0.5], "hcy": [12.0, 14.0, 16.0], "holotc": [20, 50, 90.0]}
    )
    out = Discretiser().fit_transform(df)
    assert out["mma"].tolist() == ["normal", "elevated", "high"]
    assert out["hcy"].tolist() == ["normal", "intermediate", "high"]
    assert out["holotc"].tolist() == ["low", "indeterminate", "normal"]


def test_every_cutoff_has_a_source_and_few_states():
    for name, c in LITERATURE_CUTOFFS.items():
        assert len(c.labels) == len(c.edges) + 1 <= MAX_STATES, name
        assert list(c.edges) == sorted(c.edges), name
        assert c.source and c.unit, name


def test_cohort_names_drop_units():
    df = pd.DataFrame({"patient_id": ["a"], "serum_b12_pmol_l": [1.0], "diet": ["vegan"]})
    assert list(cohort_to_nodes(df).columns) == ["serum_b12", "diet"]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=5, max_size=60),
    st.integers(2, 4),
)
def test_quantile_labels_are_reversible(values, n_bins):
    df = pd.DataFrame({"x": np.asarray(values, dtype=float) + 0.5})  # avoid integer codes
    disc = Discretiser(n_quantile_bins=n_bins).fit(df)
    states = disc.transform(df)["x"]
    assert states.nunique() <= n_bins <= MAX_STATES
    for value, label in zip(df["x"], states, strict=True):
        if disc.bins_["x"].kind == "categorical":
            continue
        lo, hi = disc.interval("x", label)
        assert lo <= value < hi or (value == hi == max(df["x"]))
    back = disc.inverse_transform(states.to_frame())
    if disc.bins_["x"].kind != "categorical":
        assert all(v in iv or v == iv.right for v, iv in zip(df["x"], back["x"], strict=True))


def test_categorical_roundtrip_and_safe_labels():
    df = pd.DataFrame({"group": ["a b", "c/d", "a b"]})
    disc = Discretiser().fit(df)
    states = disc.transform(df)
    assert states["group"].tolist() == ["a_b", "c_d", "a_b"]
    assert disc.inverse_transform(states)["group"].tolist() == df["group"].tolist()
    assert safe_state("x=1,y") == "x_1_y"


def test_categorical_columns_keep_any_number_of_states():
    # The 4-state bound is for cutting numbers; labels such as "None" are states like any other.
    df = pd.DataFrame({"xray": list("abcdeabcde"), "damage": ["None", "Mild"] * 5})
    disc = Discretiser(source="t.csv").fit(df)
    assert disc.state_names_["xray"] == list("abcde")
    assert disc.state_names_["damage"] == ["Mild", "None"]
    assert disc.transform(df)["damage"].tolist() == ["None", "Mild"] * 5


def test_identifier_like_column_names_the_column():
    df = pd.DataFrame({"site": list("abcdef"), "ok": ["x"] * 6})
    with pytest.raises(DataError, match=r"t.csv: site: a different value in every row"):
        Discretiser(source="t.csv").fit(df)


def test_numeric_columns_are_still_cut_into_at_most_4_states():
    x = np.linspace(0, 1, 50)
    disc = Discretiser(n_quantile_bins=4).fit(pd.DataFrame({"x": x}))
    assert len(disc.state_names_["x"]) == 4
    with pytest.raises(ConfigError, match=r"n_quantile_bins: must be in 2\.\.4"):
        Discretiser(n_quantile_bins=5).fit(pd.DataFrame({"x": x}))


def test_empty_table_and_missing_cells():
    with pytest.raises(DataError, match="empty"):
        Discretiser().fit(pd.DataFrame())
    with pytest.raises(DataError, match="a: every cell is empty"):
        Discretiser().fit(pd.DataFrame({"a": [None, None], "b": [1.0, 2.0]}))
    df = pd.DataFrame({"a": ["x", None, "y"], "serum_b12": [100.0, np.nan, 300.0]})
    states = Discretiser().fit_transform(df)
    assert states["a"].tolist() == ["x", None, "y"]
    assert states["serum_b12"].tolist() == ["deficient", None, "normal"]


def test_unknown_state_at_transform_is_named():
    disc = Discretiser().fit(pd.DataFrame({"diet": ["vegan", "omnivore"]}))
    with pytest.raises(DataError, match=r"diet.*carnivore"):
        disc.transform(pd.DataFrame({"diet": ["carnivore"]}))
