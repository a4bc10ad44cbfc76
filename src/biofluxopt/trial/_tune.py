"""Bayesian optimisation of the two reward weights ``(w1, w2)`` of the MARL objective.

The caller supplies the objective (training and evaluating a policy for one weight pair);
this module owns the study: the Gaussian-process sampler (Optuna's ``GPSampler``), the
storage (an SQLite file by default, any SQLAlchemy URL such as PostgreSQL otherwise),
resuming an interrupted study without repeating finished trials, parallel worker processes,
and the summary (trials table, best trial, Pareto front, figure).

Objective
---------
A **picklable** callable ``objective(w1, w2, seed, workdir) -> Mapping[str, float]``:

- ``w1``, ``w2`` : float, the reward weights (dimensionless; drawn log-uniformly from
  :attr:`TuneConfig.w1_range` and :attr:`TuneConfig.w2_range`);
- ``seed`` : int in ``[0, 2**32)``, derived from ``(study seed, trial number, k)`` for the
  trial's ``k``-th seed, so a run is reproducible;
- ``workdir`` : :class:`~pathlib.Path`, an existing directory ``<root>/trials/<NNNN>/seed<k>``
  for the objective's checkpoints (the trial records it, so the best trial's artefacts can
  be found again).

It returns at least ``gain_pct_vs_control`` (held-out serum B12 gain of the policy arm over
the control arm, %, maximised) and ``bray_curtis_mean`` (mean Bray–Curtis dissimilarity of
the end composition to baseline, in [0, 1], kept at or below
:attr:`TuneConfig.bray_curtis_limit`); any further finite floats are kept too. A trial's
values are the means over its seeds; the per-seed values are kept as trial user attributes
(``per_seed``, ``metrics``, ``seeds``, ``workdir``, ``bray_curtis_violation``).

Constraint
----------
In ``"constrained"`` mode the trial sets the constraint ``bray_curtis_mean − limit ≤ 0`` with
:meth:`optuna.trial.Trial.set_constraint` (Optuna 5's replacement of the deprecated
``constraints_func`` argument; ``GPSampler`` reads it the same way), so the sampler models
feasibility (log constrained expected improvement).

Resume
------
Each run counts the study's ``COMPLETE`` trials and runs only ``n_trials − completed`` more.
Trials left ``RUNNING`` by a dead run (process killed) are marked ``FAIL``; every failed
trial (interrupted by ``KeyboardInterrupt``, killed, or an objective error) not yet retried
is re-enqueued once with the same ``(w1, w2)`` and the same seeds, so the interrupted point is
evaluated again (in a new trial number and work directory). **Caveat:** marking ``RUNNING``
trials as dead assumes this launcher (with its ``workers``) is the only user of the study;
do not start a second launcher on the same study and storage while one is running (a shared
PostgreSQL study is fine for *sequential* launches, or one launcher with many ``workers``).

Workers
-------
``workers=1`` optimises in this process: deterministic for a seed (same trials, same values,
identical trials table). ``workers > 1`` starts that many processes (``spawn``), each loading
the study from the same storage and optimising until ``n_trials`` trials are ``COMPLETE``;
the order of trials, and hence the trials themselves, then depend on timing. A trial is
admitted only while the complete trials plus the admitted running ones are fewer than
``n_trials``; the count and the admission mark (a user attribute) are read and written under
one lock shared by the launcher's workers, so two trials never both take the last place and
the study ends with exactly ``n_trials`` complete trials. A trial that finds no place waits,
and is recorded as ``PRUNED``, having run nothing, once the budget is met. (An earlier
version ordered trials by start time without a lock; a trial whose row became visible after
another's check while carrying an earlier start time could overshoot the budget by one.) An
error in a worker (or a killed worker) stops the others and is raised in the parent. SQLite
works with several processes (WAL journal, 60 s lock timeout) but serialises writes; use
PostgreSQL for many workers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import multiprocessing
import pickle
import queue
import sqlite3
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from matplotlib.figure import Figure
from optuna.trial import TrialState

from biofluxopt._util import BioFluxOptError, ConfigError, DataError, check_seed, to_jsonable

GAIN = "gain_pct_vs_control"
"""Metric maximised: held-out serum B12 gain of the policy arm vs the control arm (%)."""

BRAY_CURTIS = "bray_curtis_mean"
"""Metric kept at or below the limit: mean Bray–Curtis dissimilarity to baseline (0–1)."""

MODES = ("constrained", "pareto")
"""Study modes: one constrained objective, or two objectives (Pareto front)."""

TRIAL_COLUMNS = (
    "number",
    "w1",
    "w2",
    GAIN,
    BRAY_CURTIS,
    "feasible",
    "state",
    "workdir",
)
"""Leading columns of :attr:`TuneResult.trials` (further metrics follow, sorted by name)."""

_STUDY_ATTR = "biofluxopt.tune"
_CONSTRAINT = "bray_curtis"
_POLL_S = 0.25
_ADMITTED = "admitted"
_ADMISSION_LOCK: Any = None
"""In a worker process: the lock the launcher shares among its workers (None: one process)."""
_SQLITE_TIMEOUT_S = 60.0


# ====================================================================== config
@dataclass(frozen=True)
class TuneConfig:
    """Settings of the weight search (the ``[tune]`` table of a config file).

    Parameters
    ----------
    n_trials : int >= 1, default=12
        Complete trials the study should hold (finished trials found in the storage count).
    seeds_per_trial : int >= 1, default=2
        Objective runs per trial, with seeds derived from ``(seed, trial number, k)``; the
        trial's values are the seed means.
    w1_range, w2_range : (float, float), defaults (0.1, 100.0) and (0.01, 10.0)
        Bounds ``0 < low < high`` of the log-uniform search space of each weight
        (dimensionless).
    bray_curtis_limit : float in (0, 1], default=0.05
        Largest acceptable mean Bray–Curtis dissimilarity of the end composition to baseline.
    mode : {"constrained", "pareto"}, default="constrained"
        ``"constrained"``: maximise the gain subject to ``bray_curtis_mean <= limit``;
        ``"pareto"``: two objectives, maximise the gain and minimise ``bray_curtis_mean``.
    n_startup_trials : int >= 1, default=5
        Quasi-random (``RandomSampler``) trials before the Gaussian process takes over.
    study_name : str, default="biofluxopt-weights"
        Name of the study in the storage; a run with the same name resumes it.
    """

    n_trials: int = 12
    seeds_per_trial: int = 2
    w1_range: tuple[float, float] = (0.1, 100.0)
    w2_range: tuple[float, float] = (0.01, 10.0)
    bray_curtis_limit: float = 0.05
    mode: str = "constrained"
    n_startup_trials: int = 5
    study_name: str = "biofluxopt-weights"

    def check(self) -> TuneConfig:
        """Validate every field; returns ``self``.

        Raises
        ------
        ConfigError
            The first invalid field, named ``tune.<field>``, with what is allowed and what
            was received.
        """
        for name in ("n_trials", "seeds_per_trial", "n_startup_trials"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
                raise ConfigError(f"must be an integer >= 1; got {value!r}", field=f"tune.{name}")
        for name in ("w1_range", "w2_range"):
            value = getattr(self, name)
            ok = (
                isinstance(value, tuple | list)
                and len(value) == 2
                and all(_is_real(x) and 0 < x < math.inf for x in value)
            )
            if not ok or not value[0] < value[1]:
                raise ConfigError(
                    f"must be two positive finite numbers [low, high] with low < high; "
                    f"got {value!r}",
                    field=f"tune.{name}",
                )
        limit = self.bray_curtis_limit
        if not _is_real(limit) or not 0 < limit <= 1:
            raise ConfigError(
                f"must be a real number in (0, 1]; got {limit!r}", field="tune.bray_curtis_limit"
            )
        if self.mode not in MODES:
            raise ConfigError(
                f"must be one of {', '.join(map(repr, MODES))}; got {self.mode!r}",
                field="tune.mode",
            )
        if not isinstance(self.study_name, str) or not self.study_name.strip():
            raise ConfigError(
                f"must be a non-empty string; got {self.study_name!r}", field="tune.study_name"
            )
        return self

    def _spec(self) -> dict[str, Any]:
        """What a resumed study must share with this config (stored as a study attribute)."""
        return {
            "mode": self.mode,
            "w1_range": [float(x) for x in self.w1_range],
            "w2_range": [float(x) for x in self.w2_range],
            "seeds_per_trial": int(self.seeds_per_trial),
            "bray_curtis_limit": (
                float(self.bray_curtis_limit) if self.mode == "constrained" else None
            ),
        }


def _is_real(x: object) -> bool:
    return isinstance(x, Real) and not isinstance(x, bool) and not math.isnan(x)


def tune_config_from_dict(data: Mapping, *, source: str | Path | None = None) -> TuneConfig:
    """A checked :class:`TuneConfig` from a mapping (e.g. the ``[tune]`` TOML table).

    Lists (TOML arrays) are accepted for the ranges.

    Raises
    ------
    ConfigError
        An unknown key (named ``tune.<key>``, with the allowed ones) or an invalid value;
        ``source`` (a file) prefixes the message.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"must be a table; got {type(data).__name__}", source=source, field="tune"
        )
    names = [f.name for f in dataclasses.fields(TuneConfig)]
    values = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(
                f"unknown option (allowed: {', '.join(names)})", source=source, field=f"tune.{key}"
            )
        values[key] = tuple(value) if key.endswith("_range") and isinstance(value, list) else value
    try:
        return TuneConfig(**values).check()
    except ConfigError as exc:
        if source is None:
            raise
        raise ConfigError(exc.detail, source=source, field=exc.field) from exc


