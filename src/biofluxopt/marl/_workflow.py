"""Train-then-evaluate workflows behind ``biofluxopt train`` and ``biofluxopt evaluate``.

A run configuration is one TOML file with three tables (every key optional; unknown keys and
impossible values are a :class:`~biofluxopt._util.ConfigError` naming the file and the
field)::

    [env]        # B12EnvConfig fields (patients per iteration, episode, observation, reward)
    [ppo]        # PPOConfig fields (algorithm, iterations, optimiser, networks)
    [baselines]  # BaselineConfig fields (held-out patients, constant search, oracle budget)

Presets ship in ``biofluxopt/marl/data/``: ``default`` (``default_train.toml``) and ``tiny``
(``tiny_train.toml``, an end-to-end run in well under a minute for tests and CI).

:func:`train_workflow` writes into a directory: ``checkpoint.safetensors`` (the trainer's),
``learning_curve.csv`` and ``.png``, ``baselines.json`` (the best constant action and the
baseline budgets, reused by :func:`evaluate_workflow`), ``baselines.png`` and ``eval.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from biofluxopt._util import (
    BackgroundJob,
    ConfigError,
    DataError,
    dumps_json,
    read_toml,
    save_png,
)

from ._baselines import (
    BaselineConfig,
    BaselineReport,
    ConstantSearch,
    baseline_config_from_dict,
    check_oracle_memory,
    compare_to_baselines,
    search_constant_action,
)
from ._config import B12EnvConfig, config_from_kwargs
from ._env import ACTION_HIGH, ACTION_LOW, B12Env
from ._patients import Cohort
from ._ppo import (
    CHECKPOINT_NAME,
    Policy,
    PPOConfig,
    evaluate_policy,
    ppo_config_from_dict,
    train,
)

#: Shipped run configurations (``biofluxopt train --preset NAME``).
PRESETS = ("default", "tiny")
#: Tables of a run configuration.
TABLES = ("env", "ppo", "baselines")
BASELINES_NAME = "baselines.json"
EVAL_NAME = "eval.json"


@dataclass
class RunConfig:
    """A checked run configuration.

    Attributes
    ----------
    env : B12EnvConfig
        Training environment (``split`` is set to train / test by the workflow).
    ppo : PPOConfig
    baselines : BaselineConfig
    source : str
        The file it was read from.
    """

    env: B12EnvConfig
    ppo: PPOConfig
    baselines: BaselineConfig
    source: str

    def to_dict(self) -> dict:
        return {
            "env": json.loads(json.dumps(dataclasses.asdict(self.env))),
            "ppo": dataclasses.asdict(self.ppo),
            "baselines": dataclasses.asdict(self.baselines),
            "source": self.source,
        }


def preset_path(name: str) -> Path:
    """Path of a shipped configuration (``"default"`` or ``"tiny"``)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r} (allowed: {list(PRESETS)})", field="--preset")
    return Path(str(resources.files("biofluxopt.marl") / "data" / f"{name}_train.toml"))


def load_run_config(path: str | Path | None = None, *, preset: str = "default") -> RunConfig:
    """Read and check a run configuration (``path``, or the shipped ``preset``).

    Raises
    ------
    ConfigError
        Unreadable or invalid TOML, an unknown table or key, an impossible value: the message
        names the file and the field (``train.toml: B12EnvConfig.episode_days: ...``).
    """
    path = Path(path) if path is not None else preset_path(preset)
    data = read_toml(path)
    for key, value in data.items():
        if key not in TABLES:
            raise ConfigError(f"unknown table (allowed: {list(TABLES)})", source=path, field=key)
        if not isinstance(value, dict):
            raise ConfigError("must be a table ([name])", source=path, field=key)
    try:
        env = config_from_kwargs(None, **data.get("env", {}))
    except ConfigError as exc:
        raise ConfigError(exc.detail, source=path, field=exc.field) from exc
    except TypeError as exc:  # e.g. a host-factor distribution that is not a table
        raise ConfigError(str(exc), source=path, field="env") from exc
    ppo = ppo_config_from_dict(data.get("ppo", {}), source=path)
    baselines = baseline_config_from_dict(data.get("baselines", {}), source=path)
    return RunConfig(env, ppo, baselines, str(path))


