"""Global seeding, used only by CLI entry points (library code takes ``seed=`` keywords)."""

from __future__ import annotations

import random

import numpy as np


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's legacy global state and torch (CPU and CUDA)."""
    random.seed(seed)
    # Third-party code (pgmpy sampling, SALib) still draws from the legacy global state.
    np.random.seed(seed % 2**32)  # noqa: NPY002
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.manual_seed(seed)
