"""Synthetic-cohort benchmark on three real cohorts of different technologies: subject-grouped
K-fold cross-validation, GAN (raw and near-copy-filtered) vs baselines, over seeds.

Cohorts (all shipped in ``biofluxopt.data``; 100 most prevalent taxa each):

* ``hmp_v35``: HMP1 stool, 16S V3–V5 read counts (``load_hmp()``, 306 samples, 208 subjects);
* ``hmp_v13``: HMP1 stool, 16S V1–V3 read counts (``load_hmp("v13")``, 171 samples, 136
  subjects): other primers, other depth;
* ``atlas``: HITChip Atlas, microarray signal (``load_hitchip_atlas()``, 1,151 samples, 1,006
  subjects), trained as relative abundances (no read sampling; its closed integer signal is
  found on a per-sample lattice, so the GAN renders draws in whole signal units).

Prints ONE JSON line (and, on stderr, a Markdown table of the headline figures). Every figure
is measured in this run. Each cohort's samples are dealt into ``--folds`` subject-grouped folds
(:func:`biofluxopt.data.subject_kfold`, split seed 0; every sample is held out exactly once);
per fold the GAN (default options: every data-dependent default is derived from the fold's
training samples; subjects passed as ``groups``) is fitted with ``--seeds`` seeds, and each
fit is scored twice against that fold's held-out samples:

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
of an excess over 5 %; the no-memorisation goal is judged on it). The Shannon goal holds when
|Δ mean Shannon| ≤ 0.05 *or* it is within the real-split floor: at most the SD over folds of
the real training set's own Δ mean Shannon (how much two real halves of the cohort differ).

No option was chosen on these held-out folds: the GAN's data-dependent defaults are computed
from each fold's training samples at fit time (docs/synth.md).

Usage: ``python benchmarks/bench_synth.py [--cohorts hmp_v35,hmp_v13,atlas] [--folds 3]
[--seeds 1] [--workers 2]`` (about 6–10 minutes on 2 shared cores with the defaults; every fit
runs in one of ``--workers`` processes with one torch thread).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from scipy.stats import binomtest

from biofluxopt._util import to_jsonable
from biofluxopt.data import load_hitchip_atlas, load_hmp, subject_kfold
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
COHORTS = {
    # name: (loader, subject column, read counts?)
    "hmp_v35": (lambda: load_hmp("v35"), "subject_rsid", True),
    "hmp_v13": (lambda: load_hmp("v13"), "subject_rsid", True),
    "atlas": (load_hitchip_atlas, "subject", False),
}


@functools.cache
def _folds(cohort: str, n_folds: int):
    load, subject_column, _ = COHORTS[cohort]
    table = load().filter(max_taxa=N_TAXA)
    return subject_kfold(table, n_splits=n_folds, subject_column=subject_column, seed=SPLIT_SEED)


def _fold(cohort: str, n_folds: int, k: int):
    """(train, held-out) AbundanceTables of fold ``k`` of ``cohort``."""
    return _folds(cohort, n_folds)[k]


def _fit_input(cohort: str, table) -> np.ndarray:
    """Read counts for sequenced cohorts (read sampling), closed rows otherwise."""
    return (table.counts_or_values if COHORTS[cohort][2] else table.to_relative()).to_numpy()


def _subjects(cohort: str, table) -> np.ndarray:
    return table.sample_metadata[COHORTS[cohort][1]].astype(str).to_numpy()


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
    cohort: str,
    n_folds: int,
    fold: int,
    seed: int,
    iterations: int,
    n_synthetic: int,
    quantile: float,
    copy_penalty: float,
    gan_options: dict | None = None,
) -> list[dict]:
    """Fit one GAN; score its raw and its filtered draws (worker: one torch thread)."""
    import torch

    torch.set_num_threads(1)
    train, test = _fold(cohort, n_folds, fold)
    x_train, x_test = train.to_relative().to_numpy(), test.to_relative().to_numpy()
    groups = _subjects(cohort, train)
    t0 = time.perf_counter()
    options = {"iterations": iterations, "copy_penalty": copy_penalty, **(gan_options or {})}
    gan = CompositionWGAN(**options, random_state=seed).fit(
        _fit_input(cohort, train), groups=groups
    )
    fit_s = time.perf_counter() - t0
    near_copy = NearCopyFilter(quantile=quantile).fit(x_train, groups=groups)
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
            richness_scale=gan.richness_scale_,
            min_abundance=gan.min_abundance_,
            gate_calibration=gan.gate_calibration_,
        ),
        _scored("gan_raw", fold, seed, raw, x_test, x_train, fit_s=fit_s),
    ]


def baseline_job(
    cohort: str, n_folds: int, fold: int, n_seeds: int, n_synthetic: int
) -> list[dict]:
    """DM and bootstrap over sampling seeds, and the real floor, for one fold."""
    train, test = _fold(cohort, n_folds, fold)
    x_train, x_test = train.to_relative().to_numpy(), test.to_relative().to_numpy()
    t0 = time.perf_counter()
    dm = DirichletMultinomial().fit(_fit_input(cohort, train))
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


def goals(agg: dict, n_better: list[int], floor: dict) -> dict:
    """Goals on the CV mean (memorisation: pooled over all runs). ``floor``: the real
    training set's aggregate; the Shannon goal also holds within its fold-to-fold spread."""
    cv = {k: v["cv"]["mean"] for k, v in agg.items() if k != "memorisation_pooled"}
    shannon_floor = floor["delta_mean_shannon"]["cv"]["sd_folds"]
    return {
        "abs_delta_mean_sparsity": abs(cv["delta_mean_sparsity"])
        <= GOALS["abs_delta_mean_sparsity"],
        "abs_delta_mean_shannon": abs(cv["delta_mean_shannon"]) <= GOALS["abs_delta_mean_shannon"],
        "abs_delta_mean_shannon_within_real_floor": abs(cv["delta_mean_shannon"]) <= shannon_floor,
        "c2st_auc": cv["c2st_auc"] <= GOALS["c2st_auc"],
        "families_better_than_dm": float(np.mean(n_better)) >= GOALS["families_better_than_dm"],
        "no_memorisation": not agg["memorisation_pooled"]["memorised"],
    }


