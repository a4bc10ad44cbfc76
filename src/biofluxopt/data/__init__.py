"""Abundance tables in, validated compositions out.

Reading (CSV, TSV, BIOM; either orientation; counts or relative abundances) with errors that
name the file, rows and columns; filtering, closure and CLR; a subject-grouped hold-out split;
the genus → model-taxon aggregation shared with the simulator; and the HMP1 stool genus table
shipped inside the package (CC0, see ``files/PROVENANCE.md``).
"""

from ._hitchip import hitchip_lineage, hitchip_lineages
from ._hmp import data_file, load_hmp
from ._model_taxa import aggregate_to_model_taxa, model_taxon_map
from ._split import subject_ids, subject_kfold, train_test_split_by_subject
from ._table import AbundanceTable, closure, clr, read_table

__all__ = [
    "AbundanceTable",
    "aggregate_to_model_taxa",
    "closure",
    "clr",
    "data_file",
    "hitchip_lineage",
    "hitchip_lineages",
    "load_hmp",
    "model_taxon_map",
    "read_table",
    "subject_ids",
    "subject_kfold",
    "train_test_split_by_subject",
]