# ====================================================================== result
@dataclass
class TuneResult:
    """Outcome of :func:`run_study`.

    Attributes
    ----------
    trials : pandas.DataFrame
        One row per finished trial (``COMPLETE``, ``FAIL``, ``PRUNED``), ordered by number,
        columns :data:`TRIAL_COLUMNS` then any further metrics (seed means, sorted by name):
        ``number`` (int), ``w1``, ``w2`` (float, NaN if never sampled),
        ``gain_pct_vs_control`` (%), ``bray_curtis_mean`` (0–1; NaN unless complete),
        ``feasible`` (bool: complete and ``bray_curtis_mean <= limit``), ``state`` (str),
        ``workdir`` (str, the trial's directory relative to ``root``; seed ``k`` in
        ``<workdir>/seed<k>``).
    best : dict or None
        The chosen trial (None without a complete trial): ``number``, ``w1``, ``w2``,
        ``gain_pct_vs_control``, ``bray_curtis_mean``, ``feasible``, ``workdir``,
        ``seed_workdirs`` (relative to ``root``), ``seeds``, ``metrics`` (all seed means) and
        ``per_seed`` (lists). Constrained mode: the feasible trial with the highest gain, or
        if none is feasible the one with the smallest violation (``feasible: False``).
        Pareto mode: the Pareto trial with the highest gain among those within the limit,
        else the highest gain.
    pareto : pandas.DataFrame
        The Pareto-optimal complete trials (max gain, min Bray–Curtis), rows of ``trials``.
    storage : str
        The storage URL, password masked.
    resumed_trials : int
        Complete trials found in the storage at the start (not re-run).
    root : Path
        The study directory (absolute); trial work directories are relative to it.
    config : TuneConfig
        The settings of the run.
    """

    trials: pd.DataFrame
    best: dict | None
    pareto: pd.DataFrame
    storage: str
    resumed_trials: int
    root: Path = field(default_factory=Path)
    config: TuneConfig = field(default_factory=TuneConfig)

    def to_dict(self) -> dict:
        """Plain JSON types: storage, counts, mode and limit, best, trials and Pareto rows
        (NaN as None)."""
        complete = int((self.trials["state"] == "COMPLETE").sum()) if len(self.trials) else 0
        return to_jsonable(
            {
                "study_name": self.config.study_name,
                "storage": self.storage,
                "mode": self.config.mode,
                "bray_curtis_limit": self.config.bray_curtis_limit,
                "n_trials": self.config.n_trials,
                "complete_trials": complete,
                "resumed_trials": self.resumed_trials,
                "best": self.best,
                "pareto": self.pareto.to_dict(orient="records"),
                "trials": self.trials.to_dict(orient="records"),
            }
        )


