"""Synthetic microbiome cohorts: a zero-inflated compositional WGAN-GP, two baselines,
fidelity/memorisation metrics against held-out real samples, and a privacy filter that rejects
near-copies of training participants."""

from ._baselines import BootstrapSampler, DirichletMultinomial
from ._gan import CompositionWGAN, WGANConfig
from ._metrics import (
    FAMILIES,
    align_columns,
    c2st_auc,
    compare_families,
    evaluate_synthetic,
    memorisation,
    shannon,
    sparsity,
)
from ._privacy import NearCopyFilter, sample_filtered

__all__ = [
    "FAMILIES",
    "BootstrapSampler",
    "CompositionWGAN",
    "DirichletMultinomial",
    "NearCopyFilter",
    "WGANConfig",
    "align_columns",
    "c2st_auc",
    "compare_families",
    "evaluate_synthetic",
    "memorisation",
    "sample_filtered",
    "shannon",
    "sparsity",
]
