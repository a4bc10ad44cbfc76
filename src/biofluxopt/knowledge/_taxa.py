"""Model taxa (the agents) and the mapping of 16S lineages onto them."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ._loader import data_path, load_entries

Role = Literal["true_cobalamin_producer", "analogue_producer", "consumer", "salvager", "background"]
B12Activity = Literal["de_novo_synthesis", "dmb_attachment", "uptake", "remodelling"]
PropionatePathway = Literal["succinate", "acrylate", "propanediol", "wood_werkman"]

# Greengenes rank prefixes from most to least specific.
_RANKS = ("s__", "g__", "f__", "o__", "c__", "p__", "k__")
BACKGROUND_ID = "other"


class Taxon(BaseModel):
    """One B12-relevant taxon or guild of the model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    ncbi_taxid: int = Field(gt=0, description="NCBI Taxonomy identifier")
    rank: Literal["species", "genus", "family", "order", "class", "phylum", "superkingdom"]
    role: Role
    b12_activities: tuple[B12Activity, ...]
    match: tuple[str, ...]
    gut_relevance: str = Field(min_length=10)
    habitat: str | None = Field(
        default=None,
        description="where in the gut it lives; the quantitative small-intestine/colon split is "
        "the si_biomass_ratio__<id> parameter of parameters.toml",
    )
    evidence: str = Field(min_length=3)
    propionate_pathways: tuple[PropionatePathway, ...] = Field(
        default=(),
        description="routes by which the guild makes propionate (empty: none known); the "
        "succinate and Wood-Werkman routes run through B12-dependent methylmalonyl-CoA mutase",
    )
    propionate_evidence: str | None = None
    resident: bool = Field(
        default=True,
        description="False for a transient, non-colonising organism (a probiotic): no 16S "
        "lineage maps to it and it is absent unless inoculated with a [[probiotic]] regimen",
    )

    @field_validator("propionate_evidence")
    @classmethod
    def _pathway_evidence(cls, v, info):
        if info.data.get("propionate_pathways") and not v:
            raise ValueError("propionate_pathways needs propionate_evidence")
        return v

    @field_validator("resident")
    @classmethod
    def _transient_unmatched(cls, v, info):
        if not v and info.data.get("match"):
            raise ValueError("a non-resident (probiotic) taxon cannot match 16S lineages")
        return v

    @field_validator("match")
    @classmethod
    def _rank_tokens(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for token in v:
            if not token.startswith(_RANKS) or len(token) <= 3:
                raise ValueError(f"match token {token!r} must look like 'g__Name' or 'f__Name'")
        return v


@lru_cache(maxsize=4)
def _load_taxa_cached(path: str) -> tuple[Taxon, ...]:
    taxa = tuple(load_entries(path, "taxon", Taxon))
    ids = [t.id for t in taxa]
    if BACKGROUND_ID not in ids:
        from biofluxopt._util import ConfigError

        raise ConfigError(f"the background guild '{BACKGROUND_ID}' is missing", source=path)
    return taxa


def load_taxa(path: str | Path | None = None) -> tuple[Taxon, ...]:
    """The model taxa in file order (the background guild ``"other"`` included, last).

    Parameters
    ----------
    path : str or Path, optional
        A taxa TOML file; defaults to the shipped ``knowledge/data/taxa.toml``.
    """
    return _load_taxa_cached(str(path or data_path("taxa.toml")))


def agent_taxa(path: str | Path | None = None) -> tuple[Taxon, ...]:
    """The taxa that act as agents: every taxon except the background guild."""
    return tuple(t for t in load_taxa(path) if t.role != "background")


def map_lineage(lineage: str, taxa: Iterable[Taxon] | None = None) -> str:
    """Model-taxon id for a 16S lineage string.

    Parameters
    ----------
    lineage : str
        A Greengenes/SILVA-style lineage (``"k__Bacteria;...;g__Bacteroides"``) or a bare genus
        name (``"Bacteroides"``, treated as ``g__Bacteroides``).
    taxa : iterable of Taxon, optional
        Defaults to :func:`load_taxa`.

    Returns
    -------
    str
        The id of the taxon matched at the most specific rank, else ``"other"``.

    Examples
    --------
    >>> map_lineage("k__Bacteria;p__Bacteroidetes;c__Bacteroidia;o__Bacteroidales;f__;g__")
    'bacteroidales'
    >>> map_lineage("Akkermansia")
    'akkermansia'
    """
    taxa = tuple(taxa) if taxa is not None else load_taxa()
    tokens = [t.strip() for t in lineage.replace("|", ";").split(";") if t.strip()]
    if len(tokens) == 1 and "__" not in tokens[0]:
        tokens = [f"g__{tokens[0]}"]
    present = {tok for tok in tokens if len(tok) > 3}
    for prefix in _RANKS:
        for taxon in taxa:
            if any(m.startswith(prefix) and m in present for m in taxon.match):
                return taxon.id
    return BACKGROUND_ID
