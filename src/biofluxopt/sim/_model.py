"""The host–microbiome B12 kinetic model: state layout, right-hand side and dosing impulses.

All functions are batched over patients (leading axis) and written with out-of-place torch
operations only, so they are differentiable end to end and run on CPU or CUDA. The same
:func:`rhs_fast` (with :func:`coefficients`), :func:`apply_meal`, :func:`apply_injection` and
:func:`apply_probiotic` are used by the fast fixed-step integrator (``_solve.py``) and by the
scipy reference integrator (``_reference.py``).

The physics is written against named structures, never positions: :class:`Rates` (per-patient
rate constants after host-factor modifiers), :class:`Coefficients` (the constants of one
right-hand side), :class:`Pools` (the state's pools, checked against :data:`POOLS` on import)
and a name → flux mapping that is stacked in :data:`ACCUMULATORS` order.

Units: µg of corrinoid, days, µmol/L, pmol/L, mmol/day. Equations: docs/sim.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import cached_property, lru_cache
from typing import NamedTuple

import torch
from torch import Tensor

from biofluxopt.knowledge import load_taxa

from ._params import TAXON_QUANTITIES, KineticParams, taxon_ids
from ._protocol import ACTIVITIES, HostFactors

#: µg of cobalamin → pmol (molar mass of cyanocobalamin 1355.37 g/mol, b12_facts header).
PMOL_PER_UG = 1e6 / 1355.37

POOLS = (
    "entry_ug",  # newly absorbed B12 on its way to plasma (enterocyte)
    "holotc_ug",  # plasma holotranscobalamin
    "holohc_ug",  # plasma holohaptocorrin
    "liver_ug",  # liver store
    "peripheral_ug",  # peripheral tissue store (intracellular status for MMA/Hcy)
    "si_cobalamin_ug",  # free true cobalamin in the small-intestinal lumen (bile, microbes)
    "si_analogue_ug",  # corrinoid analogues in the small-intestinal lumen
    "colon_cobalamin_ug",  # free true cobalamin in the colon lumen
    "colon_analogue_ug",  # free corrinoid analogues in the colon lumen
    "im_depot_ug",  # intramuscular dose not yet absorbed into plasma
)
ACCUMULATORS = (
    "intake_ug",  # oral true cobalamin ingested (food + supplements)
    "im_dose_ug",  # injected (into the intramuscular depot)
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
    "plasma_urine_ug",  # unbound plasma B12 (binders saturated) filtered into urine
    "probiotic_cells",  # inoculated probiotic, relative-abundance units delivered to the colon
)
N_POOLS = len(POOLS)


class Pools(NamedTuple):
    """The pools of a state, each ``[patients]`` (µg); field ``f`` is pool ``f + "_ug"``."""

    entry: Tensor
    holotc: Tensor
    holohc: Tensor
    liver: Tensor
    peripheral: Tensor
    si_cobalamin: Tensor
    si_analogue: Tensor
    colon_cobalamin: Tensor
    colon_analogue: Tensor
    im_depot: Tensor

    @classmethod
    def of(cls, x: Tensor, *, clamp: bool = True) -> Pools:
        """The pools of a packed state ``[patients, state]`` (clamped at 0 by default)."""
        p = x[:, :N_POOLS]
        return cls(*(p.clamp_min(0.0) if clamp else p).unbind(-1))


if tuple(f"{f}_ug" for f in Pools._fields) != POOLS:  # pragma: no cover - import-time check
    raise RuntimeError("Pools fields and POOLS disagree")


def _block(first: str, second: str) -> slice:
    """Rows of two adjacent pools that :func:`dynamics` treats as one ``[2, patients]``
    block (checked on import, so reordering :data:`POOLS` cannot silently mix them up)."""
    i = POOLS.index(first)
    if POOLS.index(second) != i + 1:  # pragma: no cover - import-time check
        raise RuntimeError(f"{first} and {second} must be adjacent in POOLS")
    return slice(i, i + 2)


_STORES = _block("liver_ug", "peripheral_ug")
_PLASMA = _block("holotc_ug", "holohc_ug")
_SI = _block("si_cobalamin_ug", "si_analogue_ug")
_COLON = _block("colon_cobalamin_ug", "colon_analogue_ug")


@dataclass(frozen=True)
class TaxaMeta:
    """Static per-taxon facts from the knowledge base (``taxon_ids()`` order).

    ``allowed`` ``[taxa, activities]``: the taxon has that B12 activity; ``dependent``: its
    growth needs external corrinoid (consumer, salvager); ``resident``: a colonising member
    (False for a transient probiotic).
    """

    ids: tuple[str, ...]
    allowed: Tensor
    dependent: Tensor
    resident: Tensor


@lru_cache(maxsize=1)
def taxa_meta() -> TaxaMeta:
    ids = taxon_ids()
    by_id = {t.id: t for t in load_taxa()}
    allowed = torch.tensor(
        [[a in by_id[t].b12_activities for a in ACTIVITIES] for t in ids], dtype=torch.bool
    )
    dependent = torch.tensor([by_id[t].role in ("consumer", "salvager") for t in ids])
    resident = torch.tensor([by_id[t].resident for t in ids])
    return TaxaMeta(ids, allowed, dependent, resident)


def n_taxa() -> int:
    return len(taxon_ids())


def n_agents() -> int:
    return len(taxon_ids()) - 1


def pool_index(name: str) -> int:
    return POOLS.index(name)


def acc_index(name: str) -> int:
    return N_POOLS + n_taxa() + ACCUMULATORS.index(name)


def taxa_slice() -> slice:
    """Columns of the packed state holding the log abundances."""
    return slice(N_POOLS, N_POOLS + n_taxa())


@dataclass(frozen=True)
class State:
    """Model state of a batch of patients.

    Attributes
    ----------
    x : Tensor, shape ``[patients, state]``
        Packed state: the pools of :data:`POOLS` (µg), log relative abundances of the taxa
        (``taxon_ids()`` order), then the cumulative fluxes of :data:`ACCUMULATORS`.
    presence : Tensor, shape ``[patients, taxa]``
        1 where a taxon can be present: in the baseline composition, or a probiotic taxon
        (absent until inoculated). Taxa absent at baseline stay absent.
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
        return self.x[:, taxa_slice()]

    def pool(self, name: str) -> Tensor:
        """One pool, shape ``[patients]`` (µg)."""
        return self.x[:, pool_index(name)]

    def accumulated(self, name: str) -> Tensor:
        """A cumulative flux since the start, shape ``[patients]``."""
        return self.x[:, acc_index(name)]

    @property
    def relative_abundance(self) -> Tensor:
        """Composition ``[patients, taxa]`` (rows sum to 1)."""
        return relative_abundance(self.x, self.presence)

    def index(self, idx) -> State:
        return State(
            self.x[idx], self.presence[idx], self.growth_rate_per_day[idx], self.niche[idx]
        )


