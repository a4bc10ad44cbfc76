"""Shared builders for the simulator tests: random but valid patients and protocols."""

from __future__ import annotations

import pytest
import torch

from biofluxopt import sim


def _random_batch(n: int, days: int, *, seed: int = 0, meals: int = 2, im: bool = True):
    """``n`` random patients (params, composition, host factors, activity) and protocols."""
    g = torch.Generator().manual_seed(seed)

    def u(*shape):
        return torch.rand(*shape, generator=g, dtype=torch.float64)

    def pick(levels):
        return [levels[int(i)] for i in torch.randint(len(levels), (n,), generator=g)]

    params = sim.sample_params(n, seed=seed)
    host = sim.host_factors(
        n,
        intrinsic_factor=pick(["normal", "normal", "reduced", "absent"]),
        gastric_release=pick(["normal", "impaired"]),
        fut2=pick(["secretor", "nonsecretor"]),
        tcn2_776=pick(["CC", "CG", "GG"]),
        mthfr_677=pick(["CC", "CT", "TT"]),
    )
    food = (u(n, 1) * 10).expand(n, days).clone()
    oral = torch.zeros(n, days, meals, dtype=torch.float64)
    dose = u(n) * 1000 * (u(n) < 0.5)
    start = torch.randint(days, (n,), generator=g)
    for i in range(n):
        oral[i, int(start[i]) :, 0] = dose[i]
    im_ug = torch.zeros(n, days, dtype=torch.float64)
    if im:
        for i in range(n):
            if u(1).item() < 0.3:
                im_ug[i, torch.randint(days, (3,), generator=g)] = 1000.0
    # a probiotic course for about half of the patients
    probiotic = torch.zeros(n, days, sim.n_taxa(), dtype=torch.float64)
    pro = sim.taxon_ids().index("propionibacterium")
    for i in range(n):
        if u(1).item() < 0.5:
            probiotic[i, : max(1, days // 2), pro] = 10 ** (9 + 2 * u(1).item())
    protocol = sim.Protocol(host, food, oral, im_ug, meals, probiotic)
    comp = torch.distributions.Dirichlet(torch.ones(sim.n_taxa(), dtype=torch.float64))
    torch.manual_seed(seed)
    composition = comp.sample((n,)) * (u(n, sim.n_taxa()) < 0.8) * resident_mask()
    composition[:, -1] += 0.05
    composition = composition / composition.sum(-1, keepdim=True)
    activity = torch.exp((u(n, sim.n_agents(), 4) * 2 - 1) * torch.log(torch.tensor(4.0)))
    return params, protocol, composition, mask_activity(activity)


def resident_mask() -> torch.Tensor:
    """``[taxa]``: 1 for taxa that may be in a baseline composition (not probiotics)."""
    from biofluxopt.sim._model import taxa_meta

    return taxa_meta().resident.to(torch.float64)


def mask_activity(activity: torch.Tensor) -> torch.Tensor:
    """``activity`` with the entries of activities a taxon does not have set to 1."""
    from biofluxopt.sim._model import taxa_meta

    allowed = taxa_meta().allowed[:-1]
    return torch.where(allowed, activity, torch.ones_like(activity))


@pytest.fixture
def random_batch():
    """Builder ``random_batch(n, days, *, seed=0, meals=2, im=True)`` of random test inputs."""
    return _random_batch
