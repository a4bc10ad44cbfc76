"""``biofluxopt train`` and ``biofluxopt evaluate``: MAPPO/IPPO on the B12 environment, and an
honest comparison with no action, random actions, the best constant action and an open-loop
oracle on held-out patients (docs/marl.md, "Commands").

Heavy imports (torch, matplotlib) happen inside the commands.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

console = Console(stderr=True, soft_wrap=True)

OUT_HELP = (
    "Output directory: created if missing; an existing non-empty directory is refused unless "
    "it holds the output of the same command and --overwrite is given."
)
OVERWRITE_HELP = (
    "Replace the files an earlier run of this command wrote in OUT (listed in its "
    ".biofluxopt-output.json); other files there are kept."
)
SEED_HELP = "Random seed, 0 to 2**63 - 1 (same seed, same numbers)."


class Algo(StrEnum):
    mappo = "mappo"
    ippo = "ippo"


class Preset(StrEnum):
    default = "default"
    tiny = "tiny"


def _progress(console: Console = console):
    """A rich progress display (description, bar, n/total, an ``info`` field, elapsed) on
    ``console``; the trial commands share it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
    )


def _stage_callback(bar):
    """A ``(stage, done, total)`` callback that shows one bar per baseline stage."""
    tasks: dict[str, int] = {}
    labels = {
        "constant": "best constant (generations)",
        "oracle": "oracle (gradient iterates)",
        "oracle_expected_diet": "oracle on expected intakes (gradient iterates)",
    }

    def on_stage(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(labels.get(stage, stage), total=total, info="")
        bar.update(tasks[stage], completed=done)

    return on_stage


def _print_result(doc: dict) -> None:
    from rich.table import Table

    table = Table(title=f"held-out evaluation ({doc['eval_patients']} patients, same noise)")
    for col in ("method", "return", "serum B12 gain (pmol/L)", "Bray–Curtis"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for name, m in doc["methods"].items():
        table.add_row(
            name,
            f"{m['return_mean']:.4g}",
            f"{m['serum_b12_gain_pmol_l_mean']:.4g}",
            f"{m['bray_curtis_mean']:.4g}",
        )
    console.print(table)
    frac = doc["oracle_fraction"]
    console.print("oracle_fraction: " + ("undefined (see note)" if frac is None else f"{frac:.3f}"))
    margin = doc["constant_action_margin_pmol_l"]
    console.print(f"margin over the best constant action: {margin:+.4g} pmol/L serum B12")
    for note in doc["notes"]:
        console.print(f"[yellow]note:[/] {escape(note)}")


def train_command(
    out: Annotated[str, typer.Option("--out", help=OUT_HELP)],
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Run configuration TOML with [env], [ppo] and [baselines] tables "
            "(docs/marl.md); default: the shipped preset.",
        ),
    ] = None,
    preset: Annotated[
        Preset,
        typer.Option(
            "--preset",
            help="Shipped configuration used without --config: default (a year of standard "
            "supplementation; about 14 minutes on 2 CPU cores, baselines included) or tiny "
            "(seconds; tests and CI).",
        ),
    ] = Preset.default,
    seed: Annotated[int, typer.Option("--seed", help=SEED_HELP)] = 0,
    algo: Annotated[
        Algo | None, typer.Option("--algo", help="Override [ppo] algo: mappo or ippo.")
    ] = None,
    w1: Annotated[
        float | None, typer.Option("--w1", help="Override [env] w1 (weight of B12_Gain), ≥ 0.")
    ] = None,
    w2: Annotated[
        float | None,
        typer.Option("--w2", help="Override [env] w2 (weight of Bray–Curtis loss), ≥ 0."),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help=OVERWRITE_HELP)] = False,
) -> None:
    """Train MAPPO/IPPO agents and compare them with the baselines on held-out patients.

    Writes checkpoint.safetensors, learning_curve.csv/.png, baselines.json/.png and eval.json
    to OUT.
    """
    from biofluxopt._util import ConfigError, check_seed, output_directory
    from biofluxopt.marl import check_oracle_memory, load_run_config, train_workflow

    seed = check_seed(seed)
    if config is not None and preset is not Preset.default:
        raise ConfigError("give either --config or --preset, not both", field="--preset")
    run = load_run_config(config, preset=preset.value)
    try:
        if w1 is not None or w2 is not None:
            changes = {k: v for k, v in (("w1", w1), ("w2", w2)) if v is not None}
            run.env = run.env.replace(**changes)
        if algo is not None:
            run.ppo = run.ppo.replace(algo=algo.value)
    except ConfigError as exc:
        flag = {"B12EnvConfig.w1": "--w1", "B12EnvConfig.w2": "--w2"}.get(exc.field, "--algo")
        raise ConfigError(exc.detail, field=flag) from exc
    bl = run.baselines  # an oracle too large for memory is refused before anything is printed
    check_oracle_memory(run.env, bl.eval_patients, bl.oracle_grad_steps)
    inputs = [config] if config is not None else []
    with output_directory(out, overwrite=overwrite, command="train", inputs=inputs) as tmp:
        console.print(
            f"training [bold]{run.ppo.algo}[/] on {run.env.n_patients} patients × "
            f"{run.ppo.num_iterations} iterations ({escape(Path(run.source).name)}, seed {seed})"
        )
        with _progress() as bar:
            task = bar.add_task("training", total=run.ppo.num_iterations, info="")

            def on_iteration(row: dict) -> None:
                bar.update(
                    task,
                    completed=row["iteration"],
                    info=f"return {row['return_mean']:.4g} · "
                    f"{row['env_steps_per_s']:,.0f} env-steps/s",
                )

            doc = train_workflow(
                run, tmp, seed=seed, on_iteration=on_iteration, on_stage=_stage_callback(bar)
            )
    _print_result(doc)
    console.print(
        f"[green]wrote[/] {escape(str(out))}: checkpoint.safetensors, learning_curve.csv/.png, "
        "baselines.json/.png, eval.json"
    )


