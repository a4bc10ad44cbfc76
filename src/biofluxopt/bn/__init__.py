"""Bayesian network of the B12 interdependency network (pgmpy ≥ 1.1.2, < 1.3).

Discretisation with literature cut-offs, hybrid structure learning (PC skeleton + expert
knowledge + score-based refinement) with bootstrap arc strength, literature Dirichlet priors
with Bayesian updating, simulated-cohort ground truth, inference and explanation.
"""

from ._cohort import (
    DIET_SHARES,
    MAX_DAYS,
    cohort_plan,
    discretise_cohort,
    sample_compositions,
    sample_host_factors,
    simulate_cohort_table,
)
from ._discretise import (
    COHORT_TO_NODE,
    LITERATURE_CUTOFFS,
    MAX_STATES,
    Bins,
    Cutoff,
    Discretiser,
    cohort_to_nodes,
    safe_state,
)
from ._expert import GENOTYPES, REQUIRED_EDGES, TIERS, b12_expert_knowledge, variable_tiers
from ._ground_truth import ground_truth_table, project_graph, score_against_simulator
from ._inference import (
    check_evidence,
    elimination_plan,
    explain,
    most_probable_explanation,
    parse_evidence,
    posterior,
)
from ._io import arcs_table, check_names, draw_network, load_network, save_network, write_network
from ._parameters import (
    LITERATURE_PRIORS,
    DirichletParameters,
    LiteraturePrior,
    fit_parameters,
)
from ._structure import METHODS, HybridStructureLearner, mixed_frame, skeleton_scores
from ._table import ID_COLUMNS, check_table, non_negative_columns, read_table
from ._workflow import MISSING, LearnedNetwork, learn_network

__all__ = [
    "COHORT_TO_NODE",
    "DIET_SHARES",
    "GENOTYPES",
    "ID_COLUMNS",
    "LITERATURE_CUTOFFS",
    "LITERATURE_PRIORS",
    "MAX_DAYS",
    "MAX_STATES",
    "METHODS",
    "MISSING",
    "REQUIRED_EDGES",
    "TIERS",
    "Bins",
    "Cutoff",
    "DirichletParameters",
    "Discretiser",
    "HybridStructureLearner",
    "LearnedNetwork",
    "LiteraturePrior",
    "arcs_table",
    "b12_expert_knowledge",
    "check_evidence",
    "check_names",
    "check_table",
    "cohort_plan",
    "cohort_to_nodes",
    "discretise_cohort",
    "draw_network",
    "elimination_plan",
    "explain",
    "fit_parameters",
    "ground_truth_table",
    "learn_network",
    "load_network",
    "mixed_frame",
    "most_probable_explanation",
    "non_negative_columns",
    "parse_evidence",
    "posterior",
    "project_graph",
    "read_table",
    "safe_state",
    "sample_compositions",
    "sample_host_factors",
    "save_network",
    "score_against_simulator",
    "simulate_cohort_table",
    "skeleton_scores",
    "variable_tiers",
    "write_network",
]
