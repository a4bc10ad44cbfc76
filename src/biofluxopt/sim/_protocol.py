"""Dosing protocols: the TOML format (validated with pydantic) and the batched tensor form.

A protocol holds everything that is given to the simulator from outside: host factors, diet,
supplements (oral or intramuscular), optional microbiome composition, activity multipliers and
parameter overrides. :func:`load_protocol` reads and validates a TOML file;
:func:`build_protocol` turns a spec (or keyword arguments) into :class:`Protocol` tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from torch import Tensor

from biofluxopt._util import ConfigError
from biofluxopt.knowledge import load_parameters, load_taxa, read_toml

from ._params import POPULATION_SPREAD, taxon_ids

IF_LEVELS = ("normal", "reduced", "absent")
GASTRIC_LEVELS = ("normal", "impaired")
FUT2_LEVELS = ("secretor", "nonsecretor")
TCN2_LEVELS = ("CC", "CG", "GG")
MTHFR_LEVELS = ("CC", "CT", "TT")
ACTIVITIES = ("de_novo_synthesis", "dmb_attachment", "uptake", "remodelling")
#: Action range of the agents' activity multipliers (DESIGN §4): ×0.25 … ×4.
ACTION_RANGE = (0.25, 4.0)


#: RK4 sub-steps per day: hourly by default; finer when a dose can saturate transcobalamin.
SUBSTEPS_DEFAULT, SUBSTEPS_SATURATING = 24, 96
#: Oral dose (µg) from which the absorbed bolus can exceed transcobalamin's capacity.
SATURATING_ORAL_DOSE_UG = 100.0


def default_substeps(max_oral_dose_ug: float, injections: bool) -> int:
    """Sub-steps per day for a protocol: 24, or 96 when an oral dose ≥ 100 µg or an injection
    can push plasma transcobalamin past its capacity within hours. Crossing that bend is the
    least smooth part of the model; at hourly steps it costs up to ~10 % in serum B12 over the
    first weeks of a 1000 µg/day regimen with absent IF, at 96 sub-steps < 1e-3 (checked
    against the stiff reference integrator, docs/sim.md)."""
    if injections or max_oral_dose_ug >= SATURATING_ORAL_DOSE_UG:
        return SUBSTEPS_SATURATING
    return SUBSTEPS_DEFAULT


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class HostSpec(_Strict):
    intrinsic_factor: Literal["normal", "reduced", "absent"] = "normal"
    gastric_release: Literal["normal", "impaired"] = "normal"
    baseline_serum_b12_pmol_l: float | None = Field(default=None, gt=0, le=5000)
    fut2: Literal["secretor", "nonsecretor"] = "secretor"
    tcn2_776: Literal["CC", "CG", "GG"] = "CC"
    mthfr_677: Literal["CC", "CT", "TT"] = "CC"

    @field_validator("baseline_serum_b12_pmol_l", mode="before")
    @classmethod
    def _int_ok(cls, v):
        return float(v) if isinstance(v, int) and not isinstance(v, bool) else v


class DietSpec(_Strict):
    b12_ug_per_day: float = Field(default=4.0, ge=0, le=1000)
    meals_per_day: int = Field(default=3, ge=1, le=8)

    @field_validator("b12_ug_per_day", mode="before")
    @classmethod
    def _int_ok(cls, v):
        return float(v) if isinstance(v, int) and not isinstance(v, bool) else v


class SupplementSpec(_Strict):
    route: Literal["oral", "intramuscular"]
    dose_ug: float = Field(gt=0, le=100000)
    times_per_day: int = Field(default=1, ge=1, le=8)
    start_day: int = Field(default=0, ge=0)
    end_day: int | None = Field(default=None, ge=1)
    days: list[int] | None = None

    @field_validator("dose_ug", mode="before")
    @classmethod
    def _int_ok(cls, v):
        return float(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @model_validator(mode="after")
    def _schedule(self) -> SupplementSpec:
        if self.days is not None:
            if self.end_day is not None or self.start_day != 0:
                raise ValueError("give either 'days' or 'start_day'/'end_day', not both")
            if any(d < 0 for d in self.days):
                raise ValueError("'days' must be >= 0")
        elif self.end_day is not None and self.end_day <= self.start_day:
            raise ValueError("'end_day' must be greater than 'start_day'")
        if self.route == "intramuscular" and self.times_per_day != 1:
            raise ValueError("'times_per_day' must be 1 for intramuscular injections")
        return self


class ProbioticSpec(_Strict):
    """One probiotic regimen: ``cfu_per_day`` of ``taxon`` with the first meal of each day."""

    taxon: str
    cfu_per_day: float = Field(gt=0, le=1e13)
    start_day: int = Field(default=0, ge=0)
    end_day: int | None = Field(default=None, ge=1)

    @field_validator("cfu_per_day", mode="before")
    @classmethod
    def _int_ok(cls, v):
        return float(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @model_validator(mode="after")
    def _schedule(self) -> ProbioticSpec:
        if self.end_day is not None and self.end_day <= self.start_day:
            raise ValueError("'end_day' must be greater than 'start_day'")
        return self


class PrebioticSpec(_Strict):
    """One prebiotic-fibre regimen: ``g_per_day`` of an inulin-type fructan or GOS."""

    fibre: Literal["inulin", "fos", "gos"] = "inulin"
    g_per_day: float = Field(gt=0, le=50)
    start_day: int = Field(default=0, ge=0)
    end_day: int | None = Field(default=None, ge=1)

    @field_validator("g_per_day", mode="before")
    @classmethod
    def _int_ok(cls, v):
        return float(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @model_validator(mode="after")
    def _schedule(self) -> PrebioticSpec:
        if self.end_day is not None and self.end_day <= self.start_day:
            raise ValueError("'end_day' must be greater than 'start_day'")
        return self


class ProtocolSpec(_Strict):
    """A validated protocol file (see docs/sim.md for every key, unit and allowed value)."""

    days: int = Field(ge=1, le=36500)
    patients: int = Field(default=1, ge=1, le=1_000_000)
    seed: int = 0
    variability: float = Field(default=POPULATION_SPREAD, ge=0, le=3)
    substeps_per_day: int | None = Field(default=None, ge=4, le=288)
    host: HostSpec = HostSpec()
    diet: DietSpec = DietSpec()
    supplement: list[SupplementSpec] = []
    probiotic: list[ProbioticSpec] = []
    prebiotic: list[PrebioticSpec] = []
    microbiome: dict[str, float] | None = None
    activity: dict[str, dict[str, float]] | None = None
    parameters: dict[str, float] | None = None

    @field_validator("variability", mode="before")
    @classmethod
    def _int_ok(cls, v):
        return float(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("microbiome", "parameters", mode="before")
    @classmethod
    def _floats(cls, v):
        if isinstance(v, dict):
            return {
                k: float(x) if isinstance(x, int) and not isinstance(x, bool) else x
                for k, x in v.items()
            }
        return v

    @field_validator("activity", mode="before")
    @classmethod
    def _floats2(cls, v):
        if isinstance(v, dict):
            return {k: cls._floats(x) for k, x in v.items()}
        return v

    @model_validator(mode="after")
    def _cross(self) -> ProtocolSpec:
        if self.substeps_per_day is None:
            self.substeps_per_day = default_substeps(
                max((s.dose_ug for s in self.supplement if s.route == "oral"), default=0.0),
                any(s.route == "intramuscular" for s in self.supplement),
            )
        for i, s in enumerate(self.supplement):
            if s.start_day >= self.days or any(d >= self.days for d in s.days or []):
                raise ValueError(
                    f"supplement[{i}] starts after the protocol ends (days = {self.days}; "
                    "days are counted from 0)"
                )
            if s.route == "oral" and s.times_per_day > self.diet.meals_per_day:
                raise ValueError(
                    f"supplement[{i}].times_per_day ({s.times_per_day}) exceeds "
                    f"diet.meals_per_day ({self.diet.meals_per_day}); doses are taken with meals"
                )
        taxa = {t.id for t in load_taxa()}
        transient = {t.id for t in load_taxa() if not t.resident}
        for i, pr in enumerate(self.probiotic):
            if pr.taxon not in transient:
                raise ValueError(
                    f"probiotic[{i}].taxon: {pr.taxon!r} is not a probiotic taxon "
                    f"(allowed: {sorted(transient)})"
                )
            if pr.start_day >= self.days:
                raise ValueError(f"probiotic[{i}] starts after the protocol ends")
        for i, pb in enumerate(self.prebiotic):
            if pb.start_day >= self.days:
                raise ValueError(f"prebiotic[{i}] starts after the protocol ends")
        if self.microbiome is not None:
            for k, v in self.microbiome.items():
                if k not in taxa:
                    raise ValueError(f"microbiome.{k}: unknown taxon (allowed: {sorted(taxa)})")
                if k in transient:
                    raise ValueError(
                        f"microbiome.{k}: not a gut resident (absent unless inoculated); "
                        "use a [[probiotic]] regimen"
                    )
                if not (v >= 0 and math.isfinite(v)):
                    raise ValueError(f"microbiome.{k}: relative abundance must be >= 0")
            if sum(self.microbiome.values()) > 1 + 1e-6:
                raise ValueError("microbiome abundances sum to more than 1")
        if self.activity is not None:
            agents = {t.id: t for t in load_taxa() if t.role != "background"}
            for k, acts in self.activity.items():
                if k not in agents:
                    raise ValueError(
                        f"activity.{k}: unknown agent taxon (allowed: {sorted(agents)})"
                    )
                for a, v in acts.items():
                    if a not in agents[k].b12_activities:
                        raise ValueError(
                            f"activity.{k}.{a}: not an activity of {k} "
                            f"(allowed: {list(agents[k].b12_activities)})"
                        )
                    lo, hi = ACTION_RANGE
                    if not lo <= v <= hi:
                        raise ValueError(
                            f"activity.{k}.{a}: {v} outside the action range [{lo}, {hi}]"
                        )
        if self.parameters is not None:
            table = {p.id: p for p in load_parameters()}
            for k, v in self.parameters.items():
                if k not in table:
                    raise ValueError(f"parameters.{k}: unknown kinetic parameter")
                p = table[k]
                if not p.low <= v <= p.high:
                    raise ValueError(
                        f"parameters.{k}: {v} outside its plausible range "
                        f"[{p.low}, {p.high}] {p.unit}"
                    )
        return self


def load_protocol(path: str | Path) -> ProtocolSpec:
    """Read and validate a protocol TOML file.

    Raises
    ------
    ConfigError
        Unknown key, wrong type, negative dose, impossible value...; the message names the
        file and the key.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError("protocol file not found", source=path)
    doc = read_toml(path)
    try:
        return ProtocolSpec.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        msg = err["msg"].removeprefix("Value error, ")
        got = err.get("input")
        extra = "" if isinstance(got, dict) else f" (got {got!r})"
        raise ConfigError(f"{msg}{extra}", source=path, field=loc) from exc


