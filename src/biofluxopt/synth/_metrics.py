"""Fidelity and privacy metrics for synthetic compositions, always against held-out real data.

Six metric families, each reduced to one *score* (lower is better, 0 = identical) so that two
generators can be compared family by family:

==================  ===================================================  =========================
family              what is compared                                     score
==================  ===================================================  =========================
sparsity_sample     fraction of zero taxa per sample                     KS statistic
sparsity_taxon      fraction of samples in which each taxon is zero      mean absolute difference
shannon             Shannon index (natural log) per sample               KS statistic
bray_curtis         within-synthetic vs within-real Bray–Curtis          KS statistic
                    dissimilarities
spearman            taxon–taxon Spearman correlations (taxa present in   RMSE over taxon pairs
                    ≥ 20 % of real samples)
c2st                classifier two-sample test on CLR features           max(AUC_LR, AUC_RF) − 0.5
                    (5-fold CV AUC; 0.5 = indistinguishable)
==================  ===================================================  =========================

Memorisation (privacy, not a fidelity family): each synthetic sample's Bray–Curtis distance to
its nearest training sample is compared with the held-out real samples' nearest-training
distances; synthetic samples closer than the real ones' 5th percentile are flagged. A sampler
that does not copy flags about 5 % by construction (that is what a 5th percentile means), so the
report also gives a one-sided binomial p-value for an excess over 5 % and the number of
near-copies (closer than the closest held-out real sample).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist, pdist
from scipy.stats import binomtest, ks_2samp, spearmanr

from biofluxopt._util import DataError

FAMILIES = ("sparsity_sample", "sparsity_taxon", "shannon", "bray_curtis", "spearman", "c2st")
SPEARMAN_MIN_PREVALENCE = 0.2
MEMORISATION_QUANTILE = 0.05
MIN_SAMPLES = 4
"""Fewest real (and synthetic) samples :func:`evaluate_synthetic` accepts."""


def _closed(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 2:
        raise DataError(f"must be 2-D (samples × taxa), got shape {arr.shape}", field=name)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise DataError("must be finite and non-negative", field=name)
    totals = arr.sum(axis=1, keepdims=True)
    if np.any(totals <= 0):
        raise DataError(f"{int((totals <= 0).sum())} samples sum to zero", field=name)
    return arr / totals


def shannon(x: np.ndarray) -> np.ndarray:
    """Shannon index (natural log) per row of a closed array, shape (n,)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.sum(np.where(x > 0, x * np.log(np.where(x > 0, x, 1.0)), 0.0), axis=1)


def sparsity(x: np.ndarray) -> np.ndarray:
    """Fraction of exactly-zero taxa per row, shape (n,)."""
    return (x == 0).mean(axis=1)


def _clr(x: np.ndarray, pseudocount: float) -> np.ndarray:
    logs = np.log(x + pseudocount)
    return logs - logs.mean(axis=1, keepdims=True)


