"""The whole trial: cohort → tune → baselines → arms → uncertainty → report.

Each stage is cached in the output directory by its inputs (:class:`StageStore`); a rerun
reuses the finished ones and says so. Later stages read what earlier ones wrote from disk, so
a reused stage and a fresh one give the same bytes downstream.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from biofluxopt._util import ConfigError, atomic_write_text, dumps_json, save_png
from biofluxopt.marl import (
    B12Env,
    ConstantPolicy,
    NoActionPolicy,
    Policy,
    check_oracle_memory,
    checkpoint_file,
    search_constant_action,
)
from biofluxopt.sim import ACTIVITIES

from ._arms import OUTCOMES, WeightObjective, arm_config, oracle_policy, run_arm
from ._cohort import (
    CohortTables,
    assemble,
    hmp_training_table,
    host_from_network,
    host_from_table,
    real_compositions,
    synthetic_compositions,
)
from ._config import TrialConfig
from ._store import StageStore
from ._tune import pareto_figure, run_study

#: Stages in run order.
STAGES = ("cohort", "tune", "baselines", "arms", "uncertainty", "report")

#: ``on_event(stage, done, total, message)``: progress of a stage (``total = 0``: unknown).
Event = Callable[[str, int, int, str], None]

FLOAT = "%.17g"


def _seeds(seed: int) -> dict[str, int]:
    names = (
        "bn",
        "gan",
        "real",
        "synthetic",
        "validation",
        "host",
        "validation_host",
        "validation_noise",
        "arms",
        "uncertainty",
        "constant",
    )
    children = np.random.SeedSequence(int(seed)).spawn(len(names))
    return {
        n: int(c.generate_state(1, dtype=np.uint64)[0] % (2**62))
        for n, c in zip(names, children, strict=True)
    }


def _write_csv(frame: pd.DataFrame, path: Path, *, index: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, frame.to_csv(index=index, float_format=FLOAT, lineterminator="\n"))


def _write_json(doc, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, dumps_json(doc) + "\n")


def _read_cohort(root: Path, prefix: str) -> CohortTables:
    comp = pd.read_csv(root / "cohort" / f"{prefix}compositions.csv", index_col=0)
    host = pd.read_csv(root / "cohort" / f"{prefix}host_factors.csv", index_col=0)
    source = host.pop("source")
    return CohortTables(comp.astype(np.float64), host, source)


# ============================================================================ stages
def _stage_cohort(cfg: TrialConfig, seed: int, tmp: Path, on_event: Event) -> list[str]:
    from biofluxopt import bn, synth

    c = cfg.cohort
    seeds = _seeds(seed)
    notes: list[str] = []
    on_event("cohort", 0, 4, "real compositions")
    real, n1 = real_compositions(cfg.env, c.n_real, seed=seeds["real"])
    notes += n1
    on_event("cohort", 1, 4, f"GAN ({c.gan_iterations} iterations)")
    train_table = hmp_training_table(cfg.env)
    gan = synth.train_model(
        train_table,
        model="gan",
        iterations=c.gan_iterations,
        test_fraction=0.0,
        random_state=seeds["gan"],
    )
    columns = list(gan.train.columns)
    meta = train_table.taxon_metadata
    lineages = {
        col: str(meta.loc[col, "lineage"]) if meta is not None and "lineage" in meta else col
        for col in columns
    }
    syn = synthetic_compositions(
        gan.model,
        gan.near_copy_filter,
        lineages,
        columns,
        c.n_synthetic,
        seed=seeds["synthetic"],
        prefix="gan",
    )
    val = synthetic_compositions(
        gan.model,
        gan.near_copy_filter,
        lineages,
        columns,
        c.n_validation,
        seed=seeds["validation"],
        prefix="validation",
    )
    n_trial = len(real) + len(syn)
    on_event("cohort", 2, 4, "host factors")
    if c.host_factors == "bn":
        table = bn.simulate_cohort_table(c.bn_people, days=c.bn_days, seed=seeds["bn"])
        network = bn.learn_network(table, seed=seeds["bn"])
        host, n2 = host_from_network(network, table, n_trial, seed=seeds["host"])
        vhost, _ = host_from_network(network, table, c.n_validation, seed=seeds["validation_host"])
        notes += n2
        (tmp / "bn").mkdir()
        bn.write_network(network.model, tmp / "bn", arc_strength=None)
        _write_csv(table, tmp / "bn" / "cohort.csv", index=False)
    else:
        host, n2 = host_from_table(c.host_table, n_trial, cfg.env, seed=seeds["host"])
        vhost, _ = host_from_table(
            c.host_table, c.n_validation, cfg.env, seed=seeds["validation_host"]
        )
        notes += n2
    on_event("cohort", 3, 4, "writing")
    trial = assemble([real, syn], ["hmp", "gan"], host)
    validation = assemble([val], ["gan"], vhost)
    for prefix, tables in (("", trial), ("validation_", validation)):
        _write_csv(tables.compositions, tmp / "cohort" / f"{prefix}compositions.csv")
        _write_csv(
            tables.host.assign(source=tables.source), tmp / "cohort" / f"{prefix}host_factors.csv"
        )
    _write_json(
        {"notes": notes, "n_trial": n_trial, "n_validation": len(validation)},
        tmp / "cohort" / "notes.json",
    )
    on_event("cohort", 4, 4, "done")
    return notes


def _stage_tune(
    cfg: TrialConfig,
    seed: int,
    root: Path,
    tmp: Path,
    validation: CohortTables,
    storage: str | None,
    workers: int,
    on_event: Event,
) -> dict:
    objective = WeightObjective(
        env=cfg.env,
        ppo=cfg.ppo,
        arms=cfg.arms,
        validation=validation.to_cohort(),
        validation_seed=_seeds(seed)["validation_noise"],
    )
    total = cfg.tune.n_trials
    on_event("tune", 0, total, "Bayesian optimisation of w1, w2")
    result = run_study(
        objective,
        cfg.tune,
        root=root,
        storage=storage,
        seed=seed,
        workers=workers,
        progress=lambda done, tot: on_event("tune", done, tot, "trials"),
    )
    if result.best is None:
        raise ConfigError("no tuning trial finished", field="tune.n_trials")
    _write_csv(result.trials, tmp / "tune" / "trials.csv", index=False)
    _write_csv(result.pareto, tmp / "tune" / "pareto.csv", index=False)
    save_png(
        pareto_figure(result, limit=cfg.tune.bray_curtis_limit),
        tmp / "tune" / "pareto.png",
        dpi=110,
    )
    doc = {"best": result.best, "storage": result.storage, "resumed_trials": result.resumed_trials}
    _write_json(doc, tmp / "tune" / "best.json")
    return doc


def _best_policy(root: Path) -> tuple[Policy, dict]:
    best = json.loads((root / "tune" / "best.json").read_text())["best"]
    workdir = root / "tune" / str(best["seed_workdirs"][0])
    candidates = sorted(p for p in workdir.rglob("*") if p.name.startswith("checkpoint"))
    if not candidates:
        raise ConfigError(f"no policy checkpoint under {workdir}", field="tune")
    path = checkpoint_file(candidates[0].parent)
    return Policy.load(path), best


def _stage_baselines(cfg: TrialConfig, seed: int, best: dict, tmp: Path, on_event: Event):
    bl = cfg.baselines
    env_cfg = arm_config(cfg.env, "control", cfg.arms, bl.constant_patients)
    env_cfg = env_cfg.replace(w1=float(best["w1"]), w2=float(best["w2"]), split="train")
    env = B12Env(env_cfg)
    total = bl.constant_generations
    search = search_constant_action(
        env,
        seed=_seeds(seed)["constant"],
        progress=lambda d, t: on_event("baselines", d, total, "best constant action"),
        **bl.constant_search_options(),
    )
    doc = search.to_dict(env.agent_ids, ACTIVITIES)
    _write_json(doc, tmp / "baselines" / "constant.json")


def _stage_arms(cfg: TrialConfig, seed: int, root: Path, tmp: Path, on_event: Event) -> None:
    cohort = _read_cohort(root, "")
    policy, best = _best_policy(root)
    constant = json.loads((root / "baselines" / "constant.json").read_text())
    const_policy_tensor = torch.tensor(constant["log_multipliers"], dtype=torch.float64)
    const_policy = ConstantPolicy(const_policy_tensor)
    base = cfg.env.replace(w1=float(best["w1"]), w2=float(best["w2"]), split="test")
    arm_seed = _seeds(seed)["arms"]
    n = len(cohort)
    policies = {
        "no_intervention": NoActionPolicy(),
        "control": NoActionPolicy(),
        "biofluxopt": policy,
        "constant": const_policy,
        "split_dosing": NoActionPolicy(),
        "probiotic": NoActionPolicy(),
        "high_dose": NoActionPolicy(),
    }
    arms = [a for a in cfg.arms.arms if a != "oracle"]
    total = len(arms) + (1 if "oracle" in cfg.arms.arms else 0)
    rows, steps = [], []
    people = cohort.to_cohort()
    for i, arm in enumerate(arms):
        on_event("arms", i, total, arm)
        env = B12Env(arm_config(base, arm, cfg.arms, n), cohort=people)
        res = run_arm(arm, env, policies[arm], seed=arm_seed)
        rows.append(_arm_frame(res, cohort.compositions.index))
        steps.append(_step_frame(res))
    oracle_doc = None
    if "oracle" in cfg.arms.arms:
        k = min(cfg.arms.oracle_patients, n)
        on_event("arms", len(arms), total, f"oracle ({k} patients)")
        sub = cohort.head(k)
        env = B12Env(arm_config(base, "control", cfg.arms, k), cohort=sub.to_cohort())
        bl = cfg.baselines
        oracle, result = oracle_policy(
            env,
            seed=arm_seed,
            start=const_policy_tensor,
            progress=lambda d, t: on_event("arms", len(arms), total, f"oracle iterate {d}/{t}"),
            **bl.oracle_options(),
        )
        none = run_arm("control", env, NoActionPolicy(), seed=arm_seed)
        pol = run_arm("biofluxopt", env, policy, seed=arm_seed)
        orc = run_arm("oracle", env, oracle, seed=arm_seed)
        rows.append(_arm_frame(orc, sub.compositions.index))
        # the oracle's own env draws its noise for its subset: its pairs are these runs
        for res, name in ((none, "control@oracle"), (pol, "biofluxopt@oracle")):
            rows.append(_arm_frame(res, sub.compositions.index).assign(arm=name))
        steps.append(_step_frame(orc))
        r_none, r_pol, r_orc = (float(x.return_by_patient.mean()) for x in (none, pol, orc))
        denom = r_orc - r_none
        oracle_doc = {
            "patients": k,
            "return_mean": {"control": r_none, "biofluxopt": r_pol, "oracle": r_orc},
            "serum_b12_end_pmol_l_mean": {
                name: float(x.end["serum_b12_pmol_l"].mean())
                for name, x in (("control", none), ("biofluxopt", pol), ("oracle", orc))
            },
            "oracle_fraction": (r_pol - r_none) / denom if denom > 1e-9 else None,
            "note": (
                "oracle_fraction = (R_policy − R_control) / (R_oracle − R_control) on mean "
                "episode returns of the same patients and noise; null when the oracle gains "
                "nothing over control"
            ),
            "grad_steps": result.grad_steps,
        }
    on_event("arms", total, total, "done")
    _write_csv(pd.concat(rows, ignore_index=True), tmp / "arms" / "outcomes.csv", index=False)
    _write_csv(pd.concat(steps, ignore_index=True), tmp / "arms" / "serum_by_step.csv", index=False)
    _write_json(
        {"oracle": oracle_doc, "w1": best["w1"], "w2": best["w2"]}, tmp / "arms" / "summary.json"
    )


def _arm_frame(res, index) -> pd.DataFrame:
    frame = pd.DataFrame({"patient": list(index), "arm": res.name})
    frame["baseline_serum_b12_pmol_l"] = res.baseline_serum_b12_pmol_l
    for k in OUTCOMES:
        frame[k] = res.end[k]
    frame["return"] = res.return_by_patient
    return frame


def _step_frame(res) -> pd.DataFrame:
    s = res.serum_by_step
    return pd.DataFrame(
        {
            "arm": res.name,
            "day": res.days,
            "serum_b12_pmol_l_mean": s.mean(1),
            "serum_b12_pmol_l_q25": np.quantile(s, 0.25, axis=1),
            "serum_b12_pmol_l_q75": np.quantile(s, 0.75, axis=1),
        }
    )


def _draws(cfg: TrialConfig, seed: int) -> pd.DataFrame:
    from scipy.stats import qmc

    from biofluxopt.knowledge import load_parameters

    u = cfg.uncertainty
    table = {p.id: p for p in load_parameters()}
    lhs = qmc.LatinHypercube(d=len(u.parameters), seed=np.random.default_rng(seed)).random(
        u.n_draws
    )
    values = {}
    for j, pid in enumerate(u.parameters):
        p = table[pid]
        if p.low > 0:
            values[pid] = np.exp(np.log(p.low) + lhs[:, j] * (np.log(p.high) - np.log(p.low)))
        else:
            values[pid] = p.low + lhs[:, j] * (p.high - p.low)
    return pd.DataFrame(values)


def _stage_uncertainty(cfg: TrialConfig, seed: int, root: Path, tmp: Path, on_event: Event):
    from scipy.stats import spearmanr

    from biofluxopt.knowledge import load_parameters

    u = cfg.uncertainty
    cohort = _read_cohort(root, "")
    sub = cohort.head(min(u.patients, len(cohort)))
    people = sub.to_cohort()
    policy, best = _best_policy(root)
    base = cfg.env.replace(w1=float(best["w1"]), w2=float(best["w2"]), split="test")
    useed = _seeds(seed)["uncertainty"]

    def effect(values: dict) -> tuple[float, float]:
        env_cfg = arm_config(base, "control", cfg.arms, len(sub)).replace(
            parameter_values={k: float(v) for k, v in values.items()}
        )
        env = B12Env(env_cfg, cohort=people)
        ctrl = run_arm("control", env, NoActionPolicy(), seed=useed)
        pol = run_arm("biofluxopt", env, policy, seed=useed)
        c = float(ctrl.end["serum_b12_pmol_l"].mean())
        t = float(pol.end["serum_b12_pmol_l"].mean())
        return 100.0 * (t - c) / c, t - c

    draws = _draws(cfg, useed)
    total = len(draws) + 3
    on_event("uncertainty", 0, total, "calibrated parameters")
    rows = []
    pct, pmol = effect({})
    rows.append(
        {
            "draw": "calibrated",
            **{p: np.nan for p in u.parameters},
            "effect_pct": pct,
            "effect_pmol_l": pmol,
        }
    )
    for i, values in draws.iterrows():
        on_event("uncertainty", i + 1, total, f"parameter draw {i + 1}/{len(draws)}")
        pct, pmol = effect(values.to_dict())
        rows.append(
            {"draw": f"draw-{i}", **values.to_dict(), "effect_pct": pct, "effect_pmol_l": pmol}
        )
    frame = pd.DataFrame(rows)
    ranking = []
    drawn = frame[frame["draw"] != "calibrated"]
    if len(drawn) >= 3 and float(np.ptp(drawn["effect_pct"])) > 0:
        for pid in u.parameters:
            rho = spearmanr(drawn[pid], drawn["effect_pct"]).statistic
            ranking.append(
                {"parameter": pid, "spearman_rho": None if not np.isfinite(rho) else float(rho)}
            )
        ranking.sort(key=lambda r: -abs(r["spearman_rho"] or 0.0))
    ends = {}
    if ranking:
        top = ranking[0]["parameter"]
        p = {q.id: q for q in load_parameters()}[top]
        for j, (label, value) in enumerate((("low", p.low), ("high", p.high))):
            on_event("uncertainty", len(draws) + 1 + j, total, f"{top} at its {label} end")
            pct, pmol = effect({top: value})
            ends[label] = {"value": value, "effect_pct": pct, "effect_pmol_l": pmol}
        ends = {"parameter": top, "unit": p.unit, "source": p.source, **ends}
    on_event("uncertainty", total, total, "done")
    _write_csv(frame, tmp / "uncertainty" / "ensemble.csv", index=False)
    _write_json(
        {
            "ranking": ranking,
            "ends": ends or None,
            "patients": len(sub),
            "parameters": list(u.parameters),
        },
        tmp / "uncertainty" / "summary.json",
    )


# ============================================================================ driver
def run_tune(
    config: TrialConfig,
    out: str | Path,
    *,
    seed: int = 0,
    workers: int = 1,
    storage: str | None = None,
    overwrite: bool = False,
    on_event: Event | None = None,
    on_reuse: Callable[[str], None] | None = None,
) -> dict:
    """Run (or resume) only the ``cohort`` and ``tune`` stages: ``biofluxopt tune``.

    Same arguments as :func:`run_trial`; returns ``tune/best.json``'s content. A later
    ``run_trial`` into the same ``out`` with the same config reuses both stages.
    """
    return run_trial(
        config,
        out,
        seed=seed,
        workers=workers,
        storage=storage,
        overwrite=overwrite,
        on_event=on_event,
        on_reuse=on_reuse,
        _until="tune",
    )


def run_trial(
    config: TrialConfig,
    out: str | Path,
    *,
    seed: int = 0,
    workers: int = 1,
    storage: str | None = None,
    overwrite: bool = False,
    on_event: Event | None = None,
    on_reuse: Callable[[str], None] | None = None,
    _until: str = "report",
) -> dict:
    """Run (or resume) the whole trial into ``out`` and return ``results.json``'s content.

    Parameters
    ----------
    config : TrialConfig
    out : str or Path
        Output directory (see :class:`StageStore` for what is refused and reused).
    seed : int
        Seeds every stage; same seed, same ``results.json``.
    workers : int
        Processes of the tuning study (``workers > 1`` makes tuning order-dependent).
    storage : str, optional
        SQLAlchemy URL of the Optuna study (default: ``out/tune/study.db``, SQLite).
    overwrite : bool
        Recompute stages whose inputs changed (else refused).
    on_event : callable, optional
        ``(stage, done, total, message)`` progress.
    on_reuse : callable, optional
        Called with a stage's name when it is reused.
    """
    from biofluxopt import __version__

    from ._report import write_report

    on_event = on_event or (lambda *a: None)
    on_reuse = on_reuse or (lambda s: None)
    if "oracle" in config.arms.arms:  # refuse an oracle too large for memory before any work
        check_oracle_memory(
            arm_config(config.env, "control", config.arms, config.arms.oracle_patients),
            grad_steps=config.baselines.oracle_grad_steps,
        )
    check_oracle_memory(  # and a gradient-refined constant search
        arm_config(config.env, "control", config.arms, config.baselines.constant_patients),
        grad_steps=config.baselines.constant_grad_steps,
    )
    store = StageStore(out, overwrite=overwrite)
    root = store.root
    timings: dict[str, float] = {}
    env_split = {
        "test_fraction": config.env.test_fraction,
        "split_seed": config.env.split_seed,
        "hmp_region": config.env.hmp_region,
    }
    host_table_digest = None
    if config.cohort.host_factors == "table":
        import hashlib

        try:
            host_table_digest = hashlib.sha256(
                Path(config.cohort.host_table).read_bytes()
            ).hexdigest()
        except OSError as exc:
            raise ConfigError(
                f"cannot read ({exc.strerror or exc})",
                source=config.cohort.host_table,
                field="cohort.host_table",
            ) from exc
    keys: dict[str, str] = {}

    def run(name: str, inputs: dict, body, persistent: str | None = None):
        inputs = {**inputs, "biofluxopt": __version__}
        rec = store.cached(name, inputs)
        keys[name] = store.key(inputs)
        if rec is not None:
            on_reuse(name)
            timings[name] = float(rec.get("wall_s", 0.0))
            return
        start = time.perf_counter()
        with store.stage(name, inputs, persistent=persistent) as tmp:
            body(tmp)
        timings[name] = time.perf_counter() - start

    run(
        "cohort",
        {
            "cohort": config.section("cohort"),
            "env_split": env_split,
            "seed": seed,
            "host_table_sha256": host_table_digest,
        },
        lambda tmp: _stage_cohort(config, seed, tmp, on_event),
    )
    validation = _read_cohort(root, "validation_")
    tune_root = store.persistent_dir("tune")
    run(
        "tune",
        {
            "tune": config.section("tune"),
            "env": config.section("env"),
            "ppo": config.section("ppo"),
            "control": config.arms.control_ug_per_day,
            "cohort": keys["cohort"],
            "seed": seed,
            "storage": "default" if storage is None else "url",
        },
        lambda tmp: _stage_tune(
            config, seed, tune_root, tmp, validation, storage, workers, on_event
        ),
        persistent="tune",
    )
    tune_doc = json.loads((root / "tune" / "best.json").read_text())
    if _until == "tune":
        return tune_doc
    best = tune_doc["best"]
    run(
        "baselines",
        {
            "baselines": config.section("baselines"),
            "env": config.section("env"),
            "control": config.arms.control_ug_per_day,
            "tune": keys["tune"],
            "seed": seed,
        },
        lambda tmp: _stage_baselines(config, seed, best, tmp, on_event),
    )
    run(
        "arms",
        {
            "arms": config.section("arms"),
            "env": config.section("env"),
            "baselines": keys["baselines"],
            "oracle": [config.baselines.oracle_grad_steps, config.baselines.oracle_learning_rate],
            "tune": keys["tune"],
            "cohort": keys["cohort"],
            "seed": seed,
        },
        lambda tmp: _stage_arms(config, seed, root, tmp, on_event),
    )
    run(
        "uncertainty",
        {
            "uncertainty": config.section("uncertainty"),
            "env": config.section("env"),
            "arms": config.section("arms"),
            "tune": keys["tune"],
            "cohort": keys["cohort"],
            "seed": seed,
        },
        lambda tmp: _stage_uncertainty(config, seed, root, tmp, on_event),
    )
    on_event("report", 0, 1, "statistics and report")
    results = write_report(config, root, store, seed=seed)
    on_event("report", 1, 1, "done")
    return results


__all__ = ["STAGES", "run_trial", "run_tune"]
