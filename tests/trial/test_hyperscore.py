"""The seed's HyperScore (biofluxopt.trial._hyperscore)."""

from __future__ import annotations

import itertools
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biofluxopt._util import ConfigError
from biofluxopt.trial._hyperscore import (
    DEFAULT_BETA,
    DEFAULT_GAMMA,
    DEFAULT_KAPPA,
    V_FLOOR,
    HyperScore,
    hyperscore,
    performance_value,
    score,
    seed_example_check,
)

unit = st.floats(1e-6, 1.0, allow_subnormal=False)
params = st.fixed_dictionaries(
    {
        "beta": st.floats(0.1, 20.0),
        "gamma": st.floats(-5.0, 5.0),
        "kappa": st.floats(0.1, 5.0),
    }
)


def test_defaults():
    assert DEFAULT_BETA == 5.0
    assert DEFAULT_GAMMA == -math.log(2)
    assert DEFAULT_KAPPA == 2.2


@settings(max_examples=60, deadline=None)
@given(a=unit, b=unit, p=params)
def test_monotone_increasing_in_V(a, b, p):
    lo, hi = sorted((a, b))
    assert hyperscore(lo, **p) <= hyperscore(hi, **p)


def test_strictly_increasing_on_a_grid():
    values = [hyperscore(v / 20) for v in range(1, 21)]
    assert all(x < y for x, y in itertools.pairwise(values))


@settings(max_examples=60, deadline=None)
@given(v=st.floats(1e-3, 1.0), p=params)
def test_bounds(v, p):
    h = hyperscore(v, **p)
    # mathematically 100 < h < 200; σ^κ may underflow below 100's precision for tiny σ
    assert 100.0 <= h < 200.0
    if v >= 0.5 and p["beta"] <= 5 and p["gamma"] >= -2 and p["kappa"] <= 3:
        assert h > 100.0


@pytest.mark.parametrize("kappa", [0.5, 1.0, 2.2, 4.0])
def test_V_one_gamma_zero_gives_half(kappa):
    # ln 1 = 0 and σ(0) = 0.5 whatever β
    assert hyperscore(1.0, beta=7.0, gamma=0.0, kappa=kappa) == pytest.approx(
        100 * (1 + 0.5**kappa)
    )


def test_explicit_formula():
    v, b, g, k = 0.7, 3.0, 0.4, 1.7
    sigma = 1 / (1 + math.exp(-(b * math.log(v) + g)))
    assert hyperscore(v, beta=b, gamma=g, kappa=k) == pytest.approx(100 * (1 + sigma**k))


def test_seed_example_check():
    check = seed_example_check()
    assert check["stated_sigma"] == 0.985
    assert check["kappa"] == 2.2
    assert check["stated_hyperscore"] == 127.4
    assert check["stated_V"] == 0.85
    assert check["formula_hyperscore"] == pytest.approx(196.7, abs=0.05)
    assert check["formula_hyperscore"] == pytest.approx(100 * (1 + 0.985**2.2))
    assert check["consistent"] is False
    assert check["default_sigma"] == pytest.approx(
        1 / (1 + math.exp(-(5 * math.log(0.85) - math.log(2))))
    )
    assert check["default_hyperscore"] == pytest.approx(hyperscore(0.85))
    implied = check["sigma_implied_by_stated_hyperscore"]
    assert 100 * (1 + implied**2.2) == pytest.approx(127.4)
    json.dumps(check, allow_nan=False)


def test_performance_value_and_score():
    comps = {"b12_target_hit": 0.9, "mma_normalised": 0.6, "safety": 1.0}
    assert performance_value(comps) == pytest.approx(2.5 / 3)
    s = score(comps, kappa=1.5)
    assert isinstance(s, HyperScore)
    assert s.V == pytest.approx(2.5 / 3)
    assert s.value == pytest.approx(hyperscore(2.5 / 3, kappa=1.5))
    assert s.components == comps
    assert (s.beta, s.gamma, s.kappa) == (DEFAULT_BETA, DEFAULT_GAMMA, 1.5)
    d = s.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["value"] == s.value and d["sigma"] == pytest.approx(s.sigma)
    assert 100 * (1 + s.sigma**1.5) == pytest.approx(s.value)


def test_zero_metrics_are_clipped():
    assert performance_value({"a": 0.0, "b": 0.0}) == V_FLOOR
    s = score({"a": 0.0})
    assert 100.0 <= s.value < 100.001


@pytest.mark.parametrize(
    ("components", "field"),
    [
        ({}, "hyperscore.components"),
        ({"ok": 0.5, "coverage": 1.2}, "hyperscore.components.coverage"),
        ({"safety": -0.1}, "hyperscore.components.safety"),
        ({"safety": float("nan")}, "hyperscore.components.safety"),
        ({"safety": "high"}, "hyperscore.components.safety"),
        ({"safety": True}, "hyperscore.components.safety"),
    ],
)
def test_bad_components_rejected(components, field):
    with pytest.raises(ConfigError) as err:
        score(components)
    assert err.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"beta": float("inf")}, "hyperscore.beta"),
        ({"gamma": float("nan")}, "hyperscore.gamma"),
        ({"kappa": 0.0}, "hyperscore.kappa"),
        ({"kappa": -1.0}, "hyperscore.kappa"),
    ],
)
def test_bad_parameters_rejected(kwargs, field):
    with pytest.raises(ConfigError) as err:
        hyperscore(0.5, **kwargs)
    assert err.value.field == field
    with pytest.raises(ConfigError) as err:
        score({"a": 0.5}, **kwargs)
    assert err.value.field == field


@pytest.mark.parametrize("v", [0.0, -0.5, 1.5, float("nan")])
def test_bad_V_rejected(v):
    with pytest.raises(ConfigError) as err:
        hyperscore(v)
    assert err.value.field == "hyperscore.V"
