"""Reference integrator: scipy ``solve_ivp`` (stiff, implicit) on the same right-hand side.

Slow and exact-ish by design: it integrates :func:`~._model.rhs` with an adaptive implicit
method (Radau by default) piecewise between dosing events, and applies the very same
:func:`~._model.apply_meal` / :func:`~._model.apply_injection` impulses at the same times as
:func:`~biofluxopt.sim.simulate`. It exists to check the fast integrator (tests, benchmark).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import torch
from scipy.integrate import solve_ivp

from ._model import (
    Coefficients,
    State,
    acc_index,
    apply_injection,
    apply_meal,
    apply_probiotic,
    coefficients,
    full_activity,
    observables,
    rates,
    rhs_fast,
)
from ._params import KineticParams
from ._protocol import Protocol
from ._solve import DAILY_FLUXES, SimulationError, meal_slots, trace_once


def simulate_reference(
    params: KineticParams,
    state0: State,
    protocol: Protocol,
    *,
    days: int,
    start_day: int = 0,
    activity: torch.Tensor | None = None,
    substeps_per_day: int = 24,
    method: str = "LSODA",
    rtol: float = 1e-8,
    atol: float = 1e-10,
) -> dict[str, np.ndarray]:
    """Integrate with ``scipy.integrate.solve_ivp`` for comparison with :func:`simulate`.

    Parameters are as for :func:`~biofluxopt.sim.simulate`; ``substeps_per_day`` only places
    the meals on the same time grid. All patients are stacked into one ODE system with a
    block-diagonal Jacobian sparsity pattern.

    Returns
    -------
    dict of str to ndarray, each ``[patients, days + 1]``
        The same daily records as ``Solution.daily`` (float64, CPU).
    """
    with torch.no_grad():
        params = params.to("cpu", torch.float64)
        x = state0.x.detach().to("cpu", torch.float64)
        presence = state0.presence.to("cpu", torch.float64)
        growth = state0.growth_rate_per_day.detach().to("cpu", torch.float64)
        n, width = x.shape
        k = rates(params, protocol.host)
        act = full_activity(activity, n, dtype=torch.float64, device="cpu")

        c = coefficients(k, act, presence, growth, state0.niche.detach().to("cpu", torch.float64))

        # Tracing records the very same torch operations once and replays them without the
        # Python interpreter: ~2x fewer seconds per call for the many small calls scipy makes.
        def step(xt, *coef):
            return rhs_fast(xt, Coefficients(*coef))

        traced = trace_once(("rhs",), step, (x, *c))

        def f(_t, y):
            return traced(torch.from_numpy(y).view(n, width), *c).reshape(-1).numpy()

        sparsity = scipy.sparse.block_diag([np.ones((width, width))] * n, format="csr")
        m = protocol.meals_per_day
        slots = meal_slots(m, substeps_per_day)
        acc_cols = [acc_index(a) for a in DAILY_FLUXES.values()]
        prop_i = list(DAILY_FLUXES).index("colon_propionate_mmol")

        def advance(x, t0, t1):
            if t1 <= t0:
                return x
            extra = {} if method == "LSODA" else {"jac_sparsity": sparsity}
            sol = solve_ivp(
                f, (t0, t1), x.reshape(-1).numpy(), method=method, rtol=rtol, atol=atol, **extra
            )
            if not sol.success:
                raise SimulationError(f"reference integrator failed: {sol.message}")
            return torch.from_numpy(sol.y[:, -1].copy()).view(n, width)

        prop0 = rhs_fast(x, c, True)[:, acc_index("propionate_mmol")]
        recs = [observables(x, k, prop0)]
        fluxes = [torch.full((n, len(acc_cols)), float("nan"), dtype=torch.float64)]
        for d in range(days):
            pd_ = start_day + d
            acc0 = x[:, acc_cols]
            t = float(d)
            food = protocol.food_ug_per_day[:, pd_].double().cpu() / m
            for j, s in enumerate(slots):
                ts = d + s / substeps_per_day
                x = advance(x, t, ts)
                t = ts
                if s == 0 and bool((protocol.im_ug[:, pd_] != 0).any()):
                    x = apply_injection(x, protocol.im_ug[:, pd_].double().cpu(), k)
                pro = protocol.probiotic_cfu
                if s == 0 and pro is not None and bool((pro[:, pd_] != 0).any()):
                    x = apply_probiotic(x, pro[:, pd_].double().cpu(), k)
                x = apply_meal(
                    x, food, protocol.oral_ug[:, pd_, j].double().cpu(), k, act, presence
                )
            x = advance(x, t, float(d + 1))
            flux = x[:, acc_cols] - acc0
            fluxes.append(flux)
            recs.append(observables(x, k, flux[:, prop_i]))
        out = {key: torch.stack([r[key] for r in recs], 1).numpy() for key in recs[0]}
        flux = torch.stack(fluxes, 1).numpy()
        for i, key in enumerate(DAILY_FLUXES):
            out[key] = flux[..., i]
        return out
