"""BioFluxOpt: the host–gut-microbiome vitamin B12 network, modelled and optimised.

Sub-packages (each with one job; data flows forward, see ``docs/architecture.md``):

``knowledge``  curated taxa, metabolites, reactions, host factors and kinetic parameters
``data``       abundance tables (CSV/TSV/BIOM): reading, validation, genus → model-taxon mapping
``sim``        the batched, differentiable host–microbiome B12 kinetic model
``bn``         Bayesian network: discretisation, hybrid structure learning, inference
``synth``      synthetic microbiome compositions (WGAN-GP) and fidelity metrics
``cli``        the ``biofluxopt`` command
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("biofluxopt")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
