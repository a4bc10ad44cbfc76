"""Hybrid structure learning: PC skeleton + expert knowledge + score-based orientation,
with bootstrap arc strength and an averaged network (bnlearn's ``boot.strength`` /
``averaged.network``, which pgmpy lacks).

Algorithm of ``method="hybrid"`` (one run on one data set):

1. **Skeleton** (constraint-based): PC-stable with a chi-square test at level ``alpha``
   (:class:`pgmpy.causal_discovery.PC`). Pairs that expert knowledge forbids in both directions
   are dropped; required pairs are added.
2. **Start DAG**: the skeleton's edges are oriented along an order that puts expert tiers first
   and PC's own orientation second, so it is acyclic and never breaks a tier.
3. **Score-based refinement**: hill climbing (:class:`pgmpy.causal_discovery.HillClimbSearch`,
   BDeu by default) from that start, with the search space restricted to the skeleton (both
   directions) and expert knowledge as forbidden/required edges. The restriction keeps the
   score from adding the spurious edges greedy search adds around near-deterministic nodes;
   the score orients the skeleton and removes weak edges PC keeps.
4. **Score-based additions**: a second hill climb from that result over the union of the PC
   skeleton and the skeleton of a plain (BIC) hill climb, so the score can add edges whose CI
   tests lacked power (small samples, near-deterministic parents, e.g. asia's ``either``) but
   only among pairs a score-based search proposes on its own.
5. **CI check of the additions**: every arc of step 4 outside the PC skeleton (and not
   required) must stay dependent given the parents of both endpoints (CI test at
   ``prune_alpha``, 0.05), else it is dropped. At large n the score adds arcs that the other
   parents explain (alarm 20k); the check removes them and keeps what PC missed for lack of
   power (asia 1k).

``method="mixed"`` learns from the numbers themselves instead of their states (for tables whose
columns are measurements, like the simulated cohorts):

1. **Score-based search** on the mixed table: hill climbing with the conditional-Gaussian BIC
   (pgmpy ``bic-cg``) and the expert knowledge. Numeric columns enter as numbers (log-transformed
   when non-negative, zeros offset by half the smallest positive value, the pseudo-count rule of
   ``biofluxopt.data``), the others as categories. The score sees a sum of many parents, or a
   weak effect on a continuous node, that 3-state tables lose.
2. **CI check of every arc** (except required ones), as in step 5 of ``"hybrid"``: an arc is
   dropped when its ends are independent given the parents of both, by Pillai's trace on the
   residuals of additive spline regressions (pgmpy ``PillaiTrace`` with
   :class:`_AdditiveResiduals`; categorical ends as indicator columns) at ``prune_alpha``.
   The misspecified Gaussian score adds arcs freely (precision ≈ 0.55 on the simulator's
   cohorts); the check removes those the data do not support.

The states are still what the network's CPTs are fitted on (``learn_network``).

With ``n_bootstrap = B > 0`` the run is repeated on B bootstrap resamples (in parallel with
joblib, each with its own seed drawn from ``random_state``); ``arc_strength_`` holds, for every
pair, the share of resamples with an arc (strength) and the share of those pointing the
majority way (direction); ``graph_`` is the averaged network: arcs with strength ≥
``strength_threshold``, majority direction, added strongest first and skipped if they would
close a cycle.

References
----------
Spirtes, Glymour & Scheines (2000) Causation, Prediction and Search (PC).
Tsamardinos, Brown & Aliferis (2006) Mach Learn 65:31, doi:10.1007/s10994-006-6889-7 (MMHC:
restricting a score search to a constraint-based skeleton).
Friedman, Goldszmidt & Wyner (1999) UAI, arXiv:1301.6695 (bootstrap arc confidence).
Scutari & Nagarajan (2013) Artif Intell Med 57:207, doi:10.1016/j.artmed.2012.12.006
(averaged networks, bnlearn).
"""

from __future__ import annotations

import functools
import logging
import warnings
from numbers import Integral, Real
from typing import ClassVar

import networkx as nx
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from biofluxopt._util import DataError, InstanceOf, Interval, Options, check_params

METHODS = ("hybrid", "pc", "hc", "mixed")


