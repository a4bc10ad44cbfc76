"""``biofluxopt bn``: learn, query and explain Bayesian networks; simulate cohorts for them."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from biofluxopt._util import ConfigError, DataError

StartKind = Literal["regimen", "diet"]
MissingKind = Literal["drop", "em"]

console = Console()
err_console = Console(stderr=True, soft_wrap=True, highlight=False)

SEED_HELP = "Random seed, 0 to 2**63 - 1 (same seed, same files)."
OVERWRITE_HELP = (
    "Replace an existing output written by the same command (only the files it wrote; "
    "never input files). Without it an existing non-empty --out is refused."
)
MODEL_HELP = "network.bif or network.xmlbif, or the folder `bn learn` wrote."
EVIDENCE_HELP = "Observed states: name=state,name=state (names and states as in the network)."
MEMORY_HINT = "BIOFLUXOPT_MAX_MEMORY_GB sets the memory limit (default 8)"

bn_app = typer.Typer(
    name="bn",
    help="Bayesian network of the B12 network: learn from a table, query, explain, cohort.",
    no_args_is_help=True,
)


def _quiet() -> None:
    """pgmpy 1.1 warns about its own deprecated modules on import; users cannot act on it."""
    warnings.filterwarnings("ignore", category=FutureWarning, message=r".*pgmpy.*|.*deprecated.*")


def _warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/] {escape(message)}")


def _na_values(values: list[str] | None) -> list[str]:
    """``--na-values NA,null --na-values ?`` -> ``["NA", "null", "?"]``."""
    out: list[str] = []
    for item in values or []:
        out += [v for v in (x.strip() for x in item.split(",")) if v]
    return out


def _check_jobs(jobs: int) -> int:
    if jobs >= 1 or jobs == -1:
        return jobs
    raise ConfigError(
        f"must be a number of workers >= 1, or -1 for all cores; got {jobs}", field="--jobs"
    )


def _out_of_memory(what: str) -> DataError:
    return DataError(
        f"ran out of memory while {what}; {MEMORY_HINT}, lower it to be refused up front"
    )


@bn_app.command("learn")
def learn(
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="CSV or TSV (.tsv/.tab/.txt) table: rows = people, columns = discrete or "
            "numeric variables. Labels are read verbatim; only empty cells are missing.",
        ),
    ],
    # str, not Path: typer would turn '' into Path('.'), the working directory; as text,
    # output_directory refuses it with the other unusable names.
    out: Annotated[
        str,
        typer.Option(
            "--out",
            help="Output directory (new or empty, or an earlier `bn learn` output with "
            "--overwrite): network.bif, network.xmlbif, graph.png, arcs.csv, summary.json.",
        ),
    ],
    method: Annotated[
        str,
        typer.Option(
            "--method",
            help="hybrid (PC skeleton + BDeu hill climb) | pc | hc | mixed (structure from the "
            "numbers, every arc CI-checked).",
        ),
    ] = "hybrid",
    no_expert: Annotated[
        bool, typer.Option("--no-expert", help="Ignore the B12 expert knowledge (tiers, edges).")
    ] = False,
    bootstrap: Annotated[
        int,
        typer.Option(
            "--bootstrap",
            min=0,
            max=10000,
            help="Bootstrap resamples for arc strength (0 = one run on the data).",
        ),
    ] = 0,
    alpha: Annotated[
        float,
        typer.Option("--alpha", min=1e-6, max=0.5, help="Significance level of PC's CI tests."),
    ] = 0.01,
    threshold: Annotated[
        float,
        typer.Option(
            "--threshold",
            min=0.01,
            max=1.0,
            help="Least bootstrap arc strength for the averaged network.",
        ),
    ] = 0.5,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            help="Parallel workers for the bootstrap: >= 1, or -1 for all cores (0 is refused). "
            "The result does not depend on it.",
        ),
    ] = 1,
    missing: Annotated[
        MissingKind,
        typer.Option(
            "--missing",
            help="Rows with empty cells: drop (leave them out, with a warning giving the count) "
            "| em (structure from the complete rows, CPTs from all rows by EM).",
        ),
    ] = "drop",
    na_values: Annotated[
        list[str] | None,
        typer.Option(
            "--na-values",
            help="More cell texts that mean missing, comma-separated or repeated, e.g. "
            "--na-values NA,null. By default only empty cells are missing and NA, None, null "
            "are states.",
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help=OVERWRITE_HELP)] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the bootstrap. " + SEED_HELP)] = 0,
) -> None:
    """Learn a network; write network.bif, network.xmlbif, graph.png, arcs.csv, summary.json."""
    _quiet()
    from biofluxopt._util import check_seed, output_directory, seed_everything
    from biofluxopt.bn import METHODS, learn_network, read_table

    if method not in METHODS:
        raise ConfigError(
            f"unknown method {method!r}; choose one of {list(METHODS)}", field="--method"
        )
    seed = check_seed(seed)
    jobs = _check_jobs(jobs)
    extra_na = _na_values(na_values)
    if not data.is_file():
        raise DataError("no such file" if not data.exists() else "not a file", source=data)
    with output_directory(out, overwrite=overwrite, command="bn learn", inputs=[data]) as tmp:
        seed_everything(seed)
        table = read_table(data, na_values=extra_na)
        status = console.status("learning structure…") if bootstrap == 0 else None
        try:
            with status or contextlib.nullcontext():
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
                    missing=missing,
                )
        except MemoryError:
            raise _out_of_memory("learning the network") from None
        result.write(tmp)
    report = result.missing
    if report["rows_with_missing"]:
        n_rows = len(table)
        if missing == "drop":
            _warn(
                f"{report['rows_with_missing']} of {n_rows} rows have empty cells "
                f"({report['missing_cells']} cells) and were left out; --missing em uses them"
            )
        else:
            _warn(
                f"{report['rows_with_missing']} of {n_rows} rows have empty cells "
                f"({report['missing_cells']} cells): structure from the "
                f"{report['rows_for_structure']} complete rows, CPTs by EM from all {n_rows}"
            )
    g = result.learner.graph_
    console.print(
        f"[green]learned[/] {g.number_of_nodes()} nodes, {g.number_of_edges()} arcs "
        f"({method}{', expert knowledge' if result.learner.expert_knowledge is not None else ''})"
        f" -> {escape(out)}"
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
    table = Table(title=escape(title))
    table.add_column("state")
    table.add_column("probability", justify="right")
    for state, p in series.items():
        table.add_row(escape(str(state)), f"{p:.4f}")
    console.print(table)


def _load(model: Path):
    from biofluxopt.bn import load_network

    return load_network(model)


@bn_app.command("query")
def query(
    model: Annotated[Path, typer.Option("--model", help=MODEL_HELP)],
    target: Annotated[
        str, typer.Option("--target", help="Node whose distribution is printed.")
    ] = "serum_b12",
    evidence: Annotated[str, typer.Option("--evidence", help=EVIDENCE_HELP)] = "",
    mpe: Annotated[
        bool,
        typer.Option(
            "--mpe",
            help="Also print the most probable explanation: the jointly most likely states of "
            "every unobserved node.",
        ),
    ] = False,
) -> None:
    """Print P(target | evidence) (and optionally the most probable explanation).

    Exact inference in bounded memory: the largest table is computed before any work, and a
    query past the memory limit is refused.
    """
    _quiet()
    from biofluxopt.bn import most_probable_explanation, parse_evidence, posterior

    net = _load(model)
    ev = parse_evidence(evidence)
    try:
        post = posterior(net, target, ev)
        explanation = most_probable_explanation(net, ev) if mpe else None
    except MemoryError:
        raise _out_of_memory("querying the network") from None
    shown = ", ".join(f"{k}={v}" for k, v in ev.items()) or "no evidence"
    _print_series(f"P({target} | {shown})", post)
    if explanation is not None:
        table = Table(title="most probable explanation")
        table.add_column("variable")
        table.add_column("state")
        for var, state in explanation.items():
            table.add_row(escape(var), escape(state))
        console.print(table)


@bn_app.command("explain")
def explain_cmd(
    model: Annotated[Path, typer.Option("--model", help=MODEL_HELP)],
    evidence: Annotated[
        str,
        typer.Option("--evidence", help="The person's observed factors: name=state,name=state."),
    ],
    target: Annotated[str, typer.Option("--target", help="Outcome node.")] = "serum_b12",
    state: Annotated[
        str, typer.Option("--state", help="Outcome state whose risk is explained.")
    ] = "deficient",
) -> None:
    """Rank the observed factors by how much each moves P(target = state)."""
    _quiet()
    from biofluxopt.bn import explain, parse_evidence

    net = _load(model)
    ev = parse_evidence(evidence)
    if not ev:
        raise DataError("give at least one observed factor", field="--evidence")
    try:
        ranked = explain(net, ev, target=target, state=state)
    except MemoryError:
        raise _out_of_memory("querying the network") from None
    p = ranked["p_with"].iloc[0]
    title = f"P({target}={state} | evidence) = {p:.3f}: factors ranked by effect"
    table = Table(title=escape(title))
    for col in ("factor", "observed", "without it", "effect", "best alternative", "risk then"):
        table.add_column(
            col, justify="right" if col in {"without it", "effect", "risk then"} else "left"
        )
    for row in ranked.itertuples(index=False):
        table.add_row(
            escape(row.factor),
            escape(row.observed),
            f"{row.p_without:.3f}",
            f"{row.effect:+.3f}",
            escape(row.best_alternative),
            f"{row.p_best_alternative:.3f}",
        )
    console.print(table)


@bn_app.command("cohort")
def cohort(
    n: Annotated[int, typer.Option("--n", min=1, help="Number of people.")],
    out: Annotated[
        str,
        typer.Option(
            "--out", help="Output CSV file (an existing file is replaced only with --overwrite)."
        ),
    ],
    days: Annotated[
        int, typer.Option("--days", min=1, max=36500, help="Simulated days, 1 to 36500.")
    ] = 30,
    start: Annotated[
        StartKind,
        typer.Option(
            "--start",
            help="regimen: everyone at the steady state of diet + supplement "
            "(cross-sectional); diet: at the diet's steady state, then the supplement for --days "
            "(a trial).",
        ),
    ] = "regimen",
    discrete: Annotated[
        bool, typer.Option("--discrete", help="Write BN states instead of numbers.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing --out file.")
    ] = False,
    seed: Annotated[
        int, typer.Option("--seed", help="Seeds host factors, compositions, kinetics. " + SEED_HELP)
    ] = 0,
) -> None:
    """Simulate a cohort (documented host factors, real HMP compositions) and write it as CSV.

    The memory a cohort needs is estimated first: long simulations run in smaller batches,
    and a cohort past the limit is refused before any work.
    """
    _quiet()
    from biofluxopt._util import (
        atomic_write_text,
        check_output_file,
        check_seed,
        seed_everything,
    )
    from biofluxopt.bn import cohort_plan, discretise_cohort, simulate_cohort_table

    seed = check_seed(seed)
    path = check_output_file(out, overwrite=overwrite, example="cohort.csv")
    cohort_plan(n, days)
    seed_everything(seed)
    try:
        table = simulate_cohort_table(n, days=days, seed=seed, progress=True, start=start)
    except MemoryError:
        raise _out_of_memory(f"simulating {n} people × {days} days") from None
    if discrete:
        table, _ = discretise_cohort(table)
    atomic_write_text(path, table.to_csv(index=False))
    console.print(
        f"[green]wrote[/] {len(table)} people × {table.shape[1]} columns -> {escape(out)}"
    )


def register(app: typer.Typer) -> None:
    """Attach ``biofluxopt bn`` to the root ``app``."""
    app.add_typer(bn_app, name="bn")
