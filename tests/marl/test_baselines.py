"""Baselines on tiny sizes: the constant search and the oracle never lose to no action on
their own objective, they replay the env's own dynamics and reward, and the same seed gives
the same numbers; the yardsticks' guard."""

from __future__ import annotations

import math

import pytest
import torch

from biofluxopt._util import ConfigError
from biofluxopt.marl import B12Env, B12EnvConfig, evaluate_policy
from biofluxopt.marl._baselines import (
    ORACLE_GAIN_FLOOR,
    BaselineConfig,
    ConstantPolicy,
    NoActionPolicy,
    OpenLoopPolicy,
    RandomPolicy,
    baseline_config_from_dict,
    open_loop_oracle,
    replay_returns,
    search_constant_action,
    yardsticks,
)

TINY = B12EnvConfig(n_patients=4, episode_days=14, step_days=7, cpu_threads=1)


def test_constant_search_beats_no_action_on_training_patients_and_is_reproducible():
    env = B12Env(TINY)
    a = search_constant_action(env, seed=3, generations=2, population=4)
    b = search_constant_action(B12Env(TINY), seed=3, generations=2, population=4)
    assert a.train_return_mean >= a.no_action_return_mean
    assert a.evaluations == 8 and a.patients == 4
    assert torch.equal(a.log_multipliers, b.log_multipliers)
    assert a.train_return_mean == b.train_return_mean
    assert a.best_by_generation == sorted(a.best_by_generation)  # best-so-far never drops
    # only activities the taxa have, inside the box
    from biofluxopt.sim import action_mask

    assert not bool(a.log_multipliers[~action_mask()].any())
    assert float(a.log_multipliers.abs().max()) <= math.log(4) + 1e-6
    # the batched replay is the env: no action and the best setting score the same through
    # evaluate_policy (same patients and noise after reset(seed))
    none_env = evaluate_policy(NoActionPolicy(), env, seed=3)["return_mean"]
    best_env = evaluate_policy(ConstantPolicy(a.log_multipliers), env, seed=3)["return_mean"]
    assert none_env == pytest.approx(a.no_action_return_mean, rel=1e-9, abs=1e-12)
    assert best_env == pytest.approx(a.train_return_mean, rel=1e-6, abs=1e-9)
    env.reset(seed=3)
    two = torch.stack([torch.zeros(10, 4), a.log_multipliers.double()])
    r = replay_returns(env, two).mean(1)
    assert float(r[0]) == pytest.approx(none_env, rel=1e-9, abs=1e-12)


def test_oracle_improves_serum_objective_and_matches_the_env():
    # w2 = 0: the objective is the serum gain (minus penalties), which DMB attachment raises
    cfg = TINY.replace(w2=0.0, split="test")
    env = B12Env(cfg)
    a = open_loop_oracle(env, seed=5, grad_steps=1, learning_rate=0.3)
    b = open_loop_oracle(B12Env(cfg), seed=5, grad_steps=1, learning_rate=0.3)
    assert a.actions.shape == (2, 4, 10, 4)
    assert torch.equal(a.actions, b.actions)
    assert torch.equal(a.return_by_patient, b.return_by_patient)
    assert bool((a.return_by_patient >= a.no_action_return_by_patient).all())
    assert float(a.return_by_patient.mean()) > float(a.no_action_return_by_patient.mean())
    assert len(a.return_mean_by_iterate) == 2 and a.wall_s > 0
    # scored by the env on the same patients and noise, the oracle's actions give what the
    # oracle's differentiable replay computed
    scored = evaluate_policy(OpenLoopPolicy(a.actions), env, seed=5)
    none = evaluate_policy(NoActionPolicy(), env, seed=5)
    assert scored["return_mean"] == pytest.approx(float(a.return_by_patient.mean()), rel=1e-6)
    assert none["return_mean"] == pytest.approx(
        float(a.no_action_return_by_patient.mean()), rel=1e-9
    )
    assert scored["serum_b12_gain_pmol_l_mean"] > none["serum_b12_gain_pmol_l_mean"]


