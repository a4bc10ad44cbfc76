"""Saving and loading networks: BIF, XMLBIF, a PNG drawing and the arc-strength table."""

from __future__ import annotations

import re
from pathlib import Path

import networkx as nx
import pandas as pd

from biofluxopt._util import DataError, output_directory, save_png

_SAFE_NAME = re.compile(r"^[A-Za-z_][0-9A-Za-z_.-]*$")


def check_names(columns, *, source: str | None = None) -> None:
    """Raise :class:`DataError` (naming ``source``) for column names that BIF/XMLBIF cannot
    store."""
    bad = [str(c) for c in columns if not _SAFE_NAME.match(str(c))]
    if bad:
        raise DataError(
            f"column names {bad} cannot be stored in BIF; use letters, digits, '_', '.', '-' "
            "and start with a letter or '_'",
            source=source,
        )


def arcs_table(graph: nx.DiGraph, arc_strength: pd.DataFrame | None) -> pd.DataFrame:
    """``edge, source, target, strength, direction_confidence, in_network`` (one row per pair)."""
    if arc_strength is None:
        arc_strength = pd.DataFrame(
            [(u, v, 1.0, 1.0) for u, v in sorted(graph.edges())],
            columns=["source", "target", "strength", "direction"],
        )
    table = arc_strength.rename(columns={"direction": "direction_confidence"}).copy()
    table.insert(0, "edge", table["source"] + " -> " + table["target"])
    table["in_network"] = [
        graph.has_edge(u, v) for u, v in zip(table["source"], table["target"], strict=True)
    ]
    return table


def draw_network(graph: nx.DiGraph, path: Path, *, arc_strength: pd.DataFrame | None = None):
    """Draw the DAG in layers (topological generations), arc width ∝ strength, to ``path``.

    Uses matplotlib's object API (a ``Figure`` on its own Agg canvas): no global backend
    switch, no pyplot state, nothing to close."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    g = nx.DiGraph()
    g.add_nodes_from(sorted(graph.nodes()))
    g.add_edges_from(sorted(graph.edges()))
    # Layers as sorted lists: networkx groups a string subset key into sets, whose order
    # (and so the drawing) would change with PYTHONHASHSEED.
    layers = {i: sorted(nodes) for i, nodes in enumerate(nx.topological_generations(g))}
    for layer, nodes in layers.items():
        for n in nodes:
            g.nodes[n]["layer"] = layer
    pos = nx.multipartite_layout(g, subset_key=layers, align="horizontal", scale=1.0)
    pos = {n: (x, -y) for n, (x, y) in pos.items()}
    strength = {}
    if arc_strength is not None:
        strength = {
            (u, v): s
            for u, v, s in zip(
                arc_strength["source"],
                arc_strength["target"],
                arc_strength["strength"],
                strict=True,
            )
        }
    widths = [0.5 + 2.5 * strength.get(e, 1.0) for e in g.edges()]
    n_layers = 1 + max((d["layer"] for _, d in g.nodes(data=True)), default=0)
    fig = Figure(figsize=(max(6, 0.9 * g.number_of_nodes() ** 0.9), 1.6 * n_layers + 2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    nx.draw_networkx(
        g,
        pos,
        ax=ax,
        node_color="#dbe9f6",
        edgecolors="#3b6ea5",
        node_size=1400,
        font_size=7,
        width=widths,
        edge_color="#555555",
        arrowsize=12,
    )
    ax.set_axis_off()
    fig.tight_layout()
    save_png(fig, path, dpi=120)


def write_network(
    model,
    directory: str | Path,
    *,
    arc_strength: pd.DataFrame | None = None,
    extra_files: dict[str, str] | None = None,
) -> None:
    """Write ``network.bif``, ``network.xmlbif``, ``graph.png``, ``arcs.csv`` (and
    ``extra_files``) into the existing ``directory`` (the CLI's temporary output directory).

    Parameters
    ----------
    model : pgmpy.models.DiscreteBayesianNetwork
        Fitted network.
    directory : str or Path
        An existing directory.
    arc_strength : pandas.DataFrame, optional
        ``HybridStructureLearner.arc_strength_``.
    extra_files : dict of str to str, optional
        More text files to write (name -> content), e.g. a discretisation summary.
    """
    directory = Path(directory)
    graph = nx.DiGraph()
    graph.add_nodes_from(model.nodes())
    graph.add_edges_from(model.edges())
    model.save(str(directory / "network.bif"), filetype="bif")
    model.save(str(directory / "network.xmlbif"), filetype="xmlbif")
    arcs_table(graph, arc_strength).to_csv(directory / "arcs.csv", index=False)
    draw_network(graph, directory / "graph.png", arc_strength=arc_strength)
    for name, text in (extra_files or {}).items():
        (directory / name).write_text(text, encoding="utf-8")


def save_network(
    model,
    out: str | Path,
    *,
    arc_strength: pd.DataFrame | None = None,
    extra_files: dict[str, str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the files of :func:`write_network` into the output directory ``out``.

    The files appear together or not at all (:func:`biofluxopt._util.output_directory`): an
    existing non-empty ``out`` is refused unless it holds an earlier ``bn learn`` output and
    ``overwrite`` is true, and then only the files that output listed are replaced.
    """
    with output_directory(out, overwrite=overwrite, command="bn learn") as tmp:
        write_network(model, tmp, arc_strength=arc_strength, extra_files=extra_files)
    return Path(out)


def load_network(path: str | Path):
    """Read a network from ``.bif`` or ``.xmlbif`` (a directory means its ``network.bif``).

    Raises
    ------
    DataError
        The file is missing, has another extension, or cannot be parsed.
    """
    from pgmpy.models import DiscreteBayesianNetwork

    path = Path(path)
    if path.is_dir():
        path = path / "network.bif"
    if not path.is_file():
        raise DataError("no such network file", source=path)
    filetype = {".bif": "bif", ".xmlbif": "xmlbif", ".xml": "xmlbif"}.get(path.suffix.lower())
    if filetype is None:
        raise DataError("expected a .bif or .xmlbif file", source=path)
    try:
        model = DiscreteBayesianNetwork.load(str(path), filetype=filetype)
        model.check_model()
    except Exception as exc:  # parsers raise many types; the user needs the file named
        raise DataError(f"cannot read the network: {exc}", source=path) from exc
    if model.number_of_nodes() == 0:
        raise DataError("the file holds no variables (not a network?)", source=path)
    return model
