"""Statistics of paired virtual-trial arms (biofluxopt.trial._stats)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from biofluxopt._util import ConfigError
from biofluxopt.trial._stats import (
    PairedComparison,
    RegressionResult,
    arm_summary,
    compare_paired,
    ensemble_band,
    gain_regression,
    subgroup_records,
    subgroup_table,
)


def _arms(n: int, seed: int, *, effect: float = 10.0):
    """Control ~ N(100, 15), treatment = control + N(effect, 8): true % change = effect."""
    rng = np.random.default_rng(seed)
    control = rng.normal(100.0, 15.0, n)
    treatment = control + rng.normal(effect, 8.0, n)
    return treatment, control


# --- compare_paired ---------------------------------------------------------------------------


def test_exact_ratio_gives_exact_pct_change_and_tight_intervals():
    control = np.random.default_rng(1).lognormal(5.0, 0.3, 60)
    res = compare_paired(1.1 * control, control, n_boot=300)
    assert res.n == 60
    assert res.pct_change == pytest.approx(10.0, abs=1e-9)
    for low, high in (res.ci95_t, res.ci95_bootstrap):
        assert low == pytest.approx(10.0, abs=1e-9)
        assert high == pytest.approx(10.0, abs=1e-9)
    assert res.mean_difference == pytest.approx(0.1 * control.mean())
    assert res.treatment_mean == pytest.approx(1.1 * control.mean())


def test_p_values_and_intervals_match_scipy():
    t, c = _arms(30, 3)
    res = compare_paired(t, c, n_boot=200)
    ref = stats.ttest_rel(t, c)
    assert res.p_paired_t == ref.pvalue
    assert res.p_wilcoxon == stats.wilcoxon(t, c).pvalue
    ci = ref.confidence_interval(0.95)
    assert res.difference_ci95_t == pytest.approx((ci.low, ci.high), rel=1e-12)
    d = t - c
    assert res.cohens_dz == pytest.approx(d.mean() / d.std(ddof=1))


def test_all_zero_differences_give_none_not_nan():
    c = np.arange(1.0, 11.0)
    res = compare_paired(c.copy(), c, n_boot=50)
    assert res.p_paired_t is None
    assert res.p_wilcoxon is None
    assert res.cohens_dz is None
    assert res.pct_change == 0.0
    text = json.dumps(res.to_dict(), allow_nan=False)
    assert json.loads(text)["p_paired_t"] is None


def test_to_dict_is_json_ready():
    t, c = _arms(20, 4)
    d = compare_paired(t, c, n_boot=100).to_dict()
    json.dumps(d, allow_nan=False)
    assert isinstance(d["ci95_bootstrap"], list) and len(d["ci95_bootstrap"]) == 2
    assert set(d) >= {
        "n",
        "treatment_mean",
        "control_mean",
        "pct_change",
        "ci95_bootstrap",
        "ci95_t",
        "mean_difference",
        "difference_ci95_t",
        "p_paired_t",
        "p_wilcoxon",
        "cohens_dz",
    }


def test_deterministic_under_seed():
    t, c = _arms(25, 5)
    a = compare_paired(t, c, n_boot=300, seed=7)
    b = compare_paired(t, c, n_boot=300, seed=7)
    other = compare_paired(t, c, n_boot=300, seed=8)
    assert a == b
    assert a.ci95_bootstrap != other.ci95_bootstrap
    assert a.ci95_t == other.ci95_t


def test_bootstrap_interval_covers_truth():
    covered_boot = covered_t = 0
    for rep in range(50):
        t, c = _arms(40, 1000 + rep)
        res = compare_paired(t, c, n_boot=400, seed=rep)
        covered_boot += res.ci95_bootstrap[0] <= 10.0 <= res.ci95_bootstrap[1]
        covered_t += res.ci95_t[0] <= 10.0 <= res.ci95_t[1]
    assert covered_boot >= 43  # ≥ 85 % of 50
    assert covered_t >= 43


def test_t_and_bootstrap_intervals_agree_for_large_n():
    t, c = _arms(3000, 11)
    res = compare_paired(t, c, n_boot=1000, seed=0)
    width = res.ci95_t[1] - res.ci95_t[0]
    assert res.ci95_bootstrap[0] == pytest.approx(res.ci95_t[0], abs=0.15 * width)
    assert res.ci95_bootstrap[1] == pytest.approx(res.ci95_t[1], abs=0.15 * width)
    assert res.ci95_t[0] < res.pct_change < res.ci95_t[1]


def test_confidence_level_widens_intervals():
    t, c = _arms(50, 12)
    narrow = compare_paired(t, c, n_boot=500, confidence=0.8)
    wide = compare_paired(t, c, n_boot=500, confidence=0.99)
    assert wide.ci95_t[0] < narrow.ci95_t[0] < narrow.ci95_t[1] < wide.ci95_t[1]
    assert narrow.confidence == 0.8


@settings(max_examples=30, deadline=None)
@given(
    control=arrays(
        np.float64, st.integers(2, 30), elements=st.floats(1.0, 1000.0, allow_subnormal=False)
    ),
    k=st.floats(0.2, 5.0),
)
def test_scaled_control_property(control, k):
    res = compare_paired(k * control, control, n_boot=20)
    assert res.pct_change == pytest.approx(100 * (k - 1), rel=1e-9, abs=1e-9)
    assert res.ci95_t[0] == pytest.approx(res.pct_change, rel=1e-6, abs=1e-6)
    assert res.ci95_t[1] == pytest.approx(res.pct_change, rel=1e-6, abs=1e-6)


@settings(max_examples=20, deadline=None)
@given(
    data=arrays(
        np.float64,
        st.tuples(st.integers(2, 25), st.just(2)),
        elements=st.floats(0.5, 100.0, allow_subnormal=False),
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_general_properties(data, seed):
    t, c = data[:, 0], data[:, 1]
    res = compare_paired(t, c, n_boot=20, seed=seed)
    assert res.pct_change == pytest.approx(100 * (t.mean() - c.mean()) / c.mean())
    assert res.ci95_bootstrap[0] <= res.ci95_bootstrap[1]
    assert res.ci95_t[0] <= res.ci95_t[1]
    for p in (res.p_paired_t, res.p_wilcoxon):
        assert p is None or 0.0 <= p <= 1.0
    json.dumps(res.to_dict(), allow_nan=False)
    # the point estimates do not depend on the patients' order
    perm = np.random.default_rng(seed).permutation(t.size)
    again = compare_paired(t[perm], c[perm], n_boot=20, seed=seed)
    assert again.pct_change == pytest.approx(res.pct_change)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"treatment": [1.0, 2.0, 3.0], "control": [1.0, 2.0]}, "control"),
        ({"treatment": [1.0, np.nan, 3.0], "control": [1.0, 2.0, 3.0]}, "treatment"),
        ({"treatment": [1.0, 2.0], "control": [1.0, np.inf]}, "control"),
        ({"treatment": [1.0], "control": [1.0]}, "treatment"),
        ({"treatment": [[1.0, 2.0]], "control": [[1.0, 2.0]]}, "treatment"),
        ({"treatment": [1.0, 2.0], "control": [-1.0, 0.5]}, "control"),
        ({"treatment": [1.0, 2.0], "control": [1.0, 2.0], "n_boot": 0}, "n_boot"),
        ({"treatment": [1.0, 2.0], "control": [1.0, 2.0], "confidence": 1.5}, "confidence"),
    ],
)
def test_bad_input_names_the_field(kwargs, field):
    with pytest.raises(ConfigError) as err:
        compare_paired(**kwargs)
    assert err.value.field == field


def test_result_is_frozen():
    res = compare_paired([1.0, 2.0, 3.0], [1.0, 1.5, 2.0], n_boot=10)
    assert isinstance(res, PairedComparison)
    with pytest.raises(AttributeError):
        res.n = 4  # type: ignore[misc]


# --- arm_summary ------------------------------------------------------------------------------


def test_arm_summary_matches_numpy_and_scipy():
    x = np.random.default_rng(2).normal(300.0, 40.0, 35)
    out = arm_summary({"serum_b12_pmol_l": x, "holotc_pmol_l": x[:5] / 4})
    assert list(out) == ["serum_b12_pmol_l", "holotc_pmol_l"]
    s = out["serum_b12_pmol_l"]
    assert s["n"] == 35
    assert s["mean"] == pytest.approx(x.mean())
    assert s["sd"] == pytest.approx(x.std(ddof=1))
    assert s["median"] == pytest.approx(np.median(x))
    assert (s["q25"], s["q75"]) == pytest.approx(tuple(np.percentile(x, [25, 75])))
    low, high = stats.t.interval(0.95, 34, loc=x.mean(), scale=stats.sem(x))
    assert (s["ci95_low"], s["ci95_high"]) == pytest.approx((low, high))
    assert out["holotc_pmol_l"]["n"] == 5
    json.dumps(out, allow_nan=False)


def test_arm_summary_rejects_bad_outcome():
    with pytest.raises(ConfigError) as err:
        arm_summary({"ok": [1.0, 2.0], "mma_umol_l": [1.0, float("nan")]})
    assert err.value.field == "outcomes.mma_umol_l"
    with pytest.raises(ConfigError):
        arm_summary({"one": [1.0]})


# --- gain_regression --------------------------------------------------------------------------


def _cohort(n: int, seed: int):
    rng = np.random.default_rng(seed)
    factors = pd.DataFrame(
        {
            "age_years": rng.uniform(20, 80, n),
            "sex": rng.choice(["female", "male"], n, p=[0.6, 0.4]),
            "intrinsic_factor": rng.choice(["normal", "reduced", "absent"], n, p=[0.6, 0.3, 0.1]),
            "smoker": rng.random(n) < 0.3,
            "site": "A",  # constant
        }
    )
    factors["age_months"] = 12 * factors["age_years"]  # collinear with age_years
    gain = (
        5.0
        + 0.4 * factors["age_years"]
        + 3.0 * (factors["sex"] == "male")
        - 2.0 * (factors["intrinsic_factor"] == "absent")
        + rng.normal(0.0, 1.0, n)
    ).to_numpy()
    return gain, factors


def test_regression_recovers_known_coefficients():
    gain, factors = _cohort(400, 0)
    res = gain_regression(gain, factors)
    assert isinstance(res, RegressionResult)
    coef = res.coefficients
    assert list(coef.columns) == ["estimate", "std_error", "ci95_low", "ci95_high", "p_value"]
    truth = {
        "Intercept": 5.0,
        "age_years": 0.4,
        "sex[T.male]": 3.0,
        "intrinsic_factor[T.absent]": -2.0,
        "intrinsic_factor[T.reduced]": 0.0,
        "smoker[T.True]": 0.0,
    }
    assert list(coef.index) == list(truth)
    for term, value in truth.items():
        assert coef.loc[term, "ci95_low"] <= value <= coef.loc[term, "ci95_high"], term
    assert coef.loc["age_years", "p_value"] < 1e-10
    assert res.dropped == ("site", "age_months")
    assert res.references == {"sex": "female", "intrinsic_factor": "normal", "smoker": "False"}
    assert res.n == 400
    assert 0.9 < res.r_squared <= 1.0
    assert res.formula.startswith("gain ~ 1 + age_years + sex[T.male]")
    assert res.cov_type == "HC3"
    d = res.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["coefficients"]["age_years"]["estimate"] == pytest.approx(
        coef.loc["age_years", "estimate"]
    )


def test_regression_nonrobust_equals_least_squares():
    gain, factors = _cohort(80, 1)
    res = gain_regression(gain, factors[["age_years"]], robust="nonrobust")
    X = np.column_stack([np.ones(80), factors["age_years"]])
    beta, *_ = np.linalg.lstsq(X, gain, rcond=None)
    assert res.coefficients["estimate"].to_numpy() == pytest.approx(beta)


def test_regression_reference_tie_break_is_sorted():
    gain = np.arange(8.0)
    factors = pd.DataFrame({"arm": ["b", "a", "b", "a", "c", "c", "b", "a"]})  # a, b tie at 3
    res = gain_regression(gain, factors)
    assert res.references == {"arm": "a"}
    assert list(res.coefficients.index) == ["Intercept", "arm[T.b]", "arm[T.c]"]


def test_regression_collinear_dummy_is_dropped():
    gain = np.arange(10.0)
    sex = ["f", "m"] * 5
    factors = pd.DataFrame({"sex": sex, "male": [s == "m" for s in sex]})
    res = gain_regression(gain, factors)
    assert res.dropped == ("male[T.True]",)


def test_regression_constant_gain_is_json_safe():
    factors = pd.DataFrame({"x": np.arange(10.0)})
    res = gain_regression(np.ones(10), factors)
    json.dumps(res.to_dict(), allow_nan=False)


@pytest.mark.parametrize(
    ("gain", "factors", "kwargs", "field"),
    [
        (np.ones(3), pd.DataFrame({"x": [1.0, 2.0, 3.0]}), {}, "factors"),  # 3 < 2 + 2
        (np.ones(5), pd.DataFrame({"x": np.arange(4.0)}), {}, "factors"),
        (np.ones(5), pd.DataFrame({"x": [1.0, np.nan, 3, 4, 5]}), {}, "factors.x"),
        (np.ones(5), pd.DataFrame({"s": ["a", None, "b", "a", "b"]}), {}, "factors.s"),
        ([1.0, np.nan, 1, 1, 1], pd.DataFrame({"x": np.arange(5.0)}), {}, "gain"),
        (np.ones(5), {"x": np.arange(5.0)}, {}, "factors"),
        (np.ones(9), pd.DataFrame({"x": np.arange(9.0)}), {"robust": "HC9"}, "robust"),
    ],
)
def test_regression_bad_input(gain, factors, kwargs, field):
    with pytest.raises(ConfigError) as err:
        gain_regression(gain, factors, **kwargs)
    assert err.value.field == field


# --- subgroups --------------------------------------------------------------------------------


def test_subgroup_table_rows_and_values():
    t, c = _arms(60, 21)
    idx = np.arange(60)
    groups = {"all": np.ones(60, bool), "tiny": idx < 2, "even": idx % 2 == 0}
    df = subgroup_table(t, c, groups, n_boot=200, seed=3)
    assert list(df.columns) == [
        "subgroup",
        "n",
        "treatment_mean",
        "control_mean",
        "pct_change",
        "ci95_low",
        "ci95_high",
        "p_paired_t",
        "p_wilcoxon",
    ]
    assert list(df["subgroup"]) == ["all", "tiny", "even"]
    assert list(df["n"]) == [60, 2, 30]
    even = compare_paired(t[idx % 2 == 0], c[idx % 2 == 0], n_boot=200, seed=3)
    row = df.iloc[2]
    assert row["pct_change"] == pytest.approx(even.pct_change)
    assert (row["ci95_low"], row["ci95_high"]) == pytest.approx(even.ci95_bootstrap)
    assert row["p_paired_t"] == pytest.approx(even.p_paired_t)
    assert row["p_wilcoxon"] == pytest.approx(even.p_wilcoxon)
    assert df.iloc[1, 2:].isna().all()
    records = subgroup_records(df)
    assert records[1] == {
        "subgroup": "tiny",
        "n": 2,
        **dict.fromkeys(list(df.columns)[2:]),
    }
    assert isinstance(records[0]["n"], int)
    json.dumps(records, allow_nan=False)
    assert df.equals(subgroup_table(t, c, groups, n_boot=200, seed=3))


def test_subgroup_bad_mask():
    t, c = _arms(10, 0)
    with pytest.raises(ConfigError) as err:
        subgroup_table(t, c, {"old": np.arange(10) > 4, "bad": np.arange(10)})
    assert err.value.field == "groups.bad"
    with pytest.raises(ConfigError) as err:
        subgroup_table(t, c, {"short": np.ones(9, bool)})
    assert err.value.field == "groups.short"


# --- ensemble_band ----------------------------------------------------------------------------


def test_ensemble_band():
    effects = np.random.default_rng(0).normal(10.0, 2.0, 200)
    band = ensemble_band(effects, level=0.9)
    assert (band["low"], band["high"]) == pytest.approx(tuple(np.percentile(effects, [5, 95])))
    assert band["median"] == pytest.approx(np.median(effects))
    assert band["mean"] == pytest.approx(effects.mean())
    assert band["n"] == 200 and band["level"] == 0.9
    single = ensemble_band([3.0])
    assert single["low"] == single["high"] == 3.0 and single["sd"] is None
    json.dumps(single, allow_nan=False)
    with pytest.raises(ConfigError) as err:
        ensemble_band([])
    assert err.value.field == "effects"
    with pytest.raises(ConfigError) as err:
        ensemble_band([1.0, 2.0], level=1.0)
    assert err.value.field == "level"
    assert not math.isnan(ensemble_band([1.0, 2.0])["sd"])
