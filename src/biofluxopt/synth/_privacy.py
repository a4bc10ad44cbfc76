"""Privacy filter: drop synthetic profiles that sit closer to a training participant than real
people do to each other.

A generator trained on a few hundred people can emit near-copies of some of them (docs/synth.md:
the GAN flagged 8.6 % of its samples against an expected 5 %). :class:`NearCopyFilter` learns,
from the training samples alone, how close one *person* normally is to the nearest *other*
person, and rejects synthetic samples closer than that:

======================  =========================  ==============================================
quantity                shape                      meaning
======================  =========================  ==============================================
``reference_``          (n_train, n_taxa)          closed training compositions
``nearest_other_``      (n_train,)                 Bray–Curtis distance of each training sample
                                                   to its nearest training sample of a different
                                                   subject (leave-subject-out)
``threshold_``          scalar                     ``quantile`` of ``nearest_other_``
``mask(x)``             (n,) bool                  True where x's nearest training distance is
                                                   ≥ ``threshold_`` (kept)
======================  =========================  ==============================================

Why leave-*subject*-out: HMP has up to three visits per person, and a person's visits are much
closer to each other than to anyone else, so plain leave-one-out would measure visit-to-visit
distances and give a threshold too small to protect anybody. Leave-subject-out distances are
what a new, unseen person's distance to the training set looks like, which is also what the
memorisation metric compares with (held-out people's nearest-training distances); without
``groups`` each sample is its own subject (leave-one-out).

The filter is part of the product, not of the evaluation: the memorisation metric keeps its own
threshold from held-out real samples, so filtered output can still fail it.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist
from sklearn.base import BaseEstimator

from biofluxopt._util import ConfigError, DataError

from ._metrics import _closed
from ._params import Interval, check_params

DEFAULT_QUANTILE = 0.05
_CHUNK_ROWS = 4096  # rows of x per distance block: 4096 × n_train float64


class NearCopyFilter(BaseEstimator):
    """Reject synthetic compositions closer to a training sample than people are to each other.

    Parameters
    ----------
    quantile : float in (0, 1), default=0.05
        Quantile of the training samples' leave-subject-out nearest-neighbour Bray–Curtis
        distances used as the threshold. 0.05 matches the memorisation metric's definition
        (a synthetic sample closer than 95 % of new people would be); larger values reject
        more and protect more.

    Attributes
    ----------
    threshold_ : float
        Bray–Curtis distance below which a synthetic sample is rejected.
    reference_ : numpy.ndarray of shape (n_train, n_taxa)
        Closed training compositions that distances are measured to.
    nearest_other_ : numpy.ndarray of shape (n_train,) or None
        Each training sample's distance to its nearest training sample of another subject
        (``None`` when rebuilt with :meth:`from_threshold`).
    grouped_ : bool
        Whether subject groups were given to :meth:`fit` (else leave-one-out).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> train = rng.dirichlet(np.ones(6), size=40)
    >>> f = NearCopyFilter(quantile=0.05).fit(train, groups=np.arange(40) // 2)
    >>> bool(f.mask(train).any())       # training samples themselves are at distance 0
    False
    >>> f.filter(rng.dirichlet(np.ones(6), size=10)).shape[1]
    6
    """

    _parameter_constraints: ClassVar[dict] = {"quantile": [Interval(Real, 0, 1, closed="neither")]}

    def __init__(self, quantile: float = DEFAULT_QUANTILE):
        self.quantile = quantile

    def fit(self, X, groups=None) -> NearCopyFilter:
        """Learn the threshold from training compositions.

        Parameters
        ----------
        X : array-like of shape (n_train, n_taxa)
            Training compositions or counts (rows are closed here).
        groups : array-like of shape (n_train,), optional
            Subject id of each training sample; distances to samples of the same subject are
            ignored. ``None``: each sample is its own subject.

        Returns
        -------
        NearCopyFilter
            ``self``, fitted.

        Raises
        ------
        ConfigError
            ``quantile`` outside (0, 1).
        DataError
            Fewer than 2 subjects, or ``groups`` of the wrong length.
        """
        check_params(self)
        q = float(self.quantile)
        ref = _closed(X, "X")
        n = len(ref)
        if groups is None:
            group_ids = np.arange(n)
        else:
            group_ids = np.asarray([str(g) for g in groups])
            if len(group_ids) != n:
                raise DataError(
                    f"groups has {len(group_ids)} entries for {n} samples", field="groups"
                )
        if len(np.unique(group_ids)) < 2:
            raise DataError("need samples of at least 2 subjects", field="groups")
        dist = cdist(ref, ref, metric="braycurtis")
        dist[group_ids[:, None] == group_ids[None, :]] = np.inf  # same subject (and self)
        self.nearest_other_ = dist.min(axis=1)
        self.threshold_ = float(np.quantile(self.nearest_other_, q))
        self.reference_ = ref
        self.grouped_ = groups is not None
        return self

    @classmethod
    def from_threshold(
        cls,
        reference,
        threshold: float,
        *,
        quantile: float = DEFAULT_QUANTILE,
        grouped: bool = True,
    ) -> NearCopyFilter:
        """Rebuild a fitted filter from its stored threshold and the training samples.

        Parameters
        ----------
        reference : array-like of shape (n_train, n_taxa)
            The training compositions the threshold was fitted on (``train.csv``).
        threshold : float
            ``threshold_`` of the fitted filter (stored in ``model.json``), ≥ 0.
        quantile : float in (0, 1), default=0.05
            Kept for the record.
        grouped : bool, default=True
            Whether the threshold was fitted with subject groups.
        """
        out = cls(quantile=quantile)
        check_params(out)
        try:
            threshold = float(threshold)
        except (TypeError, ValueError):
            raise ConfigError(f"must be a number, got {threshold!r}", field="threshold") from None
        if not (math.isfinite(threshold) and threshold >= 0):
            raise ConfigError(
                f"must be a finite distance >= 0, got {threshold!r}", field="threshold"
            )
        out.reference_ = _closed(reference, "reference")
        out.threshold_ = threshold
        out.nearest_other_ = None
        out.grouped_ = bool(grouped)
        return out

    def _check_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            raise DataError("NearCopyFilter is not fitted; call fit(train) first")

    def nearest_distance(self, x) -> np.ndarray:
        """Bray–Curtis distance of each row of ``x`` to its nearest training sample, shape (n,)."""
        self._check_fitted()
        arr = _closed(x, "x")
        if arr.shape[1] != self.reference_.shape[1]:
            raise DataError(
                f"x has {arr.shape[1]} taxa, the filter's training samples "
                f"{self.reference_.shape[1]}",
                field="x",
            )
        return (
            np.concatenate(
                [
                    cdist(arr[i : i + _CHUNK_ROWS], self.reference_, metric="braycurtis").min(
                        axis=1
                    )
                    for i in range(0, len(arr), _CHUNK_ROWS)
                ]
            )
            if len(arr)
            else np.zeros(0)
        )

    def mask(self, x) -> np.ndarray:
        """Boolean array of shape (n,): True where the row is kept (not a near-copy)."""
        return self.nearest_distance(x) >= self.threshold_

    def filter(self, x):
        """The rows of ``x`` (array or DataFrame, shape (n, n_taxa)) that :meth:`mask` keeps."""
        keep = self.mask(x)
        return x[keep] if isinstance(x, pd.DataFrame) else np.asarray(x)[keep]

    def state(self) -> dict:
        """JSON-serialisable description (no training samples): quantile, threshold, sizes."""
        self._check_fitted()
        return {
            "quantile": float(self.quantile),
            "threshold_braycurtis": self.threshold_,
            "grouped_by_subject": self.grouped_,
            "n_reference": len(self.reference_),
        }


class FilteredSampling:
    """``sample_with_filter`` for samplers whose redraws are fresh draws (the baselines); the
    GAN has its own (``near_copy_redraw``). Needs ``sample(n, seed=)`` and ``random_state``."""

    def sample_with_filter(
        self, n: int, near_copy_filter: NearCopyFilter, *, seed: int | None = None
    ) -> tuple[np.ndarray, int]:
        """``n`` samples that pass ``near_copy_filter`` and the number of rejected draws
        (:func:`sample_filtered` over ``sample``; ``seed`` default: ``random_state``)."""
        seed = self.random_state if seed is None else seed
        return sample_filtered(lambda m, s: self.sample(m, seed=s), n, near_copy_filter, seed=seed)


def sample_filtered(
    draw,
    n: int,
    near_copy_filter: NearCopyFilter,
    *,
    seed: int = 0,
    max_rounds: int = 20,
    min_acceptance: float = 0.01,
) -> tuple[np.ndarray, int]:
    """Draw ``n`` samples that pass ``near_copy_filter``, oversampling in rounds.

    Parameters
    ----------
    draw : callable
        ``draw(m, seed)`` → numpy.ndarray of shape (m, n_taxa): the raw sampler.
    n : int
        Samples wanted.
    near_copy_filter : NearCopyFilter
        Fitted.
    seed : int, default=0
        Round 0 draws with ``seed`` itself, round r ≥ 1 with a seed derived from ``(seed, r)``;
        same seed, same samples.
    max_rounds : int, default=20
    min_acceptance : float, default=0.01
        Give up when fewer than this fraction of the draws pass.

    Returns
    -------
    (x, n_rejected) : (numpy.ndarray of shape (n, n_taxa), int)
        The first ``n`` accepted samples in draw order, and how many draws were rejected.

    Raises
    ------
    DataError
        The filter rejects nearly everything (acceptance below ``min_acceptance``) or ``n``
        samples did not pass within ``max_rounds`` rounds.
    """
    kept: list[np.ndarray] = []
    n_kept = n_drawn = n_rejected = 0
    for r in range(max_rounds):
        # Draw what is still missing, scaled up by the acceptance seen so far (start: 1 − q).
        acceptance = (n_kept / n_drawn) if n_drawn else 1.0 - float(near_copy_filter.quantile)
        m = math.ceil((n - n_kept) / max(acceptance, min_acceptance) * 1.1) + 8
        round_seed = seed if r == 0 else int(np.random.SeedSequence([seed, r]).generate_state(1)[0])
        x = np.asarray(draw(m, round_seed))
        keep = near_copy_filter.mask(x)
        kept.append(x[keep])
        n_kept += int(keep.sum())
        n_drawn += len(x)
        n_rejected += int((~keep).sum())
        if n_kept >= n:
            return np.concatenate(kept)[:n], n_rejected
        if n_kept < min_acceptance * n_drawn:
            break
    raise DataError(
        f"the near-copy filter (threshold {near_copy_filter.threshold_:.3g} Bray–Curtis) kept "
        f"only {n_kept} of {n_drawn} drawn samples ({n_kept / n_drawn:.1%}); the model copies "
        "its training samples, or the filter quantile is too high (turn it off with "
        "--no-near-copy-filter / near_copy_filter=None)",
        field="near_copy_filter",
    )
