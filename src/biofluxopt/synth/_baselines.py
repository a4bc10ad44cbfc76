"""Baseline samplers, judged with the same metrics as the GAN.

* :class:`DirichletMultinomial`: the classic overdispersed count model. Fitted by maximum
  likelihood on read counts; sampled by drawing a Dirichlet composition, then multinomial reads
  at a depth resampled from the training depths, then closing. Zeros arise from sampling, as in
  real sequencing.
* :class:`BootstrapSampler`: resamples training profiles and jitters their non-zero abundances
  in log space (zeros stay zeros). Realistic by construction, but close to the training data:
  a useful positive control for the memorisation check.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy.special import digamma
from sklearn.base import BaseEstimator

from biofluxopt._util import DataError
from biofluxopt.data import MAX_COUNT

from ._gan import _as_compositions
from ._params import SEED, Interval, check_params
from ._privacy import FilteredSampling


def _counts_from(X, default_depth: int) -> tuple[np.ndarray, list[str]]:
    """Integer counts (n, taxa); compositions are scaled to ``default_depth`` reads."""
    if isinstance(X, pd.DataFrame):
        taxa = [str(c) for c in X.columns]
        arr = X.to_numpy(dtype=float)
    else:
        arr = np.asarray(X, dtype=float)
        taxa = [f"taxon_{j}" for j in range(arr.shape[1])]
    _as_compositions(arr)  # validation only
    if np.allclose(arr, np.round(arr)) and 1 < arr.max() <= MAX_COUNT:
        return np.round(arr), taxa
    return np.round(arr / arr.sum(axis=1, keepdims=True) * default_depth), taxa


class DirichletMultinomial(FilteredSampling, BaseEstimator):
    """Dirichlet-multinomial (Pólya) model of read counts.

    Parameters
    ----------
    max_iter : int, default=2000
        Fixed-point iterations of the MLE (Minka 2000); converges in a few hundred on HMP.
    tol : float, default=1e-8
        Stop when the largest relative change of α falls below this.
    default_depth : int, default=5000
        Reads per sample assumed when ``fit`` receives compositions instead of counts.
    random_state : int, default=0
        Seed of :meth:`sample` when it gets no ``seed`` (0 to 2⁶³ − 1).

    Attributes
    ----------
    alpha_ : numpy.ndarray of shape (n_taxa,)
        Dirichlet concentration parameters (α₀ = Σα measures overdispersion: small = more).
    depths_ : numpy.ndarray of shape (n_train,)
        Training read depths, resampled when sampling.
    taxa_ : list of str
    n_iter_ : int

    Notes
    -----
    Hand-written because neither scipy nor scikit-learn fits the Dirichlet-multinomial
    (``scipy.stats.dirichlet_multinomial`` only evaluates it). The update is
    ``α_k ← α_k Σ_i [ψ(n_ik + α_k) − ψ(α_k)] / Σ_i [ψ(N_i + α₀) − ψ(α₀)]``.

    References
    ----------
    Minka TP (2000). Estimating a Dirichlet distribution. Technical report, MIT.
    Holmes I, Harris K, Quince C (2012). Dirichlet multinomial mixtures: generative models for
    microbial metagenomics. PLoS ONE 7:e30126. doi:10.1371/journal.pone.0030126
    """

    _parameter_constraints: ClassVar[dict] = {
        "max_iter": [Interval(Integral, 1, None)],
        "tol": [Interval(Real, 0, None, closed="neither")],
        "default_depth": [Interval(Integral, 1, MAX_COUNT)],
        "random_state": [SEED],
    }

    def __init__(
        self,
        *,
        max_iter: int = 2000,
        tol: float = 1e-8,
        default_depth: int = 5000,
        random_state: int = 0,
    ):
        self.max_iter = max_iter
        self.tol = tol
        self.default_depth = default_depth
        self.random_state = random_state

    def fit(self, X, y=None) -> DirichletMultinomial:
        """Fit α by maximum likelihood.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_taxa)
            Read counts (preferred) or compositions (scaled to ``default_depth`` reads).
        y : ignored
            Accepted for API symmetry with :class:`CompositionWGAN`.
        """
        check_params(self)
        counts, self.taxa_ = _counts_from(X, self.default_depth)
        depths = counts.sum(axis=1)
        if np.any(depths <= 0):
            raise DataError("every sample needs at least one read", field="X")
        # Method-of-moments start: mean proportions × a moderate precision.
        p = (counts / depths[:, None]).mean(axis=0)
        alpha = np.maximum(p, 1e-6) * 10.0
        it = 0
        for it in range(1, self.max_iter + 1):  # noqa: B007 (it is kept as n_iter_)
            a0 = alpha.sum()
            num = (digamma(counts + alpha) - digamma(alpha)).sum(axis=0)
            den = (digamma(depths + a0) - digamma(a0)).sum()
            new = np.maximum(alpha * num / den, 1e-10)
            change = np.max(np.abs(new - alpha) / alpha)
            alpha = new
            if change < self.tol:
                break
        self.alpha_, self.depths_, self.n_iter_ = alpha, depths, it
        return self

    def sample(self, n: int, *, seed: int | None = None) -> np.ndarray:
        """Draw ``n`` closed compositions, shape (n, n_taxa), via counts at training depths
        (``seed`` default: ``random_state``; same seed, same samples)."""
        if not hasattr(self, "alpha_"):
            raise DataError("DirichletMultinomial is not fitted; call fit(X) first")
        rng = np.random.default_rng(self.random_state if seed is None else seed)
        depths = rng.choice(self.depths_, size=n).astype(np.int64)
        p = rng.dirichlet(self.alpha_, size=n)
        counts = np.stack([rng.multinomial(d, pi) for d, pi in zip(depths, p, strict=True)])
        # A draw with every read lost to rounding cannot happen (d >= 1), but a zero row could
        # only come from d == 0; guard anyway so the output is always on the simplex.
        empty = counts.sum(axis=1) == 0
        counts[empty, np.argmax(p[empty], axis=1)] = 1
        return counts / counts.sum(axis=1, keepdims=True)

    def state(self) -> dict:
        """JSON-serialisable fitted state."""
        return {
            "alpha": self.alpha_.tolist(),
            "depths": self.depths_.tolist(),
            "taxa": list(self.taxa_),
            "n_iter": int(self.n_iter_),
        }

    @classmethod
    def from_state(cls, state: dict, **params) -> DirichletMultinomial:
        """Rebuild from :meth:`state` (``params``: constructor options, e.g. ``random_state``)."""
        model = cls(**params)
        model.alpha_ = np.asarray(state["alpha"], dtype=float)
        model.depths_ = np.asarray(state["depths"], dtype=float)
        model.taxa_ = list(state["taxa"])
        model.n_iter_ = int(state["n_iter"])
        return model


class BootstrapSampler(FilteredSampling, BaseEstimator):
    """Resample training profiles and perturb their non-zero abundances.

    Parameters
    ----------
    noise_sd : float, default=0.5
        Standard deviation of the Gaussian noise added to log abundances of present taxa
        (0.5 ≈ a factor 1.6 up or down); zeros stay exactly zero, then rows are re-closed.
    random_state : int, default=0
        Seed of :meth:`sample` when it gets no ``seed`` (0 to 2⁶³ − 1).

    Attributes
    ----------
    train_ : numpy.ndarray of shape (n_train, n_taxa)
        The closed training compositions.
    taxa_ : list of str
    """

    _parameter_constraints: ClassVar[dict] = {
        "noise_sd": [Interval(Real, 0, None)],
        "random_state": [SEED],
    }

    def __init__(self, *, noise_sd: float = 0.5, random_state: int = 0):
        self.noise_sd = noise_sd
        self.random_state = random_state

    def fit(self, X, y=None) -> BootstrapSampler:
        """Store the closed training compositions (``y`` is ignored)."""
        check_params(self)
        self.train_, self.taxa_ = _as_compositions(X)
        return self

    def sample(self, n: int, *, seed: int | None = None) -> np.ndarray:
        """Draw ``n`` perturbed training profiles, shape (n, n_taxa), rows closed (``seed``
        default: ``random_state``)."""
        if not hasattr(self, "train_"):
            raise DataError("BootstrapSampler is not fitted; call fit(X) first")
        rng = np.random.default_rng(self.random_state if seed is None else seed)
        base = self.train_[rng.integers(0, len(self.train_), size=n)]
        noise = np.exp(self.noise_sd * rng.standard_normal(base.shape))
        out = base * noise  # zeros stay zero
        return out / out.sum(axis=1, keepdims=True)
