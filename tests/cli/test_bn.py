"""End-to-end ``biofluxopt bn`` on tiny inputs: learn -> query -> explain, and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from biofluxopt.cli import main


def _run(argv: list[str]) -> None:
    """Run the CLI and require success (typer exits with code 0)."""
    try:
        main(argv)
    except SystemExit as exc:
        assert exc.code in (0, None), f"exit code {exc.code}"


def _b12_table(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    diet = rng.choice(["omnivore", "vegetarian", "vegan"], n, p=[0.6, 0.3, 0.1])
    fut2 = rng.choice(["secretor", "nonsecretor"], n, p=[0.8, 0.2])
    base = np.select([diet == "vegan", diet == "vegetarian"], [120.0, 190.0], 290.0)
    serum = base * np.exp(rng.normal(0, 0.3, n))
    mma = 0.2 * (250 / serum) ** 1.2 * np.exp(rng.normal(0, 0.2, n))
    return pd.DataFrame(
        {
            "patient_id": [f"p{i}" for i in range(n)],
            "diet": diet,
            "fut2": fut2,
            "serum_b12_pmol_l": serum,
            "mma_umol_l": mma,
        }
    )


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    root = tmp_path_factory.mktemp("bn")
    table = root / "cohort.csv"
    _b12_table().to_csv(table, index=False)
    out = root / "net"
    _run(
        ["bn", "learn", "--data", str(table), "--out", str(out), "--bootstrap", "4", "--seed", "1"]
    )
    return out


def test_learn_writes_all_outputs(learned):
    for name in ("network.bif", "network.xmlbif", "graph.png", "arcs.csv", "summary.json"):
        assert (learned / name).stat().st_size > 0
    arcs = pd.read_csv(learned / "arcs.csv")
    assert {"edge", "strength", "direction_confidence"} <= set(arcs.columns)
    assert "diet -> serum_b12" in set(arcs.loc[arcs["in_network"], "edge"])


def test_query_prints_posterior(learned, capsys):
    _run(
        [
            "bn",
            "query",
            "--model",
            str(learned / "network.bif"),
            "--target",
            "serum_b12",
            "--evidence",
            "diet=vegan,fut2=nonsecretor",
            "--mpe",
        ]
    )
    out = capsys.readouterr().out
    assert "deficient" in out and "most probable explanation" in out


def test_explain_ranks_diet_first(learned, capsys):
    _run(["bn", "explain", "--model", str(learned), "--evidence", "fut2=secretor,diet=vegan"])
    out = capsys.readouterr().out
    assert out.index("diet") < out.index("fut2", out.index("factor"))


def test_learn_mixed_reads_the_numbers(tmp_path, capsys):
    table = tmp_path / "cohort.csv"
    _b12_table(600).to_csv(table, index=False)
    out = tmp_path / "net"
    _run(["bn", "learn", "--data", str(table), "--out", str(out), "--method", "mixed"])
    assert "mixed" in capsys.readouterr().out
    arcs = pd.read_csv(out / "arcs.csv")
    pairs = {frozenset(p) for p in zip(arcs["source"], arcs["target"], strict=True)}
    assert frozenset(("diet", "serum_b12")) in pairs and frozenset(("serum_b12", "mma")) in pairs
    assert (out / "network.bif").exists()


def test_same_seed_same_network(learned, tmp_path):
    table = tmp_path / "cohort.csv"
    _b12_table().to_csv(table, index=False)
    _run(
        [
            "bn",
            "learn",
            "--data",
            str(table),
            "--out",
            str(tmp_path / "again"),
            "--bootstrap",
            "4",
            "--seed",
            "1",
        ]
    )
    a = pd.read_csv(learned / "arcs.csv")
    b = pd.read_csv(tmp_path / "again" / "arcs.csv")
    pd.testing.assert_frame_equal(a, b)


def test_benchmark_style_table_learns_without_expert(tmp_path):
    from pgmpy.utils import get_example_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = get_example_model("asia").simulate(1500, seed=0, show_progress=False)
    path = tmp_path / "asia.csv"
    data.to_csv(path, index=False)
    _run(
        [
            "bn",
            "learn",
            "--data",
            str(path),
            "--out",
            str(tmp_path / "o"),
            "--method",
            "pc",
            "--no-expert",
        ]
    )
    arcs = pd.read_csv(tmp_path / "o" / "arcs.csv")
    assert arcs["in_network"].sum() >= 5


def _exit_code(argv) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("a,b\n", "empty"),
        ("site,x\n" + "".join(f"s{i},{i % 2}\n" for i in range(8)), "site"),
        ("a,b\nx,1\ny,0\n,2\n", "2 of 3 rows are complete"),
    ],
)
def test_bad_tables_exit_2_naming_the_problem(tmp_path, capsys, content, message):
    path = tmp_path / "t.csv"
    path.write_text(content)
    assert _exit_code(["bn", "learn", "--data", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and "t.csv" in err
    assert not (tmp_path / "o").exists()


def test_missing_file_and_unknown_method(tmp_path, capsys):
    assert _exit_code(["bn", "learn", "--data", str(tmp_path / "nope.csv"), "--out", "x"]) == 2
    path = tmp_path / "t.csv"
    _b12_table(50).to_csv(path, index=False)
    code = _exit_code(
        ["bn", "learn", "--data", str(path), "--out", str(tmp_path / "o"), "--method", "ges"]
    )
    assert code == 2 and "ges" in capsys.readouterr().err


def test_unknown_evidence_exits_2(learned, capsys):
    code = _exit_code(
        [
            "bn",
            "query",
            "--model",
            str(learned / "network.bif"),
            "--evidence",
            "diet=carnivore,height=tall",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "carnivore" in err and "height" in err
    code = _exit_code(
        [
            "bn",
            "explain",
            "--model",
            str(learned),
            "--evidence",
            "diet=vegan",
            "--state",
            "very_low",
        ]
    )
    assert code == 2 and "very_low" in capsys.readouterr().err
    assert _exit_code(["bn", "query", "--model", str(learned / "missing.bif")]) == 2


def test_cohort_command_writes_a_simulated_cohort(tmp_path):
    out = tmp_path / "cohort.csv"
    _run(["bn", "cohort", "--n", "12", "--days", "2", "--out", str(out), "--seed", "3"])
    table = pd.read_csv(out)
    assert len(table) == 12 and table["patient_id"].is_unique
    for col in ("serum_b12_pmol_l", "holotc_pmol_l", "mma_umol_l", "hcy_umol_l", "diet", "fut2"):
        assert col in table.columns
    assert (table["serum_b12_pmol_l"] > 0).all()
    discrete = tmp_path / "states.csv"
    _run(
        [
            "bn",
            "cohort",
            "--n",
            "12",
            "--days",
            "2",
            "--out",
            str(discrete),
            "--seed",
            "3",
            "--discrete",
        ]
    )
    states = pd.read_csv(discrete)
    assert set(states["serum_b12"]) <= {"deficient", "marginal", "normal"}
