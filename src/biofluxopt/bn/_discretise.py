"""Discretisation of cohort tables into discrete nodes with reversible labels.

Continuous B12 variables are cut at documented clinical thresholds where the literature has
them (serum B12 < 148 / 148–258 / > 258 pmol/L, holoTC < 35 pmol/L, MMA > 0.271 µmol/L,
Hcy > 13 / 15 µmol/L, …, see :data:`LITERATURE_CUTOFFS`); other numeric columns are cut at
their empirical quantiles. Every state label maps back to its interval through
:meth:`Discretiser.interval` / :meth:`Discretiser.inverse_transform`, so a BN state such as
``"deficient"`` or ``"q2_0.0123_0.0456"`` can always be read as numbers again. Numeric
columns get at most :data:`MAX_STATES` states; categorical columns keep all their states.
Missing cells (NaN) are left out of the fit and stay missing.

Cohort columns carry units (``serum_b12_pmol_l``); BN nodes drop them (``serum_b12``) through
:data:`COHORT_TO_NODE` so queries read like the issue (``--target serum_b12``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from numbers import Integral
from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from biofluxopt._util import ConfigError, DataError, InstanceOf, Interval, check_params

MAX_STATES = 4
"""Most states a *numeric* column is cut into (DESIGN.md §5; keeps exact inference cheap).
Categorical columns keep all their states."""


@dataclass(frozen=True)
class Cutoff:
    """Clinical cut points of one continuous variable.

    ``edges`` are the inner bin edges (ascending, len = len(labels) - 1); bins are
    left-closed ``[lo, hi)``, the first starts at -inf and the last ends at +inf.
    """

    edges: tuple[float, ...]
    labels: tuple[str, ...]
    unit: str
    source: str


# Cut-offs by BN node name. Sources are rows of the B12 reference table.
LITERATURE_CUTOFFS: dict[str, Cutoff] = {
    "serum_b12": Cutoff(
        (148.0, 258.0),
        ("deficient", "marginal", "normal"),
        "pmol/L",
        "<148 low (NHANES; Morris 2007 AJCN, Evatt 2009); 148–258 marginal (Qi 2014 J Nutr)",
    ),
    "holotc": Cutoff(
        (35.0, 70.0),
        ("low", "indeterminate", "normal"),
        "pmol/L",
        "<35 low (SALSA, PMC2864787); >70 deficiency unlikely (NICE 2024, [S])",
    ),
    "mma": Cutoff(
        (0.271, 0.45),
        ("normal", "elevated", "high"),
        "µmol/L",
        "upper reference 271 nmol/L (Mayo FB12V; Kuzminski 1998); 0.45 strata (Eussen 2006)",
    ),
    "hcy": Cutoff(
        (13.0, 15.0),
        ("normal", "intermediate", "high"),
        "µmol/L",
        ">13 hyperhomocysteinaemia (SALSA, PMC2864787); 15 upper reference (Kuzminski 1998)",
    ),
    "b12_intake": Cutoff(
        (2.4, 4.0),
        ("below_rda", "rda_to_ai", "above_ai"),
        "µg/d",
        "RDA 2.4 µg/d (IOM 1998); EFSA adequate intake 4 µg/d (EFSA 2015)",
    ),
    "supplement": Cutoff(
        (0.01, 50.0),
        ("none", "low_dose", "high_dose"),
        "µg/d",
        "none = 0; ≥50 µg/d dose where IF-mediated uptake saturates (Carmel 2008 Table 1)",
    ),
    "age": Cutoff(
        (50.0, 65.0),
        ("under_50", "50_to_64", "65_plus"),
        "years",
        "food-B12 malabsorption rises after 50 (IOM 1998); NHANES strata 18–50 / >50 (Evatt 2009)",
    ),
    "body_store": Cutoff(
        (300.0, 1000.0),
        ("depleted", "low", "replete"),
        "µg",
        "lowest pool consistent with health ~300 µg (IOM 1998 App. N); typical 2–3 mg",
    ),
}

# Cohort column (with unit) -> BN node name (without unit).
COHORT_TO_NODE: dict[str, str] = {
    "serum_b12_pmol_l": "serum_b12",
    "holotc_pmol_l": "holotc",
    "mma_umol_l": "mma",
    "hcy_umol_l": "hcy",
    "b12_intake_ug_per_day": "b12_intake",
    "supplement_ug_per_day": "supplement",
    "age_years": "age",
    "liver_store_ug": "liver_store",
    "peripheral_store_ug": "peripheral_store",
    "body_store_ug": "body_store",
    "absorbed_ug_per_day": "absorbed",
    "ileal_free_cobalamin_ug_per_day": "ileal_free_cobalamin",
    "microbial_cobalamin_ug_per_day": "microbial_cobalamin",
    "microbial_analogue_ug_per_day": "microbial_analogue",
    "colon_propionate_mmol_per_day": "colon_propionate",
}


# Node -> the nodes it is the sum of. When all parts are columns too, the aggregate is dropped:
# a node that is a deterministic function of others breaks the faithfulness that CI-based
# structure learning relies on (every test involving the parts is confounded by the identity).
# body store = liver + peripheral + plasma pools (sim/_model.py: observables).
AGGREGATE_NODES: dict[str, tuple[str, ...]] = {
    "body_store": ("liver_store", "peripheral_store"),
}


_ID_HINT = ("patient_id",)

_UNSAFE = re.compile(r"[^0-9A-Za-z_.-]")


def safe_state(value: object) -> str:
    """A state label BIF/XMLBIF can store: characters other than ``[0-9A-Za-z_.-]`` -> ``_``."""
    text = _UNSAFE.sub("_", str(value))
    return text or "_"


def _fmt(x: float) -> str:
    """Short, exact-enough label text for a bin edge (4 significant figures)."""
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.4g}"


@dataclass(frozen=True)
class Bins:
    """Discretisation of one column; ``kind``: ``"cutoff"``, ``"quantile"``, ``"categorical"``."""

    kind: str
    labels: tuple[str, ...]
    edges: tuple[float, ...] = ()
    source: str = ""
    values: tuple[str, ...] = ()
    """Categorical only: the original values (as str) behind ``labels``."""

    def interval(self, label: str) -> tuple[float, float]:
        """``[low, high)`` of a numeric state; raises ``KeyError`` for an unknown label."""
        i = self.labels.index(label)
        lo = (-math.inf, *self.edges)[i]
        hi = (*self.edges, math.inf)[i]
        return lo, hi


class Discretiser(TransformerMixin, BaseEstimator):
    """Turn a cohort table into discrete BN states.

    A scikit-learn transformer: ``__init__`` stores the options, :meth:`fit` checks them
    (:attr:`_parameter_constraints`) and chooses the bins; ``clone``, ``get_params`` and
    ``check_is_fitted`` work.

    Numeric columns are cut into at most ``max_states`` states; categorical columns (text,
    booleans, integer codes with at most ``max_states`` values) keep every state they have.
    Missing cells (NaN) are ignored by :meth:`fit` and stay missing (``None``) in
    :meth:`transform`.

    Parameters
    ----------
    n_quantile_bins : int, default=3
        Bins for numeric columns without a literature cut-off (2..``max_states``).
    max_states : int, default=4
        Most states of a numeric column; integer columns with at most this many distinct
        values are read as categories.
    cutoffs : dict of str to Cutoff, optional
        Cut-offs by column name; defaults to :data:`LITERATURE_CUTOFFS`.
    source : str, default="<table>"
        Name of the table, used in error messages.

    Attributes
    ----------
    bins_ : dict of str to Bins
        Per-column discretisation, in column order.
    state_names_ : dict of str to list of str
        All states of every column, in order (read from ``bins_``).

    Raises
    ------
    ConfigError
        From :meth:`fit`: an option outside :attr:`_parameter_constraints`, or
        ``n_quantile_bins > max_states``.
    DataError
        From :meth:`fit` and :meth:`transform`: an empty table, an empty column, an
        identifier-like column, non-finite values, unknown states or missing columns.

    Examples
    --------
    >>> import pandas as pd
    >>> d = Discretiser().fit(pd.DataFrame({"serum_b12": [100.0, 200.0, 400.0]}))
    >>> d.transform(pd.DataFrame({"serum_b12": [120.0]}))["serum_b12"].tolist()
    ['deficient']
    >>> d.interval("serum_b12", "marginal")
    (148.0, 258.0)
    """

    _parameter_constraints: ClassVar[dict] = {
        "n_quantile_bins": [Interval(Integral, 2, None)],
        "max_states": [Interval(Integral, 2, None)],
        "cutoffs": [InstanceOf(dict, "a dict of column name to Cutoff"), None],
        "source": [InstanceOf(str, "a table name")],
    }
    """What each option may be (checked by :func:`~biofluxopt._util.check_params` in
    :meth:`fit`)."""

    def __init__(
        self,
        *,
        n_quantile_bins: int = 3,
        max_states: int = MAX_STATES,
        cutoffs: dict[str, Cutoff] | None = None,
        source: str = "<table>",
    ):
        self.n_quantile_bins = n_quantile_bins
        self.max_states = max_states
        self.cutoffs = cutoffs
        self.source = source

    def fit(self, df: pd.DataFrame, y=None) -> Discretiser:
        """Choose the bins of every column of ``df`` (rows = people, columns = variables;
        ``y`` is ignored, as in every scikit-learn transformer). Returns self."""
        check_params(self)
        if self.n_quantile_bins > self.max_states:
            raise ConfigError(
                f"must be in 2..{self.max_states} (max_states); got {self.n_quantile_bins}",
                field="Discretiser.n_quantile_bins",
            )
        if not isinstance(df, pd.DataFrame):
            raise DataError(
                f"expected a pandas DataFrame, got {type(df).__name__}", source=self.source
            )
        if df.shape[0] == 0 or df.shape[1] == 0:
            raise DataError(
                f"the table is empty ({df.shape[0]} rows, {df.shape[1]} columns)",
                source=self.source,
            )
        cutoffs = LITERATURE_CUTOFFS if self.cutoffs is None else self.cutoffs
        bins: dict[str, Bins] = {}
        for col in df.columns:
            bins[str(col)] = self._fit_column(str(col), df[col], cutoffs)
        self.bins_ = bins
        return self

    def _fit_column(self, col: str, s: pd.Series, cutoffs: dict[str, Cutoff]) -> Bins:
        s = s.dropna()
        if s.empty:
            raise DataError("every cell is empty", source=self.source, field=col)
        numeric = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
        if numeric and col in cutoffs:
            c = cutoffs[col]
            return Bins("cutoff", c.labels, c.edges, f"{c.unit}; {c.source}")
        values = pd.unique(s)
        integer_codes = (
            numeric
            and len(values) <= self.max_states
            and bool(np.all(np.mod(s.to_numpy(dtype=float), 1) == 0))
        )
        if not numeric or integer_codes:
            # Already discrete (strings, booleans, small integer codes): keep the observed states.
            raw = tuple(sorted({str(v) for v in values}))
            labels = tuple(safe_state(v) for v in raw)
            if len(set(labels)) != len(labels):
                raise DataError(
                    f"states {list(raw)} collide once made file-safe ({list(labels)}); rename them",
                    source=self.source,
                    field=col,
                )
            if len(labels) == len(s) > self.max_states:
                raise DataError(
                    f"a different value in every row ({len(labels)} states in {len(s)} rows): "
                    f"an identifier? name it {', '.join(_ID_HINT)} or drop it",
                    source=self.source,
                    field=col,
                )
            return Bins("categorical", labels, values=raw)
        x = s.to_numpy(dtype=float)
        if not np.isfinite(x).all():
            raise DataError("non-finite values (inf)", source=self.source, field=col)
        qs = np.linspace(0, 1, self.n_quantile_bins + 1)[1:-1]
        inner = np.unique(np.quantile(x, qs, method="linear"))
        # Drop edges equal to the minimum: they would leave the first bin empty.
        inner = tuple(float(e) for e in inner if e > x.min())
        distinct = np.unique(x)
        if not inner and len(distinct) > 1:
            # Mass piled on the minimum (e.g. an often-absent taxon): split "minimum" vs "more".
            inner = (float(distinct[1]),)
        if not inner:
            return Bins("categorical", (safe_state(values[0]),), values=(str(values[0]),))
        lows = (x.min(), *inner)
        highs = (*inner, x.max())
        # "q2_0.0123_0.0456": bin 2 of the observed range [0.0123, 0.0456); BIF-safe.
        labels = tuple(
            f"q{i + 1}_{_fmt(lo)}_{_fmt(hi)}"
            for i, (lo, hi) in enumerate(zip(lows, highs, strict=True))
        )
        return Bins("quantile", labels, inner, "empirical quantiles")

    def _check_fitted(self) -> None:
        check_is_fitted(self, "bins_")

    def transform(self, df: pd.DataFrame) -> pd.DataFrame:
        """Map ``df`` to state labels (object columns of str, ``None`` where a cell is
        missing; same index and column order)."""
        self._check_fitted()
        missing = [c for c in self.bins_ if c not in df.columns]
        if missing:
            raise DataError(f"missing columns {missing}", source=self.source)
        out = {}
        for col, b in self.bins_.items():
            s = df[col]
            if b.kind == "categorical":
                lookup = dict(zip(b.values, b.labels, strict=True))
                lookup.update({lab: lab for lab in b.labels})
                missing = s.isna().to_numpy()
                raw = s.astype(str)
                bad = sorted(set(raw[~missing]) - set(lookup))
                if bad:
                    raise DataError(
                        f"unknown states {bad}; known: {list(b.values)}",
                        source=self.source,
                        field=col,
                    )
                states = raw.map(lookup).to_numpy(dtype=object)
                states[missing] = None
                out[col] = states
            else:
                missing = s.isna().to_numpy()
                x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
                if np.isnan(x[~missing]).any():
                    raise DataError("non-numeric values", source=self.source, field=col)
                idx = np.searchsorted(np.asarray(b.edges), np.where(missing, 0.0, x), side="right")
                states = np.asarray(b.labels, dtype=object)[idx]
                states[missing] = None
                out[col] = states
        return pd.DataFrame(out, index=df.index)

    def fit_transform(self, df: pd.DataFrame, y=None) -> pd.DataFrame:
        """``fit(df).transform(df)``."""
        return self.fit(df).transform(df)

    def interval(self, column: str, label: str) -> tuple[float, float]:
        """The ``[low, high)`` interval a numeric state stands for (the reverse of a label)."""
        self._check_fitted()
        b = self.bins_[column]
        if b.kind == "categorical":
            raise DataError(f"{column!r} is categorical; its states are its values", field=column)
        if label not in b.labels:
            raise DataError(f"unknown state {label!r}; known: {list(b.labels)}", field=column)
        return b.interval(label)

    def inverse_transform(self, states: pd.DataFrame) -> pd.DataFrame:
        """Numeric states -> ``pandas.Interval`` objects; categorical columns pass through."""
        self._check_fitted()
        out = {}
        for col in states.columns:
            b = self.bins_.get(str(col))
            if b is None:
                out[col] = states[col]
                continue
            if b.kind == "categorical":
                out[col] = states[col].map(dict(zip(b.labels, b.values, strict=True)))
                continue
            table = {lab: pd.Interval(*b.interval(lab), closed="left") for lab in b.labels}
            out[col] = states[col].map(table)
        return pd.DataFrame(out, index=states.index)

    @property
    def state_names_(self) -> dict[str, list[str]]:
        """All states of every column (including states absent from the data), in order."""
        self._check_fitted()
        return {c: list(b.labels) for c, b in self.bins_.items()}


def cohort_to_nodes(cohort: pd.DataFrame) -> pd.DataFrame:
    """Rename unit-bearing cohort columns to BN node names and drop identifier columns.

    Parameters
    ----------
    cohort : pandas.DataFrame
        A simulated or measured cohort, one row per person (``patient_id`` is dropped).

    Returns
    -------
    pandas.DataFrame
        Same rows, columns renamed by :data:`COHORT_TO_NODE`; others kept as they are. An
        aggregate of :data:`AGGREGATE_NODES` (``body_store``) is dropped when all its parts
        (``liver_store``, ``peripheral_store``) are columns.
    """
    df = cohort.drop(columns=[c for c in ("patient_id",) if c in cohort.columns])
    df = df.rename(columns=COHORT_TO_NODE)
    drop = [a for a, parts in AGGREGATE_NODES.items() if {a, *parts} <= set(df.columns)]
    return df.drop(columns=drop)
