"""Throughput of the batched simulator vs the scipy reference integrator (one JSON line).

Figures: patient-days per second of ``biofluxopt.sim.simulate`` at 4,096 patients, of the
reference integrator (``solve_ivp`` LSODA on the same right-hand side, one patient at a time,
measured in the same run), their ratio (goal >= 1,000), and the maximum relative error of
serum B12 between the two on the patients run through both.

Usage: ``python benchmarks/bench_sim.py [--patients 4096] [--days 20] [--reference 3]``
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from biofluxopt import sim
from biofluxopt.sim._reference import simulate_reference


def cohort(n: int, days: int, seed: int = 0):
    """Varied patients: sampled parameters, diets, oral doses, IF status, activities."""
    g = torch.Generator().manual_seed(seed)
    params = sim.sample_params(n, seed=seed)
    levels = ["normal", "normal", "normal", "reduced", "absent"]
    host = sim.host_factors(
        n, intrinsic_factor=[levels[int(i)] for i in torch.randint(5, (n,), generator=g)]
    )
    food = (torch.rand(n, 1, generator=g, dtype=torch.float64) * 8).expand(n, days).clone()
    oral = torch.zeros(n, days, 3, dtype=torch.float64)
    oral[:, :, 0] = (torch.rand(n, 1, generator=g, dtype=torch.float64) < 0.5) * 1000.0
    protocol = sim.Protocol(host, food, oral, torch.zeros(n, days, dtype=torch.float64), 3)
    activity = torch.exp(
        (torch.rand(n, sim.n_agents(), 4, generator=g, dtype=torch.float64) * 2 - 1) * np.log(4)
    )
    return params, protocol, activity


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=4096)
    ap.add_argument("--days", type=int, default=20)
    ap.add_argument("--reference", type=int, default=3, help="patients run through the reference")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    params, protocol, activity = cohort(args.patients, args.days)
    with torch.no_grad():
        state0 = sim.steady_state(params, protocol)
        p_dev = params.to(args.device)
        s_dev = sim.State(
            state0.x.to(args.device),
            state0.presence.to(args.device),
            state0.growth_rate_per_day.to(args.device),
            state0.niche.to(args.device),
        )
        from biofluxopt.sim._cohort import _to

        prot_dev = _to(protocol, args.device)
        act_dev = activity.to(args.device)
        sim.simulate(p_dev, s_dev, prot_dev, days=1, activity=act_dev)  # warm-up
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fast = sim.simulate(p_dev, s_dev, prot_dev, activity=act_dev)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t_fast = time.perf_counter() - t0

    errors, t_ref = [], 0.0
    for i in range(args.reference):
        idx = slice(i, i + 1)
        t0 = time.perf_counter()
        ref = simulate_reference(
            params.index(idx),
            state0.index(idx),
            protocol.index(idx),
            days=args.days,
            activity=activity[idx],
        )
        t_ref += time.perf_counter() - t0
        a = fast.daily["serum_b12_pmol_l"][i].cpu().numpy()
        b = ref["serum_b12_pmol_l"][0]
        errors.append(float(np.max(np.abs(a - b) / np.abs(b))))

    batched = args.patients * args.days / t_fast
    reference = args.reference * args.days / t_ref
    print(
        json.dumps(
            {
                "benchmark": "sim",
                "device": args.device,
                "patients": args.patients,
                "days": args.days,
                "batched_patient_days_per_s": round(batched, 1),
                "reference_patient_days_per_s": round(reference, 3),
                "ratio": round(batched / reference, 1),
                "max_rel_error_serum": float(f"{max(errors):.3g}"),
                "torch_threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