# ====================================================================== helpers
def derive_seed(*entropy: int) -> int:
    """A seed in ``[0, 2**32)`` from non-negative integers (NumPy ``SeedSequence``)."""
    return int(np.random.SeedSequence([int(e) for e in entropy]).generate_state(1)[0])


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can parse: show it without credentials
        head, sep, tail = url.rpartition("@")
        return f"{head.split('://')[0]}://***@{tail}" if sep else url


class _DropMessages(logging.Filter):
    """Drops log records whose message contains one of ``parts``."""

    def __init__(self, *parts: str):
        super().__init__()
        self.parts = parts

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(part in message for part in self.parts)


_QUIET = {
    # a speed hint, once per process
    "optuna._gp.batched_lbfgsb": ("'greenlet' package is unavailable",),
    # a failed trial's error (with traceback) is raised by run_study itself: no second report
    "optuna.study._optimize": ("failed with parameters:", "failed with value"),
}


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna at WARNING (no per-trial INFO lines), without the messages of :data:`_QUIET`
    and without ExperimentalWarning; restored afterwards."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    filters = [(logging.getLogger(name), _DropMessages(*parts)) for name, parts in _QUIET.items()]
    for logger, flt in filters:
        logger.addFilter(flt)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        for logger, flt in filters:
            logger.removeFilter(flt)
        optuna.logging.set_verbosity(verbosity)


