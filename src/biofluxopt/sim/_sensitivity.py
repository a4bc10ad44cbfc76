"""Leverage and sensitivity of the B12 model: how much day-N serum B12 (and MMA) responds to
each kinetic parameter over its plausible range and to each agent activity multiplier over
its action range.

Three analyses, all on one protocol (its first patient's host factors, diet and supplements,
with the *calibrated default* kinetic parameters plus the protocol's ``[parameters]``
overrides):

``local_sensitivity``
    Exact derivatives by autograd through the steady state and the whole simulation:
    elasticities ``∂y/∂p · p/y`` and linearised swings over the plausible range
    ``∂y/∂p · (high − low)`` (for multipliers ``∂y/∂ln m · ln(4/0.25)``).
``sobol_indices``
    Global first-order and total Sobol indices (Saltelli/Jansen estimators from SALib) over
    the ``top_k`` kinetic parameters with the largest local swing plus every agent activity
    multiplier, each sampled uniformly over its range (log-uniform where the range spans
    more than a factor of 3, and for all multipliers).
``microbial_leverage``
    The largest change in day-N serum B12 that the microbial activities *alone* can produce:
    every multiplier at its most favourable bound (sign of the gradient at identity), checked
    against random corners of the action box, vs identity.

The patients of a Sobol design or a set of corners are simulated as one batch, so the cost is
a few batched simulations, not thousands of sequential ones. This module only computes; the
files and the figure of ``biofluxopt sensitivity`` are written by :mod:`._report`.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from biofluxopt._util import ConfigError
from biofluxopt.knowledge import agent_taxa

from ._leverage import lever_index, levers
from ._params import KineticParams, default_params, parameter_table
from ._protocol import ACTION_RANGE, ACTIVITIES, ProtocolSpec, build_protocol
from ._run import protocol_activity, protocol_composition
from ._solve import simulate
from ._steady import steady_state

OUTPUTS = ("serum_b12_pmol_l", "mma_umol_l")
_LOG_RANGE_RATIO = 3.0  # sample log-uniformly when high/low exceeds this


# ---------------------------------------------------------------------------------------------
# Evaluating a batch of parameter sets / multipliers on one protocol
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Setting:
    """One protocol, ready to evaluate in batches."""

    spec: ProtocolSpec
    day: int
    device: str

    @cached_property
    def single(self) -> ProtocolSpec:
        """The protocol for one patient (its composition and activity rows are per patient)."""
        return self.spec.model_copy(update={"patients": 1})

    def base_params(self, n: int) -> KineticParams:
        params = default_params(n, device=self.device)
        if self.spec.parameters:
            params = params.replace(**self.spec.parameters)
        return params

    def base_log_activity(self, n: int) -> Tensor:
        """Log multipliers ``[n, agents, 4]`` of the protocol's ``[activity]`` (0 = identity)."""
        act = protocol_activity(self.single, device=self.device)
        n_agents = len(agent_taxa())
        if act is None:
            return torch.zeros(
                n, n_agents, len(ACTIVITIES), dtype=torch.float64, device=self.device
            )
        return act.log().expand(n, -1, -1).clone()

    def evaluate(
        self, params: KineticParams, log_activity: Tensor
    ) -> tuple[dict[str, Tensor], Tensor]:
        """Day-``day`` outputs ``{name: [n]}`` and status ``[n]`` of a batch.

        Kinetic parameters move the pre-intervention steady state too; activity multipliers act
        from day 0 on (the baseline community is the identity steady state).
        """
        n = params.n_patients
        protocol = build_protocol(self.spec, n_patients=n, device=self.device)
        comp = protocol_composition(self.single, device=self.device).expand(n, -1)
        baseline = self.spec.host.baseline_serum_b12_pmol_l
        target = (
            None
            if baseline is None
            else torch.full((n,), baseline, dtype=torch.float64, device=self.device)
        )
        state0 = steady_state(
            params,
            protocol,
            comp,
            baseline_serum_b12_pmol_l=target,
            substeps_per_day=self.spec.substeps_per_day,
        )
        sol = simulate(
            params,
            state0,
            protocol,
            days=self.day,
            activity=log_activity.exp(),
            substeps_per_day=self.spec.substeps_per_day,
            throw=False,
        )
        return {k: sol.daily[k][:, -1] for k in OUTPUTS}, sol.status


