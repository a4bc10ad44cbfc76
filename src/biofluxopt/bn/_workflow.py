"""One call from a table to a fitted, saved network (the ``biofluxopt bn learn`` pipeline)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from biofluxopt._util import DataError

from ._discretise import Discretiser, cohort_to_nodes
from ._expert import b12_expert_knowledge, variable_tiers
from ._io import check_names, save_network
from ._parameters import DirichletParameters
from ._structure import HybridStructureLearner


@dataclass
class LearnedNetwork:
    """A learned network with everything needed to read and reuse it.

    Attributes
    ----------
    model : pgmpy.models.DiscreteBayesianNetwork
        Structure + posterior-mean CPTs.
    learner : HybridStructureLearner
        The fitted structure learner (``arc_strength_`` …).
    discretiser : Discretiser
        How the table's columns became states (reversible).
    parameters : DirichletParameters
        Posterior pseudo-counts, for further Bayesian updates.
    dropped_columns : list of str
        Columns left out because they had a single state.
    """

    model: object
    learner: HybridStructureLearner
    discretiser: Discretiser
    parameters: DirichletParameters
    dropped_columns: list[str]

    def summary(self) -> dict:
        """JSON-ready description: method, bins (with sources), priors, dropped columns."""
        bins = {
            col: {
                "kind": b.kind,
                "states": list(b.labels),
                "edges": list(b.edges),
                "source": b.source,
                **({"values": list(b.values)} if b.values else {}),
            }
            for col, b in self.discretiser.bins_.items()
        }
        return {
            "method": self.learner.method,
            "n_bootstrap": self.learner.n_bootstrap,
            "alpha": self.learner.alpha,
            "random_state": self.learner.random_state,
            "expert_knowledge": self.learner.expert_knowledge is not None,
            "rows": self.parameters.n_seen_,
            "edges": [list(e) for e in sorted(self.learner.graph_.edges())],
            "dropped_columns": self.dropped_columns,
            "discretisation": bins,
            "priors": self.parameters.prior_sources_,
        }

    def save(self, out: str | Path) -> Path:
        """Write network.bif, network.xmlbif, graph.png, arcs.csv and summary.json to ``out``."""
        return save_network(
            self.model,
            out,
            arc_strength=self.learner.arc_strength_,
            extra_files={"summary.json": json.dumps(self.summary(), indent=2) + "\n"},
        )


def learn_network(
    table: pd.DataFrame,
    *,
    method: str = "hybrid",
    expert: bool = True,
    n_bootstrap: int = 0,
    alpha: float = 0.01,
    strength_threshold: float = 0.5,
    n_jobs: int = 1,
    seed: int = 0,
    progress: bool = False,
    source: str = "<table>",
) -> LearnedNetwork:
    """Discretise ``table``, learn the structure, fit CPTs under literature priors.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows = people/samples; discrete or numeric columns (``patient_id`` is ignored,
        unit-bearing cohort names such as ``serum_b12_pmol_l`` become ``serum_b12``).
    method : {"hybrid", "pc", "hc", "mixed"}, default="hybrid"
        Structure learner (see :class:`HybridStructureLearner`); ``"mixed"`` learns the
        structure from the numbers (numeric columns before discretisation), the CPTs from the
        states.
    expert : bool, default=True
        Apply B12 expert knowledge to the columns the knowledge base knows.
    n_bootstrap : int, default=0
        Bootstrap resamples for arc strength (0 = single run).
    alpha, strength_threshold, n_jobs
        Passed to :class:`HybridStructureLearner`.
    seed : int, default=0
        Seed of the bootstrap.
    progress : bool, default=False
        Progress bar over the bootstrap.
    source : str
        Table name for error messages.

    Raises
    ------
    DataError
        Empty table, fewer than 2 informative columns, a column with more than 4 states,
        missing values, or names BIF cannot store.
    """
    if table.shape[0] == 0 or table.shape[1] == 0:
        raise DataError(f"the table is empty ({table.shape[0]} rows)", source=source)
    nodes = cohort_to_nodes(table)
    check_names(nodes.columns)
    disc = Discretiser(source=source).fit(nodes)
    states = disc.transform(nodes)
    dropped = [c for c in states.columns if states[c].nunique() < 2]
    states = states.drop(columns=dropped)
    if states.shape[1] < 2:
        raise DataError(
            f"need at least 2 columns with 2+ states; constant columns: {dropped}", source=source
        )
    knowledge = b12_expert_knowledge(states.columns) if expert else None
    if knowledge is not None and not variable_tiers(states.columns):
        knowledge = None  # no column is a B12 variable: plain data-driven learning
    learner = HybridStructureLearner(
        method,
        expert_knowledge=knowledge,
        alpha=alpha,
        n_bootstrap=n_bootstrap,
        strength_threshold=strength_threshold,
        n_jobs=n_jobs,
        random_state=seed,
        progress=progress,
    ).fit(nodes[states.columns] if method == "mixed" else states)
    state_names = {c: disc.state_names_[c] for c in states.columns}
    params = DirichletParameters(learner.graph_, state_names).update(states)
    return LearnedNetwork(params.model(), learner, disc, params, dropped)
