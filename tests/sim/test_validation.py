"""Calibration and validation against published human data (docs/validation.md)."""

from __future__ import annotations

import pytest

from biofluxopt.sim import _validation as v


def _assert_rows(rows):
    failed = [
        f"{r.target}: published {r.published}, model {r.model:.4g} ({r.error:+.1%})"
        for r in rows
        if r.passed is False
    ]
    assert not failed, failed


def test_carmel_single_dose_absorption_within_25_percent():
    rows = v.check_single_dose_absorption()
    assert len(rows) == 10
    _assert_rows(rows)
    by = {r.target.split(" (")[0]: r.model for r in rows}
    # IF saturates per meal: beyond ~10 µg almost everything extra is passive (~1.3 %)
    assert (
        by["absorbed from a 1000 µg oral dose, IF normal"]
        - by["absorbed from a 1000 µg oral dose, IF absent"]
        < 2.5
    )


def test_colonic_route_cannot_double_count_carmel():
    """Carmel's totals are whole-body: at Kurpad's 7 % colonic absorption the end-to-end
    1000 µg rows overshoot several-fold, which is why the joint fit sets it near 0."""
    from biofluxopt import sim

    p = sim.default_params(2).replace(colonic_absorption_fraction=0.07)
    got = v.single_dose_absorption([1000.0], "absent", params=p)["absorbed_ug"]
    assert float(got[0]) > 3 * 12.0


def test_validation_uses_the_public_api_only():
    """Every validation row runs the whole model the way a user would: the validation
    module imports nothing but ``biofluxopt.sim``'s public names."""
    import ast
    import inspect

    from biofluxopt import sim

    tree = ast.parse(inspect.getsource(v))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"relative import from .{node.module}"
            assert not (node.module or "").startswith("biofluxopt.sim."), node.module
        if isinstance(node, ast.Import):
            for alias in node.names:
                assert not alias.name.startswith("biofluxopt.sim."), alias.name
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "sim"
        ):
            assert node.attr in sim.__all__, f"sim.{node.attr} is not public"


def test_megadoses_saturate_and_probiotic_rows():
    rows = {r.target: r for r in v.check_megadoses()}
    plateau = rows["protein-bound serum B12 at 10⁶ µg/day oral (≤ total binding capacity 850–1600)"]
    assert plateau.model <= 1600  # binders saturate; the rest leaves in urine
    kuz = [r.model for t, r in rows.items() if t.startswith("serum B12 after 120 d")]
    assert all(300 < m < 1200 for m in kuz)
    pro = {r.target: r for r in v.check_probiotic()}
    _assert_rows(pro.values())
    after = pro["P. freudenreichii in faeces 7 d after the last dose (< 5 log10/g)"]
    assert after.model < 5.0  # washed out within a week of the last dose


def test_injection_retention_within_25_percent():
    _assert_rows(v.check_injection_retention())


@pytest.mark.slow
def test_turnover_and_store_depletion():
    rows = {r.target: r for r in v.check_turnover_and_depletion()}
    _assert_rows(rows.values())
    normal = rows["body-store turnover, IF normal"].model
    absent = rows["body-store turnover, IF absent"].model
    # without IF the biliary loop is lost: turnover rises (published: doubles; model: ×1.5,
    # see docs/validation.md for why the two published numbers cannot both be met)
    assert 1.3 < absent / normal < 2.2
    assert (
        rows["time to deplete 2500 → 300 µg, IF absent"].model
        < rows["time to deplete 2500 → 300 µg, IF normal"].model
    )


def test_biliary_loop():
    _assert_rows(v.check_biliary_loop())


def test_epic_oxford_serum_by_diet_within_20_percent():
    rows = v.check_diet_serum()
    _assert_rows(rows)
    serum = [r.model for r in rows]
    assert serum == sorted(serum, reverse=True)  # omnivore > vegetarian > vegan


def test_biomarker_cut_offs_and_genetics():
    rows = {r.target: r for r in v.check_biomarkers()}
    _assert_rows(rows.values())
    # vegans at 0.5 µg/day: biochemically B12-deficient by MMA and holoTC cut-offs
    assert rows["MMA, vegan (above the 0.271 µmol/L upper normal)"].model > 0.271
    assert rows["holoTC, vegan (below the 35 pmol/L 'low' cut-off)"].model < 35
    _assert_rows(v.check_genetics())


def test_oral_dose_response_moves_holotc_more_than_total_b12():
    bor = v.check_oral_trials()
    holotc, serum = bor[0].model, bor[1].model
    assert holotc > serum > 0  # holoTC is the early marker of absorption (Bor 2004)


def test_population_spread_matches_reference_intervals():
    rows = v.check_population_spread()
    _assert_rows(rows)
    # the plausible ranges as +-3 sigma (spread 1) would be far too wide: 73-1055 pmol/L
    wide, _, _ = v.population_serum_width(1000, spread=1.0)
    assert wide > (1 + rows[0].tolerance) * rows[0].published
