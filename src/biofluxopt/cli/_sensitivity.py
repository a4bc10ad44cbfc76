"""``biofluxopt sensitivity``: leverage and sensitivity of day-N serum B12 and MMA."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def sensitivity_command(
    protocol: Annotated[Path, typer.Argument(help="Protocol TOML file (format: docs/sim.md).")],
    out: Annotated[Path, typer.Option("--out", help="Output directory (replaced atomically).")],
    day: Annotated[
        int, typer.Option("--day", min=1, help="Day whose serum B12/MMA is analysed.")
    ] = 90,
    sobol: Annotated[
        bool, typer.Option("--sobol/--no-sobol", help="Also compute global Sobol indices.")
    ] = True,
    n_base: Annotated[
        int, typer.Option("--sobol-n", help="SALib base sample size N (power of two).")
    ] = 64,
    top_k: Annotated[
        int,
        typer.Option("--top-k", min=1, help="Kinetic parameters kept for Sobol after screening."),
    ] = 12,
    corners: Annotated[
        int, typer.Option("--corners", min=0, help="Random action-box corners for the leverage.")
    ] = 64,
    seed: Annotated[int, typer.Option("--seed", help="Seeds Sobol sampling and corners.")] = 0,
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
) -> None:
    """Local (autograd) and global (Sobol) sensitivity of day-N serum B12 and MMA to every
    kinetic parameter over its plausible range and every agent activity multiplier over its
    action range, plus the microbial leverage. Writes local.csv, sobol.csv, leverage.json and
    sensitivity.png to OUT."""
    from biofluxopt._util import atomic_output_dir, seed_everything
    from biofluxopt.sim import load_protocol
    from biofluxopt.sim._sensitivity import sensitivity_analysis

    spec = load_protocol(protocol)  # --day and --sobol-n are checked before any simulation
    seed_everything(seed)
    console.print(f"sensitivity of [bold]{protocol.name}[/] at day {day} (seed {seed})")
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
    with atomic_output_dir(out) as tmp:
        result.save(tmp)
    _print(result)
    console.print(
        f"wrote {out}/local.csv, leverage.json, sensitivity.png" + (", sobol.csv" if sobol else "")
    )


def _print(result) -> None:
    table = Table(title=f"Largest local effects on day-{result.day} serum B12")
    for col in ("factor", "kind", "range", "swing (pmol/L)", "elasticity"):
        table.add_column(col, justify="right" if col != "factor" else "left")
    for _, r in result.local.head(10).iterrows():
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
