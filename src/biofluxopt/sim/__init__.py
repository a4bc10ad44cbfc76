"""The host–gut-microbiome vitamin B12 kinetic model: batched over patients in torch,
differentiable, CPU or CUDA, with a scipy reference integrator, dosing protocols and
calibration against published human data (docs/sim.md, docs/validation.md)."""

from ._cohort import simulate_cohort
from ._model import ACCUMULATORS, PMOL_PER_UG, POOLS, State, n_agents, n_taxa
from ._params import (
    TAXON_QUANTITIES,
    KineticParams,
    default_params,
    parameter_table,
    sample_params,
    taxon_ids,
)
from ._protocol import (
    ACTION_RANGE,
    ACTIVITIES,
    HostFactors,
    Protocol,
    ProtocolSpec,
    build_protocol,
    example_protocol,
    host_factors,
    load_protocol,
    oral_schedule,
)
from ._reference import simulate_reference
from ._run import run_protocol
from ._solve import DAILY_FLUXES, SimulationError, Solution, required_substeps, simulate
from ._steady import DEFAULT_COMPOSITION, default_composition, steady_state

__all__ = [
    "ACCUMULATORS",
    "ACTION_RANGE",
    "ACTIVITIES",
    "DAILY_FLUXES",
    "DEFAULT_COMPOSITION",
    "PMOL_PER_UG",
    "POOLS",
    "TAXON_QUANTITIES",
    "HostFactors",
    "KineticParams",
    "Protocol",
    "ProtocolSpec",
    "SimulationError",
    "Solution",
    "State",
    "build_protocol",
    "default_composition",
    "default_params",
    "example_protocol",
    "host_factors",
    "load_protocol",
    "n_agents",
    "n_taxa",
    "oral_schedule",
    "parameter_table",
    "required_substeps",
    "run_protocol",
    "sample_params",
    "simulate",
    "simulate_cohort",
    "simulate_reference",
    "steady_state",
    "taxon_ids",
]
