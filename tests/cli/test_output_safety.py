"""``--out`` safety through the command line (Deliver point 1 of issue 9), on ``simulate``.

Every refusal happens before any computation: the tests that expect one use a protocol that
would take minutes to simulate, so a slow refusal fails them.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from biofluxopt._util import MARKER_NAME
from biofluxopt.cli import run

TINY = """
days = 2
patients = 2
seed = 1
[diet]
b12_ug_per_day = 4.0
"""

# Minutes of work (50 years, 1000 patients) but well inside the memory limit.
SLOW = """
days = 18250
patients = 100
"""

RUN_CLI = "import sys; from biofluxopt.cli import main; main(sys.argv[1:])"


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def cli(args, capsys) -> tuple[int, str]:
    code = run([str(a) for a in args])
    return code, capsys.readouterr().err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture
def slow(tmp_path) -> Path:
    path = tmp_path / "slow.toml"
    path.write_text(SLOW)
    return path


@pytest.fixture
def tiny(tmp_path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_existing_directory_with_inputs_is_refused_and_untouched(tmp_path, capsys, overwrite):
    """The issue's data-loss case: DIR holds base.toml and other_data.csv."""
    data = tmp_path / "DIR"
    data.mkdir()
    (data / "base.toml").write_text(SLOW)
    (data / "other_data.csv").write_text("a,b\n1,2\n")
    t0 = time.perf_counter()
    code, err = cli(["simulate", data / "base.toml", "--out", data, *overwrite], capsys)
    assert time.perf_counter() - t0 < 10
    assert code == 2
    line = one_error_line(err)
    assert "--out" in line and str(data) in line
    assert listing(data) == ["base.toml", "other_data.csv"]
    assert (data / "base.toml").read_text() == SLOW
    assert listing(tmp_path) == ["DIR"]


def test_rerun_needs_overwrite_which_keeps_inputs_and_foreign_files(tmp_path, capsys):
    out = tmp_path / "run"
    proto = tmp_path / "p.toml"
    proto.write_text(TINY)
    assert cli(["simulate", proto, "--out", out], capsys)[0] == 0
    first = json.loads((out / MARKER_NAME).read_text())
    assert first["command"] == "simulate"
    assert set(first["files"]) == {
        "protocol.toml",
        "summary.json",
        "trajectory.csv",
        "trajectory.png",
        "trajectory_full.csv",
    }
    (out / "notes.txt").write_text("mine")
    code, err = cli(["simulate", out / "protocol.toml", "--out", out], capsys)
    assert code == 2 and "--overwrite" in one_error_line(err)
    before = (out / "trajectory.csv").read_text()
    # rerun from the copied protocol inside OUT, with another seed
    code, err = cli(
        ["simulate", out / "protocol.toml", "--out", out, "--overwrite", "--seed", "5"], capsys
    )
    assert code == 0, err
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "protocol.toml").read_text() == TINY
    assert (out / "trajectory.csv").read_text() != before
    assert json.loads((out / "summary.json").read_text())["seed"] == 5
    assert listing(tmp_path) == ["p.toml", "run"]


def test_overwrite_refuses_another_commands_output(tmp_path, capsys, slow):
    out = tmp_path / "run"
    out.mkdir()
    (out / "cohort.csv").write_text("x\n1\n")
    (out / MARKER_NAME).write_text(
        json.dumps({"command": "bn cohort", "version": "0", "files": ["cohort.csv"]})
    )
    code, err = cli(["simulate", slow, "--out", out, "--overwrite"], capsys)
    assert code == 2 and "bn cohort" in one_error_line(err)
    assert (out / "cohort.csv").read_text() == "x\n1\n"


def test_out_naming_a_file_is_refused(tmp_path, capsys, slow):
    target = tmp_path / "results.csv"
    target.write_text("precious")
    code, err = cli(["simulate", slow, "--out", target, "--overwrite"], capsys)
    assert code == 2
    assert "existing file" in one_error_line(err)
    assert target.read_text() == "precious"
    assert listing(tmp_path) == ["results.csv", "slow.toml"]


def test_out_is_the_protocol_itself(tmp_path, capsys, slow):
    code, err = cli(["simulate", slow, "--out", slow], capsys)
    assert code == 2 and "existing file" in one_error_line(err)
    assert slow.read_text() == SLOW


