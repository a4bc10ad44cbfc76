"""Synthetic-cohort benchmark on HMP1 stool: subject-grouped K-fold cross-validation, GAN (raw
and near-copy-filtered) vs baselines, over seeds.

Prints ONE JSON line. Every figure is measured in this run. The HMP samples are dealt into
``--folds`` subject-grouped folds (:func:`biofluxopt.data.subject_kfold`, split seed 0; every
sample is held out exactly once); per fold the GAN (default options, subjects passed as
``groups`` for its copy penalty) is fitted with ``--seeds`` seeds, and each fit is scored twice
against that fold's held-out samples:

* ``gan``: the shipped default, ``sample(..., near_copy_filter=f)`` with
  ``f = NearCopyFilter(0.05)`` fitted on the fold's training samples grouped by subject;
* ``gan_raw``: the same model's unfiltered draws.

The baselines (Dirichlet-multinomial, bootstrap-with-noise) are scored with ``--seeds`` sampling
seeds per fold, and ``real_floor`` scores the fold's real *training* samples against its
held-out ones: what a perfect generator of the training distribution would get, i.e. the
hold-out sampling noise.

Per sampler and figure, two summaries:

* ``cv``: the cross-validated estimate — per fold the mean over seeds, then the mean over folds
  (``mean``), with the SD over folds (``sd_folds``). Goals are judged on this mean.
* ``runs``: mean and SD over all single runs (folds × seeds), the spread of one run.

Memorisation is also pooled over all runs (flagged / synthetic samples, one-sided binomial test
of an excess over 5 %; the no-memorisation goal is judged on it), and ``goals_*_runs_meeting``
counts the single runs meeting each goal. ``gan_over_dm`` and ``gan_over_real_floor`` are
per-family score ratios (< 1: the GAN is closer to real), averaged over runs paired by fold
(and seed for the DM).

Hyper-parameters were chosen on inner subject-grouped validation splits of training samples
(docs/synth.md, which also discloses where a hold-out result prompted a new criterion); the
held-out folds are used for these figures alone.

Usage: ``python benchmarks/bench_synth.py [--folds 5] [--seeds 2] [--workers 2]``
(about 6–9 minutes on 2 shared cores; every fit runs in one of ``--workers`` processes with one
torch thread).
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from scipy.stats import binomtest

from biofluxopt._util import to_jsonable
from biofluxopt.data import load_hmp, subject_kfold
from biofluxopt.synth import (
    FAMILIES,
    MEMORISATION_QUANTILE,
    BootstrapSampler,
    CompositionWGAN,
    DirichletMultinomial,
    NearCopyFilter,
    WGANConfig,
    compare_families,
    evaluate_synthetic,
    sparsity,
)

GOALS = {
    "abs_delta_mean_sparsity": 0.02,
    "abs_delta_mean_shannon": 0.05,
    "c2st_auc": 0.75,
    "families_better_than_dm": 4,
}
FIT_BUDGET_S = 300.0  # "300 samples × ~100 taxa in ≤ 5 minutes on 2 CPU cores"
N_TAXA = 100
SPLIT_SEED = 0
SUBJECT_COLUMN = "subject_rsid"


def _fold(n_folds: int, k: int):
    """(train, held-out) AbundanceTables of fold ``k``; HMP primary runs ≥ 1,000 reads."""
    hmp = load_hmp().filter(max_taxa=N_TAXA)
    return subject_kfold(hmp, n_splits=n_folds, subject_column=SUBJECT_COLUMN, seed=SPLIT_SEED)[k]


def _subjects(table) -> np.ndarray:
    return table.sample_metadata[SUBJECT_COLUMN].astype(str).to_numpy()


def summary(metrics: dict, synthetic: np.ndarray) -> dict:
    """Flat named figures of one evaluation (synthetic: the evaluated samples)."""
    fam, mem = metrics["families"], metrics["memorisation"]
    out = {f"score_{f}": fam[f]["score"] for f in FAMILIES}
    out.update(
        {
            "delta_mean_sparsity": fam["sparsity_sample"]["delta_mean"],
            "delta_mean_shannon": fam["shannon"]["delta_mean"],
            "sd_sparsity": float(sparsity(synthetic).std()),
            "c2st_auc_logistic": fam["c2st"]["auc_logistic"],
            "c2st_auc_random_forest": fam["c2st"]["auc_random_forest"],
            "c2st_auc": fam["c2st"]["auc"],
        }
    )
    if mem is not None:
        out.update(
            {
                "memorisation_fraction_flagged": mem["fraction_flagged"],
                "memorisation_binomial_p": mem["binomial_p_excess"],
                "memorisation_n_near_copies": mem["n_near_copies"],
                "memorised": float(mem["memorised"]),
            }
        )
    return out


def _scored(kind: str, fold: int, seed: int, synthetic, x_test, x_train, **extra) -> dict:
    m = evaluate_synthetic(x_test, synthetic, x_train, seed=seed)
    return {
        "kind": kind,
        "fold": fold,
        "seed": seed,
        "metrics": m,
        "summary": summary(m, synthetic),
        **extra,
    }


def gan_job(
    n_folds: int,
    fold: int,
    seed: int,
    iterations: int,
    n_synthetic: int,
    quantile: float,
    copy_penalty: float,
) -> list[dict]:
    """Fit one GAN; score its raw and its filtered draws (worker: one torch thread)."""
    import torch

    torch.set_num_threads(1)
    train, test = _fold(n_folds, fold)
    x_train, x_test = train.to_relative().to_numpy(), test.to_relative().to_numpy()
    t0 = time.perf_counter()
    gan = CompositionWGAN(iterations=iterations, copy_penalty=copy_penalty, seed=seed).fit(
        train.counts_or_values.to_numpy(), groups=_subjects(train)
    )
    fit_s = time.perf_counter() - t0
    near_copy = NearCopyFilter(quantile=quantile).fit(x_train, groups=_subjects(train))
    raw = gan.sample(n_synthetic, seed=seed + 1)
    t0 = time.perf_counter()
    filtered = gan.sample(n_synthetic, seed=seed + 1, near_copy_filter=near_copy)
    filter_s = time.perf_counter() - t0
    return [
        _scored(
            "gan",
            fold,
            seed,
            filtered,
            x_test,
            x_train,
            fit_s=fit_s,
            filter_s=filter_s,
            filter_threshold=near_copy.threshold_,
            raw_fraction_rejected=float((~near_copy.mask(raw)).mean()),
        ),
        _scored("gan_raw", fold, seed, raw, x_test, x_train, fit_s=fit_s),
    ]


def baseline_job(n_folds: int, fold: int, n_seeds: int, n_synthetic: int) -> list[dict]:
    """DM and bootstrap over sampling seeds, and the real floor, for one fold."""
    train, test = _fold(n_folds, fold)
    x_train, x_test = train.to_relative().to_numpy(), test.to_relative().to_numpy()
    t0 = time.perf_counter()
    dm = DirichletMultinomial().fit(train.counts_or_values.to_numpy())
    dm_fit_s = time.perf_counter() - t0
    boot = BootstrapSampler().fit(x_train)
    runs = []
    for seed in range(n_seeds):
        runs.append(
            _scored(
                "dm",
                fold,
                seed,
                dm.sample(n_synthetic, seed=seed + 1),
                x_test,
                x_train,
                fit_s=dm_fit_s,
            )
        )
        runs.append(
            _scored(
                "bootstrap", fold, seed, boot.sample(n_synthetic, seed=seed + 1), x_test, x_train
            )
        )
    floor = evaluate_synthetic(x_test, x_train, None, seed=0)
    runs.append(
        {
            "kind": "real_floor",
            "fold": fold,
            "seed": 0,
            "metrics": floor,
            "summary": summary(floor, x_train),
            "n_train": len(x_train),
            "n_heldout": len(x_test),
        }
    )
    return runs


def _r(v: float) -> float:
    return round(float(v), 4)


def cv_and_runs(runs: list[dict]) -> dict:
    """Per summary key: ``cv`` (fold means of seed means) and ``runs`` (all single runs)."""
    folds = sorted({r["fold"] for r in runs})
    out = {}
    for key in runs[0]["summary"]:
        per_fold = [np.mean([r["summary"][key] for r in runs if r["fold"] == f]) for f in folds]
        every = np.array([r["summary"][key] for r in runs], dtype=float)
        out[key] = {
            "cv": {
                "mean": _r(np.mean(per_fold)),
                "sd_folds": _r(np.std(per_fold, ddof=1)) if len(folds) > 1 else 0.0,
            },
            "runs": {
                "mean": _r(every.mean()),
                "sd": _r(every.std(ddof=1)) if len(every) > 1 else 0.0,
            },
        }
    scored = [r["metrics"] for r in runs if r["metrics"]["memorisation"] is not None]
    if scored:
        mems = [m["memorisation"] for m in scored]
        flagged = sum(m["n_flagged"] for m in mems)
        total = sum(m["n_synthetic"] for m in scored)
        p = binomtest(flagged, total, MEMORISATION_QUANTILE, alternative="greater").pvalue
        out["memorisation_pooled"] = {
            "n_flagged": int(flagged),
            "n_synthetic": int(total),
            "fraction_flagged": _r(flagged / total),
            "binomial_p_excess": float(p),
            "memorised": bool(p < 0.01),
            "runs_memorised": int(sum(m["memorised"] for m in mems)),
            "n_runs": len(mems),
        }
    return out


def ratios(gan_runs, ref_by_key, key_of) -> dict:
    """Per family mean ± SD over runs of score(GAN) / score(reference run paired by key_of)."""
    comps = [compare_families(g["metrics"], ref_by_key[key_of(g)]["metrics"]) for g in gan_runs]
    out = {}
    for f in FAMILIES:
        v = np.array([c[f]["ratio"] for c in comps], dtype=float)
        out[f] = {"mean": _r(v.mean()), "sd": _r(v.std(ddof=1)) if len(v) > 1 else 0.0}
    n_better = [c["n_better"] for c in comps]
    out["n_better"] = {"mean": round(float(np.mean(n_better)), 2), "min": int(min(n_better))}
    return out, n_better


def runs_meeting(runs: list[dict], n_better: list[int]) -> dict:
    """In how many single runs (one fold, one seed) each goal holds."""
    s = [r["summary"] for r in runs]
    return {
        "abs_delta_mean_sparsity": sum(
            abs(x["delta_mean_sparsity"]) <= GOALS["abs_delta_mean_sparsity"] for x in s
        ),
        "abs_delta_mean_shannon": sum(
            abs(x["delta_mean_shannon"]) <= GOALS["abs_delta_mean_shannon"] for x in s
        ),
        "c2st_auc": sum(x["c2st_auc"] <= GOALS["c2st_auc"] for x in s),
        "families_better_than_dm": sum(b >= GOALS["families_better_than_dm"] for b in n_better),
        "no_memorisation": sum(not x["memorised"] for x in s),
        "n_runs": len(s),
    }


def goals(agg: dict, n_better: list[int]) -> dict:
    """Goals on the CV mean (memorisation: pooled over all runs)."""
    cv = {k: v["cv"]["mean"] for k, v in agg.items() if k != "memorisation_pooled"}
    return {
        "abs_delta_mean_sparsity": abs(cv["delta_mean_sparsity"])
        <= GOALS["abs_delta_mean_sparsity"],
        "abs_delta_mean_shannon": abs(cv["delta_mean_shannon"]) <= GOALS["abs_delta_mean_shannon"],
        "c2st_auc": cv["c2st_auc"] <= GOALS["c2st_auc"],
        "families_better_than_dm": float(np.mean(n_better)) >= GOALS["families_better_than_dm"],
        "no_memorisation": not agg["memorisation_pooled"]["memorised"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--folds", type=int, default=5, help="subject-grouped CV folds")
    parser.add_argument("--seeds", type=int, default=2, help="GAN / sampling seeds per fold")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--n-synthetic", type=int, default=500)
    parser.add_argument("--near-copy-quantile", type=float, default=0.05)
    parser.add_argument(
        "--copy-penalty",
        type=float,
        default=WGANConfig.copy_penalty,
        help="CompositionWGAN copy_penalty (0 = the GAN without it)",
    )
    args = parser.parse_args()
    start = time.perf_counter()

    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = [
            pool.submit(
                gan_job,
                args.folds,
                k,
                s,
                args.iterations,
                args.n_synthetic,
                args.near_copy_quantile,
                args.copy_penalty,
            )
            for k in range(args.folds)
            for s in range(args.seeds)
        ]
        futures += [
            pool.submit(baseline_job, args.folds, k, args.seeds, args.n_synthetic)
            for k in range(args.folds)
        ]
        runs = [r for f in futures for r in f.result()]
    by_kind = {
        kind: [r for r in runs if r["kind"] == kind]
        for kind in ("gan", "gan_raw", "dm", "bootstrap", "real_floor")
    }

    dm_by_key = {(r["fold"], r["seed"]): r for r in by_kind["dm"]}
    floor_by_fold = {r["fold"]: r for r in by_kind["real_floor"]}
    agg = {kind: cv_and_runs(rs) for kind, rs in by_kind.items()}
    line = {
        "benchmark": "synth_hmp_v35_stool_cv",
        "folds": args.folds,
        "split_seed": SPLIT_SEED,
        "seeds": args.seeds,
        "n_gan_fits": len(by_kind["gan"]),
        "n_train": [r["n_train"] for r in by_kind["real_floor"]],
        "n_heldout": [r["n_heldout"] for r in by_kind["real_floor"]],
        "n_taxa": N_TAXA,
        "n_synthetic": args.n_synthetic,
        "iterations": args.iterations,
        "near_copy_quantile": args.near_copy_quantile,
        "copy_penalty": args.copy_penalty,
        **agg,
    }
    for kind in ("gan", "gan_raw"):
        vs_dm, n_better = ratios(by_kind[kind], dm_by_key, lambda g: (g["fold"], g["seed"]))
        vs_floor, _ = ratios(by_kind[kind], floor_by_fold, lambda g: g["fold"])
        line[f"{kind}_over_dm"] = vs_dm
        line[f"{kind}_over_real_floor"] = {f: vs_floor[f] for f in FAMILIES}
        line[f"goals_{kind}_on_cv_mean"] = goals(agg[kind], n_better)
        line[f"goals_{kind}_runs_meeting"] = runs_meeting(by_kind[kind], n_better)
    fit_s = [r["fit_s"] for r in by_kind["gan"]]
    dm_fit_s = [r["fit_s"] for r in by_kind["dm"]]
    line.update(
        {
            "near_copy_filter": {
                "threshold_braycurtis": {
                    "mean": _r(np.mean([r["filter_threshold"] for r in by_kind["gan"]])),
                    "sd": _r(np.std([r["filter_threshold"] for r in by_kind["gan"]], ddof=1)),
                },
                "raw_fraction_rejected": {
                    "mean": _r(np.mean([r["raw_fraction_rejected"] for r in by_kind["gan"]])),
                    "sd": _r(np.std([r["raw_fraction_rejected"] for r in by_kind["gan"]], ddof=1)),
                },
                "seconds_per_500": _r(
                    np.mean([r["filter_s"] for r in by_kind["gan"]]) * 500 / args.n_synthetic
                ),
            },
            "gan_fit_seconds": {"mean": _r(np.mean(fit_s)), "sd": _r(np.std(fit_s, ddof=1))},
            "gan_ms_per_iteration": round(1000 * float(np.mean(fit_s)) / args.iterations, 2),
            "gan_fit_over_budget": round(max(fit_s) / FIT_BUDGET_S, 3),
            "gan_fit_over_dm_fit": round(float(np.mean(fit_s)) / max(np.mean(dm_fit_s), 1e-9), 1),
            "total_seconds": round(time.perf_counter() - start, 1),
        }
    )
    # Strict JSON on one line: NaN/inf (e.g. an undefined correlation) become null.
    print(json.dumps(to_jsonable(line), allow_nan=False))


if __name__ == "__main__":
    main()
