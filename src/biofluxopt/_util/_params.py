"""Estimator options declared once, as data, and checked in one place.

An estimator lists what each ``__init__`` option may be in a class attribute, the way
scikit-learn's ``_parameter_constraints`` does (``sklearn/utils/_param_validation.py``)::

    class HybridStructureLearner(BaseEstimator):
        _parameter_constraints = {
            "method": [Options("hybrid", "pc", "hc", "mixed")],
            "alpha": [Interval(Real, 0, 1, closed="neither")],
            "max_indegree": [Interval(Integral, 1, None), None],
        }

        def fit(self, data):
            check_params(self)
            ...

A value is accepted when it meets any one constraint of its list; ``None`` in the list accepts
``None``. A refusal is a :class:`~biofluxopt._util.ConfigError` in one template: owner and
option, what is allowed, what was received, e.g. ``HybridStructureLearner.alpha: must be a
real number in (0, 1); got 1.5``.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from numbers import Integral, Real

from ._errors import ConfigError

_NAMES = {Integral: "an integer", Real: "a real number"}


@dataclass(frozen=True)
class Interval:
    """Numbers of ``kind`` (``numbers.Integral`` or ``numbers.Real``) between ``low`` and
    ``high`` (``None``: unbounded); ``closed`` says which ends belong to the interval:
    ``"both"`` (default), ``"left"``, ``"right"`` or ``"neither"``. Booleans never qualify,
    and a real interval refuses NaN."""

    kind: type
    low: float | None
    high: float | None
    closed: str = "both"

    def __post_init__(self) -> None:
        if self.kind not in _NAMES:
            raise TypeError(
                f"Interval kind must be numbers.Integral or numbers.Real, not {self.kind}"
            )
        if self.closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"closed must be both, left, right or neither, not {self.closed!r}")

    def accepts(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, self.kind):
            return False
        if isinstance(value, float) and math.isnan(value):
            return False
        if self.low is not None:
            if value < self.low or (value == self.low and self.closed in ("right", "neither")):
                return False
        if self.high is not None:
            if value > self.high or (value == self.high and self.closed in ("left", "neither")):
                return False
        return True

    def __str__(self) -> str:
        left = "[" if self.closed in ("both", "left") and self.low is not None else "("
        right = "]" if self.closed in ("both", "right") and self.high is not None else ")"
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"{_NAMES[self.kind]} in {left}{low}, {high}{right}"


class Options:
    """One of a fixed set of values (compared with ``==``; strings match only strings and
    booleans only booleans)."""

    def __init__(self, *values: object):
        self.values = values

    def accepts(self, value: object) -> bool:
        return any(
            isinstance(value, str) == isinstance(v, str)
            and isinstance(value, bool) == isinstance(v, bool)
            and value == v
            for v in self.values
        )

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)

    def __repr__(self) -> str:
        return f"Options{self.values!r}"


@dataclass(frozen=True)
class InstanceOf:
    """An instance of ``kind``, described as ``description``.

    ``kind`` is a class, a tuple of classes, or ``"module:Class"``, imported on the first
    check (so declaring a constraint on a heavy optional dependency, e.g.
    ``"pgmpy.causal_discovery:ExpertKnowledge"``, does not import it). A boolean is an
    instance of ``int`` to Python, but not here unless ``kind`` is ``bool``.
    """

    kind: type | tuple[type, ...] | str
    description: str

    def accepts(self, value: object) -> bool:
        kind = self.kind
        if isinstance(kind, str):
            module, _, name = kind.partition(":")
            kind = getattr(importlib.import_module(module), name)
        if isinstance(value, bool) and kind is not bool:
            return False
        return isinstance(value, kind)

    def __str__(self) -> str:
        return self.description


def _accepts(constraint: object, value: object) -> bool:
    if constraint is None:
        return value is None
    return constraint.accepts(value)


def _describe(constraint: object) -> str:
    return "None" if constraint is None else str(constraint)


def check_params(estimator: object, constraints: dict[str, list] | None = None) -> None:
    """Check every option of ``estimator`` against its class's ``_parameter_constraints``.

    Parameters
    ----------
    estimator : object
        Anything whose options are attributes of the same name (a scikit-learn estimator).
    constraints : dict of str to list, optional
        Option name -> accepted kinds (:class:`Interval`, :class:`Options`,
        :class:`InstanceOf`, ``None``); default ``type(estimator)._parameter_constraints``.
        An option without an entry is not checked.

    Raises
    ------
    ConfigError
        The first option (in declaration order) that meets none of its constraints, with
        the owner and option as ``field``: ``Owner.option: must be …; got …``.
    """
    owner = type(estimator).__name__
    if constraints is None:
        constraints = type(estimator)._parameter_constraints
    for name, allowed in constraints.items():
        value = getattr(estimator, name)
        if any(_accepts(c, value) for c in allowed):
            continue
        described = " or ".join(_describe(c) for c in allowed)
        raise ConfigError(f"must be {described}; got {value!r}", field=f"{owner}.{name}")
