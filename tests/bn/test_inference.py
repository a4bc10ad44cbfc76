"""Posterior queries, MPE and risk explanation."""

from __future__ import annotations

import networkx as nx
import pandas as pd
import pytest

from biofluxopt._util import DataError
from biofluxopt.bn import (
    DirichletParameters,
    explain,
    most_probable_explanation,
    parse_evidence,
    posterior,
)

STATES = {
    "diet": ["omnivore", "vegan", "vegetarian"],
    "fut2": ["nonsecretor", "secretor"],
    "serum_b12": ["deficient", "marginal", "normal"],
}


@pytest.fixture(scope="module")
def b12_model():
    """Literature priors only: diet -> serum_b12 <- fut2 (fut2 carries no literature effect)."""
    graph = nx.DiGraph([("diet", "serum_b12"), ("fut2", "serum_b12")])
    return DirichletParameters(graph, STATES).fit().model()


def test_posterior_matches_the_literature_table(b12_model):
    post = posterior(b12_model, "serum_b12", {"diet": "vegan"})
    assert list(post.index) == STATES["serum_b12"]
    assert post.sum() == pytest.approx(1.0)
    assert post["deficient"] == pytest.approx(0.60)


def test_posterior_agrees_with_pgmpy_on_asia(asia_model):
    from pgmpy.inference import VariableElimination

    ours = posterior(asia_model, "lung", {"smoke": "yes", "xray": "yes"})
    ref = VariableElimination(asia_model).query(["lung"], evidence={"smoke": "yes", "xray": "yes"})
    assert ours.to_numpy() == pytest.approx(ref.values)


def test_mpe_covers_all_unobserved(asia_model):
    mpe = most_probable_explanation(asia_model, {"dysp": "yes", "smoke": "yes"})
    assert set(mpe) == set(asia_model.nodes()) - {"dysp", "smoke"}
    assert mpe["bronc"] == "yes"  # bronchitis explains dyspnoea in a smoker


def test_explain_ranks_diet_above_an_irrelevant_factor(b12_model):
    ranked = explain(b12_model, {"diet": "vegan", "fut2": "nonsecretor"})
    assert ranked["factor"].tolist() == ["diet", "fut2"]
    top = ranked.iloc[0]
    assert top["effect"] > 0.2 and top["best_alternative"] == "omnivore"
    assert top["p_best_alternative"] < top["p_with"]
    assert ranked.iloc[1]["effect"] == pytest.approx(0.0, abs=1e-9)
    # p_with - p_without is the effect, by definition.
    assert (ranked["p_with"] - ranked["p_without"]).to_numpy() == pytest.approx(ranked["effect"])


def test_parse_evidence():
    assert parse_evidence("diet=vegan, fut2=nonsecretor") == {
        "diet": "vegan",
        "fut2": "nonsecretor",
    }
    assert parse_evidence("") == {}
    for bad in ("diet", "diet=", "=vegan", "diet=vegan,diet=omnivore"):
        with pytest.raises(DataError):
            parse_evidence(bad)


def test_unknown_names_and_states_are_named(b12_model):
    with pytest.raises(DataError, match=r"unknown variables \['age'\]"):
        posterior(b12_model, "serum_b12", {"age": "old"})
    with pytest.raises(DataError, match=r"'carnivore' of 'diet'"):
        posterior(b12_model, "serum_b12", {"diet": "carnivore"})
    with pytest.raises(DataError, match="unknown variables"):
        posterior(b12_model, "holotc", {})
    with pytest.raises(DataError, match="both target and evidence"):
        posterior(b12_model, "diet", {"diet": "vegan"})
    with pytest.raises(DataError, match="unknown state 'low'"):
        explain(b12_model, {"diet": "vegan"}, state="low")


def test_explain_output_is_a_table(b12_model):
    out = explain(b12_model, {"diet": "vegetarian"})
    assert isinstance(out, pd.DataFrame) and len(out) == 1


def _random_network(seed: int, n_nodes: int = 7, max_parents: int = 3):
    """A random DAG over ``v0 … v{n-1}`` (2–3 states each) with random CPTs."""
    import numpy as np
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    rng = np.random.default_rng(seed)
    names = [f"v{i}" for i in range(n_nodes)]
    cards = {v: int(rng.integers(2, 4)) for v in names}
    model = DiscreteBayesianNetwork()
    model.add_nodes_from(names)
    cpds = []
    for i, v in enumerate(names):
        k = int(rng.integers(0, min(i, max_parents) + 1))
        parents = sorted(rng.choice(names[:i], size=k, replace=False).tolist()) if k else []
        model.add_edges_from((p, v) for p in parents)
        columns = int(np.prod([cards[p] for p in parents])) if parents else 1
        table = rng.dirichlet(np.full(cards[v], 0.7), size=columns).T
        states = {u: [f"s{j}" for j in range(cards[u])] for u in [v, *parents]}
        cpds.append(
            TabularCPD(
                v,
                cards[v],
                table,
                evidence=parents or None,
                evidence_card=[cards[p] for p in parents] or None,
                state_names=states,
            )
        )
    model.add_cpds(*cpds)
    model.check_model()
    return model