def cohort_report(cohort: str, runs: list[dict], args) -> dict:
    """Aggregates, ratios and goals of one cohort's runs."""
    by_kind = {
        kind: [r for r in runs if r["kind"] == kind]
        for kind in ("gan", "gan_raw", "dm", "bootstrap", "real_floor")
    }
    dm_by_key = {(r["fold"], r["seed"]): r for r in by_kind["dm"]}
    floor_by_fold = {r["fold"]: r for r in by_kind["real_floor"]}
    agg = {kind: cv_and_runs(rs) for kind, rs in by_kind.items()}
    gan = by_kind["gan"]
    out = {
        "n_train": [r["n_train"] for r in by_kind["real_floor"]],
        "n_heldout": [r["n_heldout"] for r in by_kind["real_floor"]],
        "n_gan_fits": len(gan),
        **agg,
    }
    for kind in ("gan", "gan_raw"):
        vs_dm, n_better = ratios(by_kind[kind], dm_by_key, lambda g: (g["fold"], g["seed"]))
        vs_floor, _ = ratios(by_kind[kind], floor_by_fold, lambda g: g["fold"])
        out[f"{kind}_over_dm"] = vs_dm
        out[f"{kind}_over_real_floor"] = {f: vs_floor[f] for f in FAMILIES}
        out[f"goals_{kind}_on_cv_mean"] = goals(agg[kind], n_better, agg["real_floor"])
        out[f"goals_{kind}_runs_meeting"] = runs_meeting(by_kind[kind], n_better)
    fit_s = [r["fit_s"] for r in gan]

    def mean_sd(values):
        values = np.asarray(values, dtype=float)
        if not len(values):  # e.g. gate_calibration=false: nothing recorded
            return None
        return {"mean": _r(values.mean()), "sd": _r(values.std(ddof=1)) if len(values) > 1 else 0.0}

    calib = [r["gate_calibration"] for r in gan if r["gate_calibration"]]
    out.update(
        {
            "data_derived_defaults": {
                "richness_scale": mean_sd([r["richness_scale"] for r in gan]),
                "min_abundance": [float(r["min_abundance"]) for r in gan],
            },
            "gate_calibration_taxon_presence_mean_abs_delta": {
                "before": mean_sd([c["before"]["taxon_presence_mean_abs_delta"] for c in calib]),
                "after": mean_sd([c["after"]["taxon_presence_mean_abs_delta"] for c in calib]),
            },
            "near_copy_filter": {
                "threshold_braycurtis": mean_sd([r["filter_threshold"] for r in gan]),
                "raw_fraction_rejected": mean_sd([r["raw_fraction_rejected"] for r in gan]),
                "seconds_per_500": _r(
                    np.mean([r["filter_s"] for r in gan]) * 500 / args.n_synthetic
                ),
            },
            "gan_fit_seconds": mean_sd(fit_s),
            "gan_ms_per_iteration": round(1000 * float(np.mean(fit_s)) / args.iterations, 2),
            "gan_fit_over_budget": round(max(fit_s) / FIT_BUDGET_S, 3),
        }
    )
    return out