def _check_n_base(n_base: int) -> None:
    if n_base < 2 or n_base & (n_base - 1):
        raise ConfigError(f"must be a power of two >= 2 (got {n_base})", field="--sobol-n / n_base")


def _setting(spec: ProtocolSpec, day: int, device: str) -> _Setting:
    if not 1 <= day <= spec.days:
        raise ConfigError(
            f"day {day} is outside the protocol's 1–{spec.days} days; lower --day or "
            "lengthen the protocol",
            field="day",
        )
    return _Setting(spec, day, device)


# ---------------------------------------------------------------------------------------------
# Local sensitivities (autograd)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalSensitivity:
    """Derivatives of day-``day`` serum B12 and MMA at the protocol's nominal point.

    Attributes
    ----------
    day : int
        The differentiated protocol day.
    nominal : dict of str to float
        Day-``day`` value of each output (``serum_b12_pmol_l``, ``mma_umol_l``) at the
        nominal parameters and multipliers.
    table : pandas.DataFrame
        One row per factor with columns ``factor``, ``kind`` ("kinetic" | "activity"),
        ``group``, ``unit``, ``nominal``, ``low``, ``high``, ``grade`` and, for each output
        ``y``: ``d_{y}`` (∂y/∂p; for multipliers ∂y/∂ln m), ``elasticity_{y}``
        (∂ ln y/∂ ln p) and ``swing_{y}`` (linearised change of y over the factor's whole
        range, in y's unit). Sorted by ``|swing_serum_b12_pmol_l|``, largest first.
    """

    day: int
    nominal: dict[str, float]
    table: pd.DataFrame


def local_sensitivity(
    spec: ProtocolSpec, *, day: int = 90, device: str = "cpu"
) -> LocalSensitivity:
    """Derivatives of day-``day`` serum B12 and MMA with respect to every kinetic parameter and
    every agent activity multiplier, by reverse-mode autograd.

    Parameters
    ----------
    spec : ProtocolSpec
        The protocol (its host factors, diet, supplements, microbiome, activity and parameter
        overrides; ``patients`` is ignored: one typical patient with default parameters).
    day : int, default=90
        Protocol day whose serum B12 / MMA is differentiated (1 ≤ day ≤ ``spec.days``).
    device : str, default="cpu"

    Returns
    -------
    LocalSensitivity
        The nominal outputs and one row of derivatives per factor.

    Raises
    ------
    ConfigError
        ``day`` is outside the protocol, or the nominal simulation fails.
    """
    setting = _setting(spec, day, device)
    params = setting.base_params(1)
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in params.values.items()}
    log_act = setting.base_log_activity(1).requires_grad_(True)
    outputs, status = setting.evaluate(KineticParams(leaves), log_act)
    if int(status[0]) != 0:
        raise ConfigError(
            "the nominal simulation failed; raise substeps_per_day in the protocol",
            field="substeps_per_day",
        )
    inputs = [*leaves.values(), log_act]
    grads = {}
    for i, name in enumerate(OUTPUTS):
        g = torch.autograd.grad(
            outputs[name].sum(), inputs, retain_graph=i < len(OUTPUTS) - 1, allow_unused=True
        )
        grads[name] = [
            torch.zeros_like(x) if gi is None else gi for gi, x in zip(g, inputs, strict=True)
        ]
    y0 = {k: float(v.detach()[0]) for k, v in outputs.items()}

    rows = []
    table = {p.id: p for p in parameter_table()}
    for j, (pid, leaf) in enumerate(leaves.items()):
        p = table[pid]
        nominal = float(leaf.detach()[0])
        row = dict(
            factor=pid,
            kind="kinetic",
            group=p.group,
            unit=p.unit,
            nominal=nominal,
            low=p.low,
            high=p.high,
            grade=p.grade,
        )
        for name in OUTPUTS:
            d = float(grads[name][j][0])
            row[f"d_{name}"] = d
            row[f"elasticity_{name}"] = d * nominal / y0[name] if y0[name] else math.nan
            row[f"swing_{name}"] = d * (p.high - p.low)
        rows.append(row)
    lo, hi = ACTION_RANGE
    pairs = levers()
    agent_index, activity_index = lever_index(pairs)
    nominal_m = log_act.detach()[0, agent_index, activity_index].exp()
    d_log_m = {name: grads[name][-1][0, agent_index, activity_index] for name in OUTPUTS}
    for j, (agent, activity) in enumerate(pairs):
        row = dict(
            factor=f"{agent}.{activity}",
            kind="activity",
            group="activity",
            unit="×",
            nominal=float(nominal_m[j]),
            low=lo,
            high=hi,
            grade="-",
        )
        for name in OUTPUTS:
            d = float(d_log_m[name][j])  # ∂y/∂ln m
            row[f"d_{name}"] = d
            row[f"elasticity_{name}"] = d / y0[name] if y0[name] else math.nan
            row[f"swing_{name}"] = d * math.log(hi / lo)
        rows.append(row)
    frame = pd.DataFrame(rows)
    order = frame["swing_serum_b12_pmol_l"].abs().sort_values(ascending=False).index
    return LocalSensitivity(day=day, nominal=y0, table=frame.loc[order].reset_index(drop=True))


