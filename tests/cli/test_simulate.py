"""End-to-end runs of ``biofluxopt simulate`` on tiny protocols."""

from __future__ import annotations

import json
import os
import time

import pandas as pd
import pytest

from biofluxopt.cli import main
from biofluxopt.cli._simulate import simulation_memory_bytes

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
    return exc.value.code or 0


def test_simulate_writes_trajectory(tmp_path):
    proto = tmp_path / "p.toml"
    proto.write_text(TINY)
    out = tmp_path / "out"
    assert run(["simulate", str(proto), "--out", str(out)]) == 0
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


def test_same_seed_same_files_byte_for_byte(tmp_path):
    proto = tmp_path / "p.toml"
    proto.write_text(TINY)
    assert run(["simulate", str(proto), "--out", str(tmp_path / "a"), "--seed", "3"]) == 0
    assert run(["simulate", str(proto), "--out", str(tmp_path / "b"), "--seed", "3"]) == 0
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    assert "trajectory.png" in names
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def strict_loads(text: str):
    def refuse(token):
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(text, parse_constant=refuse)


def test_summary_is_strict_json(tmp_path):
    proto = tmp_path / "p.toml"
    proto.write_text(TINY)
    out = tmp_path / "out"
    assert run(["simulate", str(proto), "--out", str(out)]) == 0
    text = (out / "summary.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    doc = strict_loads(text)
    assert doc["summary"]["absorbed_ug"]["day0_mean"] is None  # no flux before day 1
    assert doc["summary"]["absorbed_ug"]["final_mean"] > 0
    assert doc["seed"] == 1 and doc["patients"] == 2


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--seed", "-1"], "--seed"),
        (["--seed", str(2**64)], "--seed"),
        (["--seed", str(2**63)], "--seed"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--device", "cuda:x"], "unknown device"),
    ],
)
def test_bad_seed_or_device_is_one_line(tmp_path, capsys, args, expected):
    proto = tmp_path / "p.toml"
    proto.write_text(TINY)
    out = tmp_path / "out"
    assert run(["simulate", str(proto), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], err
    assert not out.exists()


def test_largest_seed_is_accepted(tmp_path):
    proto = tmp_path / "p.toml"
    proto.write_text(TINY)
    out = tmp_path / "out"
    assert run(["simulate", str(proto), "--out", str(out), "--seed", str(2**63 - 1)]) == 0
    assert json.loads((out / "summary.json").read_text())["seed"] == 2**63 - 1


def test_protocol_seed_follows_the_same_rule(tmp_path, capsys):
    proto = tmp_path / "neg.toml"
    proto.write_text(TINY.replace("seed = 1", "seed = -1"))
    assert run(["simulate", str(proto), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "neg.toml: seed:" in err
    assert not (tmp_path / "out").exists()


def test_cuda_without_cuda_is_one_line(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    proto = tmp_path / "p.toml"
    proto.write_text(TINY)
    assert run(["simulate", str(proto), "--out", str(tmp_path / "o"), "--device", "cuda"]) == 2
    assert "--device: CUDA is not available" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_huge_protocol_is_refused_before_allocating(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BIOFLUXOPT_MAX_MEMORY_GB", raising=False)
    proto = tmp_path / "huge.toml"
    proto.write_text("patients = 1000000\ndays = 36500\n")
    t0 = time.perf_counter()
    assert run(["simulate", str(proto), "--out", str(tmp_path / "o")]) == 2
    assert time.perf_counter() - t0 < 10
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "huge.toml: 1000000 patient(s) × 36500 days needs about" in err
    assert "BIOFLUXOPT_MAX_MEMORY_GB" in err
    assert not (tmp_path / "o").exists()


def test_memory_limit_is_configurable(tmp_path, capsys, monkeypatch):
    proto = tmp_path / "p.toml"
    proto.write_text(TINY)
    est = simulation_memory_bytes(2, 3, 3)
    monkeypatch.setenv("BIOFLUXOPT_MAX_MEMORY_GB", str(est / 2 / 1e9))
    assert run(["simulate", str(proto), "--out", str(tmp_path / "o")]) == 2
    assert "more than the limit" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_memory_estimate_bounds_the_real_run(tmp_path):
    """The estimate must not be below what a run really holds (the long table alone)."""
    from biofluxopt.sim import load_protocol, run_protocol

    proto = tmp_path / "p.toml"
    proto.write_text(TINY)
    spec = load_protocol(proto)
    frame = run_protocol(spec).to_frame()
    table_bytes = frame.select_dtypes("number").memory_usage(index=False).sum()
    assert simulation_memory_bytes(spec.patients, spec.days, 3) > 2 * table_bytes
    per_patient_day = simulation_memory_bytes(1000, 999, 3) / (1000 * 1000)
    assert 300 < per_patient_day < 3000  # bytes: neither absurdly strict nor lax


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\xff", "not a UTF-8 text file"),
        ("days = 3".encode("utf-16"), "not a UTF-8 text file"),
        (b"days = [", "invalid TOML"),
    ],
)
def test_unreadable_toml_is_one_line_naming_the_file(tmp_path, capsys, content, expected):
    proto = tmp_path / "weird.toml"
    proto.write_bytes(content)
    assert run(["simulate", str(proto), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "weird.toml" in err and expected in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (("dose_ug = 500", "dose_ug = -5"), "supplement.0.dose_ug"),
        (("meals_per_day = 3", "meals_per_day = 3\nsnacks = 2"), "diet.snacks"),
        (('intrinsic_factor = "normal"', 'intrinsic_factor = "low"'), "host.intrinsic_factor"),
        (("days = 3", 'days = "three"'), "days"),
        (("times_per_day = 1", "times_per_day = 5"), "times_per_day"),
        (("end_day = 3", "end_day = 1"), "end_day"),
        (
            ("start_day = 1\nend_day = 3", "start_day = 5\nend_day = 9"),
            "starts after the protocol ends",
        ),
        (("[host]", "[host]\nbaseline_serum_b12_pmol_l = -3"), "baseline_serum_b12_pmol_l"),
        (
            ("seed = 1", "seed = 1\nparameters = { colonic_absorption_fraction = 0.5 }"),
            "colonic_absorption_fraction",
        ),
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


# ---------------------------------------------------------------------------------------------
# Property-based fuzzing: malformed protocols and option values never give a traceback
# ---------------------------------------------------------------------------------------------

JUNK = [
    "-1",
    "0",
    "-0.5",
    "1e308",
    "-1e308",
    "nan",
    "inf",
    "-inf",
    str(2**70),
    '"three"',
    '""',
    "true",
    "[]",
    "[1, 2]",
    "{}",
    "{ a = 1 }",
    "1979-05-27",
    '"\\u00e9\\u0000"',
]
SMALL = {"days": ["1", "2", "3"], "patients": ["1", "2"], "seed": ["0", "5"]}


def _protocol_text(data) -> bytes:
    from hypothesis import strategies as st

    if data.draw(st.integers(0, 9)) == 9:  # raw bytes: binary, truncated, other encodings
        return data.draw(st.binary(max_size=64))
    lines = []
    for key, value in (("days", "2"), ("patients", "2"), ("seed", "1")):
        choice = data.draw(st.sampled_from(["keep", "keep", "small", "small", "junk", "drop"]))
        if choice == "drop":
            continue
        if choice == "small":
            value = data.draw(st.sampled_from(SMALL[key]))
        elif choice == "junk":
            value = data.draw(st.sampled_from(JUNK))
        lines.append(f"{key} = {value}")
    sections = {
        "host": ["intrinsic_factor", "gastric_release", "fut2", "baseline_serum_b12_pmol_l"],
        "diet": ["b12_ug_per_day", "meals_per_day"],
        "supplement": ["route", "dose_ug", "times_per_day", "start_day", "end_day"],
        "microbiome": ["bacteroidales"],
        "activity.propionibacterium": ["de_novo_synthesis", "uptake"],
        "parameters": ["colonic_absorption_fraction"],
    }
    valid = {
        "intrinsic_factor": '"normal"',
        "gastric_release": '"impaired"',
        "fut2": '"nonsecretor"',
        "baseline_serum_b12_pmol_l": "150",
        "b12_ug_per_day": "4.0",
        "meals_per_day": "3",
        "route": data.draw(st.sampled_from(['"oral"', '"intramuscular"', '"nasal"'])),
        "dose_ug": "500",
        "times_per_day": "1",
        "start_day": "0",
        "end_day": "2",
        "bacteroidales": "0.5",
        "de_novo_synthesis": "2.0",
        "uptake": "0.5",
        "colonic_absorption_fraction": "0.05",
    }
    for section, keys in sections.items():
        if data.draw(st.integers(0, 2)):
            continue
        lines.append(f"[[{section}]]" if section == "supplement" else f"[{section}]")
        for key in keys:
            mode = data.draw(st.sampled_from(["valid"] * 12 + ["junk", "drop"]))
            if mode == "drop":
                continue
            value = valid.get(key, "1.0") if mode == "valid" else data.draw(st.sampled_from(JUNK))
            lines.append(f"{key} = {value}")
    if data.draw(st.integers(0, 5)) == 5:
        lines.append(
            data.draw(
                st.sampled_from(["snacks = 2", "[host", "days = 2", "= 3", "[x]\nno_such_key = 1"])
            )
        )
    return "\n".join(lines).encode()


def _fuzz_once(data) -> None:
    import tempfile
    from pathlib import Path

    from hypothesis import strategies as st

    from biofluxopt.cli import run as run_cli

    text = _protocol_text(data)
    options = []
    if data.draw(st.integers(0, 3)) == 3:
        options += ["--seed", str(data.draw(st.integers(-(2**80), 2**80)))]
    if data.draw(st.integers(0, 5)) == 5:
        options += ["--device", data.draw(st.sampled_from(["cpu", "tpu", "cuda:9", "", "CPU"]))]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        proto = tmp / "fuzz.toml"
        proto.write_bytes(text)
        out = tmp / "out"
        import contextlib
        import io

        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = run_cli(["simulate", str(proto), "--out", str(out), *options])
        err = err.getvalue()
        assert code in (0, 2), (code, text, options, err)
        assert "Traceback" not in err
        error_lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(error_lines) == (1 if code else 0), err
        assert out.exists() == (code == 0)
        assert sorted(p.name for p in tmp.iterdir()) == (
            ["fuzz.toml", "out"] if code == 0 else ["fuzz.toml"]
        )


def _fuzz_test(max_examples: int):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(st.data())
    def fuzz(data):
        _fuzz_once(data)

    return fuzz


def test_fuzz_simulate_small_budget():
    """20 generated protocols and option sets (derandomised, so CI sees the same cases)."""
    _fuzz_test(20)()


@pytest.mark.fuzz
@pytest.mark.skipif(
    not os.environ.get("BIOFLUXOPT_FUZZ"), reason="large fuzz budget: set BIOFLUXOPT_FUZZ=1"
)
def test_fuzz_simulate_large_budget():
    _fuzz_test(300)()
