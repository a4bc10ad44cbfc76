"""Run a protocol spec end to end (the Python API behind ``biofluxopt simulate``)."""

from __future__ import annotations

from pathlib import Path

import torch

from ._leverage import lever_index
from ._model import State, n_agents
from ._params import KineticParams, default_params, sample_params, taxon_ids
from ._protocol import ACTIVITIES, Protocol, ProtocolSpec, build_protocol, load_protocol
from ._solve import Solution, simulate
from ._steady import default_composition, steady_state


def protocol_params(
    spec: ProtocolSpec, *, seed: int | None = None, device: str = "cpu"
) -> KineticParams:
    """Per-patient parameters of a protocol: defaults for one patient; for several, sampled
    inter-individual variability (``variability`` scales the spread); then ``[parameters]``
    overrides for everyone."""
    seed = spec.seed if seed is None else seed
    if spec.patients == 1:
        params = default_params(1, device=device)
    else:
        params = sample_params(spec.patients, seed=seed, spread=spec.variability, device=device)
    if spec.parameters:
        params = params.replace(**spec.parameters)
    return params


def protocol_activity(spec: ProtocolSpec, *, device: str = "cpu") -> torch.Tensor | None:
    """Agent activity multipliers ``[patients, agents, 4]`` from ``[activity]`` (or None)."""
    if not spec.activity:
        return None
    pairs = [(taxon, name) for taxon, acts in spec.activity.items() for name in acts]
    values = [value for acts in spec.activity.values() for value in acts.values()]
    agent_index, activity_index = lever_index(pairs)
    act = torch.ones(spec.patients, n_agents(), len(ACTIVITIES), dtype=torch.float64)
    act[:, agent_index, activity_index] = torch.tensor(values, dtype=torch.float64)
    return act.to(device)


def protocol_composition(spec: ProtocolSpec, *, device: str = "cpu") -> torch.Tensor:
    """Baseline composition ``[patients, taxa]`` from ``[microbiome]`` or the default."""
    if spec.microbiome is None:
        return default_composition(spec.patients, device=device)
    ids = taxon_ids()
    comp = torch.tensor([spec.microbiome.get(t, 0.0) for t in ids], dtype=torch.float64)
    if "other" not in spec.microbiome:
        comp[-1] = (1 - comp[:-1].sum()).clamp_min(0)
    comp = comp / comp.sum()
    return comp.to(device).expand(spec.patients, -1).clone()


def protocol_state0(
    spec: ProtocolSpec, params: KineticParams, protocol: Protocol, *, device: str = "cpu"
) -> State:
    """Each patient's steady state under a protocol's diet, host factors, composition and
    optional ``baseline_serum_b12_pmol_l`` (the initial state of :func:`run_protocol`).

    ``params`` and ``protocol`` may hold a subset of the spec's patients (the composition
    and baseline are the same for all)."""
    n = protocol.n_patients
    baseline = spec.host.baseline_serum_b12_pmol_l
    target = (
        None if baseline is None else torch.full((n,), baseline, dtype=torch.float64, device=device)
    )
    with torch.no_grad():
        return steady_state(
            params,
            protocol,
            protocol_composition(spec, device=device)[:1].expand(n, -1),
            baseline_serum_b12_pmol_l=target,
            substeps_per_day=spec.substeps_per_day,
        )


def run_protocol(
    spec: ProtocolSpec | str | Path,
    *,
    seed: int | None = None,
    device: str = "cpu",
    progress: bool = False,
    compile: bool = False,
) -> Solution:
    """Simulate a protocol (a spec or a TOML path) from each patient's steady state.

    Parameters
    ----------
    spec : ProtocolSpec or path
    seed : int, optional
        Overrides the protocol's ``seed`` (parameter variability).
    device : str
    progress : bool
    compile : bool
        The compiled RK4 sub-step (:func:`~biofluxopt.sim.simulate`'s ``compile``).
    """
    if not isinstance(spec, ProtocolSpec):
        spec = load_protocol(spec)
    params = protocol_params(spec, seed=seed, device=device)
    protocol = build_protocol(spec, device=device)
    with torch.no_grad():
        state0 = protocol_state0(spec, params, protocol, device=device)
        return simulate(
            params,
            state0,
            protocol,
            activity=protocol_activity(spec, device=device),
            substeps_per_day=spec.substeps_per_day,
            progress=progress,
            compile=compile,
        )
