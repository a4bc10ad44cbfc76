"""Statistics of a virtual trial with paired arms.

Both arms of a virtual trial are run on the *same* patients with the *same* noise, so every
comparison here is paired: per-patient differences ``d = treatment - control`` carry the
effect, and resampling is over patients (indices), never over the two arms separately.

The functions compute

* :func:`compare_paired` — relative effect (% change of the arm means) with a paired bootstrap
  and a delta-method t interval, the absolute mean difference with its t interval, paired t and
  Wilcoxon signed-rank p-values and Cohen's :math:`d_z`;
* :func:`arm_summary` — descriptive statistics of one arm's outcomes;
* :func:`gain_regression` — OLS (robust standard errors) of the per-patient gain on baseline
  factors;
* :func:`subgroup_table` / :func:`subgroup_records` — :func:`compare_paired` per subgroup;
* :func:`ensemble_band` — the spread of an effect across model-parameter draws (model
  uncertainty, as opposed to the sampling uncertainty of the intervals above).

Every float returned for JSON (``to_dict``, :func:`subgroup_records`) is a plain Python float,
with ``None`` in place of ``NaN``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

from biofluxopt._util import ConfigError, to_jsonable

__all__ = [
    "PairedComparison",
    "RegressionResult",
    "arm_summary",
    "compare_paired",
    "ensemble_band",
    "gain_regression",
    "subgroup_records",
    "subgroup_table",
]

_BOOT_CHUNK_ELEMENTS = 4_000_000
"""Resampled values drawn at once by the bootstrap (bounds its memory to ~32 MB per array)."""

_ROBUST = ("nonrobust", "HC0", "HC1", "HC2", "HC3")


# ---------------------------------------------------------------------------------------------
# input checks


def _vector(x: ArrayLike, name: str, *, min_n: int = 2) -> np.ndarray:
    """``x`` as a finite 1-D float64 array of length ``>= min_n`` (ConfigError otherwise)."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"must be numeric, got {type(x).__name__}: {exc}", field=name) from None
    if arr.ndim != 1:
        raise ConfigError(f"must be 1-D (one value per patient), got shape {arr.shape}", field=name)
    if arr.size < min_n:
        raise ConfigError(f"needs at least {min_n} values, got {arr.size}", field=name)
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ConfigError(
            f"holds {int(bad.sum())} non-finite value(s) (NaN or inf), first at index "
            f"{int(np.flatnonzero(bad)[0])}",
            field=name,
        )
    return arr


def _pair(treatment: ArrayLike, control: ArrayLike, *, min_n: int = 2):
    t = _vector(treatment, "treatment", min_n=min_n)
    c = _vector(control, "control", min_n=min_n)
    if t.shape != c.shape:
        raise ConfigError(
            f"treatment and control must hold one value per patient each, got {t.size} "
            f"treatment and {c.size} control values",
            field="control",
        )
    return t, c


def _check_confidence(confidence: float, name: str = "confidence") -> float:
    if not (isinstance(confidence, int | float) and 0.0 < float(confidence) < 1.0):
        raise ConfigError(f"must be a number in (0, 1), got {confidence!r}", field=name)
    return float(confidence)


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(f"must be an integer >= {minimum}, got {value!r}", field=name)
    return int(value)


