"""The trial's output directory: stages cached by their inputs, files written atomically.

``DIR/stages/<stage>.json`` records a finished stage: the hash of its inputs (the config
tables it reads, the seed, and the keys of the stages it consumes), the inputs themselves
(to say what changed) and the files it wrote. A rerun into ``DIR`` reuses every stage whose
inputs are unchanged and whose files are all there; a stage whose inputs changed is only
recomputed with ``overwrite`` (nothing from an earlier run is lost otherwise). Each stage
writes into a hidden temporary directory and moves its files into place when it succeeds;
``DIR/.biofluxopt-output.json`` lists every file the trial wrote, as for every command.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from biofluxopt._util import MARKER_NAME, ConfigError, atomic_write_text

COMMAND = "trial"


def _key(inputs: dict) -> str:
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}")
    return out


class StageStore:
    """A trial output directory (see the module docstring).

    Parameters
    ----------
    out : str or Path
        ``--out``. Missing: created. An existing file, or a non-empty directory that is not
        a trial's output, is refused (``ConfigError`` naming ``--out``).
    overwrite : bool
        Allow recomputing stages whose inputs changed (their old files are replaced; files
        the trial did not write are never touched).
    """

    def __init__(self, out: str | Path, *, overwrite: bool = False):
        shown = str(out)
        path = Path(out).expanduser()
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{shown} is an existing file, not a directory", field="--out")
        if path.is_dir() and any(path.iterdir()):
            marker = self._read_marker(path)
            if marker is None or marker.get("command") != COMMAND:
                raise ConfigError(
                    f"{shown} is a non-empty directory that is not a trial's output; choose "
                    "another --out (nothing there is touched)",
                    field="--out",
                )
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / f".probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(
                f"{shown} is not writable ({exc.strerror or exc})", field="--out"
            ) from exc
        self.root = path.resolve()
        self.overwrite = overwrite
        self.shown = shown
        marker = self._read_marker(self.root) or {}
        self.files: set[str] = set(marker.get("files", []))
        if not marker:  # a new output: mark it at once, so an interrupted run can resume
            self._write_marker()
        for stale in self.root.glob(".tmp-*"):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
        (self.root / "stages").mkdir(exist_ok=True)

    # ------------------------------------------------------------------ marker
    @staticmethod
    def _read_marker(path: Path) -> dict | None:
        try:
            doc = json.loads((path / MARKER_NAME).read_text())
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def _write_marker(self) -> None:
        from biofluxopt import __version__

        doc = {"command": COMMAND, "version": __version__, "files": sorted(self.files)}
        atomic_write_text(self.root / MARKER_NAME, json.dumps(doc, indent=2) + "\n")

    def record(self, *relpaths: str) -> None:
        """Add files (relative to the root) the trial wrote outside a stage block."""
        self.files.update(relpaths)
        self._write_marker()

    # ------------------------------------------------------------------ stages
    def _record_path(self, stage: str) -> Path:
        return self.root / "stages" / f"{stage}.json"

    def cached(self, stage: str, inputs: dict) -> dict | None:
        """The record of ``stage`` if it finished with the same ``inputs`` and its files are
        all present; None if it must run. Raises ConfigError (``--overwrite``) when it ran
        with other inputs and ``overwrite`` is false."""
        try:
            rec = json.loads(self._record_path(stage).read_text())
        except (OSError, ValueError):
            return None
        if rec.get("key") != _key(inputs):
            if not self.overwrite:
                changed = ", ".join(_diff(rec.get("inputs", {}), inputs)[:6]) or "inputs"
                raise ConfigError(
                    f"{self.shown} holds stage {stage!r} run with other inputs ({changed}); "
                    "pass --overwrite to recompute it, or choose another --out",
                    field="--overwrite",
                )
            return None
        if not all((self.root / f).is_file() for f in rec.get("files", [])):
            return None
        return rec

    def key(self, inputs: dict) -> str:
        return _key(inputs)

    @contextmanager
    def stage(self, name: str, inputs: dict, *, persistent: str | None = None) -> Iterator[Path]:
        """Write a stage: yields a temporary directory; on success its files move to the root
        (replacing older files of the trial only) and the stage record is written.

        ``persistent`` names a sub-directory the stage writes directly (resumable state such
        as an Optuna study): it is created under the root and its files are recorded too.
        """
        tmp = self.root / f".tmp-{name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        start = time.perf_counter()
        try:
            yield tmp
            written = []
            for src in sorted(p for p in tmp.rglob("*") if p.is_file()):
                rel = src.relative_to(tmp).as_posix()
                dst = self.root / rel
                if dst.exists() and rel not in self.files:
                    raise ConfigError(
                        f"{self.shown}/{rel} exists and was not written by the trial; "
                        "nothing was replaced",
                        field="--out",
                    )
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
                written.append(rel)
            self.files.update(written)
            if persistent is not None:  # resumable state: the trial's, but not required
                base = self.root / persistent
                self.files.update(
                    p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file()
                )
            rec = {
                "stage": name,
                "key": _key(inputs),
                "inputs": inputs,
                "files": sorted(written),
                "wall_s": round(time.perf_counter() - start, 3),
            }
            self.files.add(f"stages/{name}.json")
            atomic_write_text(self._record_path(name), json.dumps(rec, indent=2) + "\n")
            self._write_marker()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def persistent_dir(self, name: str) -> Path:
        """A sub-directory a stage writes in place (resumable state)."""
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        self.files.update(
            p.relative_to(self.root).as_posix() for p in path.rglob("*") if p.is_file()
        )
        self._write_marker()
        return path


__all__ = ["COMMAND", "StageStore"]