def evaluate_command(
    checkpoint: Annotated[
        Path,
        typer.Option("--checkpoint", help="Directory written by `biofluxopt train`."),
    ],
    out: Annotated[str, typer.Option("--out", help=OUT_HELP)],
    patients: Annotated[
        int | None,
        typer.Option(
            "--patients", min=1, help="Fresh held-out patients (default: the training run's)."
        ),
    ] = None,
    compositions: Annotated[
        Path | None,
        typer.Option(
            "--compositions",
            help="Your cohort's abundance table (.csv, .tsv or .biom, genus-level): one "
            "virtual patient per sample.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help=SEED_HELP)] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help=OVERWRITE_HELP)] = False,
) -> None:
    """Score a trained policy and the baselines on fresh held-out patients or your cohort.

    Writes eval.json and baselines.png to OUT.
    """
    from biofluxopt._util import ConfigError, check_seed, output_directory
    from biofluxopt.marl import Policy, checkpoint_file, evaluate_workflow

    seed = check_seed(seed)
    if patients is not None and compositions is not None:
        raise ConfigError("give either --patients or --compositions, not both", field="--patients")
    ck = checkpoint_file(checkpoint)
    Policy.load(ck)  # a corrupted or foreign checkpoint fails here, before any output
    inputs = [ck, *([compositions] if compositions is not None else [])]
    with output_directory(out, overwrite=overwrite, command="evaluate", inputs=inputs) as tmp:
        with _progress() as bar:
            doc = evaluate_workflow(
                ck,
                tmp,
                patients=patients,
                compositions=compositions,
                seed=seed,
                on_stage=_stage_callback(bar),
            )
    _print_result(doc)
    console.print(f"[green]wrote[/] {escape(str(out))}: eval.json, baselines.png")


def register(app: typer.Typer) -> None:
    """Attach ``train`` and ``evaluate`` to the root ``app``."""
    app.command("train")(train_command)
    app.command("evaluate")(evaluate_command)