def _quiet_pgmpy() -> None:
    from pgmpy import config

    config.set_show_progress(False)
    logging.getLogger("pgmpy").setLevel(logging.ERROR)


def _ek_parts(expert_knowledge) -> tuple[set, set, dict]:
    """Forbidden edges, required edges and tiers of an ExpertKnowledge (copied: pgmpy mutates
    its sets).

    The tiers are the ``temporal_ordering`` pgmpy derives from ``temporal_order`` (variable ->
    index of its tier); every edge from a later tier to an earlier one is forbidden.
    """
    if expert_knowledge is None:
        return set(), set(), {}
    forbidden = set(expert_knowledge.forbidden_edges)
    required = set(expert_knowledge.required_edges)
    order = dict(expert_knowledge.temporal_ordering)
    for u, tu in order.items():
        forbidden.update((u, v) for v, tv in order.items() if tv < tu)
    return forbidden, required, order


class _AdditiveResiduals(BaseEstimator):
    """Additive-spline least-squares residualiser for pgmpy's Pillai test (sklearn-style).

    The design is an intercept, the conditioning columns and a cubic B-spline basis of each
    numeric one (scikit-learn ``SplineTransformer`` at its defaults: 5 knots, degree 3), i.e.
    an additive model: it follows the saturable and Hill-type responses of the kinetic model,
    which a straight line would leave as spurious residual dependence. Integer targets (the
    test's factorised categories) are regressed as indicator columns: linear-probability
    residuals, the classical MANCOVA form of Pillai's trace.

    Hand-written because nothing in scikit-learn fits the test's contract: pgmpy's default
    random forests overfit in-sample (their residuals shrink towards 0), and a
    ``SplineTransformer`` + ``LinearRegression`` pipeline has no ``predict_proba`` for
    categorical targets.
    """

    _parameter_constraints: ClassVar[dict] = {}
    """No options."""

    def _design(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        parts = [np.ones((len(X), 1)), X]
        if self.splines_ is not None:
            parts.append(self.splines_.transform(X[:, self.numeric_]))
        return np.hstack(parts)

    def fit(self, X, y):
        from sklearn.preprocessing import SplineTransformer

        check_params(self)
        X = np.asarray(X, dtype=float)
        self.numeric_ = [j for j in range(X.shape[1]) if len(np.unique(X[:, j])) > 2]
        self.splines_ = (
            SplineTransformer(include_bias=False).fit(X[:, self.numeric_])
            if self.numeric_
            else None
        )
        y = np.asarray(y)
        target = np.eye(int(y.max()) + 1)[y] if np.issubdtype(y.dtype, np.integer) else y
        self.coef_ = np.linalg.lstsq(self._design(X), target.astype(float), rcond=None)[0]
        return self

    def predict(self, X) -> np.ndarray:
        return self._design(X) @ self.coef_

    predict_proba = predict


def mixed_frame(data: pd.DataFrame) -> pd.DataFrame:
    """The table as ``method="mixed"`` reads it (same rows and columns).

    Numeric columns with more than 2 distinct values become float: ``log(x + c)`` when all
    values are ≥ 0 (``c`` = half the smallest positive value if there are zeros, else 0),
    unchanged otherwise. Every other column becomes a pandas categorical of its values as text.
    """
    out = {}
    for col in data.columns:
        values = data[col]
        if pd.api.types.is_numeric_dtype(values) and values.nunique() > 2:
            x = values.to_numpy(dtype=float)
            if x.min() >= 0:
                # half the smallest positive value (never 0, even for subnormal values)
                offset = max(x[x > 0].min() / 2, np.finfo(float).tiny) if (x == 0).any() else 0.0
                x = np.log(x + offset)
            out[col] = x
        else:
            out[col] = pd.Categorical(values.astype(str))
    return pd.DataFrame(out, index=data.index)


@functools.total_ordering
class _Var:
    """A column name whose hash is its position, the same in every process (a ``str``'s hash
    changes with ``PYTHONHASHSEED``). Equal only to itself; orders and prints as the name."""

    __slots__ = ("index", "name")

    def __init__(self, index: int, name: str):
        self.index = index
        self.name = name

    def __hash__(self) -> int:
        return self.index

    def __eq__(self, other) -> bool:
        return isinstance(other, _Var) and other.index == self.index

    def __lt__(self, other) -> bool:
        if not isinstance(other, _Var):
            return NotImplemented
        return self.index < other.index

    def __repr__(self) -> str:
        return repr(self.name)

    def __str__(self) -> str:
        return self.name

    def __reduce__(self):
        return (_Var, (self.index, self.name))


def _learn_once(
    data: pd.DataFrame,
    *,
    method: str,
    forbidden: set,
    required: set,
    tiers: dict[str, int],
    alpha: float,
    prune_alpha: float,
    ci_test: str,
    scoring_method: str,
    max_indegree: int | None,
) -> nx.DiGraph:
    """One structure-learning run; returns a DAG over all columns of ``data``.

    pgmpy iterates over sets of variable names (candidate edges of the hill climb, the PDAG's
    edges and nodes in PC's orientation, parent sets inside the scores), and the order of a
    set of strings changes with ``PYTHONHASHSEED``; with ties or near-ties among score
    changes, so did the learned graph. The learners therefore run on the integer positions of
    column names wrapped in :class:`_Var`, whose hash is the column's position, and the names
    are put back afterwards.

    A column with a single value (common in bootstrap resamples of small tables: a rare state
    drawn zero times) carries no information and is left out of the search; it keeps only its
    required edges. pgmpy's chi-square test calls such a column dependent on everything, and
    the score cannot remove arcs into it, so it used to collect every other node as a parent:
    a 38-million-entry CPT from 80 rows, minutes to write.
    """
    constant = [c for c in data.columns if data[c].nunique(dropna=False) < 2]
    if constant:
        informative = [c for c in data.columns if c not in constant]
        dag = _as_digraph(list(data.columns), [])
        if len(informative) >= 2:
            keep = set(informative)
            dag.add_edges_from(
                _learn_once(
                    data[informative],
                    method=method,
                    forbidden={e for e in forbidden if set(e) <= keep},
                    required={e for e in required if set(e) <= keep},
                    tiers={v: t for v, t in tiers.items() if v in keep},
                    alpha=alpha,
                    prune_alpha=prune_alpha,
                    ci_test=ci_test,
                    scoring_method=scoring_method,
                    max_indegree=max_indegree,
                ).edges()
            )
        extra = sorted(e for e in required if not set(e) <= set(informative))
        return _acyclic(list(data.columns), sorted(dag.edges()) + extra)
    from threadpoolctl import threadpool_limits

    names = list(data.columns)
    code = {name: _Var(i, name) for i, name in enumerate(names)}
    # One BLAS/OpenMP thread: the scores and CI tests work on tiny matrices, where threads
    # only spin; with bootstrap workers on a many-core machine they multiplied CPU time.
    with threadpool_limits(limits=1):
        dag = _learn_once_coded(
            data.set_axis([code[n] for n in names], axis=1),
            method=method,
            forbidden={(code[u], code[v]) for u, v in forbidden},
            required={(code[u], code[v]) for u, v in required},
            tiers={code[v]: t for v, t in tiers.items()},
            alpha=alpha,
            prune_alpha=prune_alpha,
            ci_test=ci_test,
            scoring_method=scoring_method,
            max_indegree=max_indegree,
        )
    return _as_digraph(names, sorted((u.name, v.name) for u, v in dag.edges()))


def _learn_once_coded(
    data: pd.DataFrame,
    *,
    method: str,
    forbidden: set,
    required: set,
    tiers: dict[_Var, int],
    alpha: float,
    prune_alpha: float,
    ci_test: str,
    scoring_method: str,
    max_indegree: int | None,
) -> nx.DiGraph:
    """:func:`_learn_once` on a table whose columns are ``0 … n-1``."""
    from pgmpy.causal_discovery import PC

    _quiet_pgmpy()
    nodes = list(data.columns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "hc":
            return _hill_climb(data, None, None, forbidden, required, scoring_method, max_indegree)
        if method == "mixed":
            from pgmpy.ci_tests.pillai_trace import PillaiTrace

            dag = _hill_climb(data, None, None, forbidden, required, scoring_method, max_indegree)
            test = PillaiTrace(data, estimator=_AdditiveResiduals())
            return _prune_additions(data, dag, set(), required, test, prune_alpha)

        pc = PC(
            variant="stable",
            ci_test=ci_test,
            significance_level=alpha,
            return_type="dag",
            n_jobs=1,
            show_progress=False,
        ).fit(data)
        skeleton = {tuple(sorted(e)) for e in pc.skeleton_.edges()}
        skeleton = {
            (u, v) for u, v in skeleton if not ((u, v) in forbidden and (v, u) in forbidden)
        }
        skeleton |= {tuple(sorted(e)) for e in required}
        # pgmpy's PDAG -> DAG extension can leave a cycle; _acyclic breaks it deterministically.
        pc_dag = _acyclic(nodes, sorted(pc.causal_graph_.edges()))
        pc_order = {v: i for i, v in enumerate(nx.lexicographical_topological_sort(pc_dag))}
        key = {v: (tiers.get(v, 0), pc_order[v], v) for v in nodes}

        if method == "pc":
            # PC's own orientation, corrected where it breaks expert knowledge.
            edges = []
            for u, v in sorted(pc_dag.edges()):
                if tuple(sorted((u, v))) not in skeleton:
                    continue
                if (u, v) in forbidden or (v, u) in required:
                    u, v = v, u
                edges.append((u, v))
            edges += [e for e in sorted(required) if e not in edges]
            return _acyclic(nodes, edges)

        start = [(u, v) if key[u] < key[v] else (v, u) for u, v in sorted(skeleton)]
        start = [e for e in start if e not in forbidden and (e[1], e[0]) not in required]
        phase1 = _hill_climb(
            data,
            _acyclic(nodes, start + sorted(required)).edges(),
            skeleton,
            forbidden,
            required,
            scoring_method,
            max_indegree,
        )
        # Phase 2: let the score add what the CI tests missed (low power at small n, near-
        # deterministic nodes), but only among pairs a plain hill climb also proposes.
        hc = _hill_climb(data, None, None, forbidden, required, "bic-d", max_indegree)
        candidates = skeleton | {tuple(sorted(e)) for e in hc.edges()}
        phase2 = _hill_climb(
            data, phase1.edges(), candidates, forbidden, required, scoring_method, max_indegree
        )
        return _prune_additions(data, phase2, skeleton, required, ci_test, prune_alpha)


def _prune_additions(data, dag, skeleton, required, ci_test, alpha) -> nx.DiGraph:
    """Step 5: drop score-added arcs (outside the PC skeleton) that a CI test at level ``alpha``
    calls independent given the parents of both endpoints in ``dag``.

    Like MMHC's constraint phase, but applied after the score: greedy BDeu search at large n
    adds arcs whose dependence is fully explained by the other parents (alarm 20k:
    MINVOL-KINKEDTUBE, p = 0.47 given the parents), while true arcs PC missed for lack of power
    stay dependent (asia 1k: either-tub, p = 0.017).
    """
    from pgmpy.ci_tests import get_ci_test

    test = get_ci_test(ci_test, data=data)  # a test instance passes through
    pruned = dag.copy()
    for u, v in sorted(dag.edges()):
        if tuple(sorted((u, v))) in skeleton or (u, v) in required:
            continue
        z = (set(pruned.predecessors(u)) | set(pruned.predecessors(v))) - {u, v}
        if test.is_independent(u, v, sorted(z), significance_level=alpha):
            pruned.remove_edge(u, v)
    return pruned


def _hill_climb(
    data, start_edges, pairs, forbidden, required, scoring_method, max_indegree
) -> nx.DiGraph:
    """pgmpy hill climb from ``start_edges`` over ``pairs`` (both directions; None = all)."""
    from pgmpy.base import DAG
    from pgmpy.causal_discovery import ExpertKnowledge, HillClimbSearch

    nodes = list(data.columns)
    start_dag = None
    if start_edges is not None:
        start_dag = DAG()
        start_dag.add_nodes_from(nodes)
        start_dag.add_edges_from(start_edges)
    space = None
    if pairs is not None:
        space = {(u, v) for a, b in pairs for u, v in ((a, b), (b, a))} | set(required)
    ek = ExpertKnowledge(
        forbidden_edges=set(forbidden), required_edges=set(required), search_space=space
    )
    est = HillClimbSearch(
        scoring_method=scoring_method,
        start_dag=start_dag,
        max_indegree=max_indegree,
        expert_knowledge=ek,
        return_type="dag",
        show_progress=False,
    )
    return _as_digraph(nodes, est.fit(data).causal_graph_.edges())


def _as_digraph(nodes, edges) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from(edges)
    return g


def _acyclic(nodes, edges) -> nx.DiGraph:
    """Add ``edges`` in order, reversing any that would close a cycle (then dropping it)."""
    g = _as_digraph(nodes, [])
    for u, v in edges:
        for a, b in ((u, v), (v, u)):
            g.add_edge(a, b)
            if nx.is_directed_acyclic_graph(g):
                break
            g.remove_edge(a, b)
    return g


def _bootstrap_run(data: pd.DataFrame, seed: np.random.SeedSequence, kwargs: dict) -> list:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(data), size=len(data))
    sample = data.iloc[idx].reset_index(drop=True)
    return sorted(_learn_once(sample, **kwargs).edges())


class HybridStructureLearner(BaseEstimator):
    """Learn a discrete Bayesian-network structure (pgmpy) with optional bootstrap averaging.

    A scikit-learn estimator: ``__init__`` stores the options, :meth:`fit` checks them
    (:attr:`_parameter_constraints`, a :class:`~biofluxopt._util.ConfigError` naming the
    option) and the data, and learns; ``clone``, ``get_params``/``set_params`` and
    ``check_is_fitted`` work.

    Parameters
    ----------
    method : {"hybrid", "pc", "hc", "mixed"}, default="hybrid"
        ``"hybrid"``: PC skeleton + expert knowledge + BDeu hill climbing restricted to the
        skeleton, then score-based additions checked by a CI test (module docstring);
        ``"pc"``: PC-stable alone; ``"hc"``: hill climbing alone; ``"mixed"``: conditional-
        Gaussian hill climbing on the numbers (:func:`mixed_frame`), each arc checked by a CI
        test (module docstring).
    expert_knowledge : pgmpy.causal_discovery.ExpertKnowledge, optional
        Everything the learner knows beyond the data: forbidden and required edges, and
        temporal tiers (``temporal_order``: a list of tiers, earliest first). Tiers forbid
        every edge into an earlier tier, and order the skeleton's edges for the start DAG of
        ``"hybrid"`` (step 2; variables outside every tier count as tier 0). Variables that
        are not columns are ignored (listed in ``ignored_knowledge_variables_``). See
        :func:`biofluxopt.bn.b12_expert_knowledge`, which builds all three for the B12
        network. ``None``: data only.
    alpha : float in (0, 1), default=0.01
        Significance level of PC's conditional-independence tests.
    prune_alpha : float in (0, 1), default=0.05
        Level of the CI test that checks arcs the score added outside the PC skeleton (step 5
        of ``"hybrid"``; every arc for ``"mixed"``); bnlearn's default level. Larger keeps
        fewer such arcs.
    ci_test : str, default="chi_square"
        Any test name of :mod:`pgmpy.ci_tests` for discrete data (``"g_sq"`` …).
    scoring_method : str, optional
        Score of the hill climb (``"bdeu"``, ``"bic-d"``, ``"k2"`` …); default ``"bdeu"`` for
        ``"hybrid"``, pgmpy's default ``"bic-d"`` for ``"hc"`` and ``"bic-cg"`` for
        ``"mixed"``.
    max_indegree : int, optional
        Cap on the parents per node in the hill climb.
    n_bootstrap : int, default=0
        Bootstrap resamples for arc strength; 0 = one run on the data.
    strength_threshold : float in (0, 1], default=0.5
        Minimum arc strength for the averaged network.
    n_jobs : int, default=1
        Parallel workers for the bootstrap (joblib): ≥ 1, or -1 for all cores. Each run uses
        one BLAS thread; the result does not depend on ``n_jobs``.
    random_state : int, default=0
        Seed of the bootstrap resampling.
    progress : bool, default=False
        Show a rich progress bar over bootstrap resamples.

    Attributes
    ----------
    graph_ : networkx.DiGraph
        The learned (averaged) DAG over all columns.
    skeleton_ : networkx.Graph
        Its undirected skeleton.
    arc_strength_ : pandas.DataFrame
        Columns ``source, target, strength, direction``: one row per pair seen in any run,
        oriented the majority way, sorted by decreasing strength.
    variables_ : list of str
        Columns learned from (sorted).
    ignored_knowledge_variables_ : list of str
        Variables of ``expert_knowledge``'s forbidden and required edges that are not
        columns (sorted).

    Raises
    ------
    ConfigError
        From :meth:`fit`: an option outside :attr:`_parameter_constraints`.
    DataError
        From :meth:`fit`: ``data`` is not a DataFrame, has fewer than 2 rows or columns, or
        has missing cells.

    Examples
    --------
    >>> from pgmpy.utils import get_example_model
    >>> df = get_example_model("asia").simulate(2000, seed=0, show_progress=False)
    >>> learner = HybridStructureLearner().fit(df)
    >>> sorted(learner.graph_.nodes())[:3]
    ['asia', 'bronc', 'dysp']
    """

    _parameter_constraints: ClassVar[dict] = {
        "method": [Options(*METHODS)],
        "expert_knowledge": [
            InstanceOf("pgmpy.causal_discovery:ExpertKnowledge", "a pgmpy ExpertKnowledge"),
            None,
        ],
        "alpha": [Interval(Real, 0, 1, closed="neither")],
        "prune_alpha": [Interval(Real, 0, 1, closed="neither")],
        "ci_test": [InstanceOf(str, "a pgmpy CI test name")],
        "scoring_method": [InstanceOf(str, "a pgmpy score name"), None],
        "max_indegree": [Interval(Integral, 1, None), None],
        "n_bootstrap": [Interval(Integral, 0, None)],
        "strength_threshold": [Interval(Real, 0, 1, closed="right")],
        "n_jobs": [Interval(Integral, 1, None), Options(-1)],
        "random_state": [Interval(Integral, 0, None)],
        "progress": [InstanceOf(bool, "True or False")],
    }
    """What each option may be (checked by :func:`~biofluxopt._util.check_params` in
    :meth:`fit`)."""

    def __init__(
        self,
        method: str = "hybrid",
        *,
        expert_knowledge=None,
        alpha: float = 0.01,
        prune_alpha: float = 0.05,
        ci_test: str = "chi_square",
        scoring_method: str | None = None,
        max_indegree: int | None = None,
        n_bootstrap: int = 0,
        strength_threshold: float = 0.5,
        n_jobs: int = 1,
        random_state: int = 0,
        progress: bool = False,
    ):
        self.method = method
        self.expert_knowledge = expert_knowledge
        self.alpha = alpha
        self.prune_alpha = prune_alpha
        self.ci_test = ci_test
        self.scoring_method = scoring_method
        self.max_indegree = max_indegree
        self.n_bootstrap = n_bootstrap
        self.strength_threshold = strength_threshold
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.progress = progress

    def _validate(self, data: pd.DataFrame) -> pd.DataFrame:
        check_params(self)
        if not isinstance(data, pd.DataFrame):
            raise DataError(f"data must be a pandas DataFrame, got {type(data).__name__}")
        if data.shape[0] < 2 or data.shape[1] < 2:
            raise DataError(f"need at least 2 rows and 2 columns, got shape {data.shape}")
        if data.isna().any().any():
            cols = data.columns[data.isna().any()].tolist()
            raise DataError(f"missing values in columns {cols}")
        data = mixed_frame(data) if self.method == "mixed" else data.astype(str)
        return data[sorted(data.columns)]

    def fit(self, data: pd.DataFrame) -> HybridStructureLearner:
        """Learn the structure from ``data`` (rows = samples; columns = discrete variables, or
        for ``method="mixed"`` numeric and categorical ones). Returns self."""
        data = self._validate(data)
        variables = list(data.columns)
        forbidden, required, tiers = _ek_parts(self.expert_knowledge)
        unknown = sorted({v for e in forbidden | required for v in e} - set(variables))
        forbidden = {e for e in forbidden if set(e) <= set(variables)}
        required = {e for e in required if set(e) <= set(variables)}
        tiers = {v: t for v, t in tiers.items() if v in set(variables)}
        kwargs = dict(
            method=self.method,
            forbidden=forbidden,
            required=required,
            tiers=tiers,
            alpha=self.alpha,
            prune_alpha=self.prune_alpha,
            ci_test=self.ci_test,
            scoring_method=self.scoring_method
            or {"hc": "bic-d", "mixed": "bic-cg"}.get(self.method, "bdeu"),
            max_indegree=self.max_indegree,
        )
        if self.n_bootstrap == 0:
            runs = [sorted(_learn_once(data, **kwargs).edges())]
        else:
            runs = self._bootstrap(data, kwargs)
        self.variables_ = variables
        self.ignored_knowledge_variables_ = unknown
        self.arc_strength_, self.graph_ = _aggregate(runs, variables, self.strength_threshold)
        self.skeleton_ = self.graph_.to_undirected()
        return self

    def _bootstrap(self, data: pd.DataFrame, kwargs: dict) -> list:
        from joblib import Parallel, delayed

        seeds = np.random.SeedSequence(self.random_state).spawn(self.n_bootstrap)
        jobs = (delayed(_bootstrap_run)(data, s, kwargs) for s in seeds)
        results = Parallel(n_jobs=self.n_jobs, return_as="generator")(jobs)
        if not self.progress:
            return list(results)
        from rich.progress import track

        return list(track(results, total=self.n_bootstrap, description="bootstrap"))


def _aggregate(
    runs: list, variables: list[str], threshold: float
) -> tuple[pd.DataFrame, nx.DiGraph]:
    """Arc strengths of the ``runs`` (edge lists) and the averaged network (module
    docstring)."""
    n = len(runs)
    count: dict[tuple[str, str], int] = {}
    for edges in runs:
        for u, v in edges:
            count[(u, v)] = count.get((u, v), 0) + 1
    rows = []
    for a, b in sorted({tuple(sorted(e)) for e in count}):
        ab, ba = count.get((a, b), 0), count.get((b, a), 0)
        src, dst = (a, b) if ab >= ba else (b, a)
        rows.append((src, dst, (ab + ba) / n, max(ab, ba) / (ab + ba)))
    strength = pd.DataFrame(rows, columns=["source", "target", "strength", "direction"])
    strength = strength.sort_values(
        ["strength", "direction", "source", "target"], ascending=[False, False, True, True]
    ).reset_index(drop=True)
    kept = strength[strength["strength"] >= threshold - 1e-12]
    graph = _acyclic(variables, list(zip(kept["source"], kept["target"], strict=True)))
    return strength, graph


def skeleton_scores(learned: nx.DiGraph | nx.Graph, truth: nx.DiGraph) -> dict[str, float]:
    """Compare a learned structure with the true DAG.

    Parameters
    ----------
    learned : networkx.DiGraph or Graph
        Learned structure (directed or undirected edges).
    truth : networkx.DiGraph
        Ground-truth DAG.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1`` of the undirected skeleton; ``shd``: structural
        Hamming distance of the DAGs (missing + extra + reversed arcs; undirected learned
        edges count as reversed when the truth has the edge); ``tp``, ``fp``, ``fn``.
    """
    est = {frozenset(e) for e in learned.edges()}
    true = {frozenset(e) for e in truth.edges()}
    tp = len(est & true)
    fp, fn = len(est - true), len(true - est)
    precision = tp / len(est) if est else 0.0
    recall = tp / len(true) if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    reversed_ = 0
    if learned.is_directed():
        reversed_ = sum(
            1 for u, v in truth.edges() if learned.has_edge(v, u) and not learned.has_edge(u, v)
        )
    else:
        reversed_ = tp
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "shd": float(fp + fn + reversed_),
        "tp": float(tp),
        "fp": float(fp),
        "fn": float(fn),
    }
