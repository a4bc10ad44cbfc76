r"""The seed paper's HyperScore: one number in (100, 200) from normalised performance metrics.

.. math:: \mathrm{HyperScore} = 100 \times \bigl[1 + \sigma(\beta \ln V + \gamma)^{\kappa}\bigr]

with :math:`\sigma` the logistic function and :math:`V \in (0, 1]` the performance value,
here the plain mean of the normalised metrics (:func:`performance_value`).

Parameters. The seed gives :math:`\kappa = 2.2` in its worked example. :math:`\beta` and
:math:`\gamma` are *not given by the seed* and are exposed as parameters; the defaults
:math:`\beta = 5`, :math:`\gamma = -\ln 2` are the values of the template this formula family
comes from.

The seed's worked example is not consistent with its own formula (it states
:math:`\sigma = 0.985` and :math:`100 \times [1 + 0.985^{2.2}] = 127.4`, whereas the
expression evaluates to about 196.7); :func:`seed_example_check` recomputes it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scipy.special import expit

from biofluxopt._util import ConfigError, to_jsonable

__all__ = [
    "DEFAULT_BETA",
    "DEFAULT_GAMMA",
    "DEFAULT_KAPPA",
    "V_FLOOR",
    "HyperScore",
    "hyperscore",
    "performance_value",
    "score",
    "seed_example_check",
]

DEFAULT_BETA = 5.0
"""Sensitivity β: not given by the seed, exposed as a parameter (value of the formula's
template)."""
DEFAULT_GAMMA = -math.log(2)
"""Bias γ = −ln 2: not given by the seed, exposed as a parameter (value of the formula's
template)."""
DEFAULT_KAPPA = 2.2
"""Power boost κ, as in the seed's worked example."""
V_FLOOR = 1e-12
"""Smallest V used (``ln 0`` is undefined): :func:`performance_value` clips V to
``[V_FLOOR, 1]``."""

# The seed's worked example, as stated there (inputs only; everything else is computed).
_SEED_V = 0.85
_SEED_SIGMA = 0.985
_SEED_KAPPA = 2.2
_SEED_HYPERSCORE = 127.4


def _real(value: Any, name: str) -> float:
    """``value`` as a float; ConfigError for anything but a real number (bools included)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"must be a real number, got {value!r}", field=name)
    return float(value)


def _check_params(beta: float, gamma: float, kappa: float) -> tuple[float, float, float]:
    beta = _real(beta, "hyperscore.beta")
    gamma = _real(gamma, "hyperscore.gamma")
    kappa = _real(kappa, "hyperscore.kappa")
    if not math.isfinite(beta):
        raise ConfigError(f"must be finite, got {beta!r}", field="hyperscore.beta")
    if not math.isfinite(gamma):
        raise ConfigError(f"must be finite, got {gamma!r}", field="hyperscore.gamma")
    if not (math.isfinite(kappa) and kappa > 0):
        raise ConfigError(f"must be finite and > 0, got {kappa!r}", field="hyperscore.kappa")
    return beta, gamma, kappa


def _sigma(V: float, beta: float, gamma: float) -> float:
    return float(expit(beta * math.log(V) + gamma))


def hyperscore(
    V: float,
    *,
    beta: float = DEFAULT_BETA,
    gamma: float = DEFAULT_GAMMA,
    kappa: float = DEFAULT_KAPPA,
) -> float:
    """HyperScore of a performance value.

    Parameters
    ----------
    V : float
        Performance value in (0, 1] (dimensionless).
    beta : float, default=DEFAULT_BETA
        Sensitivity β (finite); not given by the seed.
    gamma : float, default=DEFAULT_GAMMA
        Bias γ (finite); not given by the seed.
    kappa : float, default=DEFAULT_KAPPA
        Power boost κ > 0.

    Returns
    -------
    float
        ``100 * (1 + expit(beta * ln V + gamma) ** kappa)``, in (100, 200) mathematically; in
        floating point it can reach exactly 100 for a V so small that σ underflows. For
        ``beta > 0`` it increases with V.

    Raises
    ------
    ConfigError
        V outside (0, 1] or not finite (``field="hyperscore.V"``), or a bad β, γ, κ
        (``field="hyperscore.beta"`` etc.).
    """
    beta, gamma, kappa = _check_params(beta, gamma, kappa)
    V = _real(V, "hyperscore.V")
    if not (0.0 < V <= 1.0):
        raise ConfigError(f"must be in (0, 1], got {V!r}", field="hyperscore.V")
    return 100.0 * (1.0 + _sigma(V, beta, gamma) ** kappa)


@dataclass(frozen=True)
class HyperScore:
    """A HyperScore with its inputs.

    Attributes
    ----------
    value : float
        The HyperScore.
    V : float
        Performance value used (mean of ``components``, clipped to ``[V_FLOOR, 1]``).
    beta, gamma, kappa : float
        Parameters of the formula.
    components : dict of str to float
        The normalised metrics (each in [0, 1]) V is the mean of.
    """

    value: float
    V: float
    beta: float
    gamma: float
    kappa: float
    components: dict[str, float] = field(default_factory=dict)

    @property
    def sigma(self) -> float:
        """σ(β ln V + γ), the logistic term before the power κ."""
        return _sigma(self.V, self.beta, self.gamma)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the fields plus ``sigma``."""
        return to_jsonable(
            {
                "value": self.value,
                "V": self.V,
                "sigma": self.sigma,
                "beta": self.beta,
                "gamma": self.gamma,
                "kappa": self.kappa,
                "components": dict(self.components),
            }
        )


