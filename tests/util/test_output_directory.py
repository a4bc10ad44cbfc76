"""output_directory: the one output-safety mechanism (never destroys a user's files)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from biofluxopt import __version__
from biofluxopt._util import MARKER_NAME, ConfigError, atomic_write_text, output_directory


def write(out, files: dict[str, str], *, overwrite=False, command="simulate", inputs=()):
    with output_directory(out, overwrite=overwrite, command=command, inputs=inputs) as tmp:
        for name, text in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)
    return Path(out)


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_new_directory_gets_files_and_marker(tmp_path):
    out = write(tmp_path / "run", {"a.csv": "1", "sub/b.txt": "2"})
    assert listing(out) == [MARKER_NAME, "a.csv", "sub"]
    marker = json.loads((out / MARKER_NAME).read_text())
    assert marker == {
        "command": "simulate",
        "version": __version__,
        "files": ["a.csv", "sub/b.txt"],
    }
    assert listing(tmp_path) == ["run"]  # no temporary left


def test_yielded_directory_is_an_empty_hidden_sibling(tmp_path):
    with output_directory(tmp_path / "run", overwrite=False, command="x") as tmp:
        assert tmp.parent == tmp_path.resolve()
        assert tmp.name == f".run.biofluxopt-tmp-{os.getpid()}"
        assert list(tmp.iterdir()) == []
        assert not (tmp_path / "run").exists()


def test_failure_leaves_nothing_not_even_created_parents(tmp_path):
    out = tmp_path / "a" / "b" / "run"
    with pytest.raises(RuntimeError), output_directory(out, overwrite=False, command="x") as tmp:
        (tmp / "half.csv").write_text("partial")
        raise RuntimeError("boom")
    assert listing(tmp_path) == []


def test_keyboard_interrupt_also_cleans_up(tmp_path):
    with (
        pytest.raises(KeyboardInterrupt),
        output_directory(tmp_path / "r", overwrite=False, command="x") as tmp,
    ):
        (tmp / "half.csv").write_text("partial")
        raise KeyboardInterrupt
    assert listing(tmp_path) == []


def test_existing_file_is_refused_and_kept(tmp_path):
    target = tmp_path / "results"
    target.write_text("precious")
    for overwrite in (False, True):
        with pytest.raises(ConfigError) as exc:
            write(target, {"a": "1"}, overwrite=overwrite)
        assert exc.value.field == "--out"
        assert "existing file" in str(exc.value)
    assert target.read_text() == "precious"
    assert listing(tmp_path) == ["results"]


@pytest.mark.parametrize("overwrite", [False, True])
def test_foreign_non_empty_directory_is_refused_even_with_overwrite(tmp_path, overwrite):
    out = tmp_path / "data"
    out.mkdir()
    (out / "base.toml").write_text("days = 3")
    (out / "other_data.csv").write_text("x,y")
    with pytest.raises(ConfigError) as exc:
        write(out, {"trajectory.csv": "new"}, overwrite=overwrite, inputs=[out / "base.toml"])
    assert "not written by biofluxopt" in str(exc.value)
    assert str(out) in str(exc.value)
    assert listing(out) == ["base.toml", "other_data.csv"]
    assert (out / "other_data.csv").read_text() == "x,y"
    assert listing(tmp_path) == ["data"]


def test_empty_existing_directory_is_used_and_keeps_its_mode(tmp_path):
    out = tmp_path / "empty"
    out.mkdir(mode=0o700)
    os.chmod(out, 0o700)
    write(out, {"a.csv": "1"})
    assert listing(out) == [MARKER_NAME, "a.csv"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert listing(tmp_path) == ["empty"]


def test_own_output_needs_overwrite(tmp_path):
    out = write(tmp_path / "run", {"a.csv": "1"})
    with pytest.raises(ConfigError, match="pass --overwrite"):
        write(out, {"a.csv": "2"})
    assert (out / "a.csv").read_text() == "1"


def test_overwrite_replaces_only_listed_files_and_keeps_foreign_and_inputs(tmp_path):
    out = write(tmp_path / "run", {"a.csv": "1", "old_only.csv": "old", "protocol.toml": "p"})
    (out / "my_notes.txt").write_text("mine")
    write(
        out,
        {"a.csv": "2", "protocol.toml": "p", "new.csv": "n"},
        overwrite=True,
        inputs=[out / "protocol.toml"],
    )
    assert listing(out) == [MARKER_NAME, "a.csv", "my_notes.txt", "new.csv", "protocol.toml"]
    assert (out / "a.csv").read_text() == "2"
    assert (out / "my_notes.txt").read_text() == "mine"
    files = json.loads((out / MARKER_NAME).read_text())["files"]
    assert files == ["a.csv", "new.csv", "protocol.toml"]
    assert listing(tmp_path) == ["run"]


def test_overwrite_never_deletes_an_input_listed_in_the_marker(tmp_path):
    out = write(tmp_path / "run", {"cohort.csv": "rows"})
    write(out, {"network.bif": "net"}, overwrite=True, inputs=[out / "cohort.csv"])
    assert (out / "cohort.csv").read_text() == "rows"
    files = json.loads((out / MARKER_NAME).read_text())["files"]
    assert files == ["cohort.csv", "network.bif"]


def test_new_output_differing_from_an_input_of_the_same_name_is_refused(tmp_path):
    out = write(tmp_path / "run", {"protocol.toml": "days = 3"})
    (out / "protocol.toml").write_text("days = 5")  # the user edited it, then reran
    with pytest.raises(ConfigError, match="would replace the input file"):
        write(
            out,
            {"protocol.toml": "days = 9", "a": "1"},
            overwrite=True,
            inputs=[out / "protocol.toml"],
        )
    assert (out / "protocol.toml").read_text() == "days = 5"
    assert listing(out) == [MARKER_NAME, "protocol.toml"]
    assert listing(tmp_path) == ["run"]


def test_new_output_colliding_with_a_foreign_file_is_refused(tmp_path):
    out = write(tmp_path / "run", {"a.csv": "1"})
    (out / "summary.json").write_text("user's own")
    with pytest.raises(ConfigError, match="was not written by biofluxopt"):
        write(out, {"a.csv": "2", "summary.json": "{}"}, overwrite=True)
    assert (out / "summary.json").read_text() == "user's own"
    assert (out / "a.csv").read_text() == "1"


def test_overwrite_refuses_the_output_of_another_command(tmp_path):
    out = write(tmp_path / "run", {"cohort.csv": "rows"}, command="bn cohort")
    with pytest.raises(ConfigError, match="output of `bn cohort`"):
        write(out, {"x": "1"}, overwrite=True, command="bn learn")
    assert listing(out) == [MARKER_NAME, "cohort.csv"]


def test_tampered_marker_cannot_delete_outside(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    out = write(tmp_path / "run", {"a": "1"})
    marker = {"command": "simulate", "version": "0", "files": ["../victim.txt", str(victim), "a"]}
    (out / MARKER_NAME).write_text(json.dumps(marker))
    write(out, {"b": "2"}, overwrite=True)
    assert victim.read_text() == "keep"
    assert listing(out) == [MARKER_NAME, "b"]


def test_trailing_slash(tmp_path):
    write(str(tmp_path / "new") + "/", {"a": "1"})
    assert (tmp_path / "new").is_dir()
    assert listing(tmp_path / "new") == [MARKER_NAME, "a"]
    assert listing(tmp_path) == ["new"]


def test_dot_is_used_when_empty_and_refused_when_foreign(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    write(".", {"a": "1"})
    assert listing(empty) == [MARKER_NAME, "a"]
    assert listing(tmp_path) == ["empty"]
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    monkeypatch.chdir(home)
    with pytest.raises(ConfigError, match="not written by biofluxopt"):
        write(".", {"a": "1"}, overwrite=True)
    assert listing(home) == ["thesis.tex"]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_permissions_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        out = tmp_path / "run"
        with output_directory(out, overwrite=False, command="x") as tmp:
            (tmp / "a.csv").write_text("1")
            (tmp / "sub").mkdir()
            atomic_write_text(tmp / "sub" / "b.json", "{}")  # mkstemp-style 0600 is fixed
        single = tmp_path / "single.txt"
        atomic_write_text(single, "x")
    finally:
        os.umask(old)
    fmode, dmode = 0o666 & ~umask, 0o777 & ~umask
    assert stat.S_IMODE(out.stat().st_mode) == dmode
    assert stat.S_IMODE((out / "sub").stat().st_mode) == dmode
    for f in ("a.csv", "sub/b.json", MARKER_NAME):
        assert stat.S_IMODE((out / f).stat().st_mode) == fmode, f
    assert stat.S_IMODE(single.stat().st_mode) == fmode


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    pid = dead_pid()
    stale = tmp_path / f".run.biofluxopt-tmp-{pid}"
    stale.mkdir()
    (stale / "trajectory.csv").write_text("partial")
    stale_file = tmp_path / f".run.biofluxopt-tmp-{pid}-1"
    stale_file.write_text("partial")
    alive = tmp_path / f".run.biofluxopt-tmp-{os.getppid()}"  # a live process: kept
    alive.mkdir()
    other = tmp_path / f".other.biofluxopt-tmp-{pid}"  # another output's: not ours to judge
    other.mkdir()
    write(tmp_path / "run", {"a": "1"})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, other.name, "run"])


def test_sigkill_during_a_run_is_cleaned_up_by_the_next(tmp_path):
    script = textwrap.dedent(
        f"""
        import time
        from biofluxopt._util import output_directory
        with output_directory({str(tmp_path / "run")!r}, overwrite=False, command="x") as t:
            (t / "trajectory.csv").write_text("partial")
            print("ready", flush=True)
            time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert leftovers == [f".run.biofluxopt-tmp-{proc.pid}"]  # no `run`, only the temporary
    write(tmp_path / "run", {"a": "1"})
    assert listing(tmp_path) == ["run"]


