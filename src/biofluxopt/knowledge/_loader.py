"""Typed loading of the knowledge-base TOML files.

Every file holds arrays of tables (``[[taxon]]``, ``[[parameter]]`` ...). Each entry is
validated by a pydantic model; a malformed entry raises :class:`~biofluxopt._util.ConfigError`
naming the file, the entry (by index and id) and the field.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from biofluxopt._util import ConfigError
from biofluxopt._util import read_toml as _read_toml

M = TypeVar("M", bound=BaseModel)

DATA_PACKAGE = "biofluxopt.knowledge"


def data_path(name: str) -> Path:
    """Path of a shipped knowledge-base file, e.g. ``data_path("taxa.toml")``."""
    return Path(str(resources.files(DATA_PACKAGE).joinpath("data", name)))


def read_toml(path: str | Path) -> dict:
    """Parse a TOML file; every failure (missing, unreadable, not UTF-8, e.g. binary, or not
    TOML) is a one-line :class:`~biofluxopt._util.ConfigError` naming the file."""
    return _read_toml(path)


def load_entries(path: str | Path, key: str, model: type[M]) -> list[M]:
    """Load ``[[key]]`` entries of a TOML file into ``model`` instances.

    Parameters
    ----------
    path : str or Path
        The TOML file.
    key : str
        Name of the array of tables, e.g. ``"taxon"``.
    model : pydantic model class
        Validator for one entry (should set ``extra="forbid"``).

    Raises
    ------
    ConfigError
        The file is missing the array, an entry fails validation (message names
        ``path``, ``key[i] (id)`` and the field), or two entries share an ``id``.
    """
    path = Path(path)
    doc = read_toml(path)
    raw = doc.get(key)
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"expected a non-empty array of tables [[{key}]]", source=path)
    out: list[M] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        label = f"{key}[{i}]" + (f" ({entry.get('id')})" if isinstance(entry, dict) else "")
        try:
            item = model.model_validate(entry)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "<entry>"
            got = first.get("input")
            raise ConfigError(
                f"field '{loc}': {first['msg']} (got {got!r})", source=path, field=label
            ) from exc
        ident = getattr(item, "id", None)
        if ident is not None:
            if ident in seen:
                raise ConfigError(f"duplicate id {ident!r}", source=path, field=label)
            seen.add(ident)
        out.append(item)
    return out