def _spearman_matrix(x: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        # A taxon constant within a set (e.g. never generated) warns; it is handled below.
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return _spearman_matrix_raw(x)


def _spearman_matrix_raw(x: np.ndarray) -> np.ndarray:
    k = x.shape[1]
    rho = spearmanr(x, axis=0).statistic if k > 2 else None
    if k == 2:  # scipy returns a scalar for 2 columns
        rho = np.array([[1.0, float(spearmanr(x[:, 0], x[:, 1]).statistic)], [0.0, 1.0]])
        rho[1, 0] = rho[0, 1]
    elif np.ndim(rho) == 0:  # every column constant (e.g. identical samples): scalar NaN
        rho = np.full((k, k), np.nan)
    # A constant column (a taxon never present) has undefined correlation: count it as 0.
    return np.nan_to_num(np.asarray(rho, dtype=float), nan=0.0)


def c2st_auc(real: np.ndarray, synthetic: np.ndarray, *, seed: int = 0) -> dict:
    """Classifier two-sample test: cross-validated AUC of telling real from synthetic.

    Parameters
    ----------
    real, synthetic : numpy.ndarray of shape (n, n_taxa)
        Closed compositions. The larger set is subsampled to the size of the smaller.
    seed : int, default=0

    Returns
    -------
    dict
        ``auc_logistic``, ``auc_random_forest`` (5-fold stratified CV on CLR features with
        a pseudo-count of half the smallest non-zero real abundance) and ``n_per_class``.
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    m = min(len(real), len(synthetic))
    r = real[rng.choice(len(real), m, replace=False)]
    s = synthetic[rng.choice(len(synthetic), m, replace=False)]
    positive = real[real > 0]
    pseudo = 0.5 * float(positive.min()) if positive.size else 1e-6
    features = _clr(np.vstack([r, s]), pseudo)
    labels = np.r_[np.zeros(m), np.ones(m)]
    folds = max(2, min(5, m // 2))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    logistic = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    forest = RandomForestClassifier(
        n_estimators=200, min_samples_leaf=2, random_state=seed, n_jobs=1
    )
    return {
        "auc_logistic": float(
            cross_val_score(logistic, features, labels, cv=cv, scoring="roc_auc").mean()
        ),
        "auc_random_forest": float(
            cross_val_score(forest, features, labels, cv=cv, scoring="roc_auc").mean()
        ),
        "n_per_class": int(m),
    }


def memorisation(train: np.ndarray, real: np.ndarray, synthetic: np.ndarray) -> dict:
    """Nearest-training-sample distances of synthetic vs held-out real samples (Bray–Curtis).

    Returns
    -------
    dict
        ``threshold`` (5th percentile of real nearest-training distances), ``n_flagged`` and
        ``fraction_flagged`` (synthetic samples below it), ``expected_fraction`` (0.05),
        ``binomial_p_excess`` (one-sided test of ``fraction_flagged`` > 0.05),
        ``n_near_copies`` (below the smallest real distance), and the median distances.
    """
    d_real = cdist(real, train, metric="braycurtis").min(axis=1)
    d_syn = cdist(synthetic, train, metric="braycurtis").min(axis=1)
    threshold = float(np.quantile(d_real, MEMORISATION_QUANTILE))
    flagged = int((d_syn < threshold).sum())
    return {
        "threshold": threshold,
        "n_flagged": flagged,
        "fraction_flagged": flagged / len(d_syn),
        "expected_fraction": MEMORISATION_QUANTILE,
        "binomial_p_excess": float(
            binomtest(flagged, len(d_syn), MEMORISATION_QUANTILE, alternative="greater").pvalue
        ),
        "n_near_copies": int((d_syn < d_real.min()).sum()),
        "median_distance_real": float(np.median(d_real)),
        "median_distance_synthetic": float(np.median(d_syn)),
        "memorised": bool(
            binomtest(flagged, len(d_syn), MEMORISATION_QUANTILE, alternative="greater").pvalue
            < 0.01
        ),
    }


def evaluate_synthetic(
    real,
    synthetic,
    train=None,
    *,
    seed: int = 0,
) -> dict:
    """All fidelity families (and memorisation when ``train`` is given).

    Parameters
    ----------
    real : array-like of shape (n_real, n_taxa)
        Held-out real samples, never used in training. Rows are closed here.
    synthetic : array-like of shape (n_synthetic, n_taxa)
        Generated samples, same taxa in the same order.
    train : array-like of shape (n_train, n_taxa), optional
        The training samples, for the memorisation check.
    seed : int, default=0
        Seeds the C2ST subsampling and folds.

    Returns
    -------
    dict
        ``families``: per family its statistics and a ``score`` (lower = closer to real);
        ``memorisation`` (or ``None``); ``n_real``, ``n_synthetic``, ``n_taxa``.

    Raises
    ------
    DataError
        Shapes disagree, or values are negative, non-finite or all zero in a row.
    """
    if isinstance(real, pd.DataFrame) and isinstance(synthetic, pd.DataFrame):
        synthetic = align_columns(real, synthetic)
    r, s = _closed(real, "real"), _closed(synthetic, "synthetic")
    if r.shape[1] != s.shape[1]:
        raise DataError(f"real has {r.shape[1]} taxa, synthetic {s.shape[1]}", field="synthetic")
    for name, arr in (("real", r), ("synthetic", s)):
        if len(arr) < MIN_SAMPLES:
            raise DataError(f"need at least {MIN_SAMPLES} samples, got {len(arr)}", field=name)
    fam: dict[str, dict] = {}

    sp_r, sp_s = sparsity(r), sparsity(s)
    fam["sparsity_sample"] = {
        "mean_real": float(sp_r.mean()),
        "mean_synthetic": float(sp_s.mean()),
        "delta_mean": float(sp_s.mean() - sp_r.mean()),
        "ks": float(ks_2samp(sp_r, sp_s).statistic),
    }
    fam["sparsity_sample"]["score"] = fam["sparsity_sample"]["ks"]

    tz_r, tz_s = (r == 0).mean(axis=0), (s == 0).mean(axis=0)
    corr = np.corrcoef(tz_r, tz_s)[0, 1] if tz_r.std() > 0 and tz_s.std() > 0 else float("nan")
    fam["sparsity_taxon"] = {
        "mean_abs_diff": float(np.abs(tz_r - tz_s).mean()),
        "pearson_r": float(corr),
    }
    fam["sparsity_taxon"]["score"] = fam["sparsity_taxon"]["mean_abs_diff"]

    h_r, h_s = shannon(r), shannon(s)
    fam["shannon"] = {
        "mean_real": float(h_r.mean()),
        "mean_synthetic": float(h_s.mean()),
        "delta_mean": float(h_s.mean() - h_r.mean()),
        "ks": float(ks_2samp(h_r, h_s).statistic),
    }
    fam["shannon"]["score"] = fam["shannon"]["ks"]

    bc_r, bc_s = pdist(r, "braycurtis"), pdist(s, "braycurtis")
    fam["bray_curtis"] = {
        "mean_within_real": float(bc_r.mean()),
        "mean_within_synthetic": float(bc_s.mean()),
        "mean_real_to_synthetic": float(cdist(r, s, "braycurtis").mean()),
        "ks": float(ks_2samp(bc_r, bc_s).statistic),
    }
    fam["bray_curtis"]["score"] = fam["bray_curtis"]["ks"]

    keep = (r > 0).mean(axis=0) >= SPEARMAN_MIN_PREVALENCE
    if keep.sum() >= 2:
        rho_r, rho_s = _spearman_matrix(r[:, keep]), _spearman_matrix(s[:, keep])
        iu = np.triu_indices(int(keep.sum()), k=1)
        rmse = float(np.sqrt(np.mean((rho_r[iu] - rho_s[iu]) ** 2)))
    else:
        rmse = float("nan")
    fam["spearman"] = {
        "rmse": rmse,
        "n_taxa": int(keep.sum()),
        "min_prevalence": SPEARMAN_MIN_PREVALENCE,
    }
    fam["spearman"]["score"] = rmse

    fam["c2st"] = c2st_auc(r, s, seed=seed)
    fam["c2st"]["auc"] = max(fam["c2st"]["auc_logistic"], fam["c2st"]["auc_random_forest"])
    fam["c2st"]["score"] = abs(fam["c2st"]["auc"] - 0.5)

    mem = None
    if train is not None:
        if isinstance(train, pd.DataFrame) and isinstance(real, pd.DataFrame):
            train = align_columns(real, train, name="train")
        t = _closed(train, "train")
        if t.shape[1] != r.shape[1]:
            raise DataError(f"train has {t.shape[1]} taxa, real {r.shape[1]}", field="train")
        mem = memorisation(t, r, s)
    return {
        "families": fam,
        "memorisation": mem,
        "n_real": len(r),
        "n_synthetic": len(s),
        "n_taxa": r.shape[1],
    }


def align_columns(reference: pd.DataFrame, other: pd.DataFrame, *, name: str = "synthetic"):
    """``other`` with the columns of ``reference`` in the same order.

    Taxa of ``reference`` missing from ``other`` are an error naming them; extra taxa of
    ``other`` must be all zero (then dropped), otherwise an error.
    """
    ref_cols = [str(c) for c in reference.columns]
    other = other.set_axis([str(c) for c in other.columns], axis=1)
    missing = [c for c in ref_cols if c not in other.columns]
    if missing:
        raise DataError(
            f"{len(missing)} taxa of the real table are missing, e.g. {missing[:3]}", field=name
        )
    extra = [c for c in other.columns if c not in ref_cols]
    if extra and (other[extra].to_numpy() > 0).any():
        raise DataError(
            f"{len(extra)} taxa not in the real table carry abundance, e.g. {extra[:3]}", field=name
        )
    return other[ref_cols]


def compare_families(candidate: dict, reference: dict) -> dict:
    """Per family, whether ``candidate`` scores lower (better) than ``reference``.

    Returns
    -------
    dict
        ``{family: {"candidate": score, "reference": score, "ratio": c/r, "better": bool}}``
        plus ``n_better`` (count over the six families).
    """
    out: dict = {}
    for f in FAMILIES:
        c = candidate["families"][f]["score"]
        r = reference["families"][f]["score"]
        out[f] = {
            "candidate": c,
            "reference": r,
            "ratio": (c / r) if r > 0 else float("inf") if c > 0 else 1.0,
            "better": bool(c < r),
        }
    out["n_better"] = sum(out[f]["better"] for f in FAMILIES)
    return out
