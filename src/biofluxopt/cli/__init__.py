"""The ``biofluxopt`` command line (Typer + rich)."""

from ._app import app, main, run

__all__ = ["app", "main", "run"]
