"""Byte-stable PNG figures: the same figure gives the same file on every run."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ._io import atomic_write_bytes


def save_png(fig: Any, path: str | Path, *, dpi: float = 120, **savefig_kwargs: Any) -> None:
    """Save a matplotlib figure as a PNG whose bytes depend only on the figure.

    Matplotlib's varying metadata (the ``Software`` version string) is left out and no
    timestamp is written; the file is written atomically with the umask's permissions.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : str or Path
        The PNG file to write.
    dpi : float, default=120
        Resolution in dots per inch.
    **savefig_kwargs
        Passed on to :meth:`~matplotlib.figure.Figure.savefig` (not ``format``/``metadata``).
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None}, **savefig_kwargs)
    atomic_write_bytes(path, buf.getvalue())
