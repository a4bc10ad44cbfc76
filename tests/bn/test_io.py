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


def _sample(name: str, n: int, seed: int = 0):
    import warnings

    from pgmpy.utils import get_example_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = get_example_model(name)
        return model, model.simulate(n, seed=seed, show_progress=False)


@pytest.mark.parametrize(
    ("name", "column", "min_f1"), [("child", "ChestXray", 0.75), ("insurance", "ThisCarDam", 0.6)]
)
def test_benchmark_tables_with_many_states_and_a_state_named_none(tmp_path, name, column, min_f1):
    """Issue 9: ChestXray has 5 states, ThisCarDam a state called ``None``; both were refused.
    Through a CSV file, read verbatim, they learn, and the states survive the BIF round trip."""
    import networkx as nx

    from biofluxopt.bn import read_table, skeleton_scores

    model, data = _sample(name, 1000)
    path = tmp_path / f"{name}.csv"
    data.to_csv(path, index=False)
    table = read_table(path)
    assert table.notna().all().all()
    result = learn_network(table, expert=False)
    states = result.model.get_cpds(column).state_names[column]
    truth_states = [str(s) for s in model.get_cpds(column).state_names[column]]
    assert len(states) == len(truth_states) and ("None" in states) == (name == "insurance")
    f1 = skeleton_scores(result.learner.graph_, nx.DiGraph(model.edges()))["f1"]
    assert f1 >= min_f1
    result.save(tmp_path / "net")
    loaded = load_network(tmp_path / "net" / "network.bif")
    assert loaded.get_cpds(column).state_names[column] == states


def _with_holes(table: pd.DataFrame, column: str, every: int) -> pd.DataFrame:
    table = table.copy()
    table[column] = table[column].astype(object)
    table.loc[table.index[::every], column] = None
    return table


def test_missing_cells_drop_rows_or_em(asia_data):
    holed = _with_holes(asia_data, "xray", 4)
    dropped = learn_network(holed)
    assert dropped.missing == {
        "policy": "drop",
        "rows_with_missing": len(asia_data[::4]),
        "missing_cells": len(asia_data[::4]),
        "rows_for_structure": len(asia_data) - len(asia_data[::4]),
        "rows_for_parameters": len(asia_data) - len(asia_data[::4]),
    }
    assert dropped.parameters.n_seen_ == len(asia_data) - len(asia_data[::4])
    em = learn_network(holed, missing="em")
    assert em.missing["rows_for_parameters"] == em.parameters.n_seen_ == len(asia_data)
    assert sorted(em.learner.graph_.edges()) == sorted(dropped.learner.graph_.edges())
    # EM's CPTs are close to those fitted on the full data (the cells are missing at random).
    full = learn_network(asia_data)
    for node in ("xray", "either"):
        if set(full.model.get_parents(node)) == set(em.model.get_parents(node)):
            np.testing.assert_allclose(
                em.model.get_cpds(node).values, full.model.get_cpds(node).values, atol=0.05
            )
    with pytest.raises(DataError, match="unknown policy"):
        learn_network(asia_data, missing="impute")


def test_summary_json_is_strict(tmp_path, asia_data):
    result = learn_network(_with_holes(asia_data, "xray", 3), missing="em")
    result.save(tmp_path / "net")

    def refuse(token):
        raise AssertionError(f"non-standard JSON constant {token}")

    summary = json.loads((tmp_path / "net" / "summary.json").read_text(), parse_constant=refuse)
    assert summary["missing"]["policy"] == "em"


def test_save_network_refuses_a_foreign_directory(tmp_path, asia_data):
    from biofluxopt._util import ConfigError

    result = learn_network(asia_data)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "data.csv").write_text("keep me")
    with pytest.raises(ConfigError, match="not written by biofluxopt"):
        result.save(tmp_path / "mine")
    assert (tmp_path / "mine" / "data.csv").read_text() == "keep me"
    result.save(tmp_path / "net")
    with pytest.raises(ConfigError, match="--overwrite"):
        result.save(tmp_path / "net")
    result.save(tmp_path / "net", overwrite=True)


def test_graph_png_is_byte_stable(tmp_path, asia_data):
    result = learn_network(asia_data)
    result.save(tmp_path / "a")
    result.save(tmp_path / "b")
    assert (tmp_path / "a" / "graph.png").read_bytes() == (
        tmp_path / "b" / "graph.png"
    ).read_bytes()


def test_drawing_leaves_matplotlib_global_state_alone(tmp_path):
    """draw_network uses a Figure on its own Agg canvas: the backend a user chose stays, and
    no pyplot figure is opened (a fresh process, so no other test interferes; networkx's
    drawing functions import pyplot themselves)."""
    import subprocess
    import sys

    code = f"""
import sys, matplotlib
matplotlib.use("svg")
import networkx as nx
from pathlib import Path
from biofluxopt.bn import draw_network
path = Path({str(tmp_path / "g.png")!r})
draw_network(nx.DiGraph([("diet", "serum_b12"), ("serum_b12", "mma")]), path)
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
assert "matplotlib.pyplot" not in sys.modules or not sys.modules["matplotlib.pyplot"].get_fignums()
assert path.read_bytes()[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
