"""The ``synth train`` workflow as a function: table in, fitted sampler + privacy filter +
split out, in a :class:`TrainResult` with ``save``/``load``.

``biofluxopt synth train`` is a thin layer over :func:`train_model` (it reads the table, maps
errors onto its options and writes the result); everything else lives here and is testable
without the CLI.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from biofluxopt._util import ConfigError, DataError, atomic_write_text
from biofluxopt.data import (
    AUTO_SUBJECT_COLUMN,
    AbundanceTable,
    read_table,
    subject_ids,
    train_test_split_by_subject,
)

from ._baselines import BootstrapSampler, DirichletMultinomial
from ._checkpoint import (
    HELDOUT_NAME,
    HISTORY_NAME,
    TRAIN_NAME,
    Sampler,
    load_model,
    load_near_copy_filter,
    save_model,
)
from ._gan import TORCH_THREADS, CompositionWGAN
from ._metrics import evaluate_synthetic
from ._privacy import DEFAULT_QUANTILE, NearCopyFilter

MODEL_KINDS = ("gan", "dirichlet-multinomial", "bootstrap")
"""Values of ``train_model(model=...)`` (the CLI's ``--model``)."""
MIN_TRAIN_SAMPLES = 10
"""Fewest training samples :func:`train_model` accepts (after filters and the hold-out): the
GAN's minibatch statistics and the near-copy filter's 5 % quantile mean nothing below this."""
MIN_EVALUATE_SAMPLES = 4
"""Fewest held-out samples :func:`~biofluxopt.synth.evaluate_synthetic` can score."""


@dataclass
class TrainResult:
    """What :func:`train_model` produces, and what a model directory holds.

    Attributes
    ----------
    model : CompositionWGAN, DirichletMultinomial or BootstrapSampler
        The fitted sampler.
    near_copy_filter : NearCopyFilter
        Privacy filter fitted on the training samples (grouped by subject); pass it to
        ``model.sample(..., near_copy_filter=)`` or :func:`~biofluxopt.synth.sample_filtered`.
    train : pandas.DataFrame of shape (n_train, n_taxa)
        Closed training compositions (``train.csv``; the filter's reference samples).
    heldout : pandas.DataFrame of shape (n_heldout, n_taxa) or None
        Closed held-out compositions (``heldout.csv``), never seen by the model.
    training : dict
        The record stored under ``"training"`` in ``model.json``: data, seed, filters, split,
        subject and condition columns, sizes.
    metrics : dict or None
        :func:`~biofluxopt.synth.evaluate_synthetic` of filtered draws against the held-out
        samples when ``train_model(evaluate=True)``; ``None`` otherwise (and after ``load``).
    notes : list of str
        Things the caller should tell the user (no subject column, few held-out samples).
    """

    model: Sampler
    near_copy_filter: NearCopyFilter
    train: pd.DataFrame
    heldout: pd.DataFrame | None
    training: dict
    metrics: dict | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def history(self) -> pd.DataFrame | None:
        """GAN training losses per logged iteration (``history.csv``), ``None`` otherwise."""
        return getattr(self.model, "history_", None) if self._is_gan() else None

    def _is_gan(self) -> bool:
        return isinstance(self.model, CompositionWGAN)

    def save(self, directory: str | Path) -> list[Path]:
        """Write ``model.json``, ``model.safetensors`` (GAN, bootstrap), ``train.csv``,
        ``heldout.csv`` (when there is a hold-out) and ``history.csv`` (GAN) to ``directory``
        (created if missing; files written atomically). Returns the paths written."""
        directory = Path(directory)
        written = save_model(
            self.model, directory, extra=self.training, near_copy_filter=self.near_copy_filter
        )
        frames = {TRAIN_NAME: self.train, HELDOUT_NAME: self.heldout}
        if self._is_gan() and self.history is not None and len(self.history):
            frames[HISTORY_NAME] = self.history.set_index("iteration")
        for name, frame in frames.items():
            if frame is None:
                continue
            frame = frame.copy()
            frame.index.name = "sample_id"
            atomic_write_text(directory / name, frame.to_csv(float_format="%.10g"))
            written.append(directory / name)
        return written

    @classmethod
    def load(cls, directory: str | Path, *, device: str = "cpu") -> TrainResult:
        """Read a directory written by :meth:`save` (or ``synth train``)."""
        directory = Path(directory)
        model, meta = load_model(directory, device=device)
        near_copy = load_near_copy_filter(directory, meta, taxa=list(model.taxa_))
        if near_copy is None:
            raise DataError(
                "no near-copy filter stored (model trained by an older version): retrain",
                source=directory,
                field="near_copy_filter",
            )
        train = read_table(directory / TRAIN_NAME, orientation="samples_by_taxa")
        heldout = None
        if (directory / HELDOUT_NAME).exists():
            heldout = read_table(directory / HELDOUT_NAME, orientation="samples_by_taxa")
            heldout = heldout.counts_or_values[list(model.taxa_)]
        return cls(
            model=model,
            near_copy_filter=near_copy,
            train=train.counts_or_values[list(model.taxa_)],
            heldout=heldout,
            training=meta.get("training", {}),
        )


def _fail(message: str, table: AbundanceTable, field_name: str) -> DataError:
    return DataError(message, source=table.source, field=field_name)


def train_model(
    table: AbundanceTable,
    *,
    model: str = "gan",
    random_state: int = 0,
    iterations: int = 1000,
    gan_params: dict | None = None,
    subject_column: str | None = "auto",
    condition_column: str | None = None,
    test_fraction: float = 0.2,
    min_depth: float | None = None,
    max_taxa: int = 100,
    relative: bool = False,
    near_copy_quantile: float = DEFAULT_QUANTILE,
    evaluate: bool = False,
    n_evaluate: int = 500,
    record: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Fit a synthetic-composition model on a table, with a subject-grouped hold-out and the
    near-copy privacy filter: the ``biofluxopt synth train`` workflow.

    Main arguments
    --------------
    table : AbundanceTable
        Read counts, relative abundances or another abundance signal (samples × taxa), with
        sample metadata for ``subject_column`` / ``condition_column``.
    model : {"gan", "dirichlet-multinomial", "bootstrap"}, default="gan"
    random_state : int, default=0
        Seeds the hold-out split and the model (0 to 2⁶³ − 1); same value, same result.

    Other arguments
    ---------------
    iterations : int, default=1000
        GAN generator updates.
    gan_params : dict, optional
        Further :class:`CompositionWGAN` options (e.g. ``{"copy_penalty": 0}``).
    subject_column : str or None, default="auto"
        Metadata column naming each sample's person (hold-out split and near-copy filter);
        ``"auto"``: ``subject_rsid`` if present, else every sample is its own subject.
    condition_column : str, optional
        Metadata column the GAN is conditioned on.
    test_fraction : float in [0, 0.9], default=0.2
        Share of subjects held out (0: none).
    min_depth : float, optional
        Drop samples with fewer reads (count tables without ``relative``).
    max_taxa : int, default=100
        Keep this many taxa, the most prevalent first.
    relative : bool, default=False
        Treat values as abundances, not reads (no depth filter, no read sampling; HITChip).
        Tables that are not read counts (``table.kind != "counts"``) are always relative.
    near_copy_quantile : float in (0, 1), default=0.05
        Quantile of the filter's leave-subject-out nearest-neighbour distances.
    evaluate : bool, default=False
        Score ``n_evaluate`` filtered draws against the held-out samples (``metrics``).
    record : dict, optional
        Extra entries for the ``training`` record (the CLI adds the data source).
    progress : callable, optional
        ``progress(done, total)`` after each GAN iteration.

    Returns
    -------
    TrainResult

    Raises
    ------
    ConfigError
        An option out of range (``field`` names the argument).
    DataError
        Too few samples, subjects or taxa after the filters; a missing metadata column.

    Examples
    --------
    >>> from biofluxopt.data import load_hmp
    >>> from biofluxopt.synth import train_model
    >>> result = train_model(load_hmp(), model="bootstrap", random_state=0)
    >>> result.train.shape, result.heldout.shape
    ((250, 100), (56, 100))
    """
    if model not in MODEL_KINDS:
        raise ConfigError(f"must be one of {list(MODEL_KINDS)}, got {model!r}", field="model")
    if not (isinstance(test_fraction, int | float) and 0.0 <= test_fraction <= 0.9):
        raise ConfigError(f"must be in [0, 0.9], got {test_fraction!r}", field="test_fraction")
    if isinstance(near_copy_quantile, bool) or not (
        isinstance(near_copy_quantile, int | float) and 0.0 < near_copy_quantile < 1.0
    ):
        raise ConfigError(
            f"must be in (0, 1) (e.g. 0.05), got {near_copy_quantile!r}",
            field="near_copy_quantile",
        )
    if min_depth is not None and not (isinstance(min_depth, int | float) and min_depth >= 0):
        raise ConfigError(f"must be a number of reads >= 0, got {min_depth!r}", field="min_depth")
    if min_depth is not None and not math.isfinite(min_depth):
        raise ConfigError(f"must be a finite number of reads, got {min_depth}", field="min_depth")
    notes: list[str] = []
    is_counts = table.kind == "counts" and not relative
    if is_counts and min_depth is not None:
        try:
            table = table.filter(min_depth=min_depth)
        except DataError as exc:
            raise DataError(exc.detail, source=exc.source, field="min_depth") from exc
    # Subjects and conditions are checked before anything is fitted; an explicit column (even
    # '') must exist: only "auto" falls back to per-sample grouping.
    subjects_all = subject_ids(table, subject_column)
    subject_col = None
    if subjects_all is not None:
        subject_col = AUTO_SUBJECT_COLUMN if subject_column == "auto" else subject_column
    else:
        notes.append(
            "no subject column: each sample counts as its own subject (give --metadata and "
            "--subject-column for repeated visits)"
        )
    if condition_column is not None:
        _condition_labels(table, condition_column)
    table = table.filter(max_taxa=max_taxa)
    shallow = table.depth <= 0
    if shallow.any():
        table = table.subset(samples=table.depth.index[~shallow.to_numpy()])
    if len(table.samples) < MIN_TRAIN_SAMPLES:
        raise _fail(
            f"{len(table.samples)} samples left after the filters; at least "
            f"{MIN_TRAIN_SAMPLES} are needed to train (use a larger table, or lower "
            "--min-depth)",
            table,
            "table",
        )
    if len(table.taxa) < 2:
        raise _fail(
            f"{len(table.taxa)} taxon with reads; a composition needs at least 2", table, "table"
        )
    if test_fraction > 0:
        train_t, test_t = train_test_split_by_subject(
            table, test_fraction=test_fraction, subject_column=subject_col, seed=random_state
        )
    else:
        train_t, test_t = table, None
    n_test = 0 if test_t is None else len(test_t.samples)
    if len(train_t.samples) < MIN_TRAIN_SAMPLES:
        raise _fail(
            f"{len(train_t.samples)} training samples left after the filters and the "
            f"hold-out of {n_test}; at least {MIN_TRAIN_SAMPLES} are needed: lower "
            "--test-fraction",
            table,
            "test_fraction",
        )
    if 0 < n_test < MIN_EVALUATE_SAMPLES:
        notes.append(
            f"only {n_test} held-out samples: 'synth evaluate' needs at least "
            f"{MIN_EVALUATE_SAMPLES}; raise --test-fraction to evaluate against them"
        )
    subjects = subject_ids(train_t, subject_col)
    n_subjects = len(set(subjects)) if subjects is not None else len(train_t.samples)
    if n_subjects < 2:
        raise _fail(
            "all training samples belong to one subject; the near-copy filter needs at least 2",
            table,
            "subject_column",
        )
    labels = None
    if condition_column is not None:
        labels = _condition_labels(train_t, condition_column)
    x_train = train_t.to_relative()
    near_copy = NearCopyFilter(quantile=near_copy_quantile).fit(x_train, groups=subjects)
    # Read counts let the GAN and the DM model sequencing depth; other tables as compositions.
    fit_data = train_t.counts_or_values if is_counts else x_train
    if model == "gan":
        fitted: Sampler = CompositionWGAN(
            **{"iterations": iterations, **(gan_params or {}), "random_state": random_state}
        )
        fitted.fit(fit_data, labels, groups=subjects, progress=progress)
    elif model == "dirichlet-multinomial":
        fitted = DirichletMultinomial(random_state=random_state).fit(fit_data)
    else:
        fitted = BootstrapSampler(random_state=random_state).fit(x_train)
    training = {
        "seed": random_state,
        "read_counts": is_counts,
        "max_taxa": max_taxa,
        "min_depth": min_depth,
        "test_fraction": test_fraction,
        "subject_column": subject_col,
        "condition_column": condition_column,
        "n_train": len(train_t.samples),
        "n_heldout": n_test,
        **(record or {}),
    }
    if model == "gan":
        training["torch_threads"] = TORCH_THREADS
    heldout = None if test_t is None else test_t.to_relative()
    metrics = None
    if evaluate:
        if heldout is None or n_test < MIN_EVALUATE_SAMPLES:
            raise _fail(
                f"evaluate=True needs at least {MIN_EVALUATE_SAMPLES} held-out samples, got "
                f"{n_test}",
                table,
                "test_fraction",
            )
        draws = _draw(fitted, n_evaluate, random_state, labels, near_copy)
        metrics = evaluate_synthetic(
            heldout.to_numpy(), draws, x_train.to_numpy(), seed=random_state
        )
    return TrainResult(
        model=fitted,
        near_copy_filter=near_copy,
        train=x_train,
        heldout=heldout,
        training=training,
        metrics=metrics,
        notes=notes,
    )


def _draw(fitted: Sampler, n: int, seed: int, labels, near_copy: NearCopyFilter) -> np.ndarray:
    """Filtered draws for evaluation (a conditioned GAN: its labels in training proportions)."""
    if labels is not None and isinstance(fitted, CompositionWGAN):
        values, counts = np.unique(labels, return_counts=True)
        sizes = np.floor(counts / counts.sum() * n).astype(int)
        sizes[np.argmax(counts)] += n - sizes.sum()
        return np.vstack(
            [
                fitted.sample(int(k), seed=seed, condition=str(v), near_copy_filter=near_copy)
                for v, k in zip(values, sizes, strict=True)
                if k > 0
            ]
        )
    return fitted.sample_with_filter(n, near_copy, seed=seed)[0]


def _condition_labels(table: AbundanceTable, column: str) -> list[str]:
    """The sample metadata column ``column`` as strings; refuses a missing column or cells."""
    meta = table.sample_metadata
    if meta is None:
        raise _fail(
            f"no sample metadata to find column {column!r} in; give the metadata table with "
            "--metadata",
            table,
            "condition_column",
        )
    if column not in meta:
        columns = ", ".join(repr(str(c)) for c in meta.columns) or "none"
        raise _fail(
            f"no sample metadata column {column!r}; columns: {columns}", table, "condition_column"
        )
    values = meta[column]
    if values.isna().any():
        raise _fail(
            f"column {column!r} is empty for samples "
            f"{list(values.index[values.isna().to_numpy()][:5])}",
            table,
            "condition_column",
        )
    return values.astype(str).tolist()
