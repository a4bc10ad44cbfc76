"""SBML export: libSBML validity (strict units), annotations, and libRoadRunner against torch.

The torch model is RK4 with fixed sub-steps, RoadRunner adaptive (CVODE): the cross-check
runs torch at 192 sub-steps per day (a multiple of every protocol grid used here, so the meals
fall at the same times), where its own discretisation error is ~1e-6, and asks for 1e-3 on
serum B12, holoTC and MMA. The full 365-day set is ``benchmarks/bench_sbml.py``.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from biofluxopt import sim
from biofluxopt.knowledge import load_parameters

libsbml = pytest.importorskip("libsbml")
pytest.importorskip("roadrunner")

FINE = 192  # torch sub-steps per day in the cross-checks (multiple of 24 and 96)


@pytest.fixture(scope="module")
def probiotic_xml():
    return sim.export_sbml(sim.example_protocol("omnivore_probiotic"))


def test_export_is_valid_l3v2_with_strict_units(probiotic_xml):
    doc = libsbml.readSBMLFromString(probiotic_xml)
    assert (doc.getLevel(), doc.getVersion()) == (3, 2)
    check = sim.check_sbml(probiotic_xml)
    assert check.errors == ()
    assert check.ok
    model = doc.getModel()
    assert model.getNumSpecies() == len(sim.POOLS)
    assert model.getNumReactions() == 27
    # day_start + one event per meal slot
    assert model.getNumEvents() == 1 + 3
    assert model.getTimeUnits() == "day" and model.getSubstanceUnits() == "ug"


def test_check_sbml_counts_unit_inconsistencies_as_errors(probiotic_xml):
    bad = re.sub(r'(<parameter [^>]*id="k_entry"[^>]*units=")per_day(")', r"\1ug\2", probiotic_xml)
    assert bad != probiotic_xml
    check = sim.check_sbml(bad)
    assert not check.ok
    assert any("[105" in e for e in check.errors)  # 105xx: unit consistency


def test_parameters_carry_units_sources_and_identifiers(probiotic_xml):
    model = libsbml.readSBMLFromString(probiotic_xml).getModel()
    absent = {"streptomyces"}  # absent at the default (HMP-mean) composition
    rows = [p for p in load_parameters() if p.taxon not in absent]
    for row in rows:
        par = model.getParameter(row.id)
        assert par is not None, row.id
        assert par.getUnits(), row.id
        ann = par.getAnnotationString()
        assert "biofluxopt:source" in ann and f'grade="{row.grade}"' in ann, row.id
        assert math.isclose(par.getValue(), row.value, rel_tol=1e-15), row.id  # 1 patient
    assert model.getParameter("synthesis__streptomyces") is None
    text = probiotic_xml
    for uri in (
        "identifiers.org/taxonomy:1744",  # P. freudenreichii
        "identifiers.org/kegg.compound:C05776",  # cobalamin
        "identifiers.org/kegg.compound:C02170",  # methylmalonate (MMA)
        "identifiers.org/ec-code:3.5.1.90",  # cobamide remodelling (CbiZ)
        "identifiers.org/ec-code:1.13.11.79",  # DMB synthase (BluB)
    ):
        assert uri in text, uri
    unit = model.getUnitDefinition("ug_per_day")
    kinds = {libsbml.UnitKind_toString(unit.getUnit(i).getKind()) for i in range(2)}
    assert kinds == {"gram", "second"}


def test_derived_rates_match_torch_for_every_host_factor():
    """Initial assignments (roadrunner evaluates them) reproduce rates() for non-default
    host factors and sampled parameters."""
    import roadrunner

    spec = sim.load_protocol(sim.example_protocol("vegan_no_supplement"))
    spec = spec.model_copy(
        update={
            "days": 3,
            "host": spec.host.model_copy(
                update={
                    "intrinsic_factor": "reduced",
                    "gastric_release": "impaired",
                    "fut2": "nonsecretor",
                    "tcn2_776": "GG",
                    "mthfr_677": "TT",
                }
            ),
        }
    )
    xml = sim.export_sbml(spec, patient=3)
    rr = roadrunner.RoadRunner(xml)
    from biofluxopt.sim._model import rates  # same package under test

    params = sim.sample_params(spec.patients, seed=spec.seed).index([3])
    k = rates(params, sim.build_protocol(spec, n_patients=1).host)
    for sbml_id, field in (
        ("if_capacity_ug", "if_capacity"),
        ("gastric_release", "gastric"),
        ("k_entry", "k_entry"),
        ("k_tc", "k_tc"),
        ("k_hc", "k_hc"),
        ("tc_capacity_ug", "tc_capacity"),
        ("hc_capacity_ug", "hc_capacity"),
        ("k_col", "k_col"),
        ("tau_mix_d", "tau_mix"),
        ("si_residence_d", "si_residence_d"),
        ("probiotic_dose_scale", "probiotic_dose_scale"),
        ("hcy_genetic_umol_l", "hcy_genetic"),
    ):
        want = float(getattr(k, field)[0])
        assert math.isclose(rr.getValue(sbml_id), want, rel_tol=1e-12), sbml_id
    assert rr.getValue("plasma") == pytest.approx(float(params["plasma_volume_l"][0]))


CASES = [
    ("omnivore_oral_1000ug", 0, 12),  # 1000 µg/day oral: binder saturation, IF saturation
    ("pernicious_anaemia_im", 1, 12),  # IF absent, injections on days 0, 2, 4, 7, 10
    ("vegan_no_supplement", 4, 8),  # vegan, baseline serum set to 150 pmol/L
    ("omnivore_probiotic", 0, 16),  # probiotic dosing (14 days) with activity ×4
    ("omnivore_prebiotic_inulin", 0, 30),  # inulin days 0-27: the niche shift switches off
]


@pytest.mark.parametrize(("name", "patient", "days"), CASES)
def test_roadrunner_matches_torch_on_examples(name, patient, days):
    res = sim.cross_check_sbml(
        sim.example_protocol(name), patient=patient, days=days, substeps_per_day=FINE
    )
    assert res["max_rel_error"] < 1e-3, res["max_rel_error_by_key"]
    # the check can fail: the trajectories do move over the horizon
    moved = max(
        np.ptp(res["torch"][k]) / np.abs(res["torch"][k]).max() for k in sim.CROSS_CHECK_KEYS
    )
    assert moved > 1e-4


def test_roadrunner_matches_torch_with_random_daily_activity():
    """Piecewise-constant activity multipliers (the day_start event sets them)."""
    days = 10
    g = torch.Generator().manual_seed(3)
    log_act = torch.rand(days, sim.n_agents(), 4, generator=g, dtype=torch.float64) * 2 - 1
    act = torch.where(sim.action_mask(), torch.exp(log_act * math.log(4)), 1.0)
    res = sim.cross_check_sbml(
        sim.example_protocol("omnivore_probiotic"), days=days, activity=act, substeps_per_day=FINE
    )
    assert res["max_rel_error"] < 1e-3, res["max_rel_error_by_key"]
    still = sim.cross_check_sbml(
        sim.example_protocol("omnivore_probiotic"), days=days, substeps_per_day=FINE
    )
    # the multipliers change the trajectory by more than the tolerance (MMA via propionate)
    diff = np.abs(res["torch"]["mma_umol_l"] - still["torch"]["mma_umol_l"]).max()
    assert diff / still["torch"]["mma_umol_l"].max() > 1e-3


def test_probiotic_abundance_follows_torch(probiotic_xml):
    """The probiotic doses (day_start event) reach the taxon as in apply_probiotic."""
    days = 18
    out = sim.simulate_sbml(
        probiotic_xml, days=days, outputs=("abundance__propionibacterium", "community_size")
    )
    spec = sim.load_protocol(sim.example_protocol("omnivore_probiotic"))
    sol = sim.run_protocol(spec.model_copy(update={"days": days}))
    i = sim.taxon_ids().index("propionibacterium")
    torch_rel = sol.composition[0, :, i].numpy()
    rr_rel = out["abundance__propionibacterium"] / out["community_size"]
    # at t = d RoadRunner reports after day d's dose, torch before it: compare the days
    # after the last dose (day 13), while the probiotic washes out
    np.testing.assert_allclose(rr_rel[14:], torch_rel[14:], rtol=2e-3)
    assert torch_rel[0] < 1e-15 < 1e-6 < torch_rel[15] < 0.9 * torch_rel[14]


def test_bad_patient_and_activity_are_refused():
    path = sim.example_protocol("omnivore_probiotic")
    with pytest.raises(sim.SBMLExportError, match="patient 1 does not exist"):
        sim.export_sbml(path, patient=1)
    with pytest.raises(sim.SBMLExportError, match="patient -1 does not exist"):
        sim.export_sbml(path, patient=-1)
    spec = sim.load_protocol(path).model_copy(update={"days": 4})
    params = sim.default_params(1)
    protocol = sim.build_protocol(spec)
    state0 = sim.steady_state(params, protocol)
    act = torch.ones(1, 3, sim.n_agents(), 4, dtype=torch.float64)
    with pytest.raises(sim.SBMLExportError, match="per-day activity covers 3 days"):
        sim.to_sbml(params, state0, protocol, activity=act)
    with pytest.raises(sim.SBMLExportError, match="patient 2 does not exist"):
        sim.to_sbml(params, state0, protocol, patient=2)
    broken = sim.State(
        state0.x * float("nan"), state0.presence, state0.growth_rate_per_day, state0.niche
    )
    with pytest.raises(sim.SBMLExportError, match="not finite"):
        sim.to_sbml(params, broken, protocol)
