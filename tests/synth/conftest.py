"""Shared fixtures: small compositional data sets and single-threaded torch.

``pytest -n 2`` runs two workers on two cores; torch's default of one thread per core would
oversubscribe them (measured: 25× slower), so torch tests here run on one thread.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def one_thread():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def toy_compositions() -> pd.DataFrame:
    """60 samples × 8 taxa: two dominant taxa, four sometimes absent, two never present."""
    rng = np.random.default_rng(0)
    n = 60
    x = rng.gamma(shape=[5.0, 3.0, 1.0, 1.0, 0.5, 0.5, 1.0, 1.0], size=(n, 8))
    present = rng.random((n, 4)) < [0.8, 0.6, 0.4, 0.2]
    x[:, 2:6] *= present
    x[:, 6:] = 0.0
    x /= x.sum(axis=1, keepdims=True)
    return pd.DataFrame(
        x, index=[f"s{i}" for i in range(n)], columns=[f"g__T{j}" for j in range(8)]
    )
