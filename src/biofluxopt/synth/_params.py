"""Parameter constraints declared as data, checked in ``fit`` (scikit-learn's style).

Each estimator of :mod:`biofluxopt.synth` lists its constructor parameters once, in a
``_parameter_constraints`` dict ``{name: [constraint, ...]}`` (a value is valid when any
constraint accepts it), and calls :func:`validate_params` at the start of ``fit``. Errors follow
one template — parameter, owner, what is allowed, what was received — and are
:class:`~biofluxopt._util.ConfigError`, so the CLI shows them as one line.

scikit-learn's own ``sklearn.utils._param_validation`` is private API and raises
``InvalidParameterError`` (a ``ValueError``); this small checker keeps the package's error type.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from biofluxopt._util import ConfigError


@dataclass(frozen=True)
class Interval:
    """A real or integer interval; ``None`` bounds are open-ended.

    Parameters
    ----------
    kind : {"int", "real"}
        ``"int"``: integers only (``bool`` excluded); ``"real"``: any finite real number.
    low, high : float or None
        Bounds.
    closed : {"both", "left", "right", "neither"}, default="both"
        Which bounds belong to the interval.
    """

    kind: str
    low: float | None
    high: float | None
    closed: str = "both"

    def accepts(self, value) -> bool:
        if isinstance(value, bool):
            return False
        if self.kind == "int" and not isinstance(value, numbers.Integral):
            return False
        if not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
            return False
        low_ok = self.low is None or (
            value >= self.low if self.closed in ("both", "left") else value > self.low
        )
        high_ok = self.high is None or (
            value <= self.high if self.closed in ("both", "right") else value < self.high
        )
        return bool(low_ok and high_ok)

    def __str__(self) -> str:
        kind = "an integer" if self.kind == "int" else "a number"
        left = "[" if self.closed in ("both", "left") and self.low is not None else "("
        right = "]" if self.closed in ("both", "right") and self.high is not None else ")"
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"{kind} in {left}{low}, {high}{right}"


@dataclass(frozen=True)
class Options:
    """One of a fixed set of values (strings or booleans), compared with ``==``."""

    values: tuple

    def accepts(self, value) -> bool:
        if isinstance(value, bool) != all(isinstance(v, bool) for v in self.values):
            return False
        return any(value == v and type(value) is type(v) for v in self.values)

    def __str__(self) -> str:
        return " or ".join(repr(v) for v in self.values)


BOOLEAN = Options((True, False))
AUTO = Options(("auto",))


@dataclass(frozen=True)
class IsNone:
    """``None`` (e.g. an optional seed)."""

    def accepts(self, value) -> bool:
        return value is None

    def __str__(self) -> str:
        return "None"


@dataclass(frozen=True)
class IsString:
    """Any non-empty string (e.g. a torch device name)."""

    def accepts(self, value) -> bool:
        return isinstance(value, str) and bool(value.strip())

    def __str__(self) -> str:
        return "a non-empty string"


SEED = Interval("int", 0, 2**63 - 1)
"""A seed (``random_state``): an integer from 0 to 2⁶³ − 1, as ``--seed`` on the CLI."""


def validate_params(estimator) -> None:
    """Check every parameter of ``estimator`` against its ``_parameter_constraints``.

    Raises
    ------
    ConfigError
        ``field`` = the parameter name; the message names the estimator, what is allowed and
        the value received.
    """
    owner = type(estimator).__name__
    for name, constraints in estimator._parameter_constraints.items():
        value = getattr(estimator, name)
        if any(c.accepts(value) for c in constraints):
            continue
        allowed = " or ".join(str(c) for c in constraints)
        raise ConfigError(
            f"the {name!r} parameter of {owner} must be {allowed}; got {value!r}", field=name
        )