def _open_storage(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage for ``url``; SQLite files get WAL journaling and a 60 s lock timeout.

    Raises
    ------
    ConfigError
        Unparsable URL, missing driver, or a server that cannot be reached (field
        ``--storage``).
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    engine_kwargs: dict[str, Any] = {}
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            engine_kwargs["connect_args"] = {"timeout": _SQLITE_TIMEOUT_S}
            if parsed.database and parsed.database != ":memory:":
                with contextlib.closing(sqlite3.connect(parsed.database)) as con:
                    con.execute("PRAGMA journal_mode=WAL")
        else:
            engine_kwargs["pool_pre_ping"] = True
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    except (SQLAlchemyError, ImportError, sqlite3.Error, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"cannot open the study storage {mask_url(url)}: {first}", field="--storage"
        ) from exc


def _sampler(config: TuneConfig, seed: int) -> optuna.samplers.GPSampler:
    return optuna.samplers.GPSampler(
        seed=seed,
        independent_sampler=optuna.samplers.RandomSampler(seed=seed),
        n_startup_trials=config.n_startup_trials,
        deterministic_objective=False,
        # The search space is fixed (w1, w2); GPSampler only falls back to independent sampling
        # when, with parallel workers, a trial completes between its relative and independent
        # sampling steps (a start-up draw, harmless) - its warning would only confuse.
        warn_independent_sampling=False,
    )


def _directions(mode: str) -> list[optuna.study.StudyDirection]:
    d = optuna.study.StudyDirection
    return [d.MAXIMIZE] if mode == "constrained" else [d.MAXIMIZE, d.MINIMIZE]


def _check_study(study: optuna.Study, config: TuneConfig, url: str) -> None:
    """Refuse a study created with another mode or search space; stamp a new one."""
    spec = config._spec()
    found = study.user_attrs.get(_STUDY_ATTR)
    if found is None and not study.get_trials(deepcopy=False):
        if list(study.directions) == _directions(config.mode):
            study.set_user_attr(_STUDY_ATTR, spec)
            return
    if found == spec and list(study.directions) == _directions(config.mode):
        return
    if found is None:
        what = "is not a biofluxopt tune study"
    else:
        diffs = [
            f"{key}={found.get(key)!r} (now {value!r})"
            for key, value in spec.items()
            if found.get(key) != value
        ]
        what = "was created with " + ", ".join(diffs or ["other objective directions"])
    raise ConfigError(
        f"study {config.study_name!r} in {mask_url(url)} {what}; its trials cannot be resumed "
        f"with these settings. Choose another study name (e.g. "
        f"'{config.study_name}-{config.mode}-2') or the settings it was created with",
        field="tune.study_name",
    )


def _prepare_resume(study: optuna.Study, config: TuneConfig) -> tuple[int, int]:
    """Mark stale ``RUNNING`` trials ``FAIL`` and re-enqueue failed points once.

    Returns
    -------
    completed : int
        ``COMPLETE`` trials in the study.
    n_existing : int
        All trials in the study afterwards (seeds the sampler of this run).
    """
    trials = study.get_trials(deepcopy=False)
    for t in trials:
        if t.state == TrialState.RUNNING:  # left by a dead run (see the module's caveat)
            study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
    trials = study.get_trials(deepcopy=False)
    completed = sum(t.state == TrialState.COMPLETE for t in trials)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    budget = config.n_trials - completed
    for t in trials:
        if budget <= 0:
            break
        if t.state != TrialState.FAIL or t.number in retried or set(t.params) != {"w1", "w2"}:
            continue
        seed_trial = t.user_attrs.get("seed_trial", t.number)
        study.enqueue_trial(
            dict(t.params), user_attrs={"retry_of": t.number, "seed_trial": seed_trial}
        )
        budget -= 1
    return completed, len(study.get_trials(deepcopy=False))


def _finite_metrics(out: object, number: int, k: int) -> dict[str, float]:
    where = f"the objective (trial {number}, seed {k})"
    if not isinstance(out, Mapping):
        raise TypeError(f"{where} must return a mapping of floats; got {type(out).__name__}")
    metrics = {}
    for key, value in out.items():
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"{where} returned a non-number {key}={value!r}") from None
        if not math.isfinite(v):
            raise ValueError(f"{where} returned a non-finite {key}={v}")
        metrics[str(key)] = v
    missing = [key for key in (GAIN, BRAY_CURTIS) if key not in metrics]
    if missing:
        raise ValueError(f"{where} returned no {', '.join(missing)} (got {sorted(metrics)})")
    return metrics