def relative_abundance(x: Tensor, presence: Tensor) -> Tensor:
    """Composition ``[patients, taxa]`` of a packed state (rows sum to 1)."""
    n = presence * torch.exp(x[:, taxa_slice()])
    return n / n.sum(-1, keepdim=True).clamp_min(1e-30)


def full_activity(activity: Tensor | None, n_patients: int, *, dtype, device) -> Tensor:
    """Activity multipliers ``[patients, taxa, activities]`` from agent multipliers.

    ``activity`` has shape ``[patients, agents, 4]`` (agents = taxa without the background
    guild; activities in :data:`ACTIVITIES` order), identity = 1. Entries for activities a
    taxon does not have are ignored (set to 1); the background guild is always 1.
    """
    allowed = taxa_meta().allowed.to(device)
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
    return torch.where(allowed, act, ones)


@dataclass(frozen=True)
class Rates:
    """Per-patient rate constants and shapes after host-factor modifiers.

    Every field is a tensor of shape ``[patients]`` unless noted; per-taxon fields (the
    :data:`~._params.TAXON_QUANTITIES` and the masks) are ``[patients, taxa]``. Units are
    those of the parameters they come from (µg, 1/day, pmol/L, mmol/day); see
    :func:`rates` for each field's parameter and docs/sim.md for the equations.
    """

    # absorption
    if_capacity: Tensor  # µg/meal, 0 without IF
    if_f0: Tensor  # fraction of a small dose absorbed via IF
    if_h: Tensor  # sharpness of the IF saturation
    passive: Tensor  # passive fraction of the free ileal load
    gastric: Tensor  # fraction of food B12 released from protein
    an_comp: Tensor  # analogue competition for IF
    si_residence_d: Tensor  # small-intestinal residence time, days
    # host
    k_entry: Tensor  # 1/day, enterocyte → plasma
    k_depot: Tensor  # 1/day, intramuscular depot → plasma
    volume: Tensor  # plasma volume, L
    k_tc: Tensor  # 1/day, holoTC → tissues
    k_hc: Tensor  # 1/day, holoHC → liver
    tc_capacity: Tensor  # µg of B12 the plasma transcobalamin can carry
    hc_capacity: Tensor  # µg of B12 the plasma haptocorrin can carry
    free_width: Tensor  # µg-fraction of capacity over which binding saturates (smoothness)
    k_renal: Tensor  # 1/day, renal clearance of unbound plasma B12
    k_hc_bind: Tensor  # 1/day, binding of unbound B12 to free haptocorrin
    phi: Tensor  # share of store release bound to HC
    f_liver: Tensor  # liver share of tissue uptake
    k_rel: Tensor  # 1/day, store release
    k_sat: Tensor  # µg, saturation of store release
    k_bile: Tensor  # 1/day, liver → bile
    k_loss: Tensor  # 1/day, non-biliary loss from the peripheral store
    # lumen and community
    k_fec: Tensor  # 1/day, colonic transit
    k_col: Tensor  # 1/day, colonic absorption of free true cobalamin
    si_load: Tensor  # small-intestinal bacterial load (multiplier)
    km: Tensor  # µg, half-saturation of microbial corrinoid uptake
    tau_mix: Tensor  # days, lumen mixing time
    alpha: Tensor  # 1/day, competition for space
    beta: Tensor  # 1/day, resilience (return to the niche)
    dmb_cost: Tensor  # 1/day per unit DMB-attachment activity
    uptake_cost: Tensor  # 1/day per unit uptake activity
    remodelling_cost: Tensor  # 1/day per unit remodelling activity
    probiotic_clearance: Tensor  # 1/day, washout excess of a transient probiotic
    probiotic_dose_scale: Tensor  # relative abundance delivered per cfu ingested
    prebiotic_shift: Tensor  # [patients, taxa] niche shift (ln units) at saturating fibre
    prebiotic_half_g: Tensor  # g/day of fibre giving half the shift
    # biomarkers
    prop_ref: Tensor  # mmol/day reference propionate
    mma_share: Tensor
    hcy_genetic: Tensor  # µmol/L
    mma_floor_umol_l: Tensor
    mma_span_umol_l: Tensor
    mma_status_half_ug: Tensor
    mma_hill: Tensor
    hcy_floor_umol_l: Tensor
    hcy_span_umol_l: Tensor
    hcy_status_half_ug: Tensor
    hcy_hill: Tensor
    # per taxon, [patients, taxa]
    synthesis: Tensor
    true_fraction: Tensor
    uptake: Tensor
    growth_dependence: Tensor
    production_cost: Tensor
    si_biomass_ratio: Tensor
    remodelling: Tensor
    propionate: Tensor
    dependent: Tensor  # 1 for consumers/salvagers
    resident: Tensor  # 1 for colonising members, 0 for a transient probiotic
    allowed: Tensor  # [taxa, activities] (bool), shared by all patients

    @cached_property
    def taxa_last(self) -> _TaxaLast:
        """The per-taxon rates laid out ``[taxa, patients]`` and the sparsity of the
        microbial terms, computed once per :class:`Rates` (they do not depend on activity)."""
        return _taxa_last(self)

    def maintenance_cost(self, act: Tensor) -> Tensor:
        """Fitness cost of each taxon's B12 activities, ``[patients, taxa]`` (1/day).

        De novo synthesis costs ``production_cost`` per unit activity; DMB attachment,
        uptake and remodelling cost their global rates per unit activity, for the taxa that
        have the activity. ``act`` is ``[patients, taxa, activities]``.
        """
        return (self.taxa_last.costs * act.permute(2, 1, 0)).sum(0).T


