"""The root command: version, help, and user errors as exit code 2."""

from __future__ import annotations

import pytest

from biofluxopt import __version__
from biofluxopt.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_unknown_command_is_an_error():
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code != 0


@pytest.mark.parametrize("group", ["simulate", "bn", "synth"])
def test_command_groups_are_registered(group, capsys):
    with pytest.raises(SystemExit) as exc:
        main([group, "--help"])
    assert exc.value.code == 0
    assert "Usage" in capsys.readouterr().out