@dataclass(frozen=True)
class _Task:
    """The Optuna objective wrapping the user's objective (picklable, runs in workers)."""

    objective: Callable[..., Mapping[str, float]]
    config: TuneConfig
    root: str
    seed: int

    def _budget_open(self, trial: optuna.Trial) -> bool:
        """Wait until this trial is admitted (True), or until ``n_trials`` trials are
        complete (False). Admission counts complete and admitted running trials and marks
        this one under the workers' shared lock, so the budget is never overshot."""
        n = self.config.n_trials
        lock = _ADMISSION_LOCK if _ADMISSION_LOCK is not None else contextlib.nullcontext()
        states = (TrialState.COMPLETE, TrialState.RUNNING)
        while True:
            with lock:
                trials = trial.study.get_trials(deepcopy=False, states=states)
                complete = sum(t.state == TrialState.COMPLETE for t in trials)
                if complete >= n:
                    return False
                admitted = sum(
                    t.state == TrialState.RUNNING and bool(t.user_attrs.get(_ADMITTED))
                    for t in trials
                )
                if complete + admitted < n:
                    trial.set_user_attr(_ADMITTED, True)
                    return True
            time.sleep(_POLL_S)

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        cfg = self.config
        if not self._budget_open(trial):
            trial.set_user_attr("skipped", "n_trials complete trials reached")
            trial.study.stop()
            raise optuna.TrialPruned("n_trials complete trials reached")
        w1 = trial.suggest_float("w1", *map(float, cfg.w1_range), log=True)
        w2 = trial.suggest_float("w2", *map(float, cfg.w2_range), log=True)
        seed_trial = int(trial.user_attrs.get("seed_trial", trial.number))
        seeds = [derive_seed(self.seed, seed_trial, k) for k in range(cfg.seeds_per_trial)]
        rel = f"trials/{trial.number:04d}"
        trial.set_user_attr("seed_trial", seed_trial)
        trial.set_user_attr("seeds", seeds)
        trial.set_user_attr("workdir", rel)
        per_seed: dict[str, list[float]] = {}
        for k, seed in enumerate(seeds):
            workdir = Path(self.root, rel, f"seed{k}")
            workdir.mkdir(parents=True, exist_ok=True)
            metrics = _finite_metrics(self.objective(w1, w2, seed, workdir), trial.number, k)
            if k and set(metrics) != set(per_seed):
                raise ValueError(
                    f"the objective (trial {trial.number}) returned different keys for seed {k} "
                    f"({sorted(metrics)}) than for seed 0 ({sorted(per_seed)})"
                )
            for key, value in metrics.items():
                per_seed.setdefault(key, []).append(value)
        means = {key: math.fsum(v) / len(v) for key, v in sorted(per_seed.items())}
        violation = means[BRAY_CURTIS] - float(cfg.bray_curtis_limit)
        trial.set_user_attr("per_seed", dict(sorted(per_seed.items())))
        trial.set_user_attr("metrics", means)
        trial.set_user_attr("bray_curtis_violation", violation)
        if cfg.mode == "constrained":
            trial.set_constraint(_CONSTRAINT, violation)
            return means[GAIN]
        return means[GAIN], means[BRAY_CURTIS]


