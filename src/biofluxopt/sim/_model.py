"""The host–microbiome B12 kinetic model: state layout, right-hand side and dosing impulses.

All functions are batched over patients (leading axis) and written with out-of-place torch
operations only, so they are differentiable end to end and run on CPU or CUDA. The same
:func:`rhs_fast` (with :func:`coefficients`), :func:`apply_meal` and :func:`apply_injection`
are used by the fast fixed-step integrator (``_solve.py``) and by the scipy reference
integrator (``_reference.py``).

Units: µg of corrinoid, days, µmol/L, pmol/L, mmol/day. Equations: docs/sim.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

from biofluxopt.knowledge import load_taxa

from ._params import TAXON_QUANTITIES, KineticParams, taxon_ids
from ._protocol import ACTIVITIES, HostFactors

#: µg of cobalamin → pmol (molar mass of cyanocobalamin 1355.37 g/mol, b12_facts header).
PMOL_PER_UG = 1e6 / 1355.37

POOLS = (
    "entry_ug",  # newly absorbed / injected B12 on its way to plasma (enterocyte, IM depot)
    "holotc_ug",  # plasma holotranscobalamin
    "holohc_ug",  # plasma holohaptocorrin
    "liver_ug",  # liver store
    "peripheral_ug",  # peripheral tissue store (intracellular status for MMA/Hcy)
    "si_cobalamin_ug",  # free true cobalamin in the small-intestinal lumen (bile, microbes)
    "si_analogue_ug",  # corrinoid analogues in the small-intestinal lumen
    "colon_cobalamin_ug",  # free true cobalamin in the colon lumen
    "colon_analogue_ug",  # free corrinoid analogues in the colon lumen
)
ACCUMULATORS = (
    "intake_ug",  # oral true cobalamin ingested (food + supplements)
    "im_dose_ug",  # injected
    "im_retained_ug",  # injected and retained
    "urine_ug",  # injected and spilled into urine
    "absorbed_ug",  # absorbed from the gut (ileal IF + passive + colonic)
    "colonic_absorbed_ug",
    "ileal_free_ug",  # true cobalamin reaching the ileum (food, supplement, bile, SI microbes)
    "faecal_cobalamin_ug",  # true cobalamin leaving with faeces (free + bacteria-bound)
    "faecal_analogue_ug",
    "body_loss_ug",  # non-biliary losses from the peripheral store
    "bile_ug",  # secreted into bile
    "microbial_cobalamin_ug",  # true cobalamin made by microbes (SI + colon)
    "microbial_analogue_ug",
    "remodelled_to_cobalamin_ug",  # net analogue → cobalamin conversion by remodelling
    "propionate_mmol",
)
N_POOLS = len(POOLS)


@lru_cache(maxsize=1)
def _taxa_meta():
    ids = taxon_ids()
    by_id = {t.id: t for t in load_taxa()}
    allowed = torch.ones(len(ids), len(ACTIVITIES), dtype=torch.bool)
    dependent = []
    for i, tid in enumerate(ids):
        t = by_id[tid]
        for j, a in enumerate(ACTIVITIES):
            allowed[i, j] = a in t.b12_activities
        dependent.append(t.role in ("consumer", "salvager"))
    return ids, allowed, torch.tensor(dependent)


def n_taxa() -> int:
    return len(taxon_ids())


def n_agents() -> int:
    return len(taxon_ids()) - 1


def state_size() -> int:
    return N_POOLS + n_taxa() + len(ACCUMULATORS)


def pool_index(name: str) -> int:
    return POOLS.index(name)


def acc_index(name: str) -> int:
    return N_POOLS + n_taxa() + ACCUMULATORS.index(name)


@dataclass(frozen=True)
class State:
    """Model state of a batch of patients.

    Attributes
    ----------
    x : Tensor, shape ``[patients, state]``
        Packed state: the pools of :data:`POOLS` (µg), log relative abundances of the taxa
        (``taxon_ids()`` order), then the cumulative fluxes of :data:`ACCUMULATORS`.
    presence : Tensor, shape ``[patients, taxa]``
        1 where a taxon is present in the baseline composition (absent taxa stay absent).
    growth_rate_per_day : Tensor, shape ``[patients, taxa]``
        Intrinsic growth rates tuned so that the baseline composition is a steady state.
    niche_log_abundance : Tensor, shape ``[patients, taxa]``, optional
        Log abundance each taxon's niche restores towards (the baseline composition); when
        omitted, the current abundances are taken.
    """

    x: Tensor
    presence: Tensor
    growth_rate_per_day: Tensor
    niche_log_abundance: Tensor | None = None

    @property
    def niche(self) -> Tensor:
        """:attr:`niche_log_abundance`, or the current log abundances if it is not set."""
        if self.niche_log_abundance is not None:
            return self.niche_log_abundance
        return self.x[:, N_POOLS : N_POOLS + self.presence.shape[1]]

    def pool(self, name: str) -> Tensor:
        """One pool, shape ``[patients]`` (µg)."""
        return self.x[:, pool_index(name)]

    def accumulated(self, name: str) -> Tensor:
        """A cumulative flux since the start, shape ``[patients]``."""
        return self.x[:, acc_index(name)]

    @property
    def relative_abundance(self) -> Tensor:
        """Composition ``[patients, taxa]`` (rows sum to 1)."""
        n = self.presence * torch.exp(self.x[:, N_POOLS : N_POOLS + n_taxa()])
        return n / n.sum(-1, keepdim=True).clamp_min(1e-30)

    def index(self, idx) -> State:
        return State(
            self.x[idx], self.presence[idx], self.growth_rate_per_day[idx], self.niche[idx]
        )


def full_activity(activity: Tensor | None, n_patients: int, *, dtype, device) -> Tensor:
    """Activity multipliers ``[patients, taxa, activities]`` from agent multipliers.

    ``activity`` has shape ``[patients, agents, 4]`` (agents = taxa without the background
    guild; activities in :data:`ACTIVITIES` order), identity = 1. Entries for activities a
    taxon does not have are ignored (set to 1); the background guild is always 1.
    """
    _, allowed, _ = _taxa_meta()
    ones = torch.ones(n_patients, n_taxa(), len(ACTIVITIES), dtype=dtype, device=device)
    if activity is None:
        return ones
    act = torch.cat(
        [
            activity.to(dtype=dtype, device=device),
            torch.ones(n_patients, 1, len(ACTIVITIES), dtype=dtype, device=device),
        ],
        1,
    )
    return torch.where(allowed.to(device), act, ones)


def rates(params: KineticParams, host: HostFactors) -> dict[str, Tensor]:
    """Per-patient rate constants (1/day) and shapes after host-factor modifiers."""
    p = params
    one = torch.ones_like(p["plasma_volume_l"])
    if_factor = torch.where(
        host.if_status == 0,
        one,
        torch.where(host.if_status == 1, p["if_reduced_capacity_factor"], 0 * one),
    )
    gastric = p["gastric_release_fraction"] * torch.where(
        host.gastric_impaired > 0, p["gastric_release_impaired_factor"], one
    )
    tc_factor = p["tcn2_gg_tc_clearance_factor"] ** (host.tcn2_g_alleles / 2)
    hc_factor = torch.where(
        host.fut2_nonsecretor > 0, p["fut2_nonsecretor_hc_clearance_factor"], one
    )
    k_fec = p["colon_transit_per_day"]
    f_col = p["colonic_absorption_fraction"]
    _, _, dependent = _taxa_meta()
    k = {
        "if_capacity": p["if_capacity_ug_per_meal"] * if_factor,
        "if_f0": p["if_small_dose_fraction"],
        "if_h": p["if_saturation_sharpness"],
        "passive": p["passive_absorption_fraction"],
        "gastric": gastric,
        "an_comp": p["analogue_if_competition"],
        "k_entry": 24.0 / p["entry_residence_h"],
        "im_k": p["im_retention_scale_ug"],
        "si_residence_d": p["si_residence_h"] / 24.0,
        "volume": p["plasma_volume_l"],
        "k_tc": math.log(2) * 24.0 / p["holotc_half_life_h"] * tc_factor,
        "k_hc": math.log(2) / p["holohc_half_life_d"] * hc_factor,
        "phi": p["hc_binding_fraction"],
        "f_liver": p["liver_uptake_fraction"],
        "k_rel": p["tissue_release_per_day"],
        "k_sat": p["tissue_release_saturation_ug"],
        "k_bile": p["bile_secretion_per_day"],
        "k_loss": p["nonbiliary_loss_per_day"],
        "k_fec": k_fec,
        "k_col": f_col / (1 - f_col) * k_fec,
        "si_load": p["si_bacterial_load"],
        "km": p["microbial_uptake_half_saturation_ug"],
        "tau_mix": p["lumen_mixing_time_h"] / 24.0,
        "alpha": p["glv_competition_per_day"],
        "beta": p["glv_self_limitation_per_day"],
        "prop_ref": p["propionate_reference_mmol_per_day"],
        "mma_share": p["mma_gut_propionate_share"],
        "hcy_genetic": p["mthfr_tt_hcy_umol_l"] * host.mthfr_t_alleles / 2
        + p["tcn2_gg_hcy_umol_l"] * host.tcn2_g_alleles / 2,
    }
    for q in TAXON_QUANTITIES:
        k[q] = p.taxon(q)
    k["dependent"] = dependent.to(device=p.device, dtype=p.dtype).expand_as(k["uptake"])
    for name in (
        "mma_floor_umol_l",
        "mma_span_umol_l",
        "mma_status_half_ug",
        "mma_hill",
        "hcy_floor_umol_l",
        "hcy_span_umol_l",
        "hcy_status_half_ug",
        "hcy_hill",
    ):
        k[name] = p[name]
    return k


def _uptake_capacity(x: Tensor, k: dict, act: Tensor, presence: Tensor) -> Tensor:
    """Activity-scaled corrinoid uptake capacity of each taxon, ``[patients, taxa]`` (µg/day)."""
    n = presence * torch.exp(x[:, N_POOLS : N_POOLS + presence.shape[1]])
    return k["uptake"] * n * act[..., 2]


def coefficients(
    k: dict, act: Tensor, presence: Tensor, growth: Tensor, niche: Tensor
) -> dict[str, Tensor]:
    """Constant coefficients of :func:`rhs_fast` for one run (computed once, not per step).

    Everything that depends only on parameters, activity multipliers and the per-patient
    growth rates is folded here, so the right-hand side does the state-dependent work only.
    ``lin`` (``[patients, taxa, 9]``) maps abundances to the taxon-summed fluxes in one
    batched product: colonic true/analogue synthesis, uptake capacity, remodelling towards
    cobalamin/analogue, small-intestinal synthesis (true/analogue) and uptake, and the
    corrinoid-independent propionate production.
    """
    tau = k["true_fraction"]
    d = act[..., 1]
    tau_eff = tau * d / (tau * d + (1 - tau)).clamp_min(1e-30)
    qs = k["synthesis"] * act[..., 0]
    vu = k["uptake"] * act[..., 2]
    mr = k["remodelling"] * act[..., 3]
    si_w = k["si_biomass_ratio"] * k["si_load"].unsqueeze(-1)
    dep = k["dependent"]
    w = k["growth_dependence"]
    lin = torch.stack(
        [
            qs * tau_eff,
            qs * (1 - tau_eff),
            vu,
            mr * tau_eff,
            mr * (1 - tau_eff),
            qs * tau_eff * si_w,
            qs * (1 - tau_eff) * si_w,
            vu * si_w,
            k["propionate"] * (1 - dep),
        ],
        -1,
    )
    c = {
        name: k[name]
        for name in (
            "k_rel",
            "k_sat",
            "k_entry",
            "k_tc",
            "k_hc",
            "k_bile",
            "k_loss",
            "phi",
            "f_liver",
            "tau_mix",
            "km",
            "k_fec",
            "k_col",
        )
    }
    c.update(
        lin=lin,
        presence=presence,
        uptake_mult=act[..., 2],
        km_t=k["km"].unsqueeze(-1),
        prop_dep=k["propionate"] * dep,
        growth0=presence
        * (
            growth * (1 - w)
            - k["production_cost"] * act[..., 0]
            - k["k_fec"].unsqueeze(-1)
            + k["alpha"].unsqueeze(-1)
            + k["beta"].unsqueeze(-1) * niche
        ),
        growth1=presence * growth * w,
        alpha=presence * k["alpha"].unsqueeze(-1),
        beta=presence * k["beta"].unsqueeze(-1),
    )
    return c


def rhs(x: Tensor, k: dict, act: Tensor, state: State, freeze_microbes: bool = False) -> Tensor:
    """Time derivative ``dx/dt`` (per day) of the packed state, shape ``[patients, state]``.

    Convenience form of ``rhs_fast(x, coefficients(...))`` with the constants of ``state``.
    """
    c = coefficients(k, act, state.presence, state.growth_rate_per_day, state.niche)
    return rhs_fast(x, c, freeze_microbes)


def rhs_fast(x: Tensor, c: dict, freeze_microbes: bool = False) -> Tensor:
    """Time derivative ``dx/dt`` (per day) of the packed state, shape ``[patients, state]``.

    Pools are clamped at zero inside the flux evaluation only (fluxes stay consistent between
    source and destination, so every Runge–Kutta step conserves mass exactly).
    """
    pools = x[:, :N_POOLS].clamp_min(0.0)
    E, T, H, L, P, S, SA, C, A = pools.unbind(-1)
    presence = c["presence"]
    n = presence * torch.exp(x[:, N_POOLS : N_POOLS + presence.shape[1]])
    agg = (n.unsqueeze(-1) * c["lin"]).sum(1)
    prod_c, prod_a, v_tot, rem_ac, rem_ca, si_prod_c, si_prod_a, si_up, prop0 = agg.unbind(-1)

    # host: plasma, stores, bile, losses
    rel_l = c["k_rel"] * L / (1 + L / c["k_sat"])
    rel_p = c["k_rel"] * P / (1 + P / c["k_sat"])
    rel = rel_l + rel_p
    entry_out = c["k_entry"] * E
    to_tissue = c["k_tc"] * T
    hc_out = c["k_hc"] * H
    bile = c["k_bile"] * L
    loss = c["k_loss"] * P

    # colon lumen. Microbial capture and remodelling of free corrinoid cannot act faster than
    # the lumen mixes (time constant tau): rates λ become λ / (1 + τ·λ). This keeps the model
    # non-stiff (every rate ≤ 1/τ) for any parameter and activity in their ranges.
    tau_mix = c["tau_mix"]
    Z = C + A
    sat = v_tot / (c["km"] + Z + tau_mix * v_tot)
    up_c = sat * C
    up_a = sat * A
    rem_norm = 1.0 / (1.0 + tau_mix * (rem_ac + rem_ca))
    a_to_c = rem_ac * rem_norm * A
    c_to_a = rem_ca * rem_norm * C
    washout_c = c["k_fec"] * C
    washout_a = c["k_fec"] * A
    col_abs = c["k_col"] * C

    # small-intestinal lumen between meals (bile accumulates; SI microbes make and take up)
    si_sat = si_up / (c["km"] + S + SA + tau_mix * si_up)
    si_up_c = si_sat * S
    si_up_a = si_sat * SA

    dE = col_abs - entry_out
    dT = (1 - c["phi"]) * rel + entry_out - to_tissue
    dH = c["phi"] * rel - hc_out
    dL = c["f_liver"] * to_tissue + hc_out - rel_l - bile
    dP = (1 - c["f_liver"]) * to_tissue - rel_p - loss
    dS = bile + si_prod_c - si_up_c
    dSA = si_prod_a - si_up_a
    dC = prod_c + a_to_c - c_to_a - washout_c - col_abs - up_c
    dA = prod_a + c_to_a - a_to_c - washout_a - up_a

    # community (log abundance y): growth with Monod on free corrinoid, production cost,
    # washout, competition for total space and a niche term restoring each taxon towards its
    # baseline: dy/dt = r(1 - w + w·M) - κ·s - k_fec - α(N - 1) - β(y - y_niche)
    uz = c["uptake_mult"] * Z.unsqueeze(-1)
    monod = uz / (c["km_t"] + uz)
    total = n.sum(-1, keepdim=True)
    y = x[:, N_POOLS : N_POOLS + presence.shape[1]]
    dy = c["growth0"] + c["growth1"] * monod - c["alpha"] * total - c["beta"] * y
    if freeze_microbes:
        dy = torch.zeros_like(dy)
    propionate = prop0 + (c["prop_dep"] * n * monod).sum(-1)

    zero = torch.zeros_like(dE)
    acc = torch.stack(
        [
            zero,  # intake (meal impulses)
            zero,  # im dose (impulses)
            zero,  # im retained (impulses)
            zero,  # urine (impulses)
            col_abs,  # absorbed (ileal part added by meal impulses)
            col_abs,
            zero,  # ileal free (meal impulses)
            washout_c + up_c + si_up_c,
            washout_a + up_a + si_up_a,
            loss,
            bile,
            prod_c + si_prod_c,
            prod_a + si_prod_a,
            a_to_c - c_to_a,
            propionate,
        ],
        -1,
    )
    return torch.cat([torch.stack([dE, dT, dH, dL, dP, dS, dSA, dC, dA], -1), dy, acc], -1)


def if_absorption(load_ug: Tensor, k: dict) -> Tensor:
    """Saturable intrinsic-factor absorption of one meal (µg).

    ``IF(D) = f·D·C / (C^h + (f·D)^h)^(1/h)``: linear (fraction ``f``) for small loads, a smooth
    minimum with the per-meal capacity ``C`` for large ones; 0 when ``C = 0`` (no IF).
    """
    fd = k["if_f0"] * load_ug + 1e-30
    cap = k["if_capacity"]
    h = k["if_h"]
    return fd * cap / (cap**h + fd**h) ** (1.0 / h)


def meal_absorption(
    cobalamin_ug: Tensor, k: dict, analogue_ug: Tensor | None = None, capture: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Absorbed true cobalamin of one meal bolus and the part captured by SI bacteria.

    Parameters
    ----------
    cobalamin_ug : Tensor, shape ``[patients]``
        Free true cobalamin reaching the ileum with the meal.
    analogue_ug : Tensor, optional
        Analogues in the same bolus (compete for IF with weight ``analogue_if_competition``).
    capture : Tensor, optional
        Fraction of the bolus captured by small-intestinal bacteria before absorption.
    """
    if analogue_ug is None:
        analogue_ug = torch.zeros_like(cobalamin_ug)
    if capture is None:
        capture = torch.zeros_like(cobalamin_ug)
    avail = cobalamin_ug * (1 - capture)
    load = avail + k["an_comp"] * analogue_ug * (1 - capture)
    if_total = if_absorption(load, k)
    if_true = if_total * avail / (load + 1e-30)
    return if_true + k["passive"] * avail, cobalamin_ug * capture


