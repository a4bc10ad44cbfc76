"""Multi-agent reinforcement learning on the B12 simulator: a batched tensor environment
(:class:`B12Env`, ``[patients, agents, ...]`` on CPU or CUDA) and a PettingZoo
``ParallelEnv`` for one patient (:func:`make_parallel_env`), env id ``biofluxopt_b12_v1``.

Each of the simulator's 10 microbial guilds is an agent that scales its own B12 activities
(log-multipliers in [ln 0.25, ln 4]); the reward is ``w1 · B12_Gain − w2 · Bray–Curtis`` with
penalties past configurable serum B12 and Shannon limits (docs/marl.md). :func:`train` runs
MAPPO or IPPO on it (:class:`PPOConfig`), with resumable safetensors checkpoints.
"""

from ._baselines import (
    BaselineConfig,
    BaselineReport,
    ConstantPolicy,
    NoActionPolicy,
    OpenLoopPolicy,
    OracleResult,
    RandomPolicy,
    baseline_config_from_dict,
    check_oracle_memory,
    compare_to_baselines,
    expected_diet_fraction,
    open_loop_oracle,
    oracle_memory_bytes,
    search_constant_action,
    yardsticks,
)
from ._blanket import as_digraph, markov_blanket
from ._config import HOST_LEVELS, B12EnvConfig, config_from_kwargs
from ._env import (
    ACTION_HIGH,
    ACTION_LOW,
    ENV_ID,
    MARKERS,
    OBS_BOUND,
    B12Env,
    reference_patient,
    shannon,
)
from ._patients import Cohort, CompositionPool, Patients, draw_patients, hmp_pool, user_pool
from ._pettingzoo import B12ParallelEnv, make_parallel_env
from ._ppo import (
    CHECKPOINT_NAME,
    Checkpoint,
    Policy,
    PPOConfig,
    TrainResult,
    compute_gae,
    evaluate_policy,
    load_checkpoint,
    ppo_config_from_dict,
    ppo_loss,
    train,
)
from ._workflow import (
    PRESETS,
    RunConfig,
    checkpoint_file,
    evaluate_workflow,
    load_run_config,
    train_workflow,
)

__all__ = [
    "ACTION_HIGH",
    "ACTION_LOW",
    "CHECKPOINT_NAME",
    "ENV_ID",
    "HOST_LEVELS",
    "MARKERS",
    "OBS_BOUND",
    "PRESETS",
    "B12Env",
    "B12EnvConfig",
    "B12ParallelEnv",
    "BaselineConfig",
    "BaselineReport",
    "Checkpoint",
    "Cohort",
    "CompositionPool",
    "ConstantPolicy",
    "NoActionPolicy",
    "OpenLoopPolicy",
    "OracleResult",
    "PPOConfig",
    "Patients",
    "Policy",
    "RandomPolicy",
    "RunConfig",
    "TrainResult",
    "as_digraph",
    "baseline_config_from_dict",
    "check_oracle_memory",
    "checkpoint_file",
    "compare_to_baselines",
    "compute_gae",
    "config_from_kwargs",
    "draw_patients",
    "evaluate_policy",
    "evaluate_workflow",
    "expected_diet_fraction",
    "hmp_pool",
    "load_checkpoint",
    "load_run_config",
    "make_parallel_env",
    "markov_blanket",
    "open_loop_oracle",
    "oracle_memory_bytes",
    "ppo_config_from_dict",
    "ppo_loss",
    "reference_patient",
    "search_constant_action",
    "shannon",
    "train",
    "train_workflow",
    "user_pool",
    "yardsticks",
]