def _per_patient_returns(env: B12Env, policy, seed: int) -> torch.Tensor:
    obs, info = env.reset(seed=seed)
    mask = info["action_mask"]
    total = torch.zeros(env.n_patients, dtype=torch.float64)
    for _ in range(env.config.episode_days // env.config.step_days):
        obs, _, _, _, info = env.step(policy.act(obs, mask))
        total += info["team_reward"].to(torch.float64)
    return total


def test_oracle_never_below_no_action_or_its_start_per_patient():
    # the default reward (w1 = w2 = 1), where doing nothing is hard to beat: every patient's
    # oracle return, scored by the env on the same patients and noise, is at least no
    # action's and at least the start setting's; the reported returns are the env's
    env = B12Env(TINY.replace(split="test"))
    start = torch.where(env.activity_mask, 0.2, 0.0)
    res = open_loop_oracle(env, seed=2, grad_steps=1, start=start, line_search=4)
    oracle = _per_patient_returns(env, OpenLoopPolicy(res.actions), 2)
    none = _per_patient_returns(env, NoActionPolicy(), 2)
    const = _per_patient_returns(env, ConstantPolicy(start), 2)
    assert torch.allclose(oracle, res.return_by_patient, rtol=0, atol=1e-9)
    assert torch.equal(none, res.no_action_return_by_patient)
    assert bool((oracle >= none - 1e-9).all()) and bool((oracle >= const - 1e-9).all())
    assert res.return_mean_by_iterate == sorted(res.return_mean_by_iterate)
    assert res.grad_steps <= 1 and len(res.return_mean_by_iterate) == res.grad_steps + 1


def test_random_policy_is_seeded_masked_and_inside_the_box():
    mask = torch.rand(3, 10, 4, generator=torch.Generator().manual_seed(0)) > 0.5
    obs = torch.zeros(3, 10, 38)
    a = RandomPolicy(7).act(obs, mask)
    b = RandomPolicy(7).act(obs, mask)
    c = RandomPolicy(8).act(obs, mask)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not bool(a[~mask].any())
    assert float(a.abs().max()) <= math.log(4) + 1e-6
    assert float(a[mask].std()) > 0.3  # spread over the box, not a constant


def _m(r, g=0.0):
    return {"return_mean": r, "serum_b12_gain_pmol_l_mean": g}


def test_yardsticks_fraction_margin_and_plain_statements():
    methods = {
        "policy": _m(-0.4, 2.0),
        "no_action": _m(-0.5, 0.0),
        "constant": _m(-0.45, 1.5),
        "oracle": _m(-0.3, 3.0),
    }
    frac, margin, as_good, notes = yardsticks(methods)
    assert frac == pytest.approx(0.5)
    assert margin == pytest.approx(0.5)
    assert as_good is False and notes == []
    methods["constant"] = _m(-0.4, 2.5)  # a constant does as well as the policy: said plainly
    frac, margin, as_good, notes = yardsticks(methods)
    assert as_good is True and margin == pytest.approx(-0.5)
    assert any("best constant action does as well as the learned policy" in n for n in notes)
    methods["policy"] = _m(-0.6, 2.0)  # worse than doing nothing: said plainly, fraction < 0
    frac, _, _, notes = yardsticks(methods)
    assert frac == pytest.approx(-0.5)
    assert any("does worse than no action" in n for n in notes)


def test_oracle_fraction_undefined_when_the_oracle_gains_nothing():
    methods = {
        "policy": _m(-0.4),
        "no_action": _m(-0.5),
        "constant": _m(-0.5),
        "oracle": _m(-0.5 + ORACLE_GAIN_FLOOR / 2),
    }
    frac, _, _, notes = yardsticks(methods)
    assert frac is None
    assert any("oracle_fraction is undefined" in n for n in notes)


def test_baseline_config_refuses_unknown_keys_and_impossible_values():
    with pytest.raises(ConfigError, match=r"BaselineConfig\.oracle_steps"):
        baseline_config_from_dict({"oracle_steps": 3}, source="x.toml")
    with pytest.raises(ConfigError, match=r"x\.toml: BaselineConfig\.constant_population"):
        baseline_config_from_dict({"constant_population": 1}, source="x.toml")
    assert BaselineConfig().check().oracle_grad_steps >= 1


def test_oracle_memory_estimate_grows_with_weeks_and_substeps_and_refuses_up_front(monkeypatch):
    from biofluxopt.marl import check_oracle_memory, open_loop_oracle, oracle_memory_bytes

    year = B12EnvConfig(n_patients=32, episode_days=364)
    # covers the measured default-size run (32 patients × 52 weeks: 0.60 GB), not far above
    assert 0.6e9 <= oracle_memory_bytes(year) <= 1.5e9
    half = year.replace(episode_days=182)
    assert oracle_memory_bytes(half) < oracle_memory_bytes(year)
    fine = oracle_memory_bytes(year.replace(substeps_per_day=96))
    assert oracle_memory_bytes(year) < fine < 4 * oracle_memory_bytes(year)
    assert oracle_memory_bytes(year, 8) < oracle_memory_bytes(year, 64)
    monkeypatch.setenv("BIOFLUXOPT_MAX_MEMORY_GB", "0.01")
    check_oracle_memory(year, grad_steps=0)  # no gradient, nothing to hold
    with pytest.raises(ConfigError, match=r"oracle's gradient \(32 patients × 364 days\) needs"):
        check_oracle_memory(year)
    env = B12Env(B12EnvConfig(n_patients=2, episode_days=14, cpu_threads=1))
    with pytest.raises(ConfigError, match="oracle's gradient"):
        open_loop_oracle(env, seed=0, grad_steps=1)
    assert env.day == 0 and env.patients is None  # refused before the env was reset


def test_expected_protocol_keeps_the_patients_and_takes_intakes_at_their_expectation():
    cfg = TINY.replace(supplement_ug_per_day=10.0, adherence=0.5, diet_day_gsd=3.0)
    env = B12Env(cfg)
    env.reset(seed=4)
    real, expected = env.simulator.protocol, env.expected_protocol()
    hab = env.patients.habitual_b12_ug_per_day
    assert expected.food_ug_per_day.shape == real.food_ug_per_day.shape == (4, 14)
    assert torch.equal(expected.food_ug_per_day, hab[:, None].expand(4, 14))
    assert not torch.equal(real.food_ug_per_day, expected.food_ug_per_day)  # realised noise
    assert torch.allclose(expected.oral_ug.sum(-1), torch.full((4, 14), 5.0, dtype=hab.dtype))
    assert set(real.oral_ug.sum(-1).unique().tolist()) <= {0.0, 10.0}  # taken or missed
    assert expected.host is real.host


def test_expected_diet_oracle_is_scored_on_the_realised_noise():
    env = B12Env(TINY.replace(split="test"))
    res = open_loop_oracle(env, seed=2, grad_steps=1, line_search=4, diet="expected")
    again = open_loop_oracle(
        B12Env(TINY.replace(split="test")), seed=2, grad_steps=1, line_search=4, diet="expected"
    )
    assert res.diet == "expected" and torch.equal(res.actions, again.actions)
    lived = _per_patient_returns(env, OpenLoopPolicy(res.actions), 2)
    none = _per_patient_returns(env, NoActionPolicy(), 2)
    assert torch.allclose(lived, res.return_by_patient, rtol=0, atol=1e-9)
    assert torch.equal(none, res.no_action_return_by_patient)
    # its search history is on the expected intakes: no action there is not no action here
    assert res.return_mean_by_iterate[0] != pytest.approx(float(none.mean()), rel=1e-6)
    with pytest.raises(ConfigError, match="diet"):
        open_loop_oracle(env, seed=2, grad_steps=0, diet="average")


def test_without_noise_the_expected_diet_oracle_is_the_oracle():
    # no day-to-day intake noise and full adherence: expected = realised, same plan
    cfg = TINY.replace(split="test", diet_day_gsd=1.0, adherence=1.0, supplement_ug_per_day=5.0)
    a = open_loop_oracle(B12Env(cfg), seed=1, grad_steps=1, line_search=4)
    b = open_loop_oracle(B12Env(cfg), seed=1, grad_steps=1, line_search=4, diet="expected")
    assert torch.allclose(a.actions, b.actions, rtol=0, atol=1e-6)
    assert torch.allclose(a.return_by_patient, b.return_by_patient, rtol=0, atol=1e-9)


def test_expected_diet_fraction_and_its_statement():
    from biofluxopt.marl import expected_diet_fraction

    methods = {"no_action": _m(-0.5), "oracle": _m(-0.4), "oracle_expected_diet": _m(-0.49)}
    frac, notes = expected_diet_fraction(methods)
    assert frac == pytest.approx(0.1)
    assert len(notes) == 1 and "keeps 10.00% of its gain" in notes[0]
    methods["oracle_expected_diet"] = _m(-0.6)  # worse than nothing on the realised noise
    assert expected_diet_fraction(methods)[0] == pytest.approx(-1.0)
    methods["oracle"] = _m(-0.5)  # an oracle without gain: no share to speak of
    assert expected_diet_fraction(methods) == (None, [])


def test_compare_to_baselines_reports_the_expected_diet_oracle_when_asked():
    from biofluxopt.marl import compare_to_baselines

    env = B12Env(TINY.replace(split="test"))
    constant = search_constant_action(B12Env(TINY), seed=0, generations=1, population=2)
    cfg = BaselineConfig(oracle_grad_steps=1, oracle_line_search=2, oracle_expected_diet=True)
    report = compare_to_baselines(env, seed=3, constant=constant, config=cfg)
    assert "oracle_expected_diet" in report.methods
    assert report.oracle_expected_diet is not None
    assert report.oracle_expected_diet.diet == "expected"
    doc = report.to_dict(env)
    assert doc["oracle_expected_diet_search"]["diet"] == "expected"
    assert doc["oracle_search"]["diet"] == "realised"
    plain = compare_to_baselines(
        env,
        seed=3,
        constant=constant,
        config=cfg.__class__(oracle_grad_steps=1, oracle_line_search=2),
    )
    assert "oracle_expected_diet" not in plain.methods
    assert "oracle_expected_diet_fraction" not in plain.to_dict(env)
    with pytest.raises(ConfigError, match=r"BaselineConfig\.oracle_expected_diet"):
        BaselineConfig(oracle_expected_diet=1).check()


def test_gradient_refined_constant_improves_on_the_search_and_is_scored_exactly():
    # w2 = 0: the serum objective, which a small DMB-attachment change raises (as the oracle)
    cfg = TINY.replace(w2=0.0)
    plain = search_constant_action(B12Env(cfg), seed=5, generations=1, population=2)
    env = B12Env(cfg)
    refined = search_constant_action(
        env, seed=5, generations=1, population=2, grad_steps=1, learning_rate=0.3, line_search=4
    )
    again = search_constant_action(
        B12Env(cfg),
        seed=5,
        generations=1,
        population=2,
        grad_steps=1,
        learning_rate=0.3,
        line_search=4,
    )
    assert torch.equal(refined.log_multipliers, again.log_multipliers)
    assert refined.train_return_mean > plain.train_return_mean
    assert refined.evaluations == plain.evaluations + 4
    assert refined.best_by_generation[-1] == refined.train_return_mean
    from biofluxopt.sim import action_mask

    assert not bool(refined.log_multipliers[~action_mask()].any())  # only what taxa have
    scored = evaluate_policy(ConstantPolicy(refined.log_multipliers), env, seed=5)
    assert scored["return_mean"] == pytest.approx(refined.train_return_mean, rel=1e-6)
