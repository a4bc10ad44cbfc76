"""Which environment variable stands for which BN node, and each agent's Markov blanket.

The BN's nodes (``biofluxopt.bn``; ``knowledge.load_sim_causal_graph()``) are named by the
cohort columns they come from (``bn.COHORT_TO_NODE``) and the taxon ids. The env can observe
these of them; each becomes one observation feature (normalisation in docs/marl.md):

==========================  ===========================================================
BN node                     env variable (per patient)
==========================  ===========================================================
taxon id (``bacteroidales``, log relative abundance at the end of the step,
``other``, ...)             ``log(max(p, 1e-8)) / log(1e8)`` ∈ [-1, 0]
``serum_b12``, ``holotc``,  biomarker at the end of the step, log ratio to the reference
``mma``, ``hcy``,           patient (``serum_b12_pmol_l``, ``holotc_pmol_l``,
``body_store``              ``mma_umol_l``, ``hcy_umol_l``, ``body_store_ug``)
``liver_store``,            store pools ``liver_ug``, ``peripheral_ug`` (log ratio)
``peripheral_store``
``absorbed``,               the step's mean daily flux (µg/day or mmol/day: ``absorbed_ug``,
``ileal_free_cobalamin``,   ``ileal_free_cobalamin_ug``, ``microbial_cobalamin_ug``,
``microbial_cobalamin``,    ``microbial_analogue_ug``, ``colon_propionate_mmol``), log
``microbial_analogue``,     ratio to the reference patient's baseline day
``colon_propionate``
``b12_intake``,             mean food B12 and supplement taken over the step,
``supplement``              ``log1p(µg/day)``
``intrinsic_factor``,       host factor code (static): IF 0/0.5/1 (normal/reduced/absent),
``gastric_release``,        gastric 0/1, FUT2 nonsecretor 0/1, TCN2 776 G alleles / 2,
``fut2``, ``tcn2_776``,     MTHFR 677 T alleles / 2
``mthfr_677``
==========================  ===========================================================

Not observable (left out of every blanket, listed in ``B12Env.blanket_unmapped``): ``age``
(not in the simulator) and ``diet`` (a category; the intake it causes is ``b12_intake``).
Nodes of a user's network with other names are left out likewise.
"""

from __future__ import annotations

import networkx as nx

from biofluxopt._util import ConfigError

#: BN node → biomarker of ``StepResult.observation``.
MARKER_NODES = {
    "serum_b12": "serum_b12_pmol_l",
    "holotc": "holotc_pmol_l",
    "mma": "mma_umol_l",
    "hcy": "hcy_umol_l",
    "body_store": "body_store_ug",
}
#: BN node → pool of ``sim.POOLS``.
POOL_NODES = {"liver_store": "liver_ug", "peripheral_store": "peripheral_ug"}
#: BN node → flux of ``sim.DAILY_FLUXES`` (the step's mean per day).
FLUX_NODES = {
    "absorbed": "absorbed_ug",
    "ileal_free_cobalamin": "ileal_free_cobalamin_ug",
    "microbial_cobalamin": "microbial_cobalamin_ug",
    "microbial_analogue": "microbial_analogue_ug",
    "colon_propionate": "colon_propionate_mmol",
}
#: BN node → diet input (the step's mean per day).
DIET_NODES = {"b12_intake": "food_ug_per_day", "supplement": "supplement_ug_per_day"}
#: BN node → host-factor field of ``sim.HostFactors`` and the divisor that maps it to [0, 1].
HOST_NODES = {
    "intrinsic_factor": ("if_status", 2.0),
    "gastric_release": ("gastric_impaired", 1.0),
    "fut2": ("fut2_nonsecretor", 1.0),
    "tcn2_776": ("tcn2_g_alleles", 2.0),
    "mthfr_677": ("mthfr_t_alleles", 2.0),
}


def as_digraph(network: object) -> nx.DiGraph:
    """The directed graph of a network: a ``networkx.DiGraph`` (e.g.
    ``knowledge.load_sim_causal_graph()``), or a ``bn.LearnedNetwork`` (its ``model``, a pgmpy
    network, or its ``learner.graph_``).

    Raises
    ------
    ConfigError
        ``network`` is none of these.
    """
    if isinstance(network, nx.DiGraph):
        return network
    model = getattr(network, "model", None)
    if isinstance(model, nx.DiGraph):
        graph = nx.DiGraph()
        graph.add_nodes_from(model.nodes)
        graph.add_edges_from(model.edges)
        return graph
    graph = getattr(getattr(network, "learner", None), "graph_", None)
    if isinstance(graph, nx.DiGraph):
        return graph
    raise ConfigError(
        "must be a networkx.DiGraph or a biofluxopt.bn.LearnedNetwork; got "
        f"{type(network).__name__}",
        field="network",
    )


def markov_blanket(graph: nx.DiGraph, node: str) -> set[str]:
    """Parents, children and the children's other parents of ``node`` (empty if absent)."""
    if node not in graph:
        return set()
    parents = set(graph.predecessors(node))
    children = set(graph.successors(node))
    spouses = {p for c in children for p in graph.predecessors(c)}
    return (parents | children | spouses) - {node}


__all__ = [
    "DIET_NODES",
    "FLUX_NODES",
    "HOST_NODES",
    "MARKER_NODES",
    "POOL_NODES",
    "as_digraph",
    "markov_blanket",
]
