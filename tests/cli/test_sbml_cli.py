"""End-to-end runs of ``biofluxopt export-sbml``: the file, its validity and refusals."""

from __future__ import annotations

import os

import pytest

from biofluxopt.cli import main

libsbml = pytest.importorskip("libsbml")

TINY = """
days = 4
patients = 2
seed = 1
[host]
intrinsic_factor = "absent"
[diet]
b12_ug_per_day = 2.0
meals_per_day = 2
[[supplement]]
route = "intramuscular"
dose_ug = 1000
days = [1]
"""


def run(args):
    with pytest.raises(SystemExit) as exc:
        main(args)
    return exc.value.code or 0


@pytest.fixture
def proto(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(TINY)
    return path


def test_export_writes_valid_sbml(proto, tmp_path, capsys):
    out = tmp_path / "sub" / "model.xml"
    assert run(["export-sbml", str(proto), "--out", str(out), "--patient", "1"]) == 0
    doc = libsbml.readSBMLFromString(out.read_text(encoding="utf-8"))
    assert (doc.getLevel(), doc.getVersion()) == (3, 2)
    model = doc.getModel()
    assert model.getEvent("day_start") is not None
    assert model.getNumEvents() == 1 + 2  # two meal slots
    assert model.getParameter("intrinsic_factor_status").getValue() == 2.0
    assert "Patient 1 of 2" in model.getNotesString()
    assert "0 errors" in capsys.readouterr().out
    # patients differ (sampled parameters), and the same seed gives the same file
    other = tmp_path / "p0.xml"
    assert run(["export-sbml", str(proto), "--out", str(other)]) == 0
    assert other.read_text() != out.read_text()
    again = tmp_path / "again.xml"
    assert run(["export-sbml", str(proto), "--out", str(again), "--patient", "1"]) == 0
    assert again.read_bytes() == out.read_bytes()
    seeded = tmp_path / "seeded.xml"
    args = ["export-sbml", str(proto), "--out", str(seeded), "--patient", "1", "--seed", "7"]
    assert run(args) == 0
    assert seeded.read_text() != out.read_text()


def test_unknown_patient_is_one_line_and_writes_nothing(proto, tmp_path, capsys):
    out = tmp_path / "model.xml"
    assert run(["export-sbml", str(proto), "--out", str(out), "--patient", "2"]) == 2
    err = capsys.readouterr().err
    assert "patient 2 does not exist" in err and "indices 0 to 1" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()
    assert os.listdir(tmp_path) == ["p.toml"]


def test_existing_output_needs_overwrite(proto, tmp_path, capsys):
    out = tmp_path / "model.xml"
    out.write_text("keep me")
    assert run(["export-sbml", str(proto), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_text() == "keep me"
    assert run(["export-sbml", str(proto), "--out", str(out), "--overwrite"]) == 0
    assert out.read_text().startswith("<?xml")


def test_bad_inputs_are_refused_before_work(proto, tmp_path, capsys):
    assert run(["export-sbml", str(proto), "--out", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert run(["export-sbml", str(proto), "--out", str(proto), "--overwrite"]) == 2
    assert "is the protocol file" in capsys.readouterr().err
    assert proto.read_text() == TINY
    bad = tmp_path / "bad.toml"
    bad.write_text("days = 3\n[diet]\nb12_ug_per_day = -1\n")
    assert run(["export-sbml", str(bad), "--out", str(tmp_path / "m.xml")]) == 2
    err = capsys.readouterr().err
    assert "bad.toml" in err and "b12_ug_per_day" in err
    assert not (tmp_path / "m.xml").exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert run(["export-sbml", str(proto), "--out", str(blocker / "m.xml")]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err
