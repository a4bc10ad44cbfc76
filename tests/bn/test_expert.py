"""The B12 expert-knowledge object."""

from __future__ import annotations

import pytest

from biofluxopt.bn import GENOTYPES, REQUIRED_EDGES, TIERS, b12_expert_knowledge
from biofluxopt.knowledge import load_taxa


def test_tiers_forbid_backward_edges_and_edges_into_genotypes():
    cols = ["fut2", "age", "diet", "serum_b12", "mma", "bacteroidales", "user_col"]
    ek = b12_expert_knowledge(cols)
    assert ("serum_b12", "diet") in ek.forbidden_edges
    assert ("mma", "serum_b12") in ek.forbidden_edges
    assert ("diet", "serum_b12") not in ek.forbidden_edges
    assert ("bacteroidales", "age") in ek.forbidden_edges  # microbiome after genetics/age
    assert ("user_col", "fut2") in ek.forbidden_edges and ("age", "fut2") in ek.forbidden_edges
    # Unknown columns are otherwise free.
    assert not any(("user_col" in e and "fut2" not in e) for e in ek.forbidden_edges)


def test_required_edges_only_between_present_columns():
    ek = b12_expert_knowledge(["mthfr_677", "hcy", "diet"])
    assert ek.required_edges == {("mthfr_677", "hcy")}
    assert b12_expert_knowledge(["x", "y"]).forbidden_edges == set()


def test_tables_are_consistent():
    tiered = [v for tier in TIERS for v in tier]
    assert len(tiered) == len(set(tiered))
    assert set(GENOTYPES) <= set(TIERS[0])
    tier_of = {v: i for i, t in enumerate(TIERS) for v in t}
    for u, v, why in REQUIRED_EDGES:
        assert tier_of[u] <= tier_of[v] and why
    assert not set(tiered) & {t.id for t in load_taxa()}


def test_producer_edges_follow_the_taxa_and_their_cobamide_mix():
    from biofluxopt.bn._expert import producer_edges
    from biofluxopt.knowledge import load_parameters, load_taxa

    taxa = {t.id: t for t in load_taxa()}
    share = {p.id: p.value for p in load_parameters()}
    edges = {(u, v) for u, v, _ in producer_edges()}
    assert ("propionibacterium", "microbial_cobalamin") in edges
    assert ("clostridiales", "microbial_analogue") in edges
    # mostly analogues (true fraction 0.005) but some cobalamin: both products
    assert ("clostridiales", "microbial_cobalamin") in edges
    for u, v in edges:
        assert "de_novo_synthesis" in taxa[u].b12_activities
        f = share[f"true_fraction__{u}"]
        assert (f > 0) if v == "microbial_cobalamin" else (f < 1)
    assert not any(taxa[u].role in ("consumer", "salvager", "background") for u, _ in edges)
    ek = b12_expert_knowledge(["propionibacterium", "microbial_cobalamin", "veillonellaceae"])
    assert ek.required_edges == {("propionibacterium", "microbial_cobalamin")}


def test_propionate_edges_come_from_the_taxa_pathways():
    from biofluxopt.bn._expert import propionate_edges
    from biofluxopt.knowledge import load_taxa

    edges = {(u, v) for u, v, _ in propionate_edges()}
    assert {("bacteroidales", "colon_propionate"), ("veillonellaceae", "colon_propionate")} <= edges
    # Bifidobacteria make acetate and lactate, not propionate
    assert ("bifidobacterium", "colon_propionate") not in edges
    for t in load_taxa():
        assert ((t.id, "colon_propionate") in edges) == bool(t.propionate_pathways)
        assert (
            not t.propionate_pathways
            or "Reichardt" in t.propionate_evidence
            or ("Wood-Werkman" in t.propionate_evidence)
        )


def test_a_pathway_without_evidence_is_rejected():
    from pydantic import ValidationError

    from biofluxopt.knowledge import Taxon

    base = load_taxa()[0].model_dump()
    base["propionate_pathways"] = ("succinate",)
    base["propionate_evidence"] = None
    with pytest.raises(ValidationError, match="propionate_evidence"):
        Taxon(**base)


def test_tiers_travel_in_the_expert_knowledge():
    """``temporal_order`` keeps the indices of TIERS (empty tiers stay), holds only the known
    variables given, and forbids exactly what the explicit forbidden edges forbid."""
    cols = ["serum_b12", "mma", "diet", "bacteroidales", "my_own_variable"]
    ek = b12_expert_knowledge(cols)
    assert len(ek.temporal_order) == len(TIERS)
    assert ek.temporal_ordering == {"diet": 1, "bacteroidales": 1, "serum_b12": 4, "mma": 5}
    assert ek.temporal_order[0] == [] and ek.temporal_order[1] == ["bacteroidales", "diet"]
    order = ek.temporal_ordering
    assert {(u, v) for u in order for v in order if order[v] < order[u]} <= ek.forbidden_edges
    unknown = b12_expert_knowledge(["x", "y"])
    assert unknown.temporal_ordering == {} and unknown.forbidden_edges == set()
