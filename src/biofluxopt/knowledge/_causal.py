"""The simulator's causal graph over the Bayesian network's variables, as data.

``data/sim_causal_graph.toml`` lists the BN nodes (with their expert tier), the direct causal
edges of the simulator and the cohort generator (with mechanism and effect size class), the
feedback loop a DAG cannot hold, and groups of nodes whose mutual dependence the simulator does
not model (taxa drawn jointly from real data). It is the ground truth against which structure
learning on simulated cohorts is scored (:func:`biofluxopt.bn.score_against_simulator`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field

from biofluxopt._util import ConfigError

from ._loader import data_path, load_entries, read_toml

FILE = "sim_causal_graph.toml"


class CausalNode(BaseModel):
    """A BN node of the simulator's graph."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    tier: int = Field(ge=0, le=5)


class CausalEdge(BaseModel):
    """A direct causal edge ``source -> target`` of the simulator."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str
    target: str
    effect: Literal["major", "minor"]
    mechanism: str = Field(min_length=5)


class FeedbackEdge(BaseModel):
    """A causal influence that would close a cycle; kept out of the DAG, unscored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str
    target: str
    mechanism: str = Field(min_length=5)


class UnscoredGroup(BaseModel):
    """Nodes whose pairwise dependence is real but not modelled (neither hit nor miss)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    reason: str = Field(min_length=5)
    members: tuple[str, ...]


def load_sim_causal_graph(path: str | Path | None = None) -> nx.DiGraph:
    """The simulator's causal DAG over the BN's variables.

    Parameters
    ----------
    path : str or Path, optional
        A TOML file in the format of the shipped ``data/sim_causal_graph.toml`` (default).

    Returns
    -------
    networkx.DiGraph
        Nodes carry ``tier``; edges carry ``effect`` ("major"/"minor") and ``mechanism``.
        ``graph.graph["feedback"]``: list of (source, target, mechanism) loops left out;
        ``graph.graph["unscored_pairs"]``: set of frozensets of node pairs not to score.

    Raises
    ------
    ConfigError
        Malformed entries, edges naming unknown nodes, or a cycle (naming the file).
    """
    path = Path(path) if path is not None else data_path(FILE)
    nodes = load_entries(path, "node", CausalNode)
    edges = load_entries(path, "edge", CausalEdge)
    doc = read_toml(path)
    feedback = [FeedbackEdge.model_validate(e) for e in doc.get("feedback", [])]
    groups = [UnscoredGroup.model_validate(g) for g in doc.get("unscored_group", [])]
    graph = nx.DiGraph()
    for n in nodes:
        graph.add_node(n.id, tier=n.tier)
    known = set(graph.nodes())
    for i, e in enumerate(edges):
        for end in (e.source, e.target):
            if end not in known:
                raise ConfigError(f"unknown node {end!r}", source=path, field=f"edge[{i}]")
        if graph.has_edge(e.source, e.target):
            raise ConfigError(
                f"duplicate edge {e.source} -> {e.target}", source=path, field=f"edge[{i}]"
            )
        graph.add_edge(e.source, e.target, effect=e.effect, mechanism=e.mechanism)
    if not nx.is_directed_acyclic_graph(graph):
        cycle = nx.find_cycle(graph)
        raise ConfigError(f"the graph has a cycle {cycle}", source=path, field="edge")
    unscored: set[frozenset[str]] = set()
    for g in groups:
        missing = sorted(set(g.members) - known)
        if missing:
            raise ConfigError(f"unknown members {missing}", source=path, field=g.id)
        unscored |= {frozenset((a, b)) for a in g.members for b in g.members if a != b}
    for f in feedback:
        unscored.add(frozenset((f.source, f.target)))
    graph.graph["feedback"] = [(f.source, f.target, f.mechanism) for f in feedback]
    graph.graph["unscored_pairs"] = unscored
    graph.graph["source"] = str(path)
    return graph