def rates(params: KineticParams, host: HostFactors) -> Rates:
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
    meta = taxa_meta()
    volume = p["plasma_volume_l"]
    taxon = {q: p.taxon(q) for q in TAXON_QUANTITIES}
    like = taxon["uptake"]
    return Rates(
        if_capacity=p["if_capacity_ug_per_meal"] * if_factor,
        if_f0=p["if_small_dose_fraction"],
        if_h=p["if_saturation_sharpness"],
        passive=p["passive_absorption_fraction"],
        gastric=gastric,
        an_comp=p["analogue_if_competition"],
        si_residence_d=p["si_residence_h"] / 24.0,
        k_entry=24.0 / p["entry_residence_h"],
        k_depot=p["im_depot_release_per_day"],
        volume=volume,
        k_tc=math.log(2) * 24.0 / p["holotc_half_life_h"] * tc_factor,
        k_hc=math.log(2) / p["holohc_half_life_d"] * hc_factor,
        tc_capacity=p["tc_binding_capacity_pmol_l"] * volume / PMOL_PER_UG,
        hc_capacity=p["hc_binding_capacity_pmol_l"] * volume / PMOL_PER_UG,
        free_width=p["binder_saturation_width"],
        k_renal=p["unbound_b12_renal_clearance_per_day"],
        k_hc_bind=p["unbound_b12_hc_binding_per_day"],
        phi=p["hc_binding_fraction"],
        f_liver=p["liver_uptake_fraction"],
        k_rel=p["tissue_release_per_day"],
        k_sat=p["tissue_release_saturation_ug"],
        k_bile=p["bile_secretion_per_day"],
        k_loss=p["nonbiliary_loss_per_day"],
        k_fec=k_fec,
        k_col=f_col / (1 - f_col) * k_fec,
        si_load=p["si_bacterial_load"],
        km=p["microbial_uptake_half_saturation_ug"],
        tau_mix=p["lumen_mixing_time_h"] / 24.0,
        alpha=p["glv_competition_per_day"],
        beta=p["community_resilience_per_day"],
        dmb_cost=p["dmb_attachment_cost_per_day"],
        uptake_cost=p["uptake_cost_per_day"],
        remodelling_cost=p["remodelling_cost_per_day"],
        probiotic_clearance=p["probiotic_clearance_per_day"],
        probiotic_dose_scale=p["probiotic_survival_fraction"] / p["colon_bacterial_cells"],
        prebiotic_shift=_prebiotic_shift(p, like),
        prebiotic_half_g=p["prebiotic_half_saturation_g"],
        prop_ref=p["propionate_reference_mmol_per_day"],
        mma_share=p["mma_gut_propionate_share"],
        hcy_genetic=p["mthfr_tt_hcy_umol_l"] * host.mthfr_t_alleles / 2
        + p["tcn2_gg_hcy_umol_l"] * host.tcn2_g_alleles / 2,
        mma_floor_umol_l=p["mma_floor_umol_l"],
        mma_span_umol_l=p["mma_span_umol_l"],
        mma_status_half_ug=p["mma_status_half_ug"],
        mma_hill=p["mma_hill"],
        hcy_floor_umol_l=p["hcy_floor_umol_l"],
        hcy_span_umol_l=p["hcy_span_umol_l"],
        hcy_status_half_ug=p["hcy_status_half_ug"],
        hcy_hill=p["hcy_hill"],
        **taxon,
        dependent=meta.dependent.to(device=like.device, dtype=like.dtype).expand_as(like),
        resident=meta.resident.to(device=like.device, dtype=like.dtype).expand_as(like),
        allowed=meta.allowed.to(like.device),
    )


