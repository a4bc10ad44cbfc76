"""Atomic output helpers: a failed block leaves nothing behind, a successful one replaces."""

from __future__ import annotations

import pytest

from biofluxopt._util import (
    BioFluxOptError,
    ConfigError,
    atomic_output_dir,
    atomic_write_text,
)


def test_atomic_dir_success_creates_and_replaces(tmp_path):
    out = tmp_path / "run"
    with atomic_output_dir(out) as tmp:
        (tmp / "a.txt").write_text("1")
        assert not out.exists()
    assert (out / "a.txt").read_text() == "1"
    with atomic_output_dir(out) as tmp:
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_atomic_dir_failure_leaves_nothing(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError), atomic_output_dir(out) as tmp:
        (tmp / "half.txt").write_text("x")
        raise RuntimeError("boom")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_failure_keeps_previous_output(tmp_path):
    out = tmp_path / "run"
    with atomic_output_dir(out) as tmp:
        (tmp / "good.txt").write_text("ok")
    with pytest.raises(ValueError), atomic_output_dir(out):
        raise ValueError
    assert (out / "good.txt").read_text() == "ok"


def test_atomic_dir_refuses_overwrite_when_asked(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with pytest.raises(FileExistsError), atomic_output_dir(out, overwrite=False):
        pass


def test_atomic_write_text(tmp_path):
    path = tmp_path / "sub" / "f.json"
    atomic_write_text(path, "{}")
    assert path.read_text() == "{}"
    assert [p.name for p in path.parent.iterdir()] == ["f.json"]


def test_error_message_names_source_and_field():
    err = ConfigError("must be >= 0 (got -1)", source="protocol.toml", field="diet.b12_ug_per_day")
    assert str(err) == "protocol.toml: diet.b12_ug_per_day: must be >= 0 (got -1)"
    assert isinstance(err, BioFluxOptError)
    assert str(BioFluxOptError("plain")) == "plain"