def test_trailing_slash_creates_a_directory(tmp_path, capsys, tiny):
    code, err = cli(["simulate", tiny, "--out", f"{tmp_path / 'newdir'}/"], capsys)
    assert code == 0, err
    assert (tmp_path / "newdir").is_dir()
    assert "trajectory.csv" in listing(tmp_path / "newdir")
    assert listing(tmp_path) == ["newdir", "tiny.toml"]


def test_dot_is_refused_in_a_non_empty_foreign_directory(tmp_path, capsys, monkeypatch, slow):
    monkeypatch.chdir(tmp_path)
    code, err = cli(["simulate", "slow.toml", "--out", "."], capsys)
    assert code == 2 and "not written by biofluxopt" in one_error_line(err)
    assert listing(tmp_path) == ["slow.toml"]


def test_dot_in_an_empty_directory(tmp_path, capsys, monkeypatch, tiny):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code, err = cli(["simulate", tiny, "--out", "."], capsys)
    assert code == 0, err
    assert "summary.json" in listing(work) and MARKER_NAME in listing(work)
    assert listing(tmp_path) == ["tiny.toml", "work"]


def test_outputs_follow_the_umask(tmp_path, capsys, tiny):
    old = os.umask(0o027)
    try:
        code, err = cli(["simulate", tiny, "--out", tmp_path / "run"], capsys)
    finally:
        os.umask(old)
    assert code == 0, err
    out = tmp_path / "run"
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    for f in out.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o640, f.name


def test_stale_temporary_of_a_killed_run_is_removed(tmp_path, capsys, tiny):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    stale = tmp_path / f".run.biofluxopt-tmp-{proc.pid}"
    stale.mkdir()
    (stale / "trajectory.csv").write_text("patient,day\np0000,")
    code, err = cli(["simulate", tiny, "--out", tmp_path / "run"], capsys)
    assert code == 0, err
    assert listing(tmp_path) == ["run", "tiny.toml"]


def test_failed_run_leaves_no_output(tmp_path, capsys, tiny, monkeypatch):
    from biofluxopt import sim

    def boom(*args, **kwargs):
        raise RuntimeError("solver exploded")

    monkeypatch.setattr(sim, "run_protocol", boom)  # the public name the command calls
    code, err = cli(["simulate", tiny, "--out", tmp_path / "a" / "run"], capsys)
    assert code == 1
    line = one_error_line(err)
    assert "internal error" in line and "solver exploded" in line and "report" in line
    assert listing(tmp_path) == ["tiny.toml"]


def unprivileged(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a directory read-only")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", "--", *cmd]


@pytest.mark.parametrize("where", ["parent", "out"])
def test_read_only_directory_is_refused_before_computing(tmp_path, slow, where):
    ro = tmp_path / "ro"
    ro.mkdir()
    out = ro / "run" if where == "parent" else ro
    os.chmod(ro, 0o555)
    t0 = time.perf_counter()
    res = subprocess.run(
        unprivileged([sys.executable, "-c", RUN_CLI, "simulate", str(slow), "--out", str(out)]),
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "40"},
    )
    elapsed = time.perf_counter() - t0
    assert res.returncode == 2, res.stderr
    line = one_error_line(res.stderr)
    assert "--out" in line and "cannot write" in line
    assert elapsed < 30  # the 100-patient, 50-year run would take minutes
    assert listing(ro) == []


def test_sigterm_removes_the_temporary(tmp_path, slow):
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN_CLI, "simulate", str(slow), "--out", str(tmp_path / "run")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    tmp = tmp_path / f".run.biofluxopt-tmp-{proc.pid}"
    deadline = time.monotonic() + 60
    while not tmp.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert tmp.exists(), "the run never started"
    time.sleep(0.5)
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert listing(tmp_path) == ["slow.toml"]


def test_out_as_a_broken_symlink_is_refused(tmp_path, capsys, slow):
    link = tmp_path / "results"
    link.symlink_to(tmp_path / "gone" / "results")
    t0 = time.perf_counter()
    code, err = cli(["simulate", slow, "--out", link], capsys)
    assert time.perf_counter() - t0 < 10
    assert code == 2
    line = one_error_line(err)
    assert str(link) in line and "broken symbolic link" in line and "--out" in line
    assert listing(tmp_path) == ["results", "slow.toml"]
    assert link.is_symlink() and not (tmp_path / "gone").exists()
