"""``biofluxopt sensitivity`` through the command line: checks before computing, outputs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from biofluxopt._util import MARKER_NAME, MEMORY_ENV
from biofluxopt.cli import run

PROTOCOL = """
days = 4
patients = 1
substeps_per_day = 16
[diet]
b12_ug_per_day = 4.0
"""


@pytest.fixture
def proto(tmp_path) -> Path:
    path = tmp_path / "p.toml"
    path.write_text(PROTOCOL)
    return path


def cli(args, capsys) -> tuple[int, str]:
    code = run([str(a) for a in args])
    return code, capsys.readouterr().err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--seed", "-1"], "--seed"),
        (["--seed", str(2**64)], "--seed"),
        (["--device", "tpu"], "unknown device"),
        (["--day", "5"], "--day"),
        (["--day", "0"], "--day"),
        (["--sobol-n", "48"], "--sobol-n"),
        (["--corners", "-1"], "--corners"),
        (["--top-k", "x"], "--top-k"),
    ],
)
def test_bad_options_are_one_line_before_any_work(tmp_path, capsys, proto, extra, expected):
    t0 = time.perf_counter()
    code, err = cli(["sensitivity", proto, "--out", tmp_path / "out", "--day", "2", *extra], capsys)
    assert time.perf_counter() - t0 < 10
    assert code == 2
    assert expected in one_error_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.toml"]


def test_cuda_without_cuda(tmp_path, capsys, proto, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, err = cli(["sensitivity", proto, "--out", tmp_path / "out", "--device", "cuda"], capsys)
    assert code == 2
    line = one_error_line(err)
    assert "--device" in line and "CUDA is not available" in line
    assert not (tmp_path / "out").exists()


def test_memory_is_estimated_and_refused(tmp_path, capsys, monkeypatch):
    long = tmp_path / "long.toml"
    long.write_text("days = 36500\n")
    monkeypatch.delenv(MEMORY_ENV, raising=False)
    code, err = cli(["sensitivity", long, "--out", tmp_path / "out", "--day", "36500"], capsys)
    assert code == 2
    line = one_error_line(err)
    assert "long.toml" in line and "GB" in line and MEMORY_ENV in line
    assert not (tmp_path / "out").exists()


def test_existing_foreign_output_is_refused(tmp_path, capsys, proto):
    out = tmp_path / "out"
    out.mkdir()
    (out / "local.csv").write_text("mine")
    code, err = cli(["sensitivity", proto, "--out", out, "--day", "2", "--overwrite"], capsys)
    assert code == 2 and "not written by biofluxopt" in one_error_line(err)
    assert (out / "local.csv").read_text() == "mine"


def strict_loads(text: str):
    def refuse(token):
        raise ValueError(token)

    return json.loads(text, parse_constant=refuse)


def test_small_run_writes_strict_json_and_a_marker(tmp_path, capsys, proto):
    out = tmp_path / "sens"
    args = [
        "sensitivity",
        proto,
        "--out",
        out,
        "--day",
        "2",
        "--sobol-n",
        "2",
        "--top-k",
        "1",
        "--corners",
        "1",
    ]
    code, err = cli(args, capsys)
    assert code == 0, err
    names = sorted(p.name for p in out.iterdir())
    assert names == [MARKER_NAME, "leverage.json", "local.csv", "sensitivity.png", "sobol.csv"]
    meta = strict_loads((out / "leverage.json").read_text())
    assert meta["day"] == 2 and meta["sobol"]["n_base"] == 2
    marker = json.loads((out / MARKER_NAME).read_text())
    assert marker["command"] == "sensitivity"
    assert b"Software" not in (out / "sensitivity.png").read_bytes()
    code, err = cli(args, capsys)
    assert code == 2 and "--overwrite" in one_error_line(err)
