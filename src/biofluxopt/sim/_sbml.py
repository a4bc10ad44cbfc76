"""SBML Level 3 Version 2 export of the kinetic model for one patient (docs/sbml.md).

The export writes the very equations of :func:`~._model.dynamics`, :func:`~._model.apply_meal`,
:func:`~._model.apply_injection`, :func:`~._model.apply_probiotic`,
:func:`~._model.prebiotic_niche_shift` and :func:`~._model.observables` in SBML math:

* the pools of :data:`~._model.POOLS` are species (amounts in µg, ``hasOnlySubstanceUnits``),
  moved by 27 reactions whose kinetic laws are the fluxes of ``dynamics`` (pools clamped at
  zero with ``pos(x) = (x + |x|)/2``, the binders' unbound excess with ``softplus`` written
  ``ln(1 + exp(z))``, as torch's ``softplus`` with its threshold of 20);
* the log abundance of every taxon present at baseline is a parameter with a rate rule (the
  generalised Lotka–Volterra equation of docs/sim.md); taxa absent at baseline stay absent
  and are left out;
* every kinetic parameter of ``parameters.toml`` is a parameter with its unit, the patient's
  value, its source, grade and range (annotation and notes); the derived rates of
  :func:`~._model.rates` (host-factor modifiers, unit conversions) are initial assignments,
  the activity-dependent sums of :func:`~._model.coefficients` assignment rules;
* meals, oral doses, injections, probiotic doses and prebiotic fibre are events at the times
  :func:`~._solve.simulate` applies them: a ``day_start`` event at ``t = d`` (injection,
  probiotic, fibre, the day's propionate) and one event per meal slot at
  ``d + meal_slots(m, substeps)[j] / substeps``, the day's schedule read from piecewise
  functions of the day;
* serum B12, holoTC, holoHC, MMA and Hcy are assignment rules. MMA reads the colonic
  propionate of the previous whole day, as ``simulate`` does at the end of each day.

The initial state is the patient's steady state from :func:`~._steady.steady_state`, and the
taxa's growth rates and niches that make it steady are constants of the file.
"""

from __future__ import annotations

import math
import re
import time as _time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import torch

from biofluxopt import __version__
from biofluxopt._util import BioFluxOptError
from biofluxopt.knowledge import load_metabolites, load_parameters, load_reactions, load_taxa

from ._model import (
    PMOL_PER_UG,
    PREBIOTIC_TAXA,
    State,
    acc_index,
    coefficients,
    full_activity,
    pool_index,
    rates,
    rhs_fast,
    taxa_meta,
    taxa_slice,
)
from ._params import KineticParams, taxon_ids
from ._protocol import ACTIVITIES, Protocol, ProtocolSpec, load_protocol
from ._solve import check_activity, meal_slots
from ._solve import simulate as _simulate

#: Namespace of the biofluxopt parameter annotations (source, grade, range, default).
ANNOTATION_NS = "urn:biofluxopt:sbml:parameter:1"
IDENTIFIERS = "https://identifiers.org/"


class SBMLExportError(BioFluxOptError):
    """The export cannot represent the request (bad patient index, activity shape, a failed
    initial state), or the optional ``sbml`` extra is missing."""


def _libsbml():
    try:
        import libsbml
    except ImportError:  # pragma: no cover - depends on the environment
        raise SBMLExportError(
            "the SBML export needs python-libsbml: pip install 'biofluxopt[sbml]'"
        ) from None
    return libsbml


# --------------------------------------------------------------------------------------------
# units
# --------------------------------------------------------------------------------------------

#: Unit definitions: id → list of (kind, exponent, scale, multiplier).
UNITS = {
    "day": [("second", 1, 0, 86400.0)],
    "hour": [("second", 1, 0, 3600.0)],
    "per_day": [("second", -1, 0, 86400.0)],
    "ug": [("gram", 1, -6, 1.0)],
    "ug_per_day": [("gram", 1, -6, 1.0), ("second", -1, 0, 86400.0)],
    "mmol": [("mole", 1, -3, 1.0)],
    "mmol_per_day": [("mole", 1, -3, 1.0), ("second", -1, 0, 86400.0)],
    "g_per_day": [("gram", 1, 0, 1.0), ("second", -1, 0, 86400.0)],
    "pmol_per_l": [("mole", 1, -12, 1.0), ("litre", -1, 0, 1.0)],
    "umol_per_l": [("mole", 1, -6, 1.0), ("litre", -1, 0, 1.0)],
    "pmol_per_ug": [("mole", 1, -12, 1.0), ("gram", -1, -6, 1.0)],
    "hour_per_day": [("second", 1, 0, 3600.0), ("second", -1, 0, 86400.0)],
    "per_item": [("item", -1, 0, 1.0)],
}

#: Knowledge-base unit strings → SBML unit ids. "µg/meal" is an amount per meal event (µg);
#: "ln" a natural-log ratio (dimensionless); "cells" a count (item).
KB_UNITS = {
    "1": "dimensionless",
    "ln": "dimensionless",
    "1/d": "per_day",
    "L": "litre",
    "cells": "item",
    "d": "day",
    "h": "hour",
    "g/d": "g_per_day",
    "mmol/d": "mmol_per_day",
    "pmol/L": "pmol_per_l",
    "µmol/L": "umol_per_l",
    "µg": "ug",
    "µg/d": "ug_per_day",
    "µg/meal": "ug",
}


def _n(value: float, unit: str) -> str:
    """A number with its unit in libSBML's L3 infix syntax."""
    v = float(value)
    if not math.isfinite(v):
        raise SBMLExportError(f"cannot write the non-finite number {v} into SBML")
    return f"({v!r} {unit})" if v < 0 else f"{v!r} {unit}"


# --------------------------------------------------------------------------------------------
# the export
# --------------------------------------------------------------------------------------------

#: Species: pool → (compartment, name, KEGG compound ids it is, KEGG ids it has as parts).
SPECIES = {
    "entry_ug": ("enterocyte", "newly absorbed B12 on its way to plasma", ["C05776"], []),
    "holotc_ug": ("plasma", "holotranscobalamin (B12 on transcobalamin)", ["C05776"], []),
    "holohc_ug": ("plasma", "holohaptocorrin (B12 on haptocorrin)", ["C05776"], []),
    "liver_ug": ("liver_tissue", "liver B12 store", ["C05776"], []),
    "peripheral_ug": (
        "peripheral_tissue",
        "peripheral B12 store (intracellular adenosyl- and methylcobalamin)",
        ["C05776"],
        ["C06453", "C00194"],
    ),
    "si_cobalamin_ug": ("small_intestine_lumen", "free true cobalamin", ["C05776"], []),
    "si_analogue_ug": ("small_intestine_lumen", "corrinoid analogues", [], ["C05774"]),
    "colon_cobalamin_ug": ("colon_lumen", "free true cobalamin", ["C05776"], []),
    "colon_analogue_ug": ("colon_lumen", "free corrinoid analogues", [], ["C05774"]),
    "im_depot_ug": ("muscle", "intramuscular depot (injected cyanocobalamin)", ["C02823"], []),
}
SPECIES_IDS = frozenset(p.removesuffix("_ug") for p in SPECIES)
COMPARTMENTS = {
    "plasma": "blood plasma (size: plasma_volume_l)",
    "enterocyte": "enterocytes (nominal size; species are amounts)",
    "liver_tissue": "liver (nominal size; species are amounts)",
    "peripheral_tissue": "peripheral tissues (nominal size; species are amounts)",
    "small_intestine_lumen": "small-intestinal lumen (nominal size; species are amounts)",
    "colon_lumen": "colon lumen (nominal size; species are amounts)",
    "muscle": "injection site (nominal size; species are amounts)",
}