def _joint(model):
    """Brute-force joint: list of (assignment, probability)."""
    import itertools

    names = sorted(model.nodes())
    states = {v: model.get_cpds(v).state_names[v] for v in names}
    rows = []
    for combo in itertools.product(*(states[v] for v in names)):
        a = dict(zip(names, combo, strict=True))
        p = 1.0
        for cpd in model.get_cpds():
            p *= cpd.values[tuple(cpd.state_names[u].index(a[u]) for u in cpd.variables)]
        rows.append((a, p))
    return rows


@pytest.mark.parametrize("seed", range(6))
def test_posterior_and_mpe_match_brute_force(seed):
    model = _random_network(seed)
    joint = _joint(model)
    evidence = {"v6": "s1", "v2": "s0"} if seed % 2 else {"v5": "s0"}
    consistent = [(a, p) for a, p in joint if all(a[k] == s for k, s in evidence.items())]
    best = max(consistent, key=lambda t: t[1])[0]
    mpe = most_probable_explanation(model, evidence)
    assert mpe == {k: v for k, v in best.items() if k not in evidence}
    target = "v3"
    ours = posterior(model, target, evidence)
    total = sum(p for _, p in consistent)
    for state, prob in ours.items():
        exact = sum(p for a, p in consistent if a[target] == state) / total
        assert prob == pytest.approx(exact, abs=1e-12)


def test_alarm_posterior_and_mpe(asia_model):
    import warnings

    from pgmpy.inference import VariableElimination
    from pgmpy.utils import get_example_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alarm = get_example_model("alarm")
    evidence = {"HR": "HIGH", "BP": "LOW"}
    ours = posterior(alarm, "LVFAILURE", evidence)
    ref = VariableElimination(alarm).query(["LVFAILURE"], evidence=evidence, show_progress=False)
    assert ours.to_numpy() == pytest.approx(ref.values, abs=1e-12)
    mpe = most_probable_explanation(alarm, evidence)
    assert len(mpe) == alarm.number_of_nodes() - 2


def test_inference_refuses_past_the_memory_limit(asia_model):
    from biofluxopt._util import ConfigError

    with pytest.raises(ConfigError, match=r"most probable explanation.*largest table"):
        most_probable_explanation(asia_model, {}, max_bytes=64)
    with pytest.raises(ConfigError, match=r"P\(lung \| evidence\)"):
        posterior(asia_model, "lung", {"xray": "yes"}, max_bytes=64)


def test_cohort_network_needs_small_tables():
    """The network of issue 9 (learned from an 80-person ``bn cohort``): pgmpy's ``map_query``
    built a 3.4 GiB joint table for its MPE; min-fill elimination's largest table is tiny."""
    from pathlib import Path

    from biofluxopt.bn import elimination_plan, load_network

    net = load_network(Path(__file__).parent / "data" / "cohort80_hybrid.bif")
    scopes = [tuple(c.variables) for c in net.get_cpds()]
    cards = {v: len(net.get_cpds(v).state_names[v]) for v in net.nodes()}
    order, largest, total = elimination_plan(scopes, sorted(net.nodes()), cards)
    assert sorted(order) == sorted(net.nodes())
    assert largest <= 10_000 and total <= 50_000
    mpe = most_probable_explanation(net, {"diet": "vegan", "fut2": "nonsecretor"})
    assert len(mpe) == net.number_of_nodes() - 2


def test_impossible_evidence_is_an_error():
    graph = nx.DiGraph([("diet", "serum_b12")])
    model = DirichletParameters(graph, {k: STATES[k] for k in ("diet", "serum_b12")}).fit().model()
    cpd = model.get_cpds("diet")
    cpd.values[:] = [1.0, 0.0, 0.0]  # no vegans at all
    with pytest.raises(DataError, match="probability 0"):
        posterior(model, "serum_b12", {"diet": "vegan"})
    with pytest.raises(DataError, match="probability 0"):
        most_probable_explanation(model, {"diet": "vegan"})
