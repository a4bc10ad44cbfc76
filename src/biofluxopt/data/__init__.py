"""Abundance tables in, validated compositions out.

Reading (CSV, TSV, BIOM; either orientation; counts or relative abundances) with errors that
name the file, rows and columns; filtering, closure and CLR; a subject-grouped hold-out split;
the genus → model-taxon aggregation shared with the simulator; and three real cohorts shipped
inside the package (HMP1 stool 16S V3–V5 and V1–V3, the HITChip Atlas; see
``files/PROVENANCE.md``).
"""

from ._hitchip import hitchip_lineage, hitchip_lineages
from ._hmp import data_file, load_hitchip_atlas, load_hmp
from ._model_taxa import aggregate_to_model_taxa, model_taxon_map
from ._split import (
    AUTO_SUBJECT_COLUMN,
    subject_ids,
    subject_kfold,
    train_test_split_by_subject,
)
from ._table import MAX_COUNT, AbundanceTable, closure, clr, looks_like_counts, read_table

__all__ = [
    "AUTO_SUBJECT_COLUMN",
    "MAX_COUNT",
    "AbundanceTable",
    "aggregate_to_model_taxa",
    "closure",
    "clr",
    "data_file",
    "hitchip_lineage",
    "hitchip_lineages",
    "load_hitchip_atlas",
    "load_hmp",
    "looks_like_counts",
    "model_taxon_map",
    "read_table",
    "subject_ids",
    "subject_kfold",
    "train_test_split_by_subject",
]
