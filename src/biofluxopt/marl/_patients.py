"""Virtual patients: real HMP1 compositions split by subject, host factors, hidden kinetic
parameters, and each patient's stochastic diet and supplement adherence over an episode."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from biofluxopt._util import ConfigError
from biofluxopt.data import (
    aggregate_to_model_taxa,
    load_hmp,
    subject_ids,
    train_test_split_by_subject,
)
from biofluxopt.knowledge import load_parameters
from biofluxopt.sim import HostFactors, KineticParams, host_factors, sample_params, taxon_ids

from ._config import HOST_LEVELS, B12EnvConfig


@dataclass(frozen=True)
class CompositionPool:
    """Compositions patients are drawn from.

    Attributes
    ----------
    composition : Tensor, shape ``[samples, taxa]``
        Relative abundances on the model's taxa (``sim.taxon_ids()`` order), rows sum to 1.
    subject_id : tuple of str, length ``samples``
        The person each sample comes from (HMP ``subject_rsid``).
    sample_id : tuple of str, length ``samples``
    """

    composition: Tensor
    subject_id: tuple[str, ...]
    sample_id: tuple[str, ...]


@functools.lru_cache(maxsize=8)
def hmp_pool(
    split: str = "train", *, test_fraction: float = 0.2, split_seed: int = 0, region: str = "v35"
) -> CompositionPool:
    """HMP1 stool compositions of one side of the subject split.

    Parameters
    ----------
    split : {"train", "test", "all"}
    test_fraction : float in (0, 1)
        Share of subjects held out (``biofluxopt.data.train_test_split_by_subject``).
    split_seed : int
    region : {"v35", "v13"}

    Returns
    -------
    CompositionPool
        The ``"train"`` and ``"test"`` pools of one ``(test_fraction, split_seed, region)``
        share no subject.
    """
    table = load_hmp(region)
    if split != "all":
        train, test = train_test_split_by_subject(
            table, test_fraction=test_fraction, seed=split_seed
        )
        table = train if split == "train" else test
    comp = aggregate_to_model_taxa(table)[list(taxon_ids())]
    subjects = subject_ids(table)
    return CompositionPool(
        composition=torch.tensor(comp.to_numpy(), dtype=torch.float64),
        subject_id=tuple(str(s) for s in subjects),
        sample_id=tuple(str(s) for s in comp.index),
    )


def user_pool(compositions: Tensor) -> CompositionPool:
    """A pool of user compositions ``[samples, taxa]`` (each sample its own subject)."""
    comp = torch.as_tensor(compositions, dtype=torch.float64)
    if comp.dim() != 2 or comp.shape[1] != len(taxon_ids()):
        raise ConfigError(
            f"must have shape [samples, {len(taxon_ids())}] (taxa in sim.taxon_ids() order); "
            f"got {tuple(comp.shape)}",
            field="compositions",
        )
    if not bool(torch.isfinite(comp).all()) or bool((comp < 0).any()):
        raise ConfigError("abundances must be finite and >= 0", field="compositions")
    total = comp.sum(1)
    if bool((total <= 0).any()):
        raise ConfigError("a composition sums to 0", field="compositions")
    ids = tuple(f"user-{i}" for i in range(comp.shape[0]))
    return CompositionPool(comp / total[:, None], ids, ids)


@dataclass(frozen=True)
class Cohort:
    """A fixed list of people to simulate, in order (a virtual trial's cohort).

    Attributes
    ----------
    composition : Tensor, shape ``[patients, taxa]``
        Baseline relative abundances on the model's taxa (``sim.taxon_ids()`` order); rows
        are closed on construction.
    host : dict of str to tuple of str
        For each host factor of ``HOST_LEVELS`` (``intrinsic_factor``, ``gastric_release``,
        ``fut2``, ``tcn2_776``, ``mthfr_677``), one level per patient. A factor left out is
        drawn from the env config's distribution.
    habitual_b12_ug_per_day : Tensor, shape ``[patients]``, optional
        Usual food B12 (µg/day); None: drawn as without a cohort.
    subject_id : tuple of str, length ``patients``
        Who each row is (e.g. an HMP subject, ``"synthetic-12"``, or a user's patient id).

    With a cohort, a :class:`B12Env` has exactly ``len(cohort)`` patients, row ``i`` at
    index ``i``; kinetic parameters, daily intake and adherence are still drawn from the
    env's generator, so the same reset seed gives every arm of a trial the same noise.
    """

    composition: Tensor
    host: dict[str, tuple[str, ...]]
    habitual_b12_ug_per_day: Tensor | None
    subject_id: tuple[str, ...]

    def __post_init__(self) -> None:
        comp = user_pool(self.composition).composition
        object.__setattr__(self, "composition", comp)
        n = comp.shape[0]
        if len(self.subject_id) != n:
            raise ConfigError(
                f"has {len(self.subject_id)} ids for {n} compositions", field="cohort.subject_id"
            )
        for name, levels in self.host.items():
            if name not in HOST_LEVELS:
                raise ConfigError(
                    f"unknown host factor {name!r} (allowed: {list(HOST_LEVELS)})",
                    field="cohort.host",
                )
            if len(levels) != n:
                raise ConfigError(
                    f"has {len(levels)} levels for {n} patients", field=f"cohort.host.{name}"
                )
            bad = sorted({str(v) for v in levels} - set(HOST_LEVELS[name]))
            if bad:
                raise ConfigError(
                    f"unknown level(s) {bad} (allowed: {list(HOST_LEVELS[name])})",
                    field=f"cohort.host.{name}",
                )
        if self.habitual_b12_ug_per_day is not None:
            diet = torch.as_tensor(self.habitual_b12_ug_per_day, dtype=torch.float64)
            if diet.shape != (n,) or not bool(torch.isfinite(diet).all()) or bool((diet < 0).any()):
                raise ConfigError(
                    f"must be {n} finite values >= 0 (µg/day)",
                    field="cohort.habitual_b12_ug_per_day",
                )
            object.__setattr__(self, "habitual_b12_ug_per_day", diet)

    def __len__(self) -> int:
        return int(self.composition.shape[0])


@dataclass(frozen=True)
class Patients:
    """One batch of virtual patients and their episode's inputs.

    Attributes
    ----------
    subject_id, sample_id : tuple of str, length ``patients``
    composition : Tensor, shape ``[patients, taxa]``
        Baseline relative abundances.
    host : sim.HostFactors
    params : sim.KineticParams
        Kinetic parameters (hidden from the agents).
    habitual_b12_ug_per_day : Tensor, shape ``[patients]``
        Usual food B12 (µg/day): the mean of the daily intake and the steady-state diet.
    food_ug_per_day : Tensor, shape ``[patients, days]``
        Food B12 eaten each day of the episode (µg/day).
    supplement_ug : Tensor, shape ``[patients, days]``
        Oral supplement taken each day (µg; 0 on missed days).
    host_levels : dict of str to tuple of str
        Each host factor's level per patient (the coding of ``host``).
    """

    subject_id: tuple[str, ...]
    sample_id: tuple[str, ...]
    composition: Tensor
    host: HostFactors
    params: KineticParams
    habitual_b12_ug_per_day: Tensor
    food_ug_per_day: Tensor
    supplement_ug: Tensor
    host_levels: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _with_parameter_values(params: KineticParams, values: dict[str, float]) -> KineticParams:
    """``params`` with the population value of some parameters moved (spread kept, clipped)."""
    if not values:
        return params
    table = {p.id: p for p in load_parameters()}
    out = dict(params.values)
    for pid, value in values.items():
        p, v = table[pid], out[pid]
        moved = v * (value / p.value) if p.low > 0 else v + (value - p.value)
        out[pid] = moved.clamp(p.low, p.high)
    return KineticParams(out)


def draw_patients(
    pool: CompositionPool,
    config: B12EnvConfig,
    rng: np.random.Generator,
    *,
    dtype: torch.dtype,
    device: torch.device,
    cohort: Cohort | None = None,
) -> Patients:
    """Draw ``config.n_patients`` patients from ``pool`` with the generator ``rng``.

    Compositions are drawn with replacement; host factors from the config's distributions;
    kinetic parameters from ``sim.sample_params`` with ``config.spread`` (seeded from
    ``rng``); habitual intake log-normal around ``diet_b12_ug_per_day``; daily intake
    log-normal with mean 1 around it; supplement doses taken with probability ``adherence``.
    Everything comes from ``rng``, so the same generator state gives the same patients.

    With a ``cohort`` (``config.n_patients == len(cohort)``), row ``i`` of the cohort is
    patient ``i``: its composition, its given host factors and habitual intake; the draws
    are made all the same (and discarded where the cohort gives the value), so the noise of
    a cohort env follows the same generator sequence as without one. ``parameter_values``
    of the config move the population values of those kinetic parameters.
    """
    n, days = config.n_patients, config.episode_days
    rows = rng.integers(0, pool.composition.shape[0], size=n)
    levels = {}
    for name, allowed in HOST_LEVELS.items():
        dist = getattr(config, name)
        p = np.array([dist.get(level, 0.0) for level in allowed], dtype=np.float64)
        levels[name] = [allowed[i] for i in rng.choice(len(allowed), size=n, p=p / p.sum())]
    params_seed = int(rng.integers(0, 2**62))
    s_between = np.log(config.diet_between_gsd)
    habitual = config.diet_b12_ug_per_day * np.exp(s_between * rng.standard_normal(n))
    if cohort is not None:
        if len(cohort) != n:
            raise ConfigError(
                f"the cohort has {len(cohort)} patients but n_patients = {n}",
                field="B12EnvConfig.n_patients",
            )
        pool = CompositionPool(cohort.composition, cohort.subject_id, cohort.subject_id)
        rows = np.arange(n)
        levels.update({k: list(v) for k, v in cohort.host.items()})
        if cohort.habitual_b12_ug_per_day is not None:
            habitual = cohort.habitual_b12_ug_per_day.numpy().copy()
    s_day = np.log(config.diet_day_gsd)
    daily = np.exp(s_day * rng.standard_normal((n, days)) - 0.5 * s_day**2)
    taken = rng.random((n, days)) < config.adherence

    def tensor(a) -> Tensor:
        return torch.as_tensor(np.asarray(a, dtype=np.float64)).to(dtype=dtype, device=device)

    return Patients(
        subject_id=tuple(pool.subject_id[i] for i in rows),
        sample_id=tuple(pool.sample_id[i] for i in rows),
        composition=pool.composition[torch.as_tensor(rows)].to(dtype=dtype, device=device),
        host=host_factors(n, **levels, dtype=dtype, device=device),
        params=_with_parameter_values(
            sample_params(n, seed=params_seed, spread=config.spread, dtype=dtype, device=device),
            config.parameter_values,
        ),
        habitual_b12_ug_per_day=tensor(habitual),
        food_ug_per_day=tensor(habitual[:, None] * daily),
        supplement_ug=tensor(config.supplement_ug_per_day * taken),
        host_levels={k: tuple(v) for k, v in levels.items()},
    )


__all__ = ["Cohort", "CompositionPool", "Patients", "draw_patients", "hmp_pool", "user_pool"]
