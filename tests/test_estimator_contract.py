"""The scikit-learn estimator contract, run over every estimator of the package.

One contract, every implementation (STYLE.md, guideline 14; pgmpy's
``check_causal_discovery.py`` and scikit-learn's ``parametrize_with_checks`` do the same):

* ``__init__`` stores its options unchanged: ``get_params`` gives them back, ``set_params``
  sets them, ``clone`` copies them into a new, unfitted estimator;
* the options are declared once, as data (``_parameter_constraints``, one entry per option), and
  checked in ``fit``: a bad value raises the package's own error (``BioFluxOptError``), naming
  the option and echoing the value;
* before ``fit``, ``check_is_fitted`` raises ``NotFittedError``; ``fit`` returns ``self``, leaves
  the options as they were, adds only attributes that end in ``_`` (or private ones), and then
  ``check_is_fitted`` passes;
* the same ``random_state`` gives identical output (samples, structure, parameters), and a
  different one different output.

Each case is an estimator with a small fixture, so the whole file runs in well under a minute.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from biofluxopt._util import (
    BioFluxOptError,
    ConfigError,
    InstanceOf,
    Interval,
    Options,
    check_params,
)


@dataclass
class Case:
    """An estimator of the package, how to fit it on a small fixture and what it outputs."""

    make: Callable[..., BaseEstimator]
    """``make(**options)``: a new, unfitted estimator (options override the case's own)."""
    fit: Callable[[BaseEstimator], Any]
    """Fit the estimator on the fixture; returns what ``fit`` returned."""
    output: Callable[[BaseEstimator], Any]
    """What a fitted estimator produces: samples, a structure, parameters."""
    bad: tuple[str, Any] | None
    """An option value that ``fit`` must refuse."""
    changed: tuple[str, Any] = field(default=("", None))
    """An option and another valid value, for ``set_params``."""
    seeded: bool = False
    """Whether the output depends on ``random_state`` (on this fixture)."""


# ------------------------------------------------------------------------------- fixtures


def _asia(n: int = 300) -> pd.DataFrame:
    from pgmpy.utils import get_example_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_example_model("asia").simulate(n, seed=0, show_progress=False)


def _b12_states(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    fut2 = rng.choice(["secretor", "nonsecretor"], n, p=[0.8, 0.2])
    diet = rng.choice(["omnivore", "vegan"], n)
    low = (diet == "vegan") ^ (rng.random(n) < 0.1)
    serum = np.where(low, "deficient", np.where(fut2 == "nonsecretor", "normal", "marginal"))
    mma = np.where((serum == "deficient") ^ (rng.random(n) < 0.1), "high", "normal")
    return pd.DataFrame({"fut2": fut2, "diet": diet, "serum_b12": serum, "mma": mma})


def _cohort_numbers(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "serum_b12": rng.lognormal(5.4, 0.5, n),
            "bacteroidales": np.where(rng.random(n) < 0.3, 0.0, rng.random(n)),
            "diet": rng.choice(["omnivore", "vegetarian", "vegan"], n),
            "x": rng.normal(size=n),
        }
    )


def _compositions(n: int = 24, taxa: int = 6) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.dirichlet(np.full(taxa, 0.7), size=n)
    x[rng.random(x.shape) < 0.3] = 0.0
    x[:, 0] += 1e-3  # no empty row
    return x / x.sum(axis=1, keepdims=True)


def _counts(n: int = 24, taxa: int = 6) -> np.ndarray:
    rng = np.random.default_rng(1)
    return np.stack([rng.multinomial(2000, p) for p in _compositions(n, taxa)])


PARAM_GRAPH = nx.DiGraph([("diet", "serum_b12"), ("fut2", "serum_b12"), ("serum_b12", "mma")])
PARAM_STATES = {
    "diet": ["omnivore", "vegan"],
    "fut2": ["nonsecretor", "secretor"],
    "serum_b12": ["deficient", "marginal", "normal"],
    "mma": ["high", "normal"],
}


# ---------------------------------------------------------------------------------- cases


def _structure_learner(**options):
    from biofluxopt.bn import HybridStructureLearner

    return HybridStructureLearner(**{"n_bootstrap": 2, "random_state": 0, **options})


def _expert_learner(**options):
    from biofluxopt.bn import HybridStructureLearner, b12_expert_knowledge

    knowledge = b12_expert_knowledge(PARAM_STATES)
    return HybridStructureLearner(
        **{"method": "pc", "expert_knowledge": knowledge, "n_bootstrap": 2, **options}
    )


def _structure(est) -> tuple:
    return (sorted(est.graph_.edges()), est.arc_strength_.to_dict("list"))


def _discretiser(**options):
    from biofluxopt.bn import Discretiser

    return Discretiser(**{"n_quantile_bins": 3, **options})


def _parameters(**options):
    from biofluxopt.bn import DirichletParameters

    return DirichletParameters(PARAM_GRAPH, PARAM_STATES, **options)


def _residuals(**options):
    from biofluxopt.bn._structure import _AdditiveResiduals

    return _AdditiveResiduals(**options)


def _residual_fixture() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=50), rng.integers(0, 2, 50)])
    return X, np.sin(X[:, 0]) + X[:, 1] + 0.1 * rng.normal(size=50)


