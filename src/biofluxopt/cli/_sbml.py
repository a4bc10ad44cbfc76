"""``biofluxopt export-sbml``: one patient of a protocol as SBML Level 3 Version 2.

Heavy imports (torch, libsbml) happen inside the command. docs/sbml.md describes the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from ._simulate import ProtocolSeedOption, protocol_seed

console = Console()


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
    seed: ProtocolSeedOption = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing --out file.")
    ] = False,
) -> None:
    """Write one patient of PROTOCOL as SBML Level 3 Version 2 (libSBML-validated, units
    checked strictly), for COPASI, tellurium/libRoadRunner and other SBML tools."""
    from biofluxopt._util import (
        atomic_write_text,
        check_output_file,
        check_seed,
        read_toml,
        seed_everything,
    )

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
    path = check_output_file(
        out,
        overwrite=overwrite,
        inputs=[protocol],
        input_label="the protocol file",
        example="model.xml",
    )
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
