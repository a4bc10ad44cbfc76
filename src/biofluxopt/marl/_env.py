"""The batched multi-agent B12 environment (``biofluxopt_b12_v1``).

=====================  =================================================================
agents                 the simulator's 10 microbial guilds (``sim.taxon_ids()`` without
                       ``"other"``): propionibacterium, lactobacillus, enterobacteriaceae,
                       pseudomonas, streptomyces, clostridiales, veillonellaceae,
                       bacteroidales, akkermansia, bifidobacterium. An agent absent from a
                       patient's baseline community is masked (``agent_mask``), not deleted.
action                 ``[patients, agents, 4]`` float: natural-log multipliers of the
                       agent's B12 activities (``sim.ACTIVITIES``: de novo synthesis, DMB
                       attachment, uptake, remodelling), clipped to
                       [ln 0.25, ln 4] = [-1.386, 1.386]. Entries the taxon does not have
                       (``activity_mask``) or of absent agents are ignored (identity).
observation            ``[patients, agents, obs_dim]`` float32 in [-10, 10]: the features of
                       ``observe`` (below) followed by the agent's one-hot id (10).
                       global: 41 + 10 = 51; clinical: 32 + 10 = 42; markov_blanket:
                       (mapped nodes of the network) + 1 + 10.
state                  ``[patients, 41]`` float32: the global features (MAPPO's critic).
reward                 ``[patients, agents]`` (simulation dtype), see below.
terminated, truncated  ``[patients]`` bool; episodes end by truncation at ``episode_days``.
=====================  =================================================================

Global features (28): the 10 pools of ``sim.POOLS`` as ``log((x + 1e-3 µg) / (ref + 1e-3
µg))``; serum B12, holoTC, MMA and Hcy as ``log(x / ref)``; the 11 log relative abundances as
``log(max(p, 1e-8)) / log(1e8)`` ∈ [-1, 0]; mean food B12 and supplement taken over the last
step as ``log1p(µg/day)``; the day as ``day / episode_days``. ``ref`` is the reference patient
(calibrated defaults, HMP-mean composition, 4.5 µg/day food B12) at its steady state.
Clinical features (19): the 4 biomarkers, the 11 log abundances of the last stool sample
(taken at day 0 and whenever ``stool_every_days`` have passed), days since that sample /
``stool_every_days``, the 2 diet features and the day.

Reward (team)::

    R = w1 · B12_Gain − w2 · BrayCurtis(p_end, p_baseline)
        − serum_penalty · [serum_end < min(min_serum_b12_pmol_l,
                                           min_serum_fraction · serum_baseline)]
        − shannon_penalty · [H(p_end) < min_shannon_fraction · H(p_baseline)]

with ``B12_Gain = (serum_end − serum_start) / serum_baseline`` (``b12_gain="step_change"``) or
``(serum_end − serum_baseline) / serum_baseline`` (``"above_baseline"``). Worked example
(w1 = w2 = 1): serum 300 → 303 pmol/L over a week from a 300 pmol/L baseline, Bray–Curtis 0.02,
no limit crossed: R = 3/300 − 0.02 = −0.01. With ``reward="difference"`` agent ``i`` receives
``R − R(agent i at identity)``, the counterfactual computed from the same state with the same
noise and the other agents' actions (one extra step simulation per agent).

Version history: v0 (this version).
"""

from __future__ import annotations

import collections
import functools
import hashlib
import math
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from biofluxopt._util import BioFluxOptError, ConfigError
from biofluxopt.sim import (
    ACTION_RANGE,
    ACTIVITIES,
    DAILY_FLUXES,
    POOLS,
    Protocol,
    Simulator,
    action_mask,
    auto_threads,
    bray_curtis,
    cpu_threads,
    default_params,
    default_substeps,
    host_factors,
    simulate,
    steady_state,
    taxon_ids,
)

from ._blanket import (
    DIET_NODES,
    FLUX_NODES,
    HOST_NODES,
    MARKER_NODES,
    POOL_NODES,
    as_digraph,
    markov_blanket,
)
from ._config import B12EnvConfig
from ._patients import Cohort, Patients, draw_patients, hmp_pool, user_pool

