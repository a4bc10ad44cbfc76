"""The simulator's causal graph (knowledge base) and scoring against it."""

from __future__ import annotations

import time

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from biofluxopt._util import ConfigError
from biofluxopt.bn import TIERS, score_against_simulator
from biofluxopt.bn._discretise import AGGREGATE_NODES
from biofluxopt.knowledge import load_sim_causal_graph, load_taxa


@pytest.fixture(scope="module")
def truth():
    return load_sim_causal_graph()


def test_graph_is_a_dag_over_bn_nodes(truth):
    assert nx.is_directed_acyclic_graph(truth)
    taxa = {t.id for t in load_taxa()}
    tiered = {v for tier in TIERS for v in tier}
    # aggregates (body store = liver + peripheral + plasma) are known to the expert tiers but
    # are not nodes of the causal graph
    assert set(truth.nodes()) == taxa | (tiered - set(AGGREGATE_NODES))
    assert {"liver_store", "peripheral_store"} <= set(truth.nodes())


def test_tiers_agree_with_the_expert_knowledge(truth):
    expert = {v: i for i, tier in enumerate(TIERS) for v in tier}
    for node, data in truth.nodes(data=True):
        assert data["tier"] == expert.get(node, 1), node
    for u, v in truth.edges():
        assert truth.nodes[u]["tier"] <= truth.nodes[v]["tier"], (u, v)


def test_known_mechanisms_are_present(truth):
    for u, v in [
        ("intrinsic_factor", "absorbed"),
        ("mthfr_677", "hcy"),
        ("fut2", "serum_b12"),
        ("tcn2_776", "holotc"),
        ("diet", "b12_intake"),
    ]:
        assert truth.has_edge(u, v)
    assert frozenset(("liver_store", "ileal_free_cobalamin")) in truth.graph["unscored_pairs"]
    assert frozenset(("clostridiales", "bacteroidales")) in truth.graph["unscored_pairs"]


def test_scoring_ignores_unscored_pairs(truth):
    learned = nx.DiGraph()
    learned.add_nodes_from(truth.nodes())
    learned.add_edges_from(
        [("diet", "b12_intake"), ("clostridiales", "bacteroidales"), ("serum_b12", "diet")]
    )
    s = score_against_simulator(learned, truth)
    scored = [e for e in truth.edges() if frozenset(e) not in truth.graph["unscored_pairs"]]
    assert s["n_nodes"] == truth.number_of_nodes()
    assert (s["tp"], s["fp"], s["fn"]) == (1, 1, len(scored) - 1)
    major = score_against_simulator(nx.DiGraph([("tcn2_776", "hcy")]), truth, major_only=True)
    assert major["n_true_edges"] == 0 and major["fp"] == 0  # a minor edge is unscored


def test_absent_nodes_are_projected_out(truth):
    # Without ileal_free_cobalamin, intake acts on absorption directly.
    learned = nx.DiGraph([("b12_intake", "absorbed"), ("intrinsic_factor", "absorbed")])
    s = score_against_simulator(learned, truth)
    assert s["f1"] == 1.0 and s["n_nodes"] == 3


def test_malformed_graph_file_is_named(tmp_path):
    bad = tmp_path / "g.toml"
    bad.write_text(
        '[[node]]\nid = "a"\ntier = 0\n[[edge]]\nsource = "a"\ntarget = "b"\n'
        'effect = "major"\nmechanism = "because"\n'
    )
    with pytest.raises(ConfigError, match=r"g\.toml.*unknown node 'b'"):
        load_sim_causal_graph(bad)
    cyclic = tmp_path / "c.toml"
    cyclic.write_text(
        '[[node]]\nid = "a"\ntier = 0\n[[node]]\nid = "b"\ntier = 0\n'
        '[[edge]]\nsource = "a"\ntarget = "b"\neffect = "major"\nmechanism = "ab ab"\n'
        '[[edge]]\nsource = "b"\ntarget = "a"\neffect = "minor"\nmechanism = "ba ba"\n'
    )
    with pytest.raises(ConfigError, match="cycle"):
        load_sim_causal_graph(cyclic)


def test_projection_marginalises_left_out_nodes():
    from biofluxopt.bn import project_graph

    g = nx.DiGraph()
    g.add_edge("a", "m", effect="major", mechanism="a to m")
    g.add_edge("m", "c", effect="major", mechanism="m to c")
    g.add_edge("b", "m", effect="minor", mechanism="b to m")
    p = project_graph(g, ["a", "b", "c"])
    assert set(p.edges()) == {("a", "c"), ("b", "c")}
    assert p.edges["a", "c"]["effect"] == "major" and p.edges["b", "c"]["effect"] == "minor"


def test_no_supplement_edge_into_microbial_production(truth):
    # cross-sectional cohorts sit at the regimen's steady state (see the graph file's comment)
    for product in ("microbial_cobalamin", "microbial_analogue"):
        assert not truth.has_edge("supplement", product)
    assert truth.has_edge("supplement", "colon_propionate")


def test_ground_truth_table_mixed_reads_the_numbers():
    from biofluxopt.bn import ground_truth_table

    rng = np.random.default_rng(0)
    intake = rng.lognormal(1.0, 0.5, 400)
    absorbed = 0.5 * intake * rng.lognormal(0, 0.2, 400)
    numbers = pd.DataFrame({"b12_intake": intake, "absorbed": absorbed})
    table = numbers.apply(lambda c: pd.qcut(c, 3, labels=["lo", "mid", "hi"]).astype(str))
    with pytest.raises(ConfigError, match="numbers"):
        ground_truth_table(table, methods=("mixed",))
    start = time.perf_counter()
    rows = ground_truth_table(table, methods=("mixed",), numbers=numbers)
    wall = time.perf_counter() - start
    assert set(rows["scope"]) == {"all", "major", "learned"}
    # one fit, timed once, reported on each scope row; in seconds, within the call's wall time
    assert rows["seconds"].nunique() == 1
    assert 0 < rows["seconds"].iloc[0] <= wall
    # intake -> absorbed is the projected truth (via ileal free B12): found
    assert rows.loc[rows["scope"] == "all", "f1"].item() == 1.0
