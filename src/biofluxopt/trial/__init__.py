"""Virtual trials: Bayesian optimisation of the reward weights, paired arms, statistics with
model uncertainty, HyperScore and the report (docs/trial.md)."""