def _none_if_nan(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


# ---------------------------------------------------------------------------------------------
# paired comparison


@dataclass(frozen=True)
class PairedComparison:
    """Paired comparison of two arms run on the same patients.

    The ``ci95_*`` names are kept whatever ``confidence`` was used (0.95 by default).

    Attributes
    ----------
    n : int
        Number of patients (pairs).
    treatment_mean, control_mean : float
        Arm means, in the outcome's units.
    pct_change : float
        ``100 * (mean(t) - mean(c)) / mean(c)``, in %.
    ci95_bootstrap : tuple of float
        Percentile interval of ``pct_change`` (%) from a paired bootstrap: patient indices are
        resampled with replacement and the ratio of the two arm means recomputed.
    ci95_t : tuple of float
        Interval of ``pct_change`` (%) from the delta method for the ratio of paired means (see
        :func:`compare_paired`) with the t quantile for ``n - 1`` degrees of freedom.
    mean_difference : float
        ``mean(t - c)``, in the outcome's units.
    difference_ci95_t : tuple of float
        Paired t interval of ``mean_difference``, in the outcome's units.
    p_paired_t : float or None
        Two-sided p-value of :func:`scipy.stats.ttest_rel`; ``None`` when every difference is 0.
    p_wilcoxon : float or None
        Two-sided p-value of :func:`scipy.stats.wilcoxon` with ``zero_method="wilcox"`` (zero
        differences are discarded); ``None`` when every difference is 0.
    cohens_dz : float or None
        ``mean(d) / sd(d, ddof=1)``; ``None`` when the differences have no spread.
    confidence : float
        Coverage of the intervals.
    n_boot : int
        Number of bootstrap resamples.
    """

    n: int
    treatment_mean: float
    control_mean: float
    pct_change: float
    ci95_bootstrap: tuple[float, float]
    ci95_t: tuple[float, float]
    mean_difference: float
    difference_ci95_t: tuple[float, float]
    p_paired_t: float | None
    p_wilcoxon: float | None
    cohens_dz: float | None
    confidence: float = 0.95
    n_boot: int = 2000

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: plain floats and lists, ``None`` in place of ``NaN``/inf."""
        return to_jsonable(asdict(self))


def _bootstrap_pct(
    t: np.ndarray, c: np.ndarray, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """``n_boot`` bootstrap replicates of the % change of the means, shape ``(n_boot,)``;
    a replicate whose resampled control mean is ``<= 0`` is ``NaN``."""
    n = t.size
    out = np.empty(n_boot)
    rows = max(1, _BOOT_CHUNK_ELEMENTS // n)
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        idx = rng.integers(0, n, size=(stop - start, n))
        mt = t[idx].mean(axis=1)
        mc = c[idx].mean(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[start:stop] = np.where(mc > 0, 100.0 * (mt - mc) / mc, np.nan)
    return out


def _percentile_ci(values: np.ndarray, confidence: float) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (math.nan, math.nan)
    alpha = 1.0 - confidence
    low, high = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return (float(low), float(high))


def _delta_ratio_ci(t: np.ndarray, c: np.ndarray, confidence: float) -> tuple[float, float]:
    """Delta-method t interval of ``100 * mean(d) / mean(c)`` (``d = t - c``), in %."""
    n = t.size
    d = t - c
    mean_d, mean_c = d.mean(), c.mean()
    r = mean_d / mean_c
    cov = np.cov(np.vstack([d, c]), ddof=1)  # [[var d, cov], [cov, var c]]
    var_r = (cov[0, 0] - 2 * r * cov[0, 1] + r**2 * cov[1, 1]) / (n * mean_c**2)
    se = math.sqrt(max(float(var_r), 0.0))
    q = float(stats.t.ppf(0.5 + confidence / 2, n - 1))
    return (float(100 * (r - q * se)), float(100 * (r + q * se)))


def _p_values(t: np.ndarray, c: np.ndarray) -> tuple[float | None, float | None]:
    """Two-sided (paired t, Wilcoxon signed-rank) p-values of ``t`` vs ``c``; ``None`` when
    every difference is zero (or scipy returns NaN)."""
    if not np.any(t != c):
        return None, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        p_t = _none_if_nan(stats.ttest_rel(t, c).pvalue)
        p_w = _none_if_nan(stats.wilcoxon(t, c, zero_method="wilcox").pvalue)
    return p_t, p_w


def _cohens_dz(d: np.ndarray) -> float | None:
    sd = float(np.std(d, ddof=1))
    if sd == 0.0 or not math.isfinite(sd):
        return None
    return float(d.mean() / sd)


def compare_paired(
    treatment: ArrayLike,
    control: ArrayLike,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> PairedComparison:
    """Compare two paired arms (same patients, same noise) at the end of a trial.

    Parameters
    ----------
    treatment, control : array_like, shape (n_patients,)
        Per-patient end-of-trial outcome in each arm (any unit, the same for both; e.g.
        ``serum_b12_pmol_l``); element ``i`` of both is patient ``i``. ``n_patients >= 2``.
    n_boot : int, default=2000
        Bootstrap resamples of the patients (``>= 10``).
    seed : int, default=0
        Seed of the bootstrap (:func:`numpy.random.default_rng`).
    confidence : float, default=0.95
        Coverage of every interval.

    Returns
    -------
    PairedComparison

    Raises
    ------
    ConfigError
        Arrays of different lengths, not 1-D, shorter than 2 or holding NaN/inf
        (``field="treatment"``/``"control"``), a control mean ``<= 0`` (``field="control"``:
        the % change is undefined), or a bad ``n_boot``/``confidence``.

    Notes
    -----
    With ``d = t - c`` and ``r = mean(d) / mean(c)`` (so ``pct_change = 100 r``), the delta
    method gives

    .. math:: \\operatorname{Var}(r) \\approx \\frac{s_d^2 - 2 r\\, s_{dc} + r^2 s_c^2}
              {n\\, \\bar c^2}

    with the sample (co)variances of ``d`` and ``c`` (``ddof=1``); the interval is
    ``100 (r ± t_{n-1} sqrt(Var r))``. It accounts for the pairing through ``s_dc``; for
    ``t = k c`` exactly it collapses to the point ``100 (k - 1)``.

    A bootstrap replicate whose resampled control mean is ``<= 0`` (possible only with
    negative control values) is left out of the percentile interval.
    """
    t, c = _pair(treatment, control)
    n_boot = _check_int(n_boot, "n_boot", 10)
    confidence = _check_confidence(confidence)
    mean_t, mean_c = float(t.mean()), float(c.mean())
    if not mean_c > 0:
        raise ConfigError(
            f"the control mean must be > 0 for a % change, got {mean_c:g}", field="control"
        )
    d = t - c
    n = t.size
    mean_d = float(d.mean())
    q = float(stats.t.ppf(0.5 + confidence / 2, n - 1))
    half = q * float(np.std(d, ddof=1)) / math.sqrt(n)
    p_t, p_w = _p_values(t, c)
    rng = np.random.default_rng(seed)
    return PairedComparison(
        n=int(n),
        treatment_mean=mean_t,
        control_mean=mean_c,
        pct_change=100.0 * (mean_t - mean_c) / mean_c,
        ci95_bootstrap=_percentile_ci(_bootstrap_pct(t, c, n_boot, rng), confidence),
        ci95_t=_delta_ratio_ci(t, c, confidence),
        mean_difference=mean_d,
        difference_ci95_t=(mean_d - half, mean_d + half),
        p_paired_t=p_t,
        p_wilcoxon=p_w,
        cohens_dz=_cohens_dz(d),
        confidence=confidence,
        n_boot=n_boot,
    )


# ---------------------------------------------------------------------------------------------
# arm summary


def arm_summary(
    outcomes: Mapping[str, ArrayLike], *, confidence: float = 0.95
) -> dict[str, dict[str, float]]:
    """Descriptive statistics of one arm, per outcome.

    Parameters
    ----------
    outcomes : mapping of str to array_like, shape (n_patients,)
        Outcome name (with its unit, e.g. ``serum_b12_pmol_l``) to per-patient values; at least
        2 finite values each (the outcomes may differ in length).
    confidence : float, default=0.95
        Coverage of the interval of the mean (the keys stay ``ci95_*``).

    Returns
    -------
    dict of str to dict
        Per outcome, in the given order: ``mean``, ``sd`` (``ddof=1``), ``median``, ``q25``,
        ``q75`` (linear-interpolated quartiles), ``ci95_low``, ``ci95_high`` (t interval of the
        mean, ``n - 1`` degrees of freedom) — floats in the outcome's unit — and ``n`` (int).

    Raises
    ------
    ConfigError
        An outcome that is not 1-D, has fewer than 2 values or holds NaN/inf
        (``field="outcomes.<name>"``).
    """
    confidence = _check_confidence(confidence)
    out: dict[str, dict[str, float]] = {}
    for name, values in outcomes.items():
        x = _vector(values, f"outcomes.{name}")
        n = x.size
        mean = float(x.mean())
        sd = float(np.std(x, ddof=1))
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
        q25, median, q75 = (float(v) for v in np.percentile(x, [25, 50, 75]))
        out[str(name)] = {
            "mean": mean,
            "sd": sd,
            "median": median,
            "q25": q25,
            "q75": q75,
            "ci95_low": mean - half,
            "ci95_high": mean + half,
            "n": int(n),
        }
    return out


# ---------------------------------------------------------------------------------------------
# regression of the gain on baseline factors


@dataclass(frozen=True)
class RegressionResult:
    """OLS of the per-patient gain on baseline factors.

    Attributes
    ----------
    coefficients : pandas.DataFrame
        Index: term (``Intercept``, a numeric column's name, or ``column[T.level]`` for a
        categorical level against the reference); columns ``estimate``, ``std_error``,
        ``ci95_low``, ``ci95_high``, ``p_value``. Estimates are in gain units per unit of the
        factor (factors are not standardised).
    n : int
        Number of patients.
    r_squared : float
        Coefficient of determination (``NaN`` when the gain is constant).
    dropped : tuple of str
        Factor columns left out as constant, or design columns (terms) left out as exactly
        collinear with the ones before them.
    formula : str
        The fitted model, e.g. ``gain ~ 1 + age_years + sex[T.male]``.
    references : dict of str to str
        Reference level of each categorical factor.
    cov_type : str
        Covariance estimator of the standard errors (e.g. ``HC3``).
    """

    coefficients: pd.DataFrame
    n: int
    r_squared: float
    dropped: tuple[str, ...]
    formula: str
    references: dict[str, str] = field(default_factory=dict)
    cov_type: str = "HC3"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; ``coefficients`` becomes ``{term: {column: value}}`` in term order."""
        coefs = {
            str(term): {k: row[k] for k in self.coefficients.columns}
            for term, row in self.coefficients.iterrows()
        }
        return to_jsonable(
            {
                "coefficients": coefs,
                "n": self.n,
                "r_squared": self.r_squared,
                "dropped": list(self.dropped),
                "formula": self.formula,
                "references": dict(self.references),
                "cov_type": self.cov_type,
            }
        )


def _is_categorical(s: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)


def _reference_level(s: pd.Series) -> Any:
    """Most frequent level; ties broken by the sorted order of the levels' string forms."""
    counts = s.value_counts(sort=False)
    return sorted(counts.index, key=lambda lv: (-int(counts[lv]), str(lv)))[0]


def _design(factors: pd.DataFrame):
    """Design columns (name → float64 array) before the collinearity check, the dropped
    constant factors and the categorical references."""
    columns: dict[str, np.ndarray] = {}
    dropped: list[str] = []
    references: dict[str, str] = {}
    for col in factors.columns:
        name = str(col)
        s = factors[col]
        if isinstance(s, pd.DataFrame):
            raise ConfigError(f"column {name!r} appears more than once", field="factors")
        if s.isna().any():
            raise ConfigError(
                f"holds {int(s.isna().sum())} missing value(s)", field=f"factors.{name}"
            )
        if _is_categorical(s):
            levels = sorted(pd.unique(s), key=str)
            if len(levels) < 2:
                dropped.append(name)
                continue
            ref = _reference_level(s)
            references[name] = str(ref)
            values = s.to_numpy()
            for level in levels:
                if level == ref:
                    continue
                columns[f"{name}[T.{level}]"] = (values == level).astype(np.float64)
        else:
            x = s.to_numpy(dtype=np.float64)
            if not np.all(np.isfinite(x)):
                raise ConfigError("holds inf values", field=f"factors.{name}")
            if np.ptp(x) == 0:
                dropped.append(name)
                continue
            columns[name] = x
    return columns, dropped, references


def _drop_collinear(columns: dict[str, np.ndarray]) -> tuple[list[str], list[str]]:
    """Keep design columns in order while each raises the rank of ``[1, kept...]``. The rank
    test runs on the columns centred (which takes the intercept out) and scaled to unit norm,
    so it does not depend on the factors' units. Returns (kept, dropped) names."""
    kept: list[str] = []
    dropped: list[str] = []
    basis: list[np.ndarray] = []
    for name, x in columns.items():
        v = x - x.mean()
        v = v / np.linalg.norm(v)
        rank = np.linalg.matrix_rank(np.column_stack([*basis, v]), tol=1e-9)
        if rank == len(basis) + 1:
            basis.append(v)
            kept.append(name)
        else:
            dropped.append(name)
    return kept, dropped


def gain_regression(
    gain: ArrayLike, factors: pd.DataFrame, *, robust: str = "HC3"
) -> RegressionResult:
    """Ordinary least squares of the per-patient gain on baseline factors.

    Parameters
    ----------
    gain : array_like, shape (n_patients,)
        Per-patient gain (treatment minus control, in the outcome's unit). Taken by position:
        row ``i`` of ``factors`` is patient ``i`` (a Series' index is ignored).
    factors : pandas.DataFrame, shape (n_patients, n_factors)
        Baseline factors. Numeric columns enter as they are, in their own units (not
        standardised, so each estimate is gain per unit of the factor). Categorical, object,
        string and bool columns are one-hot encoded with the most frequent level as the
        reference (ties: the first level in sorted order of the levels' string forms); the
        term of level ``L`` of column ``c`` is ``c[T.L]``.
    robust : {"HC3", "HC0", "HC1", "HC2", "nonrobust"}, default="HC3"
        Covariance of the estimates (statsmodels ``cov_type``); intervals and p-values use the
        t distribution with ``n - p`` degrees of freedom.

    Returns
    -------
    RegressionResult

    Raises
    ------
    ConfigError
        A gain that is not 1-D or holds NaN/inf (``field="gain"``), a factor table of another
        length, missing values or inf in a factor (``field="factors.<column>"``), an unknown
        ``robust`` (``field="robust"``), or fewer patients than parameters + 2
        (``field="factors"``).

    Notes
    -----
    An intercept is always fitted. Constant factor columns are dropped; so is every design
    column that is an exact linear combination of the intercept and the columns before it
    (column order of ``factors``). Both are reported in :attr:`RegressionResult.dropped`.
    """
    import statsmodels.api as sm

    if robust not in _ROBUST:
        raise ConfigError(f"must be one of {', '.join(_ROBUST)}, got {robust!r}", field="robust")
    y = _vector(gain, "gain", min_n=1)
    if not isinstance(factors, pd.DataFrame):
        raise ConfigError(
            f"must be a pandas DataFrame, got {type(factors).__name__}", field="factors"
        )
    n = y.size
    if len(factors) != n:
        raise ConfigError(
            f"has {len(factors)} rows but the gain has {n} values (one row per patient)",
            field="factors",
        )
    columns, dropped, references = _design(factors)
    kept, collinear = _drop_collinear(columns)
    dropped += collinear
    terms = ["Intercept", *kept]
    p = len(terms)
    if n < p + 2:
        raise ConfigError(
            f"{n} patients are too few for {p} parameters (need at least {p + 2})",
            field="factors",
        )
    X = np.column_stack([np.ones(n), *(columns[k] for k in kept)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fit = sm.OLS(y, X).fit(cov_type=robust, use_t=True)
        ci = np.asarray(fit.conf_int(alpha=0.05))
        coefficients = pd.DataFrame(
            {
                "estimate": np.asarray(fit.params, dtype=np.float64),
                "std_error": np.asarray(fit.bse, dtype=np.float64),
                "ci95_low": ci[:, 0],
                "ci95_high": ci[:, 1],
                "p_value": np.asarray(fit.pvalues, dtype=np.float64),
            },
            index=pd.Index(terms, name="term"),
        )
        r_squared = float(fit.rsquared)
    return RegressionResult(
        coefficients=coefficients,
        n=int(n),
        r_squared=r_squared,
        dropped=tuple(dropped),
        formula="gain ~ " + " + ".join(["1", *kept]),
        references=references,
        cov_type=robust,
    )


# ---------------------------------------------------------------------------------------------
# subgroups


_SUBGROUP_COLUMNS = (
    "subgroup",
    "n",
    "treatment_mean",
    "control_mean",
    "pct_change",
    "ci95_low",
    "ci95_high",
    "p_paired_t",
    "p_wilcoxon",
)


def subgroup_table(
    treatment: ArrayLike,
    control: ArrayLike,
    groups: Mapping[str, ArrayLike],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    min_n: int = 3,
) -> pd.DataFrame:
    """:func:`compare_paired` within each subgroup of patients.

    Parameters
    ----------
    treatment, control : array_like, shape (n_patients,)
        Per-patient outcome in each arm (as in :func:`compare_paired`).
    groups : mapping of str to array_like of bool, shape (n_patients,)
        Subgroup name to membership mask; subgroups may overlap.
    n_boot : int, default=1000
        Bootstrap resamples per subgroup.
    seed : int, default=0
        Seed of each subgroup's bootstrap (the same seed for every subgroup, so a subgroup's
        row does not depend on the other subgroups).
    min_n : int, default=3
        Smallest subgroup that is analysed (``>= 2``).

    Returns
    -------
    pandas.DataFrame
        One row per subgroup, in the given order, columns ``subgroup``, ``n`` (int),
        ``treatment_mean``, ``control_mean``, ``pct_change``, ``ci95_low``, ``ci95_high``
        (paired bootstrap percentile interval of ``pct_change``, %), ``p_paired_t``,
        ``p_wilcoxon``. A subgroup with ``n < min_n`` has ``NaN`` in every column but
        ``subgroup`` and ``n``; ``pct_change`` and its interval are ``NaN`` where the subgroup's
        control mean is ``<= 0``; p-values are ``NaN`` where every difference is 0. Use
        :func:`subgroup_records` for JSON (``NaN`` → ``None``).

    Raises
    ------
    ConfigError
        Bad arms (as in :func:`compare_paired`), a mask that is not boolean or of another
        length (``field="groups.<name>"``), or ``min_n < 2``.
    """
    t, c = _pair(treatment, control)
    n_boot = _check_int(n_boot, "n_boot", 10)
    min_n = _check_int(min_n, "min_n", 2)
    rows = []
    for name, mask in groups.items():
        m = np.asarray(mask)
        if m.dtype != np.bool_:
            raise ConfigError(
                f"must be a boolean mask, got dtype {m.dtype}", field=f"groups.{name}"
            )
        if m.shape != t.shape:
            raise ConfigError(
                f"must have one entry per patient ({t.size}), got shape {m.shape}",
                field=f"groups.{name}",
            )
        k = int(m.sum())
        row: dict[str, Any] = dict.fromkeys(_SUBGROUP_COLUMNS, math.nan)
        row["subgroup"] = str(name)
        row["n"] = k
        if k >= min_n:
            ts, cs = t[m], c[m]
            mean_t, mean_c = float(ts.mean()), float(cs.mean())
            row["treatment_mean"], row["control_mean"] = mean_t, mean_c
            if mean_c > 0:
                row["pct_change"] = 100.0 * (mean_t - mean_c) / mean_c
                boot = _bootstrap_pct(ts, cs, n_boot, np.random.default_rng(seed))
                row["ci95_low"], row["ci95_high"] = _percentile_ci(boot, 0.95)
            p_t, p_w = _p_values(ts, cs)
            row["p_paired_t"] = math.nan if p_t is None else p_t
            row["p_wilcoxon"] = math.nan if p_w is None else p_w
        rows.append(row)
    df = pd.DataFrame(rows, columns=list(_SUBGROUP_COLUMNS))
    df["n"] = df["n"].astype(np.int64)
    for col in _SUBGROUP_COLUMNS[2:]:
        df[col] = df[col].astype(np.float64)
    return df


def subgroup_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a :func:`subgroup_table` as JSON-ready dicts (plain types, ``NaN`` → ``None``)."""
    return to_jsonable(df.to_dict(orient="records"))


# ---------------------------------------------------------------------------------------------
# model uncertainty


def ensemble_band(effects: ArrayLike, *, level: float = 0.95) -> dict[str, float | None]:
    """Spread of an effect across model-parameter draws (model uncertainty).

    Parameters
    ----------
    effects : array_like, shape (n_draws,)
        The effect (e.g. ``pct_change``, %) computed once per parameter draw of the model.
    level : float, default=0.95
        Central share of the draws the band holds.

    Returns
    -------
    dict
        ``low``, ``high`` (the ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles, linear
        interpolation), ``median``, ``mean``, ``sd`` (``ddof=1``; ``None`` for one draw) — in the
        effect's unit — plus ``level`` and ``n`` (int).

    Raises
    ------
    ConfigError
        Effects that are empty, not 1-D or hold NaN/inf (``field="effects"``), or a ``level``
        outside (0, 1) (``field="level"``).
    """
    x = _vector(effects, "effects", min_n=1)
    level = _check_confidence(level, "level")
    low, median, high = np.percentile(x, [100 * (1 - level) / 2, 50, 100 * (1 + level) / 2])
    return {
        "low": float(low),
        "high": float(high),
        "median": float(median),
        "mean": float(x.mean()),
        "sd": float(np.std(x, ddof=1)) if x.size > 1 else None,
        "level": level,
        "n": int(x.size),
    }