#: Versioned environment id (PettingZoo ``metadata["name"]``).
ENV_ID = "biofluxopt_b12_v1"
#: Observation features are clipped to ``[-OBS_BOUND, OBS_BOUND]``.
OBS_BOUND = 10.0
#: Action bounds (natural-log multipliers): ``[ln 0.25, ln 4]``.
ACTION_LOW, ACTION_HIGH = math.log(ACTION_RANGE[0]), math.log(ACTION_RANGE[1])
#: Biomarkers every observation mode reports.
MARKERS = ("serum_b12_pmol_l", "holotc_pmol_l", "mma_umol_l", "hcy_umol_l")
#: Floor of relative abundances in the log-abundance features (absent = -1 after scaling).
ABUNDANCE_FLOOR = 1e-8
#: Added to pools and fluxes before their log ratio (µg, µg/day or mmol/day).
POOL_FLOOR = 1e-3
#: Food B12 of the reference patient that normalises pools, biomarkers and fluxes (µg/day).
REFERENCE_FOOD_UG_PER_DAY = 4.5
MEALS_PER_DAY = 3


@functools.lru_cache(maxsize=1)
def reference_patient() -> dict[str, float]:
    """Pools (µg), biomarkers and one baseline day's fluxes of the reference patient.

    The reference patient has the calibrated default parameters, default host factors, the
    HMP-mean composition and 4.5 µg/day food B12, at its steady state. Its values normalise
    the observation features, the same for every patient and every env.
    """
    params = default_params(1)
    protocol = Protocol(
        host_factors(1),
        torch.full((1, 1), REFERENCE_FOOD_UG_PER_DAY, dtype=torch.float64),
        torch.zeros(1, 1, MEALS_PER_DAY, dtype=torch.float64),
        torch.zeros(1, 1, dtype=torch.float64),
        MEALS_PER_DAY,
    )
    with torch.no_grad():
        state0 = steady_state(params, protocol)
        sol = simulate(params, state0, protocol, days=1, cpu_threads_=1)
    ref = {p: float(state0.pool(p)[0]) for p in POOLS}
    ref.update({k: float(v[0, 0]) for k, v in sol.daily.items() if k not in DAILY_FLUXES})
    ref.update({f"{k}_per_day": float(sol.daily[k][0, 1]) for k in DAILY_FLUXES})
    return ref


#: Steady states of recent patient batches (see :func:`_baseline`).
_BASELINES: collections.OrderedDict[str, tuple] = collections.OrderedDict()
_BASELINE_CACHE_SIZE = 8


