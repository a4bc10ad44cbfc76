"""Invariants: non-negative pools, cobalamin mass balance, finite and correct gradients."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from biofluxopt import sim
from biofluxopt.sim._model import N_POOLS, acc_index, pool_index, rates, taxa_meta
from biofluxopt.sim._solve import required_substeps

BODY = ("entry_ug", "holotc_ug", "holohc_ug", "liver_ug", "peripheral_ug", "im_depot_ug")
GUT = ("si_cobalamin_ug", "colon_cobalamin_ug")


def _batch(draw_args):
    (food, dose, im_dose, meals, if_status, gastric, log_act, si_load, seed) = draw_args
    n, days = 1, 6
    params = sim.sample_params(n, seed=seed).replace(si_bacterial_load=si_load)
    host = sim.host_factors(n, intrinsic_factor=if_status, gastric_release=gastric)
    oral = torch.zeros(n, days, meals, dtype=torch.float64)
    oral[:, 1:, 0] = dose
    im = torch.zeros(n, days, dtype=torch.float64)
    im[:, 2] = im_dose
    protocol = sim.Protocol(host, torch.full((n, days), food, dtype=torch.float64), oral, im, meals)
    activity = torch.full((n, sim.n_agents(), 4), float(log_act)).exp()
    allowed = taxa_meta().allowed[:-1]
    return params, protocol, torch.where(allowed, activity, torch.ones_like(activity))


inputs = st.tuples(
    st.floats(0, 50),  # food µg/day
    st.floats(0, 5000),  # oral dose µg
    st.floats(0, 5000),  # IM dose µg
    st.integers(1, 4),  # meals per day
    st.sampled_from(["normal", "reduced", "absent"]),
    st.sampled_from(["normal", "impaired"]),
    st.floats(-1.386, 1.386),  # log activity multiplier (×0.25 … ×4)
    st.sampled_from([0.1, 1.0, 1000.0]),  # small-bowel bacterial load scenario
    st.integers(0, 10_000),
)

SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(inputs)
def test_no_negative_pools_and_mass_balance_closes(args):
    params, protocol, activity = _batch(args)
    steps = max(12, required_substeps(rates(params, protocol.host)))
    state0 = sim.steady_state(params, protocol, settle_days=4, substeps_per_day=steps)
    sol = sim.simulate(params, state0, protocol, activity=activity, substeps_per_day=steps)
    x0, x1 = state0.x, sol.state.x
    assert (x1[:, :N_POOLS] >= 0).all()
    for day_state in (sol.daily["body_store_ug"], sol.daily["serum_b12_pmol_l"]):
        assert (day_state >= 0).all()

    def acc(name):
        return x1[:, acc_index(name)] - x0[:, acc_index(name)]

    def total(x, names):
        return sum(x[:, pool_index(p)] for p in names)

    # body: change = absorbed + retained injection − bile − non-biliary and urinary losses
    d_body = total(x1, BODY) - total(x0, BODY)
    body_in = acc("absorbed_ug") + acc("im_dose_ug")
    body_out = acc("bile_ug") + acc("body_loss_ug") + acc("plasma_urine_ug")
    scale = body_in + body_out + total(x0, BODY)
    assert torch.allclose(d_body, body_in - body_out, rtol=0, atol=1e-6 * float(scale))
    # gut: intake + bile + microbial cobalamin + net remodelling = absorbed + faecal + change
    d_gut = total(x1, GUT) - total(x0, GUT)
    gut_in = (
        acc("intake_ug")
        + acc("bile_ug")
        + acc("microbial_cobalamin_ug")
        + acc("remodelled_to_cobalamin_ug")
    )
    gut_out = acc("absorbed_ug") + acc("faecal_cobalamin_ug")
    scale = gut_in.abs() + gut_out + total(x0, GUT)
    assert torch.allclose(d_gut, gut_in - gut_out, rtol=0, atol=1e-6 * float(scale))


def _day_serum(dose, activity, *, days=90, substeps=16):
    n = dose.shape[0]
    params = sim.default_params(n)
    host = sim.host_factors(n)
    schedule = sim.oral_schedule(days, 3, times_per_day=1, start_day=1)
    oral = dose.view(n, 1, 1) * schedule.unsqueeze(0)
    protocol = sim.Protocol(
        host,
        torch.full((n, days), 2.0, dtype=torch.float64),
        oral,
        torch.zeros(n, days, dtype=torch.float64),
        3,
    )
    with torch.no_grad():
        state0 = sim.steady_state(
            sim.default_params(n), protocol, settle_days=4, substeps_per_day=substeps
        )
    sol = sim.simulate(params, state0, protocol, activity=activity, substeps_per_day=substeps)
    return sol.daily["serum_b12_pmol_l"][:, days]


@pytest.mark.slow
def test_gradients_of_day90_serum_match_finite_differences():
    agents = sim.taxon_ids()[:-1]
    bact, prop = agents.index("bacteroidales"), agents.index("enterobacteriaceae")
    dose = torch.tensor([50.0], dtype=torch.float64, requires_grad=True)
    act = torch.ones(1, sim.n_agents(), 4, dtype=torch.float64, requires_grad=True)
    serum = _day_serum(dose, act)
    serum.sum().backward()
    g_dose = dose.grad[0]
    g_uptake = act.grad[0, bact, 2]
    g_synth = act.grad[0, prop, 0]
    assert torch.isfinite(act.grad).all() and torch.isfinite(dose.grad).all()

    # central differences, all perturbations as extra patients of one batch
    h_dose, h_act = 1e-3, 1e-4
    doses = torch.tensor([50 + h_dose, 50 - h_dose, 50, 50, 50, 50], dtype=torch.float64)
    acts = torch.ones(6, sim.n_agents(), 4, dtype=torch.float64)
    acts[2, bact, 2] += h_act
    acts[3, bact, 2] -= h_act
    acts[4, prop, 0] += h_act
    acts[5, prop, 0] -= h_act
    with torch.no_grad():
        s = _day_serum(doses, acts)
    fd_dose = (s[0] - s[1]) / (2 * h_dose)
    fd_uptake = (s[2] - s[3]) / (2 * h_act)
    fd_synth = (s[4] - s[5]) / (2 * h_act)
    assert g_dose > 0
    assert torch.allclose(g_dose, fd_dose, rtol=1e-4)
    assert torch.allclose(g_uptake, fd_uptake, rtol=1e-3, atol=1e-9)
    assert torch.allclose(g_synth, fd_synth, rtol=1e-3, atol=1e-9)
