"""Baselines for a trained policy, all on the same held-out patients and the same noise.

=====================  ==================================================================
no action              every multiplier 1 (log-multiplier 0): the patients' own course
random                 log-multipliers uniform in [ln 0.25, ln 4], drawn afresh every step
                       from a seeded generator
best constant          one setting ``[agents, 4]`` for every patient and step, found by a
                       cross-entropy search over the masked action box on *training*
                       patients (:func:`search_constant_action`), scored on held-out ones
open-loop oracle       per patient, a weekly action sequence found by gradient ascent
                       through the differentiable simulator from the best constant, with
                       an exact line search, knowing the patient's kinetic parameters and
                       the realised dietary and adherence noise (:func:`open_loop_oracle`):
                       an upper bound on what any policy that sees only observations could
                       collect (up to the few gradient steps)
=====================  ==================================================================

Every method is scored by :func:`~biofluxopt.marl.evaluate_policy` on the same env and reset
seed, so all of them meet the same patients, food intakes and supplement draws. The
yardsticks (:func:`compare_to_baselines`)::

    oracle_fraction = (R_policy − R_none) / (R_oracle − R_none)
    constant_action_margin_pmol_l = gain_policy − gain_constant   (serum B12, end − baseline)

``oracle_fraction`` is None (``null`` in JSON) with a message when the oracle gains nothing
over no action (``R_oracle − R_none ≤ 1e-9``): there is then nothing to be a fraction of.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from biofluxopt._util import ConfigError, InstanceOf, Interval, check_memory, check_params
from biofluxopt.sim import Simulator, cpu_threads, default_substeps, simulate

from ._config import B12EnvConfig, checked_config
from ._env import ACTION_HIGH, ACTION_LOW, B12Env
from ._ppo import evaluate_policy

#: Smallest oracle gain over no action (return units) for ``oracle_fraction`` to be defined.
ORACLE_GAIN_FLOOR = 1e-9
#: Peak memory of the oracle's gradient (bytes). The gradient is checkpointed per decision
#: step with reentrant checkpoints, so the backward pass holds one step's autograd graph
#: (grows with the sub-steps per day and the patients) plus a small record per step.
#: Measured with ``ru_maxrss`` (float64, CPU, 24 sub-steps a day): 4 weeks took 194 / 222 /
#: 256 MB for 4 / 32 / 64 patients, 4 patients took 226 / 289 MB for 8 / 16 weeks, and 16
#: patients × 4 weeks at 96 sub-steps 500 MB; the constants below cover every one of them.
ORACLE_GRAPH_BYTES = 150e6
ORACLE_GRAPH_BYTES_PER_PATIENT = 1.5e6
ORACLE_BYTES_PER_STEP = 10e6
ORACLE_BYTES_PER_PATIENT_STEP = 0.05e6


def oracle_memory_bytes(env_config: B12EnvConfig, n_patients: int | None = None) -> int:
    """Estimated peak memory of one gradient step of :func:`open_loop_oracle` (bytes).

    One decision step's autograd graph (grows with the sub-steps per day, the days per step
    and the patients) plus a small record per step (``ORACLE_GRAPH_BYTES`` and the
    constants next to it). Callers check it with
    ``_util.check_memory`` before any work, so an oracle too large for the machine is
    refused up front rather than killed by the operating system.

    Parameters
    ----------
    env_config : B12EnvConfig
    n_patients : int, optional
        Default ``env_config.n_patients``.
    """
    n = env_config.n_patients if n_patients is None else int(n_patients)
    substeps = env_config.substeps_per_day or default_substeps(
        env_config.supplement_ug_per_day, False
    )
    steps = env_config.episode_days // env_config.step_days
    graph = (ORACLE_GRAPH_BYTES + ORACLE_GRAPH_BYTES_PER_PATIENT * n) * substeps / 24.0
    graph *= env_config.step_days / 7.0
    return int(graph + steps * (ORACLE_BYTES_PER_STEP + ORACLE_BYTES_PER_PATIENT_STEP * n))


def check_oracle_memory(
    env_config: B12EnvConfig, n_patients: int | None = None, grad_steps: int = 1
) -> None:
    """Refuse (``ConfigError``) an oracle whose :func:`oracle_memory_bytes` exceeds the
    memory limit (``_util.memory_limit_bytes``); nothing to check without gradient steps."""
    if grad_steps <= 0:
        return
    n = env_config.n_patients if n_patients is None else int(n_patients)
    check_memory(
        oracle_memory_bytes(env_config, n),
        f"the open-loop oracle's gradient ({n} patients × {env_config.episode_days} days)",
    )


# ====================================================================== configuration
@dataclass
class BaselineConfig:
    """Budgets of the baselines (the ``[baselines]`` table of a training config).

    eval_patients : int in [1, 100_000], default=32
        Held-out patients every method is scored on (``split="test"``).
    constant_patients : int in [1, 100_000], default=32
        Training patients the best constant action is searched on.
    constant_generations : int in [1, 1000], default=6
        Generations of the cross-entropy search.
    constant_population : int in [2, 1000], default=8
        Candidates per generation; the search costs ``generations × population`` episodes
        of ``constant_patients`` patients (batched: one simulation per generation).
    constant_elite_fraction : float in (0, 1], default=0.25
        Share of each generation whose mean and spread become the next sampling
        distribution.
    constant_init_std : float in (0, 3], default=0.5
        Initial standard deviation of the search (log-multiplier units; the box is ±1.386).
    constant_grad_steps : int in [0, 1000], default=0
        Gradient steps refining the best constant after the search (one setting shared by
        every patient and week, through the differentiable simulator, with the oracle's
        exact line search: ``oracle_learning_rate``, ``oracle_line_search``). Each costs
        about one oracle step on ``constant_patients``. The cross-entropy search alone
        cannot resolve settings a few per cent from the identity.
    oracle_grad_steps : int in [0, 1000], default=2
        Gradient steps of the open-loop oracle (0: per patient the better of no action and
        the best constant). Each costs one forward and one backward pass of the eager
        integrator through the whole episode — ~2 min for one-year episodes on 2 cores, nearly
        independent of the number of patients; memory holds one step's graph (< 1 GB for 32
        patients × 52 weeks), estimated and refused up front when over the limit
        (:func:`oracle_memory_bytes`) — plus one exact line search.
    oracle_learning_rate : float in (0, 10], default=0.5
        Largest step of the oracle's first line search (log-multiplier units, the largest
        coordinate of the normalised gradient); later searches are centred 4× above the
        step a patient last took.
    oracle_line_search : int in [1, 64], default=8
        Step sizes per line search (``oracle_learning_rate · 4^-j``, ``j < 8``: 0.5 down to
        3e-5), all scored exactly in one batched simulation of ``8 × eval_patients``
        episodes.
    oracle_expected_diet : bool, default=False
        Also run the oracle planning on the *expected* intakes (``open_loop_oracle(...,
        diet="expected")``: the patient's kinetics known, the future meals and missed doses
        not) and report ``oracle_expected_diet_fraction``, the share of the oracle's gain
        over no action that such a planner keeps on the realised intakes. Doubles the
        oracle's cost.
    random_seed : int ≥ 0, default=0
        Seed of the random-action baseline.
    background : bool, default=True
        ``train_workflow`` (``biofluxopt train``) only: search the best constant and run the
        oracles in a second process *while* PPO trains (they do not depend on the policy),
        so a 2-core machine uses both cores; the policy is scored when training ends.
        Same results as ``False`` (the same code, seeds and thread counts), in about the
        time of the longer of the two. A Python script calling ``train_workflow`` with it
        must guard its entry point (``if __name__ == "__main__":``, the ``multiprocessing``
        spawn rule).
    """

    eval_patients: int = 32
    constant_patients: int = 32
    constant_generations: int = 6
    constant_population: int = 8
    constant_elite_fraction: float = 0.25
    constant_init_std: float = 0.5
    constant_grad_steps: int = 0
    oracle_grad_steps: int = 2
    oracle_learning_rate: float = 0.5
    oracle_line_search: int = 8
    oracle_expected_diet: bool = False
    random_seed: int = 0
    background: bool = True

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "eval_patients": [Interval(Integral, 1, 100_000)],
        "constant_patients": [Interval(Integral, 1, 100_000)],
        "constant_generations": [Interval(Integral, 1, 1000)],
        "constant_population": [Interval(Integral, 2, 1000)],
        "constant_elite_fraction": [Interval(Real, 0, 1, closed="right")],
        "constant_init_std": [Interval(Real, 0, 3, closed="right")],
        "constant_grad_steps": [Interval(Integral, 0, 1000)],
        "oracle_grad_steps": [Interval(Integral, 0, 1000)],
        "oracle_learning_rate": [Interval(Real, 0, 10, closed="right")],
        "oracle_line_search": [Interval(Integral, 1, 64)],
        "oracle_expected_diet": [InstanceOf(bool, "a boolean")],
        "random_seed": [Interval(Integral, 0, 2**63 - 1)],
        "background": [InstanceOf(bool, "a boolean")],
    }

    def check(self) -> BaselineConfig:
        """Validate every field; returns ``self`` (ConfigError naming
        ``BaselineConfig.<field>``)."""
        check_params(self)
        return self

    def constant_search_options(self) -> dict:
        """Keyword arguments of :func:`search_constant_action` from this budget."""
        return {
            "generations": self.constant_generations,
            "population": self.constant_population,
            "elite_fraction": self.constant_elite_fraction,
            "init_std": self.constant_init_std,
            "grad_steps": self.constant_grad_steps,
            "learning_rate": self.oracle_learning_rate,
            "line_search": self.oracle_line_search,
        }

    def oracle_options(self) -> dict:
        """Keyword arguments of :func:`open_loop_oracle` from this budget."""
        return {
            "grad_steps": self.oracle_grad_steps,
            "learning_rate": self.oracle_learning_rate,
            "line_search": self.oracle_line_search,
        }


def baseline_config_from_dict(data: dict, *, source=None) -> BaselineConfig:
    """A checked :class:`BaselineConfig` from a mapping (unknown keys are a ConfigError)."""
    return checked_config(BaselineConfig, data, source=source)


# ====================================================================== baseline policies
class NoActionPolicy:
    """Identity multipliers: ``act`` returns zeros ``[P, A, K]``."""

    name = "no_action"

    def act(self, obs: Tensor, mask: Tensor, **_) -> Tensor:
        return torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)


class RandomPolicy:
    """Log-multipliers uniform in ``[ln 0.25, ln 4]``, independent per entry and step.

    Parameters
    ----------
    seed : int
        Seeds the policy's own CPU generator (same seed, same actions).
    """

    name = "random"

    def __init__(self, seed: int = 0):
        self.generator = torch.Generator().manual_seed(int(seed))

    def act(self, obs: Tensor, mask: Tensor, **_) -> Tensor:
        u = torch.rand(mask.shape, generator=self.generator, dtype=torch.float32)
        action = (ACTION_LOW + (ACTION_HIGH - ACTION_LOW) * u).to(mask.device)
        return torch.where(mask, action, torch.zeros_like(action))


class ConstantPolicy:
    """One setting for everyone and every step.

    Parameters
    ----------
    log_multipliers : Tensor, shape ``[agents, 4]``
        Natural-log multipliers (masked entries are ignored by the env).
    """

    name = "constant"

    def __init__(self, log_multipliers: Tensor):
        self.log_multipliers = torch.as_tensor(log_multipliers, dtype=torch.float32)

    def act(self, obs: Tensor, mask: Tensor, **_) -> Tensor:
        action = self.log_multipliers.to(mask.device).expand(mask.shape)
        return torch.where(mask, action, torch.zeros_like(action))


class OpenLoopPolicy:
    """A fixed action sequence per patient, replayed step by step (ignores observations).

    Parameters
    ----------
    actions : Tensor, shape ``[steps, patients, agents, 4]``
        Log-multipliers of each decision step; the ``t``-th call of :meth:`act` returns
        ``actions[t % steps]`` (one episode per ``steps`` calls).
    """

    name = "oracle"

    def __init__(self, actions: Tensor):
        self.actions = actions.detach().to(torch.float32)
        self._t = 0

    def act(self, obs: Tensor, mask: Tensor, **_) -> Tensor:
        action = self.actions[self._t % self.actions.shape[0]].to(mask.device)
        self._t += 1
        return torch.where(mask, action, torch.zeros_like(action))


def _allowed(env: B12Env) -> Tensor:
    """``[patients, agents, 4]`` bool: the entries an action can change in the current batch."""
    return env.activity_mask.unsqueeze(0) & env.agent_mask.unsqueeze(-1)


# ====================================================================== best constant action
@dataclass
class ConstantSearch:
    """Result of :func:`search_constant_action`.

    Attributes
    ----------
    log_multipliers : Tensor, shape ``[agents, 4]``
        The best setting found (0 where the agent lacks the activity).
    train_return_mean : float
        Its mean episode return on the training patients.
    no_action_return_mean : float
        No action's mean return on the same patients and noise (evaluated in generation 0).
    evaluations : int
        Candidate settings scored (each one episode of every training patient).
    patients : int
    best_by_generation : list of float
        Best mean return so far after each generation.
    wall_s : float
    """

    log_multipliers: Tensor
    train_return_mean: float
    no_action_return_mean: float
    evaluations: int
    patients: int
    best_by_generation: list[float]
    wall_s: float

    def to_dict(self, agent_ids, activities) -> dict:
        """JSON-ready summary; the setting as ``{agent: {activity: multiplier}}`` (allowed
        entries only)."""
        from biofluxopt.sim import action_mask

        mask = action_mask()
        setting = {
            a: {
                act: float(math.exp(float(self.log_multipliers[i, j])))
                for j, act in enumerate(activities)
                if bool(mask[i, j])
            }
            for i, a in enumerate(agent_ids)
        }
        return {
            "setting_multipliers": {a: v for a, v in setting.items() if v},
            "log_multipliers": self.log_multipliers.tolist(),
            "train_return_mean": self.train_return_mean,
            "train_no_action_return_mean": self.no_action_return_mean,
            "evaluations": self.evaluations,
            "train_patients": self.patients,
            "best_by_generation": self.best_by_generation,
            "wall_s": self.wall_s,
        }


def replay_returns(env: B12Env, log_multipliers: Tensor) -> Tensor:
    """Episode returns of ``k`` constant settings on the env's current batch, in one run.

    The batch (patients, noise, steady states) is the one of the env's last ``reset``; the
    ``k`` settings are simulated together on ``k`` copies of it, with the env's own reward.

    Parameters
    ----------
    env : B12Env
        After ``reset``.
    log_multipliers : Tensor, shape ``[k, agents, 4]``

    Returns
    -------
    Tensor, shape ``[k, patients]`` (float64)
        Undiscounted team return of each setting for each patient.
    """
    base = env.simulator
    n, k = env.n_patients, log_multipliers.shape[0]
    rep = torch.arange(n, device=env.device).repeat(k)
    sim_k = Simulator(
        base.params.index(rep),
        base.protocol.index(rep),
        base.state0.index(rep),
        substeps_per_day=env.substeps,
        cpu_threads_="auto",
        compile=env.config.compile_simulator,
    )
    logm = log_multipliers.to(device=env.device, dtype=env.dtype).clamp(ACTION_LOW, ACTION_HIGH)
    allowed = _allowed(env).unsqueeze(0)  # [1, n, A, K]
    mult = torch.where(allowed, torch.exp(logm).unsqueeze(1), torch.ones((), dtype=env.dtype))
    mult = mult.expand(k, n, *logm.shape[1:]).reshape(k * n, *logm.shape[1:])
    state, day = sim_k.reset()
    serum_prev = _baseline_serum(env).unsqueeze(0).expand(k, n)
    total = torch.zeros(k, n, dtype=torch.float64, device=env.device)
    steps = env.config.episode_days // env.config.step_days
    with torch.no_grad():
        for _ in range(steps):
            state, out = sim_k.step(state, mult, day, env.config.step_days)
            day = out.day
            serum = out.observation["serum_b12_pmol_l"].view(k, n)
            terms = env.reward_terms(serum, out.composition.view(k, n, -1), serum_prev)
            total += terms["reward"].to(torch.float64)
            serum_prev = serum
    return total


def _refine_constant(
    env: B12Env, start: Tensor, start_r: float, grad_steps: int, learning_rate: float, k: int
) -> tuple[Tensor, float, int]:
    """Gradient ascent with exact line searches on one setting ``[agents, 4]`` shared by all
    patients and weeks (see :func:`search_constant_action`); returns the setting (float32,
    as :class:`ConstantPolicy` plays it), its mean return and the line searches run."""
    steps = env.config.episode_days // env.config.step_days
    n = env.n_patients
    allowed = _allowed(env)  # [n, A, K]
    mask = env.activity_mask
    best = start.to(env.dtype)
    best_r, eta, done = float(start_r), float(learning_rate), 0
    scales = 0.25 ** torch.arange(k, dtype=env.dtype, device=env.device)
    for _ in range(grad_steps):
        c = best.clone().requires_grad_(True)
        with torch.enable_grad(), cpu_threads(env.device, env.threads):
            z = torch.where(allowed, c.unsqueeze(0), torch.zeros((), dtype=env.dtype))
            ret = _differentiable_return(env, z.unsqueeze(0).expand(steps, n, *c.shape))
            ret.mean().backward()
        grad = torch.where(mask, c.grad, torch.zeros_like(c.grad))
        top = float(grad.abs().max())
        if top == 0.0:
            break
        done += 1
        cand = (best + (eta * scales)[:, None, None] * grad / top).clamp(ACTION_LOW, ACTION_HIGH)
        cand = torch.where(mask, cand, torch.zeros_like(cand)).to(torch.float32)
        r = replay_returns(env, cand.to(env.dtype)).mean(1)
        j = int(torch.argmax(r))
        if float(r[j]) > best_r + ORACLE_GAIN_FLOOR:
            best, best_r = cand[j].to(env.dtype), float(r[j])
            eta = min(4.0 * eta * float(scales[j]), ACTION_HIGH - ACTION_LOW)
        else:
            eta *= float(scales[-1])
    return best.to(torch.float32), best_r, done


def _baseline_serum(env: B12Env) -> Tensor:
    """Serum B12 at day 0 of the env's current batch, ``[patients]`` (pmol/L)."""
    return env.simulator.observe(env.simulator.state0)["serum_b12_pmol_l"]


