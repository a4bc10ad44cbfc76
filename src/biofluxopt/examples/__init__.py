"""Example protocol files shipped with BioFluxOpt (see ``biofluxopt.sim.example_protocol``)."""
