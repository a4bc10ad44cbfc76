"""End-to-end runs of ``biofluxopt train`` and ``biofluxopt evaluate`` on the tiny preset."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch

from biofluxopt.cli import main

EVAL_KEYS = {
    "return_mean",
    "serum_b12_gain_pmol_l_mean",
    "bray_curtis_mean",
    "oracle_fraction",
    "constant_action_margin_pmol_l",
    "env_steps",
    "wall_s",
    "methods",
    "notes",
}
METHODS = {"policy", "no_action", "random", "constant", "oracle"}


def run(args):
    with pytest.raises(SystemExit) as exc:
        main(args)
    return exc.value.code or 0


def _listing(path):
    return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in path.iterdir())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("marl") / "run"
    assert run(["train", "--preset", "tiny", "--out", str(out), "--seed", "2"]) == 0
    return out


def test_train_writes_checkpoint_curve_and_eval(trained):
    names = {p.name for p in trained.iterdir()}
    assert {
        "checkpoint.safetensors",
        "learning_curve.csv",
        "learning_curve.png",
        "eval.json",
        "baselines.json",
        "baselines.png",
    } <= names
    curve = pd.read_csv(trained / "learning_curve.csv")
    assert list(curve["iteration"]) == [1, 2, 3]  # the tiny preset's 3 iterations
    assert (trained / "learning_curve.png").stat().st_size > 1000
    doc = json.loads((trained / "eval.json").read_text())
    assert EVAL_KEYS <= set(doc)
    assert set(doc["methods"]) == METHODS
    assert doc["env_steps"] == 3 * 8 * 2  # iterations × patients × weekly steps
    assert doc["seed"] == 2 and doc["eval_patients"] == 4
    assert doc["return_mean"] == doc["methods"]["policy"]["return_mean"]
    m = doc["methods"]
    # the oracle starts from no action and keeps its best iterate
    assert m["oracle"]["return_mean"] >= m["no_action"]["return_mean"] - 1e-9
    frac = doc["oracle_fraction"]
    if frac is None:
        assert any("oracle_fraction is undefined" in n for n in doc["notes"])
    else:
        gain = m["oracle"]["return_mean"] - m["no_action"]["return_mean"]
        want = (m["policy"]["return_mean"] - m["no_action"]["return_mean"]) / gain
        assert frac == pytest.approx(want)
    assert doc["constant_action_margin_pmol_l"] == pytest.approx(
        m["policy"]["serum_b12_gain_pmol_l_mean"] - m["constant"]["serum_b12_gain_pmol_l_mean"]
    )
    if m["constant"]["return_mean"] >= m["policy"]["return_mean"]:
        assert any("best constant action does as well" in n for n in doc["notes"])
    assert all(math.isfinite(m[k]["return_mean"]) for k in METHODS)


def test_train_refuses_existing_non_empty_out(trained, capsys):
    before = _listing(trained)
    capsys.readouterr()
    assert run(["train", "--preset", "tiny", "--out", str(trained)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--out" in err and "--overwrite" in err and len(err.splitlines()) == 1
    assert _listing(trained) == before


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("[env]\nn_patients = 4\nepisode_lenght = 14\n", "B12EnvConfig.episode_lenght"),
        ("[env]\nepisode_days = 10\nstep_days = 7\n", "B12EnvConfig.episode_days"),
        ("[ppo]\nclip_coef = 2.0\n", "PPOConfig.clip_coef"),
        ("[baselines]\noracle_grad_steps = -1\n", "BaselineConfig.oracle_grad_steps"),
        ("[evn]\nn_patients = 4\n", "evn"),
    ],
)
def test_bad_config_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, text, field):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    out = tmp_path / "out"
    capsys.readouterr()
    assert run(["train", "--config", str(cfg), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "bad.toml" in err and field in err
    assert not out.exists()


def test_evaluate_on_a_user_cohort_table(trained, tmp_path):
    table = tmp_path / "cohort.csv"
    table.write_text(
        "sample_id,Bacteroides,Faecalibacterium,Escherichia,Lactobacillus,Bifidobacterium,"
        "Akkermansia,Veillonella\n"
        "s1,500,200,10,5,50,20,10\n"
        "s2,300,400,0,0,100,0,30\n"
        "s3,800,100,40,10,0,5,0\n"
    )
    out = tmp_path / "ev"
    assert (
        run(
            [
                "evaluate",
                "--checkpoint",
                str(trained),
                "--compositions",
                str(table),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    doc = json.loads((out / "eval.json").read_text())
    assert EVAL_KEYS <= set(doc) and set(doc["methods"]) == METHODS
    assert doc["eval_patients"] == 3 and doc["eval_split"] == "compositions"
    assert doc["env_steps"] == 3 * 2
    assert (out / "baselines.png").stat().st_size > 1000
    # the constant action is the one found at training time (baselines.json), not a new one
    stored = json.loads((trained / "baselines.json").read_text())["constant_action"]
    assert doc["constant_search"]["log_multipliers"] == stored["log_multipliers"]
    # one patient per sample, each exactly once, in the table's order
    from biofluxopt.marl import B12Env, Policy
    from biofluxopt.marl._workflow import read_cohort

    cohort = read_cohort(table)
    assert cohort.subject_id == ("s1", "s2", "s3")
    env = B12Env(
        Policy.load(trained / "checkpoint.safetensors").env_config.replace(n_patients=3),
        cohort=cohort,
    )
    env.reset(seed=0)
    assert env.patients.subject_id == ("s1", "s2", "s3")
    assert torch.allclose(env._comp0, cohort.composition.to(env._comp0.dtype))


def test_evaluate_refuses_a_corrupted_checkpoint(trained, tmp_path, capsys):
    bad = tmp_path / "bad_ck"
    bad.mkdir()
    data = (trained / "checkpoint.safetensors").read_bytes()
    (bad / "checkpoint.safetensors").write_bytes(data[: len(data) // 2])
    out = tmp_path / "ev"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    capsys.readouterr()
    code = run(["evaluate", "--checkpoint", str(bad), "--out", str(out), "--patients", "2"])
    assert code != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "checkpoint.safetensors" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "mine"


def test_evaluate_refuses_patients_with_compositions(trained, tmp_path, capsys):
    table = tmp_path / "c.csv"
    table.write_text("sample_id,Bacteroides\ns1,5\n")
    capsys.readouterr()
    code = run(
        [
            "evaluate",
            "--checkpoint",
            str(trained),
            "--patients",
            "2",
            "--compositions",
            str(table),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    assert "--patients" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_train_refuses_an_oracle_too_large_for_memory_before_training(
    tmp_path, capsys, monkeypatch
):
    # the tiny preset's rollout fits in 0.05 GB, its oracle gradient (~0.17 GB) does not
    monkeypatch.setenv("BIOFLUXOPT_MAX_MEMORY_GB", "0.05")
    out = tmp_path / "out"
    capsys.readouterr()
    assert run(["train", "--preset", "tiny", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "oracle's gradient" in err
    assert not out.exists()