def example_protocol(name: str) -> Path:
    """Path of a shipped example protocol, e.g. ``example_protocol("omnivore_oral_1000ug")``."""
    path = Path(str(resources.files("biofluxopt.examples").joinpath(f"{name}.toml")))
    if not path.is_file():
        names = sorted(
            p.name.removesuffix(".toml")
            for p in Path(str(resources.files("biofluxopt.examples"))).glob("*.toml")
        )
        raise ConfigError(f"no example protocol {name!r} (available: {names})")
    return path


@dataclass(frozen=True)
class HostFactors:
    """Host factors of a batch, numerically coded, each of shape ``[patients]``.

    ``if_status``: 0 normal, 1 reduced, 2 absent; ``gastric_impaired``, ``fut2_nonsecretor``:
    0/1; ``tcn2_g_alleles``, ``mthfr_t_alleles``: 0, 1 or 2.
    """

    if_status: Tensor
    gastric_impaired: Tensor
    fut2_nonsecretor: Tensor
    tcn2_g_alleles: Tensor
    mthfr_t_alleles: Tensor

    def index(self, idx) -> HostFactors:
        return HostFactors(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))


def host_factors(
    n_patients: int,
    *,
    intrinsic_factor: str | list[str] = "normal",
    gastric_release: str | list[str] = "normal",
    fut2: str | list[str] = "secretor",
    tcn2_776: str | list[str] = "CC",
    mthfr_677: str | list[str] = "CC",
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> HostFactors:
    """Code host-factor levels (one level for all patients, or a list of ``n_patients``)."""

    def code(values, levels, name):
        vals = [values] * n_patients if isinstance(values, str) else list(values)
        if len(vals) != n_patients:
            raise ConfigError(f"expected {n_patients} values, got {len(vals)}", field=name)
        out = []
        for v in vals:
            if v not in levels:
                raise ConfigError(f"unknown level {v!r} (allowed: {list(levels)})", field=name)
            out.append(levels.index(v))
        return torch.tensor(out, dtype=dtype, device=device)

    return HostFactors(
        if_status=code(intrinsic_factor, IF_LEVELS, "intrinsic_factor"),
        gastric_impaired=code(gastric_release, GASTRIC_LEVELS, "gastric_release"),
        fut2_nonsecretor=code(fut2, FUT2_LEVELS, "fut2"),
        tcn2_g_alleles=code(tcn2_776, TCN2_LEVELS, "tcn2_776"),
        mthfr_t_alleles=code(mthfr_677, MTHFR_LEVELS, "mthfr_677"),
    )


@dataclass(frozen=True)
class Protocol:
    """Batched inputs of a simulation.

    Attributes
    ----------
    host : HostFactors
    food_ug_per_day : Tensor, shape ``[patients, days]``
        Food B12 (µg/day), split evenly over the meals.
    oral_ug : Tensor, shape ``[patients, days, meals_per_day]``
        Crystalline oral dose taken with each meal (µg).
    im_ug : Tensor, shape ``[patients, days]``
        Intramuscular dose injected at the start of each day (µg).
    meals_per_day : int
        Meals per day, evenly spaced from the start of the day.
    probiotic_cfu : Tensor, shape ``[patients, days, taxa]``, optional
        Probiotic colony-forming units swallowed with the first meal of each day, per taxon
        (``taxon_ids()`` order); None = no probiotic.
    prebiotic_g : Tensor, shape ``[patients, days]``, optional
        Prebiotic fibre (inulin-type fructans, GOS) eaten each day (g); None = none.
    """

    host: HostFactors
    food_ug_per_day: Tensor
    oral_ug: Tensor
    im_ug: Tensor
    meals_per_day: int
    probiotic_cfu: Tensor | None = None
    prebiotic_g: Tensor | None = None

    @property
    def n_patients(self) -> int:
        return self.food_ug_per_day.shape[0]

    @property
    def days(self) -> int:
        return self.food_ug_per_day.shape[1]

    def index(self, idx) -> Protocol:
        return Protocol(
            self.host.index(idx),
            self.food_ug_per_day[idx],
            self.oral_ug[idx],
            self.im_ug[idx],
            self.meals_per_day,
            None if self.probiotic_cfu is None else self.probiotic_cfu[idx],
            None if self.prebiotic_g is None else self.prebiotic_g[idx],
        )

    def to(self, device: str | torch.device) -> Protocol:
        """The same protocol with every tensor on ``device``."""
        h = self.host
        return Protocol(
            HostFactors(*(getattr(h, f).to(device) for f in h.__dataclass_fields__)),
            self.food_ug_per_day.to(device),
            self.oral_ug.to(device),
            self.im_ug.to(device),
            self.meals_per_day,
            None if self.probiotic_cfu is None else self.probiotic_cfu.to(device),
            None if self.prebiotic_g is None else self.prebiotic_g.to(device),
        )


def oral_schedule(
    days: int,
    meals_per_day: int,
    *,
    times_per_day: int = 1,
    start_day: int = 0,
    end_day: int | None = None,
    on_days: list[int] | None = None,
) -> Tensor:
    """0/1 mask ``[days, meals_per_day]`` of the meals a daily oral regimen is taken with.

    ``times_per_day`` doses are spread over the meals (meal indices ``round(k·m/n)``); the
    regimen runs on ``start_day <= day < end_day`` or on the explicit ``on_days``.
    """
    mask = torch.zeros(days, meals_per_day, dtype=torch.float64)
    slots = sorted({round(k * meals_per_day / times_per_day) for k in range(times_per_day)})
    day_mask = _day_mask(days, start_day, end_day, on_days)
    for s in slots:
        mask[:, s] = day_mask
    return mask


def _day_mask(days: int, start_day: int, end_day: int | None, on_days: list[int] | None) -> Tensor:
    m = torch.zeros(days, dtype=torch.float64)
    if on_days is not None:
        for d in on_days:
            if d < days:
                m[d] = 1.0
    else:
        m[start_day : (days if end_day is None else min(end_day, days))] = 1.0
    return m


def build_protocol(
    spec: ProtocolSpec,
    *,
    n_patients: int | None = None,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> Protocol:
    """Batched :class:`Protocol` of ``spec`` (the same protocol for every patient)."""
    n = n_patients or spec.patients
    d, m = spec.days, spec.diet.meals_per_day
    oral = torch.zeros(d, m, dtype=torch.float64)
    im = torch.zeros(d, dtype=torch.float64)
    for s in spec.supplement:
        if s.route == "oral":
            oral += s.dose_ug * oral_schedule(
                d,
                m,
                times_per_day=s.times_per_day,
                start_day=s.start_day,
                end_day=s.end_day,
                on_days=s.days,
            )
        else:
            im += s.dose_ug * _day_mask(d, s.start_day, s.end_day, s.days)
    probiotic = None
    if spec.probiotic:
        ids = list(taxon_ids())
        cfu = torch.zeros(d, len(ids), dtype=torch.float64)
        for pr in spec.probiotic:
            cfu[:, ids.index(pr.taxon)] += pr.cfu_per_day * _day_mask(
                d, pr.start_day, pr.end_day, None
            )
        probiotic = cfu.to(dtype=dtype, device=device).expand(n, d, len(ids)).clone()
    prebiotic = None
    if spec.prebiotic:
        fibre = torch.zeros(d, dtype=torch.float64)
        for pb in spec.prebiotic:
            fibre += pb.g_per_day * _day_mask(d, pb.start_day, pb.end_day, None)
        prebiotic = fibre.to(dtype=dtype, device=device).expand(n, d).clone()
    h = spec.host
    return Protocol(
        host=host_factors(
            n,
            intrinsic_factor=h.intrinsic_factor,
            gastric_release=h.gastric_release,
            fut2=h.fut2,
            tcn2_776=h.tcn2_776,
            mthfr_677=h.mthfr_677,
            dtype=dtype,
            device=device,
        ),
        food_ug_per_day=torch.full((n, d), spec.diet.b12_ug_per_day, dtype=dtype, device=device),
        oral_ug=oral.to(dtype=dtype, device=device).expand(n, d, m).clone(),
        im_ug=im.to(dtype=dtype, device=device).expand(n, d).clone(),
        meals_per_day=m,
        probiotic_cfu=probiotic,
        prebiotic_g=prebiotic,
    )
