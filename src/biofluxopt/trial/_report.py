"""Statistics, HyperScore, ``results.json`` and ``report.html`` from the stages' files.

Everything here is computed from what the stages wrote, so a resumed trial reports the same
bytes as a fresh one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from biofluxopt._util import atomic_write_text, dumps_json

from ._config import TrialConfig
from ._html import Markup, Report
from ._hyperscore import score, seed_example_check
from ._stats import (
    arm_summary,
    compare_paired,
    ensemble_band,
    gain_regression,
    subgroup_records,
    subgroup_table,
)

#: The seed paper's headline claim (% serum B12 vs standard supplementation), reported next
#: to ours and never used to tune anything.
SEED_CLAIM_PCT = 18.0
#: Serum B12 below this is deficient (pmol/L; Kuzminski et al. 1998 lower reference limit).
DEFICIENT_PMOL_L = 148.0
#: Composition features of the regression: log10 relative abundance of these model taxa.
REGRESSION_TAXA = ("clostridiales", "bacteroidales", "veillonellaceae", "enterobacteriaceae")

ARM_LABELS = {
    "no_intervention": "no intervention",
    "control": "control (standard supplement)",
    "biofluxopt": "BioFluxOpt (control + policy)",
    "constant": "best constant action + control",
    "oracle": "per-patient oracle + control",
    "split_dosing": "control dose split over meals",
    "probiotic": "control + probiotic",
    "high_dose": "high dose",
}


def _write_csv(frame: pd.DataFrame, path: Path, *, index: bool = True) -> None:
    """A report table, written atomically like every other output."""
    atomic_write_text(path, frame.to_csv(index=index, float_format="%.8g", lineterminator="\n"))


def _figure(width=6.4, height=3.6):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.add_subplot(1, 1, 1)


def _clean(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_report(config: TrialConfig, root: Path, store, *, seed: int) -> dict:
    """Compute the statistics and write ``results.json``, ``report.html`` and the tables."""
    root = Path(root)
    outcomes = pd.read_csv(root / "arms" / "outcomes.csv")
    steps = pd.read_csv(root / "arms" / "serum_by_step.csv")
    host = pd.read_csv(root / "cohort" / "host_factors.csv", index_col=0)
    comp = pd.read_csv(root / "cohort" / "compositions.csv", index_col=0)
    arms_doc = json.loads((root / "arms" / "summary.json").read_text())
    tune_doc = json.loads((root / "tune" / "best.json").read_text())
    trials = pd.read_csv(root / "tune" / "trials.csv")
    ens = pd.read_csv(root / "uncertainty" / "ensemble.csv")
    unc = json.loads((root / "uncertainty" / "summary.json").read_text())
    notes = json.loads((root / "cohort" / "notes.json").read_text())["notes"]
    st = config.statistics

    by_arm = {a: f.set_index("patient") for a, f in outcomes.groupby("arm", sort=False)}
    control = by_arm["control"]
    patients = control.index
    # -------------------------------------------------------------- per arm
    arms_out = {}
    for arm in config.arms.arms:
        if arm not in by_arm:
            continue
        f = by_arm[arm]
        summary = arm_summary(
            {
                k: f[k].to_numpy()
                for k in (
                    "serum_b12_pmol_l",
                    "holotc_pmol_l",
                    "mma_umol_l",
                    "hcy_umol_l",
                    "shannon",
                    "bray_curtis",
                )
            }
        )
        arms_out[arm] = {
            "label": ARM_LABELS[arm],
            "n_patients": len(f),
            "serum_b12_end_pmol_l_mean": summary["serum_b12_pmol_l"]["mean"],
            "holotc_end_pmol_l_mean": summary["holotc_pmol_l"]["mean"],
            "mma_end_umol_l_mean": summary["mma_umol_l"]["mean"],
            "hcy_end_umol_l_mean": summary["hcy_umol_l"]["mean"],
            "shannon_end_mean": summary["shannon"]["mean"],
            "bray_curtis_mean": summary["bray_curtis"]["mean"],
            "deficient_share": float((f["serum_b12_pmol_l"] < DEFICIENT_PMOL_L).mean()),
            "summary": summary,
        }
    # -------------------------------------------------------------- comparisons vs control
    comparisons = {}
    for arm, f in by_arm.items():
        if arm == "control" or "@" in arm:
            continue
        # every arm is paired with the control run of its own env (same patients and noise)
        if arm == "oracle" and "control@oracle" not in by_arm:
            continue  # no paired control on the oracle's subset: no comparison
        pair = by_arm.get(f"control@{arm}", control)
        ctrl = pair.loc[f.index, "serum_b12_pmol_l"].to_numpy()
        cmp_ = compare_paired(f["serum_b12_pmol_l"].to_numpy(), ctrl, n_boot=st.n_boot, seed=seed)
        comparisons[arm] = cmp_.to_dict()
    head = by_arm["biofluxopt"].loc[patients]
    headline = compare_paired(
        head["serum_b12_pmol_l"].to_numpy(),
        control["serum_b12_pmol_l"].to_numpy(),
        n_boot=st.n_boot,
        seed=seed,
    )
    drawn = ens[ens["draw"] != "calibrated"]["effect_pct"].to_numpy()
    calibrated_sub = float(ens.loc[ens["draw"] == "calibrated", "effect_pct"].iloc[0])
    band = ensemble_band(drawn) if len(drawn) >= 2 else None
    gain_pct = {
        "mean": headline.pct_change,
        "ci95_low": headline.ci95_bootstrap[0],
        "ci95_high": headline.ci95_bootstrap[1],
        "ci95_t_low": headline.ci95_t[0],
        "ci95_t_high": headline.ci95_t[1],
        "p_paired_t": headline.p_paired_t,
        "p_wilcoxon": headline.p_wilcoxon,
        "cohens_dz": headline.cohens_dz,
        "mean_difference_pmol_l": headline.mean_difference,
        "model_uncertainty_low": None if band is None else band["low"],
        "model_uncertainty_high": None if band is None else band["high"],
        "model_uncertainty_draws": len(drawn),
        "model_uncertainty_patients": unc["patients"],
        "model_uncertainty_calibrated": calibrated_sub,
        "most_influential_parameter": unc["ends"],
    }
    # -------------------------------------------------------------- regression and subgroups
    gain = (
        100.0
        * (head["serum_b12_pmol_l"] - control["serum_b12_pmol_l"])
        / control["serum_b12_pmol_l"]
    )
    factors = pd.DataFrame(index=patients)
    factors["source"] = host.loc[patients, "source"].astype(str)
    for col in ("diet", "intrinsic_factor", "gastric_release", "fut2", "tcn2_776", "mthfr_677"):
        factors[col] = host.loc[patients, col].astype(str)
    factors["log10_b12_intake_ug_per_day"] = np.log10(
        host.loc[patients, "b12_intake_ug_per_day"].astype(float) + 0.01
    )
    factors["baseline_serum_b12_pmol_l"] = control["baseline_serum_b12_pmol_l"]
    c = comp.loc[patients]
    p = c.clip(lower=0)
    factors["baseline_shannon"] = -(p * np.log(p.where(p > 0, 1.0))).sum(1)
    for t in REGRESSION_TAXA:
        factors[f"log10_{t}"] = np.log10(c[t] + 1e-6)
    regression, reg_table = _regression(gain, factors)
    groups = {
        "vegans": (host.loc[patients, "diet"].astype(str) == "vegan").to_numpy(),
        "IF reduced or absent": (host.loc[patients, "intrinsic_factor"] != "normal").to_numpy(),
        "FUT2 non-secretors": (host.loc[patients, "fut2"] == "nonsecretor").to_numpy(),
        f"baseline serum < {st.low_baseline_pmol_l:g} pmol/L": (
            control["baseline_serum_b12_pmol_l"] < st.low_baseline_pmol_l
        ).to_numpy(),
        "real (HMP1)": (factors["source"] == "hmp").to_numpy(),
        "synthetic (GAN)": (factors["source"] == "gan").to_numpy(),
    }
    sub = subgroup_table(
        head["serum_b12_pmol_l"].to_numpy(),
        control["serum_b12_pmol_l"].to_numpy(),
        groups,
        n_boot=min(st.n_boot, 1000),
        seed=seed,
    )
    identity = bool(
        np.array_equal(head["serum_b12_pmol_l"].to_numpy(), control["serum_b12_pmol_l"].to_numpy())
        and np.array_equal(head["bray_curtis"].to_numpy(), control["bray_curtis"].to_numpy())
    )
    if np.array_equal(
        by_arm.get("constant", control)["serum_b12_pmol_l"].to_numpy(),
        control["serum_b12_pmol_l"].to_numpy(),
    ):
        notes = [
            *notes,
            "The best constant action is no action: no single setting of the agents' "
            "activities scored better than the identity on the training patients.",
        ]
    if identity:
        notes = [
            *notes,
            "The BioFluxOpt arm equals the control arm for every patient: the trainer kept "
            "its initial policy (exactly no action) because no trained iterate scored better "
            "on its validation patients. On this model and budget, leaving the microbes alone "
            "is the best policy found.",
        ]
    # -------------------------------------------------------------- HyperScore
    oracle = arms_doc.get("oracle") or {}
    of = oracle.get("oracle_fraction")
    components = {
        "oracle_fraction": 0.0 if of is None else float(min(max(of, 0.0), 1.0)),
        "diversity_retained": float(1.0 - head["bray_curtis"].mean()),
        "responder_share": float((gain > 0).mean()),
        "adequate_status_share": float((head["serum_b12_pmol_l"] >= DEFICIENT_PMOL_L).mean()),
    }
    hs = config.hyperscore
    hyper = score(components, beta=hs.beta, gamma=hs.gamma, kappa=hs.kappa)
    results = {
        "arms": {a: {k: v for k, v in d.items() if k != "summary"} for a, d in arms_out.items()},
        "b12_gain_pct_vs_control": gain_pct,
        "comparisons_vs_control": comparisons,
        "oracle_fraction": of,
        "policy_is_no_action": identity,
        "oracle": oracle or None,
        "weights": {
            "w1": float(tune_doc["best"]["w1"]),
            "w2": float(tune_doc["best"]["w2"]),
            "tuning": tune_doc["best"],
        },
        "hyperscore": {**hyper.to_dict(), "seed_example": seed_example_check()},
        "regression": regression,
        "subgroups": subgroup_records(sub),
        "seed_claim_pct": SEED_CLAIM_PCT,
        "n_patients": len(patients),
        "n_real": int((factors["source"] == "hmp").sum()),
        "n_synthetic": int((factors["source"] == "gan").sum()),
        "control_ug_per_day": config.arms.control_ug_per_day,
        "episode_days": config.env.episode_days,
        "seed": seed,
        "preset": config.preset,
        "notes": notes,
        "config": config.to_dict(),
    }
    results = json.loads(dumps_json(results))
    atomic_write_text(root / "results.json", dumps_json(results) + "\n")
    _write_csv(pd.DataFrame(comparisons).T, root / "comparisons.csv")
    _write_csv(sub, root / "subgroups.csv", index=False)
    files = ["results.json", "report.html", "comparisons.csv", "subgroups.csv"]
    if reg_table is not None:
        _write_csv(reg_table, root / "regression.csv")
        files.append("regression.csv")
    _html(config, root, results, steps, gain, reg_table, trials, ens, band, sub).write(
        root / "report.html"
    )
    store.record(*files)
    return results


#: Factors kept when the cohort is too small for the full design.
CORE_FACTORS = ("baseline_serum_b12_pmol_l", "log10_b12_intake_ug_per_day", "baseline_shannon")


def _regression(gain: pd.Series, factors: pd.DataFrame) -> tuple[dict, pd.DataFrame | None]:
    """The full regression, or the core factors when the cohort is too small for it."""
    from biofluxopt._util import ConfigError

    frame = factors.reset_index(drop=True)
    try:
        reg = gain_regression(gain.to_numpy(), frame)
        return {**reg.to_dict(), "design": "full"}, reg.coefficients
    except ConfigError as full_error:
        try:
            reg = gain_regression(gain.to_numpy(), frame[list(CORE_FACTORS)])
        except ConfigError as exc:
            return {"error": f"{full_error.detail}; core factors: {exc.detail}"}, None
        note = f"too few patients for the full design ({full_error.detail}): core factors only"
        return {**reg.to_dict(), "design": "core", "note": note}, reg.coefficients


def _html(config, root, results, steps, gain, reg_table, trials, ens, band, sub) -> Report:
    g = results["b12_gain_pct_vs_control"]
    r = Report("BioFluxOpt virtual trial")
    r.heading("Headline", 2)
    r.paragraph(
        f"BioFluxOpt (the learned microbial policy on top of {config.arms.control_ug_per_day:g} "
        f"µg/day oral B12) vs the same supplement alone, {results['n_patients']} virtual "
        f"patients ({results['n_real']} held-out real HMP1 compositions, "
        f"{results['n_synthetic']} GAN-made), {config.env.episode_days} days, paired on the "
        "same patients and the same dietary and adherence noise."
    )
    r.key_values(
        {
            "serum B12 change vs control (%)": g["mean"],
            "95 % CI, paired bootstrap": (g["ci95_low"], g["ci95_high"]),
            "95 % CI, t (delta method)": (g["ci95_t_low"], g["ci95_t_high"]),
            "paired t-test p": g["p_paired_t"],
            "Wilcoxon signed-rank p": g["p_wilcoxon"],
            "effect size (Cohen's dz)": g["cohens_dz"],
            "model uncertainty (95 % of parameter draws, %)": (
                g["model_uncertainty_low"],
                g["model_uncertainty_high"],
            ),
            "oracle_fraction": results["oracle_fraction"],
            "the seed paper's claim (%)": results["seed_claim_pct"],
            "weights w1, w2": (results["weights"]["w1"], results["weights"]["w2"]),
            "HyperScore": results["hyperscore"]["value"],
        },
        caption="Headline (what the calibrated model says, whatever it is)",
    )
    r.paragraph(
        "The seed paper reports +18 %. This number is not a target: nothing in the model or "
        "the pipeline was tuned toward it. Colonic microbial B12 is largely not absorbed, and "
        "most faecal corrinoids are analogues, so the microbial lever on serum B12 is small "
        "in this model (docs/validation.md, 'Microbial leverage')."
    )
    r.heading("Arms", 2)
    arm_rows = [
        {
            "arm": d["label"],
            "n": d["n_patients"],
            "serum B12 end (pmol/L)": d["serum_b12_end_pmol_l_mean"],
            "holoTC (pmol/L)": d["holotc_end_pmol_l_mean"],
            "MMA (µmol/L)": d["mma_end_umol_l_mean"],
            "Hcy (µmol/L)": d["hcy_end_umol_l_mean"],
            "Shannon": d["shannon_end_mean"],
            "Bray–Curtis": d["bray_curtis_mean"],
            "% < 148 pmol/L": 100 * d["deficient_share"],
        }
        for d in results["arms"].values()
    ]
    r.table(arm_rows, "End-of-trial means per arm", digits=4)
    cmp_rows = [
        {
            "arm": ARM_LABELS[a],
            "% vs control": c["pct_change"],
            "95 % CI (bootstrap)": tuple(c["ci95_bootstrap"]),
            "95 % CI (t)": tuple(c["ci95_t"]),
            "p (paired t)": c["p_paired_t"],
            "p (Wilcoxon)": c["p_wilcoxon"],
            "dz": c["cohens_dz"],
            "n": c["n"],
        }
        for a, c in results["comparisons_vs_control"].items()
    ]
    r.table(cmp_rows, "Serum B12 at the end, each arm vs control (paired)", digits=3)
    fig, ax = _figure()
    for arm, f in steps.groupby("arm", sort=False):
        ax.plot(f["day"], f["serum_b12_pmol_l_mean"], label=ARM_LABELS.get(arm, arm))
    ax.set_xlabel("day")
    ax.set_ylabel("serum B12, mean (pmol/L)")
    ax.legend(fontsize=7)
    r.figure(fig, "Serum B12 trajectories by arm (the oracle on its subset of patients)")
    fig, ax = _figure()
    ax.hist(gain.to_numpy(), bins=min(30, max(5, len(gain) // 3)), color="tab:blue")
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("per-patient serum B12 change, BioFluxOpt vs control (%)")
    ax.set_ylabel("patients")
    r.figure(fig, "Distribution of the per-patient gain")
    r.heading("Model uncertainty", 2)
    fig, ax = _figure()
    drawn = ens[ens["draw"] != "calibrated"]
    ax.plot(np.arange(len(drawn)), np.sort(drawn["effect_pct"].to_numpy()), "o", label="draws")
    if band is not None:
        ax.axhspan(
            band["low"],
            band["high"],
            color="tab:orange",
            alpha=0.2,
            label="95 % of parameter draws",
        )
    ax.axhspan(
        g["ci95_low"], g["ci95_high"], color="tab:blue", alpha=0.2, label="patient-level 95 % CI"
    )
    ax.set_xlabel("parameter draw (sorted)")
    ax.set_ylabel("effect vs control (%)")
    ax.legend(fontsize=7)
    r.figure(
        fig,
        "Headline effect across parameter draws from the plausible ranges, next to "
        "the patient-level CI",
    )
    ends = g["most_influential_parameter"]
    if ends:
        r.paragraph(
            f"Most influential parameter: {ends['parameter']} ({ends['unit']}); effect at its "
            f"low end {ends['low']['value']:g}: {ends['low']['effect_pct']:.4g} %, at its high "
            f"end {ends['high']['value']:g}: {ends['high']['effect_pct']:.4g} %."
        )
    r.table(ens, "Ensemble draws", digits=4)
    r.heading("Who gains: regression and subgroups", 2)
    if reg_table is not None:
        fig, ax = _figure(6.4, max(3.0, 0.3 * len(reg_table)))
        t = reg_table.drop(index="Intercept", errors="ignore")
        y = np.arange(len(t))
        ax.errorbar(
            t["estimate"],
            y,
            xerr=[t["estimate"] - t["ci95_low"], t["ci95_high"] - t["estimate"]],
            fmt="o",
        )
        ax.axvline(0, color="k", lw=0.8)
        ax.set_yticks(y, list(t.index), fontsize=7)
        ax.set_xlabel("coefficient on per-patient gain (%), 95 % CI (HC3)")
        r.figure(fig, "Regression of the per-patient gain on baseline factors (forest plot)")
        r.table(reg_table, "Regression coefficients (OLS, HC3 robust SE)", digits=4)
    r.table(sub, "Subgroups (BioFluxOpt vs control)", digits=4)
    r.heading("Weights: Bayesian optimisation of w1, w2", 2)
    pareto = root / "tune" / "pareto.png"
    if pareto.is_file():
        r.png(pareto.read_bytes(), "Tuning trials: validation gain vs Bray–Curtis (Pareto front)")
    r.table(trials, "Tuning trials (validation cohort of GAN compositions)", digits=4)
    r.heading("Bayesian network", 2)
    graph = root / "bn" / "graph.png"
    if graph.is_file():
        r.png(
            graph.read_bytes(),
            "Network learned from the simulated cross-sectional cohort; "
            "host factors of the virtual patients are drawn from it",
        )
    r.heading("HyperScore", 2)
    h = results["hyperscore"]
    r.paragraph(
        Markup(
            "HyperScore = 100 × [1 + σ(β·ln V + γ)<sup>κ</sup>], with V the mean of the "
            "normalised metrics below (each in [0, 1])."
        )
    )
    r.key_values(
        {
            "V": h["V"],
            "β": h["beta"],
            "γ": h["gamma"],
            "κ": h["kappa"],
            "HyperScore": h["value"],
            **{f"V component: {k}": v for k, v in h["components"].items()},
        }
    )
    ex = h["seed_example"]
    r.paragraph(
        f"The seed's worked example does not follow from its own formula: with σ = "
        f"{ex['stated_sigma']} and κ = {ex['kappa']}, 100 × (1 + {ex['stated_sigma']}^"
        f"{ex['kappa']}) = {ex['formula_hyperscore']:.1f}, not the stated "
        f"{ex['stated_hyperscore']}."
    )
    if results["notes"]:
        r.heading("Notes", 2)
        for note in results["notes"]:
            r.paragraph(note)
    return r


__all__ = ["SEED_CLAIM_PCT", "write_report"]
