"""Shared constraint values of the :mod:`biofluxopt.synth` estimators.

The constraint kinds and the checker are the package's own (:func:`biofluxopt._util.check_params`,
scikit-learn's ``_parameter_constraints`` style, refusing with a
:class:`~biofluxopt._util.ConfigError` ``Owner.option: must be …; got …``); this module only
names the few constraints the synth estimators share.
"""

from __future__ import annotations

from numbers import Integral

from biofluxopt._util import SEED_MAX, InstanceOf, Interval, Options, check_params

BOOLEAN = Options(True, False)
AUTO = Options("auto")
SEED = Interval(Integral, 0, SEED_MAX)
"""A seed (``random_state``): an integer from 0 to 2⁶³ − 1, as ``--seed`` on the CLI."""


DEVICE = InstanceOf(str, "a device name such as 'cpu' or 'cuda'")
"""A torch device name (any string, e.g. ``"cpu"``, ``"cuda:0"``)."""


__all__ = ["AUTO", "BOOLEAN", "DEVICE", "SEED", "Interval", "Options", "check_params"]
