"""The scikit-learn estimator contract, run over every estimator of ``biofluxopt.synth``:
parameters stored unchanged, ``get_params``/``clone``, fitted attributes ending in ``_``,
``check_is_fitted``, constraints declared as data and checked in ``fit`` with the package's
error type, and determinism under ``random_state``."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from biofluxopt._util import BioFluxOptError, ConfigError
from biofluxopt.synth import (
    BootstrapSampler,
    CompositionWGAN,
    DirichletMultinomial,
    NearCopyFilter,
)

SMALL_GAN = {"iterations": 3, "latent_dim": 8, "hidden": 16, "batch_size": 16, "n_critic": 1}
ESTIMATORS = {
    "gan": lambda: CompositionWGAN(**SMALL_GAN),
    "dm": lambda: DirichletMultinomial(max_iter=50),
    "bootstrap": lambda: BootstrapSampler(noise_sd=0.3),
    "near_copy": lambda: NearCopyFilter(quantile=0.1),
}
BAD_VALUE = {
    "gan": ("batch_size", 0),
    "dm": ("tol", -1.0),
    "bootstrap": ("noise_sd", float("nan")),
    "near_copy": ("quantile", 1.5),
}


def _fit(est, data):
    if isinstance(est, NearCopyFilter):
        return est.fit(data, groups=np.arange(len(data)) // 2)
    return est.fit(data)


def _output(est, data):
    if isinstance(est, NearCopyFilter):
        return est.nearest_distance(data[::-1])
    return est.sample(25)


@pytest.fixture(params=sorted(ESTIMATORS))
def name(request):
    return request.param


def test_parameters_are_stored_unchanged_and_cloned(name):
    est = ESTIMATORS[name]()
    assert isinstance(est, BaseEstimator)
    params = est.get_params()
    assert set(params) == set(type(est)._parameter_constraints)
    for key, value in params.items():
        assert getattr(est, key) is value or getattr(est, key) == value
    twin = clone(est)
    assert twin is not est and twin.get_params() == params
    assert repr(est).startswith(type(est).__name__)


def test_constraints_are_checked_in_fit_with_the_packages_error(name, toy_compositions):
    key, value = BAD_VALUE[name]
    est = ESTIMATORS[name]().set_params(**{key: value})  # the constructor does not validate
    assert getattr(est, key) is value
    owner = type(est).__name__
    with pytest.raises(ConfigError, match=rf"^{owner}\.{key}: must be .*; got ") as e:
        _fit(est, toy_compositions)
    assert isinstance(e.value, BioFluxOptError) and not isinstance(e.value, ValueError)
    assert e.value.field == f"{owner}.{key}"


def test_fitted_attributes_and_check_is_fitted(name, one_thread, toy_compositions):
    est = ESTIMATORS[name]()
    with pytest.raises(NotFittedError):
        check_is_fitted(est)
    assert not [k for k in vars(est) if k.endswith("_")]
    _fit(est, toy_compositions)
    check_is_fitted(est)
    learned = [k for k in vars(est) if k.endswith("_") and not k.startswith("_")]
    assert learned
    assert set(vars(est)) - set(learned) == set(est.get_params()) | {
        k for k in vars(est) if k.startswith("_")
    }


def test_same_random_state_same_output(name, one_thread, toy_compositions):
    data = toy_compositions.to_numpy()
    a = _output(_fit(ESTIMATORS[name](), data), data)
    b = _output(_fit(clone(ESTIMATORS[name]()), data), data)
    np.testing.assert_array_equal(a, b)
    if "random_state" in ESTIMATORS[name]().get_params():
        c = _output(_fit(ESTIMATORS[name]().set_params(random_state=1), data), data)
        assert not np.array_equal(a, c)