def search_constant_action(
    env: B12Env,
    *,
    seed: int = 0,
    generations: int = 6,
    population: int = 8,
    elite_fraction: float = 0.25,
    init_std: float = 0.5,
    grad_steps: int = 0,
    learning_rate: float = 0.5,
    line_search: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> ConstantSearch:
    """The best single setting for all patients, by a cross-entropy search over the box.

    Searches the ``D`` log-multipliers the agents have (``env.activity_mask``, 19 of 40) in
    ``[ln 0.25, ln 4]``: each generation draws ``population`` settings from a diagonal
    Gaussian (clipped to the box; generation 0 also scores the identity), scores each by its
    mean episode return over the env's patients (:func:`replay_returns`, all candidates in
    one batched simulation), and refits the Gaussian to the best ``elite_fraction``. The best
    setting ever scored is returned, so it is never worse than no action on these patients.

    With ``grad_steps > 0`` the best setting is then refined by gradient ascent, as the
    oracle refines its sequences (:func:`open_loop_oracle`), but on one setting shared by
    every patient and week: the gradient of the patients' mean return with respect to it,
    through the differentiable simulator, normalised so its largest coordinate is 1, then an
    exact line search of ``line_search`` step sizes ``learning_rate · 4^-j`` (all scored in
    one batched run by :func:`replay_returns`); a step is taken only if it beats the current
    setting. Cross-entropy sampling with SD 0.5 cannot resolve settings a few per cent from
    the identity; the gradient can (docs/marl.md, "Why the policy stayed at no action").

    Parameters
    ----------
    env : B12Env
        Training patients (``split="train"``); reset here with ``seed``.
    seed : int
        Seeds the env's patients and the search's draws.
    generations, population, elite_fraction, init_std :
        Budget and search parameters (see :class:`BaselineConfig`); the budget is
        ``generations × population`` episodes of ``env.n_patients`` patients.
    grad_steps, learning_rate, line_search :
        Gradient refinement after the search (0: none); each step costs one forward and
        backward pass through the episode, as an oracle step, plus ``line_search`` episodes.
    progress : callable, optional
        Called with ``(generation, generations)`` after each generation.

    Returns
    -------
    ConstantSearch
    """
    start = time.perf_counter()
    check_oracle_memory(env.config, env.n_patients, grad_steps)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    mask = env.activity_mask.cpu()
    dims = int(mask.sum())
    mean, std = np.zeros(dims), np.full(dims, float(init_std))
    n_elite = max(1, math.ceil(elite_fraction * population))
    best_x, best_r, none_r = np.zeros(dims), -math.inf, math.nan
    history, evaluations = [], 0
    for g in range(generations):
        cand = np.clip(
            mean + std * rng.standard_normal((population, dims)), ACTION_LOW, ACTION_HIGH
        )
        if g == 0:
            cand[0] = 0.0  # the identity: no action
        logm = torch.zeros(population, *mask.shape, dtype=torch.float64)
        logm[:, mask] = torch.as_tensor(cand)
        scores = replay_returns(env, logm).mean(1).cpu().numpy()
        evaluations += population
        if g == 0:
            none_r = float(scores[0])
        i = int(np.argmax(scores))
        if scores[i] > best_r:
            best_r, best_x = float(scores[i]), cand[i].copy()
        elite = cand[np.argsort(-scores, kind="stable")[:n_elite]]
        mean, std = elite.mean(0), np.maximum(elite.std(0), 0.02)
        history.append(best_r)
        if progress is not None:
            progress(g + 1, generations)
    best = torch.zeros(mask.shape, dtype=torch.float32)
    best[mask] = torch.as_tensor(best_x, dtype=torch.float32)
    if grad_steps > 0:
        best, best_r, steps_run = _refine_constant(
            env, best, best_r, grad_steps, learning_rate, line_search
        )
        evaluations += steps_run * line_search
        history.append(best_r)
    return ConstantSearch(
        log_multipliers=best,
        train_return_mean=best_r,
        no_action_return_mean=none_r,
        evaluations=evaluations,
        patients=env.n_patients,
        best_by_generation=history,
        wall_s=time.perf_counter() - start,
    )


# ====================================================================== open-loop oracle
@dataclass
class OracleResult:
    """Result of :func:`open_loop_oracle`.

    Attributes
    ----------
    actions : Tensor, shape ``[steps, patients, agents, 4]``
        Each patient's best weekly log-multipliers found (0 = identity where masked).
    return_by_patient : Tensor, shape ``[patients]`` (float64)
        Their return on the episode's realised intakes, scored exactly (the env's dynamics
        and reward).
    no_action_return_by_patient : Tensor, shape ``[patients]`` (float64)
        No action's return on the same patients and noise.
    return_mean_by_iterate : list of float
        Mean return of the best points after each iterate, on the intakes planned on (the
        first: the better of no action and the start setting per patient; then one value
        per gradient step).
    grad_steps : int
        Gradient steps run (fewer than asked when a line search improved no patient).
    wall_s : float
    diet : {"realised", "expected"}
        The intakes the actions were planned on (see :func:`open_loop_oracle`).
    """

    actions: Tensor
    return_by_patient: Tensor
    no_action_return_by_patient: Tensor
    return_mean_by_iterate: list[float] = field(default_factory=list)
    grad_steps: int = 0
    wall_s: float = 0.0
    diet: str = "realised"


def _differentiable_return(env: B12Env, z: Tensor, protocol=None) -> Tensor:
    """Team return ``[patients]`` of weekly log-multipliers ``z`` ``[steps, patients, A, K]``
    on the env's current batch (under ``protocol``, default the episode's realised one),
    differentiable in ``z`` (gradient checkpointing per step)."""
    base = env.simulator
    protocol = base.protocol if protocol is None else protocol
    cfg = env.config
    allowed = _allowed(env)
    one = torch.ones((), dtype=env.dtype, device=env.device)
    state0 = base.state0

    def week(x: Tensor, zk: Tensor, start_day: int):
        mult = torch.where(allowed, torch.exp(zk), one)
        sol = simulate(
            base.params,
            dataclasses.replace(state0, x=x),
            protocol,
            days=cfg.step_days,
            start_day=start_day,
            activity=mult,
            substeps_per_day=env.substeps,
            cpu_threads_=env.threads,
        )
        return sol.state.x, sol.daily["serum_b12_pmol_l"][:, -1], sol.composition[:, -1]

    x = state0.x
    serum_prev = _baseline_serum(env)
    total = torch.zeros(env.n_patients, dtype=env.dtype, device=env.device)
    for t in range(z.shape[0]):
        x, serum, comp = checkpoint(week, x, z[t], t * cfg.step_days, use_reentrant=True)
        total = total + env.reward_terms(serum, comp, serum_prev)["reward"]
        serum_prev = serum
    return total


def _replay_sequences(env: B12Env, z: Tensor, protocol=None) -> Tensor:
    """Episode returns of ``k`` weekly action sequences per patient, in one batched run.

    The exact env dynamics and reward (``Simulator.step`` with the env's sub-steps, as
    :func:`replay_returns`) on ``k`` copies of the env's current batch, no gradient.

    Parameters
    ----------
    env : B12Env
        After ``reset``.
    z : Tensor, shape ``[k, steps, patients, agents, 4]``
        Log-multipliers (clamped to the box; entries an agent cannot change are ignored).
    protocol : sim.Protocol, optional
        Intakes to simulate under (default: the episode's realised ones).

    Returns
    -------
    Tensor, shape ``[k, patients]`` (float64)
    """
    base = env.simulator
    protocol = base.protocol if protocol is None else protocol
    k, steps, n = z.shape[:3]
    rep = torch.arange(n, device=env.device).repeat(k)
    sim_k = Simulator(
        base.params.index(rep),
        protocol.index(rep),
        base.state0.index(rep),
        substeps_per_day=env.substeps,
        cpu_threads_="auto",
        compile=env.config.compile_simulator,
    )
    logm = z.to(device=env.device, dtype=env.dtype).clamp(ACTION_LOW, ACTION_HIGH)
    allowed = _allowed(env)  # [n, A, K]
    one = torch.ones((), dtype=env.dtype, device=env.device)
    state, day = sim_k.reset()
    serum_prev = _baseline_serum(env).unsqueeze(0).expand(k, n)
    total = torch.zeros(k, n, dtype=torch.float64, device=env.device)
    with torch.no_grad():
        for t in range(steps):
            mult = torch.where(allowed, torch.exp(logm[:, t]), one).reshape(
                k * n, *allowed.shape[1:]
            )
            state, out = sim_k.step(state, mult, day, env.config.step_days)
            day = out.day
            serum = out.observation["serum_b12_pmol_l"].view(k, n)
            terms = env.reward_terms(serum, out.composition.view(k, n, -1), serum_prev)
            total += terms["reward"].to(torch.float64)
            serum_prev = serum
    return total


def open_loop_oracle(
    env: B12Env,
    *,
    seed: int = 0,
    grad_steps: int = 2,
    learning_rate: float = 0.5,
    line_search: int = 8,
    start: Tensor | None = None,
    diet: str = "realised",
    progress: Callable[[int, int], None] | None = None,
) -> OracleResult:
    """Per-patient weekly action sequences by gradient ascent through the simulator.

    The oracle knows what no policy can: each patient's kinetic parameters and the realised
    food intake and supplement adherence of the whole episode (the env's batch after
    ``reset(seed)``). It maximises the env's own team return over log-multipliers
    ``[steps, patients, agents, 4]``:

    1. **Start**: no action and, if given, the ``start`` setting (the best constant action)
       are scored exactly; each patient starts from the better of the two.
    2. **Gradient**: the gradient of the return with respect to every weekly log-multiplier,
       by back-propagation through the eager integrator (one call of ``sim.simulate`` per
       decision step, chained through the state, gradient-checkpointed per step; penalty
       indicators carry no gradient).
    3. **Line search**: ``line_search`` step sizes ``learning_rate · 4^-j`` along each
       patient's gradient, normalised so that its largest coordinate moves by the step size,
       projected onto the box — all candidates of all patients scored *exactly* (the env's
       own ``Simulator.step`` and reward, no gradient) in one batched run. A patient moves
       to its best candidate only if that beats its current return; the next search for that
       patient is centred 4× above the step taken.
    4. Repeat 2–3 ``grad_steps`` times, stopping early when no patient improved.

    Every accepted point was scored by the env's own dynamics, so the result is never below
    no action (nor below ``start``) for any patient, and the env scores the returned actions
    as ``return_by_patient`` (tested).

    ``diet="expected"`` plans without foresight of the noise: the same search runs on
    :meth:`B12Env.expected_protocol` (every day's food at the patient's habitual intake,
    every supplement dose at its expectation), knowing the patient's kinetic parameters and
    baseline, and the plan is then scored on the realised intakes — so it *can* fall below
    no action there. Its gain over no action, as a share of the realised-diet oracle's, is
    how much of the oracle's headroom is open to a planner who knows the patient perfectly
    but not their future meals (docs/marl.md, "Why the policy stayed at no action").

    Cost: per gradient step one forward and one backward pass (plus a checkpointed
    recomputation) of the eager integrator over the whole episode — bound by per-operation
    overhead, so it grows slowly with the number of patients (measured 14 s forward + 28 s
    backward for 32 patients × 12 weeks, linear in the weeks: ~3 min CPU for 32 patients ×
    52 weeks) — plus one batched exact run of ``line_search × patients`` episodes.

    Parameters
    ----------
    env : B12Env
        Reset here with ``seed``; score the result with :class:`OpenLoopPolicy` on the same
        env and seed.
    seed : int
    grad_steps : int, default=2
        Gradient evaluations (0: the better of no action and ``start`` per patient).
    learning_rate : float, default=0.5
        Largest step of the first line search (log-multiplier units, largest coordinate).
    line_search : int, default=8
        Step sizes tried per gradient step (``learning_rate · 4^-j``, ``j < line_search``).
    start : Tensor, shape ``[agents, 4]``, optional
        A constant setting to start from where it beats no action (the best constant).
    diet : {"realised", "expected"}, default="realised"
        The intakes planned on: the episode's realised ones (an upper bound for any policy)
        or their expectation (no foresight of the noise).
    progress : callable, optional
        Called with ``(iterate, grad_steps + 1)``.

    Returns
    -------
    OracleResult

    Raises
    ------
    ConfigError
        The gradient would need more memory than the limit (:func:`oracle_memory_bytes`),
        checked before any work.
    """
    t_start = time.perf_counter()
    if diet not in ("realised", "expected"):
        raise ConfigError(f"must be 'realised' or 'expected'; got {diet!r}", field="diet")
    check_oracle_memory(env.config, env.n_patients, grad_steps)
    env.reset(seed=seed)
    plan = env.simulator.protocol if diet == "realised" else env.expected_protocol()
    steps = env.config.episode_days // env.config.step_days
    n, a = env.n_patients, env.n_agents
    k = env.activity_mask.shape[-1]
    allowed = _allowed(env).unsqueeze(0).expand(steps, n, a, k)
    zeros = torch.zeros(steps, n, a, k, dtype=env.dtype, device=env.device)
    total = grad_steps + 1

    # 1. start: no action, and the constant setting where it is better
    starts = [zeros]
    if start is not None:
        c = torch.as_tensor(start, dtype=env.dtype, device=env.device).clamp(
            ACTION_LOW, ACTION_HIGH
        )
        starts.append(torch.where(allowed, c.expand(steps, n, a, k), zeros))
    r0 = _replay_sequences(env, torch.stack(starts), plan)  # [1 or 2, n]
    none_r = r0[0].clone()
    pick = r0.argmax(0)  # ties keep no action
    best_r = r0.gather(0, pick.unsqueeze(0)).squeeze(0)
    best_z = torch.stack(starts)[pick, :, torch.arange(n)].transpose(0, 1).contiguous()
    eta = torch.full((n,), float(learning_rate), dtype=torch.float64, device=env.device)
    history = [float(best_r.mean())]
    if progress is not None:
        progress(1, total)
    done_steps = 0
    scales = 0.25 ** torch.arange(line_search, dtype=torch.float64, device=env.device)
    for it in range(grad_steps):
        # 2. gradient at each patient's best point
        z = best_z.detach().clone().requires_grad_(True)
        # the backward pass too runs on the env's threads: on a busy machine torch's default
        # thread pool made it ~9× slower than the forward (idle-waiting threads)
        with torch.enable_grad(), cpu_threads(env.device, env.threads):
            ret = _differentiable_return(env, z, plan)
            ret.sum().backward()  # reentrant checkpoints need .backward(), not .grad()
            grad = z.grad
        grad = torch.where(allowed, grad, torch.zeros_like(grad))
        norm = grad.abs().amax(dim=(0, 2, 3)).clamp_min(1e-300)  # [n]
        direction = grad / norm[None, :, None, None]
        # 3. exact line search, all step sizes and patients in one run
        etas = eta[None, :] * scales[:, None]  # [line_search, n]
        cand = best_z.unsqueeze(0) + etas.to(env.dtype)[:, None, :, None, None] * direction
        cand = torch.where(allowed, cand.clamp(ACTION_LOW, ACTION_HIGH), zeros)
        r = _replay_sequences(env, cand, plan)  # [line_search, n]
        j = r.argmax(0)
        r_best = r.gather(0, j.unsqueeze(0)).squeeze(0)
        better = r_best > best_r + ORACLE_GAIN_FLOOR  # a gain, not rounding
        idx = torch.arange(n, device=env.device)
        best_z = torch.where(better[None, :, None, None], cand[j, :, idx].transpose(0, 1), best_z)
        best_r = torch.where(better, r_best, best_r)
        taken = etas.gather(0, j.unsqueeze(0)).squeeze(0)
        eta = torch.where(better, 4.0 * taken, eta * 0.25**line_search).clamp_max(
            ACTION_HIGH - ACTION_LOW
        )
        done_steps = it + 1
        history.append(float(best_r.mean()))
        if progress is not None:
            progress(it + 2, total)
        if not bool(better.any()):
            break  # no patient improved: a further step from the same points cannot help
    actions = torch.where(allowed, best_z, zeros)
    if diet == "expected":  # score the plan where it is lived: on the realised intakes
        lived = actions.to(torch.float32).to(env.dtype)  # exactly what OpenLoopPolicy plays
        none_r, best_r = _replay_sequences(env, torch.stack([zeros, lived]))
    return OracleResult(
        actions=actions.to(torch.float32),
        return_by_patient=best_r,
        no_action_return_by_patient=none_r,
        return_mean_by_iterate=history,
        grad_steps=done_steps,
        wall_s=time.perf_counter() - t_start,
        diet=diet,
    )


# ====================================================================== comparison
@dataclass
class BaselineReport:
    """Every method on the same held-out patients and noise, and the yardsticks.

    Attributes
    ----------
    methods : dict of str to dict
        ``policy`` (if given), ``no_action``, ``random``, ``constant``, ``oracle``: each the
        output of :func:`~biofluxopt.marl.evaluate_policy` (``return_mean``,
        ``serum_b12_gain_pmol_l_mean``, ``bray_curtis_mean``, ...).
    oracle_fraction : float or None
        ``(R_policy − R_none) / (R_oracle − R_none)``; None when the oracle gains nothing.
    constant_action_margin_pmol_l : float or None
        Policy's mean serum B12 gain minus the best constant's (pmol/L).
    constant_as_good_as_policy : bool or None
        The best constant's mean return is at least the policy's.
    notes : list of str
        Plain statements for the user (the oracle gains nothing; a constant does as well).
    constant : ConstantSearch
    oracle : OracleResult
    oracle_expected_diet : OracleResult or None
        The oracle planned on expected intakes (``BaselineConfig.oracle_expected_diet``); its
        scores are ``methods["oracle_expected_diet"]``.
    oracle_expected_diet_fraction : float or None
        ``(R_expected − R_none) / (R_oracle − R_none)``: the share of the oracle's gain that
        needs no foresight of the noise; None when not run or the oracle gains nothing.
    """

    methods: dict[str, dict]
    oracle_fraction: float | None
    constant_action_margin_pmol_l: float | None
    constant_as_good_as_policy: bool | None
    notes: list[str]
    constant: ConstantSearch
    oracle: OracleResult
    oracle_expected_diet: OracleResult | None = None
    oracle_expected_diet_fraction: float | None = None

    def with_policy(self, scores: dict) -> BaselineReport:
        """This report with a policy's scores added (``methods["policy"]``, first) and the
        yardsticks computed against it.

        Parameters
        ----------
        scores : dict
            :func:`~biofluxopt.marl.evaluate_policy` of the policy on the same env, reset
            seed and patients as the baselines.
        """
        others = {k: v for k, v in self.methods.items() if k != "policy"}
        return self._scored({"policy": scores, **others})

    def _scored(self, methods: dict[str, dict]) -> BaselineReport:
        """This report with ``methods`` and the yardsticks and notes computed from them."""
        fraction, margin, as_good, notes = yardsticks(methods)
        if self.oracle_expected_diet is not None:
            notes += expected_diet_fraction(methods)[1]
        return dataclasses.replace(
            self,
            methods=methods,
            oracle_fraction=fraction,
            constant_action_margin_pmol_l=margin,
            constant_as_good_as_policy=as_good,
            notes=notes,
        )

    def to_dict(self, env: B12Env) -> dict:
        """JSON-ready: methods, yardsticks, the constant setting and the oracle's cost."""
        from biofluxopt.sim import ACTIVITIES

        doc = {
            "methods": self.methods,
            "oracle_fraction": self.oracle_fraction,
            "constant_action_margin_pmol_l": self.constant_action_margin_pmol_l,
            "constant_as_good_as_policy": self.constant_as_good_as_policy,
            "notes": self.notes,
            "constant_search": self.constant.to_dict(env.agent_ids, ACTIVITIES),
            "oracle_search": _search_doc(self.oracle),
        }
        if self.oracle_expected_diet is not None:
            doc["oracle_expected_diet_fraction"] = self.oracle_expected_diet_fraction
            doc["oracle_expected_diet_search"] = _search_doc(self.oracle_expected_diet)
        return doc


def _search_doc(oracle: OracleResult) -> dict:
    return {
        "grad_steps": oracle.grad_steps,
        "wall_s": oracle.wall_s,
        "return_mean_by_iterate": oracle.return_mean_by_iterate,
        "diet": oracle.diet,
    }


def expected_diet_fraction(methods: dict[str, dict]) -> tuple[float | None, list[str]]:
    """Share of the oracle's gain over no action kept by the oracle planned on expected
    intakes (``methods["oracle_expected_diet"]``), and a plain statement; None when the
    oracle gains nothing."""
    none = methods["no_action"]["return_mean"]
    gain = methods["oracle"]["return_mean"] - none
    if gain <= ORACLE_GAIN_FLOOR:
        return None, []
    fraction = (methods["oracle_expected_diet"]["return_mean"] - none) / gain
    note = (
        f"planned on the expected intakes instead of the realised ones, the oracle keeps "
        f"{fraction:.2%} of its gain over no action: the rest of the oracle's headroom comes "
        "from foresight of this episode's meals and missed doses, which no policy has"
    )
    return fraction, [note]


def yardsticks(methods: dict[str, dict]) -> tuple[float | None, float | None, bool | None, list]:
    """``oracle_fraction``, the margin over the constant (pmol/L), whether the constant does
    as well, and plain-language notes, from :func:`evaluate_policy` outputs by method."""
    notes = []
    fraction = margin = as_good = None
    none, oracle = methods["no_action"], methods["oracle"]
    gain = oracle["return_mean"] - none["return_mean"]
    if gain <= ORACLE_GAIN_FLOOR:
        notes.append(
            f"oracle_fraction is undefined: the open-loop oracle gains nothing over no action "
            f"on these patients (R_oracle − R_none = {gain:.3g}): within its gradient budget "
            "no action sequence found beats doing nothing for this reward"
        )
    policy = methods.get("policy")
    if policy is not None:
        if gain > ORACLE_GAIN_FLOOR:
            fraction = (policy["return_mean"] - none["return_mean"]) / gain
        if policy["return_mean"] < none["return_mean"]:
            notes.append(
                f"the learned policy does worse than no action on these patients (return "
                f"{policy['return_mean']:.4g} vs {none['return_mean']:.4g})"
            )
        const = methods["constant"]
        margin = policy["serum_b12_gain_pmol_l_mean"] - const["serum_b12_gain_pmol_l_mean"]
        as_good = const["return_mean"] >= policy["return_mean"]
        if as_good:
            notes.append(
                f"the best constant action does as well as the learned policy on these "
                f"patients (return {const['return_mean']:.4g} vs {policy['return_mean']:.4g}): "
                "feedback from observations adds nothing over one fixed setting for everyone "
                "here — a finding about the biology, not only about the trainer"
            )
    return fraction, margin, as_good, notes


def compare_to_baselines(
    env: B12Env,
    policy=None,
    *,
    seed: int = 0,
    constant: ConstantSearch,
    config: BaselineConfig | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> BaselineReport:
    """Score ``policy`` and the baselines on ``env``'s patients after ``reset(seed)``.

    Parameters
    ----------
    env : B12Env
        Held-out patients (``split="test"`` or a user's cohort).
    policy : Policy, optional
        Without it only the baselines are scored (``oracle_fraction`` is then None).
    seed : int
        Reset seed shared by every method (same patients, intakes, adherence draws).
    constant : ConstantSearch
        The best constant action, found on training patients
        (:func:`search_constant_action`).
    config : BaselineConfig, optional
        ``random_seed`` and the ``oracle_*`` budgets are used here; the oracle starts from
        ``constant``'s setting where it beats no action.
    progress : callable, optional
        Called with ``(stage, done, total)``.

    Returns
    -------
    BaselineReport
    """
    cfg = (config or BaselineConfig()).check()

    def tick(stage: str):
        return None if progress is None else (lambda d, t: progress(stage, d, t))

    methods: dict[str, dict] = {}
    methods["no_action"] = evaluate_policy(NoActionPolicy(), env, seed=seed)
    methods["random"] = evaluate_policy(RandomPolicy(cfg.random_seed), env, seed=seed)
    methods["constant"] = evaluate_policy(ConstantPolicy(constant.log_multipliers), env, seed=seed)
    options = {"seed": seed, "start": constant.log_multipliers, **cfg.oracle_options()}
    oracle = open_loop_oracle(env, progress=tick("oracle"), **options)
    methods["oracle"] = evaluate_policy(OpenLoopPolicy(oracle.actions), env, seed=seed)
    methods["oracle"]["search_wall_s"] = oracle.wall_s
    methods["constant"]["search_wall_s"] = constant.wall_s
    blind = blind_fraction = None
    if cfg.oracle_expected_diet:
        blind = open_loop_oracle(
            env, diet="expected", progress=tick("oracle_expected_diet"), **options
        )
        methods["oracle_expected_diet"] = evaluate_policy(
            OpenLoopPolicy(blind.actions), env, seed=seed
        )
        methods["oracle_expected_diet"]["search_wall_s"] = blind.wall_s
        blind_fraction = expected_diet_fraction(methods)[0]
    report = BaselineReport(
        methods, None, None, None, [], constant, oracle, blind, blind_fraction
    )._scored(methods)
    if policy is not None:
        report = report.with_policy(evaluate_policy(policy, env, seed=seed))
    return report


__all__ = [
    "ORACLE_GAIN_FLOOR",
    "BaselineConfig",
    "BaselineReport",
    "ConstantPolicy",
    "ConstantSearch",
    "NoActionPolicy",
    "OpenLoopPolicy",
    "OracleResult",
    "RandomPolicy",
    "baseline_config_from_dict",
    "check_oracle_memory",
    "compare_to_baselines",
    "expected_diet_fraction",
    "open_loop_oracle",
    "oracle_memory_bytes",
    "replay_returns",
    "search_constant_action",
    "yardsticks",
]
