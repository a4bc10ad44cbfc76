"""End-to-end runs of ``biofluxopt simulate`` on tiny protocols."""

from __future__ import annotations

import pandas as pd
import pytest

from biofluxopt.cli import main

TINY = """
days = 3
patients = 2
seed = 1
[host]
intrinsic_factor = "normal"
[diet]
b12_ug_per_day = 4.0
meals_per_day = 3
[[supplement]]
route = "oral"
dose_ug = 500
times_per_day = 1
start_day = 1
end_day = 3
"""


def run(args):
    with pytest.raises(SystemExit) as exc:
        main(args)
    return exc.value.code


def test_simulate_writes_trajectory(tmp_path):
    proto = tmp_path / "p.toml"
    proto.write_text(TINY)
    out = tmp_path / "out"
    assert run(["simulate", str(proto), "--out", str(out)]) in (0, None)
    traj = pd.read_csv(out / "trajectory.csv")
    assert list(traj.columns[:8]) == [
        "patient",
        "day",
        "serum_b12_pmol_l",
        "holotc_pmol_l",
        "mma_umol_l",
        "hcy_umol_l",
        "body_store_ug",
        "liver_store_ug",
    ]
    assert "absorbed_ug" in traj.columns
    assert len(traj) == 2 * 4
    assert (out / "trajectory.png").stat().st_size > 1000
    assert (out / "summary.json").exists()


def test_same_seed_same_trajectory(tmp_path):
    proto = tmp_path / "p.toml"
    proto.write_text(TINY)
    run(["simulate", str(proto), "--out", str(tmp_path / "a"), "--seed", "3"])
    run(["simulate", str(proto), "--out", str(tmp_path / "b"), "--seed", "3"])
    a = (tmp_path / "a" / "trajectory.csv").read_text()
    assert a == (tmp_path / "b" / "trajectory.csv").read_text()


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (("dose_ug = 500", "dose_ug = -5"), "supplement.0.dose_ug"),
        (("meals_per_day = 3", "meals_per_day = 3\nsnacks = 2"), "diet.snacks"),
        (('intrinsic_factor = "normal"', 'intrinsic_factor = "low"'), "host.intrinsic_factor"),
        (("days = 3", 'days = "three"'), "days"),
        (("times_per_day = 1", "times_per_day = 5"), "times_per_day"),
        (("end_day = 3", "end_day = 1"), "end_day"),
        (("start_day = 1\nend_day = 3", "start_day = 5\nend_day = 9"),
         "starts after the protocol ends"),
        (("[host]", "[host]\nbaseline_serum_b12_pmol_l = -3"), "baseline_serum_b12_pmol_l"),
        (("seed = 1", "seed = 1\nparameters = { colonic_absorption_fraction = 0.5 }"),
         "colonic_absorption_fraction"),
    ],
)
def test_bad_protocol_is_a_clear_error_and_writes_nothing(tmp_path, capsys, edit, key):
    proto = tmp_path / "bad.toml"
    proto.write_text(TINY.replace(*edit))
    out = tmp_path / "out"
    assert run(["simulate", str(proto), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert key in err and "bad.toml" in err
    assert not out.exists()
    assert not list(tmp_path.glob(".out.*"))
