"""The host–gut-microbiome vitamin B12 kinetic model: batched over patients in torch,
differentiable, CPU or CUDA, with a scipy reference integrator, dosing protocols and
calibration against published human data (docs/sim.md, docs/validation.md)."""

from ._cohort import simulate_cohort
from ._model import ACCUMULATORS, PMOL_PER_UG, POOLS, State, n_agents, n_taxa
from ._params import (
    POPULATION_SPREAD,
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
from ._sensitivity import (
    Leverage,
    SensitivityResult,
    SobolResult,
    leverage_scenarios,
    leverage_table,
    local_sensitivity,
    microbial_leverage,
    sensitivity_analysis,
    sobol_indices,
)
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
    "POPULATION_SPREAD",
    "TAXON_QUANTITIES",
    "HostFactors",
    "KineticParams",
    "Leverage",
    "Protocol",
    "ProtocolSpec",
    "SensitivityResult",
    "SimulationError",
    "SobolResult",
    "Solution",
    "State",
    "build_protocol",
    "default_composition",
    "default_params",
    "example_protocol",
    "host_factors",
    "leverage_scenarios",
    "leverage_table",
    "load_protocol",
    "local_sensitivity",
    "microbial_leverage",
    "n_agents",
    "n_taxa",
    "oral_schedule",
    "parameter_table",
    "required_substeps",
    "run_protocol",
    "sample_params",
    "sensitivity_analysis",
    "simulate",
    "simulate_cohort",
    "simulate_reference",
    "sobol_indices",
    "steady_state",
    "taxon_ids",
]
