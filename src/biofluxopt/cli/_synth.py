"""``biofluxopt synth train | sample | evaluate``: synthetic microbiome cohorts.

Heavy libraries (torch, matplotlib, scikit-learn) are imported inside the commands.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from biofluxopt._util import DataError

synth_app = typer.Typer(
    help="Synthetic microbiome cohorts: train a compositional GAN (or a baseline), sample it, "
    "and score samples against held-out real data.",
    no_args_is_help=True,
)
console = Console(stderr=True)

TRAIN_CSV, HELDOUT_CSV = "train.csv", "heldout.csv"


class ModelKind(StrEnum):
    gan = "gan"
    dirichlet_multinomial = "dirichlet-multinomial"
    bootstrap = "bootstrap"


class OrientationOpt(StrEnum):
    auto = "auto"
    samples_by_taxa = "samples_by_taxa"
    taxa_by_samples = "taxa_by_samples"


def register(app: typer.Typer) -> None:
    """Attach the ``synth`` command group to the root ``app``."""
    app.add_typer(synth_app, name="synth")


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    return Progress("[progress.description]{task.description}", BarColumn(),
                    MofNCompleteColumn(), TimeRemainingColumn(), console=console)


def _write_csv(frame, path: Path) -> None:
    from biofluxopt._util import atomic_write_text

    frame.index.name = "sample_id"
    atomic_write_text(path, frame.to_csv(float_format="%.10g"))


@synth_app.command("train")
def train(
    data: Annotated[str, typer.Option("--data", help="Abundance table (CSV/TSV/BIOM), or "
                                      "'hmp' for the shipped HMP1 stool genus table.")],
    out: Annotated[Path, typer.Option("--out", help="Model directory to create.")],
    model: Annotated[ModelKind, typer.Option("--model", help="Generator to fit.")] = (
        ModelKind.gan),
    iterations: Annotated[int, typer.Option("--iterations", min=1,
                                            help="GAN generator updates.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Seeds split, training, noise.")] = 0,
    orientation: Annotated[OrientationOpt, typer.Option("--orientation")] = OrientationOpt.auto,
    metadata: Annotated[Path | None, typer.Option(
        "--metadata", help="Sample metadata CSV/TSV (sample id first).")] = None,
    subject_column: Annotated[str, typer.Option(
        "--subject-column", help="Metadata column grouping samples of one person.")
    ] = "subject_rsid",
    condition_column: Annotated[str | None, typer.Option(
        "--condition-column", help="Metadata column to condition the GAN on.")] = None,
    test_fraction: Annotated[float, typer.Option(
        "--test-fraction", min=0.0, max=0.9, help="Fraction of subjects held out (0 = none).")
    ] = 0.2,
    min_depth: Annotated[float, typer.Option(
        "--min-depth", help="Minimum reads per sample (count tables only).")] = 1000,
    max_taxa: Annotated[int, typer.Option(
        "--max-taxa", min=2, help="Keep the most prevalent taxa.")] = 100,
    relative: Annotated[bool, typer.Option(
        "--relative", help="Treat values as abundances, not read counts (e.g. HITChip "
        "signal): no depth filter, no read sampling.")] = False,
    threads: Annotated[int | None, typer.Option(
        "--threads", min=1, help="torch CPU threads (default: torch's).")] = None,
    near_copy_quantile: Annotated[float, typer.Option(
        "--near-copy-quantile", help="Privacy filter used by 'synth sample': reject synthetic "
        "samples closer to a training sample than this quantile of the training samples' "
        "distances to the nearest other subject (Bray–Curtis), in (0, 1).")] = 0.05,
) -> None:
    """Fit a synthetic-composition model; write it with the train/held-out split to OUT."""
    import torch

    from biofluxopt._util import atomic_output_dir, seed_everything
    from biofluxopt.data import load_hmp, read_table, train_test_split_by_subject
    from biofluxopt.synth import (
        BootstrapSampler,
        CompositionWGAN,
        DirichletMultinomial,
        NearCopyFilter,
    )
    from biofluxopt.synth._checkpoint import save_model

    seed_everything(seed)
    if threads is not None:
        torch.set_num_threads(threads)
    if data == "hmp":
        table = load_hmp(min_reads=int(min_depth))
    else:
        table = read_table(data, orientation=orientation.value, sample_metadata=metadata)
        if table.kind == "counts" and not relative:
            table = table.filter(min_depth=min_depth)
    table = table.filter(max_taxa=max_taxa)
    shallow = table.depth <= 0
    if shallow.any():
        table = table.subset(samples=table.depth.index[~shallow.to_numpy()])
    if test_fraction > 0:
        train_t, test_t = train_test_split_by_subject(
            table, test_fraction=test_fraction, subject_column=subject_column, seed=seed
        )
    else:
        train_t, test_t = table, None
    labels = None
    if condition_column is not None:
        meta = train_t.sample_metadata
        if meta is None or condition_column not in meta:
            raise DataError(f"no sample metadata column {condition_column!r}",
                            source=data, field="--condition-column")
        labels = meta[condition_column].astype(str).tolist()
    x_train = train_t.to_relative()
    # The privacy filter (fitted first: cheap, and a bad quantile fails before training).
    train_meta = train_t.sample_metadata
    subjects = (train_meta[subject_column].astype(str).to_numpy()
                if train_meta is not None and subject_column in train_meta else None)
    near_copy = NearCopyFilter(quantile=near_copy_quantile).fit(x_train, groups=subjects)
    console.print(f"near-copy filter: Bray–Curtis threshold {near_copy.threshold_:.4f} "
                  f"({near_copy_quantile:g} quantile of nearest-other-"
                  f"{'subject' if subjects is not None else 'sample'} distances)")
    # Read counts let the GAN and the DM model sequencing depth; relative tables are used as is.
    is_counts = train_t.kind == "counts" and not relative
    fit_data = train_t.counts_or_values if is_counts else x_train
    console.print(f"training {model.value} on {x_train.shape[0]} samples × "
                  f"{x_train.shape[1]} taxa" + (f", {len(test_t.samples)} held out"
                                                if test_t is not None else ""))
    if model is ModelKind.gan:
        gan = CompositionWGAN(iterations=iterations, seed=seed)
        with _progress() as bar:
            task = bar.add_task("WGAN-GP", total=iterations)
            gan.fit(fit_data, labels, groups=subjects,
                    progress=lambda done, total: bar.update(task, completed=done))
        fitted = gan
    elif model is ModelKind.dirichlet_multinomial:
        fitted = DirichletMultinomial().fit(fit_data)
    else:
        fitted = BootstrapSampler().fit(x_train)
    extra = {"data": str(data), "seed": seed, "read_counts": is_counts, "max_taxa": max_taxa,
             "min_depth": min_depth,
             "test_fraction": test_fraction, "subject_column": subject_column,
             "condition_column": condition_column, "n_train": len(train_t.samples),
             "n_heldout": 0 if test_t is None else len(test_t.samples)}
    with atomic_output_dir(out) as tmp:
        save_model(fitted, tmp, extra=extra, near_copy_filter=near_copy)
        _write_csv(x_train, tmp / TRAIN_CSV)  # also the near-copy filter's reference samples
        if test_t is not None:
            _write_csv(test_t.to_relative(), tmp / HELDOUT_CSV)
        if model is ModelKind.gan:
            _write_csv(gan.history_.set_index("iteration"), tmp / "history.csv")
    console.print(f"[green]wrote[/] {out}")


@synth_app.command("sample")
def sample(
    model_dir: Annotated[Path, typer.Option("--model", help="Directory from 'synth train'.")],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of synthetic samples.")],
    out: Annotated[Path, typer.Option("--out", help="Output CSV (samples × taxa).")],
    seed: Annotated[int, typer.Option("--seed")] = 0,
    condition: Annotated[str | None, typer.Option(
        "--condition", help="Label to condition on (conditioned GANs).")] = None,
    near_copy_filter: Annotated[bool, typer.Option(
        "--near-copy-filter/--no-near-copy-filter",
        help="Reject (and redraw) samples closer to a training sample than the threshold "
        "stored by 'synth train' (privacy; on by default).")] = True,
) -> None:
    """Draw N synthetic compositions from a trained model into a CSV."""
    import pandas as pd

    from biofluxopt._util import seed_everything
    from biofluxopt.synth import CompositionWGAN, sample_filtered
    from biofluxopt.synth._checkpoint import load_model, load_near_copy_filter

    seed_everything(seed)
    fitted, meta = load_model(model_dir)
    if isinstance(fitted, CompositionWGAN):
        def draw(m: int, s: int):
            return fitted.sample(m, seed=s, condition=condition)
    else:
        if condition is not None:
            raise DataError("only GAN models take --condition", field="--condition")

        def draw(m: int, s: int):
            return fitted.sample(m, seed=s)
    if near_copy_filter:
        near_copy = load_near_copy_filter(model_dir, meta, taxa=list(fitted.taxa_))
        if near_copy is None:
            raise DataError("no near-copy filter stored (model trained by an older version): "
                            "retrain, or pass --no-near-copy-filter to sample unfiltered",
                            source=model_dir, field="near_copy_filter")
        x, n_rejected = sample_filtered(draw, n, near_copy, seed=seed)
        console.print(f"near-copy filter: rejected {n_rejected} draws closer than "
                      f"{near_copy.threshold_:.4f} (Bray–Curtis) to a training sample")
    else:
        x = draw(n, seed)
        console.print("[yellow]near-copy filter off[/]: samples may copy training profiles")
    width = len(str(n))
    frame = pd.DataFrame(x, columns=fitted.taxa_,
                         index=[f"synthetic_{i + 1:0{width}d}" for i in range(n)])
    _write_csv(frame, out)
    console.print(f"[green]wrote[/] {n} samples × {x.shape[1]} taxa to {out}")


@synth_app.command("evaluate")
def evaluate(
    real: Annotated[Path, typer.Option("--real", help="Held-out real samples (never trained "
                                       "on).")],
    synthetic: Annotated[Path, typer.Option("--synthetic", help="Synthetic samples CSV.")],
    out: Annotated[Path, typer.Option("--out", help="Metrics JSON to write.")],
    train_path: Annotated[Path | None, typer.Option(
        "--train", help="Training samples, for the memorisation check.")] = None,
    figures: Annotated[Path | None, typer.Option(
        "--figures", help="Figure directory (default: <out>_figures next to the JSON).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Score synthetic samples against held-out real ones (6 metric families + memorisation)."""
    from biofluxopt._util import atomic_write_text, seed_everything
    from biofluxopt.data import read_table
    from biofluxopt.synth import align_columns, evaluate_synthetic
    from biofluxopt.synth._figures import save_figures

    seed_everything(seed)
    real_df = read_table(real).to_relative()
    syn_df = align_columns(real_df, read_table(synthetic).to_relative())
    train_df = None
    if train_path is not None:
        train_df = align_columns(real_df, read_table(train_path).to_relative(), name="train")
    with console.status("computing metrics"):
        metrics = evaluate_synthetic(real_df, syn_df, train_df, seed=seed)
    metrics["inputs"] = {"real": str(real), "synthetic": str(synthetic),
                         "train": None if train_path is None else str(train_path)}
    atomic_write_text(out, json.dumps(metrics, indent=2) + "\n")
    fig_dir = figures or out.with_name(out.stem + "_figures")
    save_figures(real_df.to_numpy(), syn_df.to_numpy(), fig_dir)
    _print_table(metrics)
    console.print(f"[green]wrote[/] {out} and figures in {fig_dir}")