# ---------------------------------------------------------------------------------------------
# Global Sobol indices (SALib)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SobolResult:
    """Sobol indices of day-``day`` serum B12 and MMA.

    Attributes
    ----------
    indices : pandas.DataFrame
        One row per factor: ``factor``, ``kind``, ``low``, ``high``, ``log_scale`` and, per
        output, ``S1``, ``S1_conf``, ``ST``, ``ST_conf`` (95 % bootstrap half-widths).
    n_base : int
        SALib base sample size N; the design has ``N · (D + 2)`` rows.
    n_runs : int
        Simulated patients of the design, ``N · (D + 2)``.
    n_failed : int
        Simulations that failed (their outputs were replaced by the design median).
    """

    indices: pd.DataFrame
    n_base: int
    n_runs: int
    n_failed: int


def _sobol_factors(local: LocalSensitivity, top_k: int) -> pd.DataFrame:
    """The screened factors: ``top_k`` kinetic parameters by |serum swing| (those with a
    range), then every activity multiplier; log-scaled where the range spans > ×3."""
    table = local.table
    kinetic = table[(table["kind"] == "kinetic") & (table["high"] > table["low"])]
    chosen = kinetic.head(top_k)
    acts = table[table["kind"] == "activity"]
    factors = pd.concat([chosen, acts])[["factor", "kind", "low", "high", "nominal"]].copy()
    ratio = factors["high"] / factors["low"].where(factors["low"] > 0)
    factors["log_scale"] = (factors["kind"] == "activity") | (ratio > _LOG_RANGE_RATIO)
    return factors.reset_index(drop=True)


def _natural_values(design: np.ndarray, log_scale: np.ndarray) -> np.ndarray:
    """Factor values of a design ``[runs, factors]`` sampled in log space where ``log_scale``.

    Only the log-scaled columns are exponentiated: ``exp`` of a linear-scale column (a bound
    above ~709 overflows) is never evaluated.
    """
    values = design.copy()
    values[:, log_scale] = np.exp(design[:, log_scale])
    return values


