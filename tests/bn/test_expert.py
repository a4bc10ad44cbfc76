"""The B12 expert-knowledge object."""

from __future__ import annotations

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


def test_producer_edges_follow_the_taxa_roles():
    from biofluxopt.bn._expert import producer_edges
    from biofluxopt.knowledge import load_taxa

    roles = {t.id: t.role for t in load_taxa()}
    edges = {(u, v) for u, v, _ in producer_edges()}
    assert ("propionibacterium", "microbial_cobalamin") in edges
    assert ("clostridiales", "microbial_analogue") in edges
    for u, v in edges:
        producer = roles[u] == "true_cobalamin_producer"
        assert v == ("microbial_cobalamin" if producer else "microbial_analogue")
    assert not any(roles[u] in ("consumer", "salvager", "background") for u, _ in edges)
    ek = b12_expert_knowledge(["propionibacterium", "microbial_cobalamin", "veillonellaceae"])
    assert ek.required_edges == {("propionibacterium", "microbial_cobalamin")}
