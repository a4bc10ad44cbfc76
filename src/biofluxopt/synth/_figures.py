"""Real-vs-synthetic figures: sparsity and Shannon distributions and a PCoA ordination."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.distance import pdist, squareform

from biofluxopt._util import save_png

from ._metrics import shannon, sparsity


def pcoa(distances: np.ndarray, n_components: int = 2) -> np.ndarray:
    """Principal coordinates of a square distance matrix, shape (n, n_components).

    Classical (Torgerson) scaling: double-centre ``-D²/2`` and keep the leading eigenvectors
    scaled by the square roots of their (positive) eigenvalues. Hand-written (ten lines) to avoid
    a scikit-bio dependency for one plot.
    """
    n = len(distances)
    centre = np.eye(n) - np.full((n, n), 1.0 / n)
    b = -0.5 * centre @ (distances**2) @ centre
    values, vectors = np.linalg.eigh(b)
    order = np.argsort(values)[::-1][:n_components]
    return vectors[:, order] * np.sqrt(np.maximum(values[order], 0.0))


def save_figures(
    real: np.ndarray, synthetic: np.ndarray, out_dir: str | Path, *, label: str = "synthetic"
) -> list[Path]:
    """Write ``sparsity.png``, ``shannon.png`` and ``pcoa_braycurtis.png`` to ``out_dir``.

    Parameters
    ----------
    real, synthetic : numpy.ndarray of shape (n, n_taxa)
        Closed compositions (held-out real and generated).
    out_dir : str or Path
        Created if missing.
    label : str, default="synthetic"
        Legend name of the synthetic set.

    Returns
    -------
    list of Path
        The files written: PNGs whose bytes depend only on the data (no version string or
        timestamp in their metadata).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fn, xlabel in (
        ("sparsity", sparsity, "fraction of taxa absent per sample"),
        ("shannon", shannon, "Shannon index (ln)"),
    ):
        fig, ax = _figure(5, 3.5)
        a, b = fn(real), fn(synthetic)
        bins = np.linspace(min(a.min(), b.min()), max(a.max(), b.max()) + 1e-9, 25)
        ax.hist(a, bins=bins, alpha=0.6, density=True, label=f"real (n={len(a)})")
        ax.hist(b, bins=bins, alpha=0.6, density=True, label=f"{label} (n={len(b)})")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("density")
        ax.legend(frameon=False)
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        save_png(fig, path, dpi=120)
        written.append(path)
    both = np.vstack([real, synthetic])
    coords = pcoa(squareform(pdist(both, "braycurtis")))
    fig, ax = _figure(4.5, 4.5)
    ax.scatter(*coords[: len(real)].T, s=12, alpha=0.7, label="real")
    ax.scatter(*coords[len(real) :].T, s=12, alpha=0.7, label=label)
    ax.set_xlabel("PCoA 1 (Bray–Curtis)")
    ax.set_ylabel("PCoA 2")
    ax.legend(frameon=False)
    fig.tight_layout()
    path = out_dir / "pcoa_braycurtis.png"
    save_png(fig, path, dpi=120)
    written.append(path)
    return written


def _figure(width: float, height: float):
    """A figure with one axes on its own Agg canvas: matplotlib's object API, so neither the
    global backend nor pyplot's figure registry is touched (nothing to close)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()
