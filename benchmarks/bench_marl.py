"""Throughput of the batched multi-agent env, its PettingZoo adapter and MAPPO training (one JSON
line).

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

Training (``--train-patients 256 --train-days 28 --train-iterations 3 --epochs 4
--minibatches 4``; MAPPO, hidden 64×2, the rest ``PPOConfig`` defaults, CPU; ``--skip-train``
leaves it out). Seconds per iteration are the mean over iterations 2.., the first (tracing,
warm-up) left out:

- ``train_env_steps_per_s``: ``marl.train`` end to end (patients × decision steps per
  iteration ÷ seconds per iteration, from the learning curve's ``env_steps_per_s``): reset,
  rollout, GAE, value normalisation, the minibatch epochs.
- ``torchrl_env_steps_per_s``: a TorchRL MAPPO iteration timed the same way on the same env
  and sizes. The rollout runs our ``B12Env`` (no TorchRL env wrapper) with a TorchRL
  ``ProbabilisticActor`` (``MLP`` → ``ln 4 · tanh`` mean, ``AddStateIndependentNormalScale``,
  ``IndependentNormal``) and collects per-step TensorDicts, stacked to ``[P, A, T]``; the
  learning phase is ``torchrl.objectives.value.GAE`` with a ``ValueOperator`` critic on the
  same centralised input (global state + one-hot id), then ``ClipPPOLoss`` (ε, entropy and
  value coefficients, l2 value loss, advantage normalisation as ours) over the valid
  (patient, agent, step) samples, same epochs, minibatches, gradient clip and Adam.
  Differences: no value normalisation and no per-activity action mask in the TorchRL loss
  (TorchRL has neither for a continuous Gaussian), so it does slightly less work.
  ``training_ratio_vs_torchrl`` = ``train_env_steps_per_s`` ÷ ``torchrl_env_steps_per_s``.
  Both iterations are dominated by the env's rollout (``torchrl_rollout_s``), which is the
  same code for both, so this ratio stays near 1 whatever the learning code costs.
- Learning phase alone, on identical data: after each TorchRL update, our trainer's learning
  phase (critic values, ``compute_gae``, value normalisation, ``ppo_update`` with our
  ``Actor``/``Critic``) runs on the same stacked rollout. ``torchrl_update_s`` and
  ``ours_update_s`` time from the stacked rollout to the last optimiser step;
  ``update_ratio_vs_torchrl`` = ``torchrl_update_s`` ÷ ``ours_update_s``.

Usage: ``python benchmarks/bench_marl.py [--patients 4096] [--steps 4] [--device cpu]
[--train-patients 256] [--train-days 28] [--train-iterations 3] [--skip-train]``
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


# ---------------------------------------------------------------------------- training
def _train_config(patients: int, days: int, iterations: int, epochs: int, minibatches: int):
    from biofluxopt.marl import PPOConfig

    env_cfg = B12EnvConfig(n_patients=patients, episode_days=days)
    # no policy-selection episodes: the iteration measured is the one TorchRL's reference runs
    ppo_cfg = PPOConfig(
        num_iterations=iterations,
        update_epochs=epochs,
        num_minibatches=minibatches,
        validation_every=0,
    )
    return env_cfg, ppo_cfg


def _steady(times: list[float]) -> float:
    """Mean seconds per iteration, leaving out the first (tracing, allocator warm-up)."""
    return float(np.mean(times[1:] if len(times) > 1 else times))


def bench_ours(env_cfg: B12EnvConfig, ppo_cfg) -> dict:
    from biofluxopt.marl import train

    t0 = time.perf_counter()
    result = train(env_cfg, ppo_cfg, seed=0)
    wall = time.perf_counter() - t0
    steps = env_cfg.n_patients * (env_cfg.episode_days // env_cfg.step_days)
    iter_s = _steady([steps / row["env_steps_per_s"] for row in result.curve])
    return {
        "train_iterations": len(result.curve),
        "train_wall_s": wall,
        "train_s_per_iteration": iter_s,
        "train_env_steps_per_s": steps / iter_s,
    }


class _OurLearning:
    """Our trainer's learning phase (critic values → ``compute_gae`` → value normalisation →
    ``ppo_update``, as in ``train``) on a rollout collected for the TorchRL run, so that the
    two learning phases are timed on the same data."""

    def __init__(self, obs_dim: int, critic_dim: int, n_act: int, cfg):
        from biofluxopt.marl._ppo import Actor, Critic, RunningMeanStd

        gen = torch.Generator().manual_seed(0)
        self.cfg = cfg
        self.actor = Actor(obs_dim, n_act, cfg, gen)
        self.critic = Critic(critic_dim, cfg, gen)
        self.value_norm = RunningMeanStd(cfg.value_norm)
        self.gen = gen
        self.optimizer = torch.optim.Adam(
            [*self.actor.parameters(), *self.critic.parameters()], lr=cfg.learning_rate, eps=1e-5
        )

    def update(self, data, mask: torch.Tensor) -> float:
        """Seconds for one learning phase on ``data`` (``[P, A, T]`` TensorDict)."""
        from biofluxopt.marl._ppo import compute_gae, masked_log_prob, ppo_update

        cfg, vn = self.cfg, self.value_norm
        p, a, n_steps = data.batch_size
        mask_t = mask.unsqueeze(2).expand(p, a, n_steps, mask.shape[-1])
        with torch.no_grad():  # the behaviour log-prob, computed in our rollout (not timed)
            mean, std = self.actor(data["observation"])
            logprob = masked_log_prob(mean, std, data["action"], mask_t)
        t0 = time.perf_counter()
        with torch.no_grad():
            value = vn.denormalize(self.critic(data["critic_in"]))
            next_value = vn.denormalize(self.critic(data["next", "critic_in"]))
        tpa = (2, 0, 1)  # [P, A, T] → [T, P, A], our trainer's layout
        done = data["next", "done"].squeeze(-1).permute(tpa)
        advantage, returns = compute_gae(
            data["next", "reward"].squeeze(-1).permute(tpa),
            value.permute(tpa),
            next_value.permute(tpa),
            done,
            done,
            cfg.gamma,
            cfg.gae_lambda,
        )
        valid = mask.any(-1).unsqueeze(-1).expand(p, a, n_steps)
        b_returns = returns.permute(1, 2, 0)[valid]
        vn.update(b_returns)
        batch = {
            "obs": data["observation"][valid],
            "critic_in": data["critic_in"][valid],
            "action": data["action"][valid],
            "mask": mask_t[valid],
            "logprob": logprob[valid],
            "advantage": advantage.permute(1, 2, 0)[valid],
            "target": vn.normalize(b_returns),
        }
        ppo_update(self.actor, self.critic, self.optimizer, batch, cfg, self.gen)
        return time.perf_counter() - t0


def bench_torchrl(env_cfg: B12EnvConfig, ppo_cfg) -> dict:
    """One MAPPO iteration = our env's rollout + TorchRL's GAE and ClipPPOLoss, per iteration."""
    from tensordict import TensorDict
    from tensordict.nn import AddStateIndependentNormalScale, TensorDictModule
    from torchrl.modules import MLP, IndependentNormal, ProbabilisticActor, ValueOperator
    from torchrl.objectives import ClipPPOLoss
    from torchrl.objectives.value import GAE

    from biofluxopt.marl._ppo import critic_input
    from biofluxopt.sim import cpu_threads

    cfg = ppo_cfg
    env = B12Env(env_cfg)
    p, a = env.n_patients, env.n_agents
    n_steps = env_cfg.episode_days // env_cfg.step_days
    k = env.activity_mask.shape[-1]
    critic_dim = env.state_dim + a
    cells = [cfg.hidden_size] * cfg.hidden_layers
    high = float(np.log(4.0))

    class BoundedMean(torch.nn.Module):
        def forward(self, x):
            return high * torch.tanh(x)

    times, rollout_times, ours_update_times = [], [], []
    ours = _OurLearning(env.obs_dim, critic_dim, k, cfg)
    with cpu_threads(env.device, cfg.torch_threads):
        torch.manual_seed(0)
        actor_net = torch.nn.Sequential(
            MLP(
                in_features=env.obs_dim,
                out_features=k,
                num_cells=cells,
                activation_class=torch.nn.Tanh,
            ),
            BoundedMean(),
            AddStateIndependentNormalScale(k, scale_mapping="exp", init_value=cfg.init_log_std),
        )
        actor = ProbabilisticActor(
            TensorDictModule(actor_net, in_keys=["observation"], out_keys=["loc", "scale"]),
            in_keys=["loc", "scale"],
            distribution_class=IndependentNormal,
            return_log_prob=True,
        )
        critic = ValueOperator(
            MLP(
                in_features=critic_dim,
                out_features=1,
                num_cells=cells,
                activation_class=torch.nn.Tanh,
            ),
            in_keys=["critic_in"],
        )
        gae = GAE(gamma=cfg.gamma, lmbda=cfg.gae_lambda, value_network=critic)
        loss_module = ClipPPOLoss(
            actor,
            critic,
            clip_epsilon=cfg.clip_coef,
            entropy_coeff=cfg.ent_coef,
            critic_coeff=cfg.vf_coef,
            loss_critic_type="l2",
            normalize_advantage=True,
        )
        params = list(loss_module.parameters())
        optimizer = torch.optim.Adam(params, lr=cfg.learning_rate, eps=1e-5)
        logp_key = None
        for it in range(cfg.num_iterations):
            t_iter = time.perf_counter()
            obs, info = env.reset(seed=it)
            mask = info["action_mask"]
            state = info["state"]
            rows = []
            for _ in range(n_steps):
                with torch.no_grad():
                    td = actor(TensorDict(observation=obs.float(), batch_size=[p, a]))
                if logp_key is None:
                    logp_key = (
                        "action_log_prob" if "action_log_prob" in td.keys() else ("sample_log_prob")
                    )
                action = td["action"]
                cin = critic_input("mappo", obs, state, a).float()
                obs, reward, terminated, truncated, info = env.step(
                    torch.where(mask, action, torch.zeros_like(action))
                )
                state = info["state"]
                end = (terminated | truncated).view(p, 1, 1).expand(p, a, 1)
                rows.append(
                    TensorDict(
                        observation=td["observation"],
                        critic_in=cin,
                        action=action,
                        **{logp_key: td[logp_key]},
                        next=TensorDict(
                            critic_in=critic_input("mappo", obs, state, a).float(),
                            reward=reward.float().unsqueeze(-1),
                            done=end,
                            terminated=end,
                            batch_size=[p, a],
                        ),
                        batch_size=[p, a],
                    )
                )
            data = torch.stack(rows, dim=-1)  # [P, A, T]
            t_roll = time.perf_counter()
            with torch.no_grad():
                gae(data)
            valid = mask.any(-1).unsqueeze(-1).expand(p, a, n_steps)
            flat = data[valid]  # valid (patient, agent, step) samples
            n = flat.batch_size[0]
            for _ in range(cfg.update_epochs):
                for idx in torch.tensor_split(torch.randperm(n), cfg.num_minibatches):
                    out = loss_module(flat[idx])
                    loss = out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]
                    optimizer.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                    optimizer.step()
            now = time.perf_counter()
            times.append(now - t_iter)
            rollout_times.append(t_roll - t_iter)
            ours_update_times.append(ours.update(data, mask))
    env.close()
    steps = p * n_steps
    iter_s, roll_s = _steady(times), _steady(rollout_times)
    ours_s = _steady(ours_update_times)
    return {
        "torchrl_s_per_iteration": iter_s,
        "torchrl_rollout_s": roll_s,
        "torchrl_update_s": iter_s - roll_s,
        "torchrl_env_steps_per_s": steps / iter_s,
        "ours_update_s": ours_s,
        "update_ratio_vs_torchrl": (iter_s - roll_s) / ours_s,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--pz-steps", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--train-patients", type=int, default=256)
    ap.add_argument("--train-days", type=int, default=28)
    ap.add_argument("--train-iterations", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--minibatches", type=int, default=4)
    ap.add_argument("--skip-train", action="store_true", help="env throughput only")
    args = ap.parse_args()
    out = {"bench": "marl", "device": args.device, "torch_threads": torch.get_num_threads()}
    out.update(bench_batched(args.patients, args.steps, args.device))
    out.update(bench_pettingzoo(args.pz_steps))
    if not args.skip_train:
        cfgs = _train_config(
            args.train_patients,
            args.train_days,
            args.train_iterations,
            args.epochs,
            args.minibatches,
        )
        out["train_patients"], out["train_days"] = args.train_patients, args.train_days
        out.update(bench_ours(*cfgs))
        out.update(bench_torchrl(*cfgs))
        out["training_ratio_vs_torchrl"] = (
            out["train_env_steps_per_s"] / out["torchrl_env_steps_per_s"]
        )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
