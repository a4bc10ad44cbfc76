"""Root of the ``biofluxopt`` command.

Each command group lives in its own module with a ``register(app)`` function; heavy imports
(torch, pgmpy) happen inside the commands so that ``biofluxopt --help`` stays instant.
User-fixable problems raise :class:`~biofluxopt._util.BioFluxOptError` and end here as one
red line and exit code 2, never as a traceback.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from biofluxopt import __version__
from biofluxopt._util import BioFluxOptError

from . import _bn, _sensitivity, _simulate, _synth

app = typer.Typer(
    name="biofluxopt",
    help="Host–gut-microbiome vitamin B12: calibrated simulation, Bayesian networks, "
    "multi-agent RL and virtual trials.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"biofluxopt {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    """BioFluxOpt command line."""


for _module in (_simulate, _sensitivity, _bn, _synth):
    _module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point.

    Runs the app in click's standalone mode (usage errors exit 2, ``--help`` exits 0, success
    exits 0) and turns :class:`BioFluxOptError` and missing files into one red line and exit
    code 2. Always ends with ``SystemExit``, like any console script.
    """
    try:
        app(args=argv, prog_name="biofluxopt")
    except BioFluxOptError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except FileNotFoundError as exc:
        missing = exc.filename or exc
        err_console.print(f"[bold red]error:[/] file not found: {missing}", highlight=False)
        sys.exit(2)
