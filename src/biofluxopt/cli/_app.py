"""Root of the ``biofluxopt`` command.

Each command group lives in its own module with a ``register(app)`` function; heavy imports
(torch, pgmpy) happen inside the commands so that ``biofluxopt --help`` stays instant.

No traceback ever reaches a user. :func:`main` turns every failure into one red line on
stderr, whatever the terminal width:

* a problem the user can fix — :class:`~biofluxopt._util.BioFluxOptError`, a usage error
  (unknown option, bad value), a file that cannot be read or written, a file that is not
  UTF-8 or not TOML — exits with code 2;
* anything else is an internal error: exit code 1 and a request to report it
  (``BIOFLUXOPT_TRACEBACK=1`` shows the traceback instead).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tomllib

import typer
from rich.console import Console
from rich.markup import escape

from biofluxopt import __version__
from biofluxopt._util import BioFluxOptError

from . import _bn, _marl, _sbml, _sensitivity, _simulate, _synth, _trial

REPORT_HINT = (
    "please report it on the BioFluxOpt issue tracker with the command line and this message "
    "(BIOFLUXOPT_TRACEBACK=1 shows the traceback)"
)
"""Appended to internal errors (exit code 1)."""

TRACEBACK_ENV = "BIOFLUXOPT_TRACEBACK"
"""Set to 1 to let internal errors raise with their traceback (for developers)."""

app = typer.Typer(
    name="biofluxopt",
    help="Host–gut-microbiome vitamin B12: calibrated kinetic simulation, sensitivity "
    "analysis, Bayesian networks and synthetic microbiome cohorts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True, soft_wrap=True, highlight=False)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"biofluxopt {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version_callback,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """BioFluxOpt command line: simulate, sensitivity, bn, synth, train, tune, trial."""


for _module in (_simulate, _sensitivity, _bn, _synth, _sbml, _marl, _trial):
    _module.register(app)


def one_line(text: object) -> str:
    """``text`` as a single line: newlines and runs of white space become one space."""
    return " ".join(str(text).split())


def _error(message: object, code: int) -> int:
    err_console.print(f"[bold red]error:[/] {escape(one_line(message))}")
    return code


def _click_exception_types() -> tuple[type[BaseException], ...]:
    """Click's exception base classes: typer ≥ 0.22 vendors click, older typer uses click."""
    types: list[type[BaseException]] = [typer.TyperException]
    try:
        import click

        types.append(click.ClickException)
    except ImportError:  # pragma: no cover - typer without click
        pass
    return tuple(types)


def _kinds(exc: BaseException) -> set[str]:
    """Class names in the MRO of ``exc`` (click's and typer's copies share the names)."""
    return {c.__name__ for c in type(exc).__mro__}


def _usage_message(exc) -> str:
    """``<option>: <message>`` for a click usage error, plus where to find help."""
    kinds = _kinds(exc)
    where = ""
    if "BadParameter" in kinds:  # includes MissingParameter
        hint = exc.param_hint
        param = getattr(exc, "param", None)
        if hint is None and param is not None:
            opts = list(getattr(param, "opts", ()) or ())
            longs = [o for o in opts if o.startswith("--")] or opts
            is_option = getattr(param, "param_type_name", "") == "option"
            hint = longs[0] if is_option and longs else str(param.name or "").upper()
        if isinstance(hint, list | tuple):
            hint = " / ".join(str(h) for h in hint)
        if hint:
            where = f"{str(hint).replace(chr(39), '').replace(chr(34), '')}: "
    if "MissingParameter" in kinds:
        kind = exc.param_type or (exc.param.param_type_name if exc.param else "parameter")
        msg = f"missing {kind}"
    elif "BadParameter" in kinds:
        msg = exc.message
    else:
        msg = exc.format_message()
    ctx = getattr(exc, "ctx", None)
    cmd = ctx.command_path if ctx is not None else "biofluxopt"
    return f"{where}{msg} (see `{cmd} --help`)"


def _os_message(exc: OSError) -> str:
    name = exc.filename
    if isinstance(exc, FileNotFoundError):
        return f"file not found: {name}" if name else f"file not found: {exc}"
    if isinstance(exc, PermissionError):
        return f"permission denied: {name}" if name else f"permission denied: {exc}"
    reason = exc.strerror or str(exc)
    return f"{name}: {reason}" if name else reason


def run(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit code (0 ok, 1 internal error, 2 user error).

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name; default ``sys.argv[1:]``.
    """
    try:
        return _run(argv)
    except Exception as exc:  # a failure while reporting a failure: still one line
        if os.environ.get(TRACEBACK_ENV, "").strip() not in ("", "0"):
            raise
        return _error(f"internal error: {type(exc).__name__}: {exc}; {REPORT_HINT}", 1)


def _run(argv: list[str] | None) -> int:
    try:
        rv = app(args=argv, prog_name="biofluxopt", standalone_mode=False)
    except _click_exception_types() as exc:
        kinds = _kinds(exc)
        if "NoArgsIsHelpError" in kinds:  # the help: rich help is already printed
            text = exc.format_message()
            if text.strip():
                typer.echo(text)
            return 2
        if "UsageError" in kinds:
            return _error(_usage_message(exc), 2)
        return _error(exc.format_message(), getattr(exc, "exit_code", 1) or 1)
    except typer.Abort:
        return _error("aborted", 130)
    except BioFluxOptError as exc:
        return _error(exc, 2)
    except UnicodeDecodeError as exc:
        return _error(f"a file is not UTF-8 text ({exc.reason} at byte {exc.start})", 2)
    except tomllib.TOMLDecodeError as exc:
        return _error(f"invalid TOML: {exc}", 2)
    except MemoryError:
        return _error("out of memory; make the run smaller (fewer patients, days or samples)", 2)
    except OSError as exc:
        return _error(_os_message(exc), 2)
    except KeyboardInterrupt:
        return _error("interrupted", 130)
    except Exception as exc:
        if os.environ.get(TRACEBACK_ENV, "").strip() not in ("", "0"):
            raise
        return _error(f"internal error: {type(exc).__name__}: {exc}; {REPORT_HINT}", 1)
    if isinstance(rv, int) and not isinstance(rv, bool):
        return rv  # click returns the exit code of --help, --version and typer.Exit
    return 0


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds, so output_directory removes its temporary


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: :func:`run`, then ``SystemExit`` with its exit code.

    SIGTERM (``kill``, ``timeout``) ends the command like Ctrl-C does: temporary output is
    removed and the exit code is 143.
    """
    previous = None
    with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        code = run(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    sys.exit(code)
