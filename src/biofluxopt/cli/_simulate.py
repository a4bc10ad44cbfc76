"""``biofluxopt simulate``: run a dosing protocol through the calibrated B12 model.

Heavy imports (torch, matplotlib) happen inside the command. Other simulator commands (e.g.
``sensitivity``) register in :func:`register` next to it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()

TRAJECTORY_COLUMNS = (
    "serum_b12_pmol_l",
    "holotc_pmol_l",
    "mma_umol_l",
    "hcy_umol_l",
    "body_store_ug",
    "liver_store_ug",
    "absorbed_ug",
    "ileal_free_cobalamin_ug",
    "microbial_cobalamin_ug",
    "microbial_analogue_ug",
    "colon_propionate_mmol",
)


def simulate_command(
    protocol: Annotated[Path, typer.Argument(help="Protocol TOML file (format: docs/sim.md).")],
    out: Annotated[Path, typer.Option("--out", help="Output directory (replaced atomically).")],
    seed: Annotated[int | None, typer.Option("--seed", help="Overrides the protocol seed.")] = None,
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
) -> None:
    """Simulate PROTOCOL and write trajectory.csv, trajectory.png and summary.json to OUT."""
    import torch

    from biofluxopt._util import atomic_output_dir, seed_everything
    from biofluxopt.sim import load_protocol
    from biofluxopt.sim._run import run_protocol

    spec = load_protocol(protocol)
    seed = spec.seed if seed is None else seed
    seed_everything(seed)
    if device.startswith("cuda") and not torch.cuda.is_available():
        from biofluxopt._util import ConfigError

        raise ConfigError("CUDA is not available on this machine", field="--device")
    console.print(
        f"simulating [bold]{protocol.name}[/]: {spec.patients} patient(s), "
        f"{spec.days} days, seed {seed}"
    )
    sol = run_protocol(spec, seed=seed, device=device, progress=True)
    frame = sol.to_frame([f"p{i:04d}" for i in range(spec.patients)])
    cols = ["patient", "day", *TRAJECTORY_COLUMNS]
    with atomic_output_dir(out) as tmp:
        frame[cols].to_csv(tmp / "trajectory.csv", index=False, float_format="%.6g")
        frame.to_csv(tmp / "trajectory_full.csv", index=False, float_format="%.6g")
        _plot(frame, tmp / "trajectory.png", protocol.stem)
        summary = _summary(frame, spec.days)
        (tmp / "summary.json").write_text(
            json.dumps(
                {
                    "protocol": str(protocol),
                    "seed": seed,
                    "patients": spec.patients,
                    "days": spec.days,
                    "summary": summary,
                },
                indent=2,
            )
        )
        (tmp / "protocol.toml").write_text(protocol.read_text())
    _print_summary(summary)
    console.print(f"wrote {out}/trajectory.csv, trajectory.png, summary.json")


def _summary(frame, days: int) -> dict:
    first = frame[frame["day"] == 0]
    last = frame[frame["day"] == days]
    out = {}
    for col in (
        "serum_b12_pmol_l",
        "holotc_pmol_l",
        "mma_umol_l",
        "hcy_umol_l",
        "body_store_ug",
        "absorbed_ug",
    ):
        out[col] = {
            "day0_mean": float(first[col].mean()),
            "final_mean": float(last[col].mean()),
            "final_min": float(last[col].min()),
            "final_max": float(last[col].max()),
        }
    return out


def _print_summary(summary: dict) -> None:
    table = Table(title="day 0 → final day (mean over patients; final min–max)")
    for col in ("quantity", "day 0", "final", "final range"):
        table.add_column(col, justify="right" if col != "quantity" else "left")
    for key, s in summary.items():
        table.add_row(
            key,
            f"{s['day0_mean']:.4g}",
            f"{s['final_mean']:.4g}",
            f"{s['final_min']:.4g}–{s['final_max']:.4g}",
        )
    console.print(table)


def _plot(frame, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("serum_b12_pmol_l", "serum B12 (pmol/L)", 148.0),
        ("holotc_pmol_l", "holoTC (pmol/L)", 35.0),
        ("mma_umol_l", "MMA (µmol/L)", 0.271),
        ("hcy_umol_l", "Hcy (µmol/L)", 13.9),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    grouped = frame.groupby("day")
    for ax, (col, label, cut) in zip(axes.flat, panels, strict=True):
        mean = grouped[col].mean()
        ax.fill_between(
            mean.index,
            grouped[col].min(),
            grouped[col].max(),
            alpha=0.25,
            label="range over patients",
        )
        ax.plot(mean.index, mean.to_numpy(), lw=2, label="mean")
        ax.axhline(cut, ls="--", c="grey", lw=1, label="cut-off")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("day")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def register(app: typer.Typer) -> None:
    """Attach the simulator commands to the root ``app``."""
    app.command("simulate")(simulate_command)
