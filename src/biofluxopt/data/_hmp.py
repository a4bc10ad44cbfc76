"""The HMP1 16S V3–V5 stool genus table shipped with the package (CC0; see files/PROVENANCE.md)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd

from biofluxopt._util import DataError

from ._table import AbundanceTable

DATA_PACKAGE = "biofluxopt.data"
HMP_COUNTS = "hmp_v35_stool_genus_counts.csv"
HMP_SAMPLES = "hmp_v35_stool_samples.csv"


def data_file(name: str) -> Path:
    """Path of a file shipped in ``biofluxopt/data/files`` (e.g. ``"PROVENANCE.md"``)."""
    path = Path(str(resources.files(DATA_PACKAGE).joinpath("files", name)))
    if not path.exists():
        raise DataError(f"no shipped data file {name!r}", source=path.parent)
    return path


def load_hmp(*, min_reads: int = 1000, primary_only: bool = True) -> AbundanceTable:
    """HMP1 stool samples, 16S V3–V5, read counts per Greengenes genus lineage.

    Parameters
    ----------
    min_reads : int, default=1000
        Keep runs with at least this many mapped reads (0 keeps all 388 runs; depth ranges
        1–37,334, median 4,301).
    primary_only : bool, default=True
        Keep only the deepest run of each specimen (``is_primary_run``); 313 of 388 runs.

    Returns
    -------
    AbundanceTable
        Counts, samples × 187 lineages (``k__;p__;c__;o__;f__;g__``; the same columns whatever
        the filter, so a few may be all zero); the defaults give 306 samples from 208
        subjects. ``sample_metadata`` has ``srs``, ``srr_run``,
        ``subject_rsid`` (group repeated visits by it), ``visit_no``, ``sequencecenter``,
        ``total_mapped_reads``, ``otus_observed`` and ``is_primary_run``.

    References
    ----------
    The Human Microbiome Project Consortium (2012). Structure, function and diversity of the
    healthy human microbiome. Nature 486:207–214. doi:10.1038/nature11234

    Examples
    --------
    >>> hmp = load_hmp()
    >>> hmp.shape
    (306, 187)
    """
    counts_path, samples_path = data_file(HMP_COUNTS), data_file(HMP_SAMPLES)
    counts = pd.read_csv(counts_path, index_col=0)
    samples = pd.read_csv(samples_path, index_col=0, dtype={"subject_rsid": str})
    keep = counts.sum(axis=1) >= min_reads
    if primary_only:
        keep &= samples["is_primary_run"].reindex(counts.index).fillna(False).astype(bool)
    counts = counts.loc[keep]
    if counts.empty:
        raise DataError(f"no HMP run has >= {min_reads} reads", field="min_reads")
    return AbundanceTable.from_dataframe(counts, sample_metadata=samples, source=counts_path)
