"""Convergence order of the simulator's fixed-step RK4 (STYLE.md: "check the torch integrator
[...] and its convergence order", as Diffrax's test_integrate does).

Two checks through the public API (``simulate`` with ``substeps_per_day`` n, 2n, 4n):

* **Exact answer.** The intramuscular depot has one first-order outflow and no input after
  the injection, ``d/dt depot = −k·depot``, so ``depot(T) = D·exp(−kT)``. Classical RK4 on
  it is exactly ``D·R(−kh)^N`` with ``R(z) = 1 + z + z²/2 + z³/6 + z⁴/24`` (N steps of
  h), and its error against ``exp`` falls 16× per halving of h (order 4).
* **Whole nonlinear model.** For serum B12 (every pool, saturable intrinsic factor and
  binders, the community) the exact answer is unknown; Richardson's estimate
  ``p = log2(|y_n − y_2n| / |y_2n − y_4n|)`` must lie in [3.5, 4.5]. The protocol keeps the
  model smooth (one meal a day at sub-step 0, so dose times do not move with n; an oral dose
  well below binder saturation, whose kink lowers the observed order).
"""

from __future__ import annotations

import math

import pytest

from biofluxopt.sim import ProtocolSpec, build_protocol, default_params, simulate, steady_state

DOSE_UG = 1000.0
DAYS = 4


def _rk4_amplification(z: float) -> float:
    return 1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24


def _setup(spec: dict):
    spec = ProtocolSpec.model_validate(spec)
    params = default_params(1)
    protocol = build_protocol(spec, n_patients=1)
    return params, protocol, steady_state(params, protocol, None)


@pytest.fixture(scope="module")
def injected():
    """One 1000 µg injection on day 0 next to an ordinary diet."""
    return _setup(
        {
            "days": DAYS,
            "diet": {"b12_ug_per_day": 4.0},
            "supplement": [{"route": "intramuscular", "dose_ug": DOSE_UG, "days": [0]}],
        }
    )


def test_depot_is_classical_rk4_and_converges_with_order_four(injected):
    params, protocol, state0 = injected
    k = float(params.values["im_depot_release_per_day"][0])
    start = float(state0.pool("im_depot_ug")[0]) + DOSE_UG  # injected before the first step
    exact = start * math.exp(-k * DAYS)
    errors = {}
    for n in (16, 32, 64):
        sol = simulate(params, state0, protocol, days=DAYS, substeps_per_day=n)
        depot = float(sol.state.pool("im_depot_ug")[0])
        rk4 = start * _rk4_amplification(-k / n) ** (n * DAYS)
        assert depot == pytest.approx(rk4, rel=1e-11), f"{n} sub-steps: not classical RK4"
        errors[n] = depot - exact
    assert all(e > 0 for e in errors.values())  # R(−kh) > exp(−kh) for 0 < kh < 2.5
    orders = [math.log2(errors[n] / errors[2 * n]) for n in (16, 32)]
    assert all(3.9 < p < 4.1 for p in orders), orders
    # the leading error term of RK4 on y' = −ky: T·k⁵·h⁴/120·y(T)
    leading = DAYS * k**5 / 64**4 / 120 * exact
    assert errors[64] == pytest.approx(leading, rel=0.05)


def test_serum_b12_richardson_order_is_four():
    params, protocol, state0 = _setup(
        {
            "days": 2,
            "diet": {"b12_ug_per_day": 4.0, "meals_per_day": 1},
            "supplement": [{"route": "oral", "dose_ug": 500.0}],
        }
    )
    serum = {}
    for n in (48, 96, 192):
        sol = simulate(params, state0, protocol, substeps_per_day=n)
        serum[n] = float(sol.daily["serum_b12_pmol_l"][0, -1])
    coarse, fine = serum[48] - serum[96], serum[96] - serum[192]
    assert abs(fine) > 1e-9 * abs(serum[192]), "differences must stand above rounding"
    order = math.log2(abs(coarse / fine))
    assert 3.5 <= order <= 4.5, (order, serum)
