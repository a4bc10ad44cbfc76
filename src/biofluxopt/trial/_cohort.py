"""The virtual cohort: compositions (held-out real HMP1 + GAN-made) × host factors (from the
Bayesian network, or a user's table).

Who is never trained on: the GAN and the policy see only the training side of the HMP1
subject split; real trial patients come from the held-out side; GAN compositions used to
score the reward weights (``validation``) are other draws than the trial's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from biofluxopt._util import ConfigError, DataError
from biofluxopt.data import aggregate_to_model_taxa, load_hmp, train_test_split_by_subject
from biofluxopt.marl import HOST_LEVELS, B12EnvConfig, Cohort, hmp_pool
from biofluxopt.sim import taxon_ids

#: Host-factor columns a cohort table may give (``HOST_LEVELS``) plus the diet.
HOST_COLUMNS = (*HOST_LEVELS, "diet", "b12_intake_ug_per_day")


@dataclass(frozen=True)
class CohortTables:
    """A cohort as tables (what the ``cohort`` stage writes).

    Attributes
    ----------
    compositions : pandas.DataFrame, shape ``(patients, taxa)``
        Relative abundances on the model's taxa (``sim.taxon_ids()``), index = patient id.
    host : pandas.DataFrame, shape ``(patients, len(HOST_COLUMNS))``
        Host factors, diet and habitual food B12 (µg/day), same index.
    source : pandas.Series
        ``"hmp"`` or ``"gan"`` per patient (same index).
    """

    compositions: pd.DataFrame
    host: pd.DataFrame
    source: pd.Series

    def to_cohort(self) -> Cohort:
        """The :class:`marl.Cohort` the env runs."""
        host = {k: tuple(str(v) for v in self.host[k]) for k in HOST_LEVELS}
        diet = torch.tensor(self.host["b12_intake_ug_per_day"].to_numpy(dtype=np.float64))
        return Cohort(
            torch.tensor(self.compositions.to_numpy(dtype=np.float64)),
            host,
            diet,
            tuple(str(i) for i in self.compositions.index),
        )

    def head(self, n: int) -> CohortTables:
        """The first ``n`` patients."""
        return CohortTables(self.compositions.iloc[:n], self.host.iloc[:n], self.source.iloc[:n])

    def __len__(self) -> int:
        return len(self.compositions)


# ---------------------------------------------------------------------------- compositions
def hmp_training_table(env: B12EnvConfig):
    """The training side of the env's HMP1 subject split, as an ``AbundanceTable``."""
    table = load_hmp(env.hmp_region)
    train, _ = train_test_split_by_subject(
        table, test_fraction=env.test_fraction, seed=env.split_seed
    )
    return train


def real_compositions(env: B12EnvConfig, n: int, *, seed: int) -> tuple[pd.DataFrame, list[str]]:
    """``n`` held-out HMP1 compositions on the model's taxa, one per subject where possible.

    Returns the compositions (index ``hmp-<sample id>``) and notes (e.g. fewer available).
    """
    notes: list[str] = []
    if n == 0:
        return pd.DataFrame(columns=list(taxon_ids()), dtype=float), notes
    pool = hmp_pool(
        "test", test_fraction=env.test_fraction, split_seed=env.split_seed, region=env.hmp_region
    )
    rng = np.random.default_rng(seed)
    # one sample per subject first (visits of one person are not independent patients)
    subjects = pd.Series(pool.subject_id)
    first = subjects.drop_duplicates().index.to_numpy()
    rest = np.setdiff1d(np.arange(len(subjects)), first)
    order = np.concatenate([rng.permutation(first), rng.permutation(rest)])
    if n > len(order):
        notes.append(
            f"only {len(order)} held-out HMP1 samples exist; the cohort uses all of them "
            f"instead of {n}"
        )
    rows = order[:n]
    if len(rows) > len(first):
        notes.append(
            f"{len(rows)} real patients from {len(first)} held-out subjects: some subjects "
            "appear with more than one visit"
        )
    comp = pool.composition[torch.as_tensor(rows)].numpy()
    index = [f"hmp-{pool.sample_id[i]}" for i in rows]
    return pd.DataFrame(comp, index=index, columns=list(taxon_ids())), notes


def synthetic_compositions(
    model, near_copy_filter, lineages: dict[str, str], columns, n: int, *, seed: int, prefix: str
) -> pd.DataFrame:
    """``n`` GAN compositions (privacy-filtered) summed onto the model's taxa."""
    if n == 0:
        return pd.DataFrame(columns=list(taxon_ids()), dtype=float)
    draws = model.sample(n, seed=seed, near_copy_filter=near_copy_filter)
    frame = pd.DataFrame(draws, columns=list(columns))
    comp = aggregate_to_model_taxa(frame, lineages=lineages)[list(taxon_ids())]
    comp.index = [f"{prefix}-{i}" for i in range(n)]
    return comp


