"""Small shared utilities: errors, atomic output, seeding. Private to the package."""

from ._errors import BioFluxOptError, ConfigError, DataError
from ._io import atomic_output_dir, atomic_write_bytes, atomic_write_text
from ._seed import seed_everything

__all__ = [
    "BioFluxOptError",
    "ConfigError",
    "DataError",
    "atomic_output_dir",
    "atomic_write_bytes",
    "atomic_write_text",
    "seed_everything",
]
