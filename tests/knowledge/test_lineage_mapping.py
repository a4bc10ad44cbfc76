"""Genus / lineage → model-taxon mapping shared by the data tables and the simulator."""

from __future__ import annotations

import pytest

from biofluxopt.knowledge import BACKGROUND_ID, load_taxa, map_lineage


@pytest.mark.parametrize(
    ("name", "taxon"),
    [
        ("Bacteroides", "bacteroidales"),
        ("Prevotella", "bacteroidales"),
        ("Faecalibacterium", "clostridiales"),
        ("Veillonella", "veillonellaceae"),
        ("Escherichia", "enterobacteriaceae"),
        ("Akkermansia", "akkermansia"),
        ("Propionibacterium", BACKGROUND_ID),  # skin Cutibacterium acnes, not P. freudenreichii
        ("Cutibacterium", BACKGROUND_ID),
        ("Methanobrevibacter", BACKGROUND_ID),
    ],
)
def test_bare_genus_names(name, taxon):
    assert map_lineage(name) == taxon


def test_most_specific_rank_wins():
    # Veillonellaceae sits inside o__Clostridiales in Greengenes: the family rule wins.
    lineage = "k__Bacteria;p__Firmicutes;c__Clostridia;o__Clostridiales;f__Veillonellaceae;g__"
    assert map_lineage(lineage) == "veillonellaceae"
    unresolved = "k__Bacteria;p__Bacteroidetes;c__Bacteroidia;o__Bacteroidales;f__;g__"
    assert map_lineage(unresolved) == "bacteroidales"


def test_bare_and_full_lineage_agree():
    full = (
        "k__Bacteria;p__Bacteroidetes;c__Bacteroidia;o__Bacteroidales;"
        "f__Bacteroidaceae;g__Bacteroides"
    )
    assert map_lineage(full) == map_lineage("Bacteroides")


def test_every_match_token_maps_to_its_own_taxon():
    for taxon in load_taxa():
        for token in taxon.match:
            assert map_lineage(token) == taxon.id, token
