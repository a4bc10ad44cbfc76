"""Real cohorts shipped with the package (see ``files/PROVENANCE.md``): HMP1 16S stool genus
tables for two sequenced regions (V3–V5 and V1–V3; CC0 counts) and the HITChip Atlas of 1,006
western adults (microarray signal; BSD-2-Clause, also CC0 on Dryad)."""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path

import pandas as pd

from biofluxopt._util import ConfigError, DataError

from ._hitchip import hitchip_lineages
from ._table import AbundanceTable

DATA_PACKAGE = "biofluxopt.data"
HMP_FILES = {
    "v35": ("hmp_v35_stool_genus_counts.csv", "hmp_v35_stool_samples.csv"),
    "v13": ("hmp_v13_stool_genus_counts.csv", "hmp_v13_stool_samples.csv"),
}
HMP_COUNTS, HMP_SAMPLES = HMP_FILES["v35"]
ATLAS_VALUES = "atlas1006_hitchip_genus_abundance.csv.gz"
ATLAS_SAMPLES = "atlas1006_samples.csv.gz"
ATLAS_TAXONOMY = "atlas1006_taxonomy.csv"


def data_file(name: str) -> Path:
    """Path of a file shipped in ``biofluxopt/data/files`` (e.g. ``"PROVENANCE.md"``)."""
    path = Path(str(resources.files(DATA_PACKAGE).joinpath("files", name)))
    if not path.exists():
        raise DataError(f"no shipped data file {name!r}", source=path.parent)
    return path


def load_hmp(
    region: str = "v35", *, min_reads: int = 1000, primary_only: bool = True
) -> AbundanceTable:
    """HMP1 stool samples, 16S read counts per Greengenes genus lineage.

    Parameters
    ----------
    region : {"v35", "v13"}, default="v35"
        Sequenced 16S region: ``"v35"`` (V3–V5, Qiita study 1928: 388 runs × 187 lineages) or
        ``"v13"`` (V1–V3, Qiita study 1927: 210 runs × 128 lineages). Same people, different
        primers and depth: a second sequencing technology for the same cohort.
    min_reads : int, default=1000
        Keep runs with at least this many mapped reads (0 keeps all runs; V3–V5 depth ranges
        1–37,334, median 4,301).
    primary_only : bool, default=True
        Keep only the deepest run of each specimen (``is_primary_run``).

    Returns
    -------
    AbundanceTable
        Counts, samples × lineages (``k__;p__;c__;o__;f__;g__``; the same columns whatever the
        filter, so a few may be all zero). The defaults give 306 samples from 208 subjects
        (V3–V5) and 171 samples from 136 subjects (V1–V3). ``sample_metadata`` has ``srs``,
        ``srr_run``, ``subject_rsid`` (group repeated visits by it), ``visit_no``,
        ``sequencecenter``, ``total_mapped_reads``, ``otus_observed`` and
        ``is_primary_run``.

    Raises
    ------
    ConfigError
        Unknown ``region``.
    DataError
        No run passes the filters.

    References
    ----------
    The Human Microbiome Project Consortium (2012). Structure, function and diversity of the
    healthy human microbiome. Nature 486:207–214. doi:10.1038/nature11234

    Examples
    --------
    >>> load_hmp().shape
    (306, 187)
    >>> load_hmp("v13").shape
    (171, 128)
    """
    if region not in HMP_FILES:
        raise ConfigError(f"must be one of {sorted(HMP_FILES)}, got {region!r}", field="region")
    counts_path, samples_path = (data_file(name) for name in HMP_FILES[region])
    counts = pd.read_csv(counts_path, index_col=0)
    samples = pd.read_csv(samples_path, index_col=0, dtype={"subject_rsid": str})
    keep = counts.sum(axis=1) >= min_reads
    if primary_only:
        keep &= samples["is_primary_run"].reindex(counts.index).fillna(False).astype(bool)
    counts = counts.loc[keep]
    if counts.empty:
        raise DataError(f"no HMP run has >= {min_reads} reads", field="min_reads")
    return AbundanceTable.from_dataframe(counts, sample_metadata=samples, source=counts_path)


def load_hitchip_atlas(*, baseline_only: bool = False) -> AbundanceTable:
    """The HITChip Atlas: stool of 1,006 western adults, 130 genus-like groups.

    Parameters
    ----------
    baseline_only : bool, default=False
        Keep only each subject's first sample (``time == 0``): 1,006 samples, one per person.
        The default keeps all 1,151 (145 follow-ups of 78 subjects; group by ``subject``).

    Returns
    -------
    AbundanceTable
        ``kind == "abundance"``: HITChip microarray signal (integers, but *not* read counts;
        :meth:`~AbundanceTable.to_relative` closes each row). Mean fraction of zero groups per
        sample 0.21, far denser than 16S. ``sample_metadata`` has ``age``, ``sex``,
        ``nationality``, ``DNA_extraction_method``, ``project``, ``diversity``, ``bmi_group``,
        ``subject`` (group repeated samples by it), ``time`` and ``sample``;
        ``taxon_metadata`` has the HITChip levels ``Phylum`` (L1), ``Family`` (L2), ``Genus``
        (L3) and a Greengenes-style ``lineage`` (:func:`hitchip_lineages`), so
        :func:`~biofluxopt.data.aggregate_to_model_taxa` maps it onto the model taxa.

    References
    ----------
    Lahti L, Salojärvi J, Salonen A, Scheffer M, de Vos WM (2014). Tipping elements in the
    human intestinal ecosystem. Nat Commun 5:4344. doi:10.1038/ncomms5344

    Examples
    --------
    >>> atlas = load_hitchip_atlas()
    >>> atlas.shape, atlas.kind
    ((1151, 130), 'abundance')
    """
    values_path = data_file(ATLAS_VALUES)
    values = pd.read_csv(values_path, index_col=0)
    samples = pd.read_csv(data_file(ATLAS_SAMPLES), index_col=0, dtype={"subject": str})
    taxonomy = pd.read_csv(data_file(ATLAS_TAXONOMY), index_col=0)
    taxonomy["lineage"] = pd.Series(hitchip_lineages(taxonomy))
    if baseline_only:
        values = values.loc[samples["time"].reindex(values.index).eq(0).to_numpy()]
    table = AbundanceTable.from_dataframe(
        values, sample_metadata=samples, taxon_metadata=taxonomy, source=values_path
    )
    # Integer microarray signal looks like read counts; it is not (no read sampling).
    return dataclasses.replace(table, kind="abundance")
