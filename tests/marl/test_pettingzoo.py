"""The PettingZoo adapter passes PettingZoo's own conformance and seed tests."""

from __future__ import annotations

import numpy as np
import pytest
from pettingzoo import ParallelEnv
from pettingzoo.test import parallel_api_test, parallel_seed_test

from biofluxopt._util import ConfigError
from biofluxopt.knowledge import load_sim_causal_graph
from biofluxopt.marl import ENV_ID, make_parallel_env

KW = {"episode_days": 14, "step_days": 7, "cpu_threads": 1}


# absent guilds are never in ``agents``, so they never finish: PettingZoo warns, by design
pytestmark = pytest.mark.filterwarnings("ignore:No agents present:UserWarning")


def test_parallel_api():
    env = make_parallel_env(**KW)
    assert isinstance(env, ParallelEnv)
    assert env.metadata["name"] == ENV_ID == "biofluxopt_b12_v1"
    parallel_api_test(env, num_cycles=4)


def test_parallel_seed_clinical_difference():
    """Seeding, on the options with the most moving parts (held stool samples and the
    counterfactual difference rewards)."""
    parallel_seed_test(
        lambda: make_parallel_env(**KW, observe="clinical", reward="difference"), num_cycles=3
    )


def test_spaces_and_episode():
    env = make_parallel_env(**KW)
    obs, _ = env.reset(seed=1)
    assert set(env.agents) <= set(env.possible_agents) and len(env.possible_agents) == 10
    assert "bacteroidales" in env.agents
    assert env.action_space("bacteroidales").shape == (2,)  # uptake, remodelling
    assert env.activities("bacteroidales") == ("uptake", "remodelling")
    assert env.action_space("clostridiales").shape == (3,)
    assert env.action_space("akkermansia").shape == (1,)
    for a in env.agents:
        assert env.observation_space(a).contains(obs[a])
        assert obs[a].shape == (51,)
    assert env.state().shape == (41,)
    steps = 0
    while env.agents:
        actions = {a: env.action_space(a).high for a in env.agents}
        obs, rew, _, trunc, _ = env.step(actions)
        steps += 1
        assert all(isinstance(r, float) and np.isfinite(r) for r in rew.values())
    assert steps == 2 and all(trunc.values())


def test_markov_blanket_adapter():
    env = make_parallel_env(**KW, observe="markov_blanket", network=load_sim_causal_graph())
    obs, _ = env.reset(seed=0)
    n = env.env.obs_dim
    assert all(o.shape == (n,) for o in obs.values())


def test_bad_kwargs_name_the_field():
    with pytest.raises(ConfigError, match=r"B12EnvConfig\.episode_length"):
        make_parallel_env(episode_length=10)
    with pytest.raises(ConfigError, match="n_patients"):
        make_parallel_env(n_patients=4, **KW)
    env = make_parallel_env(**KW)
    env.reset(seed=0)
    with pytest.raises(ConfigError) as err:
        env.step({"bacteroidales": np.zeros(3, dtype=np.float32)})
    assert err.value.field == "bacteroidales"
