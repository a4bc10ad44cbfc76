"""``biofluxopt synth train | sample | evaluate``: synthetic microbiome cohorts.

Heavy libraries (torch, matplotlib, scikit-learn) are imported inside the commands. Every
output is checked before any computation: ``train`` writes a directory through
:func:`~biofluxopt._util.output_directory`; ``sample`` and ``evaluate`` write files, which
must not be directories or inputs and are replaced only with ``--overwrite``.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Iterable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from biofluxopt._util import ConfigError, DataError

synth_app = typer.Typer(
    help="Synthetic microbiome cohorts: train a compositional GAN (or a baseline), sample it, "
    "and score samples against held-out real data.",
    no_args_is_help=True,
)
console = Console(stderr=True, soft_wrap=True)  # one line per message, whatever the width


SHIPPED_COHORTS = {"hmp": "v35", "hmp-v13": "v13", "atlas": None}
"""``synth train --data`` names of the cohorts shipped in ``biofluxopt.data`` (HMP: region)."""

SEED_HELP = "Random seed, 0 to 2**63 - 1 (same seed, same numbers)."
OVERWRITE_HELP = "Replace an existing output written by the same command (never input files)."


class ModelKind(StrEnum):
    gan = "gan"
    dirichlet_multinomial = "dirichlet-multinomial"
    bootstrap = "bootstrap"


class OrientationOpt(StrEnum):
    auto = "auto"
    samples_by_taxa = "samples_by_taxa"
    taxa_by_samples = "taxa_by_samples"


ORIENTATION_HELP = (
    "Layout of delimited tables: auto (from the id-column header or the lineages), "
    "samples_by_taxa or taxa_by_samples. A flag the table contradicts is an error."
)


def register(app: typer.Typer) -> None:
    """Attach the ``synth`` command group to the root ``app``."""
    app.add_typer(synth_app, name="synth")


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def _write_csv(frame, path: Path) -> None:
    from biofluxopt._util import atomic_write_text

    frame.index.name = "sample_id"
    atomic_write_text(path, frame.to_csv(float_format="%.10g"))


@contextlib.contextmanager
def _output_dir(
    path: Path, *, overwrite: bool, command: str, inputs: Iterable[Path | None], option: str
) -> Iterator[Path]:
    """:func:`~biofluxopt._util.output_directory`, with its errors naming ``option``."""
    from biofluxopt._util import output_directory

    def renamed(exc: ConfigError) -> ConfigError:
        return ConfigError(exc.detail, source=exc.source, field=option)

    manager = output_directory(
        path, overwrite=overwrite, command=command, inputs=[p for p in inputs if p is not None]
    )
    try:
        tmp = manager.__enter__()
    except ConfigError as exc:
        if exc.field != "--out":
            raise
        raise renamed(exc) from exc
    try:
        yield tmp
    except BaseException:
        if not manager.__exit__(*sys.exc_info()):
            raise
    else:
        try:
            manager.__exit__(None, None, None)
        except ConfigError as exc:
            if exc.field != "--out":
                raise
            raise renamed(exc) from exc


def _depth_filtered(load):
    """``load()``, with a depth filter that leaves nothing reported against --min-depth."""
    try:
        return load()
    except DataError as exc:
        if exc.field in (None, "min_reads"):  # "no sample has depth >= …"
            raise DataError(exc.detail, source=exc.source, field="--min-depth") from exc
        raise


@synth_app.command("train")
def train(
    data: Annotated[
        str,
        typer.Option(
            "--data",
            help="Abundance table (CSV/TSV/BIOM), or a shipped cohort: 'hmp' (HMP1 stool, 16S "
            "V3–V5), 'hmp-v13' (16S V1–V3) or 'atlas' (HITChip Atlas; subjects from its "
            "'subject' column).",
        ),
    ],
    out: Annotated[
        str,
        typer.Option(
            "--out",
            help="Model directory to create (new or empty; with --overwrite, a model "
            "directory written before).",
        ),
    ],
    model: Annotated[ModelKind, typer.Option("--model", help="Generator to fit.")] = (
        ModelKind.gan
    ),
    iterations: Annotated[
        int,
        typer.Option(
            "--iterations", min=1, help="GAN generator updates (each after 5 critic updates)."
        ),
    ] = 1000,
    seed: Annotated[
        int,
        typer.Option(
            "--seed", help="Seeds the hold-out split, the training and the noise. " + SEED_HELP
        ),
    ] = 0,
    orientation: Annotated[
        OrientationOpt, typer.Option("--orientation", help=ORIENTATION_HELP)
    ] = OrientationOpt.auto,
    metadata: Annotated[
        Path | None,
        typer.Option(
            "--metadata",
            help="Sample metadata CSV/TSV (sample id first); needed for "
            "--subject-column and --condition-column.",
        ),
    ] = None,
    subject_column: Annotated[
        str | None,
        typer.Option(
            "--subject-column",
            help="Metadata column naming the person of each sample (repeated "
            "visits), used by the hold-out split and the near-copy filter. Default: subject_rsid "
            "if the metadata have it, else each sample is its own subject. A named column must "
            "exist.",
        ),
    ] = None,
    condition_column: Annotated[
        str | None,
        typer.Option(
            "--condition-column",
            help="Metadata column to condition the GAN on ('synth sample "
            "--condition LABEL' then draws from one group).",
        ),
    ] = None,
    test_fraction: Annotated[
        float,
        typer.Option(
            "--test-fraction",
            min=0.0,
            max=0.9,
            help="Fraction of subjects held out for 'synth evaluate' (0 = none), 0 to 0.9.",
        ),
    ] = 0.2,
    min_depth: Annotated[
        float,
        typer.Option(
            "--min-depth",
            min=0.0,
            help="Minimum reads per sample (read-count tables and 'hmp'; not with --relative).",
        ),
    ] = 1000,
    max_taxa: Annotated[
        int,
        typer.Option("--max-taxa", min=2, help="Keep this many taxa, the most prevalent first."),
    ] = 100,
    relative: Annotated[
        bool,
        typer.Option(
            "--relative",
            help="Treat values as abundances, not read counts (e.g. HITChip "
            "signal): no depth filter, no read sampling.",
        ),
    ] = False,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            min=1,
            hidden=True,
            help="Ignored: training always runs on one torch "
            "thread, so that the weights do not depend on the machine (kept so that old command "
            "lines still work).",
        ),
    ] = None,
    near_copy_quantile: Annotated[
        float,
        typer.Option(
            "--near-copy-quantile",
            help="Privacy filter used by 'synth sample': reject "
            "synthetic samples closer to a training sample than this quantile of the training "
            "samples' distances to the nearest other subject (Bray–Curtis), in (0, 1).",
        ),
    ] = 0.05,
    overwrite: Annotated[bool, typer.Option("--overwrite", help=OVERWRITE_HELP)] = False,
) -> None:
    """Fit a synthetic-composition model; write it with the train/held-out split to OUT."""
    from biofluxopt._util import check_seed, seed_everything
    from biofluxopt.data import load_hitchip_atlas, load_hmp, read_table
    from biofluxopt.synth import TORCH_THREADS, train_model

    check_seed(seed)
    if not math.isfinite(min_depth):
        raise ConfigError(f"must be a finite number of reads, got {min_depth}", field="--min-depth")
    if not 0.0 < near_copy_quantile < 1.0:
        raise ConfigError(
            f"must be in (0, 1) (e.g. 0.05), got {near_copy_quantile:g}",
            field="--near-copy-quantile",
        )
    if threads is not None:
        console.print(
            f"[yellow]--threads is ignored[/]: training runs on {TORCH_THREADS} "
            "torch thread, so that the weights do not depend on the machine"
        )
    data_path = None if data in SHIPPED_COHORTS else Path(data)
    with _output_dir(
        out,
        overwrite=overwrite,
        command="synth train",
        inputs=[data_path, metadata],
        option="--out",
    ) as tmp:
        seed_everything(seed)
        if data == "atlas":
            table = load_hitchip_atlas()
            subject_column = "subject" if subject_column is None else subject_column
        elif data_path is None:
            region = SHIPPED_COHORTS[data]
            table = _depth_filtered(lambda: load_hmp(region, min_reads=math.ceil(min_depth)))
        else:
            table = read_table(data_path, orientation=orientation.value, sample_metadata=metadata)
        with _progress() as bar, _options_named():
            task = bar.add_task("WGAN-GP", total=iterations, visible=model is ModelKind.gan)
            result = train_model(
                table,
                model=model.value,
                random_state=seed,
                iterations=iterations,
                subject_column="auto" if subject_column is None else subject_column,
                condition_column=condition_column,
                test_fraction=test_fraction,
                min_depth=min_depth,
                max_taxa=max_taxa,
                relative=relative,
                near_copy_quantile=near_copy_quantile,
                record={"data": str(data)},
                progress=lambda done, total: bar.update(task, completed=done),
            )
        for note in result.notes:
            console.print(note)
        console.print(
            f"near-copy filter: Bray–Curtis threshold {result.near_copy_filter.threshold_:.4f} "
            f"({near_copy_quantile:g} quantile of nearest-other-"
            f"{'subject' if result.training['subject_column'] else 'sample'} distances)"
        )
        n_test = result.training["n_heldout"]
        console.print(
            f"trained {model.value} on {result.train.shape[0]} samples × "
            f"{result.train.shape[1]} taxa" + (f", {n_test} held out" if n_test else "")
        )
        result.save(tmp)
    console.print(f"[green]wrote[/] {out}")


CLI_OPTION = {
    "table": "--data",
    "min_depth": "--min-depth",
    "test_fraction": "--test-fraction",
    "subject_column": "--subject-column",
    "condition_column": "--condition-column",
    "near_copy_quantile": "--near-copy-quantile",
    "max_taxa": "--max-taxa",
}
"""``train_model`` argument → the ``synth train`` option that sets it (for error messages)."""


@contextlib.contextmanager
def _options_named() -> Iterator[None]:
    """Re-raise errors of :func:`~biofluxopt.synth.train_model` naming the CLI option."""
    try:
        yield
    except (ConfigError, DataError) as exc:
        if exc.field not in CLI_OPTION:
            raise
        raise type(exc)(exc.detail, source=exc.source, field=CLI_OPTION[exc.field]) from exc


def _sample_bytes(fitted, n: int, filtered: bool) -> int:
    """Estimated peak memory of drawing ``n`` samples and writing them as CSV, in bytes."""
    from biofluxopt.synth import CompositionWGAN

    n_taxa = len(fitted.taxa_)
    draws = (1.25 * n + 8) if filtered else n  # the filter's oversampling
    per_draw = 64 * n_taxa  # float64 copies: draws, closing, filtering, concatenation
    if isinstance(fitted, CompositionWGAN):
        per_draw += 4 * fitted.latent_dim + 24 * fitted.hidden + 32 * n_taxa  # float32 net
    per_sample = 48 * n_taxa  # output frame and CSV text
    return int(draws * per_draw + n * per_sample)


@synth_app.command("sample")
def sample(
    model_dir: Annotated[
        Path, typer.Option("--model", help="Model directory written by 'synth train'.")
    ],
    n: Annotated[
        int,
        typer.Option(
            "--n",
            min=1,
            help="Number of synthetic samples (bounded by the memory limit, "
            "BIOFLUXOPT_MAX_MEMORY_GB).",
        ),
    ],
    out: Annotated[
        str, typer.Option("--out", help="Output CSV file (samples × taxa, rows summing to 1).")
    ],
    seed: Annotated[int, typer.Option("--seed", help=SEED_HELP)] = 0,
    condition: Annotated[
        str | None,
        typer.Option(
            "--condition", help="Label to draw from (GANs trained with --condition-column)."
        ),
    ] = None,
    near_copy_filter: Annotated[
        bool,
        typer.Option(
            "--near-copy-filter/--no-near-copy-filter",
            help="Reject (and redraw) samples closer to a training sample than the threshold "
            "stored by 'synth train' (privacy; on by default).",
        ),
    ] = True,
    overwrite: Annotated[bool, typer.Option("--overwrite", help=OVERWRITE_HELP)] = False,
) -> None:
    """Draw N synthetic compositions from a trained model into a CSV."""
    import pandas as pd

    from biofluxopt._util import check_memory, check_output_file, check_seed, seed_everything
    from biofluxopt.synth import (
        HELDOUT_NAME,
        HISTORY_NAME,
        META_NAME,
        TRAIN_NAME,
        WEIGHTS_NAME,
        CompositionWGAN,
        load_model,
        load_near_copy_filter,
    )

    check_seed(seed)
    out = check_output_file(
        out,
        overwrite=overwrite,
        inputs=[
            model_dir / name
            for name in (META_NAME, WEIGHTS_NAME, TRAIN_NAME, HELDOUT_NAME, HISTORY_NAME)
        ],
    )
    seed_everything(seed)
    fitted, meta = load_model(model_dir)
    check_memory(
        _sample_bytes(fitted, n, near_copy_filter), f"--n {n} (samples of {len(fitted.taxa_)} taxa)"
    )
    if isinstance(fitted, CompositionWGAN):
        if fitted.conditions_ and condition not in fitted.conditions_:
            raise DataError(
                f"this model draws one of {fitted.conditions_}; got {condition!r}",
                source=model_dir,
                field="--condition",
            )
        if not fitted.conditions_ and condition is not None:
            raise DataError(
                "this model was trained without --condition-column",
                source=model_dir,
                field="--condition",
            )
        options = {"condition": condition}
    else:
        if condition is not None:
            raise DataError(
                "only GAN models take --condition", source=model_dir, field="--condition"
            )
        options = {}

    if near_copy_filter:
        near_copy = load_near_copy_filter(model_dir, meta, taxa=list(fitted.taxa_))
        if near_copy is None:
            raise DataError(
                "no near-copy filter stored (model trained by an older version): "
                "retrain, or pass --no-near-copy-filter to sample unfiltered",
                source=model_dir,
                field="near_copy_filter",
            )
        # each model's own redraw rule (the GAN's near_copy_redraw; fresh draws otherwise)
        x, n_rejected = fitted.sample_with_filter(n, near_copy, seed=seed, **options)
        console.print(
            f"near-copy filter: rejected {n_rejected} draws closer than "
            f"{near_copy.threshold_:.4f} (Bray–Curtis) to a training sample"
        )
    else:
        x = fitted.sample(n, seed=seed, **options)
        console.print("[yellow]near-copy filter off[/]: samples may copy training profiles")
    width = len(str(n))
    frame = pd.DataFrame(
        x, columns=fitted.taxa_, index=[f"synthetic_{i + 1:0{width}d}" for i in range(n)]
    )
    _write_csv(frame, out)
    console.print(f"[green]wrote[/] {n} samples × {x.shape[1]} taxa to {out}")


@synth_app.command("evaluate")
def evaluate(
    real: Annotated[
        Path,
        typer.Option("--real", help="Held-out real samples (never trained on), e.g. heldout.csv."),
    ],
    synthetic: Annotated[
        Path, typer.Option("--synthetic", help="Synthetic samples CSV from 'synth sample'.")
    ],
    out: Annotated[str, typer.Option("--out", help="Metrics JSON file to write.")],
    train_path: Annotated[
        Path | None,
        typer.Option("--train", help="Training samples (train.csv), for the memorisation check."),
    ] = None,
    figures: Annotated[
        str | None,
        typer.Option(
            "--figures", help="Figure directory (default: <out>_figures next to the JSON)."
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seeds the classifier two-sample test. " + SEED_HELP)
    ] = 0,
    orientation: Annotated[
        OrientationOpt, typer.Option("--orientation", help=ORIENTATION_HELP)
    ] = OrientationOpt.auto,
    overwrite: Annotated[bool, typer.Option("--overwrite", help=OVERWRITE_HELP)] = False,
) -> None:
    """Score synthetic samples against held-out real ones (6 metric families + memorisation)."""
    from biofluxopt._util import (
        atomic_write_text,
        check_output_file,
        check_seed,
        dumps_json,
        seed_everything,
    )
    from biofluxopt.data import read_table
    from biofluxopt.synth import align_columns, evaluate_synthetic, save_figures

    check_seed(seed)
    inputs = [real, synthetic, train_path]
    out = check_output_file(out, overwrite=overwrite, inputs=inputs)
    fig_dir = out.with_name(out.stem + "_figures") if figures is None else figures
    files = {"real": real, "synthetic": synthetic, "train": train_path}

    def read(path: Path):
        return read_table(path, orientation=orientation.value).to_relative()

    with _output_dir(
        fig_dir, overwrite=overwrite, command="synth evaluate", inputs=inputs, option="--figures"
    ) as tmp:
        seed_everything(seed)
        real_df = read(real)
        try:
            syn_df = align_columns(real_df, read(synthetic))
            train_df = None
            if train_path is not None:
                train_df = align_columns(real_df, read(train_path), name="train")
            with console.status("computing metrics"):
                metrics = evaluate_synthetic(real_df, syn_df, train_df, seed=seed)
        except DataError as exc:
            if exc.source is None and files.get(exc.field) is not None:
                raise DataError(exc.detail, source=files[exc.field]) from exc
            raise
        metrics["inputs"] = {
            "real": str(real),
            "synthetic": str(synthetic),
            "train": None if train_path is None else str(train_path),
        }
        save_figures(real_df.to_numpy(), syn_df.to_numpy(), tmp)
        atomic_write_text(out, dumps_json(metrics))
    _print_table(metrics)
    console.print(f"[green]wrote[/] {out} and figures in {fig_dir}")


def _fmt(value, spec: str) -> str:
    """``value`` formatted with ``spec``; ``n/a`` for a missing or undefined number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if number != number else format(number, spec)


