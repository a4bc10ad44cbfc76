"""Kinetic parameters as a batched, overridable tensor structure.

Every parameter of ``knowledge/data/parameters.toml`` is one tensor of shape ``[patients]``
(one value per patient), so any of them can be overridden, sampled per patient, or made to
require gradients for sensitivity analysis.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from biofluxopt._util import ConfigError
from biofluxopt.knowledge import BACKGROUND_ID, Parameter, load_parameters, load_taxa

#: Per-taxon quantities; the parameter id is ``f"{quantity}__{taxon_id}"``.
TAXON_QUANTITIES = (
    "synthesis",
    "true_fraction",
    "uptake",
    "growth_dependence",
    "production_cost",
    "si_biomass_ratio",
    "remodelling",
    "propionate",
)


def taxon_ids() -> tuple[str, ...]:
    """Model taxa in state order (agents first, the background guild ``"other"`` last)."""
    taxa = load_taxa()
    return (*(t.id for t in taxa if t.id != BACKGROUND_ID), BACKGROUND_ID)


@dataclass(frozen=True)
class KineticParams:
    """All kinetic parameters of a batch of patients.

    Attributes
    ----------
    values : dict of str to Tensor
        Parameter id (as in ``parameters.toml``) → tensor of shape ``[patients]`` in the
        parameter's unit. Read with ``params["id"]``; per-taxon values stacked in taxon order
        with :meth:`taxon`.
    """

    values: Mapping[str, Tensor]

    def __getitem__(self, key: str) -> Tensor:
        try:
            return self.values[key]
        except KeyError:
            raise KeyError(f"unknown kinetic parameter {key!r}") from None

    def __iter__(self):
        return iter(self.values)

    @property
    def n_patients(self) -> int:
        return next(iter(self.values.values())).shape[0]

    @property
    def dtype(self) -> torch.dtype:
        return next(iter(self.values.values())).dtype

    @property
    def device(self) -> torch.device:
        return next(iter(self.values.values())).device

    def taxon(self, quantity: str) -> Tensor:
        """Per-taxon parameter ``quantity`` stacked to shape ``[patients, taxa]``."""
        return torch.stack([self.values[f"{quantity}__{t}"] for t in taxon_ids()], dim=-1)

    def replace(self, **overrides: Tensor | float) -> KineticParams:
        """A copy with some parameters replaced (scalars broadcast to ``[patients]``).

        Tensors are used as given (not copied), so a tensor with ``requires_grad=True``
        carries gradients through the simulation.
        """
        new = dict(self.values)
        n = self.n_patients
        for key, value in overrides.items():
            if key not in new:
                raise ConfigError(f"unknown kinetic parameter {key!r}", field=key)
            t = torch.as_tensor(value, dtype=self.dtype, device=self.device)
            new[key] = t.expand(n) if t.ndim == 0 else t
            if new[key].shape != (n,):
                raise ConfigError(f"expected shape ({n},), got {tuple(new[key].shape)}", field=key)
        return KineticParams(new)

    def index(self, idx: Tensor | slice | list[int]) -> KineticParams:
        """Parameters of a subset of patients."""
        return KineticParams({k: v[idx] for k, v in self.values.items()})

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None):
        """Move all tensors to ``device`` / cast to ``dtype``."""
        return KineticParams({k: v.to(device=device, dtype=dtype) for k, v in self.values.items()})


def parameter_table() -> tuple[Parameter, ...]:
    """The knowledge-base rows behind :class:`KineticParams` (value, unit, range, source)."""
    return load_parameters()


def default_params(
    n_patients: int = 1, *, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu"
) -> KineticParams:
    """Calibrated default parameters, identical for all ``n_patients`` patients."""
    values = {
        p.id: torch.full((n_patients,), p.value, dtype=dtype, device=device)
        for p in load_parameters()
    }
    return KineticParams(values)


#: Default scale of inter-individual variability (``spread`` of :func:`sample_params`).
#: Calibrated so that the serum B12 reference interval of healthy omnivores (no supplement,
#: normal IF and gastric release, 18-64 y; central 95 %) is as wide as the widest published
#: ones: ln(664/148) = 1.50 (Kuzminski 1998, 200-900 pg/mL) and ln(457/103) = 1.49 (Architect,
#: 139-619 pg/mL); the Danish 200-600 pmol/L interval (1.10) would give ~0.35. Spread 1.0 (the
#: parameters' plausible ranges taken as +-3 sigma of the population) gave 2.67, i.e. 73-1055
#: pmol/L: the ranges describe what we do not know about the mean person, not how people
#: differ. Measured in docs/validation.md ("population spread"); 0.5 before the part-2 model
#: changes (plasma binders, resilience, joint absorption fit), which narrowed the response.
POPULATION_SPREAD = 0.67


def sample_params(
    n_patients: int,
    *,
    seed: int = 0,
    spread: float = POPULATION_SPREAD,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> KineticParams:
    """Inter-individual variability: every parameter drawn per patient from its range.

    Distribution (documented in docs/sim.md): for a parameter with ``low > 0`` a log-normal
    with median at the calibrated value and ``sigma = spread * ln(high/low) / 6``; for
    ``low <= 0`` a normal around the value with ``sigma = spread * (high - low) / 6``; both
    truncated (clipped) to ``[low, high]``. Parameters with ``low == high`` are fixed.

    Parameters
    ----------
    n_patients : int
    seed : int
        Seed of a private ``torch.Generator`` (global RNG state is not touched).
    spread : float, default=POPULATION_SPREAD
        Scales every sigma; 0 gives :func:`default_params`.
    """
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    values = {}
    for p in load_parameters():
        z = torch.randn(n_patients, generator=gen, dtype=torch.float64)
        if p.high <= p.low or spread == 0:
            v = torch.full((n_patients,), p.value, dtype=torch.float64)
        elif p.low > 0:
            sigma = spread * math.log(p.high / p.low) / 6.0
            v = p.value * torch.exp(sigma * z)
        else:
            sigma = spread * (p.high - p.low) / 6.0
            v = p.value + sigma * z
        values[p.id] = v.clamp(p.low, p.high).to(dtype=dtype, device=device)
    return KineticParams(values)
