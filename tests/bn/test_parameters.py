"""Literature Dirichlet priors and conjugate Bayesian updating."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biofluxopt._util import ConfigError, DataError
from biofluxopt.bn import LITERATURE_PRIORS, DirichletParameters, fit_parameters

STATES = {
    "diet": ["omnivore", "vegan", "vegetarian"],
    "fut2": ["nonsecretor", "secretor"],
    "serum_b12": ["deficient", "marginal", "normal"],
    "mma": ["elevated", "high", "normal"],
}
GRAPH = nx.DiGraph([("diet", "serum_b12"), ("fut2", "serum_b12"), ("serum_b12", "mma")])


def _rows(draw_codes: list[list[int]]) -> pd.DataFrame:
    cols = list(STATES)
    return pd.DataFrame(
        [
            [STATES[c][code % len(STATES[c])] for c, code in zip(cols, row, strict=True)]
            for row in draw_codes
        ],
        columns=cols,
    )


row = st.lists(st.integers(0, 2), min_size=4, max_size=4)


@settings(max_examples=30, deadline=None)
@given(st.lists(row, min_size=1, max_size=40), st.lists(row, min_size=1, max_size=40))
def test_sequential_updates_equal_one_fit_on_the_union(batch1, batch2):
    a, b = _rows(batch1), _rows(batch2)
    sequential = DirichletParameters(GRAPH, STATES).update(a).update(b)
    union = DirichletParameters(GRAPH, STATES).update(pd.concat([a, b], ignore_index=True))
    for node in GRAPH.nodes():
        np.testing.assert_allclose(sequential.alpha_[node], union.alpha_[node])
    m1, m2 = sequential.model(), union.model()
    for node in GRAPH.nodes():
        np.testing.assert_allclose(m1.get_cpds(node).values, m2.get_cpds(node).values)


def test_posterior_matches_pgmpy_bayesian_estimator():
    from pgmpy.models import DiscreteBayesianNetwork
    from pgmpy.parameter_estimator import DiscreteBayesianEstimator

    rng = np.random.default_rng(0)
    data = _rows(rng.integers(0, 3, size=(200, 4)).tolist())
    params = DirichletParameters(GRAPH, STATES).fit()
    prior = {k: v.copy() for k, v in params.alpha_.items()}
    ours = params.update(data).model()
    ref = DiscreteBayesianNetwork(GRAPH.edges())
    ref.fit(
        data,
        estimator=DiscreteBayesianEstimator(
            prior_type="dirichlet", pseudo_counts=prior, state_names=STATES
        ),
    )
    for node in GRAPH.nodes():
        np.testing.assert_allclose(ours.get_cpds(node).values, ref.get_cpds(node).values)


def test_literature_prior_without_data():
    params = DirichletParameters(GRAPH, STATES, literature_ess=50).fit()
    model = params.model()
    serum = model.get_cpds("serum_b12")
    # Marginalise fut2 (uniform): P(deficient | vegan) = 0.60 from Gilsing 2010.
    vegan = serum.values[0, STATES["diet"].index("vegan"), :]
    assert vegan == pytest.approx([0.60, 0.60])
    fut2 = model.get_cpds("fut2").values
    assert fut2[STATES["fut2"].index("nonsecretor")] == pytest.approx(0.20)
    assert params.alpha_["fut2"].sum() == pytest.approx(50)
    assert params.alpha_["serum_b12"].sum() == pytest.approx(50)
    assert params.prior_sources_["mma"].startswith("BDeu")


def test_prior_ignored_when_states_differ():
    states = dict(STATES, fut2=["0", "1"])
    params = DirichletParameters(GRAPH, states).fit()
    assert params.prior_sources_["fut2"].startswith("BDeu")


def test_data_outweighs_prior_with_many_rows():
    data = pd.DataFrame({"fut2": ["secretor"] * 5000})
    graph = nx.DiGraph()
    graph.add_node("fut2")
    model, _ = fit_parameters(graph, data, state_names={"fut2": STATES["fut2"]})
    assert model.get_cpds("fut2").values[STATES["fut2"].index("secretor")] > 0.99


def test_fit_starts_from_the_prior_and_update_continues():
    """``fit`` = the prior plus ``data`` (and refitting forgets earlier data); ``update`` on an
    unfitted estimator starts from the prior, like ``partial_fit``."""
    rng = np.random.default_rng(1)
    a = _rows(rng.integers(0, 3, size=(30, 4)).tolist())
    b = _rows(rng.integers(0, 3, size=(20, 4)).tolist())
    fitted = DirichletParameters(GRAPH, STATES).fit(a)
    updated = DirichletParameters(GRAPH, STATES).update(a)
    refitted = DirichletParameters(GRAPH, STATES).fit(b).fit(a)
    prior = DirichletParameters(GRAPH, STATES).fit()
    for node in GRAPH.nodes():
        np.testing.assert_array_equal(fitted.alpha_[node], updated.alpha_[node])
        np.testing.assert_array_equal(fitted.alpha_[node], refitted.alpha_[node])
        counts = fitted.alpha_[node] - prior.alpha_[node]
        assert counts.sum() == pytest.approx(len(a))
    assert fitted.n_seen_ == refitted.n_seen_ == len(a)


def test_options_and_states_are_checked_in_fit():
    from sklearn.exceptions import NotFittedError

    unfitted = DirichletParameters(GRAPH, STATES, literature_ess=0)  # stored, not checked
    assert unfitted.literature_ess == 0
    with pytest.raises(NotFittedError):
        unfitted.model()
    with pytest.raises(ConfigError, match=r"DirichletParameters.literature_ess: must be"):
        unfitted.fit()
    with pytest.raises(ConfigError, match=r"DirichletParameters.default_ess: .*got -1"):
        DirichletParameters(GRAPH, STATES, default_ess=-1).fit()
    with pytest.raises(DataError, match=r"no states given for nodes \['mma'\]"):
        DirichletParameters(GRAPH, {k: v for k, v in STATES.items() if k != "mma"}).fit()


def test_literature_tables_are_distributions():
    for prior in LITERATURE_PRIORS:
        for key, dist in prior.table.items():
            assert len(key) == len(prior.parents)
            assert sum(dist.values()) == pytest.approx(1.0), prior.node
        assert prior.source


def test_unknown_states_in_update():
    params = DirichletParameters(GRAPH, STATES)
    bad = _rows([[0, 0, 0, 0]]).assign(diet="carnivore")
    with pytest.raises(DataError, match=r"diet.*carnivore"):
        params.update(bad)


@settings(max_examples=20, deadline=None)
@given(st.lists(row, min_size=1, max_size=40))
def test_em_without_missing_cells_is_the_conjugate_update(rows):
    data = _rows(rows)
    plain = DirichletParameters(GRAPH, STATES).update(data)
    em = DirichletParameters(GRAPH, STATES).update_em(data)
    for node in GRAPH.nodes():
        np.testing.assert_allclose(em.alpha_[node], plain.alpha_[node], rtol=0, atol=1e-12)
    assert em.n_seen_ == plain.n_seen_ == len(data)


def test_em_recovers_what_dropping_rows_biases():
    """X -> Y, binary. X is hidden in 60 % of the rows where Y = 1 (missing at random given Y):
    the complete rows under-represent Y = 1 and so X = 1; EM uses every row and is not biased."""
    rng = np.random.default_rng(0)
    n = 20_000
    x = rng.random(n) < 0.5
    y = rng.random(n) < np.where(x, 0.8, 0.2)
    hide = y & (rng.random(n) < 0.6)
    data = pd.DataFrame(
        {
            "x": np.where(hide, None, np.where(x, "one", "zero")).astype(object),
            "y": np.where(y, "one", "zero").astype(object),
        }
    )
    graph = nx.DiGraph([("x", "y")])
    states = {"x": ["one", "zero"], "y": ["one", "zero"]}
    em = DirichletParameters(graph, states, default_ess=1.0).update_em(data)
    dropped = DirichletParameters(graph, states, default_ess=1.0).update(data.dropna())
    p_em = em.model().get_cpds("x").values[0]
    p_drop = dropped.model().get_cpds("x").values[0]
    assert abs(p_em - 0.5) < 0.015
    assert abs(p_drop - 0.5) > 0.1
    # P(y | x) is not biased by this kind of missingness; EM keeps it.
    cpd = em.model().get_cpds("y")
    assert cpd.values[0, 0] == pytest.approx(0.8, abs=0.02)  # P(y=one | x=one)
    assert em.n_seen_ == n


def test_em_refuses_rows_with_too_many_missing_cells():
    graph = nx.DiGraph([(f"v{i}", f"v{i + 1}") for i in range(17)])
    states = {f"v{i}": ["a", "b"] for i in range(18)}
    data = pd.DataFrame([{f"v{i}": "a" for i in range(18)}, {f"v{i}": None for i in range(18)}])
    with pytest.raises(DataError, match="misses 18 cells"):
        DirichletParameters(graph, states).update_em(data)
