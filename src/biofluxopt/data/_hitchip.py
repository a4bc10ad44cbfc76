"""Greengenes-style lineages for HITChip genus-like groups, so that the HITChip Atlas (Lahti et
al. 2014) maps onto the model taxa with the same :func:`~biofluxopt.knowledge.map_lineage` rule
as 16S tables.

Hand-written because no library translates HITChip's three levels (L1 phylum, L2 group such as
"Clostridium cluster IV", L3 "Genus species et rel.") into Greengenes ranks. The rules follow the
HITChip phylogeny (Rajilić-Stojanović et al. 2009, doi:10.1111/j.1462-2920.2009.01900.x) and the
Greengenes 13_8 placement of the same genera.
"""

from __future__ import annotations

import pandas as pd

_PHYLUM_PREFIX = {
    "Bacteroidetes": "k__Bacteria;p__Bacteroidetes;c__Bacteroidia;o__Bacteroidales",
    "Actinobacteria": "k__Bacteria;p__Actinobacteria;c__Actinobacteria",
    "Verrucomicrobia": "k__Bacteria;p__Verrucomicrobia;c__Verrucomicrobiae",
}
# Clostridium clusters of the Erysipelotrichi (XVI–XVIII) and the Veillonellaceae (IX).
_ERYSIPELOTRICHI = {
    "Clostridium cluster XVI",
    "Clostridium cluster XVII",
    "Clostridium cluster XVIII",
}
_ERYSIPELOTRICHI_PREFIX = (
    "k__Bacteria;p__Firmicutes;c__Erysipelotrichi;o__Erysipelotrichales;f__Erysipelotrichaceae"
)
_VEILLONELLACEAE_PREFIX = (
    "k__Bacteria;p__Firmicutes;c__Clostridia;o__Clostridiales;f__Veillonellaceae"
)
_CLOSTRIDIALES_PREFIX = "k__Bacteria;p__Firmicutes;c__Clostridia;o__Clostridiales"
# HITChip Proteobacteria groups that belong to the Enterobacteriaceae (L3 spellings as shipped,
# including the atlas' "Klebisiella").
_ENTEROBACTERIACEAE = {
    "Enterobacter",
    "Escherichia",
    "Klebisiella",
    "Klebsiella",
    "Leminorella",
    "Proteus",
    "Serratia",
    "Yersinia",
}


def hitchip_lineage(phylum: str, group: str, genus_like: str) -> str:
    """Greengenes-style lineage for one HITChip genus-like group.

    Parameters
    ----------
    phylum : str
        HITChip L1 (e.g. ``"Firmicutes"``).
    group : str
        HITChip L2 (e.g. ``"Clostridium cluster IX"``, ``"Bacilli"``).
    genus_like : str
        HITChip L3 (e.g. ``"Veillonella"``, ``"Lactobacillus gasseri et rel."``).

    Returns
    -------
    str
        ``"k__…;p__…;…"``; a ``g__`` token is added from the first word of L3 except inside
        Clostridium clusters, whose L3 names are historical (``"Lactobacillus catenaformis et
        rel."`` is an Erysipelotrichaceae).

    Examples
    --------
    >>> hitchip_lineage("Firmicutes", "Clostridium cluster IX", "Dialister")
    'k__Bacteria;p__Firmicutes;c__Clostridia;o__Clostridiales;f__Veillonellaceae'
    >>> hitchip_lineage("Proteobacteria", "Proteobacteria", "Escherichia coli et rel.")
    'k__Bacteria;p__Proteobacteria;f__Enterobacteriaceae;g__Escherichia'
    """
    genus = genus_like.split()[0] if genus_like.strip() else ""
    if group in _ERYSIPELOTRICHI:
        return _ERYSIPELOTRICHI_PREFIX
    if group == "Clostridium cluster IX":
        return _VEILLONELLACEAE_PREFIX
    if group.startswith("Clostridium cluster") or group == "Uncultured Clostridiales":
        return _CLOSTRIDIALES_PREFIX
    prefix = _PHYLUM_PREFIX.get(phylum, f"k__Bacteria;p__{phylum}")
    if group == "Bacilli":
        prefix = "k__Bacteria;p__Firmicutes;c__Bacilli"
    if genus in _ENTEROBACTERIACEAE:
        prefix += ";f__Enterobacteriaceae"
    return f"{prefix};g__{genus}" if genus else prefix


def hitchip_lineages(taxonomy: pd.DataFrame) -> dict[str, str]:
    """Lineage per HITChip taxon from a taxonomy table with ``Phylum``, ``Family``, ``Genus``.

    Parameters
    ----------
    taxonomy : pandas.DataFrame
        Indexed by taxon name (the abundance table's columns), with the HITChip L1/L2/L3 columns
        ``Phylum``, ``Family`` (L2) and ``Genus`` (L3), as in the atlas1006 taxonomy CSV.

    Returns
    -------
    dict of str to str
        Taxon name → lineage; pass it as ``lineages=`` to
        :func:`~biofluxopt.data.aggregate_to_model_taxa`.
    """
    return {
        str(name): hitchip_lineage(str(row["Phylum"]), str(row["Family"]), str(row["Genus"]))
        for name, row in taxonomy.iterrows()
    }