def si_capture(x: Tensor, k: dict, act: Tensor, presence: Tensor) -> Tensor:
    """Fraction of a meal bolus captured by small-intestinal bacteria (``1 - exp(-χ)``)."""
    uptake_cap = _uptake_capacity(x, k, act, presence)
    si_w = k["si_biomass_ratio"] * k["si_load"].unsqueeze(-1)
    chi = (uptake_cap * si_w).sum(-1) / k["km"] * k["si_residence_d"]
    return 1 - torch.exp(-chi)


def _add(x: Tensor, cols: list[int], values: list[Tensor]) -> Tensor:
    """``x`` with ``values`` added to columns ``cols`` (out of place, differentiable)."""
    idx = torch.tensor(cols, device=x.device)
    return x.index_add(1, idx, torch.stack(values, -1).to(x.dtype))


def apply_meal(
    x: Tensor, food_ug: Tensor, oral_ug: Tensor, k: dict, act: Tensor, presence: Tensor
) -> Tensor:
    """Meal impulse: food and supplement B12, with the bile and SI-microbial B12 accumulated
    since the previous meal, pass the ileum once; the rest moves on to the colon.

    Parameters
    ----------
    food_ug, oral_ug : Tensor, shape ``[patients]``
        Food B12 of this meal and crystalline supplement taken with it (µg).
    """
    S = x[:, pool_index("si_cobalamin_ug")].clamp_min(0.0)
    SA = x[:, pool_index("si_analogue_ug")].clamp_min(0.0)
    released = k["gastric"] * food_ug
    ileal = released + oral_ug + S
    cap = si_capture(x, k, act, presence)
    absorbed, captured = meal_absorption(ileal, k, SA, cap)
    to_colon_c = food_ug - released + ileal - captured - absorbed
    to_colon_a = SA * (1 - cap)
    i = pool_index
    return _add(
        x,
        [
            i("entry_ug"),
            i("si_cobalamin_ug"),
            i("si_analogue_ug"),
            i("colon_cobalamin_ug"),
            i("colon_analogue_ug"),
            acc_index("intake_ug"),
            acc_index("absorbed_ug"),
            acc_index("ileal_free_ug"),
            acc_index("faecal_cobalamin_ug"),
            acc_index("faecal_analogue_ug"),
        ],
        [
            absorbed,
            -S,
            -SA,
            to_colon_c,
            to_colon_a,
            food_ug + oral_ug,
            absorbed,
            ileal,
            captured,
            SA * cap,
        ],
    )


