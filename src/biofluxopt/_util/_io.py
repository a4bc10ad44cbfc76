"""Safe outputs: never destroy a user's files, never leave half-written output behind.

:func:`output_directory` is the one mechanism every command uses for its ``--out`` directory:

* an ``--out`` that names an existing file, or an existing non-empty directory that biofluxopt
  did not write, is refused; a biofluxopt output directory is replaced only with
  ``--overwrite``, and then only the files listed in its marker are deleted;
* writability is checked before the command computes anything;
* results are written into a temporary sibling directory and moved into place only when the
  command succeeds; a failed run leaves nothing behind, and temporary directories left by a
  killed run are removed by the next run;
* files and directories get the permissions the umask allows, like any other program's output.

Every output directory holds a marker file, :data:`MARKER_NAME`, recording the command, the
version and the files written.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from ._errors import ConfigError

MARKER_NAME = ".biofluxopt-output.json"
"""Name of the marker file written into every output directory."""

_TMP_TAG = ".biofluxopt-tmp-"
_TMP_RE = re.compile(r"^\.(?P<name>.*)\.biofluxopt-tmp-(?P<pid>\d+)(?:-\d+)?$")


def current_umask() -> int:
    """Return the process umask without changing it (when ``/proc`` allows)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _file_mode() -> int:
    return 0o666 & ~current_umask()


def _dir_mode() -> int:
    return 0o777 & ~current_umask()


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else (or cannot tell): leave it alone
    return True


def _remove_stale_temps(directory: Path, name: str | None = None) -> None:
    """Remove ``.NAME.biofluxopt-tmp-PID`` entries in ``directory`` whose process is gone.

    Parameters
    ----------
    directory : Path
        Where to look.
    name : str, optional
        Only temporaries of this output name; ``None``: any name.
    """
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        m = _TMP_RE.match(entry.name)
        if m is None or (name is not None and m["name"] != name) or _pid_alive(int(m["pid"])):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def _temp_name(directory: Path, name: str) -> Path:
    base = directory / f".{name}{_TMP_TAG}{os.getpid()}"
    candidate, k = base, 0
    while os.path.lexists(candidate):
        k += 1
        candidate = base.with_name(f"{base.name}-{k}")
    return candidate


