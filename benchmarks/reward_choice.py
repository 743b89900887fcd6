"""Which reward trains the better optimizer? PPO (coordinatewise, same hyperparameters, same
seed, same budget) with Li & Malik's cost -f/f0 against the telescoping log-suboptimality reward,
each evaluated on the same held-out test instances against tuned Adam. Prints the figures and
the ratio of mean final suboptimalities, measured in this run.

    python benchmarks/reward_choice.py [--env l2o/LogisticRegression-v0] [--timesteps 600000]

The recorded figures live in docs/results.md ("Choosing the default reward");
a new run's figures replace them there.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

import l2o_gym
from agents.hand_designed.tuning import tuned_optimizer
from agents.rl.sb3_training import train_sb3
from agents.runtime.saved_rules import load_rule
from l2o_gym.unroll import unroll


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="l2o/LogisticRegression-v0")
    parser.add_argument("--timesteps", type=int, default=600_000)
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--horizon", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    adam = tuned_optimizer("adam", args.env, args.horizon)
    problem = l2o_gym.make_family(args.env).sample(args.instances, torch.Generator().manual_seed(args.seed), "test")
    f_star = problem.optimum()
    adam_gap = (unroll(adam, problem, args.horizon).final - f_star).clamp_min(0)
    rows = {}
    for reward in ("cost", "log_suboptimality"):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            result = train_sb3(
                args.env,
                "ppo",
                out_dir=out,
                timesteps=args.timesteps,
                seed=args.seed,
                reference=adam,
                progress_bar=False,
                env_kwargs={"reward": reward, "horizon": args.horizon},
            )
            wall = time.perf_counter() - start
            gap = (unroll(load_rule(result.best), problem, args.horizon).final - f_star).clamp_min(0)
        rows[reward] = (float(gap.mean()), float(gap.median()), float((gap < adam_gap).float().mean()), wall)
    print(f"{args.env}: PPO {args.timesteps} steps per reward, {args.instances} test instances, T = {args.horizon}")
    print(f"tuned Adam: mean final f - f* {float(adam_gap.mean()):.3e}, median {float(adam_gap.median()):.3e}")
    print(f"{'reward':<18} {'mean f-f*':>10} {'median f-f*':>12} {'wins vs Adam':>13} {'train s':>8}")
    for reward, (mean, median, wins, wall) in rows.items():
        print(f"{reward:<18} {mean:>10.3e} {median:>12.3e} {wins:>12.0%} {wall:>8.0f}")
    cost, logsub = rows["cost"][0], rows["log_suboptimality"][0]
    print(f"mean final f - f*, cost / log_suboptimality: {cost / max(logsub, 1e-30):.2f}x")


if __name__ == "__main__":
    main()