def sobol_indices(
    spec: ProtocolSpec,
    local: LocalSensitivity,
    *,
    top_k: int = 12,
    n_base: int = 64,
    batch_size: int = 2048,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
) -> SobolResult:
    """Global first-order and total Sobol indices by Saltelli sampling.

    Parameters
    ----------
    spec : ProtocolSpec
    local : LocalSensitivity
        :func:`local_sensitivity` of the same protocol; its day is the analysed day, and the
        ``top_k`` kinetic parameters with the largest serum swing enter the design
        (screening).
    top_k : int, default=12
        Kinetic parameters kept after local screening; all activity multipliers always enter.
    n_base : int, default=64
        SALib base sample size (a power of two); the cost is ``n_base · (D + 2)`` simulated
        patients, D = number of factors. Confidence half-widths shrink like ``1/√n_base``.
    batch_size : int, default=2048
        Patients simulated per batch.
    seed : int, default=0
        Seeds the scrambled Sobol sequence and the bootstrap of the confidence intervals.
    device : str, default="cpu"
    progress : bool, default=False
        Show a progress bar over the design.

    Returns
    -------
    SobolResult

    Raises
    ------
    ConfigError
        ``n_base`` is not a power of two ≥ 2, or every simulation of the design failed.
    """
    from SALib.analyze import sobol as sobol_analyze
    from SALib.sample import sobol as sobol_sample

    _check_n_base(n_base)
    setting = _setting(spec, local.day, device)
    factors = _sobol_factors(local, top_k)
    bounds = [
        [math.log(lo), math.log(hi)] if log else [lo, hi]
        for lo, hi, log in zip(factors["low"], factors["high"], factors["log_scale"], strict=True)
    ]
    problem = {"num_vars": len(factors), "names": list(factors["factor"]), "bounds": bounds}
    design = sobol_sample.sample(problem, n_base, calc_second_order=False, seed=seed)
    values = _natural_values(design, factors["log_scale"].to_numpy(dtype=bool))

    is_kinetic = (factors["kind"] == "kinetic").to_numpy()
    kinetic_cols = np.flatnonzero(is_kinetic)
    activity_cols = np.flatnonzero(~is_kinetic)
    agent_index, activity_index = lever_index(
        [tuple(factors["factor"][j].split(".")) for j in activity_cols]
    )
    outputs = {name: np.empty(len(values)) for name in OUTPUTS}
    failed = np.zeros(len(values), dtype=bool)
    bar = contextlib.nullcontext()
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True)
    with bar as prog, torch.no_grad():
        task = prog.add_task("Sobol design", total=len(values)) if progress else None
        for start in range(0, len(values), batch_size):
            chunk = torch.as_tensor(values[start : start + batch_size], dtype=torch.float64)
            chunk = chunk.to(device)
            n = len(chunk)
            params = setting.base_params(n)
            log_act = setting.base_log_activity(n)
            overrides = {factors["factor"][j]: chunk[:, j] for j in kinetic_cols}
            log_act[:, agent_index, activity_index] = chunk[:, activity_cols].log()
            out, status = setting.evaluate(params.replace(**overrides), log_act)
            failed[start : start + n] = status.cpu().numpy() != 0
            for name in OUTPUTS:
                outputs[name][start : start + n] = out[name].cpu().numpy()
            if task is not None:
                prog.advance(task, n)

    rows = {name: {} for name in OUTPUTS}
    for name, y in outputs.items():
        bad = failed | ~np.isfinite(y)
        if bad.all():
            raise ConfigError(
                "every simulation of the Sobol design failed", field="substeps_per_day"
            )
        # SALib needs a complete design: failed runs (reported in n_failed) get the median.
        y = np.where(bad, np.median(y[~bad]), y)
        res = sobol_analyze.analyze(
            problem, y, calc_second_order=False, num_resamples=200, conf_level=0.95, seed=seed
        )
        rows[name] = res
    table = factors[["factor", "kind", "low", "high", "log_scale"]].copy()
    for name in OUTPUTS:
        for key in ("S1", "S1_conf", "ST", "ST_conf"):
            table[f"{key}_{name}"] = rows[name][key]
    table = table.sort_values("ST_serum_b12_pmol_l", ascending=False).reset_index(drop=True)
    n_failed = int((failed | ~np.isfinite(outputs["serum_b12_pmol_l"])).sum())
    return SobolResult(table, n_base=n_base, n_runs=len(values), n_failed=n_failed)


