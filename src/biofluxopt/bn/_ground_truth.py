"""Score learned structures against the simulator's causal graph (issue 3 item 4)."""

from __future__ import annotations

import time

import networkx as nx
import pandas as pd

from biofluxopt._util import ConfigError

from ._structure import skeleton_scores


def project_graph(truth: nx.DiGraph, keep) -> nx.DiGraph:
    """Latent projection of a DAG onto the nodes ``keep``.

    Every left-out node is marginalised: its parents get an edge to each of its children
    (with effect "major" only if both edges were major). Valid here because the left-out
    cohort variables (e.g. ``body_store``) are not common causes of anything without their
    own parents in the graph, so no bidirected (confounding) edges arise.
    """
    g = truth.copy()
    for node in [n for n in nx.topological_sort(truth) if n not in set(keep)]:
        for u in list(g.predecessors(node)):
            for v in list(g.successors(node)):
                major = g.edges[u, node]["effect"] == g.edges[node, v]["effect"] == "major"
                old = g.edges[u, v]["effect"] if g.has_edge(u, v) else "minor"
                effect = "major" if major or old == "major" else "minor"
                g.add_edge(u, v, effect=effect, mechanism=f"via {node}")
        g.remove_node(node)
    return g


def score_against_simulator(
    learned: nx.DiGraph,
    truth: nx.DiGraph | None = None,
    *,
    major_only: bool = False,
    skip_pairs=(),
) -> dict[str, float]:
    """Skeleton precision/recall/F1 and SHD of ``learned`` against the simulator's graph.

    Only nodes of ``learned`` count: the truth is first projected onto them
    (:func:`project_graph`; a cohort table may lack variables, e.g. taxa absent from every
    sample, or leave out aggregates such as ``body_store``). Pairs in
    ``truth.graph["unscored_pairs"]`` (taxon-taxon pairs, the bile feedback loop) are left out
    of both graphs; with ``major_only`` so are pairs joined only
    by a "minor" edge.

    Parameters
    ----------
    learned : networkx.DiGraph
        Learned DAG over BN node names.
    truth : networkx.DiGraph, optional
        Defaults to :func:`biofluxopt.knowledge.load_sim_causal_graph`.
    major_only : bool, default=False
        Score against major edges only.
    skip_pairs : iterable of (str, str)
        Further pairs left out of both graphs, e.g. the required edges of the expert
        knowledge, to score only what was learned from data.

    Returns
    -------
    dict
        See :func:`skeleton_scores`; plus ``n_true_edges`` and ``n_nodes``.
    """
    if truth is None:
        from biofluxopt.knowledge import load_sim_causal_graph

        truth = load_sim_causal_graph()
    nodes = set(learned.nodes()) & set(truth.nodes())
    unscored = truth.graph.get("unscored_pairs", set())
    truth = project_graph(truth, nodes)
    truth.graph["unscored_pairs"] = unscored
    skip = set(truth.graph.get("unscored_pairs", set())) | {frozenset(e) for e in skip_pairs}
    if major_only:
        skip |= {frozenset((u, v)) for u, v, d in truth.edges(data=True) if d["effect"] == "minor"}

    def keep(g: nx.DiGraph) -> nx.DiGraph:
        out = nx.DiGraph()
        out.add_nodes_from(nodes)
        out.add_edges_from(
            (u, v)
            for u, v in g.edges()
            if u in nodes and v in nodes and frozenset((u, v)) not in skip
        )
        return out

    t = keep(truth)
    scores = skeleton_scores(keep(learned), t)
    scores["n_true_edges"] = float(t.number_of_edges())
    scores["n_nodes"] = float(len(nodes))
    return scores


def ground_truth_table(
    table: pd.DataFrame,
    *,
    methods=("hybrid", "pc", "hc"),
    n_bootstrap: int = 0,
    seed: int = 0,
    hybrid_score: str | None = None,
    numbers: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Learn a discretised cohort with each method and score it against the simulator.

    Parameters
    ----------
    table : pandas.DataFrame
        BN-ready discrete cohort (:func:`biofluxopt.bn.discretise_cohort`).
    methods : sequence of str
        Learners to compare; ``"hybrid"`` and ``"pc"``/``"hc"`` use the B12 expert knowledge,
        ``"<method>_noexpert"`` runs without it.
    n_bootstrap, seed
        Passed to :class:`HybridStructureLearner`.
    hybrid_score : str, optional
        Score of the hybrid's hill climbs (``scoring_method``; default BDeu).
    numbers : pandas.DataFrame, optional
        The cohort before discretisation (BN node names, e.g. ``cohort_to_nodes(cohort)``);
        ``"mixed"`` learns from its columns of ``table``. Required for ``"mixed"``.

    Returns
    -------
    pandas.DataFrame
        One row per method and scope with precision, recall, f1, shd and the learner's
        ``seconds``. Scopes: ``all`` (every scored edge), ``major`` (major edges only) and
        ``learned`` (all, less the pairs the expert knowledge requires: what the data
        contributed).
    """
    from ._expert import b12_expert_knowledge
    from ._structure import HybridStructureLearner

    rows = []
    for name in methods:
        method, _, flag = name.partition("_")
        ek = None if flag == "noexpert" else b12_expert_knowledge(table.columns)
        learner = HybridStructureLearner(
            method,
            expert_knowledge=ek,
            n_bootstrap=n_bootstrap,
            random_state=seed,
            scoring_method=hybrid_score if method == "hybrid" else None,
        )
        t0 = time.perf_counter()
        if method == "mixed":
            if numbers is None:
                raise ConfigError(
                    "method 'mixed' needs the cohort's numbers (numbers=...)", field="methods"
                )
            learner.fit(numbers[list(table.columns)])
        else:
            learner.fit(table)
        seconds = time.perf_counter() - t0
        required = set() if ek is None else set(ek.required_edges)
        for scope in ("all", "major", "learned"):
            s = score_against_simulator(
                learner.graph_,
                major_only=scope == "major",
                skip_pairs=required if scope == "learned" else (),
            )
            rows.append({"method": name, "scope": scope, **s, "seconds": seconds})
    return pd.DataFrame(rows)
