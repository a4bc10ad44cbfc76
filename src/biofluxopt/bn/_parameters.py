"""CPTs from literature Dirichlet priors, refined by Bayesian updating with data.

Every CPT column ``P(X | pa)`` has a Dirichlet prior with pseudo-counts ``alpha[x, pa]``. Where
the literature gives a distribution for ``X`` (a prevalence, a genotype frequency, a deficiency
rate by diet; :data:`LITERATURE_PRIORS`), the pseudo-counts follow it with an **equivalent
sample size** of ``literature_ess`` people per node (default 50: the literature counts as much
as 50 extra people, so a cohort of a few hundred dominates it), spread uniformly over parent
configurations the literature does not condition on (BDe: ``alpha = ess · P(x | L) / q``).
Other nodes get the uninformative BDeu prior with ``default_ess`` (default 5).

Bayesian updating is conjugate: the posterior pseudo-counts are ``alpha + counts``. Updating on
two batches one after the other therefore equals one fit on their union, exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product
from numbers import Real
from typing import ClassVar

import networkx as nx
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from biofluxopt._util import DataError, InstanceOf, Interval, check_params


@dataclass(frozen=True)
class LiteraturePrior:
    """A literature distribution of ``node`` given (a subset of) its parents.

    ``table`` maps a tuple of parent states (in ``parents`` order; ``()`` if none) to a dict
    state -> probability.
    """

    node: str
    parents: tuple[str, ...]
    table: dict[tuple[str, ...], dict[str, float]]
    source: str


def _hwe(q: float) -> dict[str, float]:
    """Hardy–Weinberg genotype frequencies for minor-allele frequency ``q``."""
    return {"hom_major": (1 - q) ** 2, "het": 2 * q * (1 - q), "hom_minor": q**2}


_TCN2 = _hwe(0.40)

# Rows of the B12 reference table; [V] verified, [S] secondary, [D] derived here.
LITERATURE_PRIORS: tuple[LiteraturePrior, ...] = (
    LiteraturePrior(
        "fut2",
        (),
        {(): {"secretor": 0.80, "nonsecretor": 0.20}},
        "[V] 20–25 % non-/weak secretors (Soejima & Koda 2021 Sci Rep); "
        "[V] 15.9 % rs601338 AA (Gut, Table 3)",
    ),
    LiteraturePrior(
        "tcn2_776",
        (),
        {(): {"CC": _TCN2["hom_major"], "CG": _TCN2["het"], "GG": _TCN2["hom_minor"]}},
        "[D] Hardy–Weinberg at G-allele frequency 0.40, between France 0.445 and Italy 0.352 "
        "([V] J Med Genet 2007;44:363): CC 0.36, CG 0.48, GG 0.16",
    ),
    LiteraturePrior(
        "mthfr_677",
        (),
        {(): {"CC": 0.325, "CT": 0.525, "TT": 0.15}},
        "[V] 677TT 13–18 % in three European samples; CT 52.5 % (Blood 1998;91:4158)",
    ),
    LiteraturePrior(
        "gastric_release",
        ("age",),
        {
            ("under_50",): {"normal": 0.95, "impaired": 0.05},
            ("50_to_64",): {"normal": 0.85, "impaired": 0.15},
            ("65_plus",): {"normal": 0.80, "impaired": 0.20},
        },
        "[V] 10–30 % of adults > 50 malabsorb food B12 (IOM 1998); atrophic gastritis 6.7 % "
        "(NZ ≥ 65) to 31.5 % (elderly 60–99, Krasinski 1986); under-50 value [D] assumed",
    ),
    LiteraturePrior(
        "intrinsic_factor",
        (),
        {(): {"normal": 0.97, "reduced": 0.02, "absent": 0.01}},
        "[S] pernicious anaemia > 2 % of people > 60 (BMJ Best Practice, Carmel 1996); "
        "all-age split [D] assumed",
    ),
    LiteraturePrior(
        "serum_b12",
        ("diet",),
        {
            ("omnivore",): {"deficient": 0.03, "marginal": 0.30, "normal": 0.67},
            ("vegetarian",): {"deficient": 0.25, "marginal": 0.55, "normal": 0.20},
            ("vegan",): {"deficient": 0.60, "marginal": 0.32, "normal": 0.08},
        },
        "[V] Gilsing 2010 EJCN 64:933: means 281 / 182 / 122 pmol/L, < 118 pmol/L in ~0 / 7 / "
        "52 %; [V] NHANES < 148 pmol/L 2.6–4.4 % (Evatt 2009) and 148–258 20.7–25.1 % (Qi 2014) "
        "for omnivores; < 148 and > 258 shares for the two other diets [D] from the means",
    ),
)


def _prior_by_node(priors) -> dict[str, LiteraturePrior]:
    return {p.node: p for p in priors}


class DirichletParameters(BaseEstimator):
    """Dirichlet pseudo-counts for every CPT of a DAG, with conjugate updating.

    A scikit-learn estimator: ``__init__`` stores the options; :meth:`fit` checks them
    (:attr:`_parameter_constraints`), sets the prior pseudo-counts and absorbs ``data`` if
    given; :meth:`update` and :meth:`update_em` absorb more data (like ``partial_fit``: on an
    unfitted estimator they start from the prior). ``clone``, ``get_params`` and
    ``check_is_fitted`` work.

    Parameters
    ----------
    graph : networkx.DiGraph
        The network structure (nodes = variables).
    state_names : dict of str to list of str
        All states of every node, in order.
    priors : sequence of LiteraturePrior, optional
        Literature distributions; defaults to :data:`LITERATURE_PRIORS`. A prior is used only
        when its node's states and its parents' states match ``state_names``.
    literature_ess : float, default=50.0
        Equivalent sample size (people) of a literature prior, per node.
    default_ess : float, default=5.0
        BDeu equivalent sample size of nodes without a literature prior.

    Attributes
    ----------
    graph_ : networkx.DiGraph
        A copy of ``graph``.
    state_names_ : dict of str to list of str
        ``state_names`` with every state as ``str``.
    alpha_ : dict of str to ndarray of shape (n_states, n_parent_configurations)
        Current Dirichlet parameters (prior + all data seen); parents in sorted order,
        the last parent varying fastest (pgmpy's layout).
    prior_sources_ : dict of str to str
        For each node, "BDeu" or the literature source used.
    n_seen_ : int
        Rows of data absorbed so far.

    Raises
    ------
    ConfigError
        From :meth:`fit`: an option outside :attr:`_parameter_constraints`.
    DataError
        From :meth:`fit`: a node without states; from :meth:`update`: missing columns or
        unknown states.

    Examples
    --------
    >>> import networkx as nx, pandas as pd
    >>> g = nx.DiGraph([("diet", "serum_b12")])
    >>> states = {"diet": ["omnivore", "vegan", "vegetarian"],
    ...           "serum_b12": ["deficient", "marginal", "normal"]}
    >>> params = DirichletParameters(g, states).fit()  # the prior alone
    >>> round(float(params.model().get_cpds("serum_b12").values[0, 1]), 2)  # P(def | vegan)
    0.6
    """

    _parameter_constraints: ClassVar[dict] = {
        "graph": [InstanceOf(nx.DiGraph, "a networkx DiGraph")],
        "state_names": [InstanceOf(dict, "a dict of node name to its states")],
        "priors": [InstanceOf((tuple, list), "a sequence of LiteraturePrior"), None],
        "literature_ess": [Interval(Real, 0, None, closed="neither")],
        "default_ess": [Interval(Real, 0, None, closed="neither")],
    }
    """What each option may be (checked by :func:`~biofluxopt._util.check_params` in
    :meth:`fit`)."""

    def __init__(
        self,
        graph: nx.DiGraph,
        state_names: dict[str, list[str]],
        *,
        priors=None,
        literature_ess: float = 50.0,
        default_ess: float = 5.0,
    ):
        self.graph = graph
        self.state_names = state_names
        self.priors = priors
        self.literature_ess = literature_ess
        self.default_ess = default_ess

    def fit(self, data: pd.DataFrame | None = None) -> DirichletParameters:
        """Start from the prior and absorb ``data`` (rows = people; ``None``: the prior
        alone). Returns self."""
        check_params(self)
        missing = sorted(set(self.graph.nodes()) - set(self.state_names))
        if missing:
            raise DataError(f"no states given for nodes {missing}")
        self.graph_ = nx.DiGraph(self.graph)
        self.state_names_ = {k: [str(s) for s in v] for k, v in self.state_names.items()}
        priors = LITERATURE_PRIORS if self.priors is None else tuple(self.priors)
        self.alpha_, self.prior_sources_ = self._prior(priors)
        self.n_seen_ = 0
        if data is not None:
            self.update(data)
        return self

    def _ensure_prior(self) -> None:
        """:meth:`update` and :meth:`update_em` on an unfitted estimator start from the prior."""
        if not hasattr(self, "alpha_"):
            self.fit()

    def parents(self, node: str) -> list[str]:
        """Parents of ``node`` in pgmpy's (sorted) order."""
        check_is_fitted(self, "graph_")
        return sorted(self.graph_.predecessors(node))

    def _prior(self, priors) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        by_node = _prior_by_node(priors)
        alphas: dict[str, np.ndarray] = {}
        sources: dict[str, str] = {}
        for node in sorted(self.graph_.nodes()):
            states = self.state_names_[node]
            parents = self.parents(node)
            configs = list(product(*(self.state_names_[p] for p in parents)))
            q = len(configs)
            lit = by_node.get(node)
            if lit is not None and self._usable(lit):
                alpha = np.empty((len(states), q))
                for j, config in enumerate(configs):
                    assignment = dict(zip(parents, config, strict=True))
                    dist = self._conditional(lit, assignment)
                    alpha[:, j] = [self.literature_ess * dist[s] / q for s in states]
                alphas[node] = alpha
                sources[node] = f"literature (ess={self.literature_ess:g}): {lit.source}"
            else:
                alphas[node] = np.full((len(states), q), self.default_ess / (len(states) * q))
                sources[node] = f"BDeu (ess={self.default_ess:g})"
        return alphas, sources

    def _usable(self, lit: LiteraturePrior) -> bool:
        for table in lit.table.values():
            if sorted(table) != sorted(self.state_names_[lit.node]):
                return False
        for i, p in enumerate(lit.parents):
            if p not in self.state_names_:
                return False
            if sorted({k[i] for k in lit.table}) != sorted(self.state_names_[p]):
                return False
        return True

    @staticmethod
    def _conditional(lit: LiteraturePrior, assignment: dict[str, str]) -> dict[str, float]:
        """P(node | the literature parents present in ``assignment``); absent ones averaged."""
        rows = [
            dist
            for key, dist in lit.table.items()
            if all(assignment.get(p, k) == k for p, k in zip(lit.parents, key, strict=True))
        ]
        total = {s: sum(r[s] for r in rows) for s in rows[0]}
        norm = sum(total.values())
        return {s: v / norm for s, v in total.items()}

    def counts(self, data: pd.DataFrame) -> dict[str, np.ndarray]:
        """State counts of ``data`` in the layout of :attr:`alpha_` (via pgmpy)."""
        from pgmpy.utils import get_state_counts

        check_is_fitted(self, "graph_")
        missing = sorted(set(self.graph_.nodes()) - set(data.columns))
        if missing:
            raise DataError(f"missing columns {missing}")
        data = data[sorted(self.graph_.nodes())].astype(str)
        for node in data.columns:
            bad = sorted(set(data[node]) - set(self.state_names_[node]))
            if bad:
                raise DataError(
                    f"unknown states {bad}; known: {self.state_names_[node]}", field=node
                )
        return {
            node: get_state_counts(data, self.state_names_, node, self.parents(node)).to_numpy(
                dtype=float
            )
            for node in data.columns
        }

    def update(self, data: pd.DataFrame) -> DirichletParameters:
        """Absorb ``data`` (rows = people): ``alpha_ += counts``. Returns self."""
        self._ensure_prior()
        for node, c in self.counts(data).items():
            self.alpha_[node] = self.alpha_[node] + c
        self.n_seen_ += len(data)
        return self

    def update_em(
        self, data: pd.DataFrame, *, max_iter: int = 200, tol: float = 1e-6
    ) -> DirichletParameters:
        """Absorb ``data`` with missing cells (``None``/NaN) by expectation maximisation.

        The E-step gives every incomplete row its expected family counts under the current
        CPTs (the posterior over the row's missing cells given its observed ones, by exact
        enumeration); the M-step sets the CPTs to the posterior mean ``(prior + expected
        counts)``, normalised, i.e. the same estimator as :meth:`update`, to which it reduces
        when no cell is missing. Iterates until no CPT entry moves by more than ``tol``.
        Afterwards ``alpha_ = prior + expected counts`` (further updates treat the expected
        counts as observed ones, an approximation).

        Raises
        ------
        DataError
            Unknown states, or a row whose missing cells have more than 2**16 joint states
            (too many missing cells in one row to enumerate; drop such rows instead).
        """
        self._ensure_prior()
        nodes = sorted(self.graph_.nodes())
        missing = sorted(set(nodes) - set(data.columns))
        if missing:
            raise DataError(f"missing columns {missing}")
        cards = {v: len(self.state_names_[v]) for v in nodes}
        pos = {v: i for i, v in enumerate(nodes)}
        codes = np.empty((len(data), len(nodes)), dtype=np.int64)
        for v in nodes:
            col = data[v]
            absent = col.isna().to_numpy()
            lookup = {state: k for k, state in enumerate(self.state_names_[v])}
            text = col.astype(str).to_numpy()
            bad = sorted({t for t, a in zip(text, absent, strict=True) if not a} - set(lookup))
            if bad:
                raise DataError(f"unknown states {bad}; known: {self.state_names_[v]}", field=v)
            codes[:, pos[v]] = [-1 if a else lookup[t] for t, a in zip(text, absent, strict=True)]
        family = {v: [pos[p] for p in self.parents(v)] for v in nodes}
        pcards = {v: [cards[p] for p in self.parents(v)] for v in nodes}

        def cells(v: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            parents = family[v]
            config = (
                np.ravel_multi_index(tuple(rows[:, parents].T), pcards[v])
                if parents
                else np.zeros(len(rows), dtype=np.int64)
            )
            return rows[:, pos[v]], config

        complete = (codes >= 0).all(axis=1)
        base = {v: np.zeros_like(self.alpha_[v]) for v in nodes}
        for v in nodes:
            np.add.at(base[v], cells(v, codes[complete]), 1.0)
        patterns, weights = np.unique(codes[~complete], axis=0, return_counts=True)
        rows = []  # (all completions of the row, its multiplicity, nodes whose family is hit)
        for row, count in zip(patterns, weights, strict=True):
            hidden = np.flatnonzero(row < 0)
            size = math.prod(cards[nodes[j]] for j in hidden)
            if size > 2**16:
                names = [nodes[j] for j in hidden]
                raise DataError(
                    f"a row misses {len(hidden)} cells ({names}): {size:,} joint states, too "
                    "many to fill in by EM; drop such rows (--missing drop)"
                )
            grid = np.indices([cards[nodes[j]] for j in hidden]).reshape(len(hidden), -1).T
            filled = np.repeat(row[None, :], len(grid), axis=0)
            filled[:, hidden] = grid
            hit = [v for v in nodes if {pos[v], *family[v]} & set(hidden.tolist())]
            rows.append((filled, float(count), hit))
        prior = {v: a.copy() for v, a in self.alpha_.items()}

        def normalised(alpha: dict) -> dict:
            return {v: a / a.sum(axis=0, keepdims=True) for v, a in alpha.items()}

        theta = normalised({v: prior[v] + base[v] for v in nodes})
        expected = base
        for _ in range(max_iter):
            expected = {v: base[v].copy() for v in nodes}
            logs = {v: np.log(t) for v, t in theta.items()}
            for filled, count, hit in rows:
                logw = np.zeros(len(filled))
                for v in hit:
                    logw += logs[v][cells(v, filled)]
                w = np.exp(logw - logw.max())
                w *= count / w.sum()
                for v in nodes:
                    if v in hit:
                        np.add.at(expected[v], cells(v, filled), w)
                    else:
                        state, config = cells(v, filled[:1])
                        expected[v][state[0], config[0]] += count
            new = normalised({v: prior[v] + expected[v] for v in nodes})
            change = max(float(np.abs(new[v] - theta[v]).max()) for v in nodes)
            theta = new
            if change < tol:
                break
        for v in nodes:
            self.alpha_[v] = prior[v] + expected[v]
        self.n_seen_ += len(data)
        return self

    def model(self):
        """The network with posterior-mean CPTs, a pgmpy ``DiscreteBayesianNetwork``."""
        from pgmpy.factors.discrete import TabularCPD
        from pgmpy.models import DiscreteBayesianNetwork

        check_is_fitted(self, "alpha_")
        bn = DiscreteBayesianNetwork()
        bn.add_nodes_from(sorted(self.graph_.nodes()))
        bn.add_edges_from(sorted(self.graph_.edges()))
        cpds = []
        for node, alpha in self.alpha_.items():
            parents = self.parents(node)
            cpds.append(
                TabularCPD(
                    node,
                    len(self.state_names_[node]),
                    alpha / alpha.sum(axis=0, keepdims=True),
                    evidence=parents or None,
                    evidence_card=[len(self.state_names_[p]) for p in parents] or None,
                    state_names={v: self.state_names_[v] for v in [node, *parents]},
                )
            )
        bn.add_cpds(*cpds)
        bn.check_model()
        return bn


def fit_parameters(
    graph: nx.DiGraph,
    data: pd.DataFrame,
    *,
    state_names: dict[str, list[str]] | None = None,
    priors=None,
    literature_ess: float = 50.0,
    default_ess: float = 5.0,
):
    """Fit CPTs of ``graph`` to ``data`` under the literature priors.

    Parameters
    ----------
    graph : networkx.DiGraph
        Structure over (a subset of) the columns of ``data``.
    data : pandas.DataFrame
        Discrete table, rows = people.
    state_names : dict, optional
        States per node; default: the sorted states seen in ``data``.
    priors, literature_ess, default_ess
        See :class:`DirichletParameters`.

    Returns
    -------
    model : pgmpy.models.DiscreteBayesianNetwork
        Network with posterior-mean CPTs.
    params : DirichletParameters
        The posterior, ready for further :meth:`~DirichletParameters.update` calls.
    """
    if state_names is None:
        state_names = {c: sorted(map(str, pd.unique(data[c]))) for c in graph.nodes()}
    params = DirichletParameters(
        graph, state_names, priors=priors, literature_ess=literature_ess, default_ess=default_ess
    ).fit(data)
    return params.model(), params