# ---------------------------------------------------------------------------------------------
# Microbial leverage
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Leverage:
    """How far the microbial agents alone can move day-``day`` serum B12.

    Attributes
    ----------
    serum_identity_pmol_l, serum_best_pmol_l, serum_worst_pmol_l : float
        Day-``day`` serum B12 with all multipliers at 1, at the most favourable corner found,
        and at the least favourable corner found.
    gain_pmol_l, gain_percent : float
        ``best − identity`` in pmol/L and as % of identity.
    loss_pmol_l, loss_percent : float
        ``worst − identity`` (≤ 0).
    mma_identity_umol_l, mma_best_umol_l : float
        MMA at identity and at the most favourable corner.
    best_multipliers : dict
        ``{"agent.activity": multiplier}`` of the most favourable corner.
    n_corners : int
        Corners of the action box evaluated (gradient-signed, its mirror, all-up, all-down and
        seeded random corners).
    """

    day: int
    serum_identity_pmol_l: float
    serum_best_pmol_l: float
    serum_worst_pmol_l: float
    gain_pmol_l: float
    gain_percent: float
    loss_pmol_l: float
    loss_percent: float
    mma_identity_umol_l: float
    mma_best_umol_l: float
    best_multipliers: dict[str, float] = field(default_factory=dict)
    n_corners: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def microbial_leverage(
    spec: ProtocolSpec,
    *,
    day: int = 90,
    local: LocalSensitivity | None = None,
    n_random_corners: int = 64,
    seed: int = 0,
    device: str = "cpu",
) -> Leverage:
    """Largest change of day-``day`` serum B12 the agents' activity multipliers alone produce.

    The favourable corner sets each multiplier to ×4 where ∂serum/∂ln m > 0 at identity and to
    ×0.25 otherwise; since the response need not be monotone or separable, the mirror corner,
    the all-×4 and all-×0.25 corners and ``n_random_corners`` seeded random corners are
    evaluated in the same batch and the best and worst found are reported.

    Parameters
    ----------
    spec : ProtocolSpec
    day : int, default=90
    local : LocalSensitivity, optional
        :func:`local_sensitivity` of the same protocol and day (computed when omitted).
    n_random_corners : int, default=64
    seed : int, default=0
        Seeds the random corners.
    device : str, default="cpu"

    Returns
    -------
    Leverage

    Raises
    ------
    ConfigError
        ``day`` is outside the protocol, or the identity simulation fails.
    ValueError
        ``local`` was computed for another day.
    """
    setting = _setting(spec, day, device)
    if local is None:
        local = local_sensitivity(spec, day=day, device=device)
    elif local.day != day:
        raise ValueError(f"local sensitivities of day {local.day} given for day {day}")
    pairs = levers()
    table = local.table.set_index("factor")
    grad = table.loc[[f"{a}.{b}" for a, b in pairs], "d_serum_b12_pmol_l"]
    lo, hi = math.log(ACTION_RANGE[0]), math.log(ACTION_RANGE[1])
    signs = np.where(grad.to_numpy() > 0, 1.0, -1.0)
    gen = np.random.default_rng(seed)
    corners = np.vstack(
        [
            np.zeros(len(pairs)),  # identity
            signs,
            -signs,
            np.ones(len(pairs)),
            -np.ones(len(pairs)),
            gen.choice([-1.0, 1.0], size=(n_random_corners, len(pairs))),
        ]
    )
    logm = np.where(corners > 0, hi, np.where(corners < 0, lo, 0.0))
    n = len(logm)
    log_act = setting.base_log_activity(n)
    agent_index, activity_index = lever_index(pairs)
    log_act[:, agent_index, activity_index] = torch.as_tensor(
        logm, dtype=torch.float64, device=device
    )
    with torch.no_grad():
        out, status = setting.evaluate(setting.base_params(n), log_act)
    serum = out["serum_b12_pmol_l"].cpu().numpy()
    mma = out["mma_umol_l"].cpu().numpy()
    ok = (status.cpu().numpy() == 0) & np.isfinite(serum)
    if not ok[0]:
        raise ConfigError(
            "the identity simulation failed; raise substeps_per_day", field="substeps_per_day"
        )
    serum_ok = np.where(ok, serum, np.nan)
    best, worst = int(np.nanargmax(serum_ok)), int(np.nanargmin(serum_ok))
    s0 = float(serum[0])
    return Leverage(
        day=day,
        serum_identity_pmol_l=s0,
        serum_best_pmol_l=float(serum[best]),
        serum_worst_pmol_l=float(serum[worst]),
        gain_pmol_l=float(serum[best] - s0),
        gain_percent=float(100 * (serum[best] - s0) / s0),
        loss_pmol_l=float(serum[worst] - s0),
        loss_percent=float(100 * (serum[worst] - s0) / s0),
        mma_identity_umol_l=float(mma[0]),
        mma_best_umol_l=float(mma[best]),
        best_multipliers={
            f"{a}.{b}": float(math.exp(logm[best, j])) for j, (a, b) in enumerate(pairs)
        },
        n_corners=n - 1,
    )


