"""The MAPPO/IPPO trainer: GAE and the clipped loss (against a plain loop and TorchRL), masks,
value normalisation, determinism, checkpoints and resume, evaluation, bad configs."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_save

from biofluxopt._util import ConfigError, DataError
from biofluxopt.marl import B12Env, B12EnvConfig
from biofluxopt.marl._baselines import NoActionPolicy
from biofluxopt.marl._ppo import (
    CHECKPOINT_NAME,
    TIMING_COLUMNS,
    Actor,
    Critic,
    Policy,
    PPOConfig,
    RunningMeanStd,
    _derived_seed,
    _digest,
    compute_gae,
    critic_input,
    evaluate_policy,
    load_checkpoint,
    masked_log_prob,
    ppo_config_from_dict,
    ppo_loss,
    ppo_update,
    train,
)

TINY_ENV = B12EnvConfig(n_patients=8, episode_days=28, step_days=7, cpu_threads=1)
TINY_PPO = PPOConfig(num_iterations=3, update_epochs=2, num_minibatches=4, checkpoint_every=1)
CURVE_COLUMNS = {
    "iteration",
    "env_steps",
    "return_mean",
    "return_gain_vs_no_action_mean",
    "serum_b12_gain_pmol_l_mean",
    "bray_curtis_mean",
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "clipfrac",
    "explained_variance",
    "learning_rate",
    "epochs",
    "validation_return",
    "wall_s",
    "env_steps_per_s",
}


def _untimed(curve: list[dict]) -> list[dict]:
    """Curve rows without the timing columns; NaN made comparable."""
    return [
        {
            k: ("nan" if isinstance(v, float) and math.isnan(v) else v)
            for k, v in row.items()
            if k not in TIMING_COLUMNS
        }
        for row in curve
    ]


def _same_params(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def run_a(tmp_path_factory):
    """The reference run: 3 iterations, seed 0, a checkpoint after every iteration."""
    out = tmp_path_factory.mktemp("run_a")
    return train(TINY_ENV, TINY_PPO, seed=0, out_dir=out), out


# ---------------------------------------------------------------------- pieces
def _batch(n: int = 96, obs_dim: int = 12, critic_dim: int = 7, seed: int = 0):
    """A synthetic minibatch: a fresh actor's actions, behaviour log-probs perturbed so that
    some ratios fall outside the clip range, random advantages and targets."""
    g = torch.Generator().manual_seed(seed)
    cfg = PPOConfig(ent_coef=0.01, init_log_std=-1.0)
    actor, critic = Actor(obs_dim, 4, cfg, g), Critic(critic_dim, cfg, g)
    with torch.no_grad():  # the output layer starts at zero; move it so every layer has a grad
        actor.net[-1].weight.normal_(0.0, 0.01, generator=g)
    obs = torch.randn(n, obs_dim, generator=g)
    mask = torch.rand(n, 4, generator=g) < 0.6
    mask[: n // 6] = False  # absent agents: no active activity
    mask[n // 6 :, 0] = True
    with torch.no_grad():
        mean, std = actor(obs)
        action = torch.where(mask, mean + std * torch.randn(n, 4, generator=g), 0.0)
        logprob = masked_log_prob(mean, std, action, mask) + 0.3 * torch.randn(n, generator=g)
    batch = {
        "obs": obs,
        "critic_in": torch.randn(n, critic_dim, generator=g),
        "action": action,
        "mask": mask,
        "logprob": logprob,
        "advantage": torch.randn(n, generator=g),
        "target": torch.randn(n, generator=g),
    }
    return actor, critic, batch, cfg


def test_gae_matches_a_plain_loop():
    g = torch.Generator().manual_seed(1)
    t, p, a = 9, 3, 2
    reward, value, next_value = (
        torch.randn(t, p, a, generator=g, dtype=torch.float64) for _ in "123"
    )
    done = torch.rand(t, p, a, generator=g) < 0.25
    terminated = done & (torch.rand(t, p, a, generator=g) < 0.5)
    gamma, lam = 0.97, 0.9
    adv, ret = compute_gae(reward, value, next_value, done, terminated, gamma, lam)
    for i in range(p):
        for j in range(a):
            last = 0.0
            for s in reversed(range(t)):
                boot = 0.0 if terminated[s, i, j] else float(next_value[s, i, j])
                delta = float(reward[s, i, j]) + gamma * boot - float(value[s, i, j])
                last = delta + gamma * lam * (0.0 if done[s, i, j] else last)
                assert adv[s, i, j].item() == pytest.approx(last, abs=1e-12)
    assert torch.equal(ret, adv + value)


def test_gae_matches_torchrl():
    pytest.importorskip("torchrl")
    from torchrl.objectives.value.functional import generalized_advantage_estimate

    g = torch.Generator().manual_seed(2)
    t, p, a = 12, 5, 3
    reward, value, next_value = (torch.randn(t, p, a, generator=g) for _ in "123")
    done = torch.rand(t, p, a, generator=g) < 0.2
    done[-1] = True
    terminated = done & (torch.rand(t, p, a, generator=g) < 0.5)
    adv, ret = compute_gae(reward, value, next_value, done, terminated, 0.99, 0.95)

    def to_trl(x):  # [T, P, A] -> [P, A, T, 1] (TorchRL: time at dim -2)
        return x.permute(1, 2, 0).unsqueeze(-1)

    adv_t, ret_t = generalized_advantage_estimate(
        0.99,
        0.95,
        to_trl(value),
        to_trl(next_value),
        to_trl(reward),
        to_trl(done),
        to_trl(terminated),
    )
    assert torch.allclose(to_trl(adv), adv_t, atol=1e-6, rtol=0)
    assert torch.allclose(to_trl(ret), ret_t, atol=1e-6, rtol=0)


def test_clipped_loss_matches_torchrl():
    pytest.importorskip("torchrl")
    from tensordict import TensorDict
    from tensordict.nn import TensorDictModule
    from torchrl.modules import IndependentNormal, ProbabilisticActor
    from torchrl.objectives import ClipPPOLoss

    actor, critic, batch, cfg = _batch()
    batch["mask"] = torch.ones_like(batch["mask"])  # TorchRL has no per-activity mask
    with torch.no_grad():
        mean, std = actor(batch["obs"])
        batch["logprob"] = masked_log_prob(mean, std, batch["action"], batch["mask"]) + 0.3 * (
            torch.randn(len(mean), generator=torch.Generator().manual_seed(5))
        )
    loss, stats = ppo_loss(actor, critic, batch, cfg)
    assert 0 < stats["clipfrac"] < 1  # the clip is exercised
    mine = stats["policy_loss"], -cfg.ent_coef * stats["entropy"]
    actor.zero_grad()
    loss.backward()
    grads = [p.grad.clone() for p in actor.parameters()]

    module = TensorDictModule(actor, in_keys=["observation"], out_keys=["loc", "scale"])
    policy = ProbabilisticActor(
        module, in_keys=["loc", "scale"], distribution_class=IndependentNormal
    )
    reference = ClipPPOLoss(
        policy,
        None,
        clip_epsilon=cfg.clip_coef,
        entropy_coeff=cfg.ent_coef,
        normalize_advantage=True,
    )
    reference.set_keys(sample_log_prob="sample_log_prob")
    td = TensorDict(
        {
            "observation": batch["obs"],
            "action": batch["action"],
            "sample_log_prob": batch["logprob"],
            "advantage": batch["advantage"].unsqueeze(-1),
        },
        batch_size=[len(batch["obs"])],
    )
    out = reference(td)
    assert abs(float(out["loss_objective"].detach()) - float(mine[0])) < 1e-6
    assert abs(float(out["loss_entropy"].detach()) - float(mine[1])) < 1e-6
    assert abs(float(out["clip_fraction"]) - float(stats["clipfrac"])) < 1e-6
    actor.zero_grad()
    (out["loss_objective"] + out["loss_entropy"]).backward()
    for mine_grad, p in zip(grads, actor.parameters(), strict=True):
        assert torch.allclose(mine_grad, p.grad, atol=1e-6, rtol=1e-5)


def test_masked_entries_and_absent_agents_do_not_change_the_loss():
    actor, critic, batch, cfg = _batch()
    loss, _ = ppo_loss(actor, critic, batch, cfg)
    loss.backward()
    grads = [p.grad.clone() for p in [*actor.parameters(), *critic.parameters()]]

    g = torch.Generator().manual_seed(9)
    mask = batch["mask"]
    absent = ~mask.any(-1)
    assert absent.any() and (~mask & ~absent.unsqueeze(-1)).any()
    junk = dict(batch)
    junk["action"] = torch.where(mask, batch["action"], 50 * torch.randn(mask.shape, generator=g))
    for key in ("logprob", "advantage", "target"):
        noise = 1e3 * torch.randn(batch[key].shape, generator=g)
        junk[key] = torch.where(absent, noise, batch[key])
    for key in ("obs", "critic_in"):
        noise = 1e3 * torch.randn(batch[key].shape, generator=g)
        junk[key] = torch.where(absent.unsqueeze(-1), noise, batch[key])
    actor.zero_grad()
    critic.zero_grad()
    loss2, _ = ppo_loss(actor, critic, junk, cfg)
    loss2.backward()
    assert torch.equal(loss, loss2)
    for a, p in zip(grads, [*actor.parameters(), *critic.parameters()], strict=True):
        assert torch.equal(a, p.grad)
    # an *active* entry does matter (the test can fail)
    moved = dict(batch)
    moved["action"] = batch["action"] + mask.to(torch.float32)
    assert not torch.equal(ppo_loss(actor, critic, moved, cfg)[0], loss)


def test_update_improves_the_clipped_objective_on_a_fixed_batch():
    actor, critic, batch, cfg = _batch(n=256, seed=3)
    valid = batch["mask"].any(-1)
    batch = {k: v[valid] for k, v in batch.items()}
    with torch.no_grad():  # behaviour policy = current policy: ratio 1
        mean, std = actor(batch["obs"])
        batch["logprob"] = masked_log_prob(mean, std, batch["action"], batch["mask"])
    before = ppo_loss(actor, critic, batch, cfg)[1]
    assert abs(float(before["policy_loss"])) < 1e-6  # normalised advantages have mean 0
    optimizer = torch.optim.Adam([*actor.parameters(), *critic.parameters()], lr=3e-3)
    ppo_update(actor, critic, optimizer, batch, cfg.replace(update_epochs=8), torch.Generator())
    after = ppo_loss(actor, critic, batch, cfg)[1]
    assert float(after["policy_loss"]) < -0.02
    assert float(after["value_loss"]) < float(before["value_loss"])


def test_target_kl_stops_the_epochs_early():
    actor, critic, batch, cfg = _batch(n=128, seed=6)
    valid = batch["mask"].any(-1)
    batch = {k: v[valid] for k, v in batch.items()}
    optimizer = torch.optim.Adam([*actor.parameters(), *critic.parameters()], lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    full = ppo_update(actor, critic, optimizer, batch, cfg.replace(update_epochs=5), gen)
    assert full["epochs"] == 5
    early = cfg.replace(update_epochs=5, target_kl=1e-9)
    assert ppo_update(actor, critic, optimizer, batch, early, gen)["epochs"] == 1


def test_running_mean_std_matches_batch_statistics():
    g = torch.Generator().manual_seed(4)
    chunks = [3 + 2 * torch.randn(n, generator=g, dtype=torch.float64) for n in (50, 7, 300)]
    rms = RunningMeanStd()
    for c in chunks:
        rms.update(c)
    x = torch.cat(chunks)
    assert float(rms.mean) == pytest.approx(float(x.mean()), rel=1e-5)
    assert float(rms.var) == pytest.approx(float(x.var(unbiased=False)), rel=1e-5)
    y = torch.randn(10, dtype=torch.float64, generator=g)
    assert torch.allclose(rms.denormalize(rms.normalize(y)), y, atol=1e-12)
    off = RunningMeanStd(enabled=False)
    off.update(x)
    assert torch.equal(off.normalize(y), y) and float(off.mean) == 0.0


def test_critic_input_shapes():
    obs = torch.randn(5, 10, 38)
    state = torch.randn(5, 28)
    mappo = critic_input("mappo", obs, state, 10)
    assert mappo.shape == (5, 10, 38)  # 28 state features + 10 one-hot
    assert torch.equal(mappo[:, 3, :28], state) and torch.equal(mappo[:, :, 28:], obs[..., -10:])
    assert critic_input("ippo", obs, state, 10) is obs


# ---------------------------------------------------------------------- configs
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"algo": "sac"}, "algo"),
        ({"num_iterations": 0}, "num_iterations"),
        ({"clip_coef": 0.0}, "clip_coef"),
        ({"gamma": 1.5}, "gamma"),
        ({"gae_lambda": float("nan")}, "gae_lambda"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"target_kl": -1.0}, "target_kl"),
        ({"anneal_lr": "yes"}, "anneal_lr"),
        ({"hidden_layers": 2.5}, "hidden_layers"),
        ({"torch_threads": 0}, "torch_threads"),
        ({"validation_every": -1}, "validation_every"),
        ({"validation_patients": 0}, "validation_patients"),
    ],
)
def test_bad_config_names_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=rf"PPOConfig\.{field}: must be"):
        PPOConfig(**kwargs).check()


def test_unknown_key_and_bad_seed_are_refused():
    with pytest.raises(ConfigError, match=r"cfg\.toml: PPOConfig\.lr: unknown option"):
        ppo_config_from_dict({"lr": 0.1}, source="cfg.toml")
    with pytest.raises(ConfigError, match=r"cfg\.toml: PPOConfig\.gamma: must be"):
        ppo_config_from_dict({"gamma": -1}, source="cfg.toml")
    with pytest.raises(ConfigError, match=r"PPOConfig\.update_epochs"):
        TINY_PPO.replace(update_epochs=0)
    with pytest.raises(ConfigError, match=r"^seed: must be"):
        train(TINY_ENV, TINY_PPO, seed=-1)


def test_memory_estimate_refuses_a_rollout_too_large(monkeypatch):
    monkeypatch.setenv("BIOFLUXOPT_MAX_MEMORY_GB", "0.0001")
    with pytest.raises(ConfigError, match=r"rollout of 8 patients × 4 steps × 10 agents needs"):
        train(TINY_ENV, TINY_PPO, seed=0)


def test_too_many_minibatches_names_the_field():
    cfg = TINY_PPO.replace(num_iterations=1, num_minibatches=100_000)
    with pytest.raises(ConfigError, match=r"PPOConfig\.num_minibatches: must not exceed"):
        train(TINY_ENV, cfg, seed=0)


# ---------------------------------------------------------------------- training
def test_training_run_shapes_and_curve(run_a):
    result, out = run_a
    assert [row["iteration"] for row in result.curve] == [1, 2, 3]
    assert [row["env_steps"] for row in result.curve] == [32, 64, 96]  # 8 patients × 4 steps
    for row in result.curve:
        assert set(row) == CURVE_COLUMNS
        assert all(
            math.isfinite(v)
            for k, v in row.items()
            if k not in ("explained_variance", "validation_return", "return_gain_vs_no_action_mean")
        )
    # validation (every 5 iterations and after the last): only iteration 3 here
    assert [math.isfinite(row["validation_return"]) for row in result.curve] == [
        False,
        False,
        True,
    ]
    lrs = [row["learning_rate"] for row in result.curve]
    assert lrs == pytest.approx([3e-4, 2e-4, 1e-4])  # linear annealing
    assert result.checkpoint == out / CHECKPOINT_NAME and result.checkpoint.is_file()
    frame = result.curve_frame()
    assert list(frame["iteration"]) == [1, 2, 3]
    env = B12Env(TINY_ENV)
    obs, info = env.reset(seed=11)
    action = result.policy.act(obs, info["action_mask"])
    assert action.shape == (8, 10, 4) and action.dtype == torch.float32
    assert torch.equal(action[~info["action_mask"]], torch.zeros(int((~info["action_mask"]).sum())))
    assert bool((action.abs() <= math.log(4) + 1e-6).all())
    sampled = result.policy.act(
        obs, info["action_mask"], deterministic=False, generator=torch.Generator().manual_seed(0)
    )
    assert not torch.equal(sampled, action)
    with pytest.raises(ConfigError, match="generator"):
        result.policy.act(obs, info["action_mask"], deterministic=False)
    with pytest.raises(ConfigError, match="obs: the policy expects 51"):
        result.policy.act(obs[..., :20], info["action_mask"])


def test_same_seed_same_curve_bitwise(run_a):
    result, _ = run_a
    global_rng = torch.random.get_rng_state()
    again = train(TINY_ENV, TINY_PPO, seed=0)
    assert torch.equal(torch.random.get_rng_state(), global_rng)  # no global RNG is used
    assert _untimed(again.curve) == _untimed(result.curve)
    assert _same_params(again.policy.actor, result.policy.actor)
    other = train(TINY_ENV, TINY_PPO.replace(num_iterations=1), seed=1)
    assert other.curve[0]["return_mean"] != result.curve[0]["return_mean"]


class _Interrupt(Exception):
    pass


def test_resume_after_interruption_reproduces_the_curve(run_a, tmp_path):
    result, _ = run_a

    def stop_after_two(row):
        if row["iteration"] == 2:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train(TINY_ENV, TINY_PPO, seed=0, out_dir=tmp_path, progress=stop_after_two)
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME).iteration == 2
    with pytest.raises(ConfigError, match="resume: a checkpoint exists"):
        train(TINY_ENV, TINY_PPO, seed=0, out_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"PPOConfig\.learning_rate: the checkpoint was"):
        train(TINY_ENV, TINY_PPO.replace(learning_rate=1e-3), seed=0, out_dir=tmp_path, resume=True)
    seen = []
    resumed = train(TINY_ENV, TINY_PPO, seed=0, out_dir=tmp_path, resume=True, progress=seen.append)
    assert [row["iteration"] for row in seen] == [3]  # only the missing iteration ran
    assert _untimed(resumed.curve) == _untimed(result.curve)
    assert _same_params(resumed.policy.actor, result.policy.actor)
    # resuming a finished run runs nothing and returns it
    done = train(TINY_ENV, TINY_PPO, seed=0, out_dir=tmp_path, resume=True, progress=seen.append)
    assert len(seen) == 1 and _untimed(done.curve) == _untimed(result.curve)
    assert _same_params(done.policy.actor, result.policy.actor)


def _rewrite(src, dst, *, tensors=None, metadata=None):
    """Copy a checkpoint with some tensors/metadata replaced and a valid checksum."""
    with safe_open(str(src), framework="pt") as fh:
        t = {k: fh.get_tensor(k) for k in fh.keys()}
        m = dict(fh.metadata())
    t.update(tensors or {})
    m.update(metadata or {})
    m.pop("sha256")
    m["sha256"] = _digest(t, m)
    dst.write_bytes(safetensors_save(t, metadata=m))
    return dst


def test_checkpoint_round_trip_and_damage(run_a, tmp_path):
    result, out = run_a
    good = out / CHECKPOINT_NAME
    policy = Policy.load(good)
    obs = torch.randn(2, 10, 51)
    mask = torch.ones(2, 10, 4, dtype=torch.bool)
    assert torch.equal(policy.act(obs, mask), result.policy.act(obs, mask))
    ck = load_checkpoint(good)
    assert ck.iteration == 3 and ck.seed == 0 and ck.ppo_config == TINY_PPO
    assert _untimed(ck.curve) == _untimed(result.curve)

    data = good.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"truncated\.safetensors: file: not a readable"):
        load_checkpoint(truncated)
    flipped = tmp_path / "flipped.safetensors"
    flipped.write_bytes(data[:-5] + bytes([data[-5] ^ 0xFF]) + data[-4:])
    with pytest.raises(DataError, match=r"flipped\.safetensors: sha256: checksum mismatch"):
        Policy.load(flipped)
    with pytest.raises(DataError, match=r"missing\.safetensors: no checkpoint"):
        load_checkpoint(tmp_path / "missing.safetensors")

    # Policy.load reads the selected actor (best_actor.*)
    shape = _rewrite(
        good,
        tmp_path / "shape.safetensors",
        tensors={"best_actor.net.0.weight": torch.zeros(64, 29)},
    )
    with pytest.raises(DataError, match=r"shape\.safetensors: best_actor\.net\.0\.weight: .*needs"):
        Policy.load(shape)
    bad_cfg = json.loads(ck_meta(good)["ppo_config"])
    bad_cfg["clip_coef"] = 7.0
    config = _rewrite(
        good, tmp_path / "cfg.safetensors", metadata={"ppo_config": json.dumps(bad_cfg)}
    )
    with pytest.raises(DataError, match=r"cfg\.safetensors: PPOConfig\.clip_coef: must be"):
        load_checkpoint(config)
    fmt = _rewrite(good, tmp_path / "fmt.safetensors", metadata={"format": "other/9"})
    with pytest.raises(DataError, match=r"fmt\.safetensors: format: expected"):
        load_checkpoint(fmt)

    # resuming from a checkpoint of a different observation layout is refused
    resume_dir = tmp_path / "resume"
    resume_dir.mkdir()
    shutil.copy(good, resume_dir / CHECKPOINT_NAME)
    with pytest.raises(ConfigError, match=r"B12EnvConfig\.observe: the checkpoint was"):
        train(
            TINY_ENV.replace(observe="clinical"), TINY_PPO, seed=0, out_dir=resume_dir, resume=True
        )


def ck_meta(path):
    with safe_open(str(path), framework="pt") as fh:
        return dict(fh.metadata())


def test_ippo_trains_with_a_local_critic_on_clinical_observations():
    env_config = TINY_ENV.replace(observe="clinical")
    result = train(env_config, TINY_PPO.replace(algo="ippo", num_iterations=1), seed=0)
    assert result.policy.obs_dim == 42  # 32 clinical features + 10 one-hot
    row = result.curve[0]
    assert math.isfinite(row["return_mean"]) and row["env_steps"] == 32
    assert math.isfinite(row["value_loss"]) and row["epochs"] == 2


def test_evaluate_policy_same_seed_same_metrics(run_a):
    result, _ = run_a
    env = B12Env(TINY_ENV.replace(n_patients=4, split="test"))
    first = evaluate_policy(result.policy, env, seed=3)
    second = evaluate_policy(result.policy, env, seed=3)
    first.pop("wall_s"), second.pop("wall_s")
    assert first == second
    assert first["patients"] == 4 and first["env_steps"] == 16
    assert all(np.isfinite(v) for v in first.values())

    class Constant:
        def act(self, obs, mask, *, deterministic=True, generator=None):
            return torch.where(mask, 0.5, 0.0)

    baseline = evaluate_policy(Constant(), env, seed=3)
    assert baseline["return_mean"] != first["return_mean"]


# ---------------------------------------------------------------------- policy selection
def test_initial_policy_is_exactly_no_action():
    actor = Actor(38, 4, PPOConfig(), torch.Generator().manual_seed(0))
    mean, std = actor(torch.randn(5, 10, 38))
    assert torch.equal(mean, torch.zeros_like(mean))
    assert torch.allclose(std, torch.full_like(std, math.exp(-2.5)))


def test_selected_policy_is_never_worse_than_no_action_on_validation(run_a):
    """The returned policy is the best validated one, and the first candidate is the initial
    policy, which is exactly no action: on the validation patients and noise the selected
    policy is never worse than doing nothing, however far training drifted."""
    result, out = run_a
    sel = result.selection
    assert sel["best_iteration"] in (0, 3)  # validated: before training and after the last
    assert sel["best_return"] >= sel["initial_return"]
    val_env = B12Env(TINY_ENV.replace(n_patients=TINY_PPO.validation_patients))
    val_seed = _derived_seed(0, 3)
    none = evaluate_policy(NoActionPolicy(), val_env, seed=val_seed)["return_mean"]
    assert none == sel["initial_return"]
    chosen = evaluate_policy(result.policy, val_env, seed=val_seed)["return_mean"]
    assert chosen == sel["best_return"] >= none
    assert load_checkpoint(out / CHECKPOINT_NAME).selection == sel
    # without validation the policy is the last iterate
    last = train(TINY_ENV, TINY_PPO.replace(num_iterations=1, validation_every=0), seed=0)
    assert last.selection["best_iteration"] == 1 and last.selection["best_return"] is None
    assert math.isnan(last.curve[0]["validation_return"])


def test_no_action_reference_reproduces_the_env_without_action():
    """The input-driven baseline: stepping the reference next to an env that takes no
    action gives the env's own team rewards bitwise (same patients, noise, steady state)."""
    from biofluxopt.marl._ppo import _NoActionReference

    env = B12Env(TINY_ENV.replace(n_patients=3))
    _, info = env.reset(seed=4)
    reference = _NoActionReference(env, info["serum_b12_pmol_l"])
    zeros = torch.zeros(3, env.n_agents, 4)
    for _ in range(4):
        _, _, _, _, info = env.step(zeros)
        assert torch.equal(reference.step(), info["team_reward"])


def test_reward_baseline_changes_the_learning_not_the_logged_return():
    """``reward_baseline`` leaves the env's logged returns alone and only changes what the
    networks learn from; the gain over no action is logged with the baseline."""
    env_cfg = TINY_ENV.replace(n_patients=4, episode_days=14)
    cfg = TINY_PPO.replace(num_iterations=1, validation_every=0)
    with_ref = train(env_cfg, cfg.replace(reward_baseline="no_action"), seed=0)
    without = train(env_cfg, cfg.replace(reward_baseline="none"), seed=0)
    a, b = with_ref.curve[0], without.curve[0]
    assert a["return_mean"] == b["return_mean"]  # same rollout: the policy starts the same
    assert a["value_loss"] != b["value_loss"]  # learned on other targets
    assert math.isfinite(a["return_gain_vs_no_action_mean"])
    assert math.isnan(b["return_gain_vs_no_action_mean"])
