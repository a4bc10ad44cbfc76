"""``biofluxopt bn``: learn, query and explain Bayesian networks; simulate cohorts for them."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from biofluxopt._util import DataError

StartKind = Literal["regimen", "diet"]

console = Console()

bn_app = typer.Typer(
    name="bn",
    help="Bayesian network of the B12 network: learn from a table, query, explain, cohort.",
    no_args_is_help=True,
)


def _quiet() -> None:
    """pgmpy 1.1 warns about its own deprecated modules on import; users cannot act on it."""
    warnings.filterwarnings("ignore", category=FutureWarning, message=r".*pgmpy.*|.*deprecated.*")


def _read_table(path: Path):
    import pandas as pd

    if not path.is_file():
        raise DataError("no such file", source=path)
    sep = "\t" if path.suffix.lower() in {".tsv", ".tab", ".txt"} else ","
    try:
        table = pd.read_csv(path, sep=sep)
    except pd.errors.EmptyDataError as exc:
        raise DataError("the table is empty", source=path) from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot parse the table: {exc}", source=path) from exc
    return table


@bn_app.command("learn")
def learn(
    data: Annotated[
        Path,
        typer.Option("--data", help="CSV/TSV table, rows = people, discrete or numeric columns."),
    ],
    out: Annotated[Path, typer.Option("--out", help="Output directory (replaced atomically).")],
    method: Annotated[str, typer.Option(
        "--method", help="hybrid | pc | hc | mixed (structure from the numbers).")] = "hybrid",
    no_expert: Annotated[
        bool, typer.Option("--no-expert", help="Ignore B12 expert knowledge.")
    ] = False,
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples for arc strength.")
    ] = 0,
    alpha: Annotated[
        float, typer.Option("--alpha", min=1e-6, max=0.5, help="PC significance level.")
    ] = 0.01,
    threshold: Annotated[
        float, typer.Option("--threshold", min=0.01, max=1.0, help="Arc-strength threshold.")
    ] = 0.5,
    jobs: Annotated[
        int, typer.Option("--jobs", help="Parallel workers for the bootstrap (-1 = all cores).")
    ] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
) -> None:
    """Learn a network; write network.bif, network.xmlbif, graph.png, arcs.csv, summary.json."""
    _quiet()
    from biofluxopt._util import seed_everything
    from biofluxopt.bn import METHODS, learn_network

    if method not in METHODS:
        raise DataError(
            f"unknown method {method!r}; choose one of {list(METHODS)}", field="--method"
        )
    seed_everything(seed)
    table = _read_table(data)
    with console.status("learning structure…") if bootstrap == 0 else contextlib.nullcontext():
        result = learn_network(
            table,
            method=method,
            expert=not no_expert,
            n_bootstrap=bootstrap,
            alpha=alpha,
            strength_threshold=threshold,
            n_jobs=jobs,
            seed=seed,
            progress=bootstrap > 0,
            source=str(data),
        )
    result.save(out)
    g = result.learner.graph_
    console.print(
        f"[green]learned[/] {g.number_of_nodes()} nodes, {g.number_of_edges()} arcs "
        f"({method}{', expert knowledge' if result.learner.expert_knowledge is not None else ''})"
        f" -> {out}"
    )
    if result.dropped_columns:
        console.print(f"[yellow]dropped constant columns:[/] {', '.join(result.dropped_columns)}")
    numeric = [b for b in result.discretiser.bins_.values() if b.kind != "categorical"]
    if method != "mixed" and len(numeric) >= 2:
        console.print(
            f"[dim]{len(numeric)} numeric columns were cut into states for the structure search; "
            "--method mixed learns the structure from the numbers (docs/bn.md)[/]"
        )


def _print_series(title: str, series) -> None:
    table = Table(title=title)
    table.add_column("state")
    table.add_column("probability", justify="right")
    for state, p in series.items():
        table.add_row(str(state), f"{p:.4f}")
    console.print(table)


@bn_app.command("query")
def query(
    model: Annotated[
        Path, typer.Option("--model", help="network.bif or network.xmlbif (or its folder).")
    ],
    target: Annotated[str, typer.Option("--target", help="Node to query.")] = "serum_b12",
    evidence: Annotated[str, typer.Option("--evidence", help="name=state,name=state …")] = "",
    mpe: Annotated[
        bool, typer.Option("--mpe", help="Also print the most probable explanation.")
    ] = False,
) -> None:
    """Print P(target | evidence) (and optionally the most probable explanation)."""
    _quiet()
    from biofluxopt.bn import load_network, most_probable_explanation, parse_evidence, posterior

    net = load_network(model)
    ev = parse_evidence(evidence)
    post = posterior(net, target, ev)
    shown = ", ".join(f"{k}={v}" for k, v in ev.items()) or "no evidence"
    _print_series(f"P({target} | {shown})", post)
    if mpe:
        table = Table(title="most probable explanation")
        table.add_column("variable")
        table.add_column("state")
        for var, state in most_probable_explanation(net, ev).items():
            table.add_row(var, state)
        console.print(table)


@bn_app.command("explain")
def explain_cmd(
    model: Annotated[
        Path, typer.Option("--model", help="network.bif or network.xmlbif (or its folder).")
    ],
    evidence: Annotated[
        str, typer.Option("--evidence", help="The person's observed factors: name=state,…")
    ],
    target: Annotated[str, typer.Option("--target", help="Outcome node.")] = "serum_b12",
    state: Annotated[
        str, typer.Option("--state", help="Outcome state whose risk is explained.")
    ] = "deficient",
) -> None:
    """Rank the observed factors by how much each moves P(target = state)."""
    _quiet()
    from biofluxopt.bn import explain, load_network, parse_evidence

    net = load_network(model)
    ev = parse_evidence(evidence)
    if not ev:
        raise DataError("give at least one observed factor", field="--evidence")
    ranked = explain(net, ev, target=target, state=state)
    p = ranked["p_with"].iloc[0]
    table = Table(title=f"P({target}={state} | evidence) = {p:.3f}: factors ranked by effect")
    for col in ("factor", "observed", "without it", "effect", "best alternative", "risk then"):
        table.add_column(
            col, justify="right" if col in {"without it", "effect", "risk then"} else "left"
        )
    for row in ranked.itertuples(index=False):
        table.add_row(
            row.factor,
            row.observed,
            f"{row.p_without:.3f}",
            f"{row.effect:+.3f}",
            row.best_alternative,
            f"{row.p_best_alternative:.3f}",
        )
    console.print(table)


@bn_app.command("cohort")
def cohort(
    n: Annotated[int, typer.Option("--n", min=1, help="Number of people.")],
    out: Annotated[Path, typer.Option("--out", help="Output CSV.")],
    days: Annotated[int, typer.Option("--days", min=1, help="Simulated days.")] = 30,
    start: Annotated[StartKind, typer.Option(
        "--start", help="regimen: everyone at the steady state of diet + supplement "
        "(cross-sectional); diet: at the diet's steady state, then the supplement for --days "
        "(a trial).")] = "regimen",
    discrete: Annotated[
        bool, typer.Option("--discrete", help="Write BN states instead of numbers.")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
) -> None:
    """Simulate a cohort (documented host factors, real HMP compositions) and write it as CSV."""
    _quiet()
    from biofluxopt._util import atomic_write_text, seed_everything
    from biofluxopt.bn import discretise_cohort, simulate_cohort_table

    seed_everything(seed)
    table = simulate_cohort_table(n, days=days, seed=seed, progress=True, start=start)
    if discrete:
        table, _ = discretise_cohort(table)
    atomic_write_text(out, table.to_csv(index=False))
    console.print(f"[green]wrote[/] {len(table)} people × {table.shape[1]} columns -> {out}")


def register(app: typer.Typer) -> None:
    """Attach ``biofluxopt bn`` to the root ``app``."""
    app.add_typer(bn_app, name="bn")
