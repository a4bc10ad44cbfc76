"""Subject-grouped hold-outs: the single split and K-fold cross-validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biofluxopt._util import DataError
from biofluxopt.data import (
    AbundanceTable,
    load_hmp,
    subject_ids,
    subject_kfold,
    train_test_split_by_subject,
)


def _table(subjects: list[str], *, with_metadata: bool = True) -> AbundanceTable:
    n = len(subjects)
    rng = np.random.default_rng(n)
    frame = pd.DataFrame(
        rng.integers(1, 50, size=(n, 3)),
        index=[f"s{i:03d}" for i in range(n)],
        columns=["a", "b", "c"],
    )
    meta = pd.DataFrame({"person": subjects}, index=frame.index) if with_metadata else None
    return AbundanceTable.from_dataframe(frame, sample_metadata=meta)


def _subject_of(table: AbundanceTable) -> dict[str, str]:
    return dict(zip(table.samples, table.sample_metadata["person"], strict=True))


@settings(max_examples=40, deadline=None)
@given(
    visits=st.lists(st.integers(1, 4), min_size=2, max_size=30),
    n_splits=st.integers(2, 6),
    seed=st.integers(0, 2**16),
)
def test_kfold_partitions_samples_and_keeps_subjects_together(visits, n_splits, seed):
    subjects = [f"p{i}" for i, v in enumerate(visits) for _ in range(v)]
    table = _table(subjects)
    if len(visits) < n_splits:
        with pytest.raises(DataError, match="n_splits"):
            subject_kfold(table, n_splits=n_splits, subject_column="person", seed=seed)
        return
    folds = subject_kfold(table, n_splits=n_splits, subject_column="person", seed=seed)
    assert len(folds) == n_splits
    held_out = [s for _, test in folds for s in test.samples]
    assert sorted(held_out) == sorted(table.samples)  # every sample held out exactly once
    who = _subject_of(table)
    for train, test in folds:
        assert len(test.samples) > 0
        assert sorted(train.samples + test.samples) == sorted(table.samples)
        assert not {who[s] for s in train.samples} & {who[s] for s in test.samples}
        assert train.samples == [s for s in table.samples if s in set(train.samples)]  # order
    sizes = [len(test.samples) for _, test in folds]
    assert max(sizes) - min(sizes) <= max(visits)  # balanced up to one subject's samples


def test_kfold_is_deterministic_per_seed_and_seed_matters():
    hmp = load_hmp()

    def tests(seed):
        return [test.samples for _, test in subject_kfold(hmp, n_splits=5, seed=seed)]

    assert tests(0) == tests(0)
    assert tests(0) != tests(1)
    # HMP subjects have up to 3 visits: they must not straddle folds.
    who = hmp.sample_metadata["subject_rsid"].astype(str)
    for train, test in subject_kfold(hmp, n_splits=5, seed=0):
        assert not set(who[train.samples]) & set(who[test.samples])


def test_kfold_without_subjects_treats_each_sample_as_its_own():
    table = _table(["x"] * 10, with_metadata=False)
    folds = subject_kfold(table, n_splits=5, seed=0)
    assert [len(test.samples) for _, test in folds] == [2] * 5
    # The same table *with* one subject cannot be split.
    with pytest.raises(DataError, match="at least n_splits=5 subjects, got 1"):
        subject_kfold(_table(["x"] * 10), n_splits=5, subject_column="person")


@pytest.mark.parametrize("bad", [1, 0, 2.5, True])
def test_kfold_rejects_bad_n_splits(bad):
    with pytest.raises(DataError, match="n_splits"):
        subject_kfold(_table(["a", "b", "c"]), n_splits=bad, subject_column="person")


def test_single_split_keeps_subjects_together():
    table = _table([f"p{i // 3}" for i in range(30)])
    train, test = train_test_split_by_subject(table, subject_column="person", seed=3)
    who = _subject_of(table)
    assert not {who[s] for s in train.samples} & {who[s] for s in test.samples}
    assert len(test.samples) == 6  # 2 of 10 subjects, 3 visits each


def test_named_subject_column_must_exist():
    table = _table([f"p{i // 2}" for i in range(10)])
    with pytest.raises(
        DataError,
        match=r"--subject-column: no sample metadata column "
        r"'persn'; columns: 'person'",
    ):
        subject_ids(table, "persn", option="--subject-column")
    with pytest.raises(DataError, match="no sample metadata column 'persn'"):
        train_test_split_by_subject(table, subject_column="persn")
    with pytest.raises(DataError, match="no sample metadata column 'persn'"):
        subject_kfold(table, n_splits=2, subject_column="persn")
    bare = _table(["x"] * 4, with_metadata=False)
    with pytest.raises(DataError, match="no sample metadata to find subject column"):
        subject_ids(bare, "person")
    # "auto" uses subject_rsid when present, otherwise each sample is its own subject.
    assert subject_ids(bare) is None and subject_ids(table) is None
    assert subject_ids(table, None) is None
    assert list(subject_ids(table, "person")[:3]) == ["p0", "p0", "p1"]
    meta = table.sample_metadata.assign(person=[None] + ["p"] * 9)
    with pytest.raises(DataError, match="subject column 'person' is empty for samples"):
        subject_ids(
            AbundanceTable.from_dataframe(table.counts_or_values, sample_metadata=meta), "person"
        )