# ====================================================================== workers
def _worker_main(
    task: _Task,
    url: str,
    study_name: str,
    sampler_seed: int,
    bound: int,
    index: int,
    errors,
    admission_lock,
) -> None:
    """Entry point of a worker process: optimise until the study holds ``n_trials`` complete
    trials; any exception is sent to the parent (``errors``) and the process exits 1.
    ``admission_lock`` is shared by all workers of one launcher (see :meth:`_Task._budget_open`)."""
    global _ADMISSION_LOCK
    _ADMISSION_LOCK = admission_lock
    try:
        with _quiet_optuna():
            storage = _open_storage(url)
            study = optuna.load_study(
                study_name=study_name, storage=storage, sampler=_sampler(task.config, sampler_seed)
            )
            study.optimize(
                task,
                n_trials=bound,
                callbacks=[
                    optuna.study.MaxTrialsCallback(
                        task.config.n_trials, states=(TrialState.COMPLETE,)
                    )
                ],
                gc_after_trial=False,
            )
    except BaseException as exc:
        # plain fields, not a pickled exception: the parent rebuilds a user-facing error
        user = (exc.detail, exc.source, exc.field) if isinstance(exc, BioFluxOptError) else None
        errors.put((index, type(exc).__name__, str(exc), traceback.format_exc(), user))
        raise SystemExit(1) from None


def _worker_error(index: int, name: str, message: str, tb: str, user: tuple | None):
    if user is not None:
        kind = {"ConfigError": ConfigError, "DataError": DataError}.get(name, BioFluxOptError)
        detail, source, field_ = user
        return kind(detail, source=source, field=field_)
    err = RuntimeError(f"tune worker {index} failed: {name}: {message}")
    err.add_note(f"traceback in worker {index}:\n{tb.rstrip()}")
    return err


def _run_workers(
    task: _Task,
    *,
    url: str,
    study: optuna.Study,
    sampler_seeds: list[int],
    bound: int,
    progress: Callable[[int, int], None] | None,
    reported: int,
) -> None:
    ctx = multiprocessing.get_context("spawn")
    errors = ctx.Queue()
    admission_lock = ctx.Lock()
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(task, url, study.study_name, s, bound, i, errors, admission_lock),
            name=f"biofluxopt-tune-{i}",
        )
        for i, s in enumerate(sampler_seeds)
    ]
    n = task.config.n_trials
    last = reported
    try:
        for p in procs:
            p.start()
        running = True
        while running:
            with contextlib.suppress(queue.Empty):
                raise _worker_error(*errors.get(timeout=_POLL_S))
            running = any(p.is_alive() for p in procs)  # before counting: no update missed
            bad = [p for p in procs if p.exitcode not in (None, 0)]
            if bad:
                with contextlib.suppress(queue.Empty):
                    raise _worker_error(*errors.get(timeout=2.0))
                raise RuntimeError(
                    f"tune worker {procs.index(bad[0])} exited with code {bad[0].exitcode} "
                    "(killed?); rerun to resume the study"
                )
            if progress is not None:
                done = _n_complete(study)
                if done != last:
                    progress(done, n)
                    last = done
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join()
        errors.close()


