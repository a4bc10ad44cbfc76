"""Public API behaviour: examples, protocols, steady state, stepping, dtypes, failures."""

from __future__ import annotations

import pytest
import torch

from biofluxopt import sim
from biofluxopt._util import ConfigError

EXAMPLES = [
    "omnivore_oral_1000ug",
    "vegan_no_supplement",
    "pernicious_anaemia_im",
    "omnivore_probiotic",
]


@pytest.mark.parametrize("name", EXAMPLES)
def test_shipped_examples_are_valid(name):
    spec = sim.load_protocol(sim.example_protocol(name))
    protocol = sim.build_protocol(spec)
    assert protocol.days == spec.days
    assert protocol.n_patients == spec.patients


def test_unknown_example_lists_the_available_ones():
    with pytest.raises(ConfigError, match="omnivore_oral_1000ug"):
        sim.example_protocol("nope")


def test_oral_schedule_spreads_doses_over_meals():
    mask = sim.oral_schedule(4, 3, times_per_day=2, start_day=1, end_day=3)
    assert mask.tolist() == [[0, 0, 0], [1, 0, 1], [1, 0, 1], [0, 0, 0]]


def _protocol(n, days, food=6.0, **host):
    return sim.Protocol(
        sim.host_factors(n, **host),
        torch.full((n, days), food, dtype=torch.float64),
        torch.zeros(n, days, 3, dtype=torch.float64),
        torch.zeros(n, days, dtype=torch.float64),
        3,
    )


def test_steady_state_is_stationary_without_intervention():
    p = sim.default_params(2)
    prot = _protocol(2, 30, intrinsic_factor=["normal", "reduced"])
    s0 = sim.steady_state(p, prot)
    sol = sim.simulate(p, s0, prot)
    for key in ("serum_b12_pmol_l", "body_store_ug", "mma_umol_l"):
        x = sol.daily[key]
        assert torch.allclose(x[:, -1], x[:, 0], rtol=1e-3), key
    assert torch.allclose(sol.composition[:, -1], sol.composition[:, 0], atol=1e-4)


def test_baseline_serum_is_honoured_and_recovers_towards_steady_state():
    p = sim.default_params(1)
    prot = _protocol(1, 60)
    s0 = sim.steady_state(p, prot, baseline_serum_b12_pmol_l=torch.tensor([150.0]))
    sol = sim.simulate(p, s0, prot)
    serum = sol.daily["serum_b12_pmol_l"][0]
    assert serum[0].item() == pytest.approx(150.0, rel=1e-3)
    assert serum[-1] > serum[1] > 140  # depleted stores refill on an omnivore diet


def test_stepping_day_by_day_equals_one_run():
    p = sim.default_params(2)
    prot = _protocol(2, 6)
    prot.oral_ug[:, 2:, 0] = 500.0
    s0 = sim.steady_state(p, prot)
    whole = sim.simulate(p, s0, prot)
    state = s0
    for day in range(6):
        step = sim.simulate(p, state, prot, days=1, start_day=day)
        state = step.state
    torch.testing.assert_close(state.x, whole.state.x, rtol=1e-12, atol=1e-12)


def test_float32_runs_and_agrees_with_float64():
    prot64 = _protocol(1, 5)
    p64 = sim.default_params(1)
    serum64 = sim.simulate(p64, sim.steady_state(p64, prot64), prot64).daily["serum_b12_pmol_l"]
    prot32 = sim.Protocol(
        prot64.host, prot64.food_ug_per_day.float(), prot64.oral_ug.float(), prot64.im_ug.float(), 3
    )
    prot32 = sim.Protocol(
        sim.host_factors(1, dtype=torch.float32),
        *list((prot32.food_ug_per_day, prot32.oral_ug, prot32.im_ug, 3)),
    )
    p32 = sim.default_params(1, dtype=torch.float32)
    sol32 = sim.simulate(p32, sim.steady_state(p32, prot32), prot32)
    assert sol32.daily["serum_b12_pmol_l"].dtype == torch.float32
    torch.testing.assert_close(sol32.daily["serum_b12_pmol_l"].double(), serum64, rtol=2e-3, atol=0)


def test_failures_are_values_with_throw_false():
    p = sim.default_params(2)
    prot = _protocol(2, 2)
    s0 = sim.steady_state(p, prot)
    x = s0.x.clone()
    x[1, 0] = float("nan")
    bad = sim.State(x, s0.presence, s0.growth_rate_per_day)
    sol = sim.simulate(p, bad, prot, throw=False)
    assert sol.status.tolist() == [0, 1]
    assert "substeps_per_day" in sol.messages()[1]
    with pytest.raises(sim.SimulationError, match="1 of 2 patients"):
        sim.simulate(p, bad, prot)


def test_activity_multipliers_act_on_microbial_pools():
    p = sim.default_params(2)
    prot = _protocol(2, 10)
    comp = sim.default_composition(2)
    s0 = sim.steady_state(p, prot, comp)
    act = torch.ones(2, sim.n_agents(), 4, dtype=torch.float64)
    prop = sim.taxon_ids().index("enterobacteriaceae")
    act[1, prop, 0] = 4.0  # more de novo synthesis
    sol = sim.simulate(p, s0, prot, activity=act)
    made = sol.daily["microbial_cobalamin_ug"]
    assert made[1, 1] > made[0, 1] * 1.1  # immediately: more cobamide
    # the production cost then shrinks the producer (fitness cost of the action)
    assert sol.composition[1, -1, prop] < 0.95 * sol.composition[0, -1, prop]
    # identity multipliers leave the steady state alone
    assert torch.allclose(
        sol.daily["serum_b12_pmol_l"][0, -1], sol.daily["serum_b12_pmol_l"][0, 0], rtol=1e-4
    )


def test_parameter_overrides_are_validated():
    p = sim.default_params(3)
    with pytest.raises(ConfigError, match="unknown kinetic parameter"):
        p.replace(no_such_rate=1.0)
    q = p.replace(colonic_absorption_fraction=0.05)
    assert q["colonic_absorption_fraction"].tolist() == [0.05] * 3
    s = sim.sample_params(3, seed=1)
    t = sim.sample_params(3, seed=1)
    assert all(torch.equal(s[k], t[k]) for k in s)
    for row in sim.parameter_table():
        assert (s[row.id] >= row.low).all() and (s[row.id] <= row.high).all()


def test_too_coarse_substeps_name_the_fix():
    p = sim.default_params(1).replace(holotc_half_life_h=0.5)
    prot = _protocol(1, 2)
    s0 = sim.steady_state(p, prot)
    with pytest.raises(sim.SimulationError, match="substeps_per_day >= "):
        sim.simulate(p, s0, prot, substeps_per_day=6)
