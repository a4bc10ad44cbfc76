"""Throughput of the batched multi-agent env and of its PettingZoo adapter (one JSON line).

Figures, each with a reference measured in the same run (interleaved, so that a busy machine
moves numerator and denominator together):

- ``env_agent_steps_per_s``: agent decisions per second of ``marl.B12Env.step`` at
  ``--patients`` (patients × 10 agents per weekly step; reset excluded, ``reset_s`` reported).
- ``raw_agent_steps_per_s``: the same steps through the env's ``sim.Simulator.step`` alone
  (same patients, state, multipliers and CPU thread count); ``env_overhead_fraction`` =
  1 − raw time / env time, the share of wall time the env adds (masking, rewards,
  observations).
- ``pettingzoo_agent_steps_per_s``: ``make_parallel_env`` (one patient, agents present in it),
  with ``pettingzoo_vs_raw_ratio`` against ``Simulator.step`` on that one patient.

Usage: ``python benchmarks/bench_marl.py [--patients 4096] [--steps 4] [--device cpu]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

import numpy as np
import torch

from biofluxopt.marl import B12Env, B12EnvConfig, make_parallel_env


@contextlib.contextmanager
def same_threads(env: B12Env):
    """The env's intra-op CPU thread count around the raw reference too, so that the ratio
    isolates the env's own work (``Simulator.step`` validates the action and stacks the step's
    fluxes outside its own thread setting)."""
    before = torch.get_num_threads()
    if env.threads is not None and env.device.type == "cpu":
        torch.set_num_threads(env.threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def bench_batched(n: int, steps: int, device: str) -> dict:
    env = B12Env(B12EnvConfig(n_patients=n, episode_days=7 * steps, device=device))
    t0 = time.perf_counter()
    env.reset(seed=0)
    reset_s = time.perf_counter() - t0
    gen = torch.Generator().manual_seed(0)
    actions = [
        (torch.rand(n, env.n_agents, 4, generator=gen) * 2 - 1).to(device) for _ in range(steps)
    ]
    sim_, raw_state = env.simulator, env.sim_state
    with torch.no_grad():  # warm-up: the first step traces the RK4 sub-step (both paths share it)
        sim_.step(raw_state, env.multipliers(actions[0].to(env.dtype)), 0, 1)
    t_env = t_raw = 0.0
    for k, a in enumerate(actions):
        mult = env.multipliers(a.to(env.dtype))
        t0 = time.perf_counter()
        env.step(a)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        with torch.no_grad(), same_threads(env):
            raw_state, _ = sim_.step(raw_state, mult, 7 * k, 7)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        t_env, t_raw = t_env + t1 - t0, t_raw + t2 - t1
    decisions = n * env.n_agents * steps
    return {
        "patients": n,
        "steps": steps,
        "step_days": 7,
        "reset_s": reset_s,
        "env_agent_steps_per_s": decisions / t_env,
        "raw_agent_steps_per_s": decisions / t_raw,
        "env_patient_days_per_s": n * 7 * steps / t_env,
        "env_overhead_fraction": 1.0 - t_raw / t_env,
    }


def bench_pettingzoo(steps: int) -> dict:
    env = make_parallel_env(episode_days=7 * steps, cpu_threads=1)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    inner = env.env
    sim_, raw_state = inner.simulator, inner.sim_state
    with torch.no_grad():  # warm-up (tracing), as above
        sim_.step(raw_state, None, 0, 1)
    t_env = t_raw = 0.0
    decisions = 0
    for k in range(steps):
        actions = {a: rng.uniform(-1, 1, env.action_space(a).shape) for a in env.agents}
        decisions += len(actions)
        mult = torch.ones(1, inner.n_agents, 4, dtype=inner.dtype)
        t0 = time.perf_counter()
        env.step(actions)
        t1 = time.perf_counter()
        with torch.no_grad(), same_threads(inner):
            raw_state, _ = sim_.step(raw_state, mult, 7 * k, 7)
        t2 = time.perf_counter()
        t_env, t_raw = t_env + t1 - t0, t_raw + t2 - t1
    return {
        "pettingzoo_agents": decisions // steps,
        "pettingzoo_agent_steps_per_s": decisions / t_env,
        "pettingzoo_steps_per_s": steps / t_env,
        "pettingzoo_vs_raw_ratio": t_raw / t_env,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--pz-steps", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    out = {"bench": "marl", "device": args.device, "torch_threads": torch.get_num_threads()}
    out.update(bench_batched(args.patients, args.steps, args.device))
    out.update(bench_pettingzoo(args.pz_steps))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
