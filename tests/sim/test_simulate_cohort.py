"""The simulate_cohort contract (used by the BN engineer to generate simulated cohorts)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from biofluxopt._util import DataError
from biofluxopt.sim import simulate_cohort

OUT_COLUMNS = [
    "serum_b12_pmol_l",
    "holotc_pmol_l",
    "mma_umol_l",
    "hcy_umol_l",
    "liver_store_ug",
    "peripheral_store_ug",
    "body_store_ug",
    "absorbed_ug_per_day",
    "ileal_free_cobalamin_ug_per_day",
    "microbial_cobalamin_ug_per_day",
    "microbial_analogue_ug_per_day",
    "colon_propionate_mmol_per_day",
]


def cohort(n=4):
    return pd.DataFrame(
        {
            "patient_id": [f"p{i}" for i in range(n)],
            "diet": ["omnivore", "vegan", "vegetarian", "omnivore"][:n],
            "b12_intake_ug_per_day": [6.0, 0.5, 1.5, 6.0][:n],
            "supplement_ug_per_day": [0.0, 0.0, 0.0, 500.0][:n],
            "intrinsic_factor": ["normal", "normal", "normal", "absent"][:n],
            "gastric_release": "normal",
            "fut2": "secretor",
            "tcn2_776": "CC",
            "mthfr_677": "CC",
            "age_years": 40.0,
            "bacteroidales": 0.6,
            "clostridiales": 0.3,
        }
    )


@pytest.fixture(scope="module")
def result():
    return simulate_cohort(cohort(), days=20, seed=1, variability=0.0)


def test_output_columns_and_passthrough(result):
    assert list(result.columns[: cohort().shape[1]]) == list(cohort().columns)
    for col in OUT_COLUMNS:
        assert col in result.columns
        assert np.isfinite(result[col]).all(), col
    assert (result["serum_b12_pmol_l"] > 0).all()


def test_diet_orders_serum_b12(result):
    s = result.set_index("patient_id")["serum_b12_pmol_l"]
    assert s["p0"] > s["p2"] > s["p1"]


def test_supplement_raises_absorption_even_without_if(result):
    a = result.set_index("patient_id")["absorbed_ug_per_day"]
    assert a["p3"] > a["p0"]  # 500 µg/day passive absorption beats IF-limited food B12


@pytest.mark.slow
def test_regimen_start_is_the_steady_state_of_diet_plus_supplement():
    short = simulate_cohort(cohort(), days=1, seed=2, start="regimen").set_index("patient_id")
    year = simulate_cohort(cohort(), days=365, seed=2, start="regimen").set_index("patient_id")
    trial = simulate_cohort(cohort(), days=365, seed=2).set_index("patient_id")
    for col in ("liver_store_ug", "peripheral_store_ug", "serum_b12_pmol_l"):
        np.testing.assert_allclose(year[col], short[col], rtol=0.01)
    # body store = liver + peripheral + plasma
    assert (short["body_store_ug"] > short["liver_store_ug"] + short["peripheral_store_ug"]).all()
    # the supplement user (p3, 500 µg/d) is still filling the stores a year into a trial
    assert trial.loc["p3", "liver_store_ug"] < 0.9 * year.loc["p3", "liver_store_ug"]
    # no supplement: both starts are the same steady state
    np.testing.assert_allclose(
        trial.loc["p0", "liver_store_ug"], year.loc["p0", "liver_store_ug"], rtol=1e-3
    )
    with pytest.raises(DataError, match="start"):
        simulate_cohort(cohort(), days=1, start="forever")


def test_same_seed_same_numbers():
    a = simulate_cohort(cohort(2), days=3, seed=5)
    b = simulate_cohort(cohort(2), days=3, seed=5)
    c = simulate_cohort(cohort(2), days=3, seed=6)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["serum_b12_pmol_l"], c["serum_b12_pmol_l"])


@pytest.mark.parametrize(
    ("mutate", "column"),
    [
        (lambda df: df.drop(columns="fut2"), "fut2"),
        (lambda df: df.assign(diet=["omnivore", "paleo", "vegan", "vegan"]), "diet"),
        (
            lambda df: df.assign(supplement_ug_per_day=[0.0, -1.0, 0.0, 0.0]),
            "supplement_ug_per_day",
        ),
        (lambda df: df.assign(b12_intake_ug_per_day=["a", 1, 1, 1]), "b12_intake_ug_per_day"),
        (lambda df: df.assign(bacteroidales=0.9), "bacteroidales"),
        (lambda df: df.assign(tcn2_776="CT"), "tcn2_776"),
    ],
)
def test_bad_input_names_the_column(mutate, column):
    with pytest.raises(DataError) as exc:
        simulate_cohort(mutate(cohort()), days=1)
    assert column in str(exc.value)
