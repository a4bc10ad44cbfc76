"""Virtual trials: Bayesian optimisation of the reward weights, paired arms on a virtual cohort,
statistics with model uncertainty, HyperScore and the report (docs/trial.md).

:func:`run_trial` runs the whole pipeline into an output directory, stage by stage (cohort →
tune → baselines → arms → uncertainty → report), reusing the stages whose inputs did not
change; :func:`run_tune` runs the first two (``biofluxopt tune``).
"""

from ._arms import OUTCOMES, ArmResult, WeightObjective, arm_config, paired_gain_pct, run_arm
from ._cohort import HOST_COLUMNS, CohortTables
from ._config import (
    ARMS,
    DEFAULT_UNCERTAIN_PARAMETERS,
    PRESETS,
    TABLES,
    ArmsConfig,
    CohortConfig,
    HyperScoreConfig,
    StatisticsConfig,
    TrialConfig,
    UncertaintyConfig,
    load_trial_config,
    preset_path,
)
from ._html import Markup, Report
from ._hyperscore import HyperScore, hyperscore, performance_value, score, seed_example_check
from ._pipeline import STAGES, run_trial, run_tune
from ._report import SEED_CLAIM_PCT
from ._stats import (
    PairedComparison,
    RegressionResult,
    arm_summary,
    compare_paired,
    ensemble_band,
    gain_regression,
    subgroup_records,
    subgroup_table,
)
from ._store import StageStore
from ._tune import TuneConfig, TuneResult, pareto_figure, run_study, tune_config_from_dict

__all__ = [
    "ARMS",
    "DEFAULT_UNCERTAIN_PARAMETERS",
    "HOST_COLUMNS",
    "OUTCOMES",
    "PRESETS",
    "SEED_CLAIM_PCT",
    "STAGES",
    "TABLES",
    "ArmResult",
    "ArmsConfig",
    "CohortConfig",
    "CohortTables",
    "HyperScore",
    "HyperScoreConfig",
    "Markup",
    "PairedComparison",
    "RegressionResult",
    "Report",
    "StageStore",
    "StatisticsConfig",
    "TrialConfig",
    "TuneConfig",
    "TuneResult",
    "UncertaintyConfig",
    "WeightObjective",
    "arm_config",
    "arm_summary",
    "compare_paired",
    "ensemble_band",
    "gain_regression",
    "hyperscore",
    "load_trial_config",
    "paired_gain_pct",
    "pareto_figure",
    "performance_value",
    "preset_path",
    "run_arm",
    "run_study",
    "run_trial",
    "run_tune",
    "score",
    "seed_example_check",
    "subgroup_records",
    "subgroup_table",
    "tune_config_from_dict",
]
