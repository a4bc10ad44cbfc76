"""Leverage and sensitivity analysis (sim._sensitivity and `biofluxopt sensitivity`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from biofluxopt.cli import main
from biofluxopt.sim import ProtocolSpec
from biofluxopt.sim._sensitivity import (
    activity_pairs,
    leverage_scenarios,
    local_sensitivity,
    microbial_leverage,
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
    from biofluxopt.sim import parameter_table

    kinetic = set(local.loc[local["kind"] == "kinetic", "factor"])
    assert kinetic == {p.id for p in parameter_table()}
    acts = set(local.loc[local["kind"] == "activity", "factor"])
    assert acts == {f"{a}.{b}" for a, b in activity_pairs()}
    assert np.isfinite(local.filter(like="d_").to_numpy()).all()
    swings = local["swing_serum_b12_pmol_l"].abs().to_numpy()
    assert (np.diff(swings) <= 1e-12).all(), "rows are sorted by |serum swing|"


def test_autograd_matches_finite_differences(omnivore, local):
    row = local[local["kind"] == "kinetic"].iloc[0]  # the most influential parameter
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


def test_no_leverage_without_agents():
    """A community of only the background guild gives the agents nothing to act on."""
    spec = ProtocolSpec.model_validate(
        {"days": DAY, "substeps_per_day": 16, "microbiome": {"other": 1.0}}
    )
    lev = microbial_leverage(spec, day=DAY, n_random_corners=2)
    assert lev.gain_pmol_l == pytest.approx(0.0, abs=1e-9)
    assert lev.loss_pmol_l == pytest.approx(0.0, abs=1e-9)


def test_sobol_indices_rank_an_inert_factor_last():
    """Streptomyces is absent from the default community: its multipliers cannot matter."""
    spec = leverage_scenarios(days=DAY, substeps_per_day=16)["omnivore"]
    loc = local_sensitivity(spec, day=DAY)
    res = sobol_indices(spec, loc, day=DAY, top_k=2, n_base=16, seed=0)
    idx = res.indices.set_index("factor")
    top = loc[loc["kind"] == "kinetic"].iloc[0]["factor"]
    assert idx.loc[top, "ST_serum_b12_pmol_l"] > 0.05
    inert = idx.loc["streptomyces.de_novo_synthesis"]
    assert abs(inert["ST_serum_b12_pmol_l"]) < 1e-6
    assert res.n_runs == 16 * (len(idx) + 2)


def test_sobol_rejects_non_power_of_two(omnivore, local):
    from biofluxopt._util import ConfigError

    with pytest.raises(ConfigError, match="power of two"):
        sobol_indices(omnivore, local, day=DAY, n_base=10)


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