def im_retained(dose_ug: Tensor, k: dict) -> Tensor:
    """Retained part of an intramuscular dose, ``K·ln(1 + dose/K)`` (Carmel 2008 Table 1)."""
    return k["im_k"] * torch.log1p(dose_ug / k["im_k"])


def apply_injection(x: Tensor, dose_ug: Tensor, k: dict) -> Tensor:
    """Intramuscular impulse: the retained part enters the entry pool, the rest is urine."""
    kept = im_retained(dose_ug, k)
    return _add(
        x,
        [
            pool_index("entry_ug"),
            acc_index("im_dose_ug"),
            acc_index("im_retained_ug"),
            acc_index("urine_ug"),
        ],
        [kept, dose_ug, kept, dose_ug - kept],
    )


def observables(
    x: Tensor, k: dict, propionate_mmol_per_day: Tensor | None = None
) -> dict[str, Tensor]:
    """Biomarkers of a state, each ``[patients]``.

    ``propionate_mmol_per_day`` (the day's colonic propionate) feeds the MMA load; when
    omitted the reference production is assumed.
    """
    E, T, H, L, P = x[:, :5].unbind(-1)
    P = P.clamp_min(0.0)
    serum = (T + H) * PMOL_PER_UG / k["volume"]
    if propionate_mmol_per_day is None:
        prop_ratio = torch.ones_like(P)
    else:
        prop_ratio = propionate_mmol_per_day / k["prop_ref"]
    hm, hh = k["mma_hill"], k["hcy_hill"]
    km_ = k["mma_status_half_ug"] ** hm
    kh_ = k["hcy_status_half_ug"] ** hh
    mma = (k["mma_floor_umol_l"] + k["mma_span_umol_l"] * km_ / (km_ + P**hm)) * (
        1 - k["mma_share"] + k["mma_share"] * prop_ratio
    )
    hcy = k["hcy_floor_umol_l"] + k["hcy_span_umol_l"] * kh_ / (kh_ + P**hh) + k["hcy_genetic"]
    return {
        "serum_b12_pmol_l": serum,
        "holotc_pmol_l": T * PMOL_PER_UG / k["volume"],
        "holohc_pmol_l": H * PMOL_PER_UG / k["volume"],
        "mma_umol_l": mma,
        "hcy_umol_l": hcy,
        "liver_store_ug": L,
        "peripheral_store_ug": P,
        "body_store_ug": E + T + H + L + P,
    }
