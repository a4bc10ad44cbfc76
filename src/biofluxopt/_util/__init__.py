"""Small shared utilities: errors, safe output, strict JSON, stable PNGs, option checks,
seeding. Private to the package."""

from ._background import BackgroundJob
from ._checks import (
    DEFAULT_MAX_MEMORY_GB,
    MEMORY_ENV,
    SEED_MAX,
    check_memory,
    check_seed,
    memory_limit_bytes,
    read_toml,
    resolve_device,
)
from ._errors import BioFluxOptError, ConfigError, DataError
from ._io import (
    MARKER_NAME,
    atomic_output_dir,
    atomic_write_bytes,
    atomic_write_text,
    check_output_file,
    current_umask,
    output_directory,
)
from ._json import dumps_json, to_jsonable
from ._params import InstanceOf, Interval, Options, check_params
from ._png import save_png
from ._seed import seed_everything

__all__ = [
    "DEFAULT_MAX_MEMORY_GB",
    "MARKER_NAME",
    "MEMORY_ENV",
    "SEED_MAX",
    "BackgroundJob",
    "BioFluxOptError",
    "ConfigError",
    "DataError",
    "InstanceOf",
    "Interval",
    "Options",
    "atomic_output_dir",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_memory",
    "check_output_file",
    "check_params",
    "check_seed",
    "current_umask",
    "dumps_json",
    "memory_limit_bytes",
    "output_directory",
    "read_toml",
    "resolve_device",
    "save_png",
    "seed_everything",
    "to_jsonable",
]