#: Taxa whose niche a prebiotic fibre shifts, and the parameter holding each shift.
PREBIOTIC_TAXA = {
    "bifidobacterium": "prebiotic_bifidobacterium_log_shift",
    "lactobacillus": "prebiotic_lactobacillus_log_shift",
}


def _prebiotic_shift(p: KineticParams, like: Tensor) -> Tensor:
    shift = torch.zeros_like(like)
    ids = taxon_ids()
    for taxon, pid in PREBIOTIC_TAXA.items():
        shift[:, ids.index(taxon)] = p[pid]
    return shift


def prebiotic_niche_shift(k: Rates, fibre_g: Tensor) -> Tensor:
    """Niche shift ``[patients, taxa]`` (ln units) of ``fibre_g`` ``[patients]`` g/day of
    prebiotic fibre: ``shift · g / (g + K)`` (saturating; Kolida 2007 found 5 and 8 g/day
    alike)."""
    g = fibre_g.to(k.prebiotic_shift.dtype).unsqueeze(-1)
    return k.prebiotic_shift * g / (g + k.prebiotic_half_g.unsqueeze(-1))


#: The taxon-summed microbial fluxes of the colon and small-intestinal lumens (µg/day; the
#: last is mmol/day), the rows of :attr:`Coefficients.lin_flux`.
MICROBIAL_FLUXES = (
    "colon_synthesis_cobalamin",
    "colon_synthesis_analogue",
    "colon_uptake_capacity",
    "colon_remodelling_to_cobalamin",
    "colon_remodelling_to_analogue",
    "si_synthesis_cobalamin",
    "si_synthesis_analogue",
    "si_uptake_capacity",
    "propionate_independent",
)


class _TaxaLast(NamedTuple):
    """Activity-independent per-taxon terms of :func:`coefficients`, ``[taxa, patients]``."""

    synthesis: Tensor
    true_fraction: Tensor
    uptake: Tensor
    remodelling: Tensor
    si_weight: Tensor  # small-intestinal biomass per unit colonic biomass
    propionate_independent: Tensor
    propionate_dependent: Tensor  # [len(monod_taxon), patients]
    growth_dependence: Tensor
    costs: Tensor  # [activities, taxa, patients]: fitness cost per unit activity (1/day)
    lin_flux: Tensor  # [pairs]
    lin_taxon: Tensor  # [pairs]
    monod_taxon: Tensor  # [taxa with corrinoid-dependent growth or propionate]


def _taxa_last(k: Rates) -> _TaxaLast:
    """:class:`_TaxaLast` of ``k``: the rates transposed once, and the (flux, taxon) pairs of
    :data:`MICROBIAL_FLUXES` that can be non-zero for some patient at some activity
    (activities are bounded away from 0), plus the taxa whose Monod factor matters."""

    def t(x: Tensor) -> Tensor:
        return x.T.contiguous()

    si_w = k.si_biomass_ratio * k.si_load.unsqueeze(-1)
    dep = k.dependent
    # De novo synthesis costs ``production_cost`` per unit activity; DMB attachment, uptake
    # and remodelling cost their global rates per unit activity, for the taxa that have it.
    a = k.allowed.to(k.synthesis.dtype)
    costs = torch.stack(
        [
            k.production_cost,
            k.dmb_cost.unsqueeze(-1) * a[:, 1],
            k.uptake_cost.unsqueeze(-1) * a[:, 2],
            k.remodelling_cost.unsqueeze(-1) * a[:, 3],
        ]
    ).transpose(1, 2)
    with torch.no_grad():
        synth = (k.synthesis != 0).any(0)
        in_si = (si_w != 0).any(0)
        up = (k.uptake != 0).any(0)
        remod = (k.remodelling != 0).any(0)
        prop = (k.propionate * (1 - dep) != 0).any(0)
        mask = torch.stack(
            [synth, synth, up, remod, remod, synth & in_si, synth & in_si, up & in_si, prop]
        )
        lin_flux, lin_taxon = mask.nonzero(as_tuple=True)
        monod = ((k.growth_dependence != 0) | (k.propionate * dep != 0)).any(0)
        monod_taxon = monod.nonzero().flatten()
    return _TaxaLast(
        synthesis=t(k.synthesis),
        true_fraction=t(k.true_fraction),
        uptake=t(k.uptake),
        remodelling=t(k.remodelling),
        si_weight=t(si_w),
        propionate_independent=t(k.propionate * (1 - dep)),
        propionate_dependent=t(k.propionate * dep)[monod_taxon].contiguous(),
        growth_dependence=t(k.growth_dependence),
        costs=costs.contiguous(),
        lin_flux=lin_flux,
        lin_taxon=lin_taxon,
        monod_taxon=monod_taxon,
    )


