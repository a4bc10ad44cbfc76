"""Throughput of the batched simulator, its stepping API, precision and load (one JSON line).

Every figure is a ratio against a reference measured in the same run, so that a busy or
slow machine moves numerator and denominator together:

- ``ratio``: patient-days per second of ``biofluxopt.sim.simulate`` at ``--patients`` vs the
  scipy reference integrator (LSODA on the same right-hand side, one patient at a time);
  goal ≥ 1,000. ``max_rel_error_serum`` compares the two on the patients run through both
  (24 sub-steps; half the cohort takes 1000 µg/day, which saturates transcobalamin), and
  ``max_rel_error_serum_96_substeps`` at the resolution such protocols get by default.
- ``stepping_ratio``: daily stepping with a new action every day (``sim.Simulator``, set-up
  included) vs one long ``simulate`` call with a constant action (set-up included); goal ≥ 0.8.
  ``step_overhead_ms``: the extra wall time per step call.
- ``float32_ratio``: float32 vs float64 throughput, with ``float32_max_rel_error_serum``.
- ``compiled_ratio``: ``simulate(..., compile=True)`` (the RK4 sub-step compiled by
  ``torch.compile``) vs the default traced sub-step, float64, after ``compile_s`` seconds of
  first-call compilation (less when torch's on-disk cache holds the kernel);
  ``compiled_max_rel_error_serum`` between the two.
- ``busy_ratio``: throughput with a CPU-burning process on one core vs without (threads chosen
  by ``cpu_threads_="auto"`` each time); goal ≥ 0.5.

Usage: ``python benchmarks/bench_sim.py [--patients 4096] [--days 20] [--reference 3]``
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import time

import numpy as np
import torch

from biofluxopt import sim
from biofluxopt._util import to_jsonable
from biofluxopt.sim._reference import simulate_reference


def cohort(n: int, days: int, seed: int = 0, dtype=torch.float64):
    """Varied patients: sampled parameters, diets, oral doses, IF status, activities."""
    g = torch.Generator().manual_seed(seed)
    params = sim.sample_params(n, seed=seed)
    levels = ["normal", "normal", "normal", "reduced", "absent"]
    host = sim.host_factors(
        n,
        intrinsic_factor=[levels[int(i)] for i in torch.randint(5, (n,), generator=g)],
        dtype=dtype,
    )
    food = (torch.rand(n, 1, generator=g, dtype=torch.float64) * 8).expand(n, days).clone()
    oral = torch.zeros(n, days, 3, dtype=torch.float64)
    oral[:, :, 0] = (torch.rand(n, 1, generator=g, dtype=torch.float64) < 0.5) * 1000.0
    protocol = sim.Protocol(
        host,
        food.to(dtype),
        oral.to(dtype),
        torch.zeros(n, days, dtype=dtype),
        3,
    )
    log_act = torch.rand(n, days, sim.n_agents(), 4, generator=g, dtype=torch.float64) * 2 - 1
    activity = torch.exp(log_act * np.log(4))
    activity = torch.where(sim.action_mask(), activity, torch.ones_like(activity)).to(dtype)
    return params.to(dtype=dtype), protocol, activity


def _burn(stop) -> None:  # pragma: no cover - runs in a child process
    x = 0
    while not stop.is_set():
        x = (x * 1103515245 + 12345) % 2**31


def _rate(params, state0, protocol, activity, days, n) -> tuple[float, sim.Solution]:
    t0 = time.perf_counter()
    sol = sim.simulate(params, state0, protocol, activity=activity, days=days)
    return n * days / (time.perf_counter() - t0), sol


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=4096)
    ap.add_argument("--days", type=int, default=20)
    ap.add_argument("--reference", type=int, default=3, help="patients run through the reference")
    ap.add_argument("--repeat", type=int, default=2, help="runs per timing (best is kept)")
    args = ap.parse_args()
    n, days = args.patients, args.days

    params, protocol, per_day = cohort(n, days)
    const = per_day[:, 0]
    with torch.no_grad():
        state0 = sim.steady_state(params, protocol)
        sim.simulate(params, state0, protocol, days=1, activity=const)  # warm-up
        batched, fast = _rate(params, state0, protocol, const, days, n)

        # the compiled sub-step (opt-in): first call compiles, then best of --repeat
        t0 = time.perf_counter()
        sim.simulate(params, state0, protocol, days=1, activity=const, compile=True)
        compile_s = time.perf_counter() - t0
        compiled, compiled_sol = 0.0, None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            sol_c = sim.simulate(params, state0, protocol, activity=const, days=days, compile=True)
            rate_c = n * days / (time.perf_counter() - t0)
            if rate_c > compiled:
                compiled, compiled_sol = rate_c, sol_c
        batched = max(batched, _rate(params, state0, protocol, const, days, n)[0])
        serum_c = compiled_sol.daily["serum_b12_pmol_l"]
        err_c = float(((serum_c - fast.daily["serum_b12_pmol_l"]).abs() / serum_c).max())

        # stepping: set-up, then one call per day with that day's action, vs one long call
        # with a constant action (both timed with their set-up, as a user runs them; best of
        # ``--repeat`` alternating runs, so that a burst of load elsewhere hits both alike)
        t_long, t_step = math.inf, math.inf
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            sim.simulate(params, state0, protocol, activity=const, days=days)
            t_long = min(t_long, time.perf_counter() - t0)
            t0 = time.perf_counter()
            stepper = sim.Simulator(params, protocol, state0)
            state, _ = stepper.reset()
            for d in range(days):
                state, _ = stepper.step(state, per_day[:, d], d)
            t_step = min(t_step, time.perf_counter() - t0)
        step_rate = n * days / t_step
        long_rate = n * days / t_long
        overhead_ms = 1000 * (t_step - t_long) / days

        # precision
        # the steady state is solved in float64 (Newton with finite differences), then cast
        p32, prot32, act32 = cohort(n, days, dtype=torch.float32)
        s32 = sim.State(
            state0.x.float(),
            state0.presence.float(),
            state0.growth_rate_per_day.float(),
            state0.niche.float(),
        )
        sim.simulate(p32, s32, prot32, days=1, activity=act32[:, 0])
        rate32, sol32 = _rate(p32, s32, prot32, act32[:, 0], days, n)
        serum64 = fast.daily["serum_b12_pmol_l"].double()
        err32 = float(((sol32.daily["serum_b12_pmol_l"].double() - serum64).abs() / serum64).max())

        # a busy machine: one core burning in another process (best of --repeat each)
        busy, quiet = 0.0, 0.0
        for _ in range(args.repeat):
            stop = mp.Event()
            burner = mp.Process(target=_burn, args=(stop,), daemon=True)
            burner.start()
            try:
                time.sleep(1.0)
                busy = max(busy, _rate(params, state0, protocol, const, days, n)[0])
            finally:
                stop.set()
                burner.join(5)
            quiet = max(quiet, _rate(params, state0, protocol, const, days, n)[0])

    # accuracy at the resolution simulate() is given here (24 sub-steps) and at the one
    # protocols with saturating doses get by default (sim.default_substeps: 96)
    fine = sim.simulate(
        params.index(slice(0, args.reference)),
        state0.index(slice(0, args.reference)),
        protocol.index(slice(0, args.reference)),
        activity=const[: args.reference],
        substeps_per_day=sim.default_substeps(1000.0, False),
    )
    errors, errors_fine, t_ref = [], [], 0.0
    for i in range(args.reference):
        idx = slice(i, i + 1)
        t0 = time.perf_counter()
        ref = simulate_reference(
            params.index(idx),
            state0.index(idx),
            protocol.index(idx),
            days=days,
            activity=const[idx],
        )
        t_ref += time.perf_counter() - t0
        a = fast.daily["serum_b12_pmol_l"][i].cpu().numpy()
        b = ref["serum_b12_pmol_l"][0]
        errors.append(float(np.max(np.abs(a - b) / np.abs(b))))
        c = fine.daily["serum_b12_pmol_l"][i].cpu().numpy()
        errors_fine.append(float(np.max(np.abs(c - b) / np.abs(b))))
    reference = args.reference * days / t_ref

    print(
        json.dumps(
            to_jsonable(
                {
                    "benchmark": "sim",
                    "patients": n,
                    "days": days,
                    "batched_patient_days_per_s": round(batched, 1),
                    "reference_patient_days_per_s": round(reference, 3),
                    "ratio": round(batched / reference, 1),
                    "max_rel_error_serum": float(f"{max(errors):.3g}"),
                    "max_rel_error_serum_96_substeps": float(f"{max(errors_fine):.3g}"),
                    "stepping_patient_days_per_s": round(step_rate, 1),
                    "stepping_ratio": round(step_rate / long_rate, 3),
                    "step_overhead_ms": round(overhead_ms, 2),
                    "float32_ratio": round(rate32 / batched, 3),
                    "float32_max_rel_error_serum": float(f"{err32:.3g}"),
                    "compiled_ratio": round(compiled / batched, 3),
                    "compiled_patient_days_per_s": round(compiled, 1),
                    "compiled_max_rel_error_serum": float(f"{err_c:.3g}"),
                    "compile_s": round(compile_s, 1),
                    "busy_ratio": round(busy / quiet, 3),
                    "auto_threads": sim.auto_threads(n, torch.device("cpu")),
                    "torch_threads": torch.get_num_threads(),
                }
            ),
            allow_nan=False,
        )
    )


if __name__ == "__main__":
    main()