def _print_table(metrics: dict) -> None:
    from rich.table import Table

    table = Table(title="synthetic vs held-out real (score: lower is better)")
    for col in ("family", "score", "detail"):
        table.add_column(col)
    fam = metrics["families"]
    details = {
        "sparsity_sample": f"mean {fam['sparsity_sample']['mean_synthetic']:.3f} vs "
                           f"{fam['sparsity_sample']['mean_real']:.3f} (KS)",
        "sparsity_taxon": f"r = {fam['sparsity_taxon']['pearson_r']:.2f} (mean |Δ|)",
        "shannon": f"mean {fam['shannon']['mean_synthetic']:.3f} vs "
                   f"{fam['shannon']['mean_real']:.3f} (KS)",
        "bray_curtis": "within-set dissimilarities (KS)",
        "spearman": f"{fam['spearman']['n_taxa']} taxa (RMSE)",
        "c2st": f"AUC {fam['c2st']['auc']:.3f} (|AUC − 0.5|)",
    }
    for name, info in fam.items():
        table.add_row(name, f"{info['score']:.3f}", details[name])
    mem = metrics["memorisation"]
    if mem is not None:
        table.add_row("memorisation", f"{mem['fraction_flagged']:.3f}",
                      f"{mem['n_flagged']} flagged (expected ≈ 5 %), "
                      f"{mem['n_near_copies']} near-copies")
    Console().print(table)