class Coefficients(NamedTuple):
    """Constants of :func:`rhs_t` for one activity setting (computed once, not per step).

    Laid out with patients last, like :func:`rhs_t`'s state: per-patient scalars are
    ``[patients]``; the community terms are ``[taxa, patients]``, except the Monod terms
    (``uptake_mult``, ``prop_dep``, ``growth1``), which are ``[len(monod_taxon), patients]``
    for the taxa whose growth or propionate depends on corrinoid. The taxon-summed microbial
    fluxes (:data:`MICROBIAL_FLUXES`) are a sparse product: ``lin`` ``[pairs, patients]`` holds
    the coefficient of every (flux, taxon) pair that can be non-zero for some patient, and
    ``lin_flux``/``lin_taxon`` ``[pairs]`` say which; ``lin_zero`` is a zero
    ``[fluxes, patients]`` to sum into. About half of the 9 × taxa pairs are structurally
    zero (non-producers synthesise nothing, few taxa remodel), so the product reads half the
    memory of a dense one.
    """

    k_rel: Tensor
    k_sat: Tensor
    k_entry: Tensor
    k_depot: Tensor
    k_tc: Tensor
    k_hc: Tensor
    tc_capacity: Tensor
    hc_capacity: Tensor
    free_width: Tensor
    k_renal: Tensor
    k_hc_bind: Tensor
    k_bile: Tensor
    k_loss: Tensor
    phi: Tensor
    f_liver: Tensor
    tau_mix: Tensor
    km: Tensor
    k_fec: Tensor
    k_col: Tensor
    binder_capacity: Tensor
    lin: Tensor
    lin_flux: Tensor
    lin_taxon: Tensor
    lin_zero: Tensor
    presence: Tensor
    monod_taxon: Tensor
    uptake_mult: Tensor
    prop_dep: Tensor
    growth0: Tensor
    growth1: Tensor
    alpha: Tensor
    beta: Tensor


#: Per-patient rates that :class:`Coefficients` carries unchanged from :class:`Rates`.
_RATE_SCALARS = (
    "k_rel", "k_sat", "k_entry", "k_depot", "k_tc", "k_hc", "tc_capacity", "hc_capacity",
    "free_width", "k_renal", "k_hc_bind", "k_bile", "k_loss", "phi", "f_liver", "tau_mix",
    "km", "k_fec", "k_col",
)  # fmt: skip


def coefficients(
    k: Rates, act: Tensor, presence: Tensor, growth: Tensor, niche: Tensor
) -> Coefficients:
    """:class:`Coefficients` of a run from rates, activities ``[patients, taxa, 4]``, the
    presence mask, intrinsic growth rates and niche log abundances (``[patients, taxa]``)."""
    s = k.taxa_last
    a = act.permute(2, 1, 0).contiguous()  # [activities, taxa, patients]
    presence = presence.T.contiguous()
    tau = s.true_fraction
    tau_d = tau * a[1]
    tau_eff = tau_d / (tau_d + (1 - tau)).clamp_min(1e-30)
    qs = s.synthesis * a[0]
    vu = s.uptake * a[2]
    mr = s.remodelling * a[3]
    qs_c, qs_a = qs * tau_eff, qs * (1 - tau_eff)
    lin = torch.stack(
        [
            qs_c,
            qs_a,
            vu,
            mr * tau_eff,
            mr * (1 - tau_eff),
            qs_c * s.si_weight,
            qs_a * s.si_weight,
            vu * s.si_weight,
            s.propionate_independent,
        ]
    )  # [fluxes, taxa, patients]
    w = s.growth_dependence
    growth = growth.T.contiguous()
    beta = presence * k.resident.T.contiguous() * k.beta
    cost = (s.costs * a).sum(0)
    mt = s.monod_taxon
    return Coefficients(
        **{name: getattr(k, name) for name in _RATE_SCALARS},
        binder_capacity=torch.stack([k.tc_capacity, k.hc_capacity]),
        lin=lin[s.lin_flux, s.lin_taxon],
        lin_flux=s.lin_flux,
        lin_taxon=s.lin_taxon,
        lin_zero=lin.new_zeros(len(MICROBIAL_FLUXES), lin.shape[-1]),
        presence=presence,
        monod_taxon=mt,
        uptake_mult=a[2][mt].contiguous(),
        prop_dep=s.propionate_dependent,
        growth0=(
            presence * (growth * (1 - w) - cost - k.k_fec + k.alpha) + beta * niche.T
        ).contiguous(),
        growth1=(presence * growth * w)[mt].contiguous(),
        alpha=(presence * k.alpha).contiguous(),
        beta=beta.contiguous(),
    )


def unbound(pool_ug: Tensor, capacity_ug: Tensor, width: Tensor) -> Tensor:
    """B12 of a plasma pool beyond its binder's capacity (µg): ``w·softplus((B − C)/w)``.

    ``w = width·C``. Far below capacity this is 0 (< 1e-19 µg at physiological saturation);
    above it, the excess. Smooth with a bounded slope, so its renal clearance stays non-stiff
    for any step size that resolves the clearance rate itself.
    """
    w = width * capacity_ug
    return w * torch.nn.functional.softplus((pool_ug - capacity_ug) / w)