def _print_table(metrics: dict) -> None:
    from rich.table import Table

    table = Table(title="synthetic vs held-out real (score: lower is better)")
    for col in ("family", "score", "detail"):
        table.add_column(col)
    fam = metrics["families"]
    details = {
        "sparsity_sample": f"mean {_fmt(fam['sparsity_sample']['mean_synthetic'], '.3f')} vs "
        f"{_fmt(fam['sparsity_sample']['mean_real'], '.3f')} (KS)",
        "sparsity_taxon": f"r = {_fmt(fam['sparsity_taxon']['pearson_r'], '.2f')} (mean |Δ|)",
        "shannon": f"mean {_fmt(fam['shannon']['mean_synthetic'], '.3f')} vs "
        f"{_fmt(fam['shannon']['mean_real'], '.3f')} (KS)",
        "bray_curtis": "within-set dissimilarities (KS)",
        "spearman": f"{fam['spearman']['n_taxa']} taxa (RMSE)",
        "c2st": f"AUC {_fmt(fam['c2st']['auc'], '.3f')} (|AUC − 0.5|)",
    }
    for name, info in fam.items():
        table.add_row(name, _fmt(info["score"], ".3f"), details[name])
    mem = metrics["memorisation"]
    if mem is not None:
        table.add_row(
            "memorisation",
            _fmt(mem["fraction_flagged"], ".3f"),
            f"{mem['n_flagged']} flagged (expected ≈ 5 %), {mem['n_near_copies']} near-copies",
        )
    Console().print(table)
