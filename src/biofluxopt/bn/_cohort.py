"""Simulated cohorts: host factors from documented distributions, real HMP compositions,
the simulator's steady state; and their BN-ready discrete form.

Host-factor distributions (rows of the B12 reference table; [V] verified,
[S] secondary, [U] unverified/assumed):

=====================  =====================================================================
factor                 distribution
=====================  =====================================================================
age_years              uniform 20–80 y (adult cohort; assumption)
diet                   EPIC-Oxford baseline: 67 % meat/fish eaters, 29 % vegetarian, 4 % vegan
                       ([V] Davey 2003 PHN 6:259, n = 65,429)
b12_intake_ug_per_day  log-normal, geometric SD 1.6; median 4.5 omnivore ([V] US median
                       3.5–5, EU means 4.2–8.6, IOM 1998 / EFSA 2015), 1.5 vegetarian and
                       0.45 vegan ([U] EPIC-Oxford ~1–2 and ~0.4–0.5)
supplement_ug_per_day  users: 50 % of vegans ([S] Sobiecki 2016), 30 % vegetarians, 20 %
                       omnivores ([U]); dose 10, 25, 250 or 1000 µg/d with equal chance
intrinsic_factor       absent 0.5 % < 60 y, 2 % ≥ 60 y ([S] PA > 2 % of people > 60);
                       reduced 2 % ([U])
gastric_release        impaired 5 % < 50 y, 15 % 50–64 y, 20 % ≥ 65 y ([V] 10–30 % of > 50 y
                       malabsorb food B12, IOM 1998)
fut2, tcn2_776,        the literature priors of :data:`LITERATURE_PRIORS` (20 % nonsecretor;
mthfr_677              TCN2 776G frequency 0.40 in Hardy–Weinberg; MTHFR TT 15 %, CT 52.5 %)
=====================  =====================================================================

Compositions are rows of the shipped HMP1 stool table (``biofluxopt.data.load_hmp()``),
aggregated to model taxa, drawn with replacement.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
import pandas as pd

from biofluxopt._util import ConfigError, DataError

from ._discretise import Discretiser, cohort_to_nodes
from ._parameters import LITERATURE_PRIORS

DIET_SHARES = {"omnivore": 0.67, "vegetarian": 0.29, "vegan": 0.04}
INTAKE_MEDIAN_UG = {"omnivore": 4.5, "vegetarian": 1.5, "vegan": 0.45}
INTAKE_GSD = 1.6
SUPPLEMENT_USE = {"omnivore": 0.20, "vegetarian": 0.30, "vegan": 0.50}
SUPPLEMENT_DOSES_UG = (10.0, 25.0, 250.0, 1000.0)


def _prior_dist(node: str) -> dict[str, float]:
    return next(p for p in LITERATURE_PRIORS if p.node == node).table[()]


def sample_host_factors(n: int, *, seed: int = 0) -> pd.DataFrame:
    """Draw ``n`` adults' host factors (columns of the simulator's cohort contract).

    Parameters
    ----------
    n : int
        Number of people (≥ 1).
    seed : int, default=0
        Seed of the NumPy generator.

    Returns
    -------
    pandas.DataFrame
        Columns ``patient_id, age_years, diet, b12_intake_ug_per_day, supplement_ug_per_day,
        intrinsic_factor, gastric_release, fut2, tcn2_776, mthfr_677``; one row per person.
    """
    if isinstance(n, bool) or not isinstance(n, Integral) or n < 1:
        raise ConfigError(f"must be an integer >= 1; got {n!r}", field="n")
    rng = np.random.default_rng(seed)

    def choice(dist: dict[str, float], size: int) -> np.ndarray:
        states = list(dist)
        p = np.array([dist[s] for s in states])
        return np.array(states, dtype=object)[rng.choice(len(states), size=size, p=p / p.sum())]

    age = rng.uniform(20.0, 80.0, n)
    diet = choice(DIET_SHARES, n)
    median = np.array([INTAKE_MEDIAN_UG[d] for d in diet])
    intake = median * np.exp(rng.normal(0.0, np.log(INTAKE_GSD), n))
    uses = rng.random(n) < np.array([SUPPLEMENT_USE[d] for d in diet])
    dose = np.asarray(SUPPLEMENT_DOSES_UG)[rng.integers(0, len(SUPPLEMENT_DOSES_UG), n)]
    supplement = np.where(uses, dose, 0.0)
    p_absent = np.where(age >= 60, 0.02, 0.005)
    u = rng.random(n)
    intrinsic = np.where(u < p_absent, "absent", np.where(u < p_absent + 0.02, "reduced", "normal"))
    p_impaired = np.where(age >= 65, 0.20, np.where(age >= 50, 0.15, 0.05))
    gastric = np.where(rng.random(n) < p_impaired, "impaired", "normal")
    return pd.DataFrame(
        {
            "patient_id": [f"P{i:05d}" for i in range(n)],
            "age_years": age,
            "diet": diet,
            "b12_intake_ug_per_day": intake,
            "supplement_ug_per_day": supplement,
            "intrinsic_factor": intrinsic.astype(object),
            "gastric_release": gastric.astype(object),
            "fut2": choice(_prior_dist("fut2"), n),
            "tcn2_776": choice(_prior_dist("tcn2_776"), n),
            "mthfr_677": choice(_prior_dist("mthfr_677"), n),
        }
    )


def sample_compositions(n: int, *, seed: int = 0) -> pd.DataFrame:
    """``n`` real HMP1 stool compositions (model taxa, rows sum to 1), drawn with replacement."""
    from biofluxopt.data import aggregate_to_model_taxa, load_hmp

    real = aggregate_to_model_taxa(load_hmp())
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(real), size=n)
    return real.iloc[rows].reset_index(drop=True)


MAX_DAYS = 36500
"""Most days ``simulate_cohort_table`` simulates (100 years; the simulator's protocol bound)."""

BYTES_PER_PATIENT_DAY = 1024
"""Memory of one simulated patient-day (daily records, schedule; measured ≈ 930 bytes)."""

BYTES_PER_PERSON = 4096
"""Memory of one person's row through sampling, simulation and the output table."""

MAX_CHUNK = 8192
"""Most people simulated in one batch."""


def cohort_plan(n: int, days: int, *, limit_bytes: int | None = None) -> tuple[int, int]:
    """People per simulation batch, and the estimated peak memory (bytes) of a cohort.

    The batch is as large as :data:`MAX_CHUNK` allows within half the memory limit
    (:func:`biofluxopt._util.memory_limit_bytes`), so long simulations run in smaller batches
    instead of allocating ``n × days`` records at once.

    Raises
    ------
    DataError
        ``days`` outside 1 … :data:`MAX_DAYS`, ``n`` < 1.
    ConfigError
        The cohort table alone, or a batch of one person, exceeds the memory limit.
    """
    from biofluxopt._util import check_memory, memory_limit_bytes

    if not 1 <= days <= MAX_DAYS:
        raise DataError(f"must be 1 to {MAX_DAYS} (100 years); got {days}", field="--days")
    if n < 1:
        raise DataError(f"must be >= 1; got {n}", field="--n")
    limit = memory_limit_bytes() if limit_bytes is None else limit_bytes
    per_person_run = BYTES_PER_PATIENT_DAY * (days + 1)
    chunk = int(max(1, min(MAX_CHUNK, n, (limit // 2) // per_person_run)))
    need = chunk * per_person_run + n * BYTES_PER_PERSON
    check_memory(need, f"a cohort of {n} people × {days} days", limit_bytes=limit)
    return chunk, need


def simulate_cohort_table(
    n: int,
    *,
    days: int = 365,
    seed: int = 0,
    progress: bool = False,
    start: str = "regimen",
    chunk_size: int | None = None,
) -> pd.DataFrame:
    """Host factors + HMP compositions, simulated to day ``days`` by ``biofluxopt.sim``.

    ``start="regimen"`` (default): a cross-sectional cohort; everyone starts at the steady
    state of their diet plus supplement (long-term users) and stays there. ``start="diet"``:
    a trial; everyone starts at the steady state of the diet alone and takes the supplement
    for ``days`` days (stores are then far from their new balance: turnover ~0.1 %/d).

    ``chunk_size`` (people per simulation batch) defaults to :func:`cohort_plan`'s, which
    also refuses (before any work) a cohort whose estimated memory exceeds the limit.

    Returns the simulator's output table (inputs plus serum B12, holoTC, MMA, Hcy, stores and
    gut fluxes at the final day), one row per person.
    """
    from biofluxopt.sim import simulate_cohort

    planned, _ = cohort_plan(n, days)
    seeds = np.random.SeedSequence(seed).spawn(3)
    hosts = sample_host_factors(n, seed=int(seeds[0].generate_state(1)[0]))
    comps = sample_compositions(n, seed=int(seeds[1].generate_state(1)[0]))
    cohort = pd.concat([hosts, comps], axis=1)
    return simulate_cohort(
        cohort,
        days=days,
        seed=int(seeds[2].generate_state(1)[0]),
        progress=progress,
        start=start,
        chunk_size=planned if chunk_size is None else chunk_size,
    )


def discretise_cohort(cohort: pd.DataFrame, *, n_quantile_bins: int = 3):
    """BN-ready table from a cohort: unit-free node names, literature cut-offs, numeric
    columns cut into ≤ 4 states.

    Columns that end up with a single state (e.g. a taxon absent from every sample) are
    dropped: they carry no information for structure learning.

    Returns
    -------
    table : pandas.DataFrame
        Discrete states (str), one row per person.
    discretiser : Discretiser
        The fitted discretiser (for :meth:`Discretiser.interval`).
    """
    nodes = cohort_to_nodes(cohort)
    disc = Discretiser(n_quantile_bins=n_quantile_bins, source="cohort").fit(nodes)
    table = disc.transform(nodes)
    keep = [c for c in table.columns if table[c].nunique() > 1]
    return table[keep], disc
