"""Structure learning: recovery on asia, bootstrap strength, determinism, expert knowledge."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biofluxopt._util import ConfigError, DataError
from biofluxopt.bn import (
    TIERS,
    HybridStructureLearner,
    b12_expert_knowledge,
    learn_network,
    mixed_frame,
    read_table,
    skeleton_scores,
)

DATA = Path(__file__).parent / "data"


# Plain hill climbing depends on set iteration order (PYTHONHASHSEED): a looser floor.
@pytest.mark.parametrize(("method", "min_f1"), [("hybrid", 0.85), ("pc", 0.85), ("hc", 0.6)])
def test_methods_recover_most_of_asia(method, min_f1, asia_data, asia_truth):
    learner = HybridStructureLearner(method).fit(asia_data)
    assert nx.is_directed_acyclic_graph(learner.graph_)
    assert set(learner.graph_.nodes()) == set(asia_truth.nodes())
    assert skeleton_scores(learner.graph_, asia_truth)["f1"] >= min_f1


def test_hybrid_only_keeps_pairs_proposed_by_pc_or_hill_climbing(asia_data):
    pc = HybridStructureLearner("pc").fit(asia_data)
    hc = HybridStructureLearner("hc").fit(asia_data)
    hybrid = HybridStructureLearner("hybrid").fit(asia_data)
    proposed = {frozenset(e) for e in pc.skeleton_.edges()} | {
        frozenset(e) for e in hc.skeleton_.edges()
    }
    assert {frozenset(e) for e in hybrid.skeleton_.edges()} <= proposed


def test_bootstrap_strength_is_deterministic_and_bounded(asia_data):
    kwargs = dict(n_bootstrap=6, n_jobs=2, random_state=3)
    a = HybridStructureLearner(**kwargs).fit(asia_data)
    b = HybridStructureLearner(**kwargs).fit(asia_data)
    pd.testing.assert_frame_equal(a.arc_strength_, b.arc_strength_)
    s = a.arc_strength_
    assert list(s.columns) == ["source", "target", "strength", "direction"]
    assert s["strength"].between(0, 1).all() and s["direction"].between(0.5, 1).all()
    # The averaged network holds exactly the arcs at or above the threshold.
    kept = {frozenset(p) for p in s.loc[s["strength"] >= 0.5, ["source", "target"]].to_numpy()}
    assert {frozenset(e) for e in a.graph_.edges()} == kept


def test_bootstrap_serial_equals_parallel(asia_data):
    serial = HybridStructureLearner(n_bootstrap=4, n_jobs=1, random_state=1).fit(asia_data)
    parallel = HybridStructureLearner(n_bootstrap=4, n_jobs=2, random_state=1).fit(asia_data)
    pd.testing.assert_frame_equal(serial.arc_strength_, parallel.arc_strength_)


def _genotype_table(n=1500, seed=0):
    rng = np.random.default_rng(seed)
    fut2 = rng.choice(["secretor", "nonsecretor"], n, p=[0.8, 0.2])
    diet = rng.choice(["omnivore", "vegan"], n)
    # serum depends on both; a strong dependence lets any learner find the pairs.
    low = (diet == "vegan") ^ (rng.random(n) < 0.1)
    serum = np.where(low, "deficient", np.where(fut2 == "nonsecretor", "normal", "marginal"))
    mma = np.where((serum == "deficient") ^ (rng.random(n) < 0.1), "high", "normal")
    return pd.DataFrame({"fut2": fut2, "diet": diet, "serum_b12": serum, "mma": mma})


@pytest.mark.parametrize("method", ["hybrid", "pc", "hc", "mixed"])
def test_expert_knowledge_is_respected(method):
    data = _genotype_table()
    ek = b12_expert_knowledge(data.columns)
    g = HybridStructureLearner(method, expert_knowledge=ek).fit(data).graph_
    assert g.in_degree("fut2") == 0
    assert not g.has_edge("mma", "serum_b12") and not g.has_edge("serum_b12", "diet")
    assert g.has_edge("diet", "serum_b12") and g.has_edge("serum_b12", "mma")


def test_skeleton_scores_by_hand():
    truth = nx.DiGraph([("a", "b"), ("b", "c"), ("c", "d")])
    learned = nx.DiGraph([("b", "a"), ("b", "c"), ("a", "d")])
    s = skeleton_scores(learned, truth)
    assert (s["tp"], s["fp"], s["fn"]) == (2, 1, 1)
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["shd"] == 3  # one extra, one missing, one reversed
    assert skeleton_scores(truth, truth)["f1"] == 1.0


def test_bad_input():
    with pytest.raises(DataError, match="at least 2 rows"):
        HybridStructureLearner().fit(pd.DataFrame({"a": ["x"]}))
    with pytest.raises(DataError, match="missing values"):
        HybridStructureLearner().fit(pd.DataFrame({"a": ["x", None, "y"], "b": ["1", "2", "3"]}))
    with pytest.raises(ConfigError, match=r"HybridStructureLearner\.method: must be one of"):
        HybridStructureLearner("ges").fit(pd.DataFrame({"a": ["x", "y"], "b": ["1", "2"]}))


def test_prune_drops_score_added_arc_explained_by_parents():
    """Step 5: an arc outside the PC skeleton goes when it is independent given the parents;
    skeleton arcs and dependent additions stay."""
    from biofluxopt.bn._structure import _prune_additions

    rng = np.random.default_rng(0)
    n = 4000
    a = rng.integers(0, 2, n)
    b = np.where(rng.random(n) < 0.9, a, 1 - a)  # a -> b
    c = np.where(rng.random(n) < 0.9, a, 1 - a)  # a -> c; b ⊥ c | a
    d = np.where(rng.random(n) < 0.8, c, 1 - c)  # c -> d
    data = pd.DataFrame({"a": a, "b": b, "c": c, "d": d}).astype(str)
    dag = nx.DiGraph([("a", "b"), ("a", "c"), ("b", "c"), ("c", "d")])
    skeleton = {("a", "b"), ("a", "c")}
    pruned = _prune_additions(data, dag, skeleton, set(), "chi_square", 0.05)
    assert sorted(pruned.edges()) == [("a", "b"), ("a", "c"), ("c", "d")]
    # A required arc is never pruned.
    kept = _prune_additions(data, dag, skeleton, {("b", "c")}, "chi_square", 0.05)
    assert kept.has_edge("b", "c")


def _mixed_data(n=3000, seed=0):
    """g (genotype) -> x -> y (positive) -> w (binary state); z independent of all."""
    rng = np.random.default_rng(seed)
    g = rng.choice(["AA", "AB", "BB"], size=n, p=[0.25, 0.5, 0.25])
    x = np.array([{"AA": -1.0, "AB": 0.0, "BB": 1.0}[v] for v in g]) + rng.normal(0, 1, n)
    y = np.exp(0.8 * x + rng.normal(0, 0.5, n))
    w = np.where(np.log(y) + rng.normal(0, 0.7, n) > 0, "high", "low")
    z = rng.gamma(2.0, 1.0, n) * (rng.random(n) < 0.7)  # zero-inflated, independent
    return pd.DataFrame({"g": g, "x": x, "y": y, "w": w, "z": z})


def test_mixed_frame_logs_non_negative_numbers_and_keeps_categories():
    df = _mixed_data(200)
    out = mixed_frame(df)
    assert list(out.columns) == list(df.columns)
    assert isinstance(out["g"].dtype, pd.CategoricalDtype)
    assert isinstance(out["w"].dtype, pd.CategoricalDtype)
    np.testing.assert_allclose(out["x"], df["x"])  # has negatives: unchanged
    np.testing.assert_allclose(out["y"], np.log(df["y"]))
    half_min = df["z"][df["z"] > 0].min() / 2
    np.testing.assert_allclose(out["z"], np.log(df["z"] + half_min))
    binary = mixed_frame(pd.DataFrame({"b": [0, 1, 1, 0], "c": [1.0, 2.0, 3.0, 4.0]}))
    assert isinstance(binary["b"].dtype, pd.CategoricalDtype)


def test_mixed_recovers_a_chain_across_numeric_and_categorical_columns():
    truth = nx.DiGraph([("g", "x"), ("x", "y"), ("y", "w")])
    truth.add_node("z")
    a = HybridStructureLearner("mixed").fit(_mixed_data())
    assert skeleton_scores(a.graph_, truth)["f1"] == 1.0
    assert a.graph_.degree("z") == 0
    b = HybridStructureLearner("mixed").fit(_mixed_data())
    assert sorted(a.graph_.edges()) == sorted(b.graph_.edges())


def test_additive_residuals_follow_curves_and_give_probabilities_summing_to_one():
    from biofluxopt.bn._structure import _AdditiveResiduals

    rng = np.random.default_rng(1)
    X = np.column_stack([rng.normal(size=300), rng.integers(0, 2, 300)])  # numeric + indicator
    y = rng.integers(0, 3, size=300)
    p = _AdditiveResiduals().fit(X, y).predict_proba(X)
    assert p.shape == (300, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    linear = X @ np.array([1.0, -2.0]) + 3.0
    np.testing.assert_allclose(_AdditiveResiduals().fit(X, linear).predict(X), linear)
    # a saturating response, as in IF-limited absorption: splines take it, a line cannot
    dose = np.exp(X[:, 0])
    saturating = dose / (1.0 + dose)  # Michaelis-Menten in the dose
    resid = saturating - _AdditiveResiduals().fit(X, saturating).predict(X)
    line = np.column_stack([np.ones(300), X])
    resid_line = saturating - line @ np.linalg.lstsq(line, saturating, rcond=None)[0]
    assert np.abs(resid).max() < 0.2 * np.abs(resid_line).max()


def test_learn_network_mixed_fits_cpts_on_states():
    from biofluxopt.bn import learn_network

    net = learn_network(_mixed_data(1500), method="mixed", expert=False)
    assert net.learner.method == "mixed"
    assert set(net.model.nodes()) == {"g", "x", "y", "w", "z"}
    cpd = net.model.get_cpds("y")
    assert cpd.variable_card <= 4  # numbers became states for the CPTs


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(
        st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=3, max_size=30
    ),
    shift=st.floats(min_value=-50, max_value=50, allow_nan=False),
)
def test_mixed_frame_is_finite_and_order_preserving(values, shift):
    values = [*values, 0.0, 5e-324]  # zeros and a subnormal: the offset must stay positive
    df = pd.DataFrame({"nonneg": values, "signed": [v / 1e4 + shift for v in values]})
    out = mixed_frame(df)
    for col in df.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype):
            assert df[col].nunique() <= 2
            continue
        x, y = df[col].to_numpy(), out[col].to_numpy()
        assert np.isfinite(y).all()
        order = np.argsort(x, kind="stable")
        assert (np.diff(y[order]) >= -1e-12).all()  # monotone: ranks are kept


def test_column_names_hash_the_same_in_every_process():
    """Structure learning runs on ``_Var`` names: hash = position, equal only to itself."""
    import pickle

    from biofluxopt.bn._structure import _Var

    a, b = _Var(0, "zeta"), _Var(1, "alpha")
    assert hash(a) == 0 and hash(b) == 1
    assert a < b and sorted([b, a]) == [a, b] and str(b) == "alpha"
    assert a != "zeta" and a == _Var(0, "zeta")
    assert pickle.loads(pickle.dumps(a)) == a
    assert [v.index for v in {b, a}] == [0, 1]


def test_n_jobs_must_be_positive_or_minus_one(asia_data):
    for bad in (0, -2):
        with pytest.raises(ConfigError, match=r"HybridStructureLearner\.n_jobs: .*got "):
            HybridStructureLearner(n_bootstrap=2, n_jobs=bad).fit(asia_data)


@pytest.mark.parametrize("method", ["hybrid", "pc", "hc"])
def test_a_constant_column_gets_no_arcs(asia_data, method):
    """Issue 9: in a bootstrap resample of a small table a rare state can vanish; the constant
    column then collected every other node as a parent (pgmpy's chi-square calls it dependent
    on everything): a 38-million-entry CPT from 80 rows, minutes of CPU to write."""
    data = asia_data.assign(constant="x")
    learner = HybridStructureLearner(method).fit(data)
    assert learner.graph_.degree("constant") == 0
    plain = HybridStructureLearner(method).fit(asia_data)
    assert sorted(learner.graph_.edges()) == sorted(plain.graph_.edges())


# ----------------------------------------------------------------- tiers through ExpertKnowledge


def _capture_tiers(monkeypatch) -> list[dict]:
    """Record the tiers each single learning run receives."""
    from biofluxopt.bn import _structure

    seen: list[dict] = []
    original = _structure._learn_once

    def spy(data, **kwargs):
        seen.append(dict(kwargs["tiers"]))
        return original(data, **kwargs)

    monkeypatch.setattr(_structure, "_learn_once", spy)
    return seen


def _no_global_tier_table(monkeypatch) -> None:
    """Make the B12 tier table unreadable: the learner must not need it."""
    from biofluxopt.bn import _expert

    def refuse(*args, **kwargs):
        raise AssertionError("the learner read the global tier table")

    monkeypatch.setattr(_expert, "variable_tiers", refuse)
    monkeypatch.setattr(_expert, "_tier_of", refuse)


def test_tiers_come_from_the_expert_knowledge_only(monkeypatch):
    data = _genotype_table().assign(noise=lambda d: np.resize(["a", "b", "c"], len(d)))
    ek = b12_expert_knowledge(data.columns)  # built before the table is made unreadable
    _no_global_tier_table(monkeypatch)
    seen = _capture_tiers(monkeypatch)
    HybridStructureLearner(expert_knowledge=ek).fit(data)
    index = {v: i for i, tier in enumerate(TIERS) for v in tier}
    assert seen == [{v: index[v] for v in ("diet", "fut2", "mma", "serum_b12")}]
    # Same forbidden and required edges, no temporal order: no tiers, whatever the names.
    from pgmpy.causal_discovery import ExpertKnowledge

    untiered = ExpertKnowledge(forbidden_edges=ek.forbidden_edges, required_edges=ek.required_edges)
    seen.clear()
    HybridStructureLearner(expert_knowledge=untiered).fit(data)
    assert seen == [{}]


def test_tiers_follow_the_expert_knowledge_not_the_names(monkeypatch):
    """The same knowledge under other names (same sort order) learns the same graph."""
    from pgmpy.causal_discovery import ExpertKnowledge

    data = _genotype_table()
    ek = b12_expert_knowledge(data.columns)
    expected = HybridStructureLearner(expert_knowledge=ek).fit(data).graph_

    def name(v):
        return f"x_{v}"

    renamed = ExpertKnowledge(
        forbidden_edges={(name(u), name(v)) for u, v in ek.forbidden_edges},
        required_edges={(name(u), name(v)) for u, v in ek.required_edges},
        temporal_order=[[name(v) for v in tier] for tier in ek.temporal_order],
    )
    seen = _capture_tiers(monkeypatch)
    learned = HybridStructureLearner(expert_knowledge=renamed).fit(data.rename(columns=name))
    assert seen == [{name(v): t for v, t in ek.temporal_ordering.items()}]
    assert sorted(learned.graph_.edges()) == sorted((name(u), name(v)) for u, v in expected.edges())
    assert learned.ignored_knowledge_variables_ == []


STRUCTURES = json.loads((DATA / "cohort80_structures.json").read_text())
GENETICS_AND_AGE = ["fut2", "tcn2_776", "mthfr_677", "age_years"]


@pytest.mark.parametrize("key", [k for k in STRUCTURES if k != "note"])
def test_bn_learn_default_path_gives_the_recorded_structure(key):
    """``bn learn``'s pipeline learns what it learned before the tiers moved into
    ExpertKnowledge (edges recorded with the earlier code)."""
    columns, method, expert = key.split("/")
    table = read_table(DATA / "cohort80.csv")
    if columns == "nogenetics":
        table = table.drop(columns=GENETICS_AND_AGE)
    result = learn_network(table, method=method, expert=expert == "True", seed=0)
    assert [f"{u} -> {v}" for u, v in sorted(result.learner.graph_.edges())] == STRUCTURES[key]