def leverage_scenarios(days: int = 90, substeps_per_day: int = 24) -> dict[str, ProtocolSpec]:
    """The three reference patients of docs/validation.md's microbial-leverage table.

    ``omnivore``: 6 µg/day food B12 (Western omnivore supply, Greibe 2018); ``vegan``: 0.5 µg/day
    (EPIC-Oxford estimate, [U] in b12_facts E); ``if_reduced``: the omnivore with reduced
    intrinsic factor. No supplements, default composition, identity baseline.
    """
    base = {"days": days, "patients": 1, "substeps_per_day": substeps_per_day}
    return {
        "omnivore": ProtocolSpec.model_validate({**base, "diet": {"b12_ug_per_day": 6.0}}),
        "vegan": ProtocolSpec.model_validate({**base, "diet": {"b12_ug_per_day": 0.5}}),
        "if_reduced": ProtocolSpec.model_validate(
            {**base, "diet": {"b12_ug_per_day": 6.0}, "host": {"intrinsic_factor": "reduced"}}
        ),
    }


# ---------------------------------------------------------------------------------------------
# Everything together, with files
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SensitivityResult:
    """Local sensitivities, Sobol indices and microbial leverage of one protocol.

    Attributes
    ----------
    day : int
        The analysed protocol day.
    local : LocalSensitivity
    sobol : SobolResult or None
        ``None`` when the global analysis was skipped.
    leverage : Leverage
    """

    day: int
    local: LocalSensitivity
    sobol: SobolResult | None
    leverage: Leverage

    def save(self, directory: str | Path) -> None:
        """Write ``local.csv``, ``sobol.csv`` (if computed), ``leverage.json`` and
        ``sensitivity.png`` into an existing directory (see
        :func:`~biofluxopt.sim.write_sensitivity_report`)."""
        from ._report import write_sensitivity_report

        write_sensitivity_report(self, directory)


def sensitivity_analysis(
    spec: ProtocolSpec,
    *,
    day: int = 90,
    sobol: bool = True,
    top_k: int = 12,
    n_base: int = 64,
    n_random_corners: int = 64,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
) -> SensitivityResult:
    """Run :func:`local_sensitivity`, :func:`sobol_indices` (optional) and
    :func:`microbial_leverage` on one protocol; see those for the arguments."""
    if sobol:
        _check_n_base(n_base)  # before the costly local analysis, not after
    local = local_sensitivity(spec, day=day, device=device)
    sob = (
        sobol_indices(
            spec,
            local,
            top_k=top_k,
            n_base=n_base,
            seed=seed,
            device=device,
            progress=progress,
        )
        if sobol
        else None
    )
    lev = microbial_leverage(
        spec, day=day, local=local, n_random_corners=n_random_corners, seed=seed, device=device
    )
    return SensitivityResult(day=day, local=local, sobol=sob, leverage=lev)
