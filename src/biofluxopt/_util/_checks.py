"""Checks shared by every command: seeds, devices, memory estimates, TOML files."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from ._errors import ConfigError

SEED_MAX = 2**63 - 1
"""Largest accepted ``--seed``."""

MEMORY_ENV = "BIOFLUXOPT_MAX_MEMORY_GB"
"""Environment variable that sets the memory limit (GB) of :func:`check_memory`."""

DEFAULT_MAX_MEMORY_GB = 8.0
"""Memory limit (GB) when :data:`MEMORY_ENV` is unset."""


def check_seed(seed: int, option: str = "--seed") -> int:
    """Return ``seed`` if ``0 ≤ seed ≤ 2**63 − 1``, else raise ConfigError naming ``option``.

    Every command applies the same rule, so a seed that works for one works for all (numpy,
    torch and Python's ``random`` all accept this range).
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise ConfigError(
            f"must be an integer from 0 to {SEED_MAX} (2**63 - 1); got {seed}", field=option
        )
    return seed


def resolve_device(name: str, option: str = "--device") -> str:
    """Return the torch device string for ``name`` (``cpu``, ``cuda``, ``cuda:N``, ``mps``).

    Raises
    ------
    ConfigError
        Unknown device, or a CUDA/MPS device this machine does not have; one line naming
        ``option``.
    """
    key = name.strip().lower()
    if key == "cpu":
        return "cpu"
    m = re.fullmatch(r"cuda(?::(\d+))?", key)
    if m:
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                f"CUDA is not available on this machine (torch {torch.__version__}); "
                f"use --device cpu",
                field=option,
            )
        if m[1] is not None and int(m[1]) >= torch.cuda.device_count():
            raise ConfigError(
                f"{name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                f"numbered from 0",
                field=option,
            )
        return key
    if key == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise ConfigError(
                "MPS is not available on this machine; use --device cpu", field=option
            )
        return "mps"
    raise ConfigError(f"unknown device {name!r}; use cpu, cuda, cuda:N or mps", field=option)


def memory_limit_bytes() -> int:
    """The memory limit in bytes: ``$BIOFLUXOPT_MAX_MEMORY_GB`` (default 8) × 10⁹."""
    raw = os.environ.get(MEMORY_ENV)
    if raw is None or not raw.strip():
        return int(DEFAULT_MAX_MEMORY_GB * 1e9)
    try:
        gb = float(raw)
    except ValueError:
        gb = float("nan")
    if not gb > 0 or gb == float("inf"):
        raise ConfigError(f"must be a positive number of GB; got {raw!r}", field=MEMORY_ENV)
    return int(gb * 1e9)


def check_memory(n_bytes: int, what: str, *, limit_bytes: int | None = None) -> None:
    """Refuse an allocation estimated at ``n_bytes`` that exceeds the memory limit.

    Parameters
    ----------
    n_bytes : int
        Estimated peak memory of the work, in bytes.
    what : str
        What needs it, named so the user can shrink it, e.g.
        ``"protocol.toml: 1000000 patients × 36500 days"``.
    limit_bytes : int, optional
        The limit; default :func:`memory_limit_bytes`.

    Raises
    ------
    ConfigError
        The estimate exceeds the limit; the message gives both and how to raise the limit.
    """
    limit = memory_limit_bytes() if limit_bytes is None else int(limit_bytes)
    if n_bytes > limit:
        raise ConfigError(
            f"{what} needs about {_gb(n_bytes)} of memory, more than the limit of "
            f"{_gb(limit)}; make it smaller, or raise the limit with "
            f"{MEMORY_ENV}=<GB>"
        )


def _gb(n_bytes: float) -> str:
    gb = n_bytes / 1e9
    return f"{gb:,.0f} GB" if gb >= 100 else f"{gb:.3g} GB"


def read_toml(path: str | Path) -> dict:
    """Parse a TOML file; every failure is a one-line ConfigError naming the file.

    Raises
    ------
    ConfigError
        The file is missing, unreadable, not UTF-8 (e.g. binary) or not valid TOML.
    """
    if "\0" in str(path):
        raise ConfigError(f"not a usable file name: {str(path)!r}")
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError("file not found", source=path) from exc
    except IsADirectoryError as exc:
        raise ConfigError("is a directory, not a TOML file", source=path) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", source=path) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not a UTF-8 text file (undecodable byte at offset {exc.start}); expected a TOML file",
            source=path,
        ) from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", source=path) from exc
