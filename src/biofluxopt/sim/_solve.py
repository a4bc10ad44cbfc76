"""The fast batched integrator: ``simulate(params, state0, protocol, *, days, ...)``.

Each day is split into ``substeps_per_day`` classical Runge–Kutta (RK4) steps of the
continuous right-hand side; meals and injections are impulses applied at the start of their
sub-step (:func:`~._model.apply_meal`, :func:`~._model.apply_injection`). RK4 conserves every
linear invariant of the right-hand side, so the cobalamin mass balance closes to rounding.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from biofluxopt._util import BioFluxOptError

from ._model import (
    ACCUMULATORS,
    N_POOLS,
    State,
    acc_index,
    apply_injection,
    apply_meal,
    coefficients,
    full_activity,
    n_taxa,
    observables,
    rates,
    rhs,
    rhs_fast,
)
from ._params import KineticParams, taxon_ids
from ._protocol import Protocol

#: Daily flux outputs: name → accumulator whose increment over the day it reports.
DAILY_FLUXES = {
    "absorbed_ug": "absorbed_ug",
    "ileal_free_cobalamin_ug": "ileal_free_ug",
    "microbial_cobalamin_ug": "microbial_cobalamin_ug",
    "microbial_analogue_ug": "microbial_analogue_ug",
    "colon_propionate_mmol": "propionate_mmol",
    "im_retained_ug": "im_retained_ug",
    "faecal_cobalamin_ug": "faecal_cobalamin_ug",
    "bile_ug": "bile_ug",
    "colonic_absorbed_ug": "colonic_absorbed_ug",
}

#: Batch size from which ``simulate(cpu_threads_="auto")`` uses torch's intra-op threads.
PARALLEL_MIN_PATIENTS = 1024

STATUS_OK = 0
STATUS_NONFINITE = 1
STATUS_NEGATIVE = 2
STATUS_MESSAGES = {
    STATUS_OK: "ok",
    STATUS_NONFINITE: "non-finite state: raise substeps_per_day or check parameter overrides",
    STATUS_NEGATIVE: "negative pool beyond rounding: raise substeps_per_day",
}


class SimulationError(BioFluxOptError):
    """The integration failed for some patients (see :attr:`Solution.status`)."""


@dataclass(frozen=True)
class Solution:
    """Result of :func:`simulate`.

    Attributes
    ----------
    day : Tensor, shape ``[days + 1]``
        Protocol day at the end of which each record is taken (the first is the start).
    daily : dict of str to Tensor, each ``[patients, days + 1]``
        Biomarkers and stores at the end of each day (``serum_b12_pmol_l``, ``holotc_pmol_l``,
        ``mma_umol_l``, ``hcy_umol_l``, ``liver_store_ug``, ``body_store_ug``, ...) and the
        fluxes of :data:`DAILY_FLUXES` summed over each day (NaN in the first column).
    composition : Tensor, shape ``[patients, days + 1, taxa]``
        Relative abundances at the end of each day.
    state : State
        Final state (pass it back as ``state0`` to continue).
    status : Tensor of int64, shape ``[patients]``
        0 ok; otherwise a key of :data:`STATUS_MESSAGES`.
    """

    day: Tensor
    daily: dict[str, Tensor]
    composition: Tensor
    state: State
    status: Tensor

    @property
    def ok(self) -> bool:
        return bool((self.status == STATUS_OK).all())

    def messages(self) -> list[str]:
        return [STATUS_MESSAGES[int(s)] for s in self.status.tolist()]

    def to_frame(self, patient_ids: list[str] | None = None):
        """Long table: one row per patient per recorded day (pandas DataFrame)."""
        import pandas as pd

        n, d = next(iter(self.daily.values())).shape
        ids = patient_ids or [str(i) for i in range(n)]
        data = {
            "patient": [p for p in ids for _ in range(d)],
            "day": self.day.repeat(n).cpu().numpy(),
        }
        for key, val in self.daily.items():
            data[key] = val.detach().cpu().reshape(-1).numpy()
        comp = self.composition.detach().cpu().reshape(n * d, -1).numpy()
        for j, tid in enumerate(taxon_ids()):
            data[f"abundance_{tid}"] = comp[:, j]
        return pd.DataFrame(data)


@contextlib.contextmanager
def cpu_threads(device: torch.device, threads: int | None):
    """Temporarily set torch's intra-op CPU threads (restored afterwards).

    The model's tensors are small (``[patients, ~35]``); on CPU, OpenMP wake-ups of a parallel
    region cost more than they save (measured 12 ms per op on a loaded 2-core machine vs
    µs single-threaded), so the integrator runs single-threaded unless told otherwise.
    """
    if device.type != "cpu" or threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _rk4(x, h, c, freeze):
    k1 = rhs_fast(x, c, freeze)
    k2 = rhs_fast(x + 0.5 * h * k1, c, freeze)
    k3 = rhs_fast(x + 0.5 * h * k2, c, freeze)
    k4 = rhs_fast(x + h * k3, c, freeze)
    return x + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)


def _needs_grad(params, x, activity, protocol) -> bool:
    if not torch.is_grad_enabled():
        return False
    tensors = [
        x,
        activity,
        protocol.food_ug_per_day,
        protocol.oral_ug,
        protocol.im_ug,
        *params.values.values(),
    ]
    return any(t is not None and t.requires_grad for t in tensors)


def _stepper(x, h, k, act, state0, freeze, params, activity, protocol):
    """One RK4 sub-step as a function of the state.

    Without gradients the step is traced once with ``torch.jit.trace`` (the same operations,
    replayed without the Python interpreter: ~1.4–2x faster); with gradients it stays eager so
    that autograd reaches the parameters, doses and activity multipliers.
    """

    c = coefficients(k, act, state0.presence, state0.growth_rate_per_day, state0.niche)

    def step(xt):
        return _rk4(xt, h, c, freeze)

    if _needs_grad(params, x, activity, protocol):
        return step
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(step, (x.detach(),), check_trace=False)

    def run(xt):
        with torch.no_grad():
            return traced(xt)

    return run


def required_substeps(k: dict) -> int:
    """Fewest RK4 sub-steps per day that keep every rate ``λ`` at ``λ·h ≤ 2.5``.

    2.5 is inside RK4's real stability interval (2.785) where its amplification factor for a
    pure decay stays positive, so pools cannot overshoot below zero. The fastest rates are the
    holoTC turnover, the entry pool, the lumen (bounded by the mixing time) and the community.
    """
    fastest = torch.stack(
        [
            k["k_tc"].max(),
            k["k_entry"].max(),
            (1.0 / k["tau_mix"] + k["k_fec"] + k["k_col"]).max(),
            (k["alpha"] + k["beta"] + k["k_fec"]).max(),
        ]
    ).max()
    return max(1, math.ceil(float(fastest.detach()) / 2.5))


def meal_slots(meals_per_day: int, substeps_per_day: int) -> list[int]:
    """Sub-step index of each meal: meals evenly spaced from the start of the day."""
    return [(j * substeps_per_day) // meals_per_day for j in range(meals_per_day)]


def _record(x, k, propionate):
    obs = observables(x, k, propionate)
    return obs


def simulate(
    params: KineticParams,
    state0: State,
    protocol: Protocol,
    *,
    days: int | None = None,
    start_day: int = 0,
    activity: Tensor | None = None,
    substeps_per_day: int = 24,
    throw: bool = True,
    progress: bool = False,
    freeze_microbes: bool = False,
    cpu_threads_: int | str | None = "auto",
) -> Solution:
    """Integrate the host–microbiome B12 model for a batch of patients.

    **Main arguments**

    Parameters
    ----------
    params : KineticParams
        One value per patient for every kinetic parameter (``[patients]`` tensors).
    state0 : State
        Initial state, usually from :func:`~biofluxopt.sim.steady_state`.
    protocol : Protocol
        Host factors, diet and supplement schedule (``[patients, protocol_days, ...]``).

    **Other arguments**

    days : int, optional
        Days to simulate; defaults to the protocol's length minus ``start_day``.
    start_day : int
        Protocol day the simulation starts at (for stepping one day at a time).
    activity : Tensor, shape ``[patients, agents, 4]``, optional
        Agents' enzyme-activity multipliers (identity = 1; action range ×0.25 … ×4), agents in
        ``taxon_ids()`` order without ``"other"``, activities in ``ACTIVITIES`` order.
    substeps_per_day : int
        RK4 steps per day (24 = hourly; must be ≥ meals per day).
    throw : bool
        Raise :class:`SimulationError` if any patient fails; with ``False`` the failure is
        carried in ``Solution.status`` and the failed patients' values are NaN.
    progress : bool
        Show a rich progress bar over days.
    freeze_microbes : bool
        Hold the community composition fixed (used while settling the steady state).
    cpu_threads_ : int, None or "auto"
        Intra-op threads while integrating on CPU (see :func:`cpu_threads`). ``"auto"``
        (default): 1 thread below :data:`PARALLEL_MIN_PATIENTS` patients, where OpenMP
        wake-ups cost more than they save, torch's own setting above it (measured 1.4–1.5×
        faster at 4,096 patients on 2 cores). None leaves torch's setting alone.

    Returns
    -------
    Solution

    Raises
    ------
    SimulationError
        A non-finite or negative state (message names the fix), when ``throw=True``.
    """
    if cpu_threads_ == "auto":
        cpu_threads_ = 1 if state0.x.shape[0] < PARALLEL_MIN_PATIENTS else None
    with cpu_threads(state0.x.device, cpu_threads_):
        n = state0.x.shape[0]
        if days is None:
            days = protocol.days - start_day
        if start_day + days > protocol.days:
            raise SimulationError(
                f"protocol covers {protocol.days} days; cannot simulate days "
                f"{start_day}–{start_day + days - 1}"
            )
        m = protocol.meals_per_day
        if substeps_per_day < m:
            raise SimulationError(
                f"substeps_per_day ({substeps_per_day}) must be >= meals_per_day ({m})"
            )
        dtype, device = state0.x.dtype, state0.x.device
        k = rates(params, protocol.host)
        need = required_substeps(k)
        if substeps_per_day < need:
            raise SimulationError(
                f"substeps_per_day={substeps_per_day} is too coarse for these parameters "
                f"(RK4 stability); use substeps_per_day >= {need}"
            )
        act = full_activity(activity, n, dtype=dtype, device=device)
        presence, growth = state0.presence, state0.growth_rate_per_day
        h = 1.0 / substeps_per_day
        slots = {s: j for j, s in enumerate(meal_slots(m, substeps_per_day))}
        im_days = (protocol.im_ug.abs().sum(0) > 0).tolist()
        acc_cols = [acc_index(a) for a in DAILY_FLUXES.values()]
        prop_col = acc_index("propionate_mmol")

        x = state0.x
        step = _stepper(x, h, k, act, state0, freeze_microbes, params, activity, protocol)
        prop0 = rhs(x, k, act, state0, True)[:, prop_col]
        recs = [observables(x, k, prop0)]
        fluxes = [torch.full((n, len(acc_cols)), float("nan"), dtype=dtype, device=device)]
        comps = [State(x, presence, growth).relative_abundance]

        bar = contextlib.nullcontext()
        task = None
        if progress:
            from rich.progress import Progress

            bar = Progress(transient=True)
        with bar as prog:
            if progress:
                task = prog.add_task("simulating", total=days)
            for d in range(days):
                pd_ = start_day + d
                acc0 = x[:, acc_cols]
                food = protocol.food_ug_per_day[:, pd_] / m
                for s in range(substeps_per_day):
                    if s == 0 and im_days[pd_]:
                        x = apply_injection(x, protocol.im_ug[:, pd_], k)
                    j = slots.get(s)
                    if j is not None:
                        x = apply_meal(x, food, protocol.oral_ug[:, pd_, j], k, act, presence)
                    x = step(x)
                day_flux = x[:, acc_cols] - acc0
                fluxes.append(day_flux)
                recs.append(
                    observables(
                        x, k, day_flux[:, list(DAILY_FLUXES).index("colon_propionate_mmol")]
                    )
                )
                comps.append(State(x, presence, growth).relative_abundance)
                if task is not None:
                    prog.advance(task)

        finite = torch.isfinite(x).all(-1)
        scale = x[:, :N_POOLS].abs().sum(-1).clamp_min(1.0)
        negative = (x[:, :N_POOLS] < -1e-9 * scale.unsqueeze(-1)).any(-1)
        status = torch.where(
            ~finite, STATUS_NONFINITE, torch.where(negative, STATUS_NEGATIVE, STATUS_OK)
        ).to(torch.int64)
        daily = {key: torch.stack([r[key] for r in recs], 1) for key in recs[0]}
        flux = torch.stack(fluxes, 1)
        for i, key in enumerate(DAILY_FLUXES):
            daily[key] = flux[..., i]
        sol = Solution(
            day=torch.arange(start_day, start_day + days + 1),
            daily=daily,
            composition=torch.stack(comps, 1),
            state=State(x, presence, growth, state0.niche),
            status=status,
        )
        if throw and not sol.ok:
            bad = (status != STATUS_OK).nonzero().flatten().tolist()
            first = STATUS_MESSAGES[int(status[bad[0]])]
            raise SimulationError(
                f"{len(bad)} of {n} patients failed (e.g. patient {bad[0]}): {first}"
            )
        return sol


__all__ = ["ACCUMULATORS", "DAILY_FLUXES", "SimulationError", "Solution", "n_taxa", "simulate"]