# ====================================================================== figures
def _curve_figure(frame):
    """Learning curve: return and the reward's terms against env-steps (object API, Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 6))
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    x = frame["env_steps"].to_numpy()
    ax1.plot(x, frame["return_mean"].to_numpy(), lw=2)
    ax1.set_ylabel("episode return (mean)")
    ax1.grid(alpha=0.3)
    ax2.plot(x, frame["serum_b12_gain_pmol_l_mean"].to_numpy(), lw=2, label="serum B12 gain")
    ax2.set_ylabel("serum B12 gain (pmol/L)")
    ax2.grid(alpha=0.3)
    twin = ax2.twinx()
    twin.plot(x, frame["bray_curtis_mean"].to_numpy(), lw=1, ls="--", c="tab:red")
    twin.set_ylabel("Bray–Curtis to baseline (dashed)")
    ax2.set_xlabel("env-steps (patients × decision steps)")
    fig.suptitle("training (stochastic policy, training patients)")
    fig.tight_layout()
    return fig


def _baselines_figure(methods: dict[str, dict], title: str):
    """Bar charts by method: mean return, and mean serum B12 gain minus no action's (the
    same patients and noise, so the difference is the methods' effect); object API, Agg."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(methods)
    fig = Figure(figsize=(9, 4))
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.bar(names, [methods[m]["return_mean"] for m in names], color="tab:blue")
    ax1.set_ylabel("episode return (mean)")
    none = methods["no_action"]["serum_b12_gain_pmol_l_mean"]
    ax2.bar(
        names,
        [methods[m]["serum_b12_gain_pmol_l_mean"] - none for m in names],
        color="tab:green",
    )
    ax2.set_ylabel("serum B12 gain minus no action's (pmol/L)")
    for ax in (ax1, ax2):
        ax.axhline(0, c="grey", lw=0.8)
        ax.tick_params(axis="x", labelrotation=30)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


# ====================================================================== documents
def _eval_document(report: BaselineReport, env: B12Env, extra: dict) -> dict:
    policy = report.methods["policy"]
    doc = {
        "return_mean": policy["return_mean"],
        "return_std": policy["return_std"],
        "serum_b12_gain_pmol_l_mean": policy["serum_b12_gain_pmol_l_mean"],
        "bray_curtis_mean": policy["bray_curtis_mean"],
        "oracle_fraction": report.oracle_fraction,
        "constant_action_margin_pmol_l": report.constant_action_margin_pmol_l,
        "constant_as_good_as_policy": report.constant_as_good_as_policy,
        "notes": report.notes,
        **extra,
    }
    doc.update(report.to_dict(env))
    return doc


def _write_evaluation(
    out_dir: Path, report: BaselineReport, env: B12Env, extra: dict, where: str
) -> dict:
    """Write ``eval.json`` and ``baselines.png`` (the methods on ``where``); returns the
    document."""
    doc = _eval_document(report, env, extra)
    (out_dir / EVAL_NAME).write_text(dumps_json(doc), encoding="utf-8")
    save_png(
        _baselines_figure(report.methods, f"{where} (n={env.n_patients})"),
        out_dir / "baselines.png",
        dpi=110,
    )
    return doc


def _save_constant(path: Path, constant: ConstantSearch, baselines: BaselineConfig) -> None:
    from biofluxopt.sim import ACTIVITIES, taxon_ids

    doc = {
        "baseline_config": dataclasses.asdict(baselines),
        "constant_action": constant.to_dict(taxon_ids()[:-1], ACTIVITIES),
    }
    path.write_text(dumps_json(doc), encoding="utf-8")


def _load_constant(path: Path) -> tuple[ConstantSearch, BaselineConfig]:
    """The best constant action and baseline budgets stored by :func:`train_workflow`."""
    from biofluxopt.sim import action_mask

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"not a baselines file ({exc})", source=path) from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("constant_action"), dict):
        raise DataError("missing 'constant_action'", source=path, field="constant_action")
    cfg = baseline_config_from_dict(doc.get("baseline_config", {}), source=path)
    ca = doc["constant_action"]
    mask = action_mask()
    try:
        logm = torch.tensor(ca["log_multipliers"], dtype=torch.float32)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(
            "must be a list of lists of numbers", source=path, field="log_multipliers"
        ) from exc
    if logm.shape != mask.shape or not bool(torch.isfinite(logm).all()):
        raise DataError(
            f"must be finite, shape {list(mask.shape)}; got {list(logm.shape)}",
            source=path,
            field="log_multipliers",
        )
    if bool((logm < ACTION_LOW - 1e-6).any() | (logm > ACTION_HIGH + 1e-6).any()):
        raise DataError("outside [ln 0.25, ln 4]", source=path, field="log_multipliers")
    logm = torch.where(mask, logm, torch.zeros_like(logm))
    search = ConstantSearch(
        log_multipliers=logm,
        train_return_mean=float(ca.get("train_return_mean", math.nan)),
        no_action_return_mean=float(ca.get("train_no_action_return_mean", math.nan)),
        evaluations=int(ca.get("evaluations", 0)),
        patients=int(ca.get("train_patients", 0)),
        best_by_generation=list(ca.get("best_by_generation", [])),
        wall_s=float(ca.get("wall_s", 0.0)),
    )
    return search, cfg


