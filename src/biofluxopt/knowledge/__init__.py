"""The curated B12 interdependency network as data: taxa, metabolites, reactions, host factors
and kinetic parameters, each with units and sources, behind typed loaders."""

from ._causal import load_sim_causal_graph
from ._loader import data_path, load_entries, read_toml
from ._records import (
    HostFactor,
    Metabolite,
    Parameter,
    Reaction,
    load_host_factors,
    load_metabolites,
    load_parameters,
    load_reactions,
)
from ._taxa import BACKGROUND_ID, Taxon, agent_taxa, load_taxa, map_lineage

__all__ = [
    "BACKGROUND_ID",
    "HostFactor",
    "Metabolite",
    "Parameter",
    "Reaction",
    "Taxon",
    "agent_taxa",
    "data_path",
    "load_entries",
    "load_host_factors",
    "load_metabolites",
    "load_parameters",
    "load_reactions",
    "load_sim_causal_graph",
    "load_taxa",
    "map_lineage",
    "read_toml",
]
