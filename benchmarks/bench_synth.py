"""Synthetic-cohort benchmark on HMP1 stool hold-out splits: GAN vs baselines, over seeds.

Prints ONE JSON line. Every figure is measured in this run, over ``--splits`` subject-grouped
train/hold-out splits × ``--seeds`` GAN seeds, and reported as ``{"mean", "sd"}`` over those
runs (baselines and the real floor: over splits × sampling seeds). Ratios compare the GAN with
the Dirichlet-multinomial baseline (``gan_over_dm``: < 1 means the GAN is closer to real) and
with the *real floor*, the real training samples themselves scored against the held-out ones
(what a perfect generator would get with a finite hold-out). Goals are judged on the mean over
runs, and ``runs_meeting`` says in how many single runs each goal held.

Hyper-parameters were chosen on an inner subject-grouped validation split of the training
samples only (docs/synth.md); the hold-out samples are used for these figures alone.

Usage: ``python benchmarks/bench_synth.py [--splits 2] [--seeds 3] [--workers 2]``
(about 3–4 minutes on 2 cores; GAN fits run in ``--workers`` processes of one torch thread).
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from biofluxopt.data import load_hmp, train_test_split_by_subject
from biofluxopt.synth import (
    FAMILIES,
    BootstrapSampler,
    CompositionWGAN,
    DirichletMultinomial,
    compare_families,
    evaluate_synthetic,
)
from biofluxopt.synth._metrics import sparsity

GOALS = {"abs_delta_mean_sparsity": 0.02, "abs_delta_mean_shannon": 0.05, "c2st_auc": 0.75,
         "families_better_than_dm": 4}
FIT_BUDGET_S = 300.0  # "300 samples × ~100 taxa in ≤ 5 minutes on 2 CPU cores"
N_TAXA = 100


def _split(split_seed: int):
    hmp = load_hmp().filter(max_taxa=N_TAXA)  # primary runs, >= 1,000 reads; most prevalent
    return train_test_split_by_subject(hmp, test_fraction=0.2, seed=split_seed)


def summary(metrics: dict, synthetic: np.ndarray) -> dict:
    """Flat named figures of one evaluation (synthetic: the evaluated samples)."""
    fam, mem = metrics["families"], metrics["memorisation"]
    out = {f"score_{f}": fam[f]["score"] for f in FAMILIES}
    out.update({
        "delta_mean_sparsity": fam["sparsity_sample"]["delta_mean"],
        "delta_mean_shannon": fam["shannon"]["delta_mean"],
        "sd_sparsity": float(sparsity(synthetic).std()),
        "c2st_auc_logistic": fam["c2st"]["auc_logistic"],
        "c2st_auc_random_forest": fam["c2st"]["auc_random_forest"],
        "c2st_auc": fam["c2st"]["auc"],
    })
    if mem is not None:
        out.update({
            "memorisation_fraction_flagged": mem["fraction_flagged"],
            "memorisation_binomial_p": mem["binomial_p_excess"],
            "memorisation_n_near_copies": mem["n_near_copies"],
            "memorised": float(mem["memorised"]),
        })
    return out


def gan_run(split_seed: int, seed: int, iterations: int, n_synthetic: int,
            richness_scale: float) -> dict:
    """Fit and score one GAN (runs in a worker process with one torch thread)."""
    import torch

    torch.set_num_threads(1)
    train, test = _split(split_seed)
    x_train, x_test = train.to_relative().to_numpy(), test.to_relative().to_numpy()
    t0 = time.perf_counter()
    gan = CompositionWGAN(iterations=iterations, richness_scale=richness_scale, seed=seed)
    gan.fit(train.counts_or_values.to_numpy())
    fit_s = time.perf_counter() - t0
    synthetic = gan.sample(n_synthetic, seed=seed + 1)
    metrics = evaluate_synthetic(x_test, synthetic, x_train, seed=seed)
    return {"split": split_seed, "seed": seed, "fit_s": fit_s, "metrics": metrics,
            "summary": summary(metrics, synthetic)}


def _mean_sd(values) -> dict:
    v = np.asarray(values, dtype=float)
    return {"mean": round(float(v.mean()), 4), "sd": round(float(v.std(ddof=1)), 4)
            if len(v) > 1 else 0.0}


def aggregate(summaries: list[dict]) -> dict:
    return {k: _mean_sd([s[k] for s in summaries]) for k in summaries[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--splits", type=int, default=2, help="subject-grouped splits 0..N-1")
    parser.add_argument("--seeds", type=int, default=3, help="GAN seeds 0..N-1 per split")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--n-synthetic", type=int, default=500)
    parser.add_argument("--richness-scale", type=float, default=0.75,
                        help="CompositionWGAN richness_scale (0 = the previous, offset-free GAN)")
    args = parser.parse_args()
    start = time.perf_counter()

    jobs = [(sp, sd) for sp in range(args.splits) for sd in range(args.seeds)]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(gan_run, sp, sd, args.iterations, args.n_synthetic,
                               args.richness_scale) for sp, sd in jobs]
        gan_runs = [f.result() for f in futures]

    import torch

    torch.set_num_threads(1)
    dm_runs, boot_runs, floor_runs, dm_fit_s, n_train, n_test = [], [], [], [], [], []
    for sp in range(args.splits):
        train, test = _split(sp)
        x_train, x_test = train.to_relative().to_numpy(), test.to_relative().to_numpy()
        n_train.append(len(x_train))
        n_test.append(len(x_test))
        t0 = time.perf_counter()
        dm = DirichletMultinomial().fit(train.counts_or_values.to_numpy())
        dm_fit_s.append(time.perf_counter() - t0)
        boot = BootstrapSampler().fit(x_train)
        for sd in range(args.seeds):
            for model, runs in ((dm, dm_runs), (boot, boot_runs)):
                synthetic = model.sample(args.n_synthetic, seed=sd + 1)
                m = evaluate_synthetic(x_test, synthetic, x_train, seed=sd)
                runs.append({"split": sp, "seed": sd, "metrics": m,
                             "summary": summary(m, synthetic)})
        m = evaluate_synthetic(x_test, x_train, None, seed=0)
        floor_runs.append({"split": sp, "metrics": m, "summary": summary(m, x_train)})

    # Pair each GAN run with the DM run of the same split and seed.
    dm_by_key = {(r["split"], r["seed"]): r for r in dm_runs}
    floor_by_split = {r["split"]: r for r in floor_runs}
    vs_dm = [compare_families(g["metrics"], dm_by_key[g["split"], g["seed"]]["metrics"])
             for g in gan_runs]
    vs_floor = [compare_families(g["metrics"], floor_by_split[g["split"]]["metrics"])
                for g in gan_runs]
    gan_sums = [g["summary"] for g in gan_runs]
    fit_s = [g["fit_s"] for g in gan_runs]
    gan = aggregate(gan_sums)
    per_run_goals = [{
        "abs_delta_mean_sparsity": abs(s["delta_mean_sparsity"])
        <= GOALS["abs_delta_mean_sparsity"],
        "abs_delta_mean_shannon": abs(s["delta_mean_shannon"]) <= GOALS["abs_delta_mean_shannon"],
        "c2st_auc": s["c2st_auc"] <= GOALS["c2st_auc"],
        "families_better_than_dm": v["n_better"] >= GOALS["families_better_than_dm"],
        "no_memorisation": not s["memorised"],
    } for s, v in zip(gan_sums, vs_dm, strict=True)]
    n_better = [v["n_better"] for v in vs_dm]
    line = {
        "benchmark": "synth_hmp_v35_stool",
        "splits": args.splits, "gan_seeds": args.seeds, "n_runs": len(gan_runs),
        "n_train": n_train, "n_heldout": n_test, "n_taxa": N_TAXA,
        "n_synthetic": args.n_synthetic, "iterations": args.iterations,
        "richness_scale": args.richness_scale,
        "gan": gan,
        "dm": aggregate([r["summary"] for r in dm_runs]),
        "bootstrap": aggregate([r["summary"] for r in boot_runs]),
        "real_floor": aggregate([r["summary"] for r in floor_runs]),
        "gan_over_dm": {f: _mean_sd([v[f]["ratio"] for v in vs_dm]) for f in FAMILIES},
        "gan_over_real_floor": {f: _mean_sd([v[f]["ratio"] for v in vs_floor])
                                for f in FAMILIES},
        "gan_families_better_than_dm": {"mean": round(float(np.mean(n_better)), 2),
                                        "min": int(min(n_better))},
        "gan_fit_seconds": _mean_sd(fit_s),
        "gan_ms_per_iteration": round(1000 * float(np.mean(fit_s)) / args.iterations, 2),
        "gan_fit_over_budget": round(max(fit_s) / FIT_BUDGET_S, 3),
        "gan_fit_over_dm_fit": round(float(np.mean(fit_s)) / max(np.mean(dm_fit_s), 1e-9), 1),
        "goals_on_mean": {
            "abs_delta_mean_sparsity": abs(gan["delta_mean_sparsity"]["mean"])
            <= GOALS["abs_delta_mean_sparsity"],
            "abs_delta_mean_shannon": abs(gan["delta_mean_shannon"]["mean"])
            <= GOALS["abs_delta_mean_shannon"],
            "c2st_auc": gan["c2st_auc"]["mean"] <= GOALS["c2st_auc"],
            "families_better_than_dm": float(np.mean(n_better))
            >= GOALS["families_better_than_dm"],
            "no_memorisation": not any(s["memorised"] for s in gan_sums),
        },
        "runs_meeting": {k: sum(g[k] for g in per_run_goals) for k in per_run_goals[0]},
        "total_seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(line, default=lambda v: bool(v) if isinstance(v, np.bool_) else float(v)))


if __name__ == "__main__":
    main()
