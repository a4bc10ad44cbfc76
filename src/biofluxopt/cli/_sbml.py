"""``biofluxopt export-sbml``: one patient of a protocol as SBML Level 3 Version 2.

Heavy imports (torch, libsbml) happen inside the command. docs/sbml.md describes the file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

console = Console()


def _check_output_file(shown: str, protocol: Path, *, overwrite: bool) -> Path:
    """Refuse, before any work, an ``--out`` file that cannot or must not be written: an
    empty name, a directory, the protocol itself, an existing file without ``--overwrite``,
    a parent that is a file or not writable. Nothing is created here."""
    from biofluxopt._util import ConfigError

    if not shown.strip() or "\0" in shown:
        raise ConfigError(f"give a file name (got {shown!r})", field="--out")
    out = Path(shown)
    if shown.endswith(("/", os.sep)) or out.is_dir():
        raise ConfigError(
            f"{shown} is a directory; give a file name, e.g. {out / 'model.xml'}", field="--out"
        )
    if out.exists() or out.is_symlink():
        if protocol.exists() and out.exists() and os.path.samefile(out, protocol):
            raise ConfigError(
                f"{shown} is the protocol file; choose another file name", field="--out"
            )
        if not overwrite:
            raise ConfigError(
                f"{shown} exists; pass --overwrite to replace it, or choose another file name",
                field="--out",
            )
    ancestor = out.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(
            f"cannot create {shown}: {ancestor} is a file, not a directory", field="--out"
        )
    try:
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as exc:
        raise ConfigError(
            f"cannot write to {ancestor}: {exc.strerror or exc}; choose a writable location",
            field="--out",
        ) from exc
    return out


def export_sbml_command(
    protocol: Annotated[Path, typer.Argument(help="Protocol TOML file (format: docs/sim.md).")],
    out: Annotated[
        str,
        typer.Option(
            "--out",
            help="Output SBML file (.xml); an existing file is replaced only with --overwrite.",
        ),
    ],
    patient: Annotated[
        int,
        typer.Option(
            "--patient",
            help="Which patient of the protocol, 0 to patients-1 (each has its own sampled "
            "parameters when patients > 1).",
        ),
    ] = 0,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            help="Seed of the between-patient parameter variability, 0 to 2**63-1; "
            "overrides the protocol's seed.",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing --out file.")
    ] = False,
) -> None:
    """Write one patient of PROTOCOL as SBML Level 3 Version 2 (libSBML-validated, units
    checked strictly), for COPASI, tellurium/libRoadRunner and other SBML tools."""
    from biofluxopt._util import atomic_write_text, check_seed, read_toml, seed_everything

    from ._simulate import protocol_seed

    read_toml(protocol)  # binary, non-UTF-8 or malformed TOML: one line naming the file
    from biofluxopt.sim import SBMLExportError, check_sbml, export_sbml, load_protocol

    spec = load_protocol(protocol)
    seed = protocol_seed(spec, protocol) if seed is None else check_seed(seed)
    if not 0 <= patient < spec.patients:
        raise SBMLExportError(
            f"patient {patient} does not exist: the protocol has {spec.patients} patient(s), "
            f"indices 0 to {spec.patients - 1}",
            source=protocol,
            field="--patient",
        )
    path = _check_output_file(out, protocol, overwrite=overwrite)
    seed_everything(seed)
    console.print(
        f"exporting [bold]{escape(protocol.name)}[/]: patient {patient} of {spec.patients}, "
        f"seed {seed}"
    )
    xml = export_sbml(protocol, patient=patient, seed=seed)
    check = check_sbml(xml)
    if not check.ok:  # the exporter's own bug, not the user's: exit 1 with the first message
        raise RuntimeError(
            f"the export failed libSBML's consistency checks ({len(check.errors)} errors): "
            f"{check.errors[0]}"
        )
    atomic_write_text(path, xml)
    console.print(
        f"[green]wrote[/] {escape(out)}: SBML L3V2, libSBML consistency and strict units: "
        f"0 errors, {len(check.warnings)} warnings"
    )


def register(app: typer.Typer) -> None:
    """Attach ``biofluxopt export-sbml`` to the root ``app``."""
    app.command("export-sbml")(export_sbml_command)