# ---------------------------------------------------------------------------- host factors
def host_from_network(
    network, table: pd.DataFrame, n: int, *, seed: int
) -> tuple[pd.DataFrame, list[str]]:
    """Host factors, diet and habitual intake of ``n`` people drawn from a learned network.

    Forward sampling (pgmpy ``BayesianModelSampling``) of the whole network; the host-factor
    nodes are kept. Habitual food B12 is drawn from the people of the network's training
    ``table`` whose intake falls in the sampled state (so values stay inside what the
    cohort had); a factor the network dropped (one state only) takes that state.
    """
    from pgmpy.sampling import BayesianModelSampling

    notes: list[str] = []
    sample = BayesianModelSampling(network.model).forward_sample(
        size=n, seed=int(seed % 2**32), show_progress=False
    )
    rng = np.random.default_rng(seed)
    out = pd.DataFrame(index=range(n))
    for factor in HOST_LEVELS:
        if factor in sample.columns:
            out[factor] = sample[factor].astype(str).to_numpy()
        else:
            level = str(table[factor].mode().iloc[0])
            out[factor] = level
            notes.append(f"host factor {factor} has one state in the BN cohort: all {level}")
    diet = sample["diet"].astype(str).to_numpy() if "diet" in sample else table["diet"].mode()[0]
    out["diet"] = diet
    intake = table["b12_intake_ug_per_day"].to_numpy(dtype=np.float64)
    if "b12_intake" in sample.columns:
        disc = network.discretiser
        values = np.empty(n)
        for i, state in enumerate(sample["b12_intake"].astype(str)):
            lo, hi = disc.interval("b12_intake", state)
            inside = intake[(intake >= lo) & (intake < hi)]
            values[i] = rng.choice(inside if inside.size else intake)
        out["b12_intake_ug_per_day"] = values
    else:
        out["b12_intake_ug_per_day"] = rng.choice(intake, size=n)
    for factor, levels in HOST_LEVELS.items():
        bad = sorted(set(out[factor]) - set(levels))
        if bad:
            raise DataError(f"states {bad} of {factor} are not simulator levels", field=factor)
    return out, notes


def host_from_table(
    path: str | Path, n: int, env: B12EnvConfig, *, seed: int
) -> tuple[pd.DataFrame, list[str]]:
    """Host factors of ``n`` patients from a user's CSV (rows reused in order when short).

    Missing columns are drawn from the env config's distributions (and noted); a value that
    is not a level of its factor is a :class:`DataError` naming the file, row and column.
    """
    notes: list[str] = []
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"cannot read a CSV table ({exc})", source=path) from exc
    if table.empty:
        raise DataError("has no rows", source=path)
    unknown = [c for c in table.columns if c not in (*HOST_COLUMNS, "patient_id")]
    if unknown:
        raise DataError(
            f"unknown column(s) {unknown} (allowed: {['patient_id', *HOST_COLUMNS]})",
            source=path,
            field=unknown[0],
        )
    rows = np.arange(n) % len(table)
    if len(table) < n:
        notes.append(f"{path}: {len(table)} rows for {n} patients; rows are reused in order")
    rng = np.random.default_rng(seed)
    out = pd.DataFrame(index=range(n))
    for factor, levels in HOST_LEVELS.items():
        if factor in table:
            values = table[factor].to_numpy()[rows]
            for i, v in enumerate(values):
                if v not in levels:
                    raise DataError(
                        f"row {rows[i] + 1}: {v!r} is not a level of {factor} "
                        f"(allowed: {list(levels)})",
                        source=path,
                        field=factor,
                    )
            out[factor] = values
        else:
            dist = getattr(env, factor)
            p = np.array([dist.get(level, 0.0) for level in levels])
            out[factor] = np.asarray(levels, dtype=object)[
                rng.choice(len(levels), size=n, p=p / p.sum())
            ]
            notes.append(f"{path}: no {factor} column; drawn from the env's distribution")
    out["diet"] = table["diet"].to_numpy()[rows] if "diet" in table else "unknown"
    if "b12_intake_ug_per_day" in table:
        try:
            intake = table["b12_intake_ug_per_day"].astype(float).to_numpy()[rows]
        except ValueError as exc:
            raise DataError(
                "must be numbers (µg/day)", source=path, field="b12_intake_ug_per_day"
            ) from exc
        if not np.isfinite(intake).all() or (intake < 0).any():
            raise DataError(
                "must be finite numbers >= 0 (µg/day)", source=path, field="b12_intake_ug_per_day"
            )
        out["b12_intake_ug_per_day"] = intake
    else:
        s = np.log(env.diet_between_gsd)
        out["b12_intake_ug_per_day"] = env.diet_b12_ug_per_day * np.exp(s * rng.standard_normal(n))
        notes.append(f"{path}: no b12_intake_ug_per_day column; drawn from the env's diet")
    return out, notes


def assemble(
    compositions: list[pd.DataFrame], sources: list[str], host: pd.DataFrame
) -> CohortTables:
    """Stack composition blocks and attach host rows in order."""
    comp = pd.concat([c for c in compositions], axis=0)
    if len(comp) != len(host):
        raise ConfigError(f"{len(comp)} compositions but {len(host)} host rows", field="cohort")
    source = pd.Series(
        np.concatenate([[s] * len(c) for c, s in zip(compositions, sources, strict=True)]),
        index=comp.index,
        name="source",
    )
    host = host.copy()
    host.index = comp.index
    return CohortTables(comp.astype(np.float64), host, source)


__all__ = [
    "HOST_COLUMNS",
    "CohortTables",
    "assemble",
    "hmp_training_table",
    "host_from_network",
    "host_from_table",
    "real_compositions",
    "synthetic_compositions",
]
