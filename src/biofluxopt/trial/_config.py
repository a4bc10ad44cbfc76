"""The trial's configuration: one TOML file, one table per stage, every key checked up front.

A config is read, merged over the preset it names (``quick`` by default) and checked before
any work: an unknown table or key, or an impossible value, is a
:class:`~biofluxopt._util.ConfigError` naming the file and the key
(``trial.toml: arms.control_ug_per_day: must be a real number in [0, 100000]; got -1``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from importlib import resources
from numbers import Integral, Real
from pathlib import Path
from typing import ClassVar

from biofluxopt._util import ConfigError, Interval, Options, check_params, read_toml
from biofluxopt.knowledge import load_parameters
from biofluxopt.marl import (
    B12EnvConfig,
    BaselineConfig,
    PPOConfig,
    baseline_config_from_dict,
    config_from_kwargs,
    ppo_config_from_dict,
)
from biofluxopt.sim import taxon_ids

from ._tune import TuneConfig, tune_config_from_dict

#: Shipped presets (``src/biofluxopt/trial/data/<name>.toml``).
PRESETS = ("quick", "full")

#: Arms a trial can run, in report order. ``control`` is standard supplementation;
#: ``biofluxopt`` = control + the learned policy.
ARMS = (
    "no_intervention",
    "control",
    "biofluxopt",
    "constant",
    "oracle",
    "split_dosing",
    "probiotic",
    "high_dose",
)

#: Default candidates of the model-uncertainty ensemble: the parameters the microbial effect
#: hangs on (colonic absorption of microbial B12, small-intestinal bacterial capture,
#: microbial uptake, the community's resilience and the fitness costs of the activities the
#: agents scale) plus the host's own absorption, whose ranges the literature leaves wide.
DEFAULT_UNCERTAIN_PARAMETERS = (
    "colonic_absorption_fraction",
    "si_bacterial_load",
    "microbial_uptake_half_saturation_ug",
    "community_resilience_per_day",
    "dmb_attachment_cost_per_day",
    "uptake_cost_per_day",
    "passive_absorption_fraction",
    "if_capacity_ug_per_meal",
)


def _checked(cls, data: dict, *, source, table: str):
    """``cls`` from a mapping: unknown keys and bad values name ``table.key``."""
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            raise ConfigError(
                f"unknown option (allowed: {names})", source=source, field=f"{table}.{key}"
            )
    try:
        return dataclasses.replace(cls(), **data).check()
    except ConfigError as exc:
        name = exc.field.split(".")[-1] if exc.field else ""
        raise ConfigError(exc.detail, source=source, field=f"{table}.{name}") from exc
    except TypeError as exc:
        raise ConfigError(str(exc), source=source, field=table) from exc


@dataclass(frozen=True)
class CohortConfig:
    """The virtual cohort (``[cohort]``).

    n_real : int in [0, 10_000], default=48
        Real HMP1 stool compositions from the held-out side of the subject split (never
        trained on). Capped at the number the split holds (a note says so).
    n_synthetic : int in [0, 100_000], default=48
        Novel compositions from the GAN trained on the training side (the seed used 100).
    n_validation : int in [2, 100_000], default=32
        Further GAN compositions on which ``tune`` scores the weights — never trial
        patients, so choosing w1, w2 does not peek at the trial.
    gan_iterations : int in [1, 100_000], default=400
        GAN generator updates (``synth.train_model``).
    host_factors : {"bn", "table"}, default="bn"
        ``"bn"``: host factors and habitual diet drawn from the Bayesian network learned
        from a simulated cross-sectional cohort; ``"table"``: read from ``host_table``.
    host_table : str, default=""
        CSV with one row per patient and columns among ``intrinsic_factor``,
        ``gastric_release``, ``fut2``, ``tcn2_776``, ``mthfr_677``, ``diet`` and
        ``b12_intake_ug_per_day`` (rows are reused in order if the cohort is larger).
    bn_people : int in [50, 100_000], default=300
        People in the simulated cohort the network is learned from.
    bn_days : int in [1, 3650], default=365
    """

    n_real: int = 48
    n_synthetic: int = 48
    n_validation: int = 32
    gan_iterations: int = 400
    host_factors: str = "bn"
    host_table: str = ""
    bn_people: int = 300
    bn_days: int = 365

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "n_real": [Interval(Integral, 0, 10_000)],
        "n_synthetic": [Interval(Integral, 0, 100_000)],
        "n_validation": [Interval(Integral, 2, 100_000)],
        "gan_iterations": [Interval(Integral, 1, 100_000)],
        "host_factors": [Options("bn", "table")],
        "bn_people": [Interval(Integral, 50, 100_000)],
        "bn_days": [Interval(Integral, 1, 3650)],
    }

    def check(self) -> CohortConfig:
        check_params(self)
        if not isinstance(self.host_table, str):
            raise ConfigError("must be a file path string", field="cohort.host_table")
        if self.n_real + self.n_synthetic < 2:
            raise ConfigError(
                "the cohort needs at least 2 patients (n_real + n_synthetic)",
                field="cohort.n_synthetic",
            )
        if self.host_factors == "table" and not self.host_table:
            raise ConfigError(
                'host_factors = "table" needs host_table (a CSV path)', field="cohort.host_table"
            )
        return self


@dataclass(frozen=True)
class ArmsConfig:
    """The arms (``[arms]``); all run on the same patients with the same noise.

    arms : list of str, default=all of ``ARMS``
        Which arms to run; ``no_intervention``, ``control`` and ``biofluxopt`` always run.
    control_ug_per_day : float in [0, 100000], default=6.0
        Standard supplementation: a once-daily oral dose with breakfast. 6 µg is the B12 of
        a typical once-daily multivitamin (100 % of the former US Daily Value, 21 CFR
        101.9(c)(8)(iv) before the 2016 rule; today's DV is 2.4 µg) [U: a label convention,
        not a trial dose].
    high_dose_ug_per_day : float in [0, 100000], default=1000.0
        The high-dose arm (oral 1000 µg/day, e.g. Kuzminski et al. 1998 Blood 92:1191).
    probiotic_taxon : str, default="propionibacterium"
    probiotic_cfu_per_day : float in [0, 1e14], default=5e10
        Daily probiotic on top of the control supplement (Bouglé et al. 1999 dose).
    oracle_patients : int in [1, 100_000], default=16
        Patients (the cohort's first) the per-patient oracle is run for: it costs about
        three episodes per gradient step, so it is scored on a subset; ``oracle_fraction``
        compares the policy, no action and the oracle on this subset.
    """

    arms: tuple[str, ...] = ARMS
    control_ug_per_day: float = 6.0
    high_dose_ug_per_day: float = 1000.0
    probiotic_taxon: str = "propionibacterium"
    probiotic_cfu_per_day: float = 5e10
    oracle_patients: int = 16

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "control_ug_per_day": [Interval(Real, 0, 100_000)],
        "high_dose_ug_per_day": [Interval(Real, 0, 100_000)],
        "probiotic_cfu_per_day": [Interval(Real, 0, 1e14)],
        "oracle_patients": [Interval(Integral, 1, 100_000)],
    }

    def check(self) -> ArmsConfig:
        check_params(self)
        arms = self.arms
        if isinstance(arms, str) or not all(isinstance(a, str) for a in arms):
            raise ConfigError(f"must be a list of arm names; got {arms!r}", field="arms.arms")
        unknown = [a for a in arms if a not in ARMS]
        if unknown:
            raise ConfigError(
                f"unknown arm(s) {unknown} (allowed: {list(ARMS)})", field="arms.arms"
            )
        # always the three the headline needs, in report order
        chosen = {"no_intervention", "control", "biofluxopt", *arms}
        object.__setattr__(self, "arms", tuple(a for a in ARMS if a in chosen))
        if self.probiotic_taxon not in taxon_ids():
            raise ConfigError(
                f"unknown taxon {self.probiotic_taxon!r} (allowed: {list(taxon_ids())})",
                field="arms.probiotic_taxon",
            )
        return self


@dataclass(frozen=True)
class UncertaintyConfig:
    """Model uncertainty (``[uncertainty]``).

    n_draws : int in [0, 10_000], default=8
        Parameter sets drawn (Latin hypercube) from the plausible ranges of ``parameters``
        (log-uniform where the range is positive, else uniform); the control and BioFluxOpt
        arms are rerun for each. 0 disables the ensemble.
    parameters : list of str, default=DEFAULT_UNCERTAIN_PARAMETERS
        Knowledge-base parameter ids. The most influential one (largest |Spearman ρ| between
        its drawn value and the headline effect) is then set to its low and high end.
    patients : int in [2, 100_000], default=32
        Patients (the cohort's first) each ensemble member is run on.
    """

    n_draws: int = 8
    parameters: tuple[str, ...] = DEFAULT_UNCERTAIN_PARAMETERS
    patients: int = 32

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "n_draws": [Interval(Integral, 0, 10_000)],
        "patients": [Interval(Integral, 2, 100_000)],
    }

    def check(self) -> UncertaintyConfig:
        check_params(self)
        params = self.parameters
        if isinstance(params, str) or not all(isinstance(p, str) for p in params):
            raise ConfigError(
                f"must be a list of parameter ids; got {params!r}", field="uncertainty.parameters"
            )
        table = {p.id: p for p in load_parameters()}
        for pid in params:
            if pid not in table:
                raise ConfigError(
                    f"unknown kinetic parameter {pid!r}", field="uncertainty.parameters"
                )
            if table[pid].high <= table[pid].low:
                raise ConfigError(
                    f"{pid} is fixed in the knowledge base (no range to draw from)",
                    field="uncertainty.parameters",
                )
        object.__setattr__(self, "parameters", tuple(params))
        if self.n_draws and not params:
            raise ConfigError("n_draws > 0 needs parameters", field="uncertainty.parameters")
        return self


@dataclass(frozen=True)
class StatisticsConfig:
    """Statistics (``[statistics]``).

    n_boot : int in [100, 1_000_000], default=2000
        Paired bootstrap resamples of the patients for the percentile CIs.
    low_baseline_pmol_l : float ≥ 0, default=221.0
        "Low baseline status" subgroup: baseline serum B12 below this (221 pmol/L = 300 pg/mL,
        the usual upper bound of the "borderline" band; Carmel 2008 Blood 112:2214).
    """

    n_boot: int = 2000
    low_baseline_pmol_l: float = 221.0

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "n_boot": [Interval(Integral, 100, 1_000_000)],
        "low_baseline_pmol_l": [Interval(Real, 0, None)],
    }

    def check(self) -> StatisticsConfig:
        check_params(self)
        return self


@dataclass(frozen=True)
class HyperScoreConfig:
    """HyperScore parameters (``[hyperscore]``): ``100 × [1 + σ(β ln V + γ)^κ]``.

    beta : float, default=5.0; gamma : float, default=−ln 2; kappa : float > 0, default=2.2
        The seed gives κ = 2.2 in its worked example; β and γ are not given there (the
        defaults are those of the formula's template), so they are exposed (docs/trial.md).
    """

    beta: float = 5.0
    gamma: float = -math.log(2.0)
    kappa: float = 2.2

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "beta": [Interval(Real, -1e6, 1e6)],
        "gamma": [Interval(Real, -1e6, 1e6)],
        "kappa": [Interval(Real, 0, 1e6, closed="right")],
    }

    def check(self) -> HyperScoreConfig:
        check_params(self)
        return self


@dataclass(frozen=True)
class TrialConfig:
    """A checked trial configuration (one table per stage).

    Attributes
    ----------
    env : B12EnvConfig
        The environment every stage shares: episode length, decision step, diet, adherence,
        noise, reward limits (``w1``, ``w2`` and the supplement are set by the stages).
    ppo : PPOConfig
        Training of the policy in each tuning trial.
    baselines : BaselineConfig
        Budgets of the best-constant search and of the oracle.
    tune : TuneConfig
    cohort, arms, uncertainty, statistics, hyperscore :
        See their classes.
    preset : str
        The preset the file was merged over.
    source : str
        Where the config came from.
    """

    env: B12EnvConfig
    ppo: PPOConfig
    baselines: BaselineConfig
    tune: TuneConfig
    cohort: CohortConfig
    arms: ArmsConfig
    uncertainty: UncertaintyConfig
    statistics: StatisticsConfig
    hyperscore: HyperScoreConfig
    preset: str = "quick"
    source: str = ""

    def section(self, name: str) -> dict:
        """One table as plain JSON-ready data (what a stage's cache key is made of)."""
        value = getattr(self, name)
        return json.loads(json.dumps(dataclasses.asdict(value), sort_keys=True, default=str))

    def to_dict(self) -> dict:
        return {name: self.section(name) for name in TABLES} | {"preset": self.preset}


TABLES = (
    "env",
    "ppo",
    "baselines",
    "tune",
    "cohort",
    "arms",
    "uncertainty",
    "statistics",
    "hyperscore",
)


def preset_path(name: str) -> Path:
    """Path of a shipped preset (``"quick"`` or ``"full"``)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r} (allowed: {list(PRESETS)})", field="--preset")
    return Path(str(resources.files("biofluxopt.trial") / "data" / f"{name}.toml"))


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "env":
            out[key] = _merge(out[key], value)
        elif isinstance(value, dict) and key == "env" and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def load_trial_config(path: str | Path | None = None, *, preset: str = "quick") -> TrialConfig:
    """Read and check a trial configuration: ``path`` merged over ``preset``.

    Parameters
    ----------
    path : str or Path, optional
        A TOML file with any of the tables of :data:`TABLES` (each key optional); None: the
        preset alone.
    preset : {"quick", "full"}, default="quick"

    Raises
    ------
    ConfigError
        Unreadable or invalid TOML, an unknown table or key, an impossible value; the message
        names the file and ``table.key``.
    """
    base = read_toml(preset_path(preset))
    data = base
    source = str(preset_path(preset))
    if path is not None:
        user = read_toml(path)
        source = str(path)
        for key, value in user.items():
            if key not in TABLES:
                raise ConfigError(
                    f"unknown table (allowed: {list(TABLES)})", source=source, field=key
                )
            if not isinstance(value, dict):
                raise ConfigError("must be a table ([name])", source=source, field=key)
        data = _merge(base, user)
    try:
        env = config_from_kwargs(None, **data.get("env", {}))
    except ConfigError as exc:
        raise ConfigError(exc.detail, source=source, field=f"env.{_leaf(exc.field)}") from exc
    except TypeError as exc:
        raise ConfigError(str(exc), source=source, field="env") from exc
    try:
        ppo = ppo_config_from_dict(data.get("ppo", {}))
    except ConfigError as exc:
        raise ConfigError(exc.detail, source=source, field=f"ppo.{_leaf(exc.field)}") from exc
    try:
        baselines = baseline_config_from_dict(data.get("baselines", {}))
    except ConfigError as exc:
        raise ConfigError(exc.detail, source=source, field=f"baselines.{_leaf(exc.field)}") from exc
    try:
        tune = tune_config_from_dict(data.get("tune", {}))
    except ConfigError as exc:
        raise ConfigError(exc.detail, source=source, field=f"tune.{_leaf(exc.field)}") from exc
    sections = {
        "cohort": CohortConfig,
        "arms": ArmsConfig,
        "uncertainty": UncertaintyConfig,
        "statistics": StatisticsConfig,
        "hyperscore": HyperScoreConfig,
    }
    built = {}
    for name, cls in sections.items():
        values = dict(data.get(name, {}))
        for key in ("arms", "parameters"):
            if isinstance(values.get(key), list):
                values[key] = tuple(values[key])
        built[name] = _checked(cls, values, source=source, table=name)
    return TrialConfig(env, ppo, baselines, tune, preset=preset, source=source, **built)


def _leaf(field_name: str | None) -> str:
    return (field_name or "").split(".")[-1]


__all__ = [
    "ARMS",
    "DEFAULT_UNCERTAIN_PARAMETERS",
    "PRESETS",
    "TABLES",
    "ArmsConfig",
    "CohortConfig",
    "HyperScoreConfig",
    "StatisticsConfig",
    "TrialConfig",
    "UncertaintyConfig",
    "load_trial_config",
    "preset_path",
]
