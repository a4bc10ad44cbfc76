"""Leverage and sensitivity analysis (sim._sensitivity, sim._report and
`biofluxopt sensitivity`)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from biofluxopt.cli import main
from biofluxopt.sim import (
    ProtocolSpec,
    leverage_scenarios,
    levers,
    local_sensitivity,
    microbial_leverage,
    parameter_table,
    sobol_indices,
)

DAY = 6


@pytest.fixture(scope="module")
def omnivore() -> ProtocolSpec:
    return leverage_scenarios(days=DAY, substeps_per_day=16)["omnivore"]


@pytest.fixture(scope="module")
def local(omnivore):
    return local_sensitivity(omnivore, day=DAY)


def _serum_at(spec: ProtocolSpec, **parameters: float) -> float:
    from biofluxopt.sim._sensitivity import _setting

    setting = _setting(spec, DAY, "cpu")
    params = setting.base_params(1).replace(**parameters)
    with torch.no_grad():
        out, status = setting.evaluate(params, setting.base_log_activity(1))
    assert int(status[0]) == 0
    return float(out["serum_b12_pmol_l"][0])


def test_local_covers_every_parameter_and_activity(local):
    table = local.table
    kinetic = set(table.loc[table["kind"] == "kinetic", "factor"])
    assert kinetic == {p.id for p in parameter_table()}
    acts = set(table.loc[table["kind"] == "activity", "factor"])
    assert acts == {f"{a}.{b}" for a, b in levers()}
    assert np.isfinite(table.filter(like="d_").to_numpy()).all()
    swings = table["swing_serum_b12_pmol_l"].abs().to_numpy()
    assert (np.diff(swings) <= 1e-12).all(), "rows are sorted by |serum swing|"
    assert local.day == DAY
    assert set(local.nominal) == {"serum_b12_pmol_l", "mma_umol_l"}
    assert local.nominal["serum_b12_pmol_l"] == pytest.approx(
        _serum_at(leverage_scenarios(days=DAY, substeps_per_day=16)["omnivore"])
    )


def test_activity_derivatives_match_finite_differences(omnivore, local):
    """The lever index puts each multiplier's derivative on its own row: perturbing one
    lever's log multiplier moves serum B12 by its reported ∂y/∂ln m."""
    from biofluxopt.sim._leverage import lever_index
    from biofluxopt.sim._sensitivity import _setting

    table = local.table.set_index("factor")
    acts = local.table[local.table["kind"] == "activity"]
    factor = acts.iloc[0]["factor"]  # the most influential lever
    agent, activity = factor.split(".")
    setting = _setting(omnivore, DAY, "cpu")
    a, b = (int(i[0]) for i in lever_index([(agent, activity)]))
    h = 1e-4
    serum = []
    for sign in (1, -1):
        log_act = setting.base_log_activity(1)
        log_act[0, a, b] += sign * h
        with torch.no_grad():
            out, _ = setting.evaluate(setting.base_params(1), log_act)
        serum.append(float(out["serum_b12_pmol_l"][0]))
    fd = (serum[0] - serum[1]) / (2 * h)
    assert table.loc[factor, "d_serum_b12_pmol_l"] == pytest.approx(fd, rel=1e-4, abs=1e-9)
    assert abs(fd) > 0, "the most influential lever moves serum B12"


def test_autograd_matches_finite_differences(omnivore, local):
    row = local.table[local.table["kind"] == "kinetic"].iloc[0]  # the most influential
    p, h = row["nominal"], 1e-4 * row["nominal"]
    fd = (
        _serum_at(omnivore, **{row["factor"]: p + h})
        - _serum_at(omnivore, **{row["factor"]: p - h})
    ) / (2 * h)
    assert row["d_serum_b12_pmol_l"] == pytest.approx(fd, rel=1e-4)


def test_leverage_bounds_and_corners(omnivore, local):
    lev = microbial_leverage(omnivore, day=DAY, local=local, n_random_corners=4, seed=1)
    assert lev.serum_worst_pmol_l <= lev.serum_identity_pmol_l <= lev.serum_best_pmol_l
    assert lev.gain_pmol_l == pytest.approx(lev.serum_best_pmol_l - lev.serum_identity_pmol_l)
    assert set(lev.best_multipliers.values()) <= {0.25, 4.0}
    assert lev.n_corners == 4 + 4


