"""PettingZoo ``ParallelEnv`` for one patient: a thin adapter over :class:`B12Env`.

Version history: v0 (this version).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from gymnasium import spaces
from pettingzoo import ParallelEnv

from biofluxopt._util import ConfigError
from biofluxopt.sim import ACTIVITIES

from ._config import config_from_kwargs
from ._env import ACTION_HIGH, ACTION_LOW, ENV_ID, OBS_BOUND, B12Env


class B12ParallelEnv(ParallelEnv):
    """One patient of :class:`B12Env` behind PettingZoo's ``ParallelEnv`` API.

    Build it with :func:`make_parallel_env`. ``reset(seed=...)`` draws a new patient; the same
    seed gives the same patient, observations and rewards.

    =====================  ================================================================
    env id                 ``biofluxopt_b12_v1`` (``metadata["name"]``)
    possible_agents        the 10 guilds of ``sim.taxon_ids()`` without ``"other"``
    agents                 those present in the patient's baseline community (absent guilds
                           never act; they are not in ``agents``)
    action_space(agent)    ``Box(ln 0.25, ln 4, shape=(k,), float32)``: natural-log
                           multipliers of the agent's own activities, in ``sim.ACTIVITIES``
                           order: k = 2 for propionibacterium, lactobacillus, pseudomonas,
                           streptomyces (synthesis, DMB); 3 for enterobacteriaceae (synthesis,
                           DMB, uptake) and clostridiales (synthesis, DMB, remodelling); 2 for
                           bacteroidales (uptake, remodelling); 1 for veillonellaceae,
                           akkermansia, bifidobacterium (uptake). Range [-1.386, 1.386].
    observation_space      ``Box(-10, 10, shape=(obs_dim,), float32)``; obs_dim = 51
                           (``observe="global"``), 42 (``"clinical"``) or mapped blanket
                           nodes + 11 (``"markov_blanket"``); see :class:`B12Env`.
    state()                ``float32 [41]``: the global features.
    reward                 float per agent: the team reward (or difference reward), see
                           :mod:`biofluxopt.marl` / docs/marl.md.
    episode                ``episode_days / step_days`` steps (default 52 weekly steps);
                           every agent is truncated together at the end.
    =====================  ================================================================
    """

    metadata: ClassVar[dict] = {"name": ENV_ID, "render_modes": [], "is_parallelizable": True}

    def __init__(self, env: B12Env):
        if env.n_patients != 1:
            raise ConfigError(
                f"the PettingZoo adapter steps one patient; got n_patients={env.n_patients}",
                field="B12EnvConfig.n_patients",
            )
        self.env = env
        self.render_mode = None
        self.possible_agents = list(env.agent_ids)
        self.agents: list[str] = []
        mask = env.activity_mask.cpu()
        self._activities = {
            a: torch.nonzero(mask[i]).flatten().tolist() for i, a in enumerate(env.agent_ids)
        }
        self._index = {a: i for i, a in enumerate(env.agent_ids)}
        obs_space = spaces.Box(-OBS_BOUND, OBS_BOUND, shape=(env.obs_dim,), dtype=np.float32)
        self.observation_spaces = dict.fromkeys(self.possible_agents, obs_space)
        self.action_spaces = {
            a: spaces.Box(
                ACTION_LOW, ACTION_HIGH, shape=(len(self._activities[a]),), dtype=np.float32
            )
            for a in self.possible_agents
        }
        self.state_space = spaces.Box(
            -OBS_BOUND, OBS_BOUND, shape=(env.state_dim,), dtype=np.float32
        )

    def observation_space(self, agent: str) -> spaces.Box:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Box:
        return self.action_spaces[agent]

    def activities(self, agent: str) -> tuple[str, ...]:
        """Names of the entries of ``agent``'s action (``sim.ACTIVITIES`` order)."""
        return tuple(ACTIVITIES[j] for j in self._activities[agent])

    def _obs(self, obs: torch.Tensor) -> dict[str, np.ndarray]:
        o = obs[0].cpu().numpy()
        return {a: o[self._index[a]].copy() for a in self.agents}

    def reset(self, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed)
        present = info["agent_mask"][0].cpu().tolist()
        self.agents = [a for a, p in zip(self.possible_agents, present, strict=True) if p]
        subject = info["subject_id"][0]
        serum = float(info["serum_b12_pmol_l"][0])
        infos = {
            a: {"subject_id": subject, "serum_b12_pmol_l": serum, "activities": self.activities(a)}
            for a in self.agents
        }
        return self._obs(obs), infos

    def step(self, actions: dict[str, np.ndarray]):
        env = self.env
        act = torch.zeros(1, env.n_agents, len(ACTIVITIES), dtype=env.dtype, device=env.device)
        for agent, value in actions.items():
            if agent not in self._index:
                raise ConfigError(f"unknown agent (allowed: {self.possible_agents})", field=agent)
            v = torch.as_tensor(np.asarray(value, dtype=np.float64).reshape(-1))
            cols = self._activities[agent]
            if v.numel() != len(cols):
                raise ConfigError(
                    f"action must have {len(cols)} entries {self.activities(agent)}; "
                    f"got {v.numel()}",
                    field=agent,
                )
            act[0, self._index[agent], cols] = v.to(dtype=env.dtype, device=env.device)
        obs, reward, terminated, truncated, info = env.step(act)
        agents = self.agents
        observations = self._obs(obs)
        r = reward[0].cpu().tolist()
        rewards = {a: float(r[self._index[a]]) for a in agents}
        terms = dict.fromkeys(agents, bool(terminated[0]))
        truncs = dict.fromkeys(agents, bool(truncated[0]))
        common = {
            "team_reward": float(info["team_reward"][0]),
            "b12_gain": float(info["b12_gain"][0]),
            "bray_curtis": float(info["bray_curtis"][0]),
            "serum_b12_pmol_l": float(info["serum_b12_pmol_l"][0]),
            "day": int(info["day"]),
        }
        infos = {a: dict(common) for a in agents}
        if bool(terminated[0]) or bool(truncated[0]):
            self.agents = []
        return observations, rewards, terms, truncs, infos

    def state(self) -> np.ndarray:
        return self.env.state()[0].cpu().numpy()

    def render(self) -> None:
        return None

    def close(self) -> None:
        self.env.close()


def make_parallel_env(*, network: object | None = None, **kwargs) -> B12ParallelEnv:
    """A PettingZoo ``ParallelEnv`` (``biofluxopt_b12_v1``) for one patient.

    Parameters
    ----------
    network : networkx.DiGraph or bn.LearnedNetwork, optional
        For ``observe="markov_blanket"``.
    **kwargs
        Any field of :class:`~biofluxopt.marl.B12EnvConfig` (``n_patients`` must be 1 if
        given), e.g. ``split="test"``, ``step_days=7``, ``episode_days=364``, ``w1=1.0``,
        ``observe="clinical"``, ``reward="difference"``.

    Returns
    -------
    B12ParallelEnv
        Observations, actions and rewards as in the table of :class:`B12ParallelEnv`
        (also in docs/marl.md).

    Raises
    ------
    ConfigError
        An unknown keyword or an invalid value, naming the field.
    """
    kwargs.setdefault("n_patients", 1)
    config = config_from_kwargs(**kwargs)
    return B12ParallelEnv(B12Env(config, network=network))


__all__ = ["B12ParallelEnv", "make_parallel_env"]
