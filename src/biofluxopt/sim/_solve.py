"""The fast batched integrator: ``simulate(params, state0, protocol, *, days, ...)``.

Each day is split into ``substeps_per_day`` classical Runge–Kutta (RK4) steps of the
continuous right-hand side; meals and injections are impulses applied at the start of their
sub-step (:func:`~._model.apply_meal`, :func:`~._model.apply_injection`). RK4 conserves every
linear invariant of the right-hand side, so the cobalamin mass balance closes to rounding.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import shutil
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from biofluxopt._util import BioFluxOptError, ConfigError

from ._model import (
    ACCUMULATORS,
    CONTINUOUS_INDEX,
    N_POOLS,
    Coefficients,
    Rates,
    State,
    acc_index,
    apply_injection,
    apply_meal,
    apply_probiotic,
    coefficients,
    dynamics,
    full_activity,
    n_taxa,
    observables,
    prebiotic_niche_shift,
    rates,
    relative_abundance,
    rhs_fast,
    taxa_meta,
)
from ._params import KineticParams, taxon_ids
from ._protocol import ACTION_RANGE, ACTIVITIES, Protocol

#: Daily flux outputs: name → accumulator whose increment over the day it reports.
DAILY_FLUXES = {
    "absorbed_ug": "absorbed_ug",
    "ileal_free_cobalamin_ug": "ileal_free_ug",
    "microbial_cobalamin_ug": "microbial_cobalamin_ug",
    "microbial_analogue_ug": "microbial_analogue_ug",
    "colon_propionate_mmol": "propionate_mmol",
    "im_dose_ug": "im_dose_ug",
    "faecal_cobalamin_ug": "faecal_cobalamin_ug",
    "bile_ug": "bile_ug",
    "colonic_absorbed_ug": "colonic_absorbed_ug",
    "plasma_urine_ug": "plasma_urine_ug",
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


def auto_threads(n_patients: int, device: torch.device) -> int | None:
    """Intra-op thread count for ``cpu_threads_="auto"``.

    One thread below :data:`PARALLEL_MIN_PATIENTS` patients, where OpenMP wake-ups cost more
    than they save. Above it, as many threads as there are idle cores (CPU count minus the
    1-minute load average, at least 1, at most torch's setting): a parallel region whose
    threads share a core with another busy process waits for the slowest thread, which was
    measured 7× slower than one thread on a 2-core machine with one core busy.
    """
    if device.type != "cpu":
        return None
    if n_patients < PARALLEL_MIN_PATIENTS:
        return 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover - platforms without a load average
        return 1
    idle = (os.cpu_count() or 1) - math.ceil(load - 0.5)
    return max(1, min(torch.get_num_threads(), idle))


@contextlib.contextmanager
def cpu_threads(device: torch.device, threads: int | None):
    """Temporarily set torch's intra-op CPU threads (restored afterwards).

    The model's tensors are small (``[patients, ~40]``); on CPU, OpenMP wake-ups of a parallel
    region cost more than they save at small batches (measured 12 ms per op on a loaded
    2-core machine vs µs single-threaded).
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


def _rk4(xt: Tensor, h: float, c: Coefficients, freeze: bool, continuous: Tensor) -> Tensor:
    """One classical RK4 step of the packed state laid out patients last, ``[state, patients]``.

    The dynamic rows (pools, log abundances) take the RK4 update; the accumulators take the
    same quadrature of their fluxes (rows ``continuous`` of the accumulator block, see
    :data:`~._model.CONTINUOUS_ACCUMULATORS`), so the fluxes they record are those of the
    step, and the stage states carry only the rows the right-hand side reads.
    """
    d = N_POOLS + c.presence.shape[0]
    y = xt[:d]
    k1, f1 = dynamics(y, c, freeze)
    k2, f2 = dynamics(torch.add(y, k1, alpha=0.5 * h), c, freeze)
    k3, f3 = dynamics(torch.add(y, k2, alpha=0.5 * h), c, freeze)
    k4, f4 = dynamics(torch.add(y, k3, alpha=h), c, freeze)
    y_new = torch.add(y, torch.add(k1 + k4, k2 + k3, alpha=2.0), alpha=h / 6.0)
    quad = torch.add(f1 + f4, f2 + f3, alpha=2.0)
    return torch.cat([y_new, xt[d:].index_add(0, continuous, quad, alpha=h / 6.0)], 0)


def _rk4_flat(xt: Tensor, continuous: Tensor, h: float, freeze: bool, *coef: Tensor) -> Tensor:
    return _rk4(xt, h, Coefficients(*coef), freeze, continuous)


_TRACES: dict[tuple, torch.jit.ScriptFunction] = {}
"""Traced functions of this process, by what they are specialised on (see :func:`trace_once`)."""


def input_layout(*tensors: Tensor) -> tuple:
    """Shapes, dtypes and devices of ``tensors``: what a trace is specialised on."""
    return tuple((tuple(t.shape), t.dtype, t.device) for t in tensors)


def trace_once(key: tuple, fn, example_inputs: tuple[Tensor, ...]):
    """``torch.jit.trace(fn, example_inputs)``, traced once per process for ``key`` and reused.

    A traced *function* lives in TorchScript's global compilation unit until the process
    exits: it is never freed, even when nothing refers to it any more. Tracing one per
    integrator (every env reset, every simulated batch) leaked the graph each time, about
    45 MB per MAPPO iteration at 16 patients × 52 weekly steps, 19 GB over the full trial's
    tuning. ``key`` must hold every Python value ``fn`` reads (and the input layout); the
    tensors it reads must be its arguments, so that the trace is value-independent.
    """
    key = (*key, input_layout(*example_inputs))
    traced = _TRACES.get(key)
    if traced is None:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(fn, example_inputs, check_trace=False)
        _TRACES[key] = traced
    return traced


def _traced_rk4(h: float, freeze: bool, xt: Tensor, continuous: Tensor, c: Coefficients):
    """:func:`_rk4` traced once per step size, frozen flag and input layout
    (:func:`trace_once`): ``_rk4`` has no branch on tensor values, and ``h`` and ``freeze``
    are the only Python values it reads."""

    def flat(xt, continuous, *coef):
        return _rk4(xt, h, Coefficients(*coef), freeze, continuous)

    return trace_once(("rk4", float(h), bool(freeze)), flat, (xt.detach(), continuous, *c))


@functools.cache
def _compiled_rk4():
    """:func:`_rk4` compiled by ``torch.compile`` (inductor): the right-hand side's ~150
    elementwise operations fused into a few C++ loops, ~2–2.5× faster per sub-step than the
    traced graph at 4,096 patients, for a one-off compilation of ~15 s per batch shape (cached
    by torch on disk for later processes). Needs a C++ compiler on CPU."""
    return torch.compile(_rk4_flat, dynamic=False)


def check_compile(device: torch.device | str) -> None:
    """Refuse ``compile=True`` up front where inductor cannot build its kernels."""
    if torch.device(device).type == "cpu" and not any(
        shutil.which(cc) for cc in ("c++", "g++", "clang++", "cl")
    ):
        raise ConfigError(
            "needs a C++ compiler (torch.compile builds the fused kernel); none found on PATH",
            field="compile",
        )


def required_substeps(k: Rates) -> int:
    """Fewest RK4 sub-steps per day that keep every rate ``λ`` at ``λ·h ≤ 2.5``.

    2.5 is inside RK4's real stability interval (2.785) where its amplification factor for a
    pure decay stays positive, so pools cannot overshoot below zero. The fastest rates are the
    holoTC turnover, the entry pool, the lumen (bounded by the mixing time) and the community.
    """
    fastest = torch.stack(
        [
            k.k_tc.max(),
            k.k_entry.max(),
            (k.k_renal + k.k_hc_bind).max(),
            (1.0 / k.tau_mix + k.k_fec + k.k_col).max(),
            (k.alpha + k.beta + k.k_fec).max(),
        ]
    ).max()
    return max(1, math.ceil(float(fastest.detach()) / 2.5))


def meal_slots(meals_per_day: int, substeps_per_day: int) -> list[int]:
    """Sub-step index of each meal: meals evenly spaced from the start of the day."""
    return [(j * substeps_per_day) // meals_per_day for j in range(meals_per_day)]


def action_mask() -> Tensor:
    """``[agents, 4]`` bool: the B12 activities each agent has (``ACTIVITIES`` order).

    Multipliers of the other entries must stay 1 (identity).
    """
    return taxa_meta().allowed[:-1].clone()


def check_activity(activity: Tensor, *, clamp: bool = True) -> Tensor:
    """Validate agent activity multipliers ``[..., agents, 4]`` and clamp them to the range.

    Raises :class:`~biofluxopt._util.ConfigError` naming the first taxon and activity that
    is set (≠ 1) although the taxon does not have it, or a non-finite value.
    """
    allowed = taxa_meta().allowed[:-1].to(activity.device)
    if activity.shape[-2:] != allowed.shape:
        raise ConfigError(
            f"activity must end in [agents={allowed.shape[0]}, activities={allowed.shape[1]}], "
            f"got shape {tuple(activity.shape)}",
            field="activity",
        )
    a = activity.detach()
    if not bool(torch.isfinite(a).all()):
        raise ConfigError("activity multipliers must be finite", field="activity")
    bad = (~allowed) & (a != 1).reshape(-1, *allowed.shape).any(0)
    if bool(bad.any()):
        i, j = (int(v) for v in bad.nonzero()[0])
        raise ConfigError(
            f"{taxon_ids()[i]} has no {ACTIVITIES[j]} activity (leave it at 1; allowed: "
            f"{[ACTIVITIES[m] for m in range(len(ACTIVITIES)) if allowed[i, m]]})",
            field="activity",
        )
    if not clamp:
        return activity
    lo, hi = ACTION_RANGE
    return activity.clamp(lo, hi)


class _Integrator:
    """RK4 integration of one batch with fixed parameters and protocol.

    Rates, meal slots and a traced RK4 sub-step are built once; :meth:`run` then integrates
    any stretch of days with any activity, so that a controller stepping a week at a time
    pays the set-up only once. Without gradients the sub-step is traced with
    ``torch.jit.trace`` taking the state and the :class:`Coefficients` as inputs (the same
    operations replayed without the Python interpreter: ~1.4–2× faster); with gradients it
    stays eager so that autograd reaches parameters, doses and activity multipliers.
    """

    def __init__(
        self,
        params: KineticParams,
        protocol: Protocol,
        state0: State,
        *,
        substeps_per_day: int,
        freeze_microbes: bool,
        grad: bool,
        compile: bool = False,
    ):
        m = protocol.meals_per_day
        if substeps_per_day < m:
            raise SimulationError(
                f"substeps_per_day ({substeps_per_day}) must be >= meals_per_day ({m})"
            )
        self.k = rates(params, protocol.host)
        need = required_substeps(self.k)
        if substeps_per_day < need:
            raise SimulationError(
                f"substeps_per_day={substeps_per_day} is too coarse for these parameters "
                f"(RK4 stability); use substeps_per_day >= {need}"
            )
        self.protocol = protocol
        self.presence = state0.presence
        self.growth = state0.growth_rate_per_day
        self.niche = state0.niche
        self.n = state0.x.shape[0]
        self.dtype, self.device = state0.x.dtype, state0.x.device
        self.substeps = substeps_per_day
        self.h = 1.0 / substeps_per_day
        self.freeze = freeze_microbes
        self.grad = grad
        self.compile = compile
        self.slots = {s: j for j, s in enumerate(meal_slots(m, substeps_per_day))}
        self.im_days = (protocol.im_ug.abs().sum(0) > 0).tolist()
        self.pro_days = (
            [False] * protocol.days
            if protocol.probiotic_cfu is None
            else (protocol.probiotic_cfu.abs().sum((0, 2)) > 0).tolist()
        )
        fibre = protocol.prebiotic_g
        self.fibre_changes = (
            [False] * protocol.days
            if fibre is None
            else [True, *(fibre[:, 1:] != fibre[:, :-1]).any(0).tolist()]
        )
        self.acc_cols = [acc_index(a) for a in DAILY_FLUXES.values()]
        self.prop_i = list(DAILY_FLUXES).index("colon_propionate_mmol")
        self.continuous = CONTINUOUS_INDEX.to(self.device)
        self._traced = None

    def coefficients(
        self, activity: Tensor | None, day: int | None = None
    ) -> tuple[Tensor, Coefficients]:
        """Activities and coefficients of protocol day ``day`` (its prebiotic fibre shifts
        the niches of the taxa it feeds)."""
        act = full_activity(activity, self.n, dtype=self.dtype, device=self.device)
        niche = self.niche
        fibre = self.protocol.prebiotic_g
        if fibre is not None and day is not None:
            niche = niche + prebiotic_niche_shift(self.k, fibre[:, day])
        return act, coefficients(self.k, act, self.presence, self.growth, niche)

    def _step(self, xt: Tensor, c: Coefficients) -> Tensor:
        """One RK4 sub-step of the transposed state ``[state, patients]``."""
        if self.grad:
            return _rk4(xt, self.h, c, self.freeze, self.continuous)
        if self.compile:
            with torch.no_grad():
                if self._traced is not None:
                    return self._traced(xt, self.continuous, self.h, self.freeze, *c)
                with warnings.catch_warnings():
                    # the first call compiles, importing parts of torch that warn about
                    # their own deprecations
                    warnings.simplefilter("ignore", DeprecationWarning)
                    self._traced = _compiled_rk4()
                    return self._traced(xt, self.continuous, self.h, self.freeze, *c)
        if self._traced is None:
            self._traced = _traced_rk4(self.h, self.freeze, xt, self.continuous, c)
        with torch.no_grad():
            return self._traced(xt, self.continuous, *c)

    def _impulses(self, x: Tensor, s: int, day: int, food: Tensor, act: Tensor) -> Tensor | None:
        """The state ``[patients, state]`` after sub-step ``s``'s dosing events, or None
        when there are none."""
        k, p = self.k, self.protocol
        injection = s == 0 and self.im_days[day]
        probiotic = s == 0 and self.pro_days[day]
        meal = self.slots.get(s)
        if not (injection or probiotic or meal is not None):
            return None
        if injection:
            x = apply_injection(x, p.im_ug[:, day], k)
        if probiotic:
            x = apply_probiotic(x, p.probiotic_cfu[:, day], k)
        if meal is not None:
            x = apply_meal(x, food, p.oral_ug[:, day, meal], k, act, self.presence)
        return x

    def record(self, x: Tensor, propionate: Tensor | None) -> dict[str, Tensor]:
        return observables(x, self.k, propionate)

    def run(
        self,
        x: Tensor,
        activity: Tensor | None,
        start_day: int,
        days: int,
        *,
        progress=None,
        record: str = "all",
    ):
        """Integrate ``days`` days from protocol day ``start_day``.

        ``activity`` is ``[patients, agents, 4]`` (constant) or ``[patients, days, agents, 4]``
        (one setting per day). Returns the final packed state and the daily records
        ``(observables, fluxes, compositions)`` (lists, one entry per recorded day): every
        day with ``record="all"``, the last day only with ``"last"``, none with ``"none"``.
        """
        if record not in ("all", "last", "none"):
            raise ValueError(f"record must be 'all', 'last' or 'none', not {record!r}")
        per_day = activity is not None and activity.dim() == 4
        fibre = self.protocol.prebiotic_g
        act, c = self.coefficients(None if per_day else activity, start_day)
        recs, fluxes, comps = [], [], []
        p, m = self.protocol, self.protocol.meals_per_day
        xt = x.T.contiguous()  # patients last between events (see rhs_t)
        for d in range(days):
            pd_ = start_day + d
            if per_day:
                act, c = self.coefficients(activity[:, d], pd_)
            elif fibre is not None and d > 0 and self.fibre_changes[pd_]:
                act, c = self.coefficients(activity, pd_)
            acc0 = xt[self.acc_cols].T
            food = p.food_ug_per_day[:, pd_] / m
            for s in range(self.substeps):
                dosed = self._impulses(xt.T, s, pd_, food, act)
                if dosed is not None:
                    xt = dosed.T.contiguous()
                xt = self._step(xt, c)
            if record == "all" or (record == "last" and d == days - 1):
                x = xt.T
                day_flux = x[:, self.acc_cols] - acc0
                fluxes.append(day_flux)
                recs.append(self.record(x, day_flux[:, self.prop_i]))
                comps.append(relative_abundance(x, self.presence))
            if progress is not None:
                progress()
        return xt.T.contiguous(), recs, fluxes, comps

    def initial_record(self, x: Tensor) -> dict[str, Tensor]:
        _, c = self.coefficients(None)
        prop0 = rhs_fast(x, c, True)[:, acc_index("propionate_mmol")]
        return self.record(x, prop0)


def _status(x: Tensor) -> Tensor:
    finite = torch.isfinite(x).all(-1)
    scale = x[:, :N_POOLS].abs().sum(-1).clamp_min(1.0)
    negative = (x[:, :N_POOLS] < -1e-9 * scale.unsqueeze(-1)).any(-1)
    return torch.where(
        ~finite, STATUS_NONFINITE, torch.where(negative, STATUS_NEGATIVE, STATUS_OK)
    ).to(torch.int64)


def _solution(day0, recs, fluxes, comps, state, status) -> Solution:
    daily = {key: torch.stack([r[key] for r in recs], 1) for key in recs[0]}
    flux = torch.stack(fluxes, 1)
    for i, key in enumerate(DAILY_FLUXES):
        daily[key] = flux[..., i]
    return Solution(
        day=torch.arange(day0, day0 + len(recs)),
        daily=daily,
        composition=torch.stack(comps, 1),
        state=state,
        status=status,
    )


def _raise_failed(status: Tensor) -> None:
    bad = (status != STATUS_OK).nonzero().flatten().tolist()
    if bad:
        first = STATUS_MESSAGES[int(status[bad[0]])]
        raise SimulationError(
            f"{len(bad)} of {status.shape[0]} patients failed (e.g. patient {bad[0]}): {first}"
        )


def _needs_grad(params, x, activity, protocol) -> bool:
    if not torch.is_grad_enabled():
        return False
    tensors = [
        x,
        activity,
        protocol.food_ug_per_day,
        protocol.oral_ug,
        protocol.im_ug,
        protocol.probiotic_cfu,
        *params.values.values(),
    ]
    return any(t is not None and t.requires_grad for t in tensors)


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
    compile: bool = False,
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
        Host factors, diet, supplement and probiotic schedule (``[patients, protocol_days,
        ...]``).

    **Other arguments**

    days : int, optional
        Days to simulate; defaults to the protocol's length minus ``start_day``.
    start_day : int
        Protocol day the simulation starts at.
    activity : Tensor, optional
        Agents' enzyme-activity multipliers (identity = 1; clamped to ``ACTION_RANGE``),
        agents in ``taxon_ids()`` order without ``"other"``, activities in ``ACTIVITIES``
        order: ``[patients, agents, 4]`` for the whole run or ``[patients, days, agents, 4]``
        for one setting per day. Setting an activity a taxon does not have is an error.
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
        Intra-op threads while integrating on CPU (see :func:`auto_threads`); None leaves
        torch's setting alone.
    compile : bool
        Run the RK4 sub-step compiled by ``torch.compile`` instead of traced: ~2–2.5× faster
        per sub-step at 4,096 patients after a one-off ~15 s compilation per batch shape
        (worth it for runs of minutes: training, large cohorts). Needs a C++ compiler; results
        equal the traced ones to ~1e-14 relative (not bit for bit). Ignored with gradients.

    Returns
    -------
    Solution

    Raises
    ------
    SimulationError
        A non-finite or negative state (message names the fix), when ``throw=True``.
    """
    n = state0.x.shape[0]
    if cpu_threads_ == "auto":
        cpu_threads_ = auto_threads(n, state0.x.device)
    if days is None:
        days = protocol.days - start_day
    if start_day + days > protocol.days:
        raise SimulationError(
            f"protocol covers {protocol.days} days; cannot simulate days "
            f"{start_day}–{start_day + days - 1}"
        )
    if activity is not None:
        activity = check_activity(activity)
        if activity.dim() == 4 and activity.shape[1] != days:
            raise ConfigError(
                f"per-day activity covers {activity.shape[1]} days, the run {days}",
                field="activity",
            )
    if compile:
        check_compile(state0.x.device)
    with cpu_threads(state0.x.device, cpu_threads_):
        grad = _needs_grad(params, state0.x, activity, protocol)
        integ = _Integrator(
            params,
            protocol,
            state0,
            substeps_per_day=substeps_per_day,
            freeze_microbes=freeze_microbes,
            grad=grad,
            compile=compile,
        )
        x = state0.x
        first = integ.initial_record(x)
        bar = contextlib.nullcontext()
        if progress:
            from rich.progress import Progress

            bar = Progress(transient=True)
        with bar as prog:
            advance = None
            if progress:
                task = prog.add_task("simulating", total=days)

                def advance():
                    prog.advance(task)

            x, recs, fluxes, comps = integ.run(x, activity, start_day, days, progress=advance)
        nan = torch.full((n, len(integ.acc_cols)), float("nan"), dtype=x.dtype, device=x.device)
        status = _status(x)
        sol = _solution(
            start_day,
            [first, *recs],
            [nan, *fluxes],
            [relative_abundance(state0.x, state0.presence), *comps],
            State(x, state0.presence, state0.growth_rate_per_day, state0.niche),
            status,
        )
        if throw:
            _raise_failed(status)
        return sol


@dataclass(frozen=True)
class StepResult:
    """What :meth:`Simulator.step` returns besides the new state.

    Attributes
    ----------
    day : int
        Protocol day at the end of the step.
    observation : dict of str to Tensor, each ``[patients]``
        Biomarkers and stores at the end of the step (``serum_b12_pmol_l``,
        ``holotc_pmol_l``, ``mma_umol_l``, ``hcy_umol_l``, ...).
    fluxes : dict of str to Tensor, each ``[patients]``
        The fluxes of :data:`DAILY_FLUXES` summed over the step.
    composition : Tensor, shape ``[patients, taxa]``
        Relative abundances at the end of the step.
    status : Tensor of int64, shape ``[patients]``
    """

    day: int
    observation: dict[str, Tensor]
    fluxes: dict[str, Tensor]
    composition: Tensor
    status: Tensor


class Simulator:
    """Stepping interface for controllers: set-up once, then step with any activity.

    >>> sim_ = Simulator(params, protocol, state0)          # doctest: +SKIP
    >>> state, day = sim_.reset()                             # doctest: +SKIP
    >>> state, out = sim_.step(state, action, days=7)         # doctest: +SKIP

    Parameters
    ----------
    params : KineticParams
    protocol : Protocol
        Covers the whole episode (``protocol.days`` ≥ the days stepped).
    state0 : State
        Initial state (e.g. from :func:`~biofluxopt.sim.steady_state`).
    substeps_per_day : int
    cpu_threads_ : int, None or "auto"
        As for :func:`simulate`; chosen once, at construction.
    throw : bool
        Raise :class:`SimulationError` when a step fails for any patient.
    compile : bool
        As for :func:`simulate`: the compiled sub-step (C++ compiler needed; ~15 s once per
        batch shape, then ~2–2.5× faster steps).

    Notes
    -----
    Rates, meal slots and the traced RK4 sub-step are built on the first step and reused, so
    the per-call overhead is the activity's coefficients (a few small tensor operations) and
    the end-of-step records. Steps are whole days; ``state`` carries the day it is at.
    """

    def __init__(
        self,
        params: KineticParams,
        protocol: Protocol,
        state0: State,
        *,
        substeps_per_day: int = 24,
        cpu_threads_: int | str | None = "auto",
        throw: bool = True,
        compile: bool = False,
    ):
        self.params = params
        self.protocol = protocol
        self.state0 = state0
        self.throw = throw
        if compile:
            check_compile(state0.x.device)
        n = state0.x.shape[0]
        self.threads = auto_threads(n, state0.x.device) if cpu_threads_ == "auto" else cpu_threads_
        with cpu_threads(state0.x.device, self.threads):
            self._integ = _Integrator(
                params,
                protocol,
                state0,
                substeps_per_day=substeps_per_day,
                freeze_microbes=False,
                grad=_needs_grad(params, state0.x, None, protocol),
                compile=compile,
            )

    @property
    def action_mask(self) -> Tensor:
        """``[agents, 4]`` bool: the activities each agent has (see :func:`action_mask`)."""
        return action_mask()

    def reset(self) -> tuple[State, int]:
        """The initial state and protocol day 0."""
        return self.state0, 0

    def step(
        self, state: State, action: Tensor | None, day: int, days: int = 1
    ) -> tuple[State, StepResult]:
        """Advance ``days`` days from protocol day ``day`` with activity ``action``.

        Parameters
        ----------
        state : State
        action : Tensor, shape ``[patients, agents, 4]``, or None
            Activity multipliers held over the step (clamped to ``ACTION_RANGE``; an
            activity a taxon does not have must stay 1).
        day : int
            Protocol day the step starts at.
        days : int
            Length of the step (days).
        """
        if day < 0 or day + days > self.protocol.days or days < 1:
            raise SimulationError(
                f"cannot step days {day}–{day + days - 1}: the protocol covers "
                f"{self.protocol.days} days"
            )
        with cpu_threads(state.x.device, self.threads):
            if action is not None:
                action = check_activity(action)
            x, recs, _, comps = self._integ.run(state.x, action, day, days, record="last")
            cols = self._integ.acc_cols
            total = x[:, cols] - state.x[:, cols]
            status = _status(x)
        if self.throw:
            _raise_failed(status)
        new = State(x, state.presence, state.growth_rate_per_day, state.niche)
        return new, StepResult(
            day=day + days,
            observation=recs[-1],
            fluxes={key: total[:, i] for i, key in enumerate(DAILY_FLUXES)},
            composition=comps[-1],
            status=status,
        )

    def observe(self, state: State) -> dict[str, Tensor]:
        """Biomarkers and stores of any state of this batch (each ``[patients]``), as
        :meth:`step` reports them; the colonic propionate feeding MMA is the state's
        instantaneous production at identity activity."""
        with cpu_threads(state.x.device, self.threads):
            return self._integ.initial_record(state.x)


__all__ = [
    "ACCUMULATORS",
    "DAILY_FLUXES",
    "SimulationError",
    "Simulator",
    "Solution",
    "StepResult",
    "action_mask",
    "auto_threads",
    "cpu_threads",
    "n_taxa",
    "simulate",
]
