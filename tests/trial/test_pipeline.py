"""End-to-end: ``biofluxopt trial`` / ``tune`` on a tiny config, through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from biofluxopt.cli import main
from biofluxopt.trial import ARMS, load_trial_config

TINY = Path(__file__).with_name("tiny.toml")


def run(args):
    with pytest.raises(SystemExit) as exc:
        main(args)
    return exc.value.code or 0


@pytest.fixture(scope="module")
def trial_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("trial") / "run"
    assert run(["trial", "--config", str(TINY), "--out", str(out), "--seed", "3"]) == 0
    return out


def test_results_json_has_the_documented_fields(trial_dir):
    doc = json.loads((trial_dir / "results.json").read_text())
    assert set(doc["arms"]) == set(ARMS)
    for arm in doc["arms"].values():
        assert {"serum_b12_end_pmol_l_mean", "bray_curtis_mean", "shannon_end_mean"} <= set(arm)
    gain = doc["b12_gain_pct_vs_control"]
    for key in (
        "mean",
        "ci95_low",
        "ci95_high",
        "p_paired_t",
        "p_wilcoxon",
        "model_uncertainty_low",
        "model_uncertainty_high",
    ):
        assert key in gain
    assert gain["ci95_low"] <= gain["mean"] <= gain["ci95_high"]
    assert gain["model_uncertainty_low"] <= gain["model_uncertainty_high"]
    assert "oracle_fraction" in doc
    assert set(doc["weights"]) >= {"w1", "w2"}
    h = doc["hyperscore"]
    assert {"value", "V", "beta", "gamma", "kappa"} <= set(h)
    assert 100.0 < h["value"] <= 200.0 and 0.0 < h["V"] <= 1.0
    assert h["seed_example"]["consistent"] is False
    assert doc["seed_claim_pct"] == 18
    assert doc["n_patients"] == 16 and doc["seed"] == 3
    # the arms are paired: every arm but the oracle ran on all patients
    assert all(a["n_patients"] == 16 for k, a in doc["arms"].items() if k != "oracle")
    assert doc["arms"]["oracle"]["n_patients"] == 3
    # each comparison is paired within one env: the oracle with control on its own subset
    assert set(doc["comparisons_vs_control"]) == set(ARMS) - {"control"}
    assert doc["comparisons_vs_control"]["oracle"]["n"] == 3
    # the high dose raises serum B12 above standard supplementation for everyone on average
    assert (
        doc["arms"]["high_dose"]["serum_b12_end_pmol_l_mean"]
        > doc["arms"]["control"]["serum_b12_end_pmol_l_mean"]
    )


def test_report_is_one_self_contained_page(trial_dir):
    html = (trial_dir / "report.html").read_text()
    assert (
        html.count("data:image/png;base64,") >= 6
    )  # trajectories, gain, uncertainty, forest, Pareto, BN
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert "196.7" in html  # the seed's HyperScore example, recomputed


def test_rerun_reuses_every_stage_and_gives_the_same_bytes(trial_dir, tmp_path, capsys):
    before = (trial_dir / "results.json").read_bytes()
    stamp = (trial_dir / "arms" / "outcomes.csv").stat().st_mtime_ns
    assert run(["trial", "--config", str(TINY), "--out", str(trial_dir), "--seed", "3"]) == 0
    err = capsys.readouterr().err
    for stage in ("cohort", "tune", "baselines", "arms", "uncertainty"):
        assert f"reusing stage {stage}" in err
    assert (trial_dir / "arms" / "outcomes.csv").stat().st_mtime_ns == stamp
    assert (trial_dir / "results.json").read_bytes() == before


def test_interrupted_run_resumes_from_finished_stages(trial_dir, tmp_path, capsys):
    """A run that stopped after the arms (stage records of later stages gone) recomputes only
    what is missing, with the same result."""
    out = tmp_path / "copy"
    shutil.copytree(trial_dir, out)
    for stage in ("uncertainty",):
        (out / "stages" / f"{stage}.json").unlink()
    (out / "results.json").unlink()
    assert run(["trial", "--config", str(TINY), "--out", str(out), "--seed", "3"]) == 0
    err = capsys.readouterr().err
    assert "reusing stage arms" in err and "reusing stage uncertainty" not in err
    assert (out / "results.json").read_bytes() == (trial_dir / "results.json").read_bytes()


def test_changed_inputs_need_overwrite(trial_dir, tmp_path, capsys):
    out = tmp_path / "copy"
    shutil.copytree(trial_dir, out)
    cfg = tmp_path / "changed.toml"
    cfg.write_text(TINY.read_text().replace("oracle_patients = 3", "oracle_patients = 2"))
    before = (out / "results.json").read_bytes()
    assert run(["trial", "--config", str(cfg), "--out", str(out), "--seed", "3"]) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "arms" in err and "Traceback" not in err
    assert (out / "results.json").read_bytes() == before  # nothing lost
    assert (
        run(["trial", "--config", str(cfg), "--out", str(out), "--seed", "3", "--overwrite"]) == 0
    )
    doc = json.loads((out / "results.json").read_text())
    assert doc["arms"]["oracle"]["n_patients"] == 2


def test_bad_config_fails_before_any_work(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[arms]\ncontrol_ug_per_day = -1\n")
    out = tmp_path / "out"
    assert run(["trial", "--config", str(cfg), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bad.toml" in err and "arms.control_ug_per_day" in err
    assert not out.exists()
    cfg.write_text("[tune]\nno_such_key = 1\n")
    assert run(["trial", "--config", str(cfg), "--out", str(out)]) == 2
    assert "tune.no_such_key" in capsys.readouterr().err
    cfg.write_text("[nonsense]\nx = 1\n")
    assert run(["trial", "--config", str(cfg), "--out", str(out)]) == 2
    assert "nonsense" in capsys.readouterr().err


def test_foreign_directory_is_refused(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my data")
    assert run(["trial", "--config", str(TINY), "--out", str(out)]) == 2
    assert "not a trial" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "my data"
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_presets_load_and_quick_is_smaller_than_full():
    quick, full = load_trial_config(preset="quick"), load_trial_config(preset="full")
    assert quick.env.episode_days < full.env.episode_days
    assert quick.tune.n_trials < full.tune.n_trials
    assert full.cohort.n_synthetic == 100  # the seed's 100 novel compositions


def test_same_seed_same_results_json_in_a_fresh_directory(trial_dir, tmp_path):
    out = tmp_path / "again"
    assert run(["trial", "--config", str(TINY), "--out", str(out), "--seed", "3"]) == 0
    assert (out / "results.json").read_bytes() == (trial_dir / "results.json").read_bytes()


def test_tune_command_then_trial_reuses_it(tmp_path, capsys):
    out = tmp_path / "study"
    assert run(["tune", "--config", str(TINY), "--out", str(out), "--seed", "4"]) == 0
    err = capsys.readouterr().err
    assert "best weights: w1 =" in err
    best = json.loads((out / "tune" / "best.json").read_text())["best"]
    assert 0.1 <= best["w1"] <= 100 and 0.01 <= best["w2"] <= 10
    assert (out / "tune" / "pareto.png").stat().st_size > 1000
    assert not (out / "results.json").exists()
    # a second tune reuses the finished study: no trial is repeated
    assert run(["tune", "--config", str(TINY), "--out", str(out), "--seed", "4"]) == 0
    assert "reusing stage tune" in capsys.readouterr().err
