"""Knowledge-base files: every parameter traced to a unit and a source; typed validation."""

from __future__ import annotations

import pytest

from biofluxopt._util import ConfigError
from biofluxopt.knowledge import (
    load_host_factors,
    load_metabolites,
    load_parameters,
    load_reactions,
    load_taxa,
)
from biofluxopt.knowledge._loader import load_entries
from biofluxopt.knowledge._records import Parameter


def test_every_parameter_has_unit_source_grade_and_range():
    params = load_parameters()
    assert len(params) > 60
    for p in params:
        assert p.unit.strip(), p.id
        assert len(p.source.strip()) >= 10, p.id
        assert p.grade in {"V", "S", "D", "U"}, p.id
        assert p.low <= p.value <= p.high, p.id


def test_every_taxon_has_every_per_taxon_parameter():
    from biofluxopt.sim import TAXON_QUANTITIES

    ids = {p.id for p in load_parameters()}
    for taxon in load_taxa():
        for q in TAXON_QUANTITIES:
            assert f"{q}__{taxon.id}" in ids


def test_unverified_numbers_are_flagged_not_hidden():
    # Open uncertainties of b12_facts.md must stay marked as such, with a wide range.
    by_id = {p.id: p for p in load_parameters()}
    assert by_id["si_bacterial_load"].grade == "U"
    assert by_id["si_bacterial_load"].high / by_id["si_bacterial_load"].low >= 1000
    assert by_id["colonic_absorption_fraction"].low == 0.0
    # Kurpad 2023's 7 % is set aside by the end-to-end Carmel fit, and the source says so
    assert by_id["colonic_absorption_fraction"].high <= 0.07
    assert "Kurpad" in by_id["colonic_absorption_fraction"].source


def test_metabolites_reactions_host_factors_load():
    mets = {m.id: m for m in load_metabolites()}
    assert mets["cobalamin"].kegg == "C05776"
    assert mets["methylmalonate"].kegg == "C02170"
    assert not mets["pseudocobalamin"].usable_by_host
    reactions = load_reactions()
    assert {"methylmalonyl_coa_mutase", "methionine_synthase", "corrinoid_uptake"} <= {
        r.id for r in reactions
    }
    factors = {h.id: h for h in load_host_factors()}
    assert set(factors) == {
        "intrinsic_factor",
        "gastric_release",
        "fut2",
        "tcn2_776",
        "mthfr_677",
        "cubn",
    }
    param_ids = {p.id for p in load_parameters()}
    for h in factors.values():
        assert set(h.parameters) <= param_ids, h.id


def test_every_taxon_states_its_habitat_and_gut_relevance():
    for t in load_taxa():
        assert t.habitat and t.gut_relevance, t.id
    seed_named = {t.id: t for t in load_taxa()}
    # the seed paper's named genera are present, with their real gut role stated
    assert "not a gut resident" in seed_named["streptomyces"].habitat
    assert "rare" in seed_named["pseudomonas"].habitat


def test_model_taxa_ids_are_stable():
    assert [t.id for t in load_taxa()] == [
        "propionibacterium",
        "lactobacillus",
        "enterobacteriaceae",
        "pseudomonas",
        "streptomyces",
        "clostridiales",
        "veillonellaceae",
        "bacteroidales",
        "akkermansia",
        "bifidobacterium",
        "other",
    ]


GOOD = """
[[parameter]]
id = "x_rate"
value = 1.0
unit = "1/d"
low = 0.5
high = 2.0
grade = "V"
group = "gut"
description = "a rate"
source = "a source row"
"""


@pytest.mark.parametrize(
    ("replace", "field"),
    [
        (('unit = "1/d"', 'unit = ""'), "unit"),
        (("value = 1.0", "value = 3.0"), "<entry>"),
        (('grade = "V"', 'grade = "maybe"'), "grade"),
        (('source = "a source row"\n', 'source = "a source row"\ncolour = "red"\n'), "colour"),
    ],
)
def test_malformed_entry_names_file_and_field(tmp_path, replace, field):
    path = tmp_path / "params.toml"
    path.write_text(GOOD.replace(*replace))
    with pytest.raises(ConfigError) as exc:
        load_entries(path, "parameter", Parameter)
    msg = str(exc.value)
    assert str(path) in msg
    assert "parameter[0] (x_rate)" in msg
    assert field in msg or "range" in msg


def test_unknown_taxon_in_parameter_file_is_named(tmp_path):
    path = tmp_path / "params.toml"
    path.write_text(GOOD.replace('group = "gut"', 'group = "taxon"\ntaxon = "unicorn"'))
    with pytest.raises(ConfigError, match="unicorn"):
        load_parameters(path)
