"""Files, figures and Markdown tables of the simulator's analyses.

The analyses (:mod:`._sensitivity`, :mod:`._leverage`) only compute and return dataclasses;
this module turns them into what ``biofluxopt sensitivity`` writes and what the documentation
prints. Figures use matplotlib's object API (a :class:`~matplotlib.figure.Figure` on its own
Agg canvas), so no global backend is switched and no pyplot state is kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from biofluxopt._util import atomic_write_text, dumps_json, save_png

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ._sensitivity import SensitivityResult

SENSITIVITY_FILES = ("local.csv", "sobol.csv", "leverage.json", "sensitivity.png")
"""Files :func:`write_sensitivity_report` writes (``sobol.csv`` only with Sobol indices)."""


def write_sensitivity_report(result: SensitivityResult, directory: str | Path) -> None:
    """Write a sensitivity analysis into an existing directory.

    Parameters
    ----------
    result : SensitivityResult
        Output of :func:`~biofluxopt.sim.sensitivity_analysis`.
    directory : str or Path
        Existing directory. Receives ``local.csv`` (the local table), ``sobol.csv`` (the Sobol
        indices, if computed), ``leverage.json`` (day, nominal outputs, leverage and the Sobol
        design's size; strict JSON, non-finite numbers are ``null``) and ``sensitivity.png``
        (:func:`sensitivity_figure`, byte-stable).
    """
    directory = Path(directory)
    result.local.table.to_csv(directory / "local.csv", index=False, float_format="%.6g")
    if result.sobol is not None:
        result.sobol.indices.to_csv(directory / "sobol.csv", index=False, float_format="%.6g")
    meta = {
        "day": result.day,
        "nominal": result.local.nominal,
        "leverage": result.leverage.as_dict(),
        "sobol": None
        if result.sobol is None
        else {
            "n_base": result.sobol.n_base,
            "n_runs": result.sobol.n_runs,
            "n_failed": result.sobol.n_failed,
        },
    }
    atomic_write_text(directory / "leverage.json", dumps_json(meta))
    save_png(sensitivity_figure(result), directory / "sensitivity.png", dpi=110)


def sensitivity_figure(result: SensitivityResult, *, top: int = 15) -> Figure:
    """Bar charts of the ``top`` largest local swings of serum B12 and, when computed, the
    ``top`` largest total Sobol indices with their first-order parts and 95 % intervals.

    Parameters
    ----------
    result : SensitivityResult
    top : int, default=15
        Factors shown per panel.

    Returns
    -------
    matplotlib.figure.Figure
        One panel (local) or two (local, Sobol), 6.5 × 6 inches each, on an Agg canvas.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sobol = result.sobol
    panels = 2 if sobol is not None else 1
    fig = Figure(figsize=(6.5 * panels, 6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels, squeeze=False)
    head = result.local.table.head(top).iloc[::-1]
    colors = ["tab:orange" if k == "activity" else "tab:blue" for k in head["kind"]]
    ax = axes[0, 0]
    ax.barh(head["factor"], head["swing_serum_b12_pmol_l"], color=colors)
    ax.set_xlabel(f"linearised change of day-{result.day} serum B12 over range (pmol/L)")
    ax.set_title("Local sensitivity (autograd); orange = microbial activity")
    ax.axvline(0, color="k", lw=0.5)
    if sobol is not None:
        s = sobol.indices.head(top).iloc[::-1]
        ax = axes[0, 1]
        y = np.arange(len(s))
        ax.barh(
            y + 0.2,
            s["ST_serum_b12_pmol_l"],
            0.4,
            xerr=s["ST_conf_serum_b12_pmol_l"],
            label="total ST",
        )
        ax.barh(
            y - 0.2,
            s["S1_serum_b12_pmol_l"],
            0.4,
            xerr=s["S1_conf_serum_b12_pmol_l"],
            label="first-order S1",
        )
        ax.set_yticks(y, s["factor"])
        ax.set_xlabel(f"Sobol index of day-{result.day} serum B12")
        ax.set_title(f"Global (Sobol, N={sobol.n_base}, {sobol.n_runs} runs)")
        ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def markdown_table(frame: pd.DataFrame, digits: int = 4) -> str:
    """A small data frame as a Markdown table (floats to ``digits`` significant digits).

    Parameters
    ----------
    frame : pandas.DataFrame
        The table; its index is not written.
    digits : int, default=4

    Returns
    -------
    str
        Header row, separator row and one row per record, joined by newlines.
    """
    cols = list(frame.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for row in frame.itertuples(index=False):
        cells = [f"{v:.{digits}g}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
