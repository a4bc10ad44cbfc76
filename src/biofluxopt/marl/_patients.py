"""Virtual patients: real HMP1 compositions split by subject, host factors, hidden kinetic
parameters, and each patient's stochastic diet and supplement adherence over an episode."""

from __future__ import annotations

import functools
from dataclasses import dataclass

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
    """

    subject_id: tuple[str, ...]
    sample_id: tuple[str, ...]
    composition: Tensor
    host: HostFactors
    params: KineticParams
    habitual_b12_ug_per_day: Tensor
    food_ug_per_day: Tensor
    supplement_ug: Tensor


def draw_patients(
    pool: CompositionPool,
    config: B12EnvConfig,
    rng: np.random.Generator,
    *,
    dtype: torch.dtype,
    device: torch.device,
) -> Patients:
    """Draw ``config.n_patients`` patients from ``pool`` with the generator ``rng``.

    Compositions are drawn with replacement; host factors from the config's distributions;
    kinetic parameters from ``sim.sample_params`` with ``config.spread`` (seeded from
    ``rng``); habitual intake log-normal around ``diet_b12_ug_per_day``; daily intake
    log-normal with mean 1 around it; supplement doses taken with probability ``adherence``.
    Everything comes from ``rng``, so the same generator state gives the same patients.
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
        params=sample_params(n, seed=params_seed, spread=config.spread, dtype=dtype, device=device),
        habitual_b12_ug_per_day=tensor(habitual),
        food_ug_per_day=tensor(habitual[:, None] * daily),
        supplement_ug=tensor(config.supplement_ug_per_day * taken),
    )


__all__ = ["CompositionPool", "Patients", "draw_patients", "hmp_pool", "user_pool"]
