"""``biofluxopt tune`` and ``biofluxopt trial``: Bayesian optimisation of the reward weights and
the whole virtual trial (docs/trial.md).

Heavy imports (torch, optuna, matplotlib) happen inside the commands.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from ._marl import _progress as _marl_progress

console = Console(stderr=True, soft_wrap=True)

OUT_HELP = (
    "Output directory: created if missing. An existing non-empty directory is refused unless "
    "it holds an earlier trial; then its finished stages whose inputs are unchanged are reused "
    "(an interrupted run resumes), and stages whose inputs changed need --overwrite."
)
OVERWRITE_HELP = (
    "Recompute the stages of an earlier run in OUT whose inputs changed, replacing only the "
    "files the trial wrote there."
)
SEED_HELP = "Random seed, 0 to 2**63 - 1 (same seed, same results.json)."
WORKERS_HELP = "Processes of the tuning study (1: in-process and order-deterministic)."
STORAGE_HELP = (
    "SQLAlchemy URL of the Optuna study, e.g. postgresql+psycopg://user@127.0.0.1/db "
    "(default: an SQLite file OUT/tune/study.db)."
)
STAGE_LABELS = {
    "cohort": "cohort: BN, GAN, patients",
    "tune": "tune: w1, w2 (trials)",
    "baselines": "best constant action",
    "arms": "arms",
    "uncertainty": "model-uncertainty ensemble",
    "report": "statistics and report",
}


class Preset(StrEnum):
    quick = "quick"
    full = "full"


def _run(run, cfg, out: str, **kwargs):
    """``run(cfg, out, **kwargs)`` (``trial.run_trial`` or ``run_tune``) under one progress
    display: a bar per stage, a line per reused stage."""
    with _marl_progress(console) as bar:
        on_event, on_reuse = _callbacks(bar)
        return run(cfg, out, on_event=on_event, on_reuse=on_reuse, **kwargs)


def _callbacks(bar):
    tasks: dict[str, int] = {}

    def on_event(stage: str, done: int, total: int, message: str) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(
                STAGE_LABELS.get(stage, stage), total=total or None, info=""
            )
        bar.update(tasks[stage], completed=done, total=total or None, info=escape(message))

    def on_reuse(stage: str) -> None:
        console.print(f"[cyan]reusing[/] stage {stage} (inputs unchanged)")

    return on_event, on_reuse


def _load(config: Path | None, preset: Preset, workers: int, seed: int):
    import warnings

    from biofluxopt._util import ConfigError, check_seed
    from biofluxopt.trial import load_trial_config

    # pgmpy 1.1 warns about its own deprecated modules on import; users cannot act on it
    warnings.filterwarnings("ignore", category=FutureWarning, message=r".*pgmpy.*|.*deprecated.*")

    seed = check_seed(seed)
    if workers < 1:
        raise ConfigError(f"must be an integer >= 1; got {workers}", field="--workers")
    return load_trial_config(config, preset=preset.value), seed


def trial_command(
    out: Annotated[str, typer.Option("--out", help=OUT_HELP)],
    preset: Annotated[
        Preset,
        typer.Option(
            "--preset",
            help="Sizes: quick (the whole pipeline in minutes on 2 cores) or full (the "
            "documented sizes; see the README for its time). --config overrides any key.",
        ),
    ] = Preset.quick,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="Trial TOML: any table/key of docs/trial.md, merged over the preset."
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help=SEED_HELP)] = 0,
    workers: Annotated[int, typer.Option("--workers", help=WORKERS_HELP)] = 1,
    storage: Annotated[str | None, typer.Option("--storage", help=STORAGE_HELP)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help=OVERWRITE_HELP)] = False,
) -> None:
    """Run the virtual trial: cohort, tuning of w1/w2, arms, statistics, model uncertainty,
    HyperScore.

    Writes OUT/report.html (one self-contained page), OUT/results.json and the stages' files.
    """
    from biofluxopt.trial import run_trial

    cfg, seed = _load(config, preset, workers, seed)
    console.print(
        f"virtual trial, preset [bold]{cfg.preset}[/] ({escape(Path(cfg.source).name)}), "
        f"seed {seed}"
    )
    results = _run(
        run_trial, cfg, out, seed=seed, workers=workers, storage=storage, overwrite=overwrite
    )
    _print(results)
    console.print(f"[green]wrote[/] {escape(str(out))}: report.html, results.json")


def tune_command(
    out: Annotated[str, typer.Option("--out", help=OUT_HELP)],
    preset: Annotated[Preset, typer.Option("--preset", help="Sizes: quick or full.")] = (
        Preset.quick
    ),
    config: Annotated[
        Path | None, typer.Option("--config", help="Trial TOML merged over the preset.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help=SEED_HELP)] = 0,
    workers: Annotated[int, typer.Option("--workers", help=WORKERS_HELP)] = 1,
    storage: Annotated[str | None, typer.Option("--storage", help=STORAGE_HELP)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help=OVERWRITE_HELP)] = False,
) -> None:
    """Bayesian optimisation of the reward weights w1, w2 (Optuna, Gaussian-process sampler).

    Maximises the held-out serum B12 gain of the trained policy over the control arm subject
    to a Bray–Curtis limit (or the two-objective Pareto front). Writes OUT/tune/ (trials.csv,
    pareto.csv/.png, best.json, the study and each trial's checkpoint); `biofluxopt trial`
    with the same OUT and config reuses it.
    """
    from biofluxopt.trial import run_tune

    cfg, seed = _load(config, preset, workers, seed)
    doc = _run(run_tune, cfg, out, seed=seed, workers=workers, storage=storage, overwrite=overwrite)
    best = doc["best"]
    console.print(
        f"best weights: w1 = {best['w1']:.4g}, w2 = {best['w2']:.4g} "
        f"(validation gain {best['gain_pct_vs_control']:+.4g} % vs control, Bray–Curtis "
        f"{best['bray_curtis_mean']:.4g}, feasible: {best['feasible']})"
    )
    console.print(f"[green]wrote[/] {escape(str(out))}/tune")


def _print(results: dict) -> None:
    from rich.table import Table

    table = Table(title=f"end of trial ({results['n_patients']} patients, paired)")
    for col in ("arm", "n", "serum B12 (pmol/L)", "Bray–Curtis", "Shannon"):
        table.add_column(col, justify="left" if col == "arm" else "right")
    for name, arm in results["arms"].items():
        table.add_row(
            name,
            str(arm["n_patients"]),
            f"{arm['serum_b12_end_pmol_l_mean']:.1f}",
            f"{arm['bray_curtis_mean']:.4f}",
            f"{arm['shannon_end_mean']:.3f}",
        )
    console.print(table)
    g = results["b12_gain_pct_vs_control"]

    def fmt(x):
        return "—" if x is None else f"{x:.3g}"

    console.print(
        f"BioFluxOpt vs control: {g['mean']:+.4f} % serum B12 (95 % CI {g['ci95_low']:+.4f} to "
        f"{g['ci95_high']:+.4f}; paired t p = {fmt(g['p_paired_t'])}, Wilcoxon p = "
        f"{fmt(g['p_wilcoxon'])}); across parameter draws {fmt(g['model_uncertainty_low'])} to "
        f"{fmt(g['model_uncertainty_high'])} %. The seed paper claimed +"
        f"{results['seed_claim_pct']:g} %."
    )
    frac = results["oracle_fraction"]
    console.print(
        "oracle_fraction: "
        + ("undefined (the oracle gains nothing)" if frac is None else f"{frac:.3f}")
    )
    h = results["hyperscore"]
    console.print(f"HyperScore {h['value']:.1f} (V = {h['V']:.3f})")


def register(app: typer.Typer) -> None:
    """Attach ``tune`` and ``trial`` to the root ``app``."""
    app.command("tune")(tune_command)
    app.command("trial")(trial_command)
