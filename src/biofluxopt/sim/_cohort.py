"""``simulate_cohort``: one row per person in, the same rows with end-of-run biomarkers out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from biofluxopt._util import DataError

from ._params import POPULATION_SPREAD, sample_params, taxon_ids
from ._protocol import (
    FUT2_LEVELS,
    GASTRIC_LEVELS,
    IF_LEVELS,
    MTHFR_LEVELS,
    TCN2_LEVELS,
    Protocol,
    default_substeps,
    host_factors,
)
from ._solve import simulate
from ._steady import default_composition, steady_state

DIETS = ("omnivore", "vegetarian", "vegan")
CATEGORICAL = {
    "diet": DIETS,
    "intrinsic_factor": IF_LEVELS,
    "gastric_release": GASTRIC_LEVELS,
    "fut2": FUT2_LEVELS,
    "tcn2_776": TCN2_LEVELS,
    "mthfr_677": MTHFR_LEVELS,
}
NUMERIC = ("b12_intake_ug_per_day", "supplement_ug_per_day")
#: Output column → daily record of :class:`~biofluxopt.sim.Solution` taken at the last day.
OUTPUTS = {
    "serum_b12_pmol_l": "serum_b12_pmol_l",
    "holotc_pmol_l": "holotc_pmol_l",
    "mma_umol_l": "mma_umol_l",
    "hcy_umol_l": "hcy_umol_l",
    "liver_store_ug": "liver_store_ug",
    "peripheral_store_ug": "peripheral_store_ug",
    "body_store_ug": "body_store_ug",
    "absorbed_ug_per_day": "absorbed_ug",
    "ileal_free_cobalamin_ug_per_day": "ileal_free_cobalamin_ug",
    "microbial_cobalamin_ug_per_day": "microbial_cobalamin_ug",
    "microbial_analogue_ug_per_day": "microbial_analogue_ug",
    "colon_propionate_mmol_per_day": "colon_propionate_mmol",
}
MEALS_PER_DAY = 3


def _validate(cohort: pd.DataFrame) -> None:
    if not isinstance(cohort, pd.DataFrame):
        raise DataError(
            f"expected a pandas DataFrame, got {type(cohort).__name__}", source="cohort"
        )
    need = ["patient_id", *CATEGORICAL, *NUMERIC]
    missing = [c for c in need if c not in cohort.columns]
    if missing:
        raise DataError(f"missing required column(s) {missing}", source="cohort", field=missing[0])
    if len(cohort) == 0:
        raise DataError("the cohort has no rows", source="cohort")
    for col, levels in CATEGORICAL.items():
        bad = ~cohort[col].isin(levels)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"unknown category {cohort[col].iloc[row]!r} in row {row} "
                f"(allowed: {list(levels)})",
                source="cohort",
                field=col,
            )
    for col in (*NUMERIC, *[t for t in taxon_ids() if t in cohort.columns]):
        vals = pd.to_numeric(cohort[col], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(vals) | (vals < 0)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"value {cohort[col].iloc[row]!r} in row {row} must be a finite number >= 0",
                source="cohort",
                field=col,
            )


def _composition(cohort: pd.DataFrame) -> torch.Tensor:
    ids = taxon_ids()
    present = [t for t in ids if t in cohort.columns]
    if not present:
        return default_composition(len(cohort))
    comp = np.zeros((len(cohort), len(ids)))
    for j, t in enumerate(ids):
        if t in cohort.columns:
            comp[:, j] = cohort[t].to_numpy(dtype=float)
    agents = comp[:, :-1].sum(1)
    if "other" in cohort.columns:
        total = comp.sum(1)
        bad = np.abs(total - 1) > 1e-3
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"relative abundances of row {row} sum to {total[row]:.4f}, not 1",
                source="cohort",
                field="other",
            )
        comp /= total[:, None]
    else:
        bad = agents > 1 + 1e-3
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"relative abundances of row {row} sum to {agents[row]:.4f} > 1",
                source="cohort",
                field="+".join(present),
            )
        comp[:, -1] = np.clip(1 - agents, 0, None)
        comp /= comp.sum(1, keepdims=True)
    return torch.tensor(comp, dtype=torch.float64)


def simulate_cohort(
    cohort: pd.DataFrame,
    *,
    days: int = 365,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
    variability: float = POPULATION_SPREAD,
    substeps_per_day: int | None = None,
    chunk_size: int = 8192,
    start: str = "diet",
) -> pd.DataFrame:
    """Simulate every person of a cohort from their steady state for ``days`` days.

    Parameters
    ----------
    cohort : DataFrame
        One row per person: ``patient_id``; ``diet`` (omnivore | vegetarian | vegan);
        ``b12_intake_ug_per_day`` (food B12, ≥ 0); ``supplement_ug_per_day`` (one daily oral
        crystalline dose with breakfast, ≥ 0); ``intrinsic_factor`` (normal | reduced | absent);
        ``gastric_release`` (normal | impaired); ``fut2`` (secretor | nonsecretor);
        ``tcn2_776`` (CC | CG | GG); ``mthfr_677`` (CC | CT | TT); optional ``age_years``; and
        relative abundances in columns named by the model taxon ids (missing = 0, ``other``
        takes the remainder; with no taxon column at all the HMP-mean default composition is
        used).
    days : int
        Days simulated under intake and supplement, from the steady state of the diet alone.
    seed : int
        Seeds the per-person kinetic-parameter variability (:func:`sample_params`).
    device : str
        ``"cpu"`` or ``"cuda"``.
    progress : bool
        Show a progress bar.
    variability : float
        Scales the inter-individual parameter spread (0 = every person has the defaults;
        default: the calibrated :data:`~biofluxopt.sim._params.POPULATION_SPREAD`).
    substeps_per_day : int, optional
        Integrator resolution; default per batch from :func:`default_substeps` (96 when a
        supplement of ≥ 100 µg can saturate transcobalamin, else 24).
    chunk_size : int
        Patients per batch.
    start : {"diet", "regimen"}, default="diet"
        ``"diet"``: everyone starts from the steady state of their diet alone and takes the
        supplement for ``days`` days (a trial). ``"regimen"``: everyone starts from the steady
        state of diet plus supplement (long-term users, a cross-sectional cohort); the stores
        (turnover ~0.1 %/d) would take years to get there from ``"diet"``.

    Returns
    -------
    DataFrame
        The input columns plus the end-of-run outputs of :data:`OUTPUTS` (serum B12 and holoTC
        in pmol/L, MMA and Hcy in µmol/L, stores in µg, daily fluxes of the last day).

    Raises
    ------
    DataError
        Missing column, unknown category, negative or non-numeric value, bad abundances.
    """
    _validate(cohort)
    if days < 1:
        raise DataError(f"days must be >= 1, got {days}", field="days")
    if start not in ("diet", "regimen"):
        raise DataError(f"start must be 'diet' or 'regimen', got {start!r}", field="start")
    n = len(cohort)
    comp = _composition(cohort)
    params_all = sample_params(n, seed=seed, spread=variability)
    host_all = host_factors(
        n,
        intrinsic_factor=list(cohort["intrinsic_factor"]),
        gastric_release=list(cohort["gastric_release"]),
        fut2=list(cohort["fut2"]),
        tcn2_776=list(cohort["tcn2_776"]),
        mthfr_677=list(cohort["mthfr_677"]),
    )
    food = torch.tensor(cohort["b12_intake_ug_per_day"].to_numpy(dtype=float))
    supp = torch.tensor(cohort["supplement_ug_per_day"].to_numpy(dtype=float))
    results = {key: np.empty(n) for key in OUTPUTS}
    for first in range(0, n, chunk_size):
        idx = slice(first, min(n, first + chunk_size))
        m = idx.stop - idx.start
        oral = torch.zeros(m, days, MEALS_PER_DAY, dtype=torch.float64)
        oral[:, :, 0] = supp[idx].unsqueeze(1)
        protocol = Protocol(
            host_all.index(idx),
            food[idx].unsqueeze(1).expand(m, days).clone(),
            oral,
            torch.zeros(m, days, dtype=torch.float64),
            MEALS_PER_DAY,
        )
        protocol = _to(protocol, device)
        params = params_all.index(idx).to(device)
        steps = substeps_per_day or default_substeps(float(supp[idx].max()), False)
        with torch.no_grad():
            state0 = steady_state(
                params,
                protocol,
                comp[idx].to(device),
                substeps_per_day=steps,
                include_oral=start == "regimen",
            )
            sol = simulate(
                params,
                state0,
                protocol,
                days=days,
                substeps_per_day=steps,
                progress=progress,
            )
        for key, rec in OUTPUTS.items():
            results[key][idx] = sol.daily[rec][:, -1].cpu().numpy()
    out = cohort.copy()
    for key, vals in results.items():
        out[key] = vals
    return out


def _to(protocol: Protocol, device: str) -> Protocol:
    return protocol if device == "cpu" else protocol.to(device)
