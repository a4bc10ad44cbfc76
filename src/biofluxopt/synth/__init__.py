"""Synthetic microbiome cohorts: a zero-inflated compositional WGAN-GP, two baselines,
fidelity/memorisation metrics against held-out real samples, a privacy filter that rejects
near-copies of training participants, and the train workflow (:func:`train_model`) with safe
checkpoints (:func:`save_model`, :func:`load_model`)."""

from ._baselines import BootstrapSampler, DirichletMultinomial
from ._checkpoint import (
    FORMAT_VERSION,
    HELDOUT_NAME,
    HISTORY_NAME,
    META_NAME,
    TRAIN_NAME,
    WEIGHTS_NAME,
    load_model,
    load_near_copy_filter,
    save_model,
)
from ._figures import save_figures
from ._gan import (
    TORCH_THREADS,
    CompositionWGAN,
    WGANConfig,
    auto_min_abundance,
    auto_richness_scale,
)
from ._metrics import (
    FAMILIES,
    MEMORISATION_QUANTILE,
    align_columns,
    c2st_auc,
    compare_families,
    evaluate_synthetic,
    memorisation,
    shannon,
    sparsity,
)
from ._privacy import NearCopyFilter, sample_filtered
from ._workflow import MIN_TRAIN_SAMPLES, MODEL_KINDS, TrainResult, train_model

__all__ = [
    "FAMILIES",
    "FORMAT_VERSION",
    "HELDOUT_NAME",
    "HISTORY_NAME",
    "MEMORISATION_QUANTILE",
    "META_NAME",
    "MIN_TRAIN_SAMPLES",
    "MODEL_KINDS",
    "TORCH_THREADS",
    "TRAIN_NAME",
    "WEIGHTS_NAME",
    "BootstrapSampler",
    "CompositionWGAN",
    "DirichletMultinomial",
    "NearCopyFilter",
    "TrainResult",
    "WGANConfig",
    "align_columns",
    "auto_min_abundance",
    "auto_richness_scale",
    "c2st_auc",
    "compare_families",
    "evaluate_synthetic",
    "load_model",
    "load_near_copy_filter",
    "memorisation",
    "sample_filtered",
    "save_figures",
    "save_model",
    "shannon",
    "sparsity",
    "train_model",
]