def rhs(x: Tensor, k: Rates, act: Tensor, state: State, freeze_microbes: bool = False) -> Tensor:
    """Time derivative ``dx/dt`` (per day) of the packed state, shape ``[patients, state]``.

    Convenience form of ``rhs_fast(x, coefficients(...))`` with the constants of ``state``.
    """
    c = coefficients(k, act, state.presence, state.growth_rate_per_day, state.niche)
    return rhs_fast(x, c, freeze_microbes)


def rhs_fast(x: Tensor, c: Coefficients, freeze_microbes: bool = False) -> Tensor:
    """Time derivative ``dx/dt`` (per day) of the packed state, shape ``[patients, state]``.

    The patients-first form of :func:`rhs_t` (one transpose each way).
    """
    return rhs_t(x.T.contiguous(), c, freeze_microbes).T


def rhs_t(xt: Tensor, c: Coefficients, freeze_microbes: bool = False) -> Tensor:
    """Time derivative of the packed state laid out patients last, ``[state, patients]``:
    :func:`dynamics` with its fluxes placed in their accumulator rows (zero for the
    accumulators that only impulses feed)."""
    d_dyn, flux = dynamics(xt[: N_POOLS + c.presence.shape[0]], c, freeze_microbes)
    d_acc = c.lin_zero.new_zeros((len(ACCUMULATORS), xt.shape[1]))
    return torch.cat([d_dyn, d_acc.index_add(0, CONTINUOUS_INDEX.to(xt.device), flux)], 0)


def dynamics(yt: Tensor, c: Coefficients, freeze_microbes: bool = False) -> tuple[Tensor, Tensor]:
    """Derivatives of the dynamic rows and the continuous fluxes, both patients last.

    Parameters
    ----------
    yt : Tensor, shape ``[pools + taxa, patients]``
        The pools (µg) and log abundances of the packed state, transposed. Every row is a
        contiguous ``[patients]`` vector, so each elementwise operation runs on contiguous
        memory (measured 3–7× faster per operation than on the strided columns of a
        ``[patients, state]`` state), and the taxon sums are reductions over rows.

    Returns
    -------
    d_dyn : Tensor, shape ``[pools + taxa, patients]``
        ``d/dt`` of ``yt`` (µg/day; 1/day for log abundances).
    flux : Tensor, shape ``[len(CONTINUOUS_ACCUMULATORS), patients]``
        The rates of :data:`CONTINUOUS_ACCUMULATORS` (µg/day; propionate mmol/day).

    Pools are clamped at zero inside the flux evaluation only (fluxes stay consistent between
    source and destination, so every Runge–Kutta step conserves mass exactly). Pools that
    obey the same law (the two stores, the two plasma binders, the two forms in each lumen)
    are computed as ``[2, patients]`` blocks: fewer, larger tensor operations.
    """
    qb = yt[:N_POOLS].clamp_min(0.0)
    q = Pools(*qb.unbind(0))
    presence = c.presence
    y = yt[N_POOLS:]
    n = presence * torch.exp(y)
    agg = c.lin_zero.index_add(0, c.lin_flux, c.lin * n.index_select(0, c.lin_taxon))
    prod_c, prod_a, v_tot, rem_ac, rem_ca, si_prod_c, si_prod_a, si_up, prop0 = agg.unbind(0)

    # host: stores (liver, peripheral), plasma binding (saturable), tissue uptake, bile, losses
    rel2 = c.k_rel * qb[_STORES] / (1 + qb[_STORES] / c.k_sat)
    rel_l, rel_p = rel2.unbind(0)
    rel = rel_l + rel_p
    entry_out = c.k_entry * q.entry
    depot_out = c.k_depot * q.im_depot
    # Transcobalamin and haptocorrin carry B12 up to their capacities; what exceeds them is
    # unbound and filtered by the kidney (urinary spill at megadoses and after injections).
    free2 = unbound(qb[_PLASMA], c.binder_capacity, c.free_width)
    free_tc = free2[0]
    renal2 = c.k_renal * free2
    bound2 = qb[_PLASMA] - free2
    # B12 that transcobalamin cannot carry binds whatever haptocorrin is still free, at
    # k_B·room·U_T for small excesses and at most k_B × the free haptocorrin (µg) for large
    # ones: haptocorrin cannot fill faster than it binds, which keeps the step non-stiff.
    hc_room = (1 - bound2[1] / c.hc_capacity).clamp_min(0.0)
    tc_to_hc = c.k_hc_bind * hc_room * free_tc * c.hc_capacity / (free_tc + c.hc_capacity)
    to_tissue = c.k_tc * bound2[0]
    hc_out = c.k_hc * bound2[1]
    bile = c.k_bile * q.liver
    loss = c.k_loss * q.peripheral

    # colon lumen. Microbial capture and remodelling of free corrinoid cannot act faster than
    # the lumen mixes (time constant tau): rates λ become λ / (1 + τ·λ). This keeps the model
    # non-stiff (every rate ≤ 1/τ) for any parameter and activity in their ranges.
    colon2 = qb[_COLON]  # cobalamin, analogue
    C, A = q.colon_cobalamin, q.colon_analogue
    Z = C + A
    up2 = v_tot / (c.km + Z + c.tau_mix * v_tot) * colon2
    rem_norm = 1.0 / (1.0 + c.tau_mix * (rem_ac + rem_ca))
    a_to_c = rem_ac * rem_norm * A
    c_to_a = rem_ca * rem_norm * C
    washout2 = c.k_fec * colon2
    col_abs = c.k_col * C

    # small-intestinal lumen between meals (bile accumulates; SI microbes make and take up)
    si2 = qb[_SI]  # cobalamin, analogue
    si_up2 = si_up / (c.km + si2.sum(0) + c.tau_mix * si_up) * si2

    d_pools = Pools(
        entry=col_abs - entry_out,
        holotc=entry_out + (1 - c.phi) * rel + depot_out - to_tissue - renal2[0] - tc_to_hc,
        holohc=c.phi * rel + tc_to_hc - hc_out - renal2[1],
        liver=c.f_liver * to_tissue + hc_out - rel_l - bile,
        peripheral=(1 - c.f_liver) * to_tissue - rel_p - loss,
        si_cobalamin=bile + si_prod_c - si_up2[0],
        si_analogue=si_prod_a - si_up2[1],
        colon_cobalamin=prod_c + a_to_c - c_to_a - washout2[0] - col_abs - up2[0],
        colon_analogue=prod_a + c_to_a - a_to_c - washout2[1] - up2[1],
        im_depot=-depot_out,
    )

    # community (log abundance y): growth with Monod on free corrinoid, the fitness cost of
    # the B12 activities, washout, competition for total space and resilience towards the
    # niche: dy/dt = r(1 - w + w·M) - cost(activity) - k_fec - α(N - 1) - β(y - y_niche)
    # The Monod factor matters only for the taxa whose growth or propionate depends on free
    # corrinoid (rows ``monod_taxon``), so it is computed for those rows alone.
    uz = c.uptake_mult * Z
    monod = uz / (c.km + uz)
    dy = torch.addcmul(c.growth0, c.beta, y, value=-1.0)
    dy = torch.addcmul(dy, c.alpha, n.sum(0), value=-1.0)
    dy = dy.index_add(0, c.monod_taxon, c.growth1 * monod)
    if freeze_microbes:
        dy = torch.zeros_like(dy)
    propionate = prop0 + (c.prop_dep * monod * n.index_select(0, c.monod_taxon)).sum(0)

    faecal2 = washout2 + up2 + si_up2
    flux = {
        "absorbed_ug": col_abs,  # the ileal part is added by meal impulses
        "colonic_absorbed_ug": col_abs,
        "faecal_cobalamin_ug": faecal2[0],
        "faecal_analogue_ug": faecal2[1],
        "body_loss_ug": loss,
        "bile_ug": bile,
        "microbial_cobalamin_ug": prod_c + si_prod_c,
        "microbial_analogue_ug": prod_a + si_prod_a,
        "remodelled_to_cobalamin_ug": a_to_c - c_to_a,
        "propionate_mmol": propionate,
        "plasma_urine_ug": renal2.sum(0),
    }
    d_dyn = torch.cat([torch.stack(d_pools, 0), dy], 0)
    return d_dyn, torch.stack([flux[a] for a in CONTINUOUS_ACCUMULATORS], 0)


