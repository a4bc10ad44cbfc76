"""One call from a table to a fitted, saved network (the ``biofluxopt bn learn`` pipeline)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from biofluxopt._util import DataError, check_memory, dumps_json

from ._discretise import Discretiser, cohort_to_nodes
from ._expert import b12_expert_knowledge
from ._io import check_names, save_network, write_network
from ._parameters import DirichletParameters
from ._structure import HybridStructureLearner
from ._table import check_table

MISSING = ("drop", "em")
"""What ``learn_network`` does with missing cells."""


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
        Columns left out because they had a single state (in the table, or in its rows
        without missing cells).
    missing : dict
        How missing cells were handled: ``policy`` (``"drop"`` or ``"em"``),
        ``rows_with_missing``, ``missing_cells``, ``rows_for_structure`` and
        ``rows_for_parameters``.
    """

    model: object
    learner: HybridStructureLearner
    discretiser: Discretiser
    parameters: DirichletParameters
    dropped_columns: list[str]
    missing: dict = field(default_factory=dict)

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
            "missing": self.missing,
            "discretisation": bins,
            "priors": self.parameters.prior_sources_,
        }

    def write(self, directory: str | Path) -> None:
        """Write network.bif, network.xmlbif, graph.png, arcs.csv and summary.json (strict
        JSON) into the existing ``directory``."""
        write_network(
            self.model,
            directory,
            arc_strength=self.learner.arc_strength_,
            extra_files={"summary.json": dumps_json(self.summary())},
        )

    def save(self, out: str | Path, *, overwrite: bool = False) -> Path:
        """Write the files of :meth:`write` to the output directory ``out`` (see
        :func:`~biofluxopt.bn.save_network` for when an existing ``out`` is replaced)."""
        return save_network(
            self.model,
            out,
            arc_strength=self.learner.arc_strength_,
            extra_files={"summary.json": dumps_json(self.summary())},
            overwrite=overwrite,
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
    missing: str = "drop",
) -> LearnedNetwork:
    """Discretise ``table``, learn the structure, fit CPTs under literature priors.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows = people/samples; discrete or numeric columns (``patient_id`` is ignored,
        unit-bearing cohort names such as ``serum_b12_pmol_l`` become ``serum_b12``); NaN or
        ``None`` = a missing cell. Categorical columns may have any number of states;
        numeric ones are cut into at most 4.
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
    missing : {"drop", "em"}, default="drop"
        Rows with missing cells: ``"drop"`` leaves them out (the count is in
        :attr:`LearnedNetwork.missing`); ``"em"`` learns the structure from the complete rows
        and fits the CPTs on all rows by expectation maximisation
        (:meth:`DirichletParameters.update_em`).

    Raises
    ------
    DataError
        Empty table, fewer than 2 informative columns or 2 complete rows, non-finite or
        impossible negative values (:func:`~biofluxopt.bn.check_table`), names BIF cannot
        store, an identifier-like column.
    """
    if missing not in MISSING:
        raise DataError(
            f"unknown policy {missing!r}; choose one of {list(MISSING)}", field="--missing"
        )
    if table.shape[0] == 0 or table.shape[1] == 0:
        raise DataError(f"the table is empty ({table.shape[0]} rows)", source=source)
    check_table(table, source=source)
    nodes = cohort_to_nodes(table)
    check_names(nodes.columns, source=source)
    disc = Discretiser(source=source).fit(nodes)
    states = disc.transform(nodes)
    dropped = [c for c in states.columns if states[c].nunique() < 2]
    states = states.drop(columns=dropped)
    # A column can be constant among the complete rows only (the structure is learned there).
    complete_states = states[states.notna().all(axis=1)]
    if len(complete_states):
        also = [c for c in states.columns if complete_states[c].nunique() < 2]
        dropped += also
        states = states.drop(columns=also)
    if states.shape[1] < 2:
        raise DataError(
            f"need at least 2 columns with 2+ states; constant columns: {dropped}", source=source
        )
    incomplete = states.isna().any(axis=1)
    complete = ~incomplete
    report = {
        "policy": missing,
        "rows_with_missing": int(incomplete.sum()),
        "missing_cells": int(states.isna().to_numpy().sum()),
        "rows_for_structure": int(complete.sum()),
        "rows_for_parameters": int(complete.sum() if missing == "drop" else len(states)),
    }
    if complete.sum() < _MIN_ROWS:
        raise DataError(
            f"{int(complete.sum())} of {len(states)} rows are complete; structure learning "
            f"needs at least {_MIN_ROWS} rows without missing cells",
            source=source,
        )
    knowledge = b12_expert_knowledge(states.columns) if expert else None
    if knowledge is not None and not knowledge.temporal_ordering:
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
    ).fit((nodes[states.columns] if method == "mixed" else states)[complete])
    state_names = {c: disc.state_names_[c] for c in states.columns}
    _check_cpt_memory(learner.graph_, state_names, source)
    params = DirichletParameters(learner.graph_, state_names)
    if missing == "em" and incomplete.any():
        params.fit().update_em(states)
    else:
        params.fit(states[complete])
    return LearnedNetwork(params.model(), learner, disc, params, dropped, report)


_MIN_ROWS = 5
"""Fewest complete rows structure learning accepts (the CI tests and scores need a few)."""


def _check_cpt_memory(graph, state_names: dict[str, list[str]], source: str) -> None:
    """Refuse a network whose CPTs would not fit in memory (many states × many parents)."""
    entries = sum(
        len(state_names[v]) * math.prod(len(state_names[p]) for p in graph.predecessors(v))
        for v in graph.nodes()
    )
    # pseudo-counts, counts and probabilities, 8 bytes each
    check_memory(
        3 * 8 * entries, f"{source}: the conditional probability tables ({entries:,} entries)"
    )