def unprivileged(cmd: list[str]) -> list[str]:
    """``cmd`` run without the right to ignore file permissions (root drops it by setpriv)."""
    if os.geteuid() != 0:
        return cmd
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a directory read-only")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", "--", *cmd]


def test_read_only_parent_is_refused_on_entry(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    script = textwrap.dedent(
        f"""
        from biofluxopt._util import ConfigError, output_directory
        try:
            with output_directory({str(ro / "run")!r}, overwrite=False, command="x"):
                print("entered")
        except ConfigError as exc:
            print("refused", exc.field, exc)
        """
    )
    res = subprocess.run(
        unprivileged([sys.executable, "-c", script]), capture_output=True, text=True, check=True
    )
    assert res.stdout.startswith("refused --out"), res.stdout + res.stderr
    assert "cannot write" in res.stdout
    assert listing(ro) == []


def test_read_only_existing_output_is_refused_on_entry(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    os.chmod(out, 0o555)
    script = textwrap.dedent(
        f"""
        import time
        from biofluxopt._util import ConfigError, output_directory
        t0 = time.perf_counter()
        try:
            with output_directory({str(out)!r}, overwrite=False, command="x"):
                print("entered")
        except ConfigError as exc:
            print("refused", exc.field, round(time.perf_counter() - t0, 3))
        """
    )
    res = subprocess.run(
        unprivileged([sys.executable, "-c", script]), capture_output=True, text=True, check=True
    )
    assert res.stdout.startswith("refused --out"), res.stdout + res.stderr
    assert float(res.stdout.split()[-1]) < 1.0
    assert listing(tmp_path) == ["run"]


def test_commit_is_atomic_for_a_new_directory(tmp_path):
    """Until the block ends, ``out`` does not exist; afterwards it holds every file."""
    out = tmp_path / "run"
    with output_directory(out, overwrite=False, command="x") as tmp:
        for i in range(20):
            (tmp / f"f{i}.csv").write_text(str(i))
            assert not out.exists()
        t0 = time.perf_counter()
    assert time.perf_counter() - t0 < 1.0
    assert len(list(out.iterdir())) == 21


@pytest.mark.parametrize("name", ["", "  ", "a\0b"])
def test_unusable_names_are_refused(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="not a usable directory name") as exc:
        write(name, {"a": "1"})
    assert exc.value.field == "--out"
    assert listing(tmp_path) == []


@pytest.mark.parametrize("kind", ["missing target", "loop", "parent"])
def test_broken_symlink_is_refused_and_nothing_is_created(tmp_path, kind):
    """A dangling ``--out`` link would have sent the output to wherever it points."""
    link = tmp_path / "out"
    elsewhere = tmp_path / "elsewhere" / "target"
    if kind == "loop":
        link.symlink_to(tmp_path / "out")
    else:
        link.symlink_to(elsewhere)
    out = link / "run" if kind == "parent" else link
    with pytest.raises(ConfigError) as exc:
        write(out, {"a.csv": "1"})
    assert exc.value.field == "--out"
    message = str(exc.value)
    assert "broken symbolic link" in message and str(link) in message
    assert "\n" not in message
    assert listing(tmp_path) == ["out"] and link.is_symlink()
    assert not (tmp_path / "elsewhere").exists()


def test_symlink_to_an_existing_directory_is_followed(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    write(link, {"a.csv": "1"})
    assert link.is_symlink() and listing(real) == [MARKER_NAME, "a.csv"]
