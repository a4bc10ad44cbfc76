"""The microbial leverage study: lever design, Bray–Curtis price, spread across compositions."""

from __future__ import annotations

import torch

from biofluxopt import sim


def test_bray_curtis_bounds():
    a = torch.tensor([[0.5, 0.5, 0.0]], dtype=torch.float64)
    b = torch.tensor([[0.0, 0.5, 0.5]], dtype=torch.float64)
    assert float(sim.bray_curtis(a, a)) == 0.0
    assert abs(float(sim.bray_curtis(a, b)) - 0.5) < 1e-12


def test_leverage_table_reports_every_scenario_with_its_community_price():
    table = sim.leverage_table(days=(2,), n_random_corners=1, substeps_per_day=16)
    assert len(table) == 9  # 3 diets × 3 supplements
    assert (table["gain_pmol_l"] >= 0).all()  # identity is one of the corners
    assert (table["loss_pmol_l"] <= 0).all()
    assert ((table["bray_curtis_best"] >= 0) & (table["bray_curtis_best"] <= 1)).all()
    # the corners do move the community
    assert (table["bray_curtis_max"] > 0.01).all()


def test_leverage_across_real_compositions():
    comps = sim.hmp_compositions(3, seed=1)
    assert comps.shape == (3, sim.n_taxa())
    assert torch.allclose(comps.sum(1), torch.ones(3, dtype=torch.float64))
    study = sim.leverage_across_compositions(comps, day=2, substeps_per_day=16, chunk=2)
    assert len(study.per_lever) == len(sim.levers())
    assert len(study.per_composition) == 3
    pc = study.per_composition
    # a composition's own best corner is at least as good as the common one
    assert (pc["gain_pmol_l"] >= pc["common_gain_pmol_l"] - 1e-9).all()
    summary = study.summary()
    assert summary["compositions"] == 3 and 0 <= summary["bray_curtis_best_median"] <= 1