def _move(src: Path, dst: Path) -> None:
    try:
        os.replace(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        shutil.copy2(src, dst)
        os.unlink(src)


def _files_under(root: Path) -> list[str]:
    """Relative POSIX paths of every regular file (or link) under ``root``, sorted."""
    found = []
    for dirpath, _dirnames, filenames in os.walk(root):
        for f in filenames:
            found.append((Path(dirpath) / f).relative_to(root).as_posix())
    return sorted(found)


def _read_marker(directory: Path) -> dict | None:
    """The marker of ``directory`` as a dict, or ``None`` when absent or unreadable."""
    try:
        doc = json.loads((directory / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), list):
        return None
    return doc


def _safe_listed(directory: Path, listed: Iterable[object]) -> list[str]:
    """Marker entries that are plain relative paths inside ``directory`` (a tampered marker
    can never make us delete anything outside it)."""
    keep = []
    for item in listed:
        if not isinstance(item, str) or not item or item == MARKER_NAME:
            continue
        rel = Path(item)
        if rel.is_absolute() or ".." in rel.parts or rel.as_posix() != item:
            continue
        keep.append(item)
    return keep


def _write_marker(directory: Path, command: str, files: list[str]) -> None:
    from biofluxopt import __version__

    doc = {"command": command, "version": __version__, "files": sorted(set(files))}
    atomic_write_text(directory / MARKER_NAME, json.dumps(doc, indent=2) + "\n")


def _probe_writable(directory: Path, shown: str) -> None:
    """Create and delete a file in ``directory``; raise ConfigError naming ``--out`` if not."""
    probe = _temp_name(directory, "probe")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(
            f"cannot write to {shown}: {exc.strerror or exc}; choose a writable directory",
            field="--out",
        ) from exc


def _broken_link(path: Path) -> Path | None:
    """The first component of ``path`` that is a symbolic link to nothing (a missing target or
    a loop), or ``None``. Components are checked as written, before any resolution."""
    parts = path.parts
    for i in range(1, len(parts) + 1):
        prefix = Path(*parts[:i])
        if not os.path.lexists(prefix):
            return None  # this and what follows is missing: it will be created
        if os.path.islink(prefix) and not os.path.exists(prefix):
            return prefix
    return None


def _same_file(a: Path, b: Path) -> bool:
    with contextlib.suppress(OSError):
        return os.path.samefile(a, b)
    return False


@contextlib.contextmanager
def output_directory(
    out: str | Path,
    *,
    overwrite: bool,
    command: str,
    inputs: Iterable[str | Path] = (),
) -> Iterator[Path]:
    """Yield an empty temporary directory whose files become ``out`` when the block succeeds.

    Call it *before* computing: every refusal (existing file, foreign directory, no
    ``--overwrite``, no write permission) happens on entry, in milliseconds.

    Parameters
    ----------
    out : str or Path
        The output directory (``--out``). May be missing (created, with missing parents), an
        empty directory, ``"."``, or end in a slash.
    overwrite : bool
        ``--overwrite``: allow replacing a directory that biofluxopt wrote (it holds
        :data:`MARKER_NAME`) with the output of the same command. Only files listed in the
        marker are deleted or replaced; anything else in the directory is kept.
    command : str
        The command writing the output, e.g. ``"simulate"`` or ``"bn learn"``; recorded in
        the marker. ``--overwrite`` refuses a directory written by a different command.
    inputs : iterable of str or Path, optional
        Files the command reads. They are never deleted or replaced, even when listed in the
        marker; a new output file with the same name must have identical content.

    Yields
    ------
    Path
        The temporary directory ``.NAME.biofluxopt-tmp-PID`` next to ``out`` (inside ``out``
        when only ``out`` is writable). Write the outputs there; do not write the marker.

    Raises
    ------
    ConfigError
        With ``field="--out"``: ``out`` or one of its parents is a broken symbolic link (a
        missing target, or a loop); ``out`` is an existing file; it is a non-empty directory
        not written by biofluxopt, or written by another command, or ``overwrite`` is false;
        it or its parent is not writable; a new output would replace a file biofluxopt did not
        write. The CLI turns this into one line and exit code 2.
    """
    shown = str(out)
    if not shown.strip() or "\0" in shown:
        raise ConfigError(f"not a usable directory name: {shown!r}", field="--out")
    link = _broken_link(Path(out).expanduser())
    if link is not None:
        try:
            to = f" to {os.readlink(link)}"
        except OSError:
            to = ""
        where = "" if link == Path(out).expanduser() else f" (in {shown})"
        raise ConfigError(
            f"{link}{where} is a broken symbolic link{to}; remove it or choose another directory",
            field="--out",
        )
    target = Path(out).expanduser().resolve()
    if target.exists() and not target.is_dir():
        raise ConfigError(
            f"{shown} is an existing file, not a directory; choose a directory path",
            field="--out",
        )
    parent, name = target.parent, target.name
    if not name:  # the file-system root
        raise ConfigError(f"{shown} cannot be an output directory", field="--out")
    _remove_stale_temps(parent, name)
    existing = target.is_dir()
    old_listed: list[str] = []
    if existing:
        _remove_stale_temps(target)
        try:
            content = [e for e in os.listdir(target) if not _TMP_RE.match(e)]
        except OSError as exc:
            raise ConfigError(f"cannot read {shown}: {exc.strerror or exc}", field="--out") from exc
        if content:
            marker = _read_marker(target)
            if marker is None:
                raise ConfigError(
                    f"{shown} exists, is not empty and was not written by biofluxopt "
                    f"(no {MARKER_NAME}); choose a new or empty directory",
                    field="--out",
                )
            if not overwrite:
                raise ConfigError(
                    f"{shown} exists and is not empty; pass --overwrite to replace the files "
                    f"biofluxopt wrote there, or choose a new directory",
                    field="--out",
                )
            if marker.get("command") != command:
                raise ConfigError(
                    f"{shown} holds the output of `{marker.get('command')}`, not of "
                    f"`{command}`; --overwrite replaces only the output of the same command, "
                    f"choose another directory",
                    field="--out",
                )
            old_listed = _safe_listed(target, marker["files"])
    input_paths = [Path(p).expanduser().resolve() for p in inputs]

    # Find the nearest existing ancestor; remember which directories we create.
    created: list[Path] = []
    if not parent.exists():
        missing = []
        p = parent
        while not p.exists():
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            try:
                os.mkdir(d, _dir_mode())
            except FileExistsError:
                continue
            except OSError as exc:
                for c in reversed(created):
                    with contextlib.suppress(OSError):
                        os.rmdir(c)
                raise ConfigError(
                    f"cannot create {d}: {exc.strerror or exc}; choose a writable directory",
                    field="--out",
                ) from exc
            created.append(d)

    def cleanup_created() -> None:
        for c in reversed(created):
            with contextlib.suppress(OSError):
                os.rmdir(c)

    tmp = _temp_name(parent, name)
    try:
        os.mkdir(tmp, _dir_mode())
    except OSError as exc:
        if not existing:
            cleanup_created()
            raise ConfigError(
                f"cannot write to {parent}: {exc.strerror or exc}; choose a writable directory",
                field="--out",
            ) from exc
        tmp = _temp_name(target, name)  # parent read-only, but `out` itself may be writable
        try:
            os.mkdir(tmp, _dir_mode())
        except OSError as exc2:
            raise ConfigError(
                f"cannot write to {shown}: {exc2.strerror or exc2}; choose a writable directory",
                field="--out",
            ) from exc2
    try:
        os.chmod(tmp, _dir_mode())
        _probe_writable(tmp, shown)
        if existing:
            _probe_writable(target, shown)
        yield tmp
        new_files = _files_under(tmp)
        if MARKER_NAME in new_files:
            raise RuntimeError(f"a command wrote {MARKER_NAME} itself")
        if not existing:
            _write_marker(tmp, command, new_files)
            _fix_modes(tmp)
            os.rename(tmp, target)
            return
        _commit_into(target, tmp, new_files, old_listed, input_paths, command, shown)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if not existing:
            cleanup_created()
        raise
    shutil.rmtree(tmp, ignore_errors=True)


def _fix_modes(root: Path) -> None:
    """Give every file and directory under ``root`` the umask's permissions (mkstemp and
    mkdtemp create 0600/0700)."""
    fmode, dmode = _file_mode(), _dir_mode()
    os.chmod(root, dmode)
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            os.chmod(Path(dirpath) / d, dmode)
        for f in filenames:
            p = Path(dirpath) / f
            if not p.is_symlink():
                mode = fmode | (p.stat().st_mode & 0o111 & ~current_umask())
                os.chmod(p, mode)


def _commit_into(
    target: Path,
    tmp: Path,
    new_files: list[str],
    old_listed: list[str],
    inputs: list[Path],
    command: str,
    shown: str,
) -> None:
    """Move ``tmp``'s files into the existing ``target``; delete the old listed files."""
    old = set(old_listed)

    def is_input(path: Path) -> bool:
        return any(_same_file(path, i) for i in inputs if i.exists())

    to_move = []
    for rel in new_files:
        dst = target / rel
        if os.path.lexists(dst):
            if is_input(dst):
                if dst.read_bytes() != (tmp / rel).read_bytes():
                    raise ConfigError(
                        f"the new {rel} would replace the input file {dst}; "
                        f"choose another directory",
                        field="--out",
                    )
                continue  # identical to the input: leave the input as it is
            if rel not in old or dst.is_dir():
                raise ConfigError(
                    f"{shown}/{rel} was not written by biofluxopt; move it away or choose "
                    f"another directory",
                    field="--out",
                )
        to_move.append(rel)
    stale = [r for r in old_listed if r not in set(new_files)]
    stale_inputs = [r for r in stale if is_input(target / r)]
    stale = [r for r in stale if r not in set(stale_inputs)]
    _fix_modes(tmp)
    # The marker first lists old and new files, so an interrupted commit stays described.
    _write_marker(target, command, [*old_listed, *new_files])
    for rel in stale:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            os.unlink(target / rel)
        _prune_empty_dirs(target, Path(rel).parent)
    for rel in to_move:
        dst = target / rel
        if not dst.parent.exists():
            dst.parent.mkdir(parents=True, mode=_dir_mode())
        _move(tmp / rel, dst)
    _write_marker(target, command, [*new_files, *stale_inputs])
    with contextlib.suppress(OSError):
        os.chmod(target / MARKER_NAME, _file_mode())


def _prune_empty_dirs(root: Path, rel_dir: Path) -> None:
    while rel_dir.parts:
        try:
            os.rmdir(root / rel_dir)
        except OSError:
            return
        rel_dir = rel_dir.parent


@contextlib.contextmanager
def atomic_output_dir(out: str | Path, *, overwrite: bool = True) -> Iterator[Path]:
    """Deprecated: use :func:`output_directory`.

    Yield a temporary directory that *replaces* ``out`` wholesale when the block succeeds —
    everything previously in ``out`` is deleted. Kept only for callers not yet migrated; it
    refuses an ``out`` that names an existing file.

    Parameters
    ----------
    out : str or Path
        Final directory.
    overwrite : bool, default=True
        Replace an existing ``out``; otherwise raise ``FileExistsError``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is an existing file, not a directory", field="--out")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True to replace it")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        _fix_modes(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    backup = None
    if out.exists():
        backup = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, backup)
    os.replace(tmp, out)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to the file ``path`` through a temporary sibling and ``os.replace``.

    The file gets the umask's permissions. A temporary file left by a killed process
    (``.NAME.biofluxopt-tmp-PID``) is removed first. Missing parent directories are created.

    Raises
    ------
    ConfigError
        ``path`` is an existing directory (or ends in a slash).
    """
    shown = str(path)
    if shown.endswith(("/", os.sep)) or Path(path).is_dir():
        raise ConfigError(f"{shown} is a directory; give a file name")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path.parent, path.name)
    tmp = _temp_name(path.parent, path.name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode(encoding))


