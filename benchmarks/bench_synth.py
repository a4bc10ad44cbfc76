"""Synthetic-cohort benchmark on the HMP1 stool hold-out split: GAN vs baselines.

Prints ONE JSON line. Every figure is measured in this run; ratios compare the GAN with the
Dirichlet-multinomial baseline (``gan_over_dm``: < 1 means the GAN is closer to real) and with
the *real floor*, the score of the real training samples themselves against the held-out
samples (what a perfect generator would get, given finite samples).

Usage: ``python benchmarks/bench_synth.py [--iterations 1000] [--threads 1] [--seed 0]``
(about 2 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import time

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

GOALS = {"abs_delta_mean_sparsity": 0.02, "abs_delta_mean_shannon": 0.05, "c2st_auc": 0.75,
         "families_better_than_dm": 4}
FIT_BUDGET_S = 300.0  # "300 samples × ~100 taxa in ≤ 5 minutes on 2 CPU cores"


def summary(metrics: dict) -> dict:
    fam, mem = metrics["families"], metrics["memorisation"]
    out = {f"score_{f}": round(fam[f]["score"], 4) for f in FAMILIES}
    out.update({
        "delta_mean_sparsity": round(fam["sparsity_sample"]["delta_mean"], 4),
        "delta_mean_shannon": round(fam["shannon"]["delta_mean"], 4),
        "mean_sparsity": round(fam["sparsity_sample"]["mean_synthetic"], 4),
        "mean_shannon": round(fam["shannon"]["mean_synthetic"], 4),
        "c2st_auc_logistic": round(fam["c2st"]["auc_logistic"], 4),
        "c2st_auc_random_forest": round(fam["c2st"]["auc_random_forest"], 4),
        "memorisation_n_flagged": mem["n_flagged"],
        "memorisation_fraction_flagged": round(mem["fraction_flagged"], 4),
        "memorisation_binomial_p": round(mem["binomial_p_excess"], 4),
        "memorisation_n_near_copies": mem["n_near_copies"],
        "memorised": mem["memorised"],
    })
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-synthetic", type=int, default=500)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    hmp = load_hmp().filter(max_taxa=100)  # primary runs, >= 1,000 reads; 100 most prevalent
    train, test = train_test_split_by_subject(hmp, test_fraction=0.2, seed=args.seed)
    x_train, x_test = train.to_relative().to_numpy(), test.to_relative().to_numpy()
    counts = train.counts_or_values.to_numpy()

    t0 = time.perf_counter()
    gan = CompositionWGAN(iterations=args.iterations, seed=args.seed).fit(counts)
    gan_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    dm = DirichletMultinomial().fit(counts)
    dm_s = time.perf_counter() - t0
    boot = BootstrapSampler().fit(x_train)

    n, s = args.n_synthetic, args.seed + 1
    results = {
        "gan": evaluate_synthetic(x_test, gan.sample(n, seed=s), x_train, seed=args.seed),
        "dm": evaluate_synthetic(x_test, dm.sample(n, seed=s), x_train, seed=args.seed),
        "bootstrap": evaluate_synthetic(x_test, boot.sample(n, seed=s), x_train, seed=args.seed),
        "real_floor": evaluate_synthetic(x_test, x_train, None, seed=args.seed),
    }
    vs_dm = compare_families(results["gan"], results["dm"])
    vs_floor = compare_families(results["gan"], results["real_floor"])
    gan_sum = summary(results["gan"])
    line = {
        "benchmark": "synth_hmp_v35_stool",
        "n_train": len(x_train), "n_heldout": len(x_test), "n_taxa": x_train.shape[1],
        "n_synthetic": n, "iterations": args.iterations, "threads": args.threads,
        "real_mean_sparsity": round(results["gan"]["families"]["sparsity_sample"]["mean_real"], 4),
        "real_mean_shannon": round(results["gan"]["families"]["shannon"]["mean_real"], 4),
        "gan": gan_sum,
        "dm": summary(results["dm"]),
        "bootstrap": summary(results["bootstrap"]),
        "real_floor": {
            **{f"score_{f}": round(results["real_floor"]["families"][f]["score"], 4)
               for f in FAMILIES},
            "delta_mean_sparsity": round(
                results["real_floor"]["families"]["sparsity_sample"]["delta_mean"], 4),
            "delta_mean_shannon": round(
                results["real_floor"]["families"]["shannon"]["delta_mean"], 4),
        },
        "gan_over_dm": {f: round(vs_dm[f]["ratio"], 3) for f in FAMILIES},
        "gan_over_real_floor": {f: round(vs_floor[f]["ratio"], 3) for f in FAMILIES},
        "gan_families_better_than_dm": vs_dm["n_better"],
        "gan_fit_seconds": round(gan_s, 1),
        "gan_ms_per_iteration": round(1000 * gan_s / args.iterations, 2),
        "gan_fit_over_budget": round(gan_s / FIT_BUDGET_S, 3),
        "gan_fit_over_dm_fit": round(gan_s / max(dm_s, 1e-9), 1),
        "goals": {
            "abs_delta_mean_sparsity": abs(gan_sum["delta_mean_sparsity"])
            <= GOALS["abs_delta_mean_sparsity"],
            "abs_delta_mean_shannon": abs(gan_sum["delta_mean_shannon"])
            <= GOALS["abs_delta_mean_shannon"],
            "c2st_auc": max(gan_sum["c2st_auc_logistic"], gan_sum["c2st_auc_random_forest"])
            <= GOALS["c2st_auc"],
            "families_better_than_dm": vs_dm["n_better"] >= GOALS["families_better_than_dm"],
            "no_memorisation": not gan_sum["memorised"],
        },
    }
    print(json.dumps(line, default=lambda v: bool(v) if isinstance(v, np.bool_) else float(v)))


if __name__ == "__main__":
    main()
