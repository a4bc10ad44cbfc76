"""Synthetic microbiome cohorts: a zero-inflated compositional WGAN-GP, two baselines, and
fidelity/memorisation metrics against held-out real samples."""

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

__all__ = [
    "FAMILIES",
    "BootstrapSampler",
    "CompositionWGAN",
    "DirichletMultinomial",
    "WGANConfig",
    "align_columns",
    "c2st_auc",
    "compare_families",
    "evaluate_synthetic",
    "memorisation",
    "shannon",
    "sparsity",
]
