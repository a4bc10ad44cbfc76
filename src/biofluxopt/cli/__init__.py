"""The ``biofluxopt`` command line (Typer + rich)."""

from ._app import app, main

__all__ = ["app", "main"]
