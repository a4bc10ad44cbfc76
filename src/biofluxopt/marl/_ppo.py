"""MAPPO and IPPO on the batched B12 environment, in one file (CleanRL's ``ppo_continuous_action``).

Read it top to bottom: :class:`PPOConfig` (every hyper-parameter, with its unit and range), the
networks, the three pieces with their own tests (:func:`compute_gae`, :class:`RunningMeanStd`,
:func:`ppo_loss`), the minibatch update, then :func:`train` — rollout → GAE → value
normalisation → minibatch epochs → log — and finally checkpoints, :class:`Policy` and
:func:`evaluate_policy`.

Shapes: ``P`` patients, ``A`` agents (10 guilds), ``T`` decision steps per episode
(``episode_days / step_days``), ``K`` activities (4), ``O`` = ``env.obs_dim``, ``S`` =
``env.state_dim``, ``B`` samples of a (mini)batch.

==========  =============================================================================
actor       shared by all agents (parameter sharing): ``obs [.., O] → mean [.., K]`` of a
            diagonal Gaussian on the natural-log activity multipliers; the observation ends
            with the agent's one-hot id, so one network can act differently per agent. The
            mean is ``ln 4 · tanh(·)``, inside the action box, and starts at exactly 0 (zero
            output layer); samples outside it are clipped by the env (CleanRL's continuous
            PPO). ``log_std [K]`` is a free parameter (state-independent), initially −2.5.
critic      ``mappo``: centralised, ``[global state (S), one-hot id (A)] → value`` (one value
            per agent, so difference rewards work too; Yu et al. 2022). ``ippo``: the
            agent's own observation ``[O] → value`` (de Witt et al. 2020).
masks       the env's ``action_mask [P, A, K]``: an activity the taxon lacks contributes no
            log-probability and no entropy; an absent agent (no activity left) is left out
            of the minibatches and of every loss term.
batch       one iteration = one episode of every patient of the env (``P × T`` env-steps,
            ``P × A × T`` agent samples); minibatches are drawn over the valid
            (patient, agent, time) samples.
horizon     an episode ends at ``episode_days`` and the day is part of the observation, so
            the last step is terminal for GAE (no bootstrap beyond the horizon).
selection   the deterministic policy is scored on fixed training-split validation patients
            before training (the initial policy is exactly no action), every
            ``validation_every`` iterations and at the end; the best one is returned. On
            this model most of the advantage is dietary noise, and PPO's steps let the mean
            random-walk away from the identity; selection keeps the result from ending
            worse than doing nothing on the validation patients.
==========  =============================================================================

Same seed → the same learning curve, bitwise, on CPU with the same thread counts: the network
initialisation, the action noise and the minibatch order come from explicitly seeded
``torch.Generator`` s, and each iteration's patients and dietary noise from
``env.reset(seed=...)`` with a seed derived from (``seed``, iteration); no global RNG is read.
A checkpoint (safetensors) holds everything that state depends on, so an interrupted run
resumed from its last checkpoint reproduces the uninterrupted run's curve.

References
----------
Schulman et al. 2017, Proximal Policy Optimization Algorithms, arXiv:1707.06347.
Schulman et al. 2016, High-Dimensional Continuous Control Using GAE, arXiv:1506.02438.
Yu et al. 2022, The Surprising Effectiveness of PPO in Cooperative Multi-Agent Games (MAPPO),
NeurIPS, arXiv:2103.01955. de Witt et al. 2020, Is Independent Learning All You Need in the
StarCraft Multi-Agent Challenge? (IPPO), arXiv:2011.09533. Huang et al. 2022, The 37
Implementation Details of PPO (CleanRL), ICLR blog track.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_save
from torch import Tensor, nn

from biofluxopt._util import (
    SEED_MAX,
    ConfigError,
    DataError,
    Interval,
    Options,
    atomic_write_bytes,
    check_memory,
    check_params,
)
from biofluxopt.sim import cpu_threads

from ._config import B12EnvConfig, checked_config, config_from_kwargs
from ._env import ACTION_HIGH, B12Env

#: File name of the checkpoint :func:`train` keeps in ``out_dir`` (the latest iteration).
CHECKPOINT_NAME = "checkpoint.safetensors"
#: Format tag written into every checkpoint's metadata.
CHECKPOINT_FORMAT = "biofluxopt.marl.ppo/1"
#: Columns of the learning curve that are not bitwise reproducible (timings).
TIMING_COLUMNS = ("wall_s", "env_steps_per_s")


# ====================================================================== configuration
@dataclass
class PPOConfig:
    """Hyper-parameters of :func:`train` (MAPPO or IPPO with PPO-clip).

    Algorithm
    ---------
    algo : {"mappo", "ippo"}, default="mappo"
        ``"mappo"``: the critic sees the global state plus the agent's one-hot id
        (centralised). ``"ippo"``: the critic sees the agent's own observation. The actor is
        the same shared network in both.
    num_iterations : int in [1, 1_000_000], default=200
        Training iterations; each is one episode of every patient in the env
        (``n_patients × episode_days / step_days`` env-steps).

    Optimisation
    ------------
    learning_rate : float in (0, 1], default=3e-4
        Adam step size (actor and critic share one optimiser, eps 1e-5).
    anneal_lr : bool, default=True
        Decay the learning rate linearly from ``learning_rate`` (iteration 1) towards 0
        (``learning_rate / num_iterations`` at the last iteration).
    update_epochs : int in [1, 100], default=4
        Passes over each iteration's batch.
    num_minibatches : int in [1, 100_000], default=4
        Minibatches per epoch, drawn over the valid (patient, agent, time) samples; must not
        exceed their number.
    max_grad_norm : float in (0, inf), default=0.5
        Global gradient-norm clip (actor and critic parameters together).
    target_kl : float in (0, inf) or None, default=None
        Stop the epochs of an iteration early once the approximate KL of the last minibatch
        exceeds it; None: never.

    PPO and GAE
    -----------
    gamma : float in [0, 1], default=0.99
        Discount per decision step (a week by default: 0.99 weighs a reward 52 weeks ahead by
        0.59).
    gae_lambda : float in [0, 1], default=0.95
        GAE(λ) trade-off between bias (0: one-step TD) and variance (1: Monte Carlo).
    clip_coef : float in (0, 1), default=0.2
        PPO clip range ε: the probability ratio is clipped to [1 − ε, 1 + ε].
    norm_adv : bool, default=True
        Standardise advantages per minibatch (mean 0, unbiased standard deviation 1).
    ent_coef : float in [0, inf), default=0.001
        Weight of the entropy bonus (nats, summed over each agent's active activities).
    vf_coef : float in [0, inf), default=0.5
        Weight of the value loss ``0.5 · (V − target)²`` (in normalised units when
        ``value_norm``).
    value_norm : bool, default=True
        Learn the critic on returns standardised by a running mean and standard deviation
        (MAPPO's value normalisation); values are de-normalised for GAE.
    reward_baseline : {"none", "no_action"}, default="none"
        ``"no_action"``: learn from each step's team reward minus the reward the same
        patient would get at the same step with no action and the *same* realised diet and
        adherence (a reference simulation run alongside the rollout, from the same steady
        state; one extra simulation of the batch per iteration). The subtracted term does
        not depend on the actions, so the policy gradient stays unbiased, while the dietary
        noise, which dwarfs the actions' effect here, cancels from the advantages (an
        input-driven baseline: Mao et al., ICLR 2019, "Variance reduction for reinforcement
        learning in input-driven environments"). The logged ``return_mean`` stays the
        environment's own return. Applies to ``reward="team"``; per-agent difference
        rewards are counterfactual already and are used as they are. ``"none"``: the
        environment's rewards as they are. The shipped ``train`` preset uses
        ``"no_action"``: on its supplement task it also cancels the serum-limit penalties
        that patients collect whatever the agents do, and validation returns reached in 10
        iterations what 40 did not reach without it (docs/marl.md, "Why the policy stayed at
        no action", point 9). Not the default of this class, which keeps the plain
        algorithm: without a supplement it did not make the gradient less noisy (point 3).

    Networks
    --------
    hidden_size : int in [1, 4096], default=64
        Units per hidden layer (tanh) of the actor and of the critic.
    hidden_layers : int in [1, 8], default=2
        Hidden layers of each network.
    init_log_std : float in [-10, 2], default=-2.5
        Initial log standard deviation of the action noise (natural-log multiplier units;
        −2.5 → σ = 0.082, a typical sample ×0.92 … ×1.09 around the mean; the action box is
        ±1.386). The exploration noise is not free here: every sample moves the community,
        and Bray–Curtis to baseline is charged every step (σ = 0.37 cost ~4× the no-action
        return in training episodes), and PPO's clipped steps move the mean in units of σ,
        so a large σ lets the mean drift far on noisy advantages.

    Policy selection
    ----------------
    validation_every : int in [0, 1_000_000], default=5
        Score the deterministic (mean-action) policy every this many iterations, before
        training (iteration 0: the initial policy, which is exactly no action) and after the
        last iteration, on a fixed set of *training-split* validation patients and noise;
        the policy returned (and saved as ``best_actor``) is the best scored. 0: no
        validation, the policy is the last iterate. Guards against the mean drifting on
        advantages that are mostly dietary noise (docs/marl.md, "Trainer").
    validation_patients : int in [1, 100_000], default=32
        Patients of the validation episode (drawn once, from the training split, with a seed
        derived from the run's seed); costs one deterministic episode per validation.

    Numerics
    --------
    torch_threads : int in [1, 1024], default=1
        Intra-op CPU threads of the networks' work (the env keeps its own ``cpu_threads``).
        Bitwise reproducibility holds for the same thread counts.
    checkpoint_every : int in [1, 1_000_000], default=10
        Iterations between checkpoints when :func:`train` has an ``out_dir`` (the last
        iteration is always saved).
    """

    algo: str = "mappo"
    num_iterations: int = 200
    learning_rate: float = 3e-4
    anneal_lr: bool = True
    update_epochs: int = 4
    num_minibatches: int = 4
    max_grad_norm: float = 0.5
    target_kl: float | None = None
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    norm_adv: bool = True
    ent_coef: float = 0.001
    vf_coef: float = 0.5
    value_norm: bool = True
    reward_baseline: str = "none"
    hidden_size: int = 64
    hidden_layers: int = 2
    init_log_std: float = -2.5
    validation_every: int = 5
    validation_patients: int = 32
    torch_threads: int = 1
    checkpoint_every: int = 10

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "algo": [Options("mappo", "ippo")],
        "num_iterations": [Interval(Integral, 1, 1_000_000)],
        "learning_rate": [Interval(Real, 0, 1, closed="right")],
        "anneal_lr": [Options(True, False)],
        "update_epochs": [Interval(Integral, 1, 100)],
        "num_minibatches": [Interval(Integral, 1, 100_000)],
        "max_grad_norm": [Interval(Real, 0, None, closed="neither")],
        "target_kl": [Interval(Real, 0, None, closed="neither"), None],
        "gamma": [Interval(Real, 0, 1)],
        "gae_lambda": [Interval(Real, 0, 1)],
        "clip_coef": [Interval(Real, 0, 1, closed="neither")],
        "norm_adv": [Options(True, False)],
        "ent_coef": [Interval(Real, 0, None)],
        "vf_coef": [Interval(Real, 0, None)],
        "value_norm": [Options(True, False)],
        "reward_baseline": [Options("no_action", "none")],
        "hidden_size": [Interval(Integral, 1, 4096)],
        "hidden_layers": [Interval(Integral, 1, 8)],
        "init_log_std": [Interval(Real, -10, 2)],
        "validation_every": [Interval(Integral, 0, 1_000_000)],
        "validation_patients": [Interval(Integral, 1, 100_000)],
        "torch_threads": [Interval(Integral, 1, 1024)],
        "checkpoint_every": [Interval(Integral, 1, 1_000_000)],
    }

    def check(self) -> PPOConfig:
        """Validate every field; returns ``self``.

        Raises
        ------
        ConfigError
            The first invalid field, named ``PPOConfig.<field>``, with what is allowed and
            what was received.
        """
        check_params(self)
        return self

    def replace(self, **changes) -> PPOConfig:
        """A checked copy with some fields changed (an unknown name is a ConfigError)."""
        return ppo_config_from_dict({**dataclasses.asdict(self), **changes})


def ppo_config_from_dict(data: dict, *, source: str | Path | None = None) -> PPOConfig:
    """A checked :class:`PPOConfig` from a mapping (e.g. a TOML table).

    Raises
    ------
    ConfigError
        An unknown key (named, with the allowed ones) or an invalid value; ``source`` (a file)
        prefixes the message.
    """
    return checked_config(PPOConfig, data, source=source)


# ====================================================================== networks
def _linear(n_in: int, n_out: int, gain: float, generator: torch.Generator) -> nn.Linear:
    """A linear layer with orthogonal weights (``gain``) and zero bias, drawn from
    ``generator`` only (built on the meta device, so torch's global RNG is never touched)."""
    layer = nn.Linear(n_in, n_out, device="meta").to_empty(device="cpu")
    with torch.no_grad():
        nn.init.orthogonal_(layer.weight, gain=gain, generator=generator)
        layer.bias.zero_()
    return layer


def _mlp(n_in: int, n_out: int, cfg: PPOConfig, out_gain: float, generator) -> nn.Sequential:
    sizes = [n_in] + [cfg.hidden_size] * cfg.hidden_layers
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [_linear(a, b, math.sqrt(2.0), generator), nn.Tanh()]
    layers.append(_linear(sizes[-1], n_out, out_gain, generator))
    return nn.Sequential(*layers)


class Actor(nn.Module):
    """Shared Gaussian policy of all agents.

    ``forward(obs [..., O]) → (mean [..., K], std [..., K])``: ``mean = ln 4 · tanh(net(obs))``
    lies inside the action box [ln 0.25, ln 4]; ``std = exp(log_std)`` is the same for every
    observation. The output layer starts at zero, so the initial policy's mean is exactly the
    identity multipliers (no action): the first candidate of the validation selection.
    """

    def __init__(self, obs_dim: int, n_activities: int, cfg: PPOConfig, generator):
        super().__init__()
        self.net = _mlp(obs_dim, n_activities, cfg, 0.0, generator)
        self.log_std = nn.Parameter(torch.full((n_activities,), float(cfg.init_log_std)))

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        mean = ACTION_HIGH * torch.tanh(self.net(obs))
        return mean, self.log_std.exp().expand_as(mean)


class Critic(nn.Module):
    """Value network: ``forward(x [..., C]) → value [...]`` (in normalised units when the value
    normaliser is on). ``C`` = ``S + A`` (MAPPO: global state and one-hot id) or ``O`` (IPPO)."""

    def __init__(self, in_dim: int, cfg: PPOConfig, generator):
        super().__init__()
        self.net = _mlp(in_dim, 1, cfg, 1.0, generator)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(-1)


def critic_input(algo: str, obs: Tensor, state: Tensor, n_agents: int) -> Tensor:
    """The critic's input for every agent.

    Parameters
    ----------
    algo : {"mappo", "ippo"}
    obs : Tensor, shape ``[P, A, O]``
        Observations; the last ``A`` features are the one-hot agent id.
    state : Tensor, shape ``[P, S]``
        Global state (``info["state"]``).

    Returns
    -------
    Tensor, shape ``[P, A, S + A]`` (MAPPO) or ``[P, A, O]`` (IPPO)
    """
    if algo == "ippo":
        return obs
    p, a = obs.shape[0], n_agents
    return torch.cat([state.unsqueeze(1).expand(p, a, state.shape[-1]), obs[..., -a:]], -1)


def masked_log_prob(mean: Tensor, std: Tensor, action: Tensor, mask: Tensor) -> Tensor:
    """Gaussian log-density of ``action`` summed over the active activities.

    ``mean, std, action [..., K]`` float, ``mask [..., K]`` bool → ``[...]``. Masked entries
    contribute exactly 0, whatever their action.
    """
    var = std * std
    lp = -((action - mean) ** 2) / (2 * var) - torch.log(std) - 0.5 * math.log(2 * math.pi)
    return torch.where(mask, lp, torch.zeros_like(lp)).sum(-1)


def masked_entropy(std: Tensor, mask: Tensor) -> Tensor:
    """Gaussian entropy (nats) summed over the active activities: ``[..., K] → [...]``."""
    ent = 0.5 + 0.5 * math.log(2 * math.pi) + torch.log(std)
    return torch.where(mask, ent, torch.zeros_like(ent)).sum(-1)


# ====================================================================== GAE and normaliser
def compute_gae(
    reward: Tensor,
    value: Tensor,
    next_value: Tensor,
    done: Tensor,
    terminated: Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation, backwards over time (Schulman et al. 2016).

    ``δ_t = r_t + γ V(s_{t+1}) (1 − terminated_t) − V(s_t)`` and
    ``A_t = δ_t + γ λ (1 − done_t) A_{t+1}``.

    Parameters
    ----------
    reward, value, next_value : Tensor, shape ``[T, ...]``
        Reward of step ``t``, value of its start state, value of its end state (ignored where
        ``terminated``).
    done, terminated : Tensor of bool, shape ``[T, ...]``
        ``done``: the trajectory ends after step ``t`` (terminated or truncated) — no
        advantage flows back across it; ``terminated``: the end state has value 0.

    Returns
    -------
    advantage, returns : Tensor, shape ``[T, ...]``
        ``returns = advantage + value`` (the critic's target).
    """
    advantage = torch.zeros_like(reward)
    last = torch.zeros_like(reward[0])
    for t in reversed(range(reward.shape[0])):
        not_terminated = (~terminated[t]).to(reward.dtype)
        not_done = (~done[t]).to(reward.dtype)
        delta = reward[t] + gamma * next_value[t] * not_terminated - value[t]
        last = delta + gamma * gae_lambda * not_done * last
        advantage[t] = last
    return advantage, advantage + value


class RunningMeanStd:
    """Running mean and variance of a stream of scalars (parallel update of Chan et al. 1979),
    float64; the value normaliser of MAPPO. ``enabled=False`` makes both maps the identity.

    ``normalize(x) = (x − mean) / sqrt(var + 1e-8)``; ``denormalize`` is its inverse.
    """

    def __init__(self, enabled: bool = True, device: torch.device | str = "cpu"):
        self.enabled = enabled
        self.mean = torch.zeros((), dtype=torch.float64, device=device)
        self.var = torch.ones((), dtype=torch.float64, device=device)
        self.count = torch.full((), 1e-4, dtype=torch.float64, device=device)

    def update(self, x: Tensor) -> None:
        """Fold in the samples ``x`` (any shape, flattened)."""
        if not self.enabled or x.numel() == 0:
            return
        x = x.detach().to(torch.float64).reshape(-1)
        b_mean, b_var, b_count = x.mean(), x.var(unbiased=False), float(x.numel())
        delta = b_mean - self.mean
        total = self.count + b_count
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total
        self.mean = self.mean + delta * b_count / total
        self.var = m2 / total
        self.count = total

    def normalize(self, x: Tensor) -> Tensor:
        if not self.enabled:
            return x
        return ((x - self.mean) / torch.sqrt(self.var + 1e-8)).to(x.dtype)

    def denormalize(self, x: Tensor) -> Tensor:
        if not self.enabled:
            return x
        return (x * torch.sqrt(self.var + 1e-8) + self.mean).to(x.dtype)

    def state_dict(self) -> dict[str, Tensor]:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.mean, self.var, self.count = (state[k].to(torch.float64) for k in self.state_dict())


# ====================================================================== loss and update
def ppo_loss(actor: Actor, critic: Critic, batch: dict[str, Tensor], cfg: PPOConfig):
    """The PPO-clip loss of one minibatch, masked.

    Parameters
    ----------
    batch : dict of str to Tensor
        ``obs [B, O]``, ``critic_in [B, C]``, ``action [B, K]``, ``mask [B, K]`` (bool: the
        agent's active activities), ``logprob [B]`` (behaviour policy), ``advantage [B]``,
        ``target [B]`` (returns, normalised when ``cfg.value_norm``). A sample with no active
        activity (an absent agent) counts in no term and gets no gradient.

    Returns
    -------
    loss : Tensor, scalar
        ``policy_loss − ent_coef · entropy + vf_coef · value_loss``, where ``policy_loss =
        mean(max(−Â r, −Â clip(r, 1 − ε, 1 + ε)))``, ``r = π/π_old``, ``Â`` standardised
        over the minibatch (``norm_adv``), and ``value_loss = 0.5 · mean((V − target)²)``.
    stats : dict of str to float-valued Tensor
        ``policy_loss``, ``value_loss``, ``entropy``, ``approx_kl`` (``mean((r − 1) − ln r)``,
        Schulman's low-variance estimator), ``clipfrac``.
    """
    valid = batch["mask"].any(-1)
    count = valid.sum().clamp_min(1)

    def masked_mean(x: Tensor) -> Tensor:
        return torch.where(valid, x, torch.zeros_like(x)).sum() / count

    mean, std = actor(batch["obs"])
    new_logprob = masked_log_prob(mean, std, batch["action"], batch["mask"])
    entropy = masked_mean(masked_entropy(std, batch["mask"]))
    logratio = torch.where(valid, new_logprob - batch["logprob"], torch.zeros_like(new_logprob))
    ratio = logratio.exp()

    advantage = torch.where(valid, batch["advantage"], torch.zeros_like(batch["advantage"]))
    if cfg.norm_adv:
        adv_mean = masked_mean(advantage)
        adv_var = masked_mean((advantage - adv_mean) ** 2) * count / (count - 1).clamp_min(1)
        advantage = (advantage - adv_mean) / adv_var.sqrt().clamp_min(1e-6)
    pg_loss = masked_mean(
        torch.maximum(
            -advantage * ratio, -advantage * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)
        )
    )
    value = critic(batch["critic_in"])
    v_loss = 0.5 * masked_mean((value - batch["target"]) ** 2)
    loss = pg_loss - cfg.ent_coef * entropy + cfg.vf_coef * v_loss
    with torch.no_grad():
        stats = {
            "policy_loss": pg_loss.detach(),
            "value_loss": v_loss.detach(),
            "entropy": entropy.detach(),
            "approx_kl": masked_mean((ratio - 1) - logratio),
            "clipfrac": masked_mean(((ratio - 1).abs() > cfg.clip_coef).to(ratio.dtype)),
        }
    return loss, stats


def ppo_update(
    actor: Actor,
    critic: Critic,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, Tensor],
    cfg: PPOConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """``update_epochs`` passes of minibatch gradient steps over ``batch`` (see
    :func:`ppo_loss` for its keys, each ``[B, ...]``, all samples valid); the minibatch order
    comes from ``generator``. Returns the last minibatch's statistics (floats) and
    ``epochs`` run."""
    n = batch["advantage"].shape[0]
    if cfg.num_minibatches > n:
        raise ConfigError(
            f"must not exceed the valid (patient, agent, step) samples per iteration ({n}); "
            f"got {cfg.num_minibatches}",
            field="PPOConfig.num_minibatches",
        )
    params = [*actor.parameters(), *critic.parameters()]
    device = batch["advantage"].device
    stats: dict[str, Tensor] = {}
    epochs = 0
    for _ in range(cfg.update_epochs):
        epochs += 1
        order = torch.randperm(n, generator=generator, device=generator.device).to(device)
        for idx in torch.tensor_split(order, cfg.num_minibatches):
            loss, stats = ppo_loss(actor, critic, {k: v[idx] for k, v in batch.items()}, cfg)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
        if cfg.target_kl is not None and float(stats["approx_kl"]) > cfg.target_kl:
            break
    return {**{k: float(v) for k, v in stats.items()}, "epochs": epochs}


# ====================================================================== helpers
def _derived_seed(seed: int, *key: int) -> int:
    """A seed in [0, 2**63) for one purpose (``key``) of the run's ``seed``."""
    state = np.random.SeedSequence(seed, spawn_key=key).generate_state(1, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, Integral) or not 0 <= seed <= SEED_MAX:
        raise ConfigError(f"must be an integer from 0 to {SEED_MAX}; got {seed!r}", field="seed")
    return int(seed)


def _jsonable_config(cfg: object) -> dict:
    """A dataclass config as plain JSON data (tuples → lists), for comparison and storage."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


# ====================================================================== policy
class Policy:
    """A trained actor, ready to act in a :class:`B12Env` of the same observation mode.

    Parameters
    ----------
    actor : Actor
    env_config : B12EnvConfig
        The configuration the actor was trained on (its observation layout).
    obs_dim : int
        Observation width ``O`` the actor expects.

    Examples
    --------
    >>> policy = Policy.load("runs/marl/checkpoint.safetensors")          # doctest: +SKIP
    >>> obs, info = env.reset(seed=0)                                     # doctest: +SKIP
    >>> action = policy.act(obs, info["action_mask"])   # doctest: +SKIP
    """

    def __init__(self, actor: Actor, env_config: B12EnvConfig, obs_dim: int):
        self.actor = actor
        self.env_config = env_config
        self.obs_dim = obs_dim

    def act(
        self,
        obs: Tensor,
        mask: Tensor,
        *,
        deterministic: bool = True,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Actions for a batch of observations.

        Parameters
        ----------
        obs : Tensor, shape ``[P, A, O]`` (or any ``[..., O]``)
        mask : Tensor of bool, shape ``[P, A, K]`` (``info["action_mask"]``)
        deterministic : bool, default=True
            The Gaussian's mean; otherwise a sample (needs ``generator``).
        generator : torch.Generator, optional
            Source of the action noise when not ``deterministic`` (on the actor's device).
        ``obs`` may live on another device than the actor; the action comes back on
        ``obs``'s device.

        Returns
        -------
        Tensor, shape ``[P, A, K]``, float32
            Natural-log multipliers; 0 (identity) where ``mask`` is False.
        """
        if obs.shape[-1] != self.obs_dim:
            raise ConfigError(
                f"the policy expects {self.obs_dim} observation features "
                f"(observe={self.env_config.observe!r}); got {obs.shape[-1]}",
                field="obs",
            )
        if not deterministic and generator is None:
            raise ConfigError("a stochastic action needs a torch.Generator", field="generator")
        device = next(self.actor.parameters()).device
        with torch.no_grad():
            mean, std = self.actor(obs.to(device))
            if deterministic:
                action = mean
            else:
                noise = torch.randn(mean.shape, generator=generator, device=device)
                action = mean + std * noise
            action = action.to(obs.device)
            return torch.where(mask, action, torch.zeros_like(action))

    @classmethod
    def load(cls, path: str | Path, *, device: str | torch.device = "cpu") -> Policy:
        """The policy of a checkpoint written by :func:`train`: the selected actor
        (``best_actor``, see ``PPOConfig.validation_every``), or the last one in a checkpoint
        without selection.

        Raises
        ------
        DataError
            The file is missing, corrupted or not a trainer checkpoint (message names the file
            and the field).
        """
        ck = load_checkpoint(path)
        actor = Actor(ck.dims["obs_dim"], ck.dims["n_activities"], ck.ppo_config, _cpu_gen(0))
        best = any(k.startswith("best_actor.") for k in ck.tensors)
        _load_module(actor, ck.tensors, "best_actor" if best else "actor", ck.path)
        return cls(actor.to(device), ck.env_config, ck.dims["obs_dim"])


def _cpu_gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ====================================================================== evaluation
def evaluate_policy(
    policy,
    env: B12Env,
    *,
    seed: int = 0,
    deterministic: bool = True,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Run one episode of every patient of ``env`` under ``policy``.

    Parameters
    ----------
    policy : Policy or any object with ``act(obs, mask, *, deterministic, generator)``
        (baselines — no action, a constant action — fit the same slot).
    env : B12Env
        E.g. ``B12Env(B12EnvConfig(split="test", ...))`` for held-out patients.
    seed : int, default=0
        ``env.reset(seed=seed)``: the same seed gives every policy the same patients and the
        same dietary noise.
    deterministic : bool, default=True
        Act with the Gaussian's mean (else sample with ``generator``).

    Returns
    -------
    dict of str to float
        ``return_mean`` (undiscounted team reward summed over the episode, mean over
        patients), ``return_std``, ``serum_b12_gain_pmol_l_mean`` (serum B12 at the end minus
        baseline, pmol/L), ``bray_curtis_mean`` (end-of-episode composition vs baseline),
        ``patients``, ``env_steps`` (patients × decision steps) and ``wall_s``.
    """
    start = time.perf_counter()
    seed = _check_seed(seed)
    obs, info = env.reset(seed=seed)
    mask, serum0 = info["action_mask"], info["serum_b12_pmol_l"]
    total = torch.zeros(env.n_patients, dtype=torch.float64, device=env.device)
    steps = env.config.episode_days // env.config.step_days
    for _ in range(steps):
        action = policy.act(obs, mask, deterministic=deterministic, generator=generator)
        obs, _, _, _, info = env.step(action)
        total += info["team_reward"].to(torch.float64)
    return {
        "return_mean": float(total.mean()),
        "return_std": float(total.std(unbiased=False)),
        "serum_b12_gain_pmol_l_mean": float((info["serum_b12_pmol_l"] - serum0).mean()),
        "bray_curtis_mean": float(info["bray_curtis"].mean()),
        "patients": env.n_patients,
        "env_steps": env.n_patients * steps,
        "wall_s": time.perf_counter() - start,
    }


# ====================================================================== training
@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    curve : list of dict
        One row per iteration: ``iteration``, ``env_steps`` (cumulative patients × decision
        steps), ``return_mean`` (undiscounted team return of the iteration's episode, mean
        over patients), ``serum_b12_gain_pmol_l_mean``, ``bray_curtis_mean`` (end of episode),
        ``policy_loss``, ``value_loss``, ``entropy``, ``approx_kl``, ``clipfrac``,
        ``explained_variance``, ``learning_rate``, ``epochs``, ``validation_return`` (the
        deterministic policy's return on the validation patients; NaN in iterations without
        validation), ``return_gain_vs_no_action_mean`` (with ``reward_baseline="no_action"``:
        the episode's return minus no action's on the same patients and noise; else NaN),
        ``wall_s`` (cumulative, validation included) and ``env_steps_per_s`` (of the
        iteration's rollout and update).
    policy : Policy
        The selected policy: the best validated iterate (``selection``), or the last iterate
        when ``validation_every = 0``.
    env_config : B12EnvConfig
    ppo_config : PPOConfig
    seed : int
    checkpoint : Path or None
        The last checkpoint written (with ``out_dir``).
    selection : dict
        ``best_iteration`` (0: the initial policy, i.e. no action), ``best_return``,
        ``initial_return`` (validation returns; None without validation).
    """

    curve: list[dict]
    policy: Policy
    env_config: B12EnvConfig
    ppo_config: PPOConfig
    seed: int
    checkpoint: Path | None = None
    selection: dict = dataclasses.field(default_factory=dict)

    def curve_frame(self):
        """The learning curve as a pandas DataFrame (one row per iteration)."""
        import pandas as pd

        return pd.DataFrame(self.curve)


def train(
    env_config: B12EnvConfig,
    ppo_config: PPOConfig | None = None,
    *,
    seed: int = 0,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: Callable[[dict], None] | None = None,
    network: object | None = None,
    compositions: Tensor | None = None,
) -> TrainResult:
    """Train a shared policy for all agents with MAPPO or IPPO (PPO-clip, GAE(λ)).

    Main arguments
    --------------
    env_config : B12EnvConfig
        The environment (patients per iteration, episode, observation, reward).
    ppo_config : PPOConfig, optional
        Hyper-parameters (default ``PPOConfig()``).
    seed : int in [0, 2**63 − 1], default=0
        Same seed (and thread counts) → bitwise the same curve and policy on CPU.

    Other arguments
    ---------------
    out_dir : str or Path, optional
        Directory for ``checkpoint.safetensors`` (created; written every
        ``checkpoint_every`` iterations and at the end, atomically).
    resume : bool, default=False
        Continue from ``out_dir``'s checkpoint if there is one (same configs and seed
        required); the resumed run reproduces the uninterrupted run's curve. Without it an
        existing checkpoint is refused rather than overwritten.
    progress : callable, optional
        Called with each iteration's curve row (after its checkpoint is saved); an exception
        it raises stops training there (the checkpoint stays).
    network, compositions :
        Passed to :class:`B12Env` (``observe="markov_blanket"``; user compositions).

    Returns
    -------
    TrainResult

    Raises
    ------
    ConfigError
        An invalid config field or seed (named); an existing checkpoint without ``resume``;
        a checkpoint trained with other configs or seed (the field named).
    DataError
        A corrupted checkpoint (file and field named).
    """
    cfg = (ppo_config if ppo_config is not None else PPOConfig()).check()
    env_config = env_config.check()
    seed = _check_seed(seed)
    env = B12Env(env_config, network=network, compositions=compositions)
    device = env.device
    n_patients, n_agents = env.n_patients, env.n_agents
    n_steps = env_config.episode_days // env_config.step_days
    n_act = env.activity_mask.shape[-1]
    critic_dim = env.state_dim + n_agents if cfg.algo == "mappo" else env.obs_dim
    dims = {"obs_dim": env.obs_dim, "critic_dim": critic_dim, "n_activities": n_act}
    # rollout buffers (float32) and the flattened batch, about 3 copies at the peak
    per_sample = env.obs_dim + critic_dim + 2 * n_act + 6
    check_memory(
        3 * 4 * n_steps * n_patients * n_agents * per_sample,
        f"the trainer's rollout of {n_patients} patients × {n_steps} steps × {n_agents} agents",
    )

    use_reference = cfg.reward_baseline == "no_action" and env_config.reward == "team"
    with cpu_threads(device, cfg.torch_threads):
        # ---------------------------------------------------------------- set-up
        init_gen = _cpu_gen(_derived_seed(seed, 0))
        actor = Actor(env.obs_dim, n_act, cfg, init_gen).to(device)
        critic = Critic(critic_dim, cfg, init_gen).to(device)
        optimizer = torch.optim.Adam(
            [*actor.parameters(), *critic.parameters()], lr=cfg.learning_rate, eps=1e-5
        )
        value_norm = RunningMeanStd(cfg.value_norm, device)
        gen = torch.Generator(device=device).manual_seed(_derived_seed(seed, 1))
        curve: list[dict] = []
        start_iteration, wall_before = 1, 0.0
        # policy selection: the deterministic policy on fixed training-split patients
        val_env = None
        if cfg.validation_every > 0:
            val_env = B12Env(
                env_config.replace(n_patients=cfg.validation_patients),
                network=network,
                compositions=compositions,
            )
        val_seed = _derived_seed(seed, 3)
        best_actor = copy.deepcopy(actor)
        selection = {"best_iteration": 0, "best_return": None, "initial_return": None}

        def validate() -> float:
            policy = Policy(actor, env_config, env.obs_dim)
            return evaluate_policy(policy, val_env, seed=val_seed)["return_mean"]

        ckpt_path = Path(out_dir) / CHECKPOINT_NAME if out_dir is not None else None
        if ckpt_path is not None and ckpt_path.exists():
            if not resume:
                raise ConfigError(
                    "a checkpoint exists; pass resume=True to continue it, or choose another "
                    "out_dir",
                    source=ckpt_path,
                    field="resume",
                )
            ck = load_checkpoint(ckpt_path)
            ck.check_matches(env_config, cfg, seed, dims)
            _load_module(actor, ck.tensors, "actor", ck.path)
            _load_module(critic, ck.tensors, "critic", ck.path)
            _load_optimizer(optimizer, ck)
            value_norm.load_state_dict(_prefixed(ck.tensors, "value_norm"))
            gen.set_state(ck.tensors["rng.torch"])
            if any(k.startswith("best_actor.") for k in ck.tensors):
                _load_module(best_actor, ck.tensors, "best_actor", ck.path)
            selection.update(ck.selection)
            curve = ck.curve
            start_iteration = ck.iteration + 1
            wall_before = curve[-1]["wall_s"] if curve else 0.0

        # rollout buffers, pre-allocated [T, P, A, ...] (CleanRL)
        f32 = {"dtype": torch.float32, "device": device}
        obs_buf = torch.zeros(n_steps, n_patients, n_agents, env.obs_dim, **f32)
        cin_buf = torch.zeros(n_steps, n_patients, n_agents, critic_dim, **f32)
        act_buf = torch.zeros(n_steps, n_patients, n_agents, n_act, **f32)
        logp_buf = torch.zeros(n_steps, n_patients, n_agents, **f32)
        rew_buf = torch.zeros(n_steps, n_patients, n_agents, **f32)
        val_buf = torch.zeros(n_steps, n_patients, n_agents, **f32)
        end_buf = torch.zeros(n_steps, n_patients, n_agents, dtype=torch.bool, device=device)
        env_steps = (start_iteration - 1) * n_patients * n_steps
        t_start = time.perf_counter()
        if val_env is not None and start_iteration == 1:
            r0 = validate()  # the initial policy: exactly no action (zero output layer)
            selection.update(best_iteration=0, best_return=r0, initial_return=r0)

        for iteration in range(start_iteration, cfg.num_iterations + 1):
            t_iter = time.perf_counter()
            lr = cfg.learning_rate
            if cfg.anneal_lr:
                lr = cfg.learning_rate * (1.0 - (iteration - 1.0) / cfg.num_iterations)
            for group in optimizer.param_groups:
                group["lr"] = lr

            # ------------------------------------------------------------ rollout
            obs, info = env.reset(seed=_derived_seed(seed, 2, iteration))
            mask = info["action_mask"]  # [P, A, K], fixed over the episode
            state, serum0 = info["state"], info["serum_b12_pmol_l"]
            team_return = torch.zeros(n_patients, dtype=torch.float64, device=device)
            reference = _NoActionReference(env, serum0) if use_reference else None
            gain_vs_none = torch.zeros(n_patients, dtype=torch.float64, device=device)
            for t in range(n_steps):
                with torch.no_grad():
                    cin = critic_input(cfg.algo, obs, state, n_agents)
                    mean, std = actor(obs)
                    noise = torch.randn(mean.shape, generator=gen, device=device)
                    action = torch.where(mask, mean + std * noise, torch.zeros_like(mean))
                    obs_buf[t], cin_buf[t], act_buf[t] = obs, cin, action
                    logp_buf[t] = masked_log_prob(mean, std, action, mask)
                    val_buf[t] = value_norm.denormalize(critic(cin))
                obs, reward, terminated, truncated, info = env.step(action)
                if reference is not None:
                    reference_reward = reference.step()
                    reward = reward - reference_reward.unsqueeze(-1)
                    gain_vs_none += (info["team_reward"] - reference_reward).to(torch.float64)
                rew_buf[t] = reward.to(torch.float32)
                end_buf[t] = (terminated | truncated).unsqueeze(-1).expand(n_patients, n_agents)
                state = info["state"]
                team_return += info["team_reward"].to(torch.float64)
            env_steps += n_patients * n_steps

            # ------------------------------------------------------------ GAE
            with torch.no_grad():
                last_value = value_norm.denormalize(
                    critic(critic_input(cfg.algo, obs, state, n_agents))
                )
            next_val = torch.cat([val_buf[1:], last_value.unsqueeze(0)], 0)
            # the episode's horizon is observed (day feature): its end is terminal
            advantage, returns = compute_gae(
                rew_buf, val_buf, next_val, end_buf, end_buf, cfg.gamma, cfg.gae_lambda
            )

            # ------------------------------------------------------------ flatten valid samples
            valid = mask.any(-1).unsqueeze(0).expand(n_steps, n_patients, n_agents).reshape(-1)
            idx = valid.nonzero().squeeze(1)
            mask_all = mask.unsqueeze(0).expand(n_steps, *mask.shape)
            batch = {
                "obs": obs_buf.reshape(-1, env.obs_dim)[idx],
                "critic_in": cin_buf.reshape(-1, critic_dim)[idx],
                "action": act_buf.reshape(-1, n_act)[idx],
                "mask": mask_all.reshape(-1, n_act)[idx],
                "logprob": logp_buf.reshape(-1)[idx],
                "advantage": advantage.reshape(-1)[idx],
            }
            b_returns, b_values = returns.reshape(-1)[idx], val_buf.reshape(-1)[idx]
            value_norm.update(b_returns)
            batch["target"] = value_norm.normalize(b_returns)

            # ------------------------------------------------------------ update
            stats = ppo_update(actor, critic, optimizer, batch, cfg, gen)
            t_trained = time.perf_counter()

            # ------------------------------------------------------------ select
            val_return = float("nan")
            last = iteration == cfg.num_iterations
            if val_env is not None and (iteration % cfg.validation_every == 0 or last):
                val_return = validate()
                if val_return > selection["best_return"]:
                    best_actor.load_state_dict(actor.state_dict())
                    selection.update(best_iteration=iteration, best_return=val_return)
            elif val_env is None:
                best_actor.load_state_dict(actor.state_dict())
                selection["best_iteration"] = iteration

            # ------------------------------------------------------------ log
            var_returns = b_returns.var(unbiased=False)
            explained = 1.0 - (b_returns - b_values).var(unbiased=False) / var_returns
            now = time.perf_counter()
            row = {
                "iteration": iteration,
                "env_steps": env_steps,
                "return_mean": float(team_return.mean()),
                "return_gain_vs_no_action_mean": (
                    float(gain_vs_none.mean()) if use_reference else float("nan")
                ),
                "serum_b12_gain_pmol_l_mean": float((info["serum_b12_pmol_l"] - serum0).mean()),
                "bray_curtis_mean": float(info["bray_curtis"].mean()),
                **stats,
                "explained_variance": float(explained) if var_returns > 0 else float("nan"),
                "learning_rate": lr,
                "validation_return": val_return,
                "wall_s": wall_before + now - t_start,
                "env_steps_per_s": n_patients * n_steps / max(t_trained - t_iter, 1e-9),
            }
            curve.append(row)
            if ckpt_path is not None and (
                iteration % cfg.checkpoint_every == 0 or iteration == cfg.num_iterations
            ):
                _save_checkpoint(
                    ckpt_path,
                    env_config=env_config,
                    ppo_config=cfg,
                    seed=seed,
                    iteration=iteration,
                    dims=dims,
                    actor=actor,
                    critic=critic,
                    optimizer=optimizer,
                    value_norm=value_norm,
                    generator=gen,
                    curve=curve,
                    best_actor=best_actor,
                    selection=selection,
                )
            if progress is not None:
                progress(row)

    env.close()
    if val_env is not None:
        val_env.close()
    policy = Policy(best_actor, env_config, env.obs_dim)
    return TrainResult(curve, policy, env_config, cfg, seed, ckpt_path, dict(selection))


class _NoActionReference:
    """The env's current batch with no action, stepped alongside the rollout.

    Same patients, parameters, steady state and realised diet and adherence as the env's
    last ``reset`` (the env's own :class:`~biofluxopt.sim.Simulator`, which is functional in
    the state), the env's own reward; :meth:`step` returns the step's team reward
    ``[patients]`` at identity multipliers (``PPOConfig.reward_baseline``).
    """

    def __init__(self, env: B12Env, serum0: Tensor):
        self._env = env
        self._sim = env.simulator
        self._state = env.sim_state
        self._day = env.day
        self._serum = serum0  # the env's own start-of-episode serum (reset's info)
        self._ones = torch.ones(
            env.n_patients,
            env.n_agents,
            env.activity_mask.shape[-1],
            dtype=env.dtype,
            device=env.device,
        )

    def step(self) -> Tensor:
        env, days = self._env, self._env.config.step_days
        with torch.no_grad(), cpu_threads(env.device, env.threads):
            self._state, out = self._sim.step(self._state, self._ones, self._day, days)
            serum = out.observation["serum_b12_pmol_l"]
            reward = env.reward_terms(serum, out.composition, self._serum)["reward"]
        self._day += days
        self._serum = serum
        return reward


# ====================================================================== checkpoints
def _prefixed(tensors: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def _digest(tensors: dict[str, Tensor], metadata: dict[str, str]) -> str:
    """SHA-256 over every tensor (name, dtype, shape, bytes) and metadata entry."""
    h = hashlib.sha256()
    for key in sorted(metadata):
        h.update(f"{key}={metadata[key]}\n".encode())
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous().reshape(-1)
        h.update(f"{key}:{t.dtype}:{tuple(tensors[key].shape)}\n".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _save_checkpoint(
    path: Path,
    *,
    env_config: B12EnvConfig,
    ppo_config: PPOConfig,
    seed: int,
    iteration: int,
    dims: dict,
    actor: Actor,
    critic: Critic,
    optimizer: torch.optim.Optimizer,
    value_norm: RunningMeanStd,
    generator: torch.Generator,
    curve: list[dict],
    best_actor: Actor,
    selection: dict,
) -> None:
    """Write everything a resumed run needs into one safetensors file (atomically)."""
    tensors: dict[str, Tensor] = {}
    for prefix, module in (("actor", actor), ("critic", critic), ("best_actor", best_actor)):
        tensors.update({f"{prefix}.{k}": v for k, v in module.state_dict().items()})
    opt = optimizer.state_dict()
    for pid, pstate in opt["state"].items():
        for name, value in pstate.items():
            tensors[f"optim.state.{pid}.{name}"] = torch.as_tensor(value)
    tensors.update({f"value_norm.{k}": v for k, v in value_norm.state_dict().items()})
    tensors["rng.torch"] = generator.get_state()
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "env_config": json.dumps(_jsonable_config(env_config)),
        "ppo_config": json.dumps(_jsonable_config(ppo_config)),
        "seed": str(seed),
        "iteration": str(iteration),
        "dims": json.dumps(dims),
        "optim.param_groups": json.dumps(opt["param_groups"]),
        "curve": json.dumps(curve),
        "selection": json.dumps(selection),
    }
    metadata["sha256"] = _digest(tensors, metadata)
    atomic_write_bytes(path, safetensors_save(tensors, metadata=metadata))


@dataclass
class Checkpoint:
    """A checkpoint read and checked by :func:`load_checkpoint`.

    Attributes
    ----------
    path : Path
    env_config : B12EnvConfig
    ppo_config : PPOConfig
    seed, iteration : int
        The run's seed and the last iteration completed.
    dims : dict
        ``obs_dim``, ``critic_dim``, ``n_activities``.
    curve : list of dict
        Learning curve up to ``iteration``.
    tensors : dict of str to Tensor
        ``actor.*`` (the last iterate), ``best_actor.*`` (the selected policy, see
        ``PPOConfig.validation_every``), ``critic.*``, ``optim.state.*``, ``value_norm.*``,
        ``rng.torch``.
    param_groups : list of dict
        The optimiser's parameter groups.
    selection : dict
        ``best_iteration`` (0: the initial policy), ``best_return`` and ``initial_return``
        (validation returns; None without validation).
    """

    path: Path
    env_config: B12EnvConfig
    ppo_config: PPOConfig
    seed: int
    iteration: int
    dims: dict
    curve: list[dict]
    tensors: dict[str, Tensor]
    param_groups: list[dict]
    selection: dict = dataclasses.field(default_factory=dict)

    def check_matches(self, env_config: B12EnvConfig, ppo_config: PPOConfig, seed: int, dims):
        """Refuse to resume with other configs, seed or sizes (ConfigError naming the field)."""
        for owner, mine, theirs in (
            ("B12EnvConfig", _jsonable_config(self.env_config), _jsonable_config(env_config)),
            ("PPOConfig", _jsonable_config(self.ppo_config), _jsonable_config(ppo_config)),
        ):
            for key, value in theirs.items():
                if mine.get(key) != value:
                    raise ConfigError(
                        f"the checkpoint was trained with {mine.get(key)!r}, got {value!r}; "
                        "resume with the same configuration or choose another out_dir",
                        source=self.path,
                        field=f"{owner}.{key}",
                    )
        if self.seed != seed:
            raise ConfigError(
                f"the checkpoint was trained with seed {self.seed}, got {seed}",
                source=self.path,
                field="seed",
            )
        if self.dims != dims:
            raise DataError(
                f"the checkpoint's network sizes {self.dims} do not match the env's {dims}",
                source=self.path,
                field="dims",
            )


def _meta_json(metadata: dict, key: str, path: Path, kind: type):
    if key not in metadata:
        raise DataError("missing from the checkpoint's metadata", source=path, field=key)
    try:
        value = json.loads(metadata[key])
    except ValueError as exc:
        raise DataError(f"not valid JSON ({exc})", source=path, field=key) from exc
    if not isinstance(value, kind):
        raise DataError(f"must be a JSON {kind.__name__}", source=path, field=key)
    return value


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and check a checkpoint written by :func:`train`.

    Raises
    ------
    DataError
        The file is missing, not a safetensors file, not a trainer checkpoint, has been
        altered (checksum), or holds an invalid configuration; the message names the file
        and the field (metadata key or tensor name).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("no checkpoint file here", source=path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # safetensors raises its own error types for a damaged file
        raise DataError(
            f"not a readable safetensors checkpoint ({type(exc).__name__}: {exc})",
            source=path,
            field="file",
        ) from exc
    if metadata.get("format") != CHECKPOINT_FORMAT:
        raise DataError(
            f"expected {CHECKPOINT_FORMAT!r}; got {metadata.get('format')!r}",
            source=path,
            field="format",
        )
    stored = metadata.pop("sha256", None)
    if stored != _digest(tensors, metadata):
        raise DataError(
            "checksum mismatch: the file was altered or damaged", source=path, field="sha256"
        )
    env_data = _meta_json(metadata, "env_config", path, dict)
    ppo_data = _meta_json(metadata, "ppo_config", path, dict)
    try:
        env_config = config_from_kwargs(B12EnvConfig(), **env_data)
        ppo_config = ppo_config_from_dict(ppo_data)
    except ConfigError as exc:
        raise DataError(exc.detail, source=path, field=exc.field) from exc
    ints = {}
    for key in ("seed", "iteration"):
        try:
            ints[key] = int(metadata[key])
        except (KeyError, ValueError) as exc:
            raise DataError("missing or not an integer", source=path, field=key) from exc
    for key in ("rng.torch", "value_norm.mean", "value_norm.var", "value_norm.count"):
        if key not in tensors:
            raise DataError("missing tensor", source=path, field=key)
    return Checkpoint(
        path=path,
        env_config=env_config,
        ppo_config=ppo_config,
        seed=ints["seed"],
        iteration=ints["iteration"],
        dims=_meta_json(metadata, "dims", path, dict),
        curve=_meta_json(metadata, "curve", path, list),
        tensors=tensors,
        param_groups=_meta_json(metadata, "optim.param_groups", path, list),
        selection=_meta_json(metadata, "selection", path, dict) if "selection" in metadata else {},
    )


def _load_module(module: nn.Module, tensors: dict[str, Tensor], prefix: str, path: Path):
    """Load ``prefix.*`` tensors into ``module``; a missing, extra or mis-shaped tensor is a
    DataError naming it."""
    stored = _prefixed(tensors, prefix)
    expected = module.state_dict()
    for key, value in expected.items():
        if key not in stored:
            raise DataError("missing tensor", source=path, field=f"{prefix}.{key}")
        if stored[key].shape != value.shape or stored[key].dtype != value.dtype:
            raise DataError(
                f"{stored[key].dtype} {tuple(stored[key].shape)} in the checkpoint, the "
                f"network needs {value.dtype} {tuple(value.shape)}",
                source=path,
                field=f"{prefix}.{key}",
            )
    for key in stored:
        if key not in expected:
            raise DataError("unexpected tensor", source=path, field=f"{prefix}.{key}")
    device = next(iter(expected.values())).device
    module.load_state_dict({k: v.to(device) for k, v in stored.items()})


def _load_optimizer(optimizer: torch.optim.Optimizer, ck: Checkpoint) -> None:
    state: dict[int, dict[str, Tensor]] = {}
    for key, value in _prefixed(ck.tensors, "optim.state").items():
        pid, _, name = key.partition(".")
        state.setdefault(int(pid), {})[name] = value
    try:
        optimizer.load_state_dict({"state": state, "param_groups": ck.param_groups})
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise DataError(
            f"does not fit the optimiser ({exc})", source=ck.path, field="optim.param_groups"
        ) from exc


__all__ = [
    "CHECKPOINT_NAME",
    "Actor",
    "Checkpoint",
    "Critic",
    "PPOConfig",
    "Policy",
    "RunningMeanStd",
    "TrainResult",
    "compute_gae",
    "critic_input",
    "evaluate_policy",
    "load_checkpoint",
    "masked_entropy",
    "masked_log_prob",
    "ppo_config_from_dict",
    "ppo_loss",
    "ppo_update",
    "train",
]
