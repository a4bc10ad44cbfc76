"""B12 expert knowledge for structure learning: temporal tiers, forbidden and required edges.

One object, a :class:`pgmpy.causal_discovery.ExpertKnowledge`, built by
:func:`b12_expert_knowledge` for whichever columns of a table the B12 knowledge base knows;
unknown columns (a user's own variables, benchmark networks) are left unconstrained.

Tiers (DESIGN.md §5): genetics/age → diet/host gut status/microbiome → gut metabolites →
absorption → stores and serum → functional biomarkers. An edge may never point to an earlier
tier, nothing points into a genotype node, and two genotypes are never adjacent (they are
inherited independently). Required edges are textbook mechanisms with a cited source.
"""

from __future__ import annotations

from collections.abc import Iterable

GENOTYPES: tuple[str, ...] = ("fut2", "tcn2_776", "mthfr_677")

TIERS: tuple[tuple[str, ...], ...] = (
    # 0 genetics and age
    ("fut2", "tcn2_776", "mthfr_677", "age"),
    # 1 diet, host gut status and the microbiome (taxa ids are added from the knowledge base)
    ("diet", "b12_intake", "supplement", "intrinsic_factor", "gastric_release"),
    # 2 gut metabolites
    ("microbial_cobalamin", "microbial_analogue", "ileal_free_cobalamin", "colon_propionate"),
    # 3 absorption
    ("absorbed",),
    # 4 stores and circulating B12
    ("liver_store", "peripheral_store", "body_store", "serum_b12", "holotc"),
    # 5 functional biomarkers
    ("mma", "hcy"),
)

# (cause, effect, reason). Each is a direct mechanism in the literature, see b12_facts.md.
REQUIRED_EDGES: tuple[tuple[str, str, str], ...] = (
    ("diet", "b12_intake", "vegans have the lowest B12 intake (Davey 2003 PHN 6:259)"),
    ("intrinsic_factor", "absorbed", "no IF: ~1.2 % absorbed vs 56 % (Carmel 2008 Table 1)"),
    ("mthfr_677", "hcy", "TT vs CC +1.93 µmol/L Hcy (Casas 2005 Lancet 365:224)"),
    ("tcn2_776", "holotc", "GG vs CC holoTC SMD −0.445 (Oussalah 2017 AJCN 106:1142)"),
)


def producer_edges() -> tuple[tuple[str, str, str], ...]:
    """Required edges from the taxa knowledge base: a taxon with ``de_novo_synthesis`` among
    its ``b12_activities`` makes corrinoids (knowledge/data/taxa.toml, with the evidence given
    there). Producers make mixtures of cobamides: the share with DMB (true cobalamin) is the
    ``true_fraction__<id>`` parameter (parameters.toml), so the taxon feeds
    ``microbial_cobalamin`` when that share is above 0 and ``microbial_analogue`` when it is
    below 1 (e.g. Clostridiales 0.005: mostly analogues, but some cobalamin)."""
    from biofluxopt.knowledge import load_parameters, load_taxa

    share = {p.id: p for p in load_parameters()}
    edges = []
    for t in load_taxa():
        if "de_novo_synthesis" not in t.b12_activities:
            continue
        true_fraction = share[f"true_fraction__{t.id}"]
        why = f"{t.role} with de novo synthesis (taxa.toml: {t.evidence})"
        frac = f"true_fraction__{t.id} = {true_fraction.value:g} ({true_fraction.source})"
        if true_fraction.value > 0:
            edges.append((t.id, "microbial_cobalamin", f"{why}; {frac}"))
        if true_fraction.value < 1:
            edges.append((t.id, "microbial_analogue", f"{why}; {frac}"))
    return tuple(edges)


def propionate_edges() -> tuple[tuple[str, str, str], ...]:
    """Required edges taxon -> ``colon_propionate`` for every taxon of taxa.toml with a known
    propionate pathway (``propionate_pathways``; Reichardt et al. 2014 ISME J 8:1323)."""
    from biofluxopt.knowledge import load_taxa

    return tuple(
        (
            t.id,
            "colon_propionate",
            f"{'/'.join(t.propionate_pathways)} pathway ({t.propionate_evidence})",
        )
        for t in load_taxa()
        if t.propionate_pathways
    )


def _tier_of() -> dict[str, int]:
    from biofluxopt.knowledge import load_taxa

    tiers = {v: i for i, tier in enumerate(TIERS) for v in tier}
    for taxon in load_taxa():
        tiers.setdefault(taxon.id, 1)
    return tiers


def variable_tiers(variables: Iterable[str]) -> dict[str, int]:
    """Tier index of each known variable among ``variables`` (unknown ones are omitted)."""
    tiers = _tier_of()
    return {v: tiers[v] for v in variables if v in tiers}


def b12_expert_knowledge(variables: Iterable[str]):
    """Build the expert knowledge for the known B12 variables among ``variables``.

    Parameters
    ----------
    variables : iterable of str
        Column (node) names of the table to learn from.

    Returns
    -------
    pgmpy.causal_discovery.ExpertKnowledge
        ``temporal_order``: the :data:`TIERS` (taxa in tier 1), each holding the known
        variables among ``variables`` (sorted; a tier none of them is in stays, empty, so
        that tier indices are those of :data:`TIERS`); ``forbidden_edges``: every (later
        tier → earlier tier) pair, every edge into a genotype, both directions between
        genotypes; ``required_edges``: :data:`REQUIRED_EDGES`, :func:`producer_edges` and
        :func:`propionate_edges` whose ends are both present. Empty when no column is known.
        :class:`~biofluxopt.bn.HybridStructureLearner` reads the tiers from here
        (``temporal_ordering``), and from nowhere else.
    """
    from pgmpy.causal_discovery import ExpertKnowledge

    variables = sorted(set(variables))
    tiers = variable_tiers(variables)
    forbidden: set[tuple[str, str]] = set()
    for u, tu in tiers.items():
        for v, tv in tiers.items():
            if u != v and tu > tv:
                forbidden.add((u, v))
    for g in GENOTYPES:
        if g in tiers:
            forbidden.update((u, g) for u in variables if u != g)
    known = REQUIRED_EDGES + producer_edges() + propionate_edges()
    required = {(u, v) for u, v, _ in known if u in tiers and v in tiers}
    order = [[v for v in variables if tiers.get(v) == i] for i in range(len(TIERS))]
    return ExpertKnowledge(
        forbidden_edges=forbidden,
        required_edges=required,
        temporal_order=order if tiers else None,
    )