def _wgan(**options):
    from biofluxopt.synth import CompositionWGAN

    tiny = {
        "latent_dim": 4,
        "hidden": 8,
        "iterations": 3,
        "n_critic": 1,
        "batch_size": 8,
        "random_state": 0,
    }
    return CompositionWGAN(**{**tiny, **options})


def _dirichlet_multinomial(**options):
    from biofluxopt.synth import DirichletMultinomial

    return DirichletMultinomial(**{"max_iter": 50, "random_state": 0, **options})


def _bootstrap_sampler(**options):
    from biofluxopt.synth import BootstrapSampler

    return BootstrapSampler(**{"random_state": 0, **options})


def _near_copy_filter(**options):
    from biofluxopt.synth import NearCopyFilter

    return NearCopyFilter(**options)


CASES: dict[str, Case] = {
    "bn.HybridStructureLearner": Case(
        make=_structure_learner,
        fit=lambda est: est.fit(_asia()),
        output=_structure,
        bad=("alpha", 1.5),
        changed=("prune_alpha", 0.01),
        seeded=True,
    ),
    "bn.HybridStructureLearner[expert]": Case(
        make=_expert_learner,
        fit=lambda est: est.fit(_b12_states()),
        output=_structure,
        bad=("n_jobs", 0),
        changed=("strength_threshold", 0.75),
    ),
    "bn.Discretiser": Case(
        make=_discretiser,
        fit=lambda est: est.fit(_cohort_numbers()),
        output=lambda est: (est.bins_, est.transform(_cohort_numbers()).to_dict("list")),
        bad=("n_quantile_bins", 1),
        changed=("max_states", 3),
    ),
    "bn.DirichletParameters": Case(
        make=_parameters,
        fit=lambda est: est.fit(_b12_states()),
        output=lambda est: (est.alpha_, est.prior_sources_, est.n_seen_),
        bad=("default_ess", 0),
        changed=("literature_ess", 20.0),
    ),
    "bn._AdditiveResiduals": Case(
        make=_residuals,
        fit=lambda est: est.fit(*_residual_fixture()),
        output=lambda est: est.predict(_residual_fixture()[0]),
        bad=None,
    ),
    "synth.CompositionWGAN": Case(
        make=_wgan,
        fit=lambda est: est.fit(_compositions()),
        output=lambda est: est.sample(6),
        bad=("iterations", 0),
        changed=("hidden", 16),
        seeded=True,
    ),
    "synth.DirichletMultinomial": Case(
        make=_dirichlet_multinomial,
        fit=lambda est: est.fit(_counts()),
        output=lambda est: (est.alpha_, est.sample(6)),
        bad=("max_iter", 0),
        changed=("tol", 1e-6),
        seeded=True,
    ),
    "synth.BootstrapSampler": Case(
        make=_bootstrap_sampler,
        fit=lambda est: est.fit(_compositions()),
        output=lambda est: est.sample(6),
        bad=("noise_sd", -1.0),
        changed=("noise_sd", 0.25),
        seeded=True,
    ),
    "synth.NearCopyFilter": Case(
        make=_near_copy_filter,
        fit=lambda est: est.fit(_compositions(), groups=np.arange(24) // 2),
        output=lambda est: (est.threshold_, est.mask(_compositions(10, 6) ** 2)),
        bad=("quantile", 1.5),
        changed=("quantile", 0.2),
    ),
}
ids = list(CASES)


def _same(a: Any, b: Any) -> bool:
    """Deep equality for what estimators hold: arrays exactly (NaN equal), frames, graphs,
    containers, and objects with the same type and equal attributes."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
    if isinstance(a, pd.DataFrame | pd.Series):
        return type(a) is type(b) and a.equals(b)
    if isinstance(a, nx.Graph):
        return (
            type(a) is type(b)
            and list(a.nodes(data=True)) == list(b.nodes(data=True))
            and sorted(a.edges()) == sorted(b.edges())
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, set | frozenset):
        return a == b
    if isinstance(a, str | bytes | Integral | Real | type(None)):
        return type(a) is type(b) and (a == b or (a != a and b != b))
    if hasattr(a, "__dict__"):
        return type(a) is type(b) and _same(vars(a), vars(b))
    return a == b


def _public_state(est: BaseEstimator) -> set[str]:
    return {k for k in vars(est) if not k.startswith("_")}


class _FitOnce(dict):
    """Case name -> its estimator, fitted on first use."""

    def __missing__(self, name: str) -> BaseEstimator:
        est = CASES[name].make()
        CASES[name].fit(est)
        self[name] = est
        return est


@pytest.fixture(scope="module")
def fitted() -> _FitOnce:
    """One fitted estimator per case, shared by the tests of this module."""
    return _FitOnce()


# ---------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("name", ids)
def test_options_are_declared_once_as_data(name):
    est = CASES[name].make()
    constraints = getattr(type(est), "_parameter_constraints", None)
    assert isinstance(constraints, dict), f"{name}: declare _parameter_constraints (a dict)"
    assert set(constraints) == set(est.get_params(deep=False)), (
        f"{name}: _parameter_constraints must have one entry per __init__ option"
    )


@pytest.mark.parametrize("name", [n for n in ids if CASES[n].bad is not None])
def test_a_bad_option_is_stored_then_refused_by_fit_with_the_package_error(name):
    option, value = CASES[name].bad
    est = CASES[name].make(**{option: value})
    assert est.get_params()[option] is value, f"{name}: __init__ must store {option} unchanged"
    with pytest.raises(BioFluxOptError) as info:
        CASES[name].fit(est)
    assert option in str(info.value) and repr(value) in str(info.value), (
        f"{name}: the error must name the option and echo the value; got {info.value}"
    )
    assert not isinstance(info.value, ValueError | TypeError)


@pytest.mark.parametrize("name", ids)
def test_get_params_round_trips_through_set_params(name):
    est = CASES[name].make()
    params = est.get_params(deep=False)
    assert est.set_params(**params) is est
    again = est.get_params(deep=False)
    assert list(again) == list(params) and all(again[k] is params[k] for k in params)
    rebuilt = type(est)(**params)
    assert all(rebuilt.get_params(deep=False)[k] is params[k] for k in params)
    option, value = CASES[name].changed
    if option:
        est.set_params(**{option: value})
        assert est.get_params()[option] is value
        assert getattr(est, option) is value
    with pytest.raises(ValueError, match="Invalid parameter"):
        est.set_params(no_such_option=1)


@pytest.mark.parametrize("name", ids)
def test_unfitted_then_fitted(name):
    est = CASES[name].make()
    with pytest.raises(NotFittedError):
        check_is_fitted(est)
    before = _public_state(est)
    params = clone(est).get_params(deep=False)
    assert CASES[name].fit(est) is est, f"{name}: fit must return self"
    check_is_fitted(est)
    added = _public_state(est) - before
    assert added, f"{name}: fit must store what it learned"
    wrong = sorted(a for a in added if not a.endswith("_"))
    assert not wrong, f"{name}: fitted attributes must end in '_': {wrong}"
    assert all(_same(getattr(est, k), v) for k, v in params.items()), (
        f"{name}: fit must not change the options"
    )


@pytest.mark.parametrize("name", ids)
def test_clone_is_unfitted_with_equal_options(name, fitted):
    est = fitted[name]
    copy = clone(est)
    assert type(copy) is type(est) and copy is not est
    params, copied = est.get_params(deep=False), copy.get_params(deep=False)
    assert list(copied) == list(params)
    assert all(_same(copied[k], params[k]) for k in params), f"{name}: options differ"
    assert not [k for k in vars(copy) if k.endswith("_") and not k.startswith("__")]
    with pytest.raises(NotFittedError):
        check_is_fitted(copy)


@pytest.mark.parametrize("name", ids)
def test_same_random_state_same_output(name, fitted):
    again = clone(fitted[name])
    CASES[name].fit(again)
    assert _same(CASES[name].output(again), CASES[name].output(fitted[name])), (
        f"{name}: two fits with the same options (and random_state) differ"
    )


@pytest.mark.parametrize("name", [n for n in ids if CASES[n].seeded])
def test_another_random_state_another_output(name, fitted):
    """The seed is used: otherwise the test above would pass for the wrong reason."""
    est = fitted[name]
    other = clone(est).set_params(random_state=est.get_params()["random_state"] + 1)
    CASES[name].fit(other)
    assert not _same(CASES[name].output(other), CASES[name].output(est))


# --------------------------------------------------------------- the shared option checker


class _Toy:
    """Options as attributes, constraints as data: what check_params reads."""

    _parameter_constraints = {  # noqa: RUF012 - a fixture
        "alpha": [Interval(Real, 0, 1, closed="neither")],
        "n_jobs": [Interval(Integral, 1, None), Options(-1)],
        "method": [Options("a", "b"), None],
        "flag": [InstanceOf(bool, "True or False")],
        "graph": [InstanceOf("networkx:DiGraph", "a networkx DiGraph"), None],
    }

    def __init__(self, alpha=0.5, n_jobs=1, method=None, flag=False, graph=None):
        self.alpha, self.n_jobs, self.method, self.flag, self.graph = (
            alpha,
            n_jobs,
            method,
            flag,
            graph,
        )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"alpha": 1.0}, "_Toy.alpha: must be a real number in (0, 1); got 1.0"),
        ({"alpha": float("nan")}, "_Toy.alpha: must be a real number in (0, 1); got nan"),
        ({"alpha": True}, "_Toy.alpha: must be a real number in (0, 1); got True"),
        ({"n_jobs": 0}, "_Toy.n_jobs: must be an integer in [1, inf) or one of -1; got 0"),
        ({"n_jobs": 2.0}, "_Toy.n_jobs: must be an integer in [1, inf) or one of -1; got 2.0"),
        ({"method": "c"}, "_Toy.method: must be one of 'a', 'b' or None; got 'c'"),
        ({"flag": 1}, "_Toy.flag: must be True or False; got 1"),
        ({"graph": nx.Graph()}, "_Toy.graph: must be a networkx DiGraph or None; got"),
    ],
)
def test_check_params_refuses_in_one_template(options, message):
    with pytest.raises(ConfigError) as info:
        check_params(_Toy(**options))
    assert str(info.value).startswith(message)


def test_check_params_accepts_every_allowed_kind():
    for options in (
        {},
        {"alpha": 1e-9, "n_jobs": -1, "method": "b", "flag": True, "graph": nx.DiGraph()},
        {"alpha": np.float64(0.5), "n_jobs": np.int64(4), "method": None},
    ):
        check_params(_Toy(**options))
