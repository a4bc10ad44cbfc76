"""Initial states: the steady state of a patient's diet, host factors and composition.

The slow stores (turnover ~0.1 %/day, years to equilibrate) are solved for directly: a
batched Newton iteration on the day-averaged balance of the liver and peripheral stores. The
fast pools (entry, plasma, lumen) then settle by simulating a few weeks with the community
held fixed, the stores are corrected for what the day-averaged balance missed, and finally the
taxa's intrinsic growth rates are set so that the given composition is a steady state of the
community dynamics.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from biofluxopt._util import ConfigError

from ._model import (
    ACCUMULATORS,
    N_POOLS,
    PMOL_PER_UG,
    State,
    acc_index,
    full_activity,
    meal_absorption,
    n_taxa,
    pool_index,
    rates,
    si_capture,
    taxa_meta,
    unbound,
)
from ._params import KineticParams, taxon_ids
from ._protocol import Protocol
from ._solve import cpu_threads, simulate

#: Relative abundance of a probiotic taxon before it is inoculated (numerically absent).
ABSENT_PROBIOTIC_ABUNDANCE = 1e-18

#: Default composition: mean of the 306 HMP1 primary stool runs (>= 1000 reads) of the
#: shipped HMP table, aggregated with ``biofluxopt.data.aggregate_to_model_taxa`` (stool reads of
#: Propionibacterium/Cutibacterium are skin C. acnes and stay in "other"). Pseudomonas
#: (present in 1.3 % of runs) is kept at a trace so its agent exists; Streptomyces is absent.
DEFAULT_COMPOSITION = {
    "lactobacillus": 0.0001,
    "enterobacteriaceae": 0.0017,
    "pseudomonas": 0.00001,
    "streptomyces": 0.0,
    "clostridiales": 0.2546,
    "veillonellaceae": 0.0232,
    "bacteroidales": 0.6798,
    "akkermansia": 0.0026,
    "bifidobacterium": 0.0008,
}


def default_composition(n_patients: int, *, dtype=torch.float64, device="cpu") -> Tensor:
    """:data:`DEFAULT_COMPOSITION` as ``[patients, taxa]`` ("other" takes the remainder)."""
    comp = torch.tensor([DEFAULT_COMPOSITION.get(t, 0.0) for t in taxon_ids()], dtype=dtype)
    comp[-1] = 1.0 - comp[:-1].sum()
    return comp.to(device).expand(n_patients, -1).clone()


def _store_balance(logL, logP, k, food_ug, m, extra_absorbed, cap):
    """Day-averaged net change of liver and peripheral stores (µg/day)."""
    L, P = torch.exp(logL), torch.exp(logP)
    ileal = (k.gastric * food_ug + k.k_bile * L) / m
    absorbed = m * meal_absorption(ileal, k, None, cap)[0] + extra_absorbed
    rel_l = k.k_rel * L / (1 + L / k.k_sat)
    rel_p = k.k_rel * P / (1 + P / k.k_sat)
    rel = rel_l + rel_p
    delivery = (1 - k.phi) * rel + absorbed
    f1 = k.f_liver * delivery + k.phi * rel - rel_l - k.k_bile * L
    f2 = (1 - k.f_liver) * delivery - rel_p - k.k_loss * P
    return f1, f2, absorbed, rel


def _solve_stores(k, food_ug, m, extra_absorbed, cap, iters: int = 60):
    n = food_ug.shape[0]
    logL = torch.full((n,), math.log(1250.0), dtype=food_ug.dtype, device=food_ug.device)
    logP = logL.clone()
    eps = 1e-6
    floor = math.log(1e-6)
    for _ in range(iters):
        f1, f2, _, _ = _store_balance(logL, logP, k, food_ug, m, extra_absorbed, cap)
        a1, a2, _, _ = _store_balance(logL + eps, logP, k, food_ug, m, extra_absorbed, cap)
        b1, b2, _, _ = _store_balance(logL, logP + eps, k, food_ug, m, extra_absorbed, cap)
        j11, j21 = (a1 - f1) / eps, (a2 - f2) / eps
        j12, j22 = (b1 - f1) / eps, (b2 - f2) / eps
        det = j11 * j22 - j12 * j21
        dl = (j22 * f1 - j12 * f2) / det
        dp = (-j21 * f1 + j11 * f2) / det
        logL = (logL - dl.clamp(-2, 2)).clamp_min(floor)
        logP = (logP - dp.clamp(-2, 2)).clamp_min(floor)
    return logL, logP


def _fast_pools(logL, logP, k, food_ug, m, extra_absorbed, cap):
    """Quasi-steady entry and plasma pools for given stores (binders far from saturation)."""
    _, _, absorbed, rel = _store_balance(logL, logP, k, food_ug, m, extra_absorbed, cap)
    E = absorbed / k.k_entry
    inflow_tc, inflow_hc = (1 - k.phi) * rel + absorbed, k.phi * rel
    T, H = inflow_tc / k.k_tc, inflow_hc / k.k_hc
    # balance including the (tiny, unless saturated) unbound part cleared by the kidney
    for _ in range(4):
        u_t = unbound(T, k.tc_capacity, k.free_width)
        u_h = unbound(H, k.hc_capacity, k.free_width)
        T = (inflow_tc - (k.k_renal + k.k_hc_bind - k.k_tc) * u_t) / k.k_tc
        H = (inflow_hc - (k.k_renal - k.k_hc) * u_h) / k.k_hc
    return E, T.clamp_min(0.0), H.clamp_min(0.0)


def steady_state(
    params: KineticParams,
    protocol: Protocol,
    composition: Tensor | None = None,
    *,
    baseline_serum_b12_pmol_l: Tensor | None = None,
    settle_days: int = 28,
    substeps_per_day: int = 24,
    include_oral: bool = False,
) -> State:
    """Pre-intervention steady state of each patient.

    Parameters
    ----------
    params : KineticParams
    protocol : Protocol
        Host factors and diet; the steady state uses day 0's food B12 without supplements
        (with ``include_oral``: plus day 0's oral doses, taken every day).
    composition : Tensor, shape ``[patients, taxa]``, optional
        Baseline relative abundances (``taxon_ids()`` order, rows sum to 1); defaults to
        :func:`default_composition`. Absent taxa (0) stay absent.
    baseline_serum_b12_pmol_l : Tensor, shape ``[patients]``, optional
        If given, the stores are scaled (liver and peripheral alike) so that the quasi-steady
        serum B12 equals it; plasma pools start in their quasi-steady ratio.
    settle_days, substeps_per_day : int
        Length and resolution of the settling simulation of the fast pools.
    include_oral : bool, default=False
        Steady state of the whole daily regimen: day 0's oral doses are taken every day (a
        long-term supplement user, e.g. in a cross-sectional cohort). Stores, plasma pools and
        the microbes' growth rates then balance food plus supplement; the baseline composition
        is the equilibrium under that regimen.

    Returns
    -------
    State
    """
    with cpu_threads(protocol.food_ug_per_day.device, 1):
        n = protocol.n_patients
        dtype, device = protocol.food_ug_per_day.dtype, protocol.food_ug_per_day.device
        if composition is None:
            composition = default_composition(n, dtype=dtype, device=device)
        comp = composition.to(dtype=dtype, device=device)
        comp = comp / comp.sum(-1, keepdim=True).clamp_min(1e-30)
        resident = taxa_meta().resident.to(device)
        if bool(((comp > 0) & ~resident).any()):
            names = [t for t, r in zip(taxon_ids(), resident.tolist(), strict=True) if not r]
            raise ConfigError(
                f"{', '.join(names)} is not a gut resident and cannot be in a baseline "
                "composition; inoculate it with a probiotic regimen instead",
                field="composition",
            )
        # A transient probiotic taxon is 'present' (it can be inoculated) at a vanishing
        # abundance until it is.
        presence = ((comp > 0) | ~resident).to(dtype)
        logn = torch.where(
            comp > 0,
            torch.log(comp.clamp_min(1e-300)),
            torch.where(resident, 0.0, math.log(ABSENT_PROBIOTIC_ABUNDANCE)).to(dtype),
        )
        k = rates(params, protocol.host)
        m = protocol.meals_per_day
        food = protocol.food_ug_per_day[:, 0]
        act = full_activity(None, n, dtype=dtype, device=device)
        if include_oral:
            oral = protocol.oral_ug[:, :1].expand(n, settle_days, m)
        else:
            oral = torch.zeros(n, settle_days, m, dtype=dtype, device=device)
        settle = Protocol(
            protocol.host,
            food.unsqueeze(1).expand(n, settle_days),
            oral,
            torch.zeros(n, settle_days, dtype=dtype, device=device),
            m,
        )

        x = torch.zeros(n, N_POOLS + n_taxa() + len(ACCUMULATORS), dtype=dtype, device=device)
        x = torch.cat([x[:, :N_POOLS], logn, x[:, N_POOLS + n_taxa() :]], 1)
        zeros = torch.zeros(n, dtype=dtype, device=device)
        cap = si_capture(x, k, act, presence)
        extra = zeros
        growth = torch.zeros_like(comp)
        # Each pass solves the stores for food plus ``extra`` absorption, settles the fast pools
        # and measures what the day-averaged balance missed. A regimen with supplements needs one
        # more pass: the first has no estimate yet of how much of the dose is absorbed.
        passes = [settle_days, settle_days // 2]
        if include_oral:
            passes.append(settle_days // 2)
        for days in passes:
            logL, logP = _solve_stores(k, food, m, extra, cap)
            E, T, H = _fast_pools(logL, logP, k, food, m, extra, cap)
            pools = x[:, :N_POOLS]
            pools = torch.stack(
                [E, T, H, torch.exp(logL), torch.exp(logP), *pools[:, 5:].unbind(-1)], -1
            )
            x = torch.cat([pools, logn, torch.zeros_like(x[:, N_POOLS + n_taxa() :])], 1)
            sol = simulate(
                params,
                State(x, presence, growth),
                settle,
                days=days,
                substeps_per_day=substeps_per_day,
                freeze_microbes=True,
                throw=False,
            )
            x_end = sol.state.x
            # what the day-averaged balance missed: absorbed per day on the last settled day
            measured = sol.daily["absorbed_ug"][:, -1]
            _, _, analytic, _ = _store_balance(
                torch.log(x_end[:, pool_index("liver_ug")]),
                torch.log(x_end[:, pool_index("peripheral_ug")]),
                k,
                food,
                m,
                extra,
                cap,
            )
            extra = extra + (measured - analytic)
            x = x_end
        x = torch.cat([x[:, : N_POOLS + n_taxa()], torch.zeros_like(x[:, N_POOLS + n_taxa() :])], 1)

        if baseline_serum_b12_pmol_l is not None:
            x = _scale_to_serum(x, k, baseline_serum_b12_pmol_l.to(dtype=dtype, device=device))

        # growth rates that make the baseline composition a steady state (act = identity)
        Z = x[:, pool_index("colon_cobalamin_ug")] + x[:, pool_index("colon_analogue_ug")]
        monod = Z.unsqueeze(-1) / (k.km.unsqueeze(-1) + Z.unsqueeze(-1))
        w = k.growth_dependence
        need = k.k_fec.unsqueeze(-1) + k.maintenance_cost(act)  # washout + cost at identity
        dependence = (1 - w) + w * monod
        # residents balance washout and cost; a probiotic falls at its clearance rate
        need = need - (1 - k.resident) * k.probiotic_clearance.unsqueeze(-1)
        growth = presence * need.clamp_min(0.0) / dependence
        # The colonic pools swing within a day (meals), so the day-end Monod terms are not quite the
        # day average: remove the residual daily drift of each log abundance (fixed-point, 2 days).
        one_day = Protocol(
            settle.host,
            settle.food_ug_per_day[:, :1],
            settle.oral_ug[:, :1],
            settle.im_ug[:, :1],
            m,
        )
        y0 = x[:, N_POOLS : N_POOLS + n_taxa()]
        for _ in range(2):
            sol = simulate(
                params,
                State(x, presence, growth),
                one_day,
                days=1,
                substeps_per_day=substeps_per_day,
                throw=False,
            )
            drift = sol.state.x[:, N_POOLS : N_POOLS + n_taxa()] - y0
            growth = growth - presence * k.resident * drift / dependence
        return State(x, presence, growth, logn)


def _scale_to_serum(x: Tensor, k: dict, target: Tensor) -> Tensor:
    """Scale both stores by one factor so that quasi-steady serum B12 equals ``target``."""
    iL, iP = pool_index("liver_ug"), pool_index("peripheral_ug")
    L0, P0, E = x[:, iL], x[:, iP], x[:, pool_index("entry_ug")]
    absorbed = k.k_entry * E

    def serum(logc):
        c = torch.exp(logc)
        L, P = c * L0, c * P0
        rel = k.k_rel * (L / (1 + L / k.k_sat) + P / (1 + P / k.k_sat))
        T = ((1 - k.phi) * rel + absorbed) / k.k_tc
        H = k.phi * rel / k.k_hc
        return (T + H) * PMOL_PER_UG / k.volume, T, H

    lo = torch.full_like(target, -15.0)
    hi = torch.full_like(target, 5.0)
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        s, _, _ = serum(mid)
        below = s < target
        lo = torch.where(below, mid, lo)
        hi = torch.where(below, hi, mid)
    logc = 0.5 * (lo + hi)
    _, T, H = serum(logc)
    c = torch.exp(logc)
    cols = {pool_index("holotc_ug"): T, pool_index("holohc_ug"): H, iL: c * L0, iP: c * P0}
    pools = torch.stack([cols.get(i, x[:, i]) for i in range(N_POOLS)], -1)
    return torch.cat([pools, x[:, N_POOLS:]], 1)


__all__ = ["DEFAULT_COMPOSITION", "acc_index", "default_composition", "steady_state"]