def _n_complete(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


# ====================================================================== study
def run_study(
    objective: Callable[..., Mapping[str, float]],
    config: TuneConfig,
    *,
    root: str | Path,
    storage: str | None = None,
    seed: int = 0,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> TuneResult:
    """Optimise the reward weights ``(w1, w2)`` with Optuna's ``GPSampler``, or resume.

    Parameters
    ----------
    objective : callable
        ``objective(w1, w2, seed, workdir) -> Mapping[str, float]`` (see the module
        docstring); picklable when ``workers > 1``.
    config : TuneConfig
        The search settings (checked).
    root : str or Path
        Study directory (created): the default SQLite storage ``study.db`` and the trial work
        directories ``trials/<NNNN>/seed<k>``.
    storage : str, optional
        SQLAlchemy URL of the study storage (e.g. ``postgresql+psycopg://user@host/db``);
        default ``sqlite:///<root>/study.db``.
    seed : int, default=0
        Study seed: sampler seeds and the objective's seeds derive from it.
    workers : int >= 1, default=1
        Processes evaluating trials in parallel (1: in this process, deterministic).
    progress : callable, optional
        ``progress(done, total)`` with the number of complete trials, at the start and as
        trials complete.

    Returns
    -------
    TuneResult

    Raises
    ------
    ConfigError
        Invalid config, seed or workers; a storage that cannot be opened; or a study of this
        name created with another mode or search space (field ``tune.study_name``).
    KeyboardInterrupt
        Interrupted (``workers=1``: the running trial is marked failed; a rerun resumes).
    RuntimeError
        A worker process failed (the first error, with the worker's traceback as a note).
    """
    if not isinstance(config, TuneConfig):
        raise TypeError(f"config must be a TuneConfig, not {type(config).__name__}")
    config.check()
    check_seed(seed)
    if isinstance(workers, bool) or not isinstance(workers, Integral) or workers < 1:
        raise ConfigError(f"must be an integer >= 1; got {workers!r}", field="--workers")
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    url = storage if storage is not None else f"sqlite:///{root / 'study.db'}"
    if workers > 1:
        if url.startswith("sqlite") and (url.rstrip("/") == "sqlite:" or ":memory:" in url):
            raise ConfigError(
                "an in-memory SQLite database cannot be shared by worker processes; give a file "
                "or server URL, or use one worker",
                field="--storage",
            )
        try:
            pickle.dumps(objective)
        except Exception as exc:
            raise TypeError(
                f"the objective must be picklable to run with workers > 1: {exc}"
            ) from exc
    task = _Task(objective=objective, config=config, root=str(root), seed=int(seed))

    with _quiet_optuna():
        rdb = _open_storage(url)
        study = optuna.create_study(
            storage=rdb,
            sampler=optuna.samplers.RandomSampler(),
            study_name=config.study_name,
            directions=_directions(config.mode),
            load_if_exists=True,
        )
        _check_study(study, config, url)
        completed, n_existing = _prepare_resume(study, config)
        if progress is not None:
            progress(min(completed, config.n_trials), config.n_trials)
        remaining = config.n_trials - completed
        workers = min(workers, max(remaining, 1))  # no process that could only wait
        if remaining > 0 and workers == 1:
            study = optuna.load_study(
                study_name=config.study_name,
                storage=rdb,
                sampler=_sampler(config, derive_seed(seed, n_existing, 0)),
            )
            callbacks: list[Callable] = [
                optuna.study.MaxTrialsCallback(config.n_trials, states=(TrialState.COMPLETE,))
            ]
            if progress is not None:
                callbacks.append(
                    lambda st, tr: (
                        progress(_n_complete(st), config.n_trials)
                        if tr.state == TrialState.COMPLETE
                        else None
                    )
                )
            study.optimize(task, n_trials=remaining, callbacks=callbacks, gc_after_trial=False)
        elif remaining > 0:
            _run_workers(
                task,
                url=url,
                study=study,
                sampler_seeds=[derive_seed(seed, n_existing, i) for i in range(workers)],
                bound=remaining + workers,
                progress=progress,
                reported=completed,
            )
        trials = study.get_trials(deepcopy=False)

    frame = _trials_frame(trials, config)
    pareto = _pareto(frame)
    best = _best(frame, pareto, trials, config)
    return TuneResult(
        trials=frame,
        best=best,
        pareto=pareto,
        storage=mask_url(url),
        resumed_trials=completed,
        root=root,
        config=config,
    )


def _trials_frame(trials: list[optuna.trial.FrozenTrial], config: TuneConfig) -> pd.DataFrame:
    finished = sorted((t for t in trials if t.state.is_finished()), key=lambda t: t.number)
    extra = sorted(
        {k for t in finished for k in t.user_attrs.get("metrics", {})} - {GAIN, BRAY_CURTIS}
    )
    rows = []
    for t in finished:
        complete = t.state == TrialState.COMPLETE
        metrics = t.user_attrs.get("metrics", {}) if complete else {}
        bc = metrics.get(BRAY_CURTIS, math.nan)
        rows.append(
            {
                "number": t.number,
                "w1": t.params.get("w1", math.nan),
                "w2": t.params.get("w2", math.nan),
                GAIN: metrics.get(GAIN, math.nan),
                BRAY_CURTIS: bc,
                "feasible": bool(complete and bc <= config.bray_curtis_limit),
                "state": t.state.name,
                "workdir": t.user_attrs.get("workdir", ""),
                **{k: metrics.get(k, math.nan) for k in extra},
            }
        )
    columns = [*TRIAL_COLUMNS, *extra]
    frame = pd.DataFrame(rows, columns=columns)
    dtypes = {c: "float64" for c in columns if c not in ("number", "feasible", "state", "workdir")}
    return frame.astype({"number": "int64", "feasible": "bool", **dtypes}).reset_index(drop=True)


def _pareto(frame: pd.DataFrame) -> pd.DataFrame:
    """Complete trials no other complete trial dominates (gain ≥ and Bray–Curtis ≤, one
    strictly)."""
    done = frame[frame["state"] == "COMPLETE"]
    gain = done[GAIN].to_numpy()
    bc = done[BRAY_CURTIS].to_numpy()
    keep = [
        not np.any((gain >= g) & (bc <= b) & ((gain > g) | (bc < b)))
        for g, b in zip(gain, bc, strict=True)
    ]
    return done[np.asarray(keep, dtype=bool)].reset_index(drop=True)


def _best(
    frame: pd.DataFrame,
    pareto: pd.DataFrame,
    trials: list[optuna.trial.FrozenTrial],
    config: TuneConfig,
) -> dict | None:
    done = frame[frame["state"] == "COMPLETE"]
    if done.empty:
        return None
    if config.mode == "constrained":
        feasible = done[done["feasible"]]
        if len(feasible):
            # highest gain; ties: the earliest trial (stable sort)
            row = feasible.sort_values(GAIN, ascending=False, kind="stable").iloc[0]
        else:
            row = done.sort_values(BRAY_CURTIS, kind="stable").iloc[0]
    else:
        within = pareto[pareto["feasible"]]
        pool = within if len(within) else pareto
        row = pool.sort_values(GAIN, ascending=False, kind="stable").iloc[0]
    number = int(row["number"])
    trial = next(t for t in trials if t.number == number)
    workdir = str(row["workdir"])
    seeds = [int(s) for s in trial.user_attrs.get("seeds", [])]
    return to_jsonable(
        {
            "number": number,
            "w1": float(row["w1"]),
            "w2": float(row["w2"]),
            GAIN: float(row[GAIN]),
            BRAY_CURTIS: float(row[BRAY_CURTIS]),
            "feasible": bool(row["feasible"]),
            "workdir": workdir,
            "seed_workdirs": [f"{workdir}/seed{k}" for k in range(len(seeds))],
            "seeds": seeds,
            "metrics": dict(trial.user_attrs.get("metrics", {})),
            "per_seed": dict(trial.user_attrs.get("per_seed", {})),
        }
    )


# ====================================================================== figure
def pareto_figure(result: TuneResult, *, limit: float | None = None) -> Figure:
    """Gain vs Bray–Curtis of every complete trial, the Pareto front and the best trial.

    Parameters
    ----------
    result : TuneResult
    limit : float, optional
        Bray–Curtis limit drawn as a vertical line; default the run's
        ``config.bray_curtis_limit``.

    Returns
    -------
    matplotlib.figure.Figure
        x: mean Bray–Curtis dissimilarity to baseline (0–1); y: gain vs control (%). All
        complete trials grey (label ``"trials"``), the Pareto front highlighted and joined by
        its attainment staircase (``"Pareto front"``), the best trial starred (``"best"``).
    """
    limit = result.config.bray_curtis_limit if limit is None else float(limit)
    fig = Figure(figsize=(6.4, 4.6), layout="constrained")
    ax = fig.add_subplot()
    done = result.trials[result.trials["state"] == "COMPLETE"]
    ax.scatter(done[BRAY_CURTIS], done[GAIN], s=22, color="0.65", label="trials", zorder=2)
    front = result.pareto.sort_values([BRAY_CURTIS, GAIN], kind="stable")
    if len(front):
        ax.plot(
            front[BRAY_CURTIS], front[GAIN], drawstyle="steps-post", color="C0", lw=1.2, zorder=3
        )
        ax.scatter(
            front[BRAY_CURTIS],
            front[GAIN],
            s=42,
            color="C0",
            edgecolor="black",
            linewidth=0.6,
            label="Pareto front",
            zorder=4,
        )
    if result.best is not None:
        b = result.best
        tag = "" if b["feasible"] else ", infeasible"
        ax.scatter(
            [b[BRAY_CURTIS]],
            [b[GAIN]],
            marker="*",
            s=220,
            color="C3",
            edgecolor="black",
            linewidth=0.6,
            label=f"best (trial {b['number']}: w1={b['w1']:.3g}, w2={b['w2']:.3g}{tag})",
            zorder=5,
        )
    ax.axvline(limit, color="C3", ls="--", lw=1.0, label=f"Bray–Curtis limit {limit:g}")
    if done.empty:
        ax.text(0.5, 0.5, "no complete trials", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("mean Bray–Curtis dissimilarity to baseline (end of trial)")
    ax.set_ylabel("held-out serum B12 gain vs control (%)")
    ax.set_title(f"Reward-weight search ({result.config.mode}, {len(done)} trials)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    return fig


__all__ = [
    "BRAY_CURTIS",
    "GAIN",
    "MODES",
    "TRIAL_COLUMNS",
    "TuneConfig",
    "TuneResult",
    "derive_seed",
    "mask_url",
    "pareto_figure",
    "run_study",
    "tune_config_from_dict",
]
