"""Bayesian network of the B12 interdependency network (pgmpy ≥ 1.1.2, < 1.3).

Discretisation with literature cut-offs, hybrid structure learning (PC skeleton + expert
knowledge + score-based refinement) with bootstrap arc strength, literature Dirichlet priors
with Bayesian updating, simulated-cohort ground truth, inference and explanation.
"""

from ._discretise import (
    COHORT_TO_NODE,
    LITERATURE_CUTOFFS,
    MAX_STATES,
    Bins,
    Cutoff,
    Discretiser,
    cohort_to_nodes,
)
from ._expert import GENOTYPES, REQUIRED_EDGES, TIERS, b12_expert_knowledge, variable_tiers
from ._structure import METHODS, HybridStructureLearner, skeleton_scores

__all__ = [
    "COHORT_TO_NODE",
    "GENOTYPES",
    "LITERATURE_CUTOFFS",
    "MAX_STATES",
    "METHODS",
    "REQUIRED_EDGES",
    "TIERS",
    "Bins",
    "Cutoff",
    "Discretiser",
    "HybridStructureLearner",
    "b12_expert_knowledge",
    "cohort_to_nodes",
    "skeleton_scores",
    "variable_tiers",
]