# ====================================================================== workflows
Stage = Callable[[str, int, int], None]


def _constant_search(env_config: B12EnvConfig, bl: BaselineConfig, seed: int, stage):
    env = B12Env(env_config.replace(n_patients=bl.constant_patients, split="train"))
    return search_constant_action(
        env,
        seed=seed,
        progress=None if stage is None else (lambda d, t: stage("constant", d, t)),
        **bl.constant_search_options(),
    )


def _baselines_job(env_config: B12EnvConfig, bl: BaselineConfig, seed: int, progress=None):
    """Everything of the evaluation that does not depend on the policy: the best constant
    (training patients) and every baseline on the held-out patients. ``train_workflow`` runs
    it in a second process while PPO trains (``BaselineConfig.background``).

    Returns
    -------
    tuple of (ConstantSearch, BaselineReport, float)
        The constant, the report without a policy, and the job's wall time (s).
    """
    start = time.perf_counter()
    constant = _constant_search(env_config, bl, seed, progress)
    eval_env = B12Env(env_config.replace(n_patients=bl.eval_patients, split="test"))
    report = compare_to_baselines(
        eval_env, None, seed=seed, constant=constant, config=bl, progress=progress
    )
    eval_env.close()
    return constant, report, time.perf_counter() - start


def train_workflow(
    run: RunConfig,
    out_dir: str | Path,
    *,
    seed: int = 0,
    on_iteration: Callable[[dict], None] | None = None,
    on_stage: Stage | None = None,
) -> dict:
    """Train, then score the policy against the baselines on held-out patients.

    The baselines do not depend on the policy; with ``run.baselines.background`` (the
    default) they are computed in a second process while PPO trains, with the same results
    as one after the other.

    Parameters
    ----------
    run : RunConfig
    out_dir : str or Path
        An existing, writable directory (the CLI passes its temporary output directory).
    seed : int
        Training seed; also the reset seed of the constant search (training patients) and of
        the evaluation (held-out patients), so every method meets the same patients and noise.
    on_iteration : callable, optional
        Called with each learning-curve row.
    on_stage : callable, optional
        Called with ``(stage, done, total)`` for ``"constant"``, ``"oracle"`` and
        ``"oracle_expected_diet"`` (from the background process: between iterations).

    Returns
    -------
    dict
        The content of ``eval.json``.
    """
    out_dir = Path(out_dir)
    env_config = run.env.replace(split="train")
    bl = run.baselines
    check_oracle_memory(env_config, bl.eval_patients, bl.oracle_grad_steps)  # before training
    check_oracle_memory(env_config, bl.constant_patients, bl.constant_grad_steps)
    job = BackgroundJob(_baselines_job, env_config, bl, seed) if bl.background else None
    with job if job is not None else contextlib.nullcontext():

        def on_row(row: dict) -> None:
            if job is not None:
                job.poll(on_stage)
            if on_iteration is not None:
                on_iteration(row)

        result = train(env_config, run.ppo, seed=seed, out_dir=out_dir, progress=on_row)
        trained = time.perf_counter()
        frame = result.curve_frame()
        frame.to_csv(out_dir / "learning_curve.csv", index=False, float_format="%.8g")
        save_png(_curve_figure(frame), out_dir / "learning_curve.png", dpi=110)
        if job is None:
            constant, report, baselines_wall_s = _baselines_job(env_config, bl, seed, on_stage)
        else:
            constant, report, baselines_wall_s = job.result(on_stage)
    last = result.curve[-1]
    _save_constant(out_dir / BASELINES_NAME, constant, run.baselines)
    eval_env = B12Env(env_config.replace(n_patients=run.baselines.eval_patients, split="test"))
    report = report.with_policy(evaluate_policy(result.policy, eval_env, seed=seed))
    extra = {
        "env_steps": last["env_steps"],
        "wall_s": last["wall_s"],
        "train_env_steps_per_s": last["env_steps"] / max(last["wall_s"], 1e-9),
        "evaluation_wall_s": time.perf_counter() - trained,
        "baselines_wall_s": baselines_wall_s,
        "baselines_in_background": bl.background,
        "eval_patients": eval_env.n_patients,
        "eval_split": "test",
        "seed": seed,
        "algo": run.ppo.algo,
        "selection": result.selection,
        "config": run.to_dict(),
    }
    return _write_evaluation(out_dir, report, eval_env, extra, "held-out patients")