def _same_file(a: Path, b: Path) -> bool:
    with contextlib.suppress(OSError):
        return os.path.samefile(a, b)
    return False


def check_output_file(
    path: str | Path,
    *,
    overwrite: bool,
    inputs: Iterable[Path | None] = (),
    option: str = "--out",
    input_label: str = "an input of this command",
    example: str | None = None,
) -> Path:
    """Refuse, before any computation, an output file that cannot or must not be written.

    Refused: an empty name, a directory (or a path ending in a slash: pass the option as
    typed, a ``str``, since ``Path`` drops the slash), an input file of the command, an
    existing file without ``--overwrite``, a parent that is a file or not writable. Nothing is
    created here (missing parent directories are made when the file is written).
    ``input_label`` names the inputs in the refusal (e.g. "the protocol file"); ``example``
    (a file name) is suggested when a directory is given.

    Returns
    -------
    Path
        ``path`` as a Path.
    """
    shown = str(path)
    if not shown.strip() or "\0" in shown:
        raise ConfigError(f"give a file name (got {shown!r})", field=option)
    path = Path(path)
    if shown.endswith(("/", os.sep)) or path.is_dir():
        hint = "" if example is None else f", e.g. {path / example}"
        raise ConfigError(f"{shown} is a directory; give a file name{hint}", field=option)
    if path.exists() or path.is_symlink():
        if any(p is not None and _same_file(path, p) for p in inputs):
            raise ConfigError(f"{shown} is {input_label}; choose another file name", field=option)
        if not overwrite:
            raise ConfigError(
                f"{shown} exists; pass --overwrite to replace it, or choose another file name",
                field=option,
            )
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(
            f"cannot create {shown}: {ancestor} is a file, not a directory", field=option
        )
    try:
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as exc:
        raise ConfigError(
            f"cannot write to {ancestor}: {exc.strerror or exc}; choose a writable location",
            field=option,
        ) from exc
    return path
