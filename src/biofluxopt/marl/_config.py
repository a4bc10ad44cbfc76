"""The environment's configuration: one dataclass, every field with its unit and range.

Constraints are declared once, as data (``B12EnvConfig._parameter_constraints``), and checked
by :meth:`B12EnvConfig.check`; a refusal is a :class:`~biofluxopt._util.ConfigError` naming the
field (``B12EnvConfig.step_days: must be an integer in [1, 3650]; got 0``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import ClassVar

from biofluxopt._util import ConfigError, Interval, Options, check_params
from biofluxopt.knowledge import load_host_factors, load_parameters
from biofluxopt.sim import POPULATION_SPREAD, taxon_ids

#: Levels of each host factor, in the simulator's coding order (``sim.host_factors``).
HOST_LEVELS = {
    "intrinsic_factor": ("normal", "reduced", "absent"),
    "gastric_release": ("normal", "impaired"),
    "fut2": ("secretor", "nonsecretor"),
    "tcn2_776": ("CC", "CG", "GG"),
    "mthfr_677": ("CC", "CT", "TT"),
}


def _kb_frequencies(factor: str) -> dict[str, float]:
    """Genotype frequencies recorded in the knowledge base (``host_factors.toml``)."""
    row = next(h for h in load_host_factors() if h.id == factor)
    return dict(row.frequencies)


@dataclass
class B12EnvConfig:
    """Configuration of :class:`~biofluxopt.marl.B12Env` (and of ``make_parallel_env``).

    Patients
    --------
    n_patients : int, default=64
        Virtual patients stepped together (the leading tensor axis). 1–1,000,000.
    split : {"train", "test", "all"}, default="train"
        Which HMP1 subjects patients are drawn from. The split is by *subject* (repeated
        visits of one person stay on one side, ``biofluxopt.data.train_test_split_by_subject``),
        so an env with ``split="test"`` only ever shows people a ``split="train"`` env never
        saw. ``"all"`` ignores the split.
    test_fraction : float in (0, 1), default=0.2
        Share of subjects held out.
    split_seed : int, default=0
        Seed of the subject split (keep it fixed between training and evaluation).
    hmp_region : {"v35", "v13"}, default="v35"
        16S region of the HMP1 table the compositions come from.
    spread : float in [0, 3], default=sim.POPULATION_SPREAD (0.67)
        Inter-individual spread of the kinetic parameters (``sim.sample_params``; 0: every
        patient has the calibrated defaults). Parameters are hidden from the agents.
    diet_b12_ug_per_day : float in [0, 1000], default=4.5
        Median habitual food B12 (µg/day); 4.5 is the omnivore median (IOM 1998, EFSA 2015).
    diet_between_gsd : float in [1, 10], default=1.6
        Geometric SD of habitual intake between patients (log-normal; 1 = everyone the same).
    diet_day_gsd : float in [1, 10], default=2.0
        Geometric SD of one day's intake around the patient's habitual intake (log-normal
        with mean 1, so the habitual intake is the long-run mean; 1 = no day-to-day noise).
        Single-day B12 intakes vary by a factor of ~2 around the usual intake [U].
    supplement_ug_per_day : float in [0, 100000], default=0.0
        Oral crystalline B12 prescribed each day (µg, taken with the first meal, or split
        over the meals, see ``supplement_meals``).
    supplement_meals : {"first", "split"}, default="first"
        ``"first"``: the daily dose with the first of the 3 meals; ``"split"``: a third with
        each meal. Intrinsic factor saturates per meal (~1.5 µg), so splitting a small dose
        raises what is absorbed (docs/sim.md).
    probiotic_cfu_per_day : dict of str to float, default={}
        Probiotic taken with the first meal of every day of the episode: model taxon
        (``sim.taxon_ids()``) → colony-forming units per day (e.g.
        ``{"propionibacterium": 5e10}``, Bouglé et al. 1999). Transient: it does not
        colonise (docs/sim.md, "Probiotics"). Taken every day (no adherence noise).
    parameter_values : dict of str to float, default={}
        Population values of kinetic parameters (``knowledge`` parameter ids) replacing the
        calibrated ones: each patient's sampled value is scaled by ``value / calibrated``
        (shifted by ``value − calibrated`` for parameters whose range reaches 0 or below), so
        the inter-individual spread is kept, then clipped to the parameter's plausible
        range. Used by the trial's model-uncertainty ensemble.
    adherence : float in [0, 1], default=0.8
        Probability that the prescribed supplement is taken on a given day (independent days).
    intrinsic_factor, gastric_release, fut2, tcn2_776, mthfr_677 : dict of str to float
        Distribution of each host factor over its levels (probabilities, normalised). Defaults:
        intrinsic factor 97 % normal, 2 % reduced [U], 1 % absent (pernicious anaemia, > 2 % of
        people over 60, IOM 1998); gastric release 90 % normal, 10 % impaired (10–30 % of
        people over 50 malabsorb food B12, IOM 1998); FUT2, TCN2 776 and MTHFR 677 from the
        genotype frequencies of the knowledge base (Hazra 2008; Oussalah 2017; Casas 2005).

    Time
    ----
    step_days : int in [1, 3650], default=7
        Days per decision step (an action is held over the step). Serum B12 answers a change
        of microbial activity over weeks to months, so a daily step mostly adds noise.
    episode_days : int in [1, 36500], default=364
        Episode length (days); a multiple of ``step_days``. Episodes end by truncation.
    substeps_per_day : int in [4, 288] or None, default=None
        RK4 sub-steps per day; None: ``sim.default_substeps`` (24, or 96 when the supplement
        dose can saturate transcobalamin).

    Observation
    -----------
    observe : {"global", "clinical", "markov_blanket"}, default="global"
        ``"global"``: pools, biomarkers, log abundances, diet and day (the global state) plus
        the agent's one-hot id. ``"clinical"``: serum B12, holoTC, MMA, Hcy, and the stool
        composition sampled every ``stool_every_days`` (held in between). ``"markov_blanket"``:
        the variables of the agent's Markov blanket in a BN given to the env (``network=``).
    stool_every_days : int in [1, 3650], default=28
        Days between stool samples for ``observe="clinical"``.

    Reward
    ------
    w1 : float ≥ 0, default=1.0
        Weight of ``B12_Gain`` (dimensionless: serum change / baseline serum).
    w2 : float ≥ 0, default=1.0
        Weight of ``MicroDiversity_Loss`` (Bray–Curtis of the composition to baseline, 0–1).
    b12_gain : {"step_change", "above_baseline"}, default="step_change"
        ``"step_change"``: (serum at the end of the step − serum at its start) / baseline
        serum, the seed's definition (its undiscounted sum telescopes to the final relative
        gain). ``"above_baseline"``: (serum at the end of the step − baseline) / baseline,
        which rewards every step spent above baseline (area under the curve).
    min_serum_b12_pmol_l : float ≥ 0, default=148.0
        Serum B12 limit (pmol/L; 148 = lower reference limit, Kuzminski 1998).
    min_serum_fraction : float in [0, 1], default=0.9
        A step is penalised when serum B12 ends below
        ``min(min_serum_b12_pmol_l, min_serum_fraction · baseline serum)``: below the limit,
        or, for a patient who starts below it, more than 10 % below their own baseline (so
        that day-to-day dietary noise around a low baseline is not penalised every week).
    min_shannon_fraction : float in [0, 1], default=0.8
        Shannon-diversity limit as a fraction of the patient's baseline Shannon (natural log,
        over the model's taxa).
    serum_penalty, shannon_penalty : float ≥ 0, default=1.0
        Subtracted from the reward for each step ending past the respective limit.
    reward : {"team", "difference"}, default="team"
        ``"team"``: every agent gets the team reward. ``"difference"``: agent ``i`` gets the
        team reward minus the team reward of the same step with its own action at the
        default (identity multipliers), everything else (state, noise, others' actions)
        equal. Costs one extra simulation of the step per agent (11× the team-reward step).

    Numerics and seeding
    --------------------
    seed : int ≥ 0, default=0
        Seed of the first ``reset()`` without a seed. Same seed → the same patients, noise,
        observations and rewards, bitwise (on the same device and thread count).
    device : str, default="cpu"
        Torch device of every tensor ("cpu", "cuda", "cuda:1", ...).
    dtype : {"float64", "float32"}, default="float64"
        Precision of the simulation (observations are always float32).
    cpu_threads : int ≥ 1, None or "auto", default="auto"
        Intra-op CPU threads while stepping (``sim.auto_threads``: 1 below 1,024 patients).
        Bitwise reproducibility holds for the same thread count.
    compile_simulator : bool, default=False
        Step the simulator with its compiled RK4 sub-step (``sim.simulate``'s ``compile``):
        ~2× faster rollouts after a one-off ~10 s compilation per batch shape; needs a C++
        compiler. Results equal the traced sub-step's to ~1e-15, not bit for bit.
    """

    n_patients: int = 64
    split: str = "train"
    test_fraction: float = 0.2
    split_seed: int = 0
    hmp_region: str = "v35"
    spread: float = POPULATION_SPREAD
    diet_b12_ug_per_day: float = 4.5
    diet_between_gsd: float = 1.6
    diet_day_gsd: float = 2.0
    supplement_ug_per_day: float = 0.0
    supplement_meals: str = "first"
    probiotic_cfu_per_day: dict[str, float] = field(default_factory=dict)
    parameter_values: dict[str, float] = field(default_factory=dict)
    adherence: float = 0.8
    intrinsic_factor: dict[str, float] = field(
        default_factory=lambda: {"normal": 0.97, "reduced": 0.02, "absent": 0.01}
    )
    gastric_release: dict[str, float] = field(
        default_factory=lambda: {"normal": 0.9, "impaired": 0.1}
    )
    fut2: dict[str, float] = field(default_factory=lambda: _kb_frequencies("fut2"))
    tcn2_776: dict[str, float] = field(default_factory=lambda: _kb_frequencies("tcn2_776"))
    mthfr_677: dict[str, float] = field(default_factory=lambda: _kb_frequencies("mthfr_677"))
    step_days: int = 7
    episode_days: int = 364
    substeps_per_day: int | None = None
    observe: str = "global"
    stool_every_days: int = 28
    w1: float = 1.0
    w2: float = 1.0
    b12_gain: str = "step_change"
    min_serum_b12_pmol_l: float = 148.0
    min_serum_fraction: float = 0.9
    min_shannon_fraction: float = 0.8
    serum_penalty: float = 1.0
    shannon_penalty: float = 1.0
    reward: str = "team"
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float64"
    cpu_threads: int | str | None = "auto"
    compile_simulator: bool = False

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "n_patients": [Interval(Integral, 1, 1_000_000)],
        "split": [Options("train", "test", "all")],
        "test_fraction": [Interval(Real, 0, 1, closed="neither")],
        "split_seed": [Interval(Integral, 0, None)],
        "hmp_region": [Options("v35", "v13")],
        "spread": [Interval(Real, 0, 3)],
        "diet_b12_ug_per_day": [Interval(Real, 0, 1000)],
        "diet_between_gsd": [Interval(Real, 1, 10)],
        "diet_day_gsd": [Interval(Real, 1, 10)],
        "supplement_ug_per_day": [Interval(Real, 0, 100_000)],
        "supplement_meals": [Options("first", "split")],
        "adherence": [Interval(Real, 0, 1)],
        "step_days": [Interval(Integral, 1, 3650)],
        "episode_days": [Interval(Integral, 1, 36500)],
        "substeps_per_day": [Interval(Integral, 4, 288), None],
        "observe": [Options("global", "clinical", "markov_blanket")],
        "stool_every_days": [Interval(Integral, 1, 3650)],
        "w1": [Interval(Real, 0, None)],
        "w2": [Interval(Real, 0, None)],
        "b12_gain": [Options("step_change", "above_baseline")],
        "min_serum_b12_pmol_l": [Interval(Real, 0, None)],
        "min_serum_fraction": [Interval(Real, 0, 1)],
        "min_shannon_fraction": [Interval(Real, 0, 1)],
        "serum_penalty": [Interval(Real, 0, None)],
        "shannon_penalty": [Interval(Real, 0, None)],
        "reward": [Options("team", "difference")],
        "seed": [Interval(Integral, 0, 2**63 - 1)],
        "dtype": [Options("float64", "float32")],
        "cpu_threads": [Interval(Integral, 1, 1024), Options("auto"), None],
        "compile_simulator": [Options(True, False)],
    }

    def check(self) -> B12EnvConfig:
        """Validate every field; returns ``self``.

        Raises
        ------
        ConfigError
            The first invalid field, named ``B12EnvConfig.<field>``, with what is allowed and
            what was received.
        """
        check_params(self)
        if not isinstance(self.device, str) or not self.device:
            raise ConfigError(
                f"must be a torch device string ('cpu', 'cuda', ...); got {self.device!r}",
                field="B12EnvConfig.device",
            )
        for name, levels in HOST_LEVELS.items():
            _check_distribution(name, getattr(self, name), levels)
        _check_probiotic(self.probiotic_cfu_per_day)
        _check_parameter_values(self.parameter_values)
        if self.episode_days % self.step_days:
            raise ConfigError(
                f"must be a multiple of step_days ({self.step_days}); got {self.episode_days}",
                field="B12EnvConfig.episode_days",
            )
        return self

    def replace(self, **changes) -> B12EnvConfig:
        """A checked copy with some fields changed (unknown names are a ConfigError)."""
        return config_from_kwargs(self, **changes)


def _check_distribution(name: str, dist: object, levels: tuple[str, ...]) -> None:
    where = f"B12EnvConfig.{name}"
    if not isinstance(dist, dict) or not dist:
        raise ConfigError(
            f"must be a dict of level -> probability over {list(levels)}; got {dist!r}",
            field=where,
        )
    for level, p in dist.items():
        if level not in levels:
            raise ConfigError(f"unknown level {level!r} (allowed: {list(levels)})", field=where)
        if isinstance(p, bool) or not isinstance(p, Real) or not 0 <= p <= 1:
            raise ConfigError(
                f"probability of {level!r} must be a real number in [0, 1]; got {p!r}",
                field=where,
            )
    if sum(dist.values()) <= 0:
        raise ConfigError("probabilities sum to 0", field=where)


def _check_probiotic(doses: object) -> None:
    where = "B12EnvConfig.probiotic_cfu_per_day"
    if not isinstance(doses, dict):
        raise ConfigError(f"must be a dict of taxon -> cfu/day; got {doses!r}", field=where)
    taxa = taxon_ids()
    for taxon, cfu in doses.items():
        if taxon not in taxa:
            raise ConfigError(f"unknown taxon {taxon!r} (allowed: {list(taxa)})", field=where)
        if isinstance(cfu, bool) or not isinstance(cfu, Real) or not 0 <= cfu <= 1e14:
            raise ConfigError(
                f"cfu/day of {taxon!r} must be a number in [0, 1e14]; got {cfu!r}", field=where
            )


def _check_parameter_values(values: object) -> None:
    where = "B12EnvConfig.parameter_values"
    if not isinstance(values, dict):
        raise ConfigError(f"must be a dict of parameter id -> value; got {values!r}", field=where)
    known = {p.id: p for p in load_parameters()}
    for pid, value in values.items():
        if pid not in known:
            raise ConfigError(f"unknown kinetic parameter {pid!r}", field=where)
        p = known[pid]
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
            raise ConfigError(f"{pid} must be a finite number; got {value!r}", field=where)
        if not p.low <= value <= p.high:
            raise ConfigError(
                f"{pid} = {value!r} is outside its plausible range [{p.low}, {p.high}] {p.unit}",
                field=where,
            )


def config_from_kwargs(base: B12EnvConfig | None = None, **kwargs) -> B12EnvConfig:
    """A checked :class:`B12EnvConfig` from keyword arguments (on top of ``base``).

    Raises
    ------
    ConfigError
        An unknown keyword (named, with the allowed ones) or an invalid value.
    """
    return checked_config(B12EnvConfig, kwargs, base=base)


def checked_config(cls, data: dict, *, base=None, source=None):
    """A checked config dataclass ``cls`` (with a ``check()`` method) from a mapping, on top of
    ``base`` (default: ``cls()``).

    Raises
    ------
    ConfigError
        An unknown key (named ``Class.key``, with the allowed ones) or an invalid value;
        ``source`` (a file) prefixes the message.
    """
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            raise ConfigError(
                f"unknown option (allowed: {names})", source=source, field=f"{cls.__name__}.{key}"
            )
    try:
        return dataclasses.replace(base or cls(), **data).check()
    except ConfigError as exc:
        if source is None:
            raise
        raise ConfigError(exc.detail, source=source, field=exc.field) from exc


__all__ = ["HOST_LEVELS", "B12EnvConfig", "checked_config", "config_from_kwargs"]