def markdown(report: dict) -> str:
    """The headline table of docs/synth.md: CV mean ± SD over folds per cohort."""

    def cell(agg, key, signed=True):
        v = agg[key]["cv"]
        return (
            f"{v['mean']:+.3f} ± {v['sd_folds']:.3f}"
            if signed
            else (f"{v['mean']:.3f} ± {v['sd_folds']:.3f}")
        )

    rows = [
        "| cohort | sampler | Δ mean sparsity | Δ mean Shannon | C2ST AUC | flagged "
        "(pooled, p; runs memorised) |",
        "|---|---|---|---|---|---|",
    ]
    for cohort, rep in report["cohorts"].items():
        for kind, label in (
            ("gan", "GAN filtered (shipped)"),
            ("gan_raw", "GAN raw"),
            ("dm", "Dirichlet-multinomial"),
            ("bootstrap", "bootstrap"),
            ("real_floor", "real train set (floor)"),
        ):
            agg = rep[kind]
            mem = agg.get("memorisation_pooled")
            mem_cell = (
                f"{mem['fraction_flagged']:.3f}, p = {mem['binomial_p_excess']:.2g}; "
                f"{mem['runs_memorised']}/{mem['n_runs']}"
                if mem
                else "–"
            )
            rows.append(
                f"| {cohort} | {label} | {cell(agg, 'delta_mean_sparsity')} | "
                f"{cell(agg, 'delta_mean_shannon')} | {cell(agg, 'c2st_auc', False)} | "
                f"{mem_cell} |"
            )
    return "\n".join(rows)


def _option(text: str, parser) -> tuple[str, object]:
    """``NAME=VALUE`` → (name, value); VALUE as JSON (numbers, true/false), else a string."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        parser.error(f"--gan-option wants NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cohorts",
        default=",".join(COHORTS),
        help=f"comma-separated subset of {', '.join(COHORTS)}",
    )
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--folds", type=int, default=3, help="subject-grouped CV folds")
    parser.add_argument("--seeds", type=int, default=1, help="GAN / sampling seeds per fold")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--n-synthetic", type=int, default=500)
    parser.add_argument("--near-copy-quantile", type=float, default=0.05)
    parser.add_argument(
        "--copy-penalty",
        type=float,
        default=WGANConfig.copy_penalty,
        help="CompositionWGAN copy_penalty (0 = the GAN without it)",
    )
    parser.add_argument(
        "--gan-option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra CompositionWGAN option for an ablation, e.g. gate_calibration=false "
        "(repeatable; VALUE parsed as JSON, else kept as a string)",
    )
    args = parser.parse_args()
    gan_options = dict(_option(text, parser) for text in args.gan_option)
    cohorts = [c.strip() for c in args.cohorts.split(",") if c.strip()]
    unknown = sorted(set(cohorts) - set(COHORTS))
    if unknown:
        parser.error(f"unknown cohorts {unknown}; choose from {list(COHORTS)}")
    start = time.perf_counter()

    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = {
            cohort: [
                pool.submit(
                    gan_job,
                    cohort,
                    args.folds,
                    k,
                    s,
                    args.iterations,
                    args.n_synthetic,
                    args.near_copy_quantile,
                    args.copy_penalty,
                    gan_options,
                )
                for k in range(args.folds)
                for s in range(args.seeds)
            ]
            + [
                pool.submit(baseline_job, cohort, args.folds, k, args.seeds, args.n_synthetic)
                for k in range(args.folds)
            ]
            for cohort in cohorts
        }
        runs = {cohort: [r for f in fs for r in f.result()] for cohort, fs in futures.items()}
    line = {
        "benchmark": "synth_three_cohorts_cv",
        "folds": args.folds,
        "split_seed": SPLIT_SEED,
        "seeds": args.seeds,
        "n_taxa": N_TAXA,
        "n_synthetic": args.n_synthetic,
        "iterations": args.iterations,
        "near_copy_quantile": args.near_copy_quantile,
        "copy_penalty": args.copy_penalty,
        "gan_options": gan_options,
        "cohorts": {cohort: cohort_report(cohort, rs, args) for cohort, rs in runs.items()},
        "total_seconds": round(time.perf_counter() - start, 1),
    }
    print(markdown(line), file=sys.stderr)
    # Strict JSON on one line: NaN/inf (e.g. an undefined correlation) become null.
    print(json.dumps(to_jsonable(line), allow_nan=False))


if __name__ == "__main__":
    main()
