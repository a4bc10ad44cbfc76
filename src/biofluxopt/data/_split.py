"""Train/test split that keeps every subject's samples on one side."""

from __future__ import annotations

import numpy as np

from biofluxopt._util import DataError

from ._table import AbundanceTable


def train_test_split_by_subject(
    table: AbundanceTable,
    *,
    test_fraction: float = 0.2,
    subject_column: str | None = "subject_rsid",
    seed: int = 0,
) -> tuple[AbundanceTable, AbundanceTable]:
    """Split samples into train and test sets, grouping repeated samples of one subject.

    Parameters
    ----------
    table : AbundanceTable
        The samples to split.
    test_fraction : float in (0, 1), default=0.2
        Target fraction of *subjects* in the test set (the sample fraction follows closely).
    subject_column : str or None, default="subject_rsid"
        Column of ``table.sample_metadata`` naming the subject. If the table has no metadata
        or no such column, or ``None`` is passed, each sample is its own subject.
    seed : int, default=0
        Seed of the shuffle.

    Returns
    -------
    (train, test) : tuple of AbundanceTable
        Disjoint in samples and in subjects; each keeps the input row order.

    Notes
    -----
    A subject-level split keeps the hold-out honest: HMP subjects have up to three visits whose
    profiles are much closer to each other than to other people's, so a per-sample split would
    let a model look good by copying a subject's other visit.
    """
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}",
                        field="test_fraction")
    meta = table.sample_metadata
    if subject_column is not None and meta is not None and subject_column in meta:
        subjects = meta[subject_column].astype(str).to_numpy()
    else:
        subjects = np.asarray(table.samples)
    unique = np.unique(subjects)
    if len(unique) < 2:
        raise DataError("need at least 2 subjects to split", source=table.source)
    rng = np.random.default_rng(seed)
    n_test = min(max(1, round(test_fraction * len(unique))), len(unique) - 1)
    test_subjects = set(rng.permutation(unique)[:n_test])
    is_test = np.array([s in test_subjects for s in subjects])
    index = np.asarray(table.samples)
    return table.subset(samples=index[~is_test]), table.subset(samples=index[is_test])
