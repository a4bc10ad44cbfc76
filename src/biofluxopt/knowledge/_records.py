"""Typed records of the knowledge base: kinetic parameters, metabolites, reactions and host
factors. Each loader validates its TOML file entry by entry (see :func:`load_entries`), so a
malformed entry fails with the file, the entry and the field named."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ._loader import data_path, load_entries

#: Evidence grades of ``../shared/reference/b12_facts.md``: verified in a primary source,
#: secondary source, derived by arithmetic/fit from verified numbers, unverified.
Grade = Literal["V", "S", "D", "U"]


class Parameter(BaseModel):
    """One kinetic parameter of the simulator.

    ``value`` is the default (calibrated) value; ``[low, high]`` is the plausible range used
    for inter-individual sampling and sensitivity analysis; ``source`` names the row of
    ``b12_facts.md`` or the citation it traces to, ``grade`` its evidence grade.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    value: float
    unit: str = Field(min_length=1)
    low: float
    high: float
    grade: Grade
    source: str = Field(min_length=3)
    description: str = Field(min_length=3)
    group: Literal["absorption", "plasma", "stores", "biomarkers", "genetics", "gut", "taxon"]
    taxon: str | None = None

    @model_validator(mode="after")
    def _in_range(self) -> Parameter:
        if not self.low <= self.value <= self.high:
            raise ValueError(
                f"value {self.value} outside its plausible range [{self.low}, {self.high}]"
            )
        return self


class Metabolite(BaseModel):
    """A metabolite of the B12 network with its KEGG compound id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    kegg: str | None = Field(default=None, pattern=r"^C\d{5}$")
    role: str = Field(min_length=3)
    usable_by_host: bool
    model_pool: str | None = None
    source: str = Field(min_length=3)


class Reaction(BaseModel):
    """A B12 reaction (host or microbial) with KEGG reaction and EC ids."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    kegg_reaction: str | None = Field(default=None, pattern=r"^R\d{5}$")
    ec: str | None = Field(default=None, pattern=r"^\d+\.\d+\.\d+\.(\d+|-)$")
    organism: Literal["host", "microbial"]
    substrates: tuple[str, ...]
    products: tuple[str, ...]
    activity: Literal["de_novo_synthesis", "dmb_attachment", "uptake", "remodelling"] | None = None
    model_flux: str = Field(min_length=3)
    source: str = Field(min_length=3)


class HostFactor(BaseModel):
    """A host factor (physiological state or genetic variant) and its model effect."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    gene: str | None = None
    variant: str | None = None
    levels: tuple[str, ...] = Field(min_length=2)
    default: str
    frequencies: dict[str, float] | None = None
    effect: str = Field(min_length=3)
    parameters: tuple[str, ...] = ()
    source: str = Field(min_length=3)
    grade: Grade

    @model_validator(mode="after")
    def _default_is_a_level(self) -> HostFactor:
        if self.default not in self.levels:
            raise ValueError(f"default {self.default!r} is not one of levels {self.levels}")
        if self.frequencies is not None and set(self.frequencies) != set(self.levels):
            raise ValueError("frequencies must give one value per level")
        return self


@lru_cache(maxsize=8)
def _cached(path: str, key: str, model: type[BaseModel]) -> tuple:
    return tuple(load_entries(path, key, model))


def load_parameters(path: str | Path | None = None) -> tuple[Parameter, ...]:
    """All kinetic parameters (``parameters.toml``) in file order.

    Also checks that every ``taxon`` field names a taxon of :func:`load_taxa`.
    """
    from biofluxopt._util import ConfigError

    from ._taxa import load_taxa

    path = str(path or data_path("parameters.toml"))
    params = _cached(path, "parameter", Parameter)
    taxa = {t.id for t in load_taxa()}
    for i, p in enumerate(params):
        if p.taxon is not None and p.taxon not in taxa:
            raise ConfigError(
                f"field 'taxon': unknown taxon {p.taxon!r}", source=path, field=f"parameter[{i}]"
            )
    return params


def load_metabolites(path: str | Path | None = None) -> tuple[Metabolite, ...]:
    """Metabolites of the B12 network (``metabolites.toml``)."""
    return _cached(str(path or data_path("metabolites.toml")), "metabolite", Metabolite)


def load_reactions(path: str | Path | None = None) -> tuple[Reaction, ...]:
    """B12 reactions (``reactions.toml``); substrates and products are metabolite ids."""
    from biofluxopt._util import ConfigError

    path = str(path or data_path("reactions.toml"))
    reactions = _cached(path, "reaction", Reaction)
    known = {m.id for m in load_metabolites()}
    for i, r in enumerate(reactions):
        for name in (*r.substrates, *r.products):
            if name not in known:
                raise ConfigError(
                    f"field 'substrates/products': unknown metabolite {name!r}",
                    source=path,
                    field=f"reaction[{i}] ({r.id})",
                )
    return reactions


def load_host_factors(path: str | Path | None = None) -> tuple[HostFactor, ...]:
    """Host factors: IF status, gastric release, FUT2, TCN2 776, MTHFR 677, CUBN."""
    return _cached(str(path or data_path("host_factors.toml")), "host_factor", HostFactor)