def _baseline(pt: Patients, usual: Protocol, substeps: int, threads):
    """Steady state and day-0 run of a batch at its usual intake, reused across envs.

    The steady state depends only on the kinetic parameters, host factors, usual intake and
    composition (not on supplements, probiotics or actions), and costs ~2 s per batch
    whatever its size; a trial runs many arms on the same patients, so the last few batches'
    results are kept, keyed by a digest of exactly those inputs.
    """
    h = hashlib.sha256()
    tensors = [pt.composition, pt.habitual_b12_ug_per_day]
    tensors += [getattr(usual.host, f) for f in usual.host.__dataclass_fields__]
    tensors += [pt.params[k] for k in sorted(pt.params)]
    for t in tensors:
        if isinstance(t, Tensor):
            h.update(str((t.dtype, tuple(t.shape), str(t.device))).encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        else:
            h.update(repr(t).encode())
    h.update(f"{substeps}|{usual.meals_per_day}".encode())
    key = h.hexdigest()
    if key in _BASELINES:
        _BASELINES.move_to_end(key)
        return _BASELINES[key]
    with torch.no_grad():
        state0 = steady_state(pt.params, usual, pt.composition, substeps_per_day=substeps)
        # one day at the usual intake: baseline biomarkers (day 0) and fluxes (day 1)
        day0 = simulate(
            pt.params, state0, usual, days=1, substeps_per_day=substeps, cpu_threads_=threads
        )
    _BASELINES[key] = (state0, day0)
    while len(_BASELINES) > _BASELINE_CACHE_SIZE:
        _BASELINES.popitem(last=False)
    return state0, day0


def shannon(composition: Tensor) -> Tensor:
    """Shannon diversity (natural log) of compositions ``[..., taxa]`` → ``[...]``."""
    p = composition.clamp_min(0.0)
    return -(torch.where(p > 0, p * torch.log(p.clamp_min(1e-300)), 0.0)).sum(-1)


class B12Env:
    """Batched multi-agent B12 environment: ``[patients, agents, ...]`` tensors, CPU or CUDA.

    Parameters
    ----------
    config : B12EnvConfig, optional
        Everything about patients, time, observation and reward (checked here).
    network : networkx.DiGraph or biofluxopt.bn.LearnedNetwork, optional
        The BN whose Markov blankets ``observe="markov_blanket"`` uses (required then,
        refused otherwise).
    compositions : Tensor, shape ``[samples, taxa]``, optional
        Baseline compositions to draw patients from instead of HMP1 (``sim.taxon_ids()``
        order; each sample its own subject, ``split`` is then ignored).

    Attributes
    ----------
    agent_ids : tuple of str, length ``agents``
    activity_mask : Tensor of bool, shape ``[agents, 4]``
        The activities each agent has (``sim.action_mask()``).
    agent_mask : Tensor of bool, shape ``[patients, agents]``
        Agents present in each patient's baseline community (after ``reset``).
    feature_names : tuple of str
        Names of the observation features before the one-hot id (length ``obs_dim - agents``).
    state_names : tuple of str
        Names of the global state features (length ``state_dim``).
    obs_dim, state_dim : int
    blanket_mask : Tensor of bool, shape ``[agents, features]`` or None
        With ``observe="markov_blanket"``: which features each agent sees.
    blanket_unmapped : tuple of str
        Network nodes with no env variable (left out of every blanket).
    patients : Patients or None
        The current batch (subjects, compositions, host factors, hidden parameters, diet).

    Examples
    --------
    >>> env = B12Env(B12EnvConfig(n_patients=4, episode_days=14))  # doctest: +SKIP
    >>> obs, info = env.reset(seed=0)                                 # doctest: +SKIP
    >>> obs.shape                                                     # doctest: +SKIP
    torch.Size([4, 10, 38])
    >>> obs, reward, terminated, truncated, info = env.step(torch.zeros(4, 10, 4))
    """

    metadata: ClassVar[dict] = {"name": ENV_ID}

    def __init__(
        self,
        config: B12EnvConfig | None = None,
        *,
        network: object | None = None,
        compositions: Tensor | None = None,
        cohort: Cohort | None = None,
    ):
        cfg = (config if config is not None else B12EnvConfig()).check()
        self.config = cfg
        try:
            self.device = torch.device(cfg.device)
            torch.zeros(1, device=self.device)
        except (RuntimeError, AssertionError) as exc:
            raise ConfigError(
                f"torch device {cfg.device!r} is not available ({exc})",
                field="B12EnvConfig.device",
            ) from exc
        self.dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
        self.agent_ids = tuple(taxon_ids()[:-1])
        self.n_agents = len(self.agent_ids)
        self.n_patients = cfg.n_patients
        self.activity_mask = action_mask().to(self.device)
        if cohort is not None and compositions is not None:
            raise ConfigError("give compositions or a cohort, not both", field="cohort")
        if cohort is not None and len(cohort) != cfg.n_patients:
            raise ConfigError(
                f"the cohort has {len(cohort)} patients but n_patients = {cfg.n_patients}",
                field="B12EnvConfig.n_patients",
            )
        self.cohort = cohort
        self.pool = (
            user_pool(cohort.composition if cohort is not None else compositions)
            if cohort is not None or compositions is not None
            else hmp_pool(
                cfg.split,
                test_fraction=cfg.test_fraction,
                split_seed=cfg.split_seed,
                region=cfg.hmp_region,
            )
        )
        self.substeps = cfg.substeps_per_day or default_substeps(cfg.supplement_ug_per_day, False)
        self._ref = reference_patient()
        taxa = taxon_ids()
        # the reward is measured against each patient's own baseline (serum B12 and
        # composition at enrolment), so the baseline-relative features make it a function
        # of the observed state
        self.state_names = (
            *POOLS,
            *MARKERS,
            *(f"log_abundance_{t}" for t in taxa),
            "serum_b12_change",
            *(f"log_abundance_change_{t}" for t in taxa),
            "bray_curtis_to_baseline",
            "food_ug_per_day",
            "supplement_ug_per_day",
            "day_fraction",
        )
        self.blanket_mask = None
        self.blanket_nodes: tuple[str, ...] = ()
        self.blanket_unmapped: tuple[str, ...] = ()
        if cfg.observe == "markov_blanket":
            if network is None:
                raise ConfigError(
                    "observe='markov_blanket' needs a network (networkx.DiGraph or "
                    "bn.LearnedNetwork)",
                    field="network",
                )
            self._setup_blanket(as_digraph(network))
        elif network is not None:
            raise ConfigError(
                f"a network is only used with observe='markov_blanket' (observe={cfg.observe!r})",
                field="network",
            )
        if cfg.observe == "global":
            self.feature_names = self.state_names
        elif cfg.observe == "clinical":
            self.feature_names = (
                *MARKERS,
                *(f"stool_log_abundance_{t}" for t in taxa),
                "serum_b12_change",
                *(f"stool_log_abundance_change_{t}" for t in taxa),
                "stool_bray_curtis_to_baseline",
                "days_since_stool_fraction",
                "food_ug_per_day",
                "supplement_ug_per_day",
                "day_fraction",
            )
        self.obs_dim = len(self.feature_names) + self.n_agents
        self.state_dim = len(self.state_names)
        self._one_hot = torch.eye(self.n_agents, dtype=torch.float32, device=self.device)
        self.threads = (
            auto_threads(cfg.n_patients, self.device)
            if cfg.cpu_threads == "auto"
            else cfg.cpu_threads
        )
        self._rng = np.random.default_rng(cfg.seed)
        self._sim: Simulator | None = None
        self._cf_sim: Simulator | None = None
        self.patients: Patients | None = None
        self.agent_mask = torch.zeros(
            self.n_patients, self.n_agents, dtype=torch.bool, device=self.device
        )

    # ------------------------------------------------------------------ observation layout
    def _setup_blanket(self, graph) -> None:
        """Map network nodes to features and build each agent's blanket mask."""
        taxa = taxon_ids()
        mapping = {t: f"log_abundance_{t}" for t in taxa}
        mapping.update(MARKER_NODES)
        mapping.update(POOL_NODES)
        mapping.update({k: f"{v}_per_day" for k, v in FLUX_NODES.items()})
        mapping.update(DIET_NODES)
        mapping.update({k: v for k, (v, _) in HOST_NODES.items()})
        nodes = [str(n) for n in graph.nodes]
        mapped = [n for n in nodes if n in mapping]
        # an agent always sees itself, even if the network dropped its node
        mapped += [t for t in self.agent_ids if t not in mapped]
        self.blanket_nodes = tuple(mapped)
        self.blanket_unmapped = tuple(n for n in nodes if n not in mapping)
        self.feature_names = (*(mapping[n] for n in mapped), "day_fraction")
        mask = torch.zeros(self.n_agents, len(self.feature_names), dtype=torch.bool)
        for i, agent in enumerate(self.agent_ids):
            for node in markov_blanket(graph, agent) | {agent}:
                if node in mapped:
                    mask[i, mapped.index(node)] = True
        mask[:, -1] = True  # the day
        self.blanket_mask = mask.to(self.device)

    def _features(self) -> dict[str, Tensor]:
        """Every named feature of the current step, each ``[patients]`` (normalised)."""
        ref, f = self._ref, {}
        for p in POOLS:
            f[p] = torch.log((self._state.pool(p) + POOL_FLOOR) / (ref[p] + POOL_FLOOR))
        for key, v in self._markers.items():
            f[key] = torch.log(v.clamp_min(1e-12) / ref[key])
        scale = -math.log(ABUNDANCE_FLOOR)
        log_comp = torch.log(self._comp.clamp_min(ABUNDANCE_FLOOR))
        log_stool = torch.log(self._stool.clamp_min(ABUNDANCE_FLOOR))
        for j, t in enumerate(taxon_ids()):
            f[f"log_abundance_{t}"] = log_comp[:, j] / scale
            f[f"stool_log_abundance_{t}"] = log_stool[:, j] / scale
            f[f"log_abundance_change_{t}"] = log_comp[:, j] - self._log_comp0[:, j]
            f[f"stool_log_abundance_change_{t}"] = log_stool[:, j] - self._log_comp0[:, j]
        # Bray–Curtis to baseline ×10 (typical values 0–0.1 → 0–1); the step's reward has
        # computed it already, the stool's when the sample was taken
        f["bray_curtis_to_baseline"] = 10.0 * self._bray_curtis
        f["stool_bray_curtis_to_baseline"] = 10.0 * self._stool_bray_curtis
        # log ratio of serum B12 to the baseline ×10 (typical ±0.1 → ±1)
        f["serum_b12_change"] = 10.0 * torch.log(self._markers["serum_b12_pmol_l"] / self._serum0)
        for key, v in self._fluxes.items():
            f[key] = torch.log((v.clamp_min(0.0) + POOL_FLOOR) / (ref[key] + POOL_FLOOR))
        f["food_ug_per_day"] = torch.log1p(self._food)
        f["supplement_ug_per_day"] = torch.log1p(self._supplement)
        host = self.patients.host
        for _, (field, div) in HOST_NODES.items():
            f[field] = getattr(host, field) / div
        n = self.n_patients
        day = torch.full((n,), self._day / self.config.episode_days, device=self.device)
        f["day_fraction"] = day.to(self.dtype)
        since = (self._day - self._stool_day) / self.config.stool_every_days
        f["days_since_stool_fraction"] = torch.full_like(day, since).to(self.dtype)
        return f

    def _stack(self, f: dict[str, Tensor], names) -> Tensor:
        x = torch.stack([f[k] for k in names], -1).to(torch.float32)
        return torch.nan_to_num(x, nan=0.0).clamp(-OBS_BOUND, OBS_BOUND)

    def _observe(self) -> tuple[Tensor, Tensor]:
        """Observation ``[patients, agents, obs_dim]`` and state ``[patients, state_dim]``."""
        f = self._features()
        state = self._stack(f, self.state_names)
        feats = self._stack(f, self.feature_names)
        n, a = self.n_patients, self.n_agents
        per_agent = feats.unsqueeze(1).expand(n, a, feats.shape[-1])
        if self.blanket_mask is not None:
            per_agent = per_agent * self.blanket_mask.unsqueeze(0)
        one_hot = self._one_hot.unsqueeze(0).expand(n, a, a)
        return torch.cat([per_agent, one_hot], -1), state

    def state(self) -> Tensor:
        """Global state ``[patients, state_dim]`` float32 (the centralised critic's input)."""
        self._require_reset()
        with cpu_threads(self.device, self.threads):
            return self._observe()[1]

    # ------------------------------------------------------------------ reset
    def reset(self, seed: int | None = None) -> tuple[Tensor, dict]:
        """Draw a new batch of patients and start their episodes at day 0.

        Parameters
        ----------
        seed : int, optional
            Re-seeds the env's generator (non-negative integer); without it the generator
            continues (the first reset uses ``config.seed``).

        Returns
        -------
        observation : Tensor, shape ``[patients, agents, obs_dim]``, float32
        info : dict
            ``agent_mask`` ``[patients, agents]``, ``action_mask`` ``[patients, agents, 4]``
            (bool), ``state`` ``[patients, state_dim]``, ``serum_b12_pmol_l`` ``[patients]``
            (baseline), ``subject_id`` (tuple of str).
        """
        with cpu_threads(self.device, self.threads):
            return self._reset(seed)

    def _oral(self, supplement_ug: Tensor) -> Tensor:
        """Oral supplement doses ``[patients, days, meals]`` (µg) from the daily dose taken
        ``[patients, days]``, in the config's meal layout."""
        cfg = self.config
        oral = torch.zeros(
            cfg.n_patients, cfg.episode_days, MEALS_PER_DAY, dtype=self.dtype, device=self.device
        )
        if cfg.supplement_meals == "split":
            oral[:] = (supplement_ug / MEALS_PER_DAY).unsqueeze(-1)
        else:
            oral[:, :, 0] = supplement_ug
        return oral

    def _protocol(self, food_ug_per_day: Tensor, oral_ug: Tensor) -> Protocol:
        """The episode's ``sim.Protocol`` for the current patients with the given intakes."""
        cfg = self.config
        n, days = cfg.n_patients, cfg.episode_days
        probiotic = None
        if any(cfu > 0 for cfu in cfg.probiotic_cfu_per_day.values()):
            taxa = taxon_ids()
            probiotic = torch.zeros(n, days, len(taxa), dtype=self.dtype, device=self.device)
            for taxon, cfu in cfg.probiotic_cfu_per_day.items():
                probiotic[:, :, taxa.index(taxon)] = float(cfu)
        zeros = torch.zeros(n, days, dtype=self.dtype, device=self.device)
        return Protocol(
            self.patients.host,
            food_ug_per_day,
            oral_ug,
            zeros,
            MEALS_PER_DAY,
            probiotic_cfu=probiotic,
        )

    def expected_protocol(self) -> Protocol:
        """The current batch's protocol with every day's intake at its expectation.

        Same patients, host factors and kinetic parameters as the episode, but each day's
        food B12 is the patient's habitual intake (the mean of the daily log-normal draws)
        and each day's supplement dose is ``supplement_ug_per_day × adherence`` instead of the
        realised draws: what a planner who knows the patient but not their future meals and
        missed doses would plan on (``open_loop_oracle(diet="expected")``).

        Returns
        -------
        sim.Protocol
            Days ``[patients, episode_days]``, as :attr:`simulator`'s.
        """
        self._require_reset()
        cfg = self.config
        pt = self.patients
        food = pt.habitual_b12_ug_per_day.unsqueeze(1).expand(-1, cfg.episode_days).clone()
        dose = cfg.supplement_ug_per_day * cfg.adherence
        oral = self._oral(torch.full_like(food, dose))
        return self._protocol(food, oral)

    def _reset(self, seed: int | None) -> tuple[Tensor, dict]:
        cfg = self.config
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
                raise ConfigError(f"must be a non-negative integer; got {seed!r}", field="seed")
            self._rng = np.random.default_rng(int(seed))
        pt = draw_patients(
            self.pool, cfg, self._rng, dtype=self.dtype, device=self.device, cohort=self.cohort
        )
        self.patients = pt
        n, days = cfg.n_patients, cfg.episode_days
        zeros = torch.zeros(n, days, dtype=self.dtype, device=self.device)
        oral = self._oral(pt.supplement_ug)
        protocol = self._protocol(pt.food_ug_per_day, oral)
        usual = Protocol(
            pt.host,
            pt.habitual_b12_ug_per_day.unsqueeze(1),
            oral[:, :1] * 0,
            zeros[:, :1],
            MEALS_PER_DAY,
        )
        threads = self.threads
        state0, day0 = _baseline(pt, usual, self.substeps, threads)
        self._sim = Simulator(
            pt.params,
            protocol,
            state0,
            substeps_per_day=self.substeps,
            cpu_threads_=threads,
            compile=cfg.compile_simulator,
        )
        if cfg.reward == "difference":
            rep = torch.arange(n, device=self.device).repeat(self.n_agents)
            self._cf_sim = Simulator(
                pt.params.index(rep),
                protocol.index(rep),
                state0.index(rep),
                substeps_per_day=self.substeps,
                cpu_threads_=threads,
                compile=cfg.compile_simulator,
            )
        self._state, self._day = self._sim.reset()
        self.agent_mask = pt.composition[:, : self.n_agents] > 0
        self._markers = {k: v[:, 0] for k, v in day0.daily.items() if k not in DAILY_FLUXES}
        self._fluxes = {f"{k}_per_day": day0.daily[k][:, 1] for k in DAILY_FLUXES}
        self._comp = self._state.relative_abundance
        self._stool, self._stool_day = self._comp, 0
        self._food = pt.habitual_b12_ug_per_day
        self._supplement = torch.zeros_like(self._food)
        self._serum0 = self._markers["serum_b12_pmol_l"]
        self._serum = self._serum0
        self._comp0 = self._comp
        self._log_comp0 = torch.log(self._comp0.clamp_min(ABUNDANCE_FLOOR))
        self._bray_curtis = self._stool_bray_curtis = torch.zeros_like(self._serum0)
        self._shannon0 = shannon(self._comp0)
        obs, state = self._observe()
        info = {
            "agent_mask": self.agent_mask,
            "action_mask": self.activity_mask.unsqueeze(0) & self.agent_mask.unsqueeze(-1),
            "state": state,
            "serum_b12_pmol_l": self._serum0,
            "subject_id": pt.subject_id,
        }
        return obs, info

    # ------------------------------------------------------------------ step
    def _require_reset(self) -> None:
        if self._sim is None:
            raise BioFluxOptError("call reset() before step() or state()")

    def multipliers(self, action: Tensor) -> Tensor:
        """Activity multipliers ``[patients, agents, 4]`` of log-multiplier actions: clipped
        to ``[ln 0.25, ln 4]``, identity where the taxon lacks the activity or is absent."""
        allowed = self.activity_mask.unsqueeze(0) & self.agent_mask.unsqueeze(-1)
        logm = action.clamp(ACTION_LOW, ACTION_HIGH)
        return torch.where(allowed, torch.exp(logm), torch.ones_like(logm))

    def _team_reward(
        self, serum_end: Tensor, comp_end: Tensor, serum_start: Tensor
    ) -> dict[str, Tensor]:
        """Reward terms ``[..., patients]`` for end-of-step serum and composition."""
        cfg = self.config
        base = self._serum0
        if cfg.b12_gain == "step_change":
            gain = (serum_end - serum_start) / base
        else:
            gain = (serum_end - base) / base
        bc = bray_curtis(comp_end, self._comp0)
        h = shannon(comp_end)
        limit = torch.clamp(cfg.min_serum_fraction * base, max=cfg.min_serum_b12_pmol_l)
        low_serum = serum_end < limit
        low_shannon = h < cfg.min_shannon_fraction * self._shannon0
        penalty = cfg.serum_penalty * low_serum.to(gain.dtype) + cfg.shannon_penalty * (
            low_shannon.to(gain.dtype)
        )
        reward = cfg.w1 * gain - cfg.w2 * bc - penalty
        return {
            "reward": reward,
            "b12_gain": gain,
            "bray_curtis": bc,
            "shannon": h,
            "penalty": penalty,
        }

    def step(self, action: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, dict]:
        """Hold ``action`` for ``step_days`` days.

        Parameters
        ----------
        action : Tensor, shape ``[patients, agents, 4]``
            Natural-log activity multipliers (clipped to [ln 0.25, ln 4]; masked entries
            ignored).

        Returns
        -------
        observation : Tensor, shape ``[patients, agents, obs_dim]``, float32
        reward : Tensor, shape ``[patients, agents]`` (simulation dtype)
        terminated : Tensor of bool, shape ``[patients]`` (always False: no terminal state)
        truncated : Tensor of bool, shape ``[patients]`` (True at ``episode_days``)
        info : dict
            ``team_reward``, ``b12_gain``, ``bray_curtis``, ``shannon``, ``penalty``, the
            biomarkers ``serum_b12_pmol_l``, ``holotc_pmol_l``, ``mma_umol_l``, ``hcy_umol_l``
            at the end of the step (each ``[patients]``), ``state``
            ``[patients, state_dim]``, ``day`` (int).
        """
        with cpu_threads(self.device, self.threads):
            return self._step(action)

    def _step(self, action: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, dict]:
        self._require_reset()
        cfg = self.config
        if self._day >= cfg.episode_days:
            raise BioFluxOptError("the episode is over (truncated); call reset()")
        n, a = self.n_patients, self.n_agents
        act = torch.as_tensor(action, device=self.device).to(self.dtype)
        if act.shape != (n, a, len(ACTIVITIES)):
            raise ConfigError(
                f"must have shape [patients={n}, agents={a}, activities={len(ACTIVITIES)}]; "
                f"got {tuple(act.shape)}",
                field="action",
            )
        if not bool(torch.isfinite(act).all()):
            raise ConfigError("must be finite", field="action")
        mult = self.multipliers(act)
        day, days = self._day, cfg.step_days
        with torch.no_grad():
            state, out = self._sim.step(self._state, mult, day, days)
            serum = out.observation["serum_b12_pmol_l"]
            terms = self._team_reward(serum, out.composition, self._serum)
            team = terms["reward"]
            if cfg.reward == "difference":
                reward = self._difference_rewards(mult, team, day, days)
            else:
                reward = team.unsqueeze(-1).expand(n, a)
        # advance
        self._state, self._day = state, day + days
        self._markers = out.observation
        self._fluxes = {f"{k}_per_day": v / days for k, v in out.fluxes.items()}
        self._comp = out.composition
        self._bray_curtis = terms["bray_curtis"]
        if self._day - self._stool_day >= cfg.stool_every_days:
            self._stool, self._stool_day = self._comp, self._day
            self._stool_bray_curtis = terms["bray_curtis"]
        self._food = self.patients.food_ug_per_day[:, day : day + days].mean(1)
        self._supplement = self.patients.supplement_ug[:, day : day + days].mean(1)
        self._serum = serum
        obs, state_vec = self._observe()
        truncated = torch.full((n,), self._day >= cfg.episode_days, device=self.device)
        terminated = torch.zeros(n, dtype=torch.bool, device=self.device)
        info = {
            "team_reward": team,
            **{k: v for k, v in terms.items() if k != "reward"},
            **{m: out.observation[m] for m in MARKERS},
            "state": state_vec,
            "day": self._day,
        }
        return obs, reward, terminated, truncated, info

    def _difference_rewards(self, mult: Tensor, team: Tensor, day: int, days: int) -> Tensor:
        """``[patients, agents]``: team reward minus the team reward with the agent at identity.

        All counterfactuals are one batch of ``agents × patients`` (block ``k`` = agent ``k``
        at identity). An agent whose action is already the identity (or is masked) gets 0.
        """
        n, a = self.n_patients, self.n_agents
        rep = torch.arange(n, device=self.device).repeat(a)
        eye = torch.eye(a, dtype=torch.bool, device=self.device)
        cf_mult = mult.unsqueeze(0).expand(a, n, a, mult.shape[-1])
        cf_mult = torch.where(eye[:, None, :, None], torch.ones_like(cf_mult), cf_mult)
        _, cf = self._cf_sim.step(self._state.index(rep), cf_mult.reshape(a * n, a, -1), day, days)
        cf_serum = cf.observation["serum_b12_pmol_l"].view(a, n)
        cf_comp = cf.composition.view(a, n, -1)
        cf_team = self._team_reward(cf_serum, cf_comp, self._serum.unsqueeze(0))["reward"]
        diff = (team.unsqueeze(0) - cf_team).T  # [patients, agents]
        active = (mult != 1).any(-1)
        return torch.where(active, diff, torch.zeros_like(diff))

    def reward_terms(
        self, serum_end: Tensor, composition_end: Tensor, serum_start: Tensor
    ) -> dict[str, Tensor]:
        """The team reward and its terms for end-of-step values of the current batch.

        The same function :meth:`step` uses, for replaying the batch outside the env
        (baselines, the open-loop oracle); differentiable except for the penalty indicators.

        Parameters
        ----------
        serum_end, serum_start : Tensor, shape ``[..., patients]``
            Serum B12 (pmol/L) at the end and at the start of the step.
        composition_end : Tensor, shape ``[..., patients, taxa]``
            Relative abundances at the end of the step.

        Returns
        -------
        dict of str to Tensor, each ``[..., patients]``
            ``reward``, ``b12_gain``, ``bray_curtis``, ``shannon``, ``penalty``.
        """
        self._require_reset()
        return self._team_reward(serum_end, composition_end, serum_start)

    @property
    def simulator(self) -> Simulator:
        """The ``sim.Simulator`` of the current batch (built by ``reset``), e.g. to step the
        same patients outside the env (baselines, benchmarks)."""
        self._require_reset()
        return self._sim

    @property
    def sim_state(self):
        """The current ``sim.State`` of the batch (``[patients, ...]``)."""
        self._require_reset()
        return self._state

    @property
    def day(self) -> int:
        """Protocol day the next step starts at (0 after ``reset``)."""
        return self._day if self._sim is not None else 0

    def close(self) -> None:
        """Release the simulator (a later ``reset`` builds a new one)."""
        self._sim = self._cf_sim = None


__all__ = [
    "ACTION_HIGH",
    "ACTION_LOW",
    "ENV_ID",
    "MARKERS",
    "OBS_BOUND",
    "B12Env",
    "reference_patient",
    "shannon",
]