def checkpoint_file(checkpoint: str | Path) -> Path:
    """The checkpoint file of a training directory (or the file itself)."""
    path = Path(checkpoint)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.exists():
        raise DataError("no trainer checkpoint here", source=path, field="--checkpoint")
    return path


def read_cohort(path: str | Path) -> Cohort:
    """A user's cohort table as a :class:`Cohort`: one patient per sample, in the table's
    order, named by the sample ids; host factors and habitual diet are left to the env
    config's distributions."""
    from biofluxopt.data import aggregate_to_model_taxa, read_table
    from biofluxopt.sim import taxon_ids

    comp = aggregate_to_model_taxa(read_table(path))[list(taxon_ids())]
    return Cohort(
        composition=torch.tensor(comp.to_numpy(), dtype=torch.float64),
        host={},
        habitual_b12_ug_per_day=None,
        subject_id=tuple(str(i) for i in comp.index),
    )


def evaluate_workflow(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    patients: int | None = None,
    compositions: str | Path | None = None,
    seed: int = 0,
    on_stage: Stage | None = None,
) -> dict:
    """Score a trained policy and the baselines on fresh held-out patients or a user's cohort.

    Parameters
    ----------
    checkpoint : str or Path
        A directory written by ``biofluxopt train`` (or its ``checkpoint.safetensors``). Its
        ``baselines.json`` supplies the best constant action and the baseline budgets; without
        it the constant is searched again on training patients with the default budget.
    out_dir : str or Path
        Existing writable directory.
    patients : int, optional
        Held-out patients (``split="test"``); default: the stored ``eval_patients``.
    compositions : str or Path, optional
        A cohort table: one patient per sample, each sample exactly once, in the table's
        order (:func:`read_cohort`); host factors, kinetics and diet drawn as in training.
    seed : int
        Reset seed shared by every method.

    Returns
    -------
    dict
        The content of ``eval.json``.
    """
    out_dir = Path(out_dir)
    ck_path = checkpoint_file(checkpoint)
    policy = Policy.load(ck_path)
    bl_path = ck_path.parent / BASELINES_NAME
    start = time.perf_counter()
    constant, bl = _load_constant(bl_path) if bl_path.exists() else (None, BaselineConfig())
    cohort = read_cohort(compositions) if compositions is not None else None
    if cohort is not None:
        n = len(cohort)
    else:
        n = patients if patients is not None else bl.eval_patients
    check_oracle_memory(policy.env_config, n, bl.oracle_grad_steps)  # before any work
    if constant is None:
        constant = _constant_search(policy.env_config, bl, seed, on_stage)
    if cohort is not None:
        env = B12Env(policy.env_config.replace(n_patients=n), cohort=cohort)
        where = f"cohort {Path(compositions).name}"
    else:
        env = B12Env(policy.env_config.replace(n_patients=n, split="test"))
        where = "held-out patients"
    report = compare_to_baselines(
        env, policy, seed=seed, constant=constant, config=bl, progress=on_stage
    )
    extra = {
        "env_steps": report.methods["policy"]["env_steps"],
        "wall_s": time.perf_counter() - start,
        "eval_patients": env.n_patients,
        "eval_split": "compositions" if compositions is not None else "test",
        "compositions": None if compositions is None else str(compositions),
        "checkpoint": str(ck_path),
        "seed": seed,
    }
    return _write_evaluation(out_dir, report, env, extra, where)


__all__ = [
    "PRESETS",
    "RunConfig",
    "checkpoint_file",
    "evaluate_workflow",
    "load_run_config",
    "preset_path",
    "read_cohort",
    "train_workflow",
]
