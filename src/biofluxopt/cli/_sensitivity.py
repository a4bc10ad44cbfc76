"""``biofluxopt sensitivity``: leverage and sensitivity of day-N serum B12 and MMA."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ._simulate import DEVICE_HELP, OUT_HELP, OVERWRITE_HELP, protocol_seed

console = Console()

SOBOL_BATCH_PATIENTS = 2048
"""Patients per batch of the Sobol design (``sobol_indices``' default ``batch_size``)."""

AUTOGRAD_FIXED_BYTES = 700_000_000
"""Autograd memory of the local analysis that does not grow with the day (steady state,
parameters): measured ≈ 0.6 GB, rounded up."""

AUTOGRAD_BYTES_PER_SUBSTEP = 600_000
"""Autograd memory per RK4 substep of the one-patient local analysis: measured ≈ 0.56 MB
(13.3 MB per day at 24 substeps), rounded up."""

BATCH_BYTES_PER_PATIENT_DAY = 16 * 8 * 40
"""Daily records (≤ 40 float64 series, held twice) per simulated patient-day of a batch."""


def sensitivity_memory_bytes(
    *, day: int, substeps_per_day: int, sobol_runs: int, corners: int
) -> int:
    """Estimated peak memory in bytes of ``biofluxopt sensitivity``.

    The largest of the three stages: the local analysis keeps the autograd graph of a
    one-patient run up to ``day`` (grows with ``day × substeps_per_day``); the Sobol design and
    the leverage corners run batches whose daily records grow with ``patients × day``.

    Parameters
    ----------
    day : int
        The analysed day.
    substeps_per_day : int
        RK4 steps per day of the protocol.
    sobol_runs : int
        Simulated patients of the Sobol design (0 without Sobol).
    corners : int
        Random corners of the leverage (``--corners``).
    """
    local = AUTOGRAD_FIXED_BYTES + day * substeps_per_day * AUTOGRAD_BYTES_PER_SUBSTEP
    batch = max(min(sobol_runs, SOBOL_BATCH_PATIENTS), corners + 5)
    batched = batch * (day + 1) * BATCH_BYTES_PER_PATIENT_DAY
    return max(local, batched)


def sensitivity_command(
    protocol: Annotated[Path, typer.Argument(help="Protocol TOML file (format: docs/sim.md).")],
    out: Annotated[str, typer.Option("--out", help=OUT_HELP)],
    overwrite: Annotated[bool, typer.Option("--overwrite", help=OVERWRITE_HELP)] = False,
    day: Annotated[
        int,
        typer.Option("--day", min=1, help="Day whose serum B12 and MMA are analysed (1–days)."),
    ] = 90,
    sobol: Annotated[
        bool, typer.Option("--sobol/--no-sobol", help="Also compute global Sobol indices.")
    ] = True,
    n_base: Annotated[
        int,
        typer.Option(
            "--sobol-n",
            help="SALib base sample size N, a power of two ≥ 2; the design simulates "
            "N × (factors + 2) patients.",
        ),
    ] = 64,
    top_k: Annotated[
        int,
        typer.Option(
            "--top-k", min=1, help="Kinetic parameters kept for Sobol after local screening."
        ),
    ] = 12,
    corners: Annotated[
        int,
        typer.Option(
            "--corners", min=0, help="Random corners of the action box checked for the leverage."
        ),
    ] = 64,
    seed: Annotated[
        int,
        typer.Option(
            "--seed", help="Seeds the Sobol sampling and the random corners, 0 to 2**63-1."
        ),
    ] = 0,
    device: Annotated[str, typer.Option("--device", help=DEVICE_HELP)] = "cpu",
) -> None:
    """Local (autograd) and global (Sobol) sensitivity of day-N serum B12 and MMA to every
    kinetic parameter and every agent activity multiplier, plus the microbial leverage.
    Writes local.csv, sobol.csv, leverage.json and sensitivity.png to OUT."""
    from biofluxopt._util import (
        ConfigError,
        check_memory,
        check_seed,
        output_directory,
        read_toml,
        resolve_device,
        seed_everything,
    )
    from biofluxopt.sim import (
        ACTIVITIES,
        load_protocol,
        n_agents,
        parameter_table,
        sensitivity_analysis,
    )

    read_toml(protocol)  # binary, non-UTF-8 or malformed TOML: one line naming the file
    spec = load_protocol(protocol)
    protocol_seed(spec, protocol)
    seed = check_seed(seed)
    device = resolve_device(device)
    if day > spec.days:
        raise ConfigError(
            f"day {day} is after the protocol's last day ({spec.days}); lower --day or "
            f"lengthen the protocol",
            field="--day",
        )
    if sobol and (n_base < 2 or n_base & (n_base - 1)):
        raise ConfigError(f"must be a power of two ≥ 2 (got {n_base})", field="--sobol-n")
    # at most every agent × activity pair enters the design besides the top-k parameters
    n_factors = min(top_k, len(parameter_table())) + n_agents() * len(ACTIVITIES)
    check_memory(
        sensitivity_memory_bytes(
            day=day,
            substeps_per_day=spec.substeps_per_day,
            sobol_runs=n_base * (n_factors + 2) if sobol else 0,
            corners=corners,
        ),
        f"sensitivity of {protocol} at day {day} ({spec.substeps_per_day} substeps/day, "
        f"--sobol-n {n_base}, --corners {corners})",
    )
    with output_directory(
        out, overwrite=overwrite, command="sensitivity", inputs=[protocol]
    ) as tmp:
        seed_everything(seed)
        console.print(f"sensitivity of [bold]{escape(protocol.name)}[/] at day {day} (seed {seed})")
        result = sensitivity_analysis(
            spec,
            day=day,
            sobol=sobol,
            top_k=top_k,
            n_base=n_base,
            n_random_corners=corners,
            seed=seed,
            device=device,
            progress=True,
        )
        result.save(tmp)
    _print(result)
    console.print(
        f"wrote {escape(str(out))}/local.csv, leverage.json, sensitivity.png"
        + (", sobol.csv" if sobol else "")
    )


def _print(result) -> None:
    table = Table(title=f"Largest local effects on day-{result.day} serum B12")
    for col in ("factor", "kind", "range", "swing (pmol/L)", "elasticity"):
        table.add_column(col, justify="right" if col != "factor" else "left")
    for _, r in result.local.table.head(10).iterrows():
        table.add_row(
            r["factor"],
            r["kind"],
            f"{r['low']:g}–{r['high']:g} {r['unit']}",
            f"{r['swing_serum_b12_pmol_l']:+.1f}",
            f"{r['elasticity_serum_b12_pmol_l']:+.3f}",
        )
    console.print(table)
    lev = result.leverage
    console.print(
        f"microbial leverage: serum B12 {lev.serum_identity_pmol_l:.1f} pmol/L at identity → "
        f"{lev.serum_best_pmol_l:.1f} at the most favourable corner "
        f"({lev.gain_percent:+.2f} %), {lev.serum_worst_pmol_l:.1f} at the least favourable "
        f"({lev.loss_percent:+.2f} %); {lev.n_corners} corners evaluated"
    )


def register(app: typer.Typer) -> None:
    """Attach ``sensitivity`` to the root app."""
    app.command("sensitivity")(sensitivity_command)