@dataclass(frozen=True)
class SBMLCheck:
    """libSBML's consistency checks of a document (units checked strictly).

    Attributes
    ----------
    errors : tuple of str
        Messages of severity error or fatal, and every unit inconsistency (libSBML reports
        those as warnings in Level 3; strict unit consistency counts them as errors).
    warnings : tuple of str
        Messages of severity warning (modelling practice, units that cannot be checked).
    """

    errors: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.errors


class _Builder:
    """Assembles the libSBML model piece by piece (ids, units, annotations, math)."""

    def __init__(self, model_id: str):
        self.sbml = _libsbml()
        self.doc = self.sbml.SBMLDocument(3, 2)
        self.model = self.doc.createModel()
        self.model.setId(model_id)
        self.model.setMetaId(f"meta_{model_id}")
        self._meta = 0

    # -- plumbing ----------------------------------------------------------------------------
    def check(self, status: int, what: str) -> None:
        if status != self.sbml.LIBSBML_OPERATION_SUCCESS:
            msg = self.sbml.OperationReturnValue_toString(status)
            raise RuntimeError(f"libSBML refused {what}: {msg}")

    def math(self, formula: str):
        ast = self.sbml.parseL3Formula(formula)
        if ast is None:
            raise RuntimeError(f"cannot parse {formula!r}: {self.sbml.getLastParseL3Error()}")
        return ast

    def metaid(self, element) -> None:
        if not element.isSetMetaId():
            self._meta += 1
            element.setMetaId(f"m{self._meta:04d}_{element.getId() or 'x'}")

    def cv(self, element, qualifier: str, uris: list[str]) -> None:
        """MIRIAM cross-references: ``qualifier`` one of is, hasPart, isVersionOf,
        isDescribedBy."""
        if not uris:
            return
        sb = self.sbml
        self.metaid(element)
        term = sb.CVTerm(sb.BIOLOGICAL_QUALIFIER)
        kind = {
            "is": sb.BQB_IS,
            "hasPart": sb.BQB_HAS_PART,
            "isVersionOf": sb.BQB_IS_VERSION_OF,
            "isDescribedBy": sb.BQB_IS_DESCRIBED_BY,
            "hasProperty": sb.BQB_HAS_PROPERTY,
        }[qualifier]
        term.setBiologicalQualifierType(kind)
        for uri in uris:
            self.check(term.addResource(uri), f"resource {uri}")
        self.check(element.addCVTerm(term), f"annotation of {element.getId()}")

    def notes(self, element, text: str) -> None:
        html = f'<body xmlns="http://www.w3.org/1999/xhtml"><p>{escape(text)}</p></body>'
        self.check(element.setNotes(html), f"notes of {element.getId()}")

    # -- elements ----------------------------------------------------------------------------
    def units(self) -> None:
        sb = self.sbml
        for uid, parts in UNITS.items():
            ud = self.model.createUnitDefinition()
            ud.setId(uid)
            for kind, exponent, scale, multiplier in parts:
                u = ud.createUnit()
                u.setKind(sb.UnitKind_forName(kind))
                u.setExponent(exponent)
                u.setScale(scale)
                u.setMultiplier(multiplier)
        m = self.model
        m.setTimeUnits("day")
        m.setSubstanceUnits("ug")
        m.setExtentUnits("ug")
        m.setVolumeUnits("litre")

    def parameter(
        self, pid: str, value: float, unit: str, *, constant: bool = True, name: str = ""
    ):
        p = self.model.createParameter()
        self.check(p.setId(pid), f"parameter id {pid!r}")
        p.setValue(float(value))
        p.setUnits(unit)
        p.setConstant(constant)
        if name:
            p.setName(name)
        return p

    def initial(self, symbol: str, formula: str) -> None:
        ia = self.model.createInitialAssignment()
        ia.setSymbol(symbol)
        self.check(ia.setMath(self.math(formula)), f"initial assignment of {symbol}")

    def rule(self, pid: str, unit: str, formula: str, *, value: float = 0.0, name: str = ""):
        p = self.parameter(pid, value, unit, constant=False, name=name)
        r = self.model.createAssignmentRule()
        r.setVariable(pid)
        self.check(r.setMath(self.math(formula)), f"assignment rule of {pid}")
        return p

    def rate_rule(self, variable: str, formula: str) -> None:
        r = self.model.createRateRule()
        r.setVariable(variable)
        self.check(r.setMath(self.math(formula)), f"rate rule of {variable}")

    def function(self, fid: str, args: list[str], body: str) -> None:
        f = self.model.createFunctionDefinition()
        f.setId(fid)
        self.check(f.setMath(self.math(f"lambda({', '.join([*args, body])})")), f"function {fid}")

    def reaction(self, rid: str, reactant: str | None, product: str | None, law: str, name: str):
        r = self.model.createReaction()
        r.setId(rid)
        r.setName(name)
        r.setReversible(False)
        if reactant is not None:
            s = r.createReactant()
            s.setSpecies(reactant)
            s.setStoichiometry(1.0)
            s.setConstant(True)
        if product is not None:
            s = r.createProduct()
            s.setSpecies(product)
            s.setStoichiometry(1.0)
            s.setConstant(True)
        for sid in dict.fromkeys(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", law)):
            if sid in SPECIES_IDS and sid not in (reactant, product):
                mod = r.createModifier()
                mod.setSpecies(sid)
        kl = r.createKineticLaw()
        self.check(kl.setMath(self.math(law)), f"kinetic law of {rid}")
        return r

    def event(
        self,
        eid: str,
        trigger: str,
        priority: int,
        assignments: list[tuple[str, str]],
        *,
        name: str,
    ):
        e = self.model.createEvent()
        e.setId(eid)
        e.setName(name)
        # the assignments see the state left by higher-priority events at the same instant
        e.setUseValuesFromTriggerTime(False)
        t = e.createTrigger()
        t.setInitialValue(False)  # fires at t = 0 when its time has come
        t.setPersistent(True)
        self.check(t.setMath(self.math(trigger)), f"trigger of {eid}")
        pr = e.createPriority()
        pr.setMath(self.math(_n(priority, "dimensionless")))
        for variable, formula in assignments:
            a = e.createEventAssignment()
            a.setVariable(variable)
            self.check(a.setMath(self.math(formula)), f"event assignment {eid}.{variable}")
        return e


def _schedule(values: np.ndarray, unit: str, day: str, *, after: float | None = 0.0) -> str:
    """Piecewise-constant function of the day counter ``day`` from per-day ``values``
    (protocol days ``0 … len-1``); ``after`` (or the last value when None) beyond them."""
    values = np.asarray(values, dtype=np.float64)
    pieces: list[tuple[float, int]] = []  # (value, first day after the run)
    for d, v in enumerate(values.tolist()):
        if pieces and pieces[-1][0] == v:
            pieces[-1] = (v, d + 1)
        else:
            pieces.append((v, d + 1))
    tail = pieces[-1][0] if after is None else after
    if after is None:
        pieces = pieces[:-1]
    if not pieces or all(v == tail for v, _ in pieces):
        return _n(tail, unit)
    args = []
    for v, end in pieces:
        args += [_n(v, unit), f"{day} < {_n(end, 'day')}"]
    args.append(_n(tail, unit))
    return f"piecewise({', '.join(args)})"


def _doi_uris(text: str) -> list[str]:
    dois = re.findall(r"doi:\s*(10\.\d{4,9}/[^\s,;)]+)", text, flags=re.IGNORECASE)
    return [f"{IDENTIFIERS}doi:{d.rstrip('.')}" for d in dict.fromkeys(dois)]


def to_sbml(
    params: KineticParams,
    state0: State,
    protocol: Protocol,
    *,
    patient: int = 0,
    activity: torch.Tensor | None = None,
    substeps_per_day: int = 24,
    model_id: str = "biofluxopt_b12",
    description: str = "",
) -> str:
    """SBML Level 3 Version 2 text of one patient of a batch, from its initial state.

    **Main arguments**

    Parameters
    ----------
    params : KineticParams
        ``[patients]`` parameters (the patient's values are written).
    state0 : State
        Initial state of the batch (usually :func:`~biofluxopt.sim.steady_state`); its
        pools, log abundances, growth rates and niches become the file's initial values and
        constants.
    protocol : Protocol
        Host factors and the daily schedule (food, oral doses per meal, injections,
        probiotic, prebiotic fibre), written as events.

    **Other arguments**

    patient : int, default=0
        Index of the patient in the batch.
    activity : Tensor, optional
        Agents' activity multipliers, ``[patients, agents, 4]`` (constant parameters) or
        ``[patients, days, agents, 4]`` (piecewise constant: set by the ``day_start``
        event); identity when omitted.
    substeps_per_day : int, default=24
        The RK4 grid of :func:`~biofluxopt.sim.simulate` the meal times are placed on
        (``meal_slots``), so that the export doses at the same times.
    model_id : str
        SBML model id.
    description : str
        Added to the model's notes (e.g. the protocol file).

    Returns
    -------
    str
        The SBML document (UTF-8 XML).

    Raises
    ------
    SBMLExportError
        Unknown patient index, an activity of the wrong shape, a non-finite initial state.
    """
    n = state0.x.shape[0]
    if not 0 <= patient < n:
        raise SBMLExportError(
            f"patient {patient} does not exist: the batch has {n} patient(s), indices 0 to {n - 1}",
            field="--patient",
        )
    days = protocol.days
    per_day = False
    if activity is not None:
        activity = check_activity(activity.detach().to("cpu", torch.float64))
        if activity.dim() == 4:
            if activity.shape[1] != days:
                raise SBMLExportError(
                    f"per-day activity covers {activity.shape[1]} days, the protocol {days}",
                    field="activity",
                )
            per_day = True
        elif activity.dim() != 3:
            raise SBMLExportError(
                f"activity must be [patients, agents, 4] or [patients, days, agents, 4], "
                f"got shape {tuple(activity.shape)}",
                field="activity",
            )
        activity = activity[patient : patient + 1]
    with torch.no_grad():
        p1 = params.index([patient]).to("cpu", torch.float64)
        pr = protocol.index([patient]).to("cpu")
        st = state0.index([patient])
        x0 = st.x.detach().to("cpu", torch.float64)
        if not bool(torch.isfinite(x0).all()):
            raise SBMLExportError(
                f"the initial state of patient {patient} is not finite; check the protocol's "
                "[parameters] overrides"
            )
        k = rates(p1, pr.host)
        presence = st.presence.to("cpu", torch.float64)
        growth = st.growth_rate_per_day.detach().to("cpu", torch.float64)
        niche = st.niche.detach().to("cpu", torch.float64)
        # colonic propionate of the day before day 0 (what simulate's first record uses:
        # the steady state at identity activity)
        act1 = full_activity(None, 1, dtype=torch.float64, device="cpu")
        c0 = coefficients(k, act1, presence, growth, niche)
        prop0 = float(rhs_fast(x0, c0, True)[0, acc_index("propionate_mmol")])
    return _write(
        p1,
        k,
        x0[0],
        presence[0],
        growth[0],
        niche[0],
        pr,
        None if activity is None else activity[0],
        per_day,
        substeps_per_day,
        prop0,
        model_id,
        description,
    )


def _write(p1, k, x0, presence, growth, niche, pr, activity, per_day, substeps, prop0, mid, desc):
    b = _Builder(mid)
    m = b.model
    m.setName("BioFluxOpt host–gut-microbiome vitamin B12 model (one patient)")
    b.units()
    meta = taxa_meta()
    taxa = [t for i, t in enumerate(taxon_ids()) if presence[i] > 0]
    tix = {t: taxon_ids().index(t) for t in taxa}
    by_taxon = {t.id: t for t in load_taxa()}
    days = pr.days
    meals = pr.meals_per_day

    # -- functions ---------------------------------------------------------------------------
    b.function("pos", ["x"], "(x + abs(x)) / 2 dimensionless")
    # w·softplus((X − C)/w) with torch's threshold: the excess itself beyond 20 widths
    b.function(
        "unbound",
        ["x", "cap", "w"],
        "w * piecewise((x - cap) / w, (x - cap) / w > 20 dimensionless, "
        "ln(1 dimensionless + exp((x - cap) / w)))",
    )

    # -- compartments ------------------------------------------------------------------------
    for cid, name in COMPARTMENTS.items():
        c = m.createCompartment()
        c.setId(cid)
        c.setName(name)
        c.setSpatialDimensions(3)
        c.setSize(float(p1["plasma_volume_l"][0]) if cid == "plasma" else 1.0)
        c.setUnits("litre")
        c.setConstant(True)
    b.initial("plasma", "plasma_volume_l")

    # -- kinetic parameters (knowledge base) -------------------------------------------------
    kb = {p.id: p for p in load_parameters()}
    used_taxa = set(taxa)
    for pid, row in kb.items():
        if row.taxon is not None and row.taxon not in used_taxa:
            continue
        value = float(p1[pid][0])
        par = b.parameter(pid, value, KB_UNITS[row.unit], name=row.description)
        b.notes(
            par,
            f"{row.description}. Unit {row.unit}; default {row.value!r}, plausible range "
            f"[{row.low!r}, {row.high!r}], evidence grade {row.grade}. Source: {row.source}",
        )
        b.metaid(par)
        ann = (
            f'<biofluxopt:parameter xmlns:biofluxopt="{ANNOTATION_NS}" '
            f"unit={quoteattr(row.unit)} default={quoteattr(repr(row.value))} "
            f"low={quoteattr(repr(row.low))} high={quoteattr(repr(row.high))} "
            f"grade={quoteattr(row.grade)} group={quoteattr(row.group)}>"
            f"<biofluxopt:source>{escape(row.source)}</biofluxopt:source>"
            "</biofluxopt:parameter>"
        )
        b.check(par.appendAnnotation(ann), f"annotation of {pid}")
        b.cv(par, "isDescribedBy", _doi_uris(row.source))
        if row.taxon is not None:
            b.cv(par, "hasProperty", [f"{IDENTIFIERS}taxonomy:{by_taxon[row.taxon].ncbi_taxid}"])

    # -- constants, host factors -------------------------------------------------------------
    b.parameter("pmol_per_ug", PMOL_PER_UG, "pmol_per_ug", name="pmol of cobalamin per µg")
    b.parameter("hours_per_day", 24.0, "hour_per_day", name="hours per day")
    b.parameter("one_day", 1.0, "day", name="one day (daily amounts → rates)")
    host = pr.host
    codes = {
        "intrinsic_factor_status": (host.if_status, "0 normal, 1 reduced, 2 absent"),
        "gastric_release_impaired": (host.gastric_impaired, "0 normal, 1 impaired"),
        "fut2_nonsecretor": (host.fut2_nonsecretor, "0 secretor, 1 non-secretor"),
        "tcn2_776_g_alleles": (host.tcn2_g_alleles, "TCN2 776C>G: number of G alleles"),
        "mthfr_677_t_alleles": (host.mthfr_t_alleles, "MTHFR 677C>T: number of T alleles"),
    }
    for hid, (val, name) in codes.items():
        b.parameter(hid, float(val[0]), "dimensionless", name=f"host factor: {name}")

    # -- derived rates (rates()), as initial assignments -------------------------------------
    def derived(pid, unit, formula, value, name):
        b.parameter(pid, float(value), unit, name=name)
        b.initial(pid, formula)

    one = "1 dimensionless"
    derived(
        "if_capacity_ug",
        "ug",
        "if_capacity_ug_per_meal * piecewise(1 dimensionless, intrinsic_factor_status == "
        "0 dimensionless, if_reduced_capacity_factor, intrinsic_factor_status == "
        "1 dimensionless, 0 dimensionless)",
        k.if_capacity[0],
        "IF capacity per meal after the host's IF status",
    )
    derived(
        "gastric_release",
        "dimensionless",
        "gastric_release_fraction * piecewise(gastric_release_impaired_factor, "
        "gastric_release_impaired > 0 dimensionless, 1 dimensionless)",
        k.gastric[0],
        "released fraction of food B12",
    )
    derived(
        "si_residence_d",
        "day",
        "si_residence_h / hours_per_day",
        k.si_residence_d[0],
        "small-intestinal residence time",
    )
    derived("k_entry", "per_day", "hours_per_day / entry_residence_h", k.k_entry[0], "entry")
    derived(
        "k_tc",
        "per_day",
        "ln(2 dimensionless) * hours_per_day / holotc_half_life_h * "
        "tcn2_gg_tc_clearance_factor ^ (tcn2_776_g_alleles / 2 dimensionless)",
        k.k_tc[0],
        "holoTC clearance into tissues",
    )
    derived(
        "k_hc",
        "per_day",
        "ln(2 dimensionless) / holohc_half_life_d * piecewise("
        "fut2_nonsecretor_hc_clearance_factor, fut2_nonsecretor > 0 dimensionless, "
        "1 dimensionless)",
        k.k_hc[0],
        "holoHC clearance into the liver",
    )
    derived(
        "tc_capacity_ug",
        "ug",
        "tc_binding_capacity_pmol_l * plasma_volume_l / pmol_per_ug",
        k.tc_capacity[0],
        "B12 the plasma transcobalamin can carry",
    )
    derived(
        "hc_capacity_ug",
        "ug",
        "hc_binding_capacity_pmol_l * plasma_volume_l / pmol_per_ug",
        k.hc_capacity[0],
        "B12 the plasma haptocorrin can carry",
    )
    derived(
        "k_col",
        "per_day",
        "colonic_absorption_fraction / (1 dimensionless - colonic_absorption_fraction) * "
        "colon_transit_per_day",
        k.k_col[0],
        "colonic absorption of free true cobalamin",
    )
    derived(
        "tau_mix_d",
        "day",
        "lumen_mixing_time_h / hours_per_day",
        k.tau_mix[0],
        "lumen mixing time",
    )
    derived(
        "probiotic_dose_scale",
        "per_item",
        "probiotic_survival_fraction / colon_bacterial_cells",
        k.probiotic_dose_scale[0],
        "relative abundance delivered per cfu",
    )
    derived(
        "hcy_genetic_umol_l",
        "umol_per_l",
        "mthfr_tt_hcy_umol_l * mthfr_677_t_alleles / 2 dimensionless + tcn2_gg_hcy_umol_l * "
        "tcn2_776_g_alleles / 2 dimensionless",
        k.hcy_genetic[0],
        "Hcy from MTHFR and TCN2 genotypes",
    )

    # -- schedule counters and daily inputs --------------------------------------------------
    b.parameter("day_index", 0.0, "day", constant=False, name="protocol day of the next day_start")
    food = pr.food_ug_per_day[0].double().numpy() / meals
    oral = pr.oral_ug[0].double().numpy()  # [days, meals]
    slots = meal_slots(meals, substeps)
    for j in range(meals):
        b.parameter(f"meal_{j}_day", 0.0, "day", constant=False, name=f"day of the next meal {j}")
        b.rule(
            f"meal_{j}_food_ug",
            "ug",
            _schedule(food, "ug", f"meal_{j}_day", after=None),
            value=food[0],
            name=f"food B12 of meal {j} (day's food / meals)",
        )
        b.rule(
            f"meal_{j}_oral_ug",
            "ug",
            _schedule(oral[:, j], "ug", f"meal_{j}_day"),
            value=oral[0, j],
            name=f"crystalline oral dose taken with meal {j}",
        )
    im = pr.im_ug[0].double().numpy()
    has_im = bool((im != 0).any())
    if has_im:
        b.rule("im_dose_today_ug", "ug", _schedule(im, "ug", "day_index"), value=im[0])
    cfu = None if pr.probiotic_cfu is None else pr.probiotic_cfu[0].double().numpy()
    probiotic_taxa = [] if cfu is None else [t for t in taxa if (cfu[:, tix[t]] != 0).any()]
    for t in probiotic_taxa:
        b.rule(
            f"probiotic_cfu_today__{t}",
            "item",
            _schedule(cfu[:, tix[t]], "item", "day_index"),
            value=cfu[0, tix[t]],
            name=f"cfu of {t} swallowed at the start of the day",
        )
    fibre = None if pr.prebiotic_g is None else pr.prebiotic_g[0].double().numpy()
    b.parameter(
        "prebiotic_fibre_g_per_day",
        0.0 if fibre is None else fibre[0],
        "g_per_day",
        constant=False,
        name="prebiotic fibre eaten today (set by day_start)",
    )

    # -- activity multipliers ----------------------------------------------------------------
    agents = taxon_ids()[:-1]
    act_id = {}
    for t in taxa:
        if t not in agents:
            continue
        i = taxon_ids().index(t)
        for a_i, a in enumerate(ACTIVITIES):
            if not bool(meta.allowed[i, a_i]):
                continue
            pid = f"activity__{t}__{a}"
            act_id[(t, a)] = pid
            series = (
                None
                if activity is None
                else (activity[:, i, a_i] if per_day else activity[i, a_i].reshape(1))
            )
            v0 = 1.0 if series is None else float(series[0])
            par = b.parameter(
                pid,
                v0,
                "dimensionless",
                constant=not per_day,
                name=f"agent activity multiplier: {a} of {t} (identity 1, range ×0.25–×4)",
            )
            b.cv(par, "hasProperty", [f"{IDENTIFIERS}taxonomy:{by_taxon[t].ncbi_taxid}"])

    def act(t: str, a: str) -> str:
        return act_id.get((t, a), one)

    # -- taxa --------------------------------------------------------------------------------
    y0 = x0[taxa_slice()]
    for t in taxa:
        i = tix[t]
        tx = by_taxon[t]
        par = b.parameter(
            f"log_abundance__{t}",
            float(y0[i]),
            "dimensionless",
            constant=False,
            name=f"ln relative abundance of {tx.name}",
        )
        b.cv(par, "is", [f"{IDENTIFIERS}taxonomy:{tx.ncbi_taxid}"])
        b.rule(f"abundance__{t}", "dimensionless", f"exp(log_abundance__{t})")
        b.parameter(
            f"growth_rate__{t}",
            float(growth[i]),
            "per_day",
            name=f"intrinsic growth rate of {t} (steady_state: baseline composition steady)",
        )
        b.parameter(
            f"niche_log_abundance__{t}",
            float(niche[i]),
            "dimensionless",
            name=f"log abundance {t}'s niche restores towards (baseline)",
        )
        b.rule(
            f"true_fraction_eff__{t}",
            "dimensionless",
            f"true_fraction__{t} * {act(t, 'dmb_attachment')} / (true_fraction__{t} * "
            f"{act(t, 'dmb_attachment')} + (1 dimensionless - true_fraction__{t}))",
            name=f"true-cobalamin share of {t}'s corrinoids (DMB odds × activity)",
        )
        cost = [f"production_cost__{t} * {act(t, 'de_novo_synthesis')}"]
        for a, rate in (
            ("dmb_attachment", "dmb_attachment_cost_per_day"),
            ("uptake", "uptake_cost_per_day"),
            ("remodelling", "remodelling_cost_per_day"),
        ):
            if (t, a) in act_id:
                cost.append(f"{rate} * {act_id[(t, a)]}")
        b.rule(f"cost__{t}", "per_day", " + ".join(cost), name=f"fitness cost of {t}'s activities")
        b.rule(
            f"monod__{t}",
            "dimensionless",
            f"{act(t, 'uptake')} * Z_colon / (microbial_uptake_half_saturation_ug + "
            f"{act(t, 'uptake')} * Z_colon)",
            name=f"Monod factor of {t} on free colonic corrinoid",
        )
    b.rule(
        "Z_colon",
        "ug",
        "pos(colon_cobalamin) + pos(colon_analogue)",
        name="free colonic corrinoid",
    )

    def tsum(term) -> str:
        return " + ".join(f"({term(t)})" for t in taxa)

    si_w = "si_biomass_ratio__{t} * si_bacterial_load"
    b.rule(
        "colon_synthesis_cobalamin",
        "ug_per_day",
        tsum(
            lambda t: (
                f"synthesis__{t} * {act(t, 'de_novo_synthesis')} * "
                f"true_fraction_eff__{t} * abundance__{t}"
            )
        ),
        name="microbial true-cobalamin synthesis in the colon",
    )
    b.rule(
        "colon_synthesis_analogue",
        "ug_per_day",
        tsum(
            lambda t: (
                f"synthesis__{t} * {act(t, 'de_novo_synthesis')} * "
                f"(1 dimensionless - true_fraction_eff__{t}) * abundance__{t}"
            )
        ),
        name="microbial analogue synthesis in the colon",
    )
    b.rule(
        "colon_uptake_capacity",
        "ug_per_day",
        tsum(lambda t: f"uptake__{t} * {act(t, 'uptake')} * abundance__{t}"),
    )
    b.rule(
        "remodelling_to_cobalamin_rate",
        "per_day",
        tsum(
            lambda t: (
                f"remodelling__{t} * {act(t, 'remodelling')} * true_fraction_eff__{t}"
                f" * abundance__{t}"
            )
        ),
    )
    b.rule(
        "remodelling_to_analogue_rate",
        "per_day",
        tsum(
            lambda t: (
                f"remodelling__{t} * {act(t, 'remodelling')} * "
                f"(1 dimensionless - true_fraction_eff__{t}) * abundance__{t}"
            )
        ),
    )
    b.rule(
        "si_synthesis_cobalamin",
        "ug_per_day",
        tsum(
            lambda t: (
                f"synthesis__{t} * {act(t, 'de_novo_synthesis')} * "
                f"true_fraction_eff__{t} * {si_w.format(t=t)} * abundance__{t}"
            )
        ),
    )
    b.rule(
        "si_synthesis_analogue",
        "ug_per_day",
        tsum(
            lambda t: (
                f"synthesis__{t} * {act(t, 'de_novo_synthesis')} * "
                f"(1 dimensionless - true_fraction_eff__{t}) * {si_w.format(t=t)} * "
                f"abundance__{t}"
            )
        ),
    )
    b.rule(
        "si_uptake_capacity",
        "ug_per_day",
        tsum(lambda t: f"uptake__{t} * {act(t, 'uptake')} * {si_w.format(t=t)} * abundance__{t}"),
    )
    dependent = {t: bool(meta.dependent[tix[t]]) for t in taxa}
    b.rule(
        "propionate_rate",
        "mmol_per_day",
        tsum(
            lambda t: f"propionate__{t} * {'monod__' + t if dependent[t] else one} * abundance__{t}"
        ),
        name="colonic propionate production",
    )
    b.rule("community_size", "dimensionless", tsum(lambda t: f"abundance__{t}"))
    b.rule(
        "si_capture_fraction",
        "dimensionless",
        "1 dimensionless - exp(-(si_uptake_capacity / microbial_uptake_half_saturation_ug * "
        "si_residence_d))",
        name="fraction of a meal bolus captured by small-intestinal bacteria",
    )
    for t in taxa:
        shift = ""
        if t in PREBIOTIC_TAXA:
            shift = (
                f" - {PREBIOTIC_TAXA[t]} * prebiotic_fibre_g_per_day / "
                "(prebiotic_fibre_g_per_day + prebiotic_half_saturation_g)"
            )
        niche_term = ""
        if bool(meta.resident[tix[t]]):
            niche_term = (
                f" - community_resilience_per_day * (log_abundance__{t} - "
                f"niche_log_abundance__{t}{shift})"
            )
        b.rate_rule(
            f"log_abundance__{t}",
            f"growth_rate__{t} * ((1 dimensionless - growth_dependence__{t}) + "
            f"growth_dependence__{t} * monod__{t}) - cost__{t} - colon_transit_per_day - "
            f"glv_competition_per_day * (community_size - 1 dimensionless){niche_term}",
        )

    # -- species -----------------------------------------------------------------------------
    for pool, (comp, name, is_ids, part_ids) in SPECIES.items():
        s = m.createSpecies()
        s.setId(pool.removesuffix("_ug"))
        s.setName(name)
        s.setCompartment(comp)
        s.setInitialAmount(float(x0[pool_index(pool)]))
        s.setSubstanceUnits("ug")
        s.setHasOnlySubstanceUnits(True)
        s.setBoundaryCondition(False)
        s.setConstant(False)
        b.cv(s, "is", [f"{IDENTIFIERS}kegg.compound:{c}" for c in is_ids])
        b.cv(s, "hasPart", [f"{IDENTIFIERS}kegg.compound:{c}" for c in part_ids])

    # -- plasma binding helpers --------------------------------------------------------------
    b.rule(
        "unbound_holotc",
        "ug",
        "unbound(pos(holotc), tc_capacity_ug, binder_saturation_width * tc_capacity_ug)",
        name="B12 beyond transcobalamin",
    )
    b.rule(
        "unbound_holohc",
        "ug",
        "unbound(pos(holohc), hc_capacity_ug, binder_saturation_width * hc_capacity_ug)",
        name="B12 beyond haptocorrin",
    )
    b.rule("bound_holotc", "ug", "pos(holotc) - unbound_holotc")
    b.rule("bound_holohc", "ug", "pos(holohc) - unbound_holohc")
    b.rule("hc_room", "dimensionless", "pos(1 dimensionless - bound_holohc / hc_capacity_ug)")
    for store in ("liver", "peripheral"):
        b.rule(
            f"release_{store}",
            "ug_per_day",
            f"tissue_release_per_day * pos({store}) / (1 dimensionless + pos({store}) / "
            "tissue_release_saturation_ug)",
            name=f"release from the {store} store",
        )

    # -- reactions (the fluxes of dynamics) --------------------------------------------------
    colon_v = (
        "colon_uptake_capacity / (microbial_uptake_half_saturation_ug + Z_colon + "
        "tau_mix_d * colon_uptake_capacity)"
    )
    si_v = (
        "si_uptake_capacity / (microbial_uptake_half_saturation_ug + pos(si_cobalamin) + "
        "pos(si_analogue) + tau_mix_d * si_uptake_capacity)"
    )
    rem_norm = (
        "(1 dimensionless / (1 dimensionless + tau_mix_d * (remodelling_to_cobalamin_rate + "
        "remodelling_to_analogue_rate)))"
    )
    reactions = [
        ("entry_to_plasma", "entry", "holotc", "k_entry * pos(entry)", "enterocyte → holoTC"),
        (
            "depot_release",
            "im_depot",
            "holotc",
            "im_depot_release_per_day * pos(im_depot)",
            "intramuscular depot → holoTC",
        ),
        (
            "liver_release_tc",
            "liver",
            "holotc",
            "(1 dimensionless - hc_binding_fraction) * release_liver",
            "liver store → holoTC",
        ),
        (
            "liver_release_hc",
            "liver",
            "holohc",
            "hc_binding_fraction * release_liver",
            "liver store → holoHC",
        ),
        (
            "peripheral_release_tc",
            "peripheral",
            "holotc",
            "(1 dimensionless - hc_binding_fraction) * release_peripheral",
            "peripheral store → holoTC",
        ),
        (
            "peripheral_release_hc",
            "peripheral",
            "holohc",
            "hc_binding_fraction * release_peripheral",
            "peripheral store → holoHC",
        ),
        (
            "holotc_to_liver",
            "holotc",
            "liver",
            "liver_uptake_fraction * k_tc * bound_holotc",
            "tissue uptake of holoTC: liver",
        ),
        (
            "holotc_to_peripheral",
            "holotc",
            "peripheral",
            "(1 dimensionless - liver_uptake_fraction) * k_tc * bound_holotc",
            "tissue uptake of holoTC: peripheral tissues",
        ),
        (
            "holotc_renal",
            "holotc",
            None,
            "unbound_b12_renal_clearance_per_day * unbound_holotc",
            "renal clearance of B12 beyond transcobalamin",
        ),
        (
            "holotc_to_holohc",
            "holotc",
            "holohc",
            "unbound_b12_hc_binding_per_day * hc_room * unbound_holotc * hc_capacity_ug / "
            "(unbound_holotc + hc_capacity_ug)",
            "unbound B12 binds free haptocorrin",
        ),
        (
            "holohc_to_liver",
            "holohc",
            "liver",
            "k_hc * bound_holohc",
            "hepatic clearance of holoHC",
        ),
        (
            "holohc_renal",
            "holohc",
            None,
            "unbound_b12_renal_clearance_per_day * unbound_holohc",
            "renal clearance of B12 beyond haptocorrin",
        ),
        (
            "bile_secretion",
            "liver",
            "si_cobalamin",
            "bile_secretion_per_day * pos(liver)",
            "biliary secretion",
        ),
        (
            "peripheral_loss",
            "peripheral",
            None,
            "nonbiliary_loss_per_day * pos(peripheral)",
            "non-biliary losses",
        ),
        (
            "si_synthesis_cob",
            None,
            "si_cobalamin",
            "si_synthesis_cobalamin",
            "small-bowel microbial cobalamin synthesis",
        ),
        (
            "si_synthesis_ana",
            None,
            "si_analogue",
            "si_synthesis_analogue",
            "small-bowel microbial analogue synthesis",
        ),
        (
            "si_uptake_cob",
            "si_cobalamin",
            None,
            f"{si_v} * pos(si_cobalamin)",
            "small-bowel microbial uptake of cobalamin",
        ),
        (
            "si_uptake_ana",
            "si_analogue",
            None,
            f"{si_v} * pos(si_analogue)",
            "small-bowel microbial uptake of analogues",
        ),
        (
            "colon_synthesis_cob",
            None,
            "colon_cobalamin",
            "colon_synthesis_cobalamin",
            "colonic microbial cobalamin synthesis",
        ),
        (
            "colon_synthesis_ana",
            None,
            "colon_analogue",
            "colon_synthesis_analogue",
            "colonic microbial analogue synthesis",
        ),
        (
            "colon_remodelling_to_cob",
            "colon_analogue",
            "colon_cobalamin",
            f"remodelling_to_cobalamin_rate * {rem_norm} * pos(colon_analogue)",
            "remodelling analogue → cobalamin",
        ),
        (
            "colon_remodelling_to_ana",
            "colon_cobalamin",
            "colon_analogue",
            f"remodelling_to_analogue_rate * {rem_norm} * pos(colon_cobalamin)",
            "remodelling cobalamin → analogue",
        ),
        (
            "colon_washout_cob",
            "colon_cobalamin",
            None,
            "colon_transit_per_day * pos(colon_cobalamin)",
            "faecal loss of free cobalamin",
        ),
        (
            "colon_washout_ana",
            "colon_analogue",
            None,
            "colon_transit_per_day * pos(colon_analogue)",
            "faecal loss of free analogues",
        ),
        (
            "colon_uptake_cob",
            "colon_cobalamin",
            None,
            f"{colon_v} * pos(colon_cobalamin)",
            "colonic microbial uptake of cobalamin",
        ),
        (
            "colon_uptake_ana",
            "colon_analogue",
            None,
            f"{colon_v} * pos(colon_analogue)",
            "colonic microbial uptake of analogues",
        ),
        (
            "colonic_absorption",
            "colon_cobalamin",
            "entry",
            "k_col * pos(colon_cobalamin)",
            "colonic absorption of free true cobalamin",
        ),
    ]
    ec = {}
    for r in load_reactions():
        if r.organism == "microbial" and r.activity is not None and r.ec is not None:
            ec.setdefault(r.activity, []).append(r.ec)
    for rid, src, dst, law, name in reactions:
        rx = b.reaction(rid, src, dst, law, name)
        kind = (
            ["de_novo_synthesis", "dmb_attachment"]
            if "synthesis" in rid
            else ["uptake"]
            if "uptake" in rid
            else ["remodelling"]
            if "remodelling" in rid
            else []
        )
        uris = [f"{IDENTIFIERS}ec-code:{e}" for a in kind for e in dict.fromkeys(ec.get(a, []))]
        b.cv(rx, "isVersionOf", list(dict.fromkeys(uris)))

    # -- propionate bookkeeping and biomarkers -----------------------------------------------
    b.parameter(
        "propionate_cumulative_mmol",
        0.0,
        "mmol",
        constant=False,
        name="colonic propionate produced since t = 0",
    )
    b.rate_rule("propionate_cumulative_mmol", "propionate_rate")
    b.parameter("propionate_day_mark_mmol", 0.0, "mmol", constant=False)
    prop_par = b.parameter(
        "propionate_last_day_mmol",
        prop0,
        "mmol",
        constant=False,
        name="colonic propionate of the last whole day (before day 0: the steady state)",
    )
    mets = {mm.id: mm for mm in load_metabolites()}
    b.cv(prop_par, "is", [f"{IDENTIFIERS}kegg.compound:{mets['propionate'].kegg}"])
    b.rule(
        "serum_b12_pmol_l",
        "pmol_per_l",
        "(holotc + holohc) * pmol_per_ug / plasma",
        name="serum B12",
    )
    b.rule("holotc_pmol_l", "pmol_per_l", "holotc * pmol_per_ug / plasma", name="holoTC")
    b.rule("holohc_pmol_l", "pmol_per_l", "holohc * pmol_per_ug / plasma", name="holoHC")
    mma = b.rule(
        "mma_umol_l",
        "umol_per_l",
        "(mma_floor_umol_l + mma_span_umol_l / (1 dimensionless + (pos(peripheral) / "
        "mma_status_half_ug) ^ mma_hill)) * (1 dimensionless - mma_gut_propionate_share + "
        "mma_gut_propionate_share * propionate_last_day_mmol / "
        "(propionate_reference_mmol_per_day * one_day))",
        name="serum methylmalonic acid",
    )
    b.cv(mma, "is", [f"{IDENTIFIERS}kegg.compound:{mets['methylmalonate'].kegg}"])
    hcy = b.rule(
        "hcy_umol_l",
        "umol_per_l",
        "hcy_floor_umol_l + hcy_span_umol_l / (1 dimensionless + (pos(peripheral) / "
        "hcy_status_half_ug) ^ hcy_hill) + hcy_genetic_umol_l",
        name="plasma total homocysteine",
    )
    b.cv(hcy, "is", [f"{IDENTIFIERS}kegg.compound:{mets['homocysteine'].kegg}"])

    # -- events ------------------------------------------------------------------------------
    day_assign = [
        (
            "propionate_last_day_mmol",
            "piecewise(propionate_cumulative_mmol - propionate_day_mark_mmol, "
            "day_index > 0 day, propionate_last_day_mmol)",
        ),
        ("propionate_day_mark_mmol", "propionate_cumulative_mmol"),
    ]
    if has_im:
        day_assign.append(("im_depot", "im_depot + im_dose_today_ug"))
    for t in probiotic_taxa:
        delivered = f"probiotic_dose_scale * probiotic_cfu_today__{t}"
        day_assign.append(
            (
                f"log_abundance__{t}",
                f"piecewise(ln(exp(log_abundance__{t}) + {delivered}), "
                f"{delivered} > 0 dimensionless, log_abundance__{t})",
            )
        )
    if fibre is not None:
        day_assign.append(("prebiotic_fibre_g_per_day", _schedule(fibre, "g_per_day", "day_index")))
    if per_day:
        for (t, a), pid in act_id.items():
            series = activity[:, taxon_ids().index(t), ACTIVITIES.index(a)].numpy()
            day_assign.append((pid, _schedule(series, "dimensionless", "day_index", after=None)))
    day_assign.append(("day_index", "day_index + 1 day"))
    b.event(
        "day_start",
        "time >= day_index",
        2,
        day_assign,
        name="start of a day: the last day's propionate; injection, probiotic, fibre, activity",
    )
    for j, s in enumerate(slots):
        offset = s / substeps
        b.rule(
            f"meal_{j}_ileal_ug",
            "ug",
            f"gastric_release * meal_{j}_food_ug + meal_{j}_oral_ug + pos(si_cobalamin)",
            name=f"true cobalamin reaching the ileum with meal {j}",
        )
        avail = f"(meal_{j}_ileal_ug * (1 dimensionless - si_capture_fraction))"
        b.rule(
            f"meal_{j}_load_ug",
            "ug",
            f"{avail} + analogue_if_competition * pos(si_analogue) * "
            "(1 dimensionless - si_capture_fraction)",
            name=f"IF load of meal {j} (analogues compete)",
        )
        b.rule(
            f"meal_{j}_if_ug",
            "ug",
            f"piecewise(if_small_dose_fraction * meal_{j}_load_ug / (1 dimensionless + "
            f"(if_small_dose_fraction * meal_{j}_load_ug / if_capacity_ug) ^ "
            f"if_saturation_sharpness) ^ (1 dimensionless / if_saturation_sharpness), "
            "if_capacity_ug > 0 ug, 0 ug)",
            name=f"intrinsic-factor absorption of meal {j}",
        )
        b.rule(
            f"meal_{j}_absorbed_ug",
            "ug",
            f"piecewise(meal_{j}_if_ug * {avail} / meal_{j}_load_ug, meal_{j}_load_ug > 0 ug, "
            f"0 ug) + passive_absorption_fraction * {avail}",
            name=f"true cobalamin absorbed from meal {j}",
        )
        b.event(
            f"meal_{j}",
            f"time >= meal_{j}_day + {_n(offset, 'day')}",
            1,
            [
                ("entry", f"entry + meal_{j}_absorbed_ug"),
                ("si_cobalamin", "si_cobalamin - pos(si_cobalamin)"),
                ("si_analogue", "si_analogue - pos(si_analogue)"),
                (
                    "colon_cobalamin",
                    f"colon_cobalamin + meal_{j}_food_ug - gastric_release * meal_{j}_food_ug "
                    f"+ meal_{j}_ileal_ug - meal_{j}_ileal_ug * si_capture_fraction - "
                    f"meal_{j}_absorbed_ug",
                ),
                (
                    "colon_analogue",
                    "colon_analogue + pos(si_analogue) * (1 dimensionless - si_capture_fraction)",
                ),
                (f"meal_{j}_day", f"meal_{j}_day + 1 day"),
            ],
            name=f"meal {j} at {offset:.4g} d into each day: food, oral dose, bile",
        )

    notes = (
        f"Generated by biofluxopt {__version__} (biofluxopt.sim.export_sbml). One patient of a "
        f"protocol of {days} days, {meals} meals/day on a grid of {substeps} sub-steps/day. "
        "Time in days, amounts in µg (see docs/sbml.md and docs/sim.md for the equations). "
        "Initial state: the patient's steady state (biofluxopt.sim.steady_state). Doses "
        "scheduled beyond the protocol's last day are zero; food continues at its last value. "
        "Taxa absent at baseline stay absent and are omitted. "
        f"{desc}"
    )
    b.notes(m, notes.strip())
    return b.sbml.writeSBMLToString(b.doc)


def check_sbml(sbml: str) -> SBMLCheck:
    """libSBML's consistency checks of an SBML document, with strict unit consistency.

    Parameters
    ----------
    sbml : str
        SBML text (e.g. from :func:`export_sbml`).

    Returns
    -------
    SBMLCheck
        Errors (severity error or fatal) and warnings, each ``"[id] message"``.
    """
    sb = _libsbml()
    doc = sb.readSBMLFromString(sbml)
    doc.setConsistencyChecks(sb.LIBSBML_CAT_UNITS_CONSISTENCY, True)
    doc.setConsistencyChecks(sb.LIBSBML_CAT_MODELING_PRACTICE, True)
    doc.checkConsistency()
    errors, warnings = [], []
    for i in range(doc.getNumErrors()):
        e = doc.getError(i)
        text = f"[{e.getErrorId()}] {' '.join(e.getMessage().split())}"
        strict = e.getCategory() == sb.LIBSBML_CAT_UNITS_CONSISTENCY
        serious = strict or e.getSeverity() >= sb.LIBSBML_SEV_ERROR
        (errors if serious else warnings).append(text)
    return SBMLCheck(tuple(errors), tuple(warnings))


def _setup(spec: ProtocolSpec, patient: int, seed: int | None):
    """Parameters, protocol, initial state and activity of one patient of a spec, as
    :func:`~._run.run_protocol` builds them."""
    from ._protocol import build_protocol
    from ._run import protocol_activity, protocol_params, protocol_state0

    if not 0 <= patient < spec.patients:
        raise SBMLExportError(
            f"patient {patient} does not exist: the protocol has {spec.patients} patient(s), "
            f"indices 0 to {spec.patients - 1}",
            field="--patient",
        )
    params = protocol_params(spec, seed=seed).index([patient])
    protocol = build_protocol(spec, n_patients=1)
    state0 = protocol_state0(spec, params, protocol)
    act = protocol_activity(spec)
    return params, protocol, state0, None if act is None else act[:1]


def export_sbml(
    protocol: ProtocolSpec | str | Path,
    *,
    patient: int = 0,
    seed: int | None = None,
    substeps_per_day: int | None = None,
) -> str:
    """SBML Level 3 Version 2 of one patient of a protocol (what ``export-sbml`` writes).

    Parameters
    ----------
    protocol : ProtocolSpec or path
        A protocol (TOML file or spec, format in docs/sim.md).
    patient : int, default=0
        Which patient (``0 … patients − 1``): with ``patients > 1`` every patient has its own
        sampled parameters, so each file is one person.
    seed : int, optional
        Overrides the protocol's ``seed`` (parameter variability), as ``--seed`` does for
        ``biofluxopt simulate``.
    substeps_per_day : int, optional
        Grid the meal times are placed on; default the protocol's ``substeps_per_day``.

    Returns
    -------
    str
        The SBML document.

    Raises
    ------
    SBMLExportError
        Unknown patient index (no file should be written).
    ConfigError
        An invalid protocol.

    Examples
    --------
    >>> from biofluxopt import sim                                    # doctest: +SKIP
    >>> xml = sim.export_sbml(sim.example_protocol("vegan_no_supplement"), patient=2)
    """
    spec = protocol if isinstance(protocol, ProtocolSpec) else load_protocol(protocol)
    params, prot, state0, act = _setup(spec, patient, seed)
    name = "" if isinstance(protocol, ProtocolSpec) else f"Protocol file: {Path(protocol).name}."
    return to_sbml(
        params,
        state0,
        prot,
        activity=act,
        substeps_per_day=substeps_per_day or spec.substeps_per_day,
        description=f"{name} Patient {patient} of {spec.patients}; seed "
        f"{spec.seed if seed is None else seed}.",
    )


def simulate_sbml(
    sbml: str,
    *,
    days: int,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    outputs: tuple[str, ...] = ("serum_b12_pmol_l", "holotc_pmol_l", "mma_umol_l", "hcy_umol_l"),
) -> dict[str, np.ndarray]:
    """Simulate an exported model with libRoadRunner (CVODE, adaptive) at the end of each day.

    The values at ``t = d`` are read after the events of that instant, which move no plasma
    or store pool: they equal the end-of-day records of :func:`~biofluxopt.sim.simulate`
    (``Solution.daily[key][:, d]``), the previous day's propionate included.

    Parameters
    ----------
    sbml : str
    days : int
        Days simulated (``days + 1`` records, day 0 the start).
    rtol, atol : float
        CVODE tolerances.
    outputs : tuple of str
        Model ids to record.

    Returns
    -------
    dict of str to ndarray, each ``[days + 1]``; ``"load_seconds"`` holds the wall time of
    reading and compiling the model, ``"seconds"`` that of the integration.
    """
    try:
        import roadrunner
    except ImportError:  # pragma: no cover - depends on the environment
        raise SBMLExportError(
            "simulating an export needs libroadrunner: pip install 'biofluxopt[sbml]'"
        ) from None
    start = _time.perf_counter()
    rr = roadrunner.RoadRunner(sbml)
    loaded = _time.perf_counter()
    rr.integrator.relative_tolerance = rtol
    rr.integrator.absolute_tolerance = atol
    rr.integrator.maximum_num_steps = 100000
    rr.timeCourseSelections = ["time", *outputs]
    res = rr.simulate(times=[float(d) for d in range(days + 1)])
    out = {key: np.asarray(res[:, i + 1], dtype=np.float64) for i, key in enumerate(outputs)}
    out["load_seconds"] = np.array(loaded - start)
    out["seconds"] = np.array(_time.perf_counter() - loaded)
    return out


#: Biomarkers the cross-check compares (the issue's acceptance: serum B12, holoTC, MMA).
CROSS_CHECK_KEYS = ("serum_b12_pmol_l", "holotc_pmol_l", "mma_umol_l")


def cross_check_sbml(
    protocol: ProtocolSpec | str | Path,
    *,
    patient: int = 0,
    seed: int | None = None,
    days: int | None = None,
    activity: torch.Tensor | None = None,
    substeps_per_day: int = 288,
) -> dict:
    """Simulate one patient both ways: the export in libRoadRunner and the torch model.

    Both start from the same steady state. The torch run uses RK4 at ``substeps_per_day``
    (fine: its discretisation error is then far below the tolerance checked), with the meals
    on the protocol's own grid, where the export places them; RoadRunner integrates the
    export adaptively (CVODE, rtol 1e-10).

    Parameters
    ----------
    protocol : ProtocolSpec or path
    patient : int, default=0
    seed : int, optional
        Overrides the protocol's seed.
    days : int, optional
        Horizon; defaults to the protocol's ``days``. A longer horizon extends the protocol
        (regimens without ``end_day`` continue, the others stay finished).
    activity : Tensor, optional
        Activity multipliers ``[agents, 4]`` or ``[days, agents, 4]`` instead of the
        protocol's ``[activity]`` table.
    substeps_per_day : int, default=288
        RK4 sub-steps per day of the torch run; a multiple of the protocol's
        ``substeps_per_day`` keeps the meal times identical.

    Returns
    -------
    dict
        ``max_rel_error`` (over days 0 … days and the keys of :data:`CROSS_CHECK_KEYS`),
        ``max_rel_error_by_key``, ``roadrunner_s``, ``torch_s`` (wall times of the
        integrations alone), ``roadrunner_load_s`` (reading and compiling the SBML),
        ``days``, ``torch``/``roadrunner`` (the daily series).
    """
    spec = protocol if isinstance(protocol, ProtocolSpec) else load_protocol(protocol)
    if days is not None and days != spec.days:
        spec = spec.model_copy(update={"days": int(days)})
    params, prot, state0, act = _setup(spec, patient, seed)
    if activity is not None:
        act = activity.to(torch.float64).unsqueeze(0)
    sbml = to_sbml(params, state0, prot, activity=act, substeps_per_day=spec.substeps_per_day)
    rr = simulate_sbml(sbml, days=spec.days)
    m = spec.diet.meals_per_day
    fine = [Fraction(s, substeps_per_day) for s in meal_slots(m, substeps_per_day)]
    grid = [Fraction(s, spec.substeps_per_day) for s in meal_slots(m, spec.substeps_per_day)]
    if fine != grid:
        raise SBMLExportError(
            f"substeps_per_day={substeps_per_day} places the meals elsewhere than the "
            f"protocol's {spec.substeps_per_day}; use a multiple of it",
            field="substeps_per_day",
        )
    start = _time.perf_counter()
    with torch.no_grad():
        sol = _simulate(params, state0, prot, activity=act, substeps_per_day=substeps_per_day)
    torch_s = _time.perf_counter() - start
    by_key = {}
    for key in CROSS_CHECK_KEYS:
        ref = sol.daily[key][0].numpy()
        by_key[key] = float(np.max(np.abs(rr[key] - ref) / np.abs(ref)))
    return {
        "max_rel_error": max(by_key.values()),
        "max_rel_error_by_key": by_key,
        "roadrunner_s": float(rr["seconds"]),
        "roadrunner_load_s": float(rr["load_seconds"]),
        "torch_s": torch_s,
        "days": spec.days,
        "torch": {key: sol.daily[key][0].numpy() for key in CROSS_CHECK_KEYS},
        "roadrunner": {key: rr[key] for key in CROSS_CHECK_KEYS},
    }


__all__ = [
    "CROSS_CHECK_KEYS",
    "SBMLCheck",
    "SBMLExportError",
    "check_sbml",
    "cross_check_sbml",
    "export_sbml",
    "simulate_sbml",
    "to_sbml",
]
