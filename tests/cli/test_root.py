"""The root command: version, help, and every failure as one line (exit 2, or 1 if internal)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import typer

from biofluxopt import __version__
from biofluxopt.cli import app, main, run

RUN_CLI = "import sys; from biofluxopt.cli import main; main(sys.argv[1:])"


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


@pytest.mark.parametrize("group", ["simulate", "sensitivity", "bn", "synth"])
def test_command_groups_are_registered(group, capsys):
    with pytest.raises(SystemExit) as exc:
        main([group, "--help"])
    assert exc.value.code == 0
    assert "Usage" in capsys.readouterr().out


def test_root_help_lists_only_what_exists(capsys):
    assert run(["--help"]) == 0
    text = capsys.readouterr().out
    command = typer.main.get_command(app)
    assert sorted(command.commands) == [
        "bn",
        "evaluate",
        "export-sbml",
        "sensitivity",
        "simulate",
        "synth",
        "train",
        "trial",
        "tune",
    ]
    for name in command.commands:
        assert name in text


@pytest.mark.parametrize(
    "path", [[], ["simulate"], ["sensitivity"], ["train"], ["tune"], ["trial"]]
)
def test_every_option_has_help_text(path):
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    assert command.help or command.callback.__doc__
    for param in command.params:
        assert (getattr(param, "help", None) or "").strip(), f"{path} {param.name}: no help"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["no-such-command"], "No such command"),
        (["simulate", "--nope"], "--nope"),
        (["simulate", "p.toml"], "--out: missing option"),
        (["simulate"], "PROTOCOL: missing argument"),
        (["simulate", "p.toml", "--out", "o", "--seed", "abc"], "--seed:"),
        (["sensitivity", "p.toml", "--out", "o", "--day", "0"], "--day:"),
        (["bn", "query", "--model"], "--model"),
    ],
)
def test_usage_errors_are_one_line_exit_2(capsys, args, expected):
    assert run(args) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ") and expected in lines[0]


def test_no_arguments_shows_the_help(capsys):
    assert run([]) == 2
    assert "simulate" in capsys.readouterr().out


def test_internal_errors_exit_1_with_a_report_hint(capsys, monkeypatch, tmp_path):
    import biofluxopt.sim as sim

    def broken(path):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(sim, "load_protocol", broken)
    (tmp_path / "p.toml").write_text("days = 2\n")
    assert run(["simulate", str(tmp_path / "p.toml"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err
    assert "internal error: ZeroDivisionError: float division by zero" in lines[0]
    assert "report" in lines[0]
    monkeypatch.setenv("BIOFLUXOPT_TRACEBACK", "1")
    with pytest.raises(ZeroDivisionError):
        run(["simulate", str(tmp_path / "p.toml"), "--out", str(tmp_path / "o")])


def test_os_errors_are_one_line_exit_2(capsys, monkeypatch, tmp_path):
    import biofluxopt.sim as sim

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(sim, "load_protocol", denied)
    (tmp_path / "p.toml").write_text("days = 2\n")
    assert run(["simulate", str(tmp_path / "p.toml"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: permission denied: {tmp_path / 'p.toml'}"


@pytest.mark.parametrize(
    "args",
    [
        ["simulate", "{dir}/bin.toml", "--out", "{dir}/out"],
        ["simulate", "{dir}/missing.toml", "--out", "{dir}/out"],
        ["simulate", "{dir}/bin.toml", "--out", "{dir}/out", "--seed", str(2**64)],
        ["sensitivity", "{dir}/bin.toml", "--out", "{dir}/out"],
        ["simulate", "--seed", "not-a-number-" + "x" * 200, "{dir}/bin.toml", "--out", "o"],
    ],
)
def test_errors_stay_on_one_line_on_a_narrow_terminal(tmp_path, args):
    """A subprocess, as a user runs it, with a 30-column terminal: one line, no traceback."""
    (tmp_path / ("x" * 60 + "_dir")).mkdir()
    deep = tmp_path / ("x" * 60 + "_dir")
    (deep / "bin.toml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    argv = [a.format(dir=deep) for a in args]
    res = subprocess.run(
        [sys.executable, "-c", RUN_CLI, *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "30", "TERM": "xterm-256color"},
    )
    assert res.returncode == 2
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in res.stderr
    assert not (deep / "out").exists()
