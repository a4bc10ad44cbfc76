"""Genus → model-taxon aggregation, shared with the simulator through ``knowledge.map_lineage``."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from biofluxopt.knowledge import load_taxa, map_lineage

from ._table import AbundanceTable, closure


def model_taxon_map(lineages) -> dict[str, str]:
    """Model-taxon id for each lineage string (see :func:`biofluxopt.knowledge.map_lineage`)."""
    taxa = load_taxa()
    return {str(lin): map_lineage(str(lin), taxa) for lin in lineages}


def aggregate_to_model_taxa(
    table_or_relative_df: AbundanceTable | pd.DataFrame,
    *,
    lineages: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Sum genus-level abundances into the model's taxa and close each sample.

    Parameters
    ----------
    table_or_relative_df : AbundanceTable or pandas.DataFrame of shape (n_samples, n_taxa)
        Counts or relative abundances, samples as rows. For a table, lineages come from
        ``taxon_metadata["lineage"]`` when present, else from the column names.
    lineages : mapping of str to str, optional
        Column name → lineage string, for tables whose names are not lineages (e.g. HITChip
        groups); columns not in the mapping use their own name.

    Returns
    -------
    pandas.DataFrame of shape (n_samples, n_model_taxa)
        Relative abundances summing to 1 per sample, columns in the order of
        ``[t.id for t in biofluxopt.knowledge.load_taxa()]``; unmatched lineages go to
        ``"other"``, taxa absent from the data are 0.

    Raises
    ------
    DataError
        A sample has zero total abundance.

    Examples
    --------
    >>> from biofluxopt.data import load_hmp
    >>> model = aggregate_to_model_taxa(load_hmp())
    >>> bool(abs(model.sum(axis=1) - 1).max() < 1e-12)
    True
    """
    if isinstance(table_or_relative_df, AbundanceTable):
        table = table_or_relative_df
        relative = table.to_relative()
        names = dict(zip(relative.columns, table.lineages(), strict=True))
    else:
        relative = closure(table_or_relative_df.astype(float))
        names = {c: str(c) for c in relative.columns}
    if lineages is not None:
        names = {c: lineages.get(c, lin) for c, lin in names.items()}
    mapping = model_taxon_map(names.values())
    target = relative.columns.map(lambda c: mapping[names[c]])
    ids = [t.id for t in load_taxa()]
    summed = relative.T.groupby(target.to_numpy()).sum().T
    summed = summed.reindex(columns=ids, fill_value=0.0)
    summed.columns.name = None
    return closure(summed)
