"""Exception types whose messages name the file and field at fault.

Every user-facing error in BioFluxOpt is a :class:`BioFluxOptError`; the CLI turns it into a
red one-line message and exit code 2 instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path


class BioFluxOptError(Exception):
    """Base class: a problem the user can fix (bad input, bad config, missing file).

    Parameters
    ----------
    message : str
        What is wrong, what is allowed and what was received.
    source : str or Path, optional
        The file (or other origin) the problem is in; prefixed to the message.
    field : str, optional
        The key, column or row at fault; prefixed to the message after ``source``.
    """

    def __init__(self, message: str, *, source: str | Path | None = None, field: str | None = None):
        self.source = None if source is None else str(source)
        self.field = field
        self.detail = message
        where = ": ".join(x for x in (self.source, field) if x)
        super().__init__(f"{where}: {message}" if where else message)


class ConfigError(BioFluxOptError):
    """A configuration or protocol file (TOML) is invalid."""


class DataError(BioFluxOptError):
    """A data table (abundances, cohort, network) is malformed or inconsistent."""