def performance_value(components: Mapping[str, float]) -> float:
    """Performance value V: the plain mean of normalised metrics.

    Parameters
    ----------
    components : mapping of str to float
        Metric name to its normalised value in [0, 1] (dimensionless); at least one.

    Returns
    -------
    float
        The mean, clipped to ``[V_FLOOR, 1]`` so that ``ln V`` is finite.

    Raises
    ------
    ConfigError
        No metrics (``field="hyperscore.components"``), or a metric that is not a finite
        number in [0, 1] (``field="hyperscore.components.<metric>"``).
    """
    if not isinstance(components, Mapping) or len(components) == 0:
        raise ConfigError(
            "needs at least one normalised metric (a mapping of name to value in [0, 1])",
            field="hyperscore.components",
        )
    values = []
    for name, value in components.items():
        where = f"hyperscore.components.{name}"
        x = _real(value, where)
        if not (math.isfinite(x) and 0.0 <= x <= 1.0):
            raise ConfigError(f"a normalised metric must be in [0, 1], got {x!r}", field=where)
        values.append(x)
    return min(1.0, max(V_FLOOR, math.fsum(values) / len(values)))


def score(
    components: Mapping[str, float],
    *,
    beta: float = DEFAULT_BETA,
    gamma: float = DEFAULT_GAMMA,
    kappa: float = DEFAULT_KAPPA,
) -> HyperScore:
    """HyperScore of normalised metrics: :func:`performance_value`, then :func:`hyperscore`.

    Parameters
    ----------
    components : mapping of str to float
        Metric name to normalised value in [0, 1].
    beta, gamma, kappa : float
        As in :func:`hyperscore`.

    Returns
    -------
    HyperScore

    Raises
    ------
    ConfigError
        As in :func:`performance_value` and :func:`hyperscore`.
    """
    beta, gamma, kappa = _check_params(beta, gamma, kappa)
    V = performance_value(components)
    return HyperScore(
        value=hyperscore(V, beta=beta, gamma=gamma, kappa=kappa),
        V=V,
        beta=beta,
        gamma=gamma,
        kappa=kappa,
        components={str(k): float(v) for k, v in components.items()},
    )


def seed_example_check() -> dict[str, Any]:
    """Recompute the seed paper's worked HyperScore example.

    The seed states V = 0.85, σ(…) = 0.985, κ = 2.2 and HyperScore
    ``100 × [1 + 0.985^2.2] = 127.4``. Only those stated numbers are inputs here; the rest is
    computed.

    Returns
    -------
    dict
        ``stated_V``, ``stated_sigma``, ``kappa``, ``stated_hyperscore``;
        ``formula_hyperscore`` (``100 * (1 + stated_sigma ** kappa)``, ≈ 196.7);
        ``consistent`` (whether that rounds to the stated value at one decimal; False);
        ``sigma_implied_by_stated_hyperscore`` (the σ that would give 127.4, ≈ 0.555);
        ``default_sigma`` and ``default_hyperscore`` (σ(β ln 0.85 + γ) and the HyperScore of
        V = 0.85 with the default β, γ, κ — neither matches the stated σ).
    """
    formula = 100.0 * (1.0 + _SEED_SIGMA**_SEED_KAPPA)
    return {
        "stated_V": _SEED_V,
        "stated_sigma": _SEED_SIGMA,
        "kappa": _SEED_KAPPA,
        "stated_hyperscore": _SEED_HYPERSCORE,
        "formula_hyperscore": formula,
        "consistent": round(formula, 1) == _SEED_HYPERSCORE,
        "sigma_implied_by_stated_hyperscore": (_SEED_HYPERSCORE / 100.0 - 1.0)
        ** (1.0 / _SEED_KAPPA),
        "default_sigma": _sigma(_SEED_V, DEFAULT_BETA, DEFAULT_GAMMA),
        "default_hyperscore": hyperscore(_SEED_V, kappa=_SEED_KAPPA),
    }