#: Accumulators that the right-hand side integrates (the others only impulses feed:
#: intake, injected dose, ileal passage, probiotic cells), in the order :func:`dynamics`
#: returns their rates, and their rows among :data:`ACCUMULATORS`.
CONTINUOUS_ACCUMULATORS = (
    "absorbed_ug",
    "colonic_absorbed_ug",
    "faecal_cobalamin_ug",
    "faecal_analogue_ug",
    "body_loss_ug",
    "bile_ug",
    "microbial_cobalamin_ug",
    "microbial_analogue_ug",
    "remodelled_to_cobalamin_ug",
    "propionate_mmol",
    "plasma_urine_ug",
)
CONTINUOUS_INDEX = torch.tensor([ACCUMULATORS.index(a) for a in CONTINUOUS_ACCUMULATORS])


def if_absorption(load_ug: Tensor, k: Rates) -> Tensor:
    """Saturable intrinsic-factor absorption of one meal (µg).

    ``IF(D) = f·D·C / (C^h + (f·D)^h)^(1/h)``: linear (fraction ``f``) for small loads, a smooth
    minimum with the per-meal capacity ``C`` for large ones; 0 when ``C = 0`` (no IF).
    """
    fd = k.if_f0 * load_ug
    cap = k.if_capacity
    ratio = fd / cap.clamp_min(1e-30)  # written this way to stay finite in float32
    return torch.where(cap > 0, fd / (1 + ratio**k.if_h) ** (1.0 / k.if_h), torch.zeros_like(fd))


