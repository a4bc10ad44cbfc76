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
    return DirichletParameters(graph, STATES).model()


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
