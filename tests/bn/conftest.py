"""Shared fixtures: small samples from pgmpy's bundled networks (offline)."""

from __future__ import annotations

import warnings

import networkx as nx
import pytest


def _example(name: str):
    from pgmpy.utils import get_example_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_example_model(name)


@pytest.fixture(scope="session")
def asia_model():
    return _example("asia")


@pytest.fixture(scope="session")
def asia_truth(asia_model) -> nx.DiGraph:
    return nx.DiGraph(asia_model.edges())


@pytest.fixture(scope="session")
def asia_data(asia_model):
    return asia_model.simulate(3000, seed=7, show_progress=False)
