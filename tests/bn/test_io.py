"""Saving/loading networks and the learn_network workflow."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from biofluxopt._util import DataError
from biofluxopt.bn import learn_network, load_network, posterior


def test_learn_save_load_roundtrip(tmp_path, asia_data):
    result = learn_network(asia_data, n_bootstrap=3, seed=1)
    out = result.save(tmp_path / "net")
    names = {p.name for p in out.iterdir()}
    assert {"network.bif", "network.xmlbif", "graph.png", "arcs.csv", "summary.json"} <= names
    arcs = pd.read_csv(out / "arcs.csv")
    assert list(arcs.columns[:5]) == [
        "edge",
        "source",
        "target",
        "strength",
        "direction_confidence",
    ]
    assert arcs["in_network"].sum() == result.learner.graph_.number_of_edges()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "hybrid" and summary["rows"] == len(asia_data)
    ev = {"smoke": "yes"}
    expected = posterior(result.model, "lung", ev)
    for name in ("network.bif", "network.xmlbif"):
        loaded = load_network(out / name)
        got = posterior(loaded, "lung", ev)
        assert got.index.tolist() == expected.index.tolist()
        np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), atol=1e-6)


def test_numeric_cohort_columns_are_discretised(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    diet = rng.choice(["omnivore", "vegan"], n)
    serum = np.where(diet == "vegan", 120.0, 300.0) * np.exp(rng.normal(0, 0.2, n))
    table = pd.DataFrame(
        {"patient_id": [f"p{i}" for i in range(n)], "diet": diet, "serum_b12_pmol_l": serum}
    )
    result = learn_network(table)
    assert set(result.model.nodes()) == {"diet", "serum_b12"}
    assert result.model.get_cpds("serum_b12").state_names["serum_b12"] == [
        "deficient",
        "marginal",
        "normal",
    ]
    assert result.learner.graph_.has_edge("diet", "serum_b12")  # required by the tiers' order


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="no such network"):
        load_network(tmp_path / "missing.bif")
    bad = tmp_path / "bad.bif"
    bad.write_text("network x { garbage")
    with pytest.raises(DataError, match=r"bad\.bif"):
        load_network(bad)
    with pytest.raises(DataError, match=r"\.bif or \.xmlbif"):
        (tmp_path / "n.txt").write_text("")
        load_network(tmp_path / "n.txt")


def test_constant_and_badly_named_columns():
    with pytest.raises(DataError, match="at least 2 columns"):
        learn_network(pd.DataFrame({"a": ["x"] * 5, "b": ["1", "2", "1", "2", "1"]}))
    with pytest.raises(DataError, match="cannot be stored"):
        learn_network(pd.DataFrame({"a b": ["x", "y"], "c": ["1", "2"]}))