def test_no_leverage_without_agents(local):
    """A community of only the background guild gives the agents nothing to act on. (The
    omnivore's local sensitivities only pick the signed corner; every corner must be inert.)"""
    spec = ProtocolSpec.model_validate(
        {"days": DAY, "substeps_per_day": 16, "microbiome": {"other": 1.0}}
    )
    lev = microbial_leverage(spec, day=DAY, local=local, n_random_corners=2)
    assert lev.n_corners == 2 + 4
    assert lev.gain_pmol_l == pytest.approx(0.0, abs=1e-9)
    assert lev.loss_pmol_l == pytest.approx(0.0, abs=1e-9)


def test_sobol_indices_rank_an_inert_factor_last(omnivore, local):
    """Streptomyces is absent from the default community: its multipliers cannot matter."""
    res = sobol_indices(omnivore, local, top_k=2, n_base=16, seed=0)
    idx = res.indices.set_index("factor")
    top = local.table[local.table["kind"] == "kinetic"].iloc[0]["factor"]
    assert idx.loc[top, "ST_serum_b12_pmol_l"] > 0.05
    inert = idx.loc["streptomyces.de_novo_synthesis"]
    assert abs(inert["ST_serum_b12_pmol_l"]) < 1e-6
    assert res.n_runs == 16 * (len(idx) + 2)


def test_sobol_rejects_non_power_of_two(omnivore, local):
    from biofluxopt._util import ConfigError

    with pytest.raises(ConfigError, match="power of two"):
        sobol_indices(omnivore, local, n_base=10)


def test_sobol_with_every_parameter_raises_no_warning(omnivore, local):
    """A top-k above the parameter count screens in every kinetic parameter, including
    linear-scale ones with bounds above 709 (tc_binding_capacity_pmol_l: 670–1270), whose
    exp overflowed before the log-scale selection. Extreme corners of every parameter need
    finer RK4 steps than the fixture's 16 a day."""
    table = {p.id: p for p in parameter_table()}
    assert table["tc_binding_capacity_pmol_l"].high > 709  # the overflow case is covered
    fine = omnivore.model_copy(update={"substeps_per_day": 96})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = sobol_indices(fine, local, top_k=10_000, n_base=2, seed=0)
    idx = res.indices.set_index("factor")
    ranged = {p.id for p in table.values() if p.high > p.low}
    assert ranged <= set(idx.index)
    tc = idx.loc["tc_binding_capacity_pmol_l"]
    assert not tc["log_scale"] and (tc["low"], tc["high"]) == (670.0, 1270.0)


def test_natural_values_exponentiate_only_log_columns():
    from biofluxopt.sim._sensitivity import _natural_values

    design = np.array([[0.0, 1000.0, np.log(4.0)], [np.log(0.25), 800.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = _natural_values(design, np.array([True, False, True]))
    np.testing.assert_allclose(values, [[1.0, 1000.0, 4.0], [0.25, 800.0, 1.0]])
    assert design[0, 0] == 0.0, "the design is not modified in place"


def test_leverage_refuses_local_of_another_day(omnivore, local):
    with pytest.raises(ValueError, match="day"):
        microbial_leverage(omnivore, day=DAY - 1, local=local, n_random_corners=0)


@pytest.mark.slow  # tests/cli/test_sensitivity_cli.py runs the command end to end in CI
def test_cli_end_to_end(tmp_path):
    protocol = tmp_path / "p.toml"
    protocol.write_text(f"days = {DAY}\nsubsteps_per_day = 16\n[diet]\nb12_ug_per_day = 4.0\n")
    out = tmp_path / "sens"
    args = ["sensitivity", str(protocol), "--out", str(out), "--day", str(DAY)]
    with pytest.raises(SystemExit) as exc:
        main([*args, "--sobol-n", "4", "--top-k", "2", "--corners", "2", "--seed", "3"])
    assert exc.value.code == 0
    assert {p.name for p in out.iterdir() if not p.name.startswith(".")} == {
        "local.csv",
        "sobol.csv",
        "leverage.json",
        "sensitivity.png",
    }
    meta = json.loads((out / "leverage.json").read_text())
    assert meta["day"] == DAY and meta["leverage"]["n_corners"] == 2 + 4


def test_cli_bad_day_leaves_no_output(tmp_path, capsys):
    protocol = tmp_path / "p.toml"
    protocol.write_text("days = 5\n")
    out = tmp_path / "sens"
    with pytest.raises(SystemExit) as exc:
        main(["sensitivity", str(protocol), "--out", str(out), "--day", "30"])
    assert exc.value.code == 2
    assert "--day" in capsys.readouterr().err
    assert not out.exists()
