"""Train/test split that keeps every subject's samples on one side."""

from __future__ import annotations

import numpy as np

from biofluxopt._util import DataError

from ._table import AbundanceTable


def train_test_split_by_subject(
    table: AbundanceTable,
    *,
    test_fraction: float = 0.2,
    subject_column: str | None = "auto",
    seed: int = 0,
) -> tuple[AbundanceTable, AbundanceTable]:
    """Split samples into train and test sets, grouping repeated samples of one subject.

    Parameters
    ----------
    table : AbundanceTable
        The samples to split.
    test_fraction : float in (0, 1), default=0.2
        Target fraction of *subjects* in the test set (the sample fraction follows closely).
    subject_column : str or None, default="auto"
        Column of ``table.sample_metadata`` naming the subject (see :func:`subject_ids`):
        ``"auto"`` uses ``subject_rsid`` when the metadata have it, a column name must exist,
        ``None`` makes each sample its own subject.
    seed : int, default=0
        Seed of the shuffle.

    Returns
    -------
    (train, test) : tuple of AbundanceTable
        Disjoint in samples and in subjects; each keeps the input row order.

    Raises
    ------
    DataError
        ``test_fraction`` outside (0, 1), fewer than 2 subjects, or a ``subject_column`` that
        the metadata lack or that has empty cells.

    Notes
    -----
    A subject-level split keeps the hold-out honest: HMP subjects have up to three visits whose
    profiles are much closer to each other than to other people's, so a per-sample split would
    let a model look good by copying a subject's other visit.
    """
    if not 0.0 < test_fraction < 1.0:
        raise DataError(
            f"test_fraction must be in (0, 1), got {test_fraction}", field="test_fraction"
        )
    subjects = _subject_ids(table, subject_column)
    unique = np.unique(subjects)
    if len(unique) < 2:
        raise DataError("need at least 2 subjects to split", source=table.source)
    rng = np.random.default_rng(seed)
    n_test = min(max(1, round(test_fraction * len(unique))), len(unique) - 1)
    test_subjects = set(rng.permutation(unique)[:n_test])
    is_test = np.array([s in test_subjects for s in subjects])
    index = np.asarray(table.samples)
    return table.subset(samples=index[~is_test]), table.subset(samples=index[is_test])


AUTO_SUBJECT_COLUMN = "subject_rsid"
"""Subject column used by ``subject_column="auto"`` when the metadata have it (HMP)."""


def subject_ids(
    table: AbundanceTable, subject_column: str | None = "auto", *, option: str = "subject_column"
) -> np.ndarray | None:
    """Subject id per sample, shape (n_samples,), or ``None`` when samples are their own.

    Parameters
    ----------
    table : AbundanceTable
    subject_column : str or None, default="auto"
        ``"auto"``: the ``subject_rsid`` column if the sample metadata have one, else ``None``.
        A column name: that column, which must exist (never a silent fall-back to per-sample
        grouping). ``None``: every sample is its own subject.
    option : str, default="subject_column"
        Name of the setting in error messages (the CLI passes ``"--subject-column"``).

    Raises
    ------
    DataError
        The table has no sample metadata or no such column (the message lists the columns),
        or the column has empty cells.
    """
    meta = table.sample_metadata
    if subject_column is None:
        return None
    if subject_column == "auto":
        if meta is None or AUTO_SUBJECT_COLUMN not in meta:
            return None
        subject_column = AUTO_SUBJECT_COLUMN
    if meta is None:
        raise DataError(
            f"no sample metadata to find subject column {subject_column!r} in; "
            "give the metadata table (CLI: --metadata)",
            source=table.source,
            field=option,
        )
    if subject_column not in meta:
        columns = ", ".join(repr(str(c)) for c in meta.columns) or "none"
        raise DataError(
            f"no sample metadata column {subject_column!r}; columns: {columns}",
            source=table.source,
            field=option,
        )
    column = meta[subject_column]
    empty = column.isna().to_numpy()
    if empty.any():
        raise DataError(
            f"subject column {subject_column!r} is empty for samples "
            f"{list(column.index[empty][:5])}",
            source=table.source,
            field=option,
        )
    return column.astype(str).to_numpy()


def _subject_ids(table: AbundanceTable, subject_column: str | None) -> np.ndarray:
    """Subject id per sample, shape (n_samples,); each sample its own subject if none."""
    ids = subject_ids(table, subject_column)
    return np.asarray(table.samples).astype(str) if ids is None else ids


def subject_kfold(
    table: AbundanceTable,
    *,
    n_splits: int = 5,
    subject_column: str | None = "auto",
    seed: int = 0,
) -> list[tuple[AbundanceTable, AbundanceTable]]:
    """Subject-grouped K-fold cross-validation: every sample is held out exactly once.

    Parameters
    ----------
    table : AbundanceTable
        The samples to split.
    n_splits : int, default=5
        Number of folds K, 2 ≤ K ≤ number of subjects. With K = 5 on HMP (306 samples, ~200
        subjects) each hold-out has ~60 samples.
    subject_column : str or None, default="auto"
        As in :func:`train_test_split_by_subject`.
    seed : int, default=0
        Seeds the order in which subjects are dealt to folds.

    Returns
    -------
    list of (train, test) tuples of AbundanceTable, length n_splits
        Fold ``k``'s ``test`` holds the samples of the subjects dealt to fold ``k``; its
        ``train`` holds all other samples. The tests partition the samples; no subject is on
        both sides of any fold; each table keeps the input row order.

    Notes
    -----
    Subjects are shuffled, then (largest first, as sklearn's ``GroupKFold``) each goes to the
    fold with the fewest samples so far, so fold sizes differ by at most one subject's samples.
    Nothing about the profiles is used (no stratification on any evaluated metric), so the
    folds are honest hold-outs for the synthetic-data benchmark.
    """
    if isinstance(n_splits, bool) or not isinstance(n_splits, int | np.integer) or n_splits < 2:
        raise DataError(f"n_splits must be an integer >= 2, got {n_splits!r}", field="n_splits")
    subjects = _subject_ids(table, subject_column)
    unique, sizes = np.unique(subjects, return_counts=True)
    if len(unique) < n_splits:
        raise DataError(
            f"need at least n_splits={n_splits} subjects, got {len(unique)}",
            source=table.source,
            field="n_splits",
        )
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(unique))
    # Stable sort of the shuffled subjects by size (largest first): ties stay in random order.
    order = order[np.argsort(-sizes[order], kind="stable")]
    fold_of_subject: dict[str, int] = {}
    fold_sizes = np.zeros(n_splits, dtype=int)
    for i in order:
        k = int(np.argmin(fold_sizes))
        fold_of_subject[unique[i]] = k
        fold_sizes[k] += sizes[i]
    fold = np.array([fold_of_subject[s] for s in subjects])
    index = np.asarray(table.samples)
    return [
        (table.subset(samples=index[fold != k]), table.subset(samples=index[fold == k]))
        for k in range(n_splits)
    ]