def meal_absorption(
    cobalamin_ug: Tensor,
    k: Rates,
    analogue_ug: Tensor | None = None,
    capture: Tensor | None = None,
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
    load = avail + k.an_comp * analogue_ug * (1 - capture)
    if_total = if_absorption(load, k)
    if_true = if_total * avail / (load + 1e-30)
    return if_true + k.passive * avail, cobalamin_ug * capture


def si_capture(x: Tensor, k: Rates, act: Tensor, presence: Tensor) -> Tensor:
    """Fraction of a meal bolus captured by small-intestinal bacteria (``1 - exp(-χ)``)."""
    n = presence * torch.exp(x[:, taxa_slice()])
    uptake_cap = k.uptake * n * act[..., 2]
    si_w = k.si_biomass_ratio * k.si_load.unsqueeze(-1)
    chi = (uptake_cap * si_w).sum(-1) / k.km * k.si_residence_d
    return 1 - torch.exp(-chi)


def _add(x: Tensor, columns: dict[int, Tensor]) -> Tensor:
    """``x`` with ``columns`` (column index → ``[patients]`` values) added, out of place."""
    idx = torch.tensor(list(columns), device=x.device)
    return x.index_add(1, idx, torch.stack(list(columns.values()), -1).to(x.dtype))


def apply_meal(
    x: Tensor, food_ug: Tensor, oral_ug: Tensor, k: Rates, act: Tensor, presence: Tensor
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
    released = k.gastric * food_ug
    ileal = released + oral_ug + S
    cap = si_capture(x, k, act, presence)
    absorbed, captured = meal_absorption(ileal, k, SA, cap)
    i, a = pool_index, acc_index
    return _add(
        x,
        {
            i("entry_ug"): absorbed,
            i("si_cobalamin_ug"): -S,
            i("si_analogue_ug"): -SA,
            i("colon_cobalamin_ug"): food_ug - released + ileal - captured - absorbed,
            i("colon_analogue_ug"): SA * (1 - cap),
            a("intake_ug"): food_ug + oral_ug,
            a("absorbed_ug"): absorbed,
            a("ileal_free_ug"): ileal,
            a("faecal_cobalamin_ug"): captured,
            a("faecal_analogue_ug"): SA * cap,
        },
    )


def apply_injection(x: Tensor, dose_ug: Tensor, k: Rates) -> Tensor:
    """Intramuscular impulse: the dose enters the depot, which releases it into plasma.

    What plasma transcobalamin and haptocorrin cannot carry is unbound and cleared by the
    kidney; whole-body retention (Carmel 2008) emerges from the depot release rate, the
    binders' capacities and renal clearance (docs/validation.md).
    """
    return _add(x, {pool_index("im_depot_ug"): dose_ug, acc_index("im_dose_ug"): dose_ug})


def apply_probiotic(x: Tensor, cfu: Tensor, k: Rates) -> Tensor:
    """Probiotic impulse: ``cfu`` ``[patients, taxa]`` colony-forming units swallowed now.

    The viable fraction that reaches the colon (``probiotic_survival_fraction``) adds
    ``cfu · survival / colon_bacterial_cells`` to the taxon's relative biomass.
    """
    ts = taxa_slice()
    delivered = cfu.to(x.dtype) * k.probiotic_dose_scale.unsqueeze(-1)
    y = x[:, ts]
    y_new = torch.logaddexp(y, torch.log(delivered.clamp_min(1e-300)))
    y_new = torch.where(delivered > 0, y_new, y)
    col = acc_index("probiotic_cells")
    return torch.cat(
        [
            x[:, : ts.start],
            y_new,
            x[:, ts.stop : col],
            x[:, col : col + 1] + delivered.sum(-1, keepdim=True),
            x[:, col + 1 :],
        ],
        1,
    )


def observables(
    x: Tensor, k: Rates, propionate_mmol_per_day: Tensor | None = None
) -> dict[str, Tensor]:
    """Biomarkers of a state, each ``[patients]``.

    ``propionate_mmol_per_day`` (the day's colonic propionate) feeds the MMA load; when
    omitted the reference production is assumed.
    """
    q = Pools.of(x, clamp=False)
    P = q.peripheral.clamp_min(0.0)
    serum = (q.holotc + q.holohc) * PMOL_PER_UG / k.volume
    if propionate_mmol_per_day is None:
        prop_ratio = torch.ones_like(P)
    else:
        prop_ratio = propionate_mmol_per_day / k.prop_ref
    hm, hh = k.mma_hill, k.hcy_hill
    km_ = k.mma_status_half_ug**hm
    kh_ = k.hcy_status_half_ug**hh
    mma = (k.mma_floor_umol_l + k.mma_span_umol_l * km_ / (km_ + P**hm)) * (
        1 - k.mma_share + k.mma_share * prop_ratio
    )
    hcy = k.hcy_floor_umol_l + k.hcy_span_umol_l * kh_ / (kh_ + P**hh) + k.hcy_genetic
    free = unbound(q.holotc, k.tc_capacity, k.free_width) + unbound(
        q.holohc, k.hc_capacity, k.free_width
    )
    return {
        "serum_b12_pmol_l": serum,
        "unbound_b12_pmol_l": free * PMOL_PER_UG / k.volume,
        "holotc_pmol_l": q.holotc * PMOL_PER_UG / k.volume,
        "holohc_pmol_l": q.holohc * PMOL_PER_UG / k.volume,
        "mma_umol_l": mma,
        "hcy_umol_l": hcy,
        "liver_store_ug": q.liver,
        "peripheral_store_ug": q.peripheral,
        "body_store_ug": q.entry + q.holotc + q.holohc + q.liver + q.peripheral + q.im_depot,
    }


#: Field names of :class:`Rates`, for code that iterates over them (e.g. device moves).
RATE_FIELDS = tuple(f.name for f in fields(Rates))
