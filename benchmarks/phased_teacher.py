"""Tuned Adam's opening, then tuned momentum: does a two-phase hand-designed rule beat Adam?

Runs `agents.runtime.phased_rule.PhasedRule(adam, momentum, k)` (both tuned at the horizon) for several
opening lengths k on the same held-out test instances as tuned Adam, tuned momentum and tuned
L-BFGS, and prints mean final f − f* and the share of instances won against Adam, all measured
in this run (the same 100 test instances as `benchmarks/learned_vs_tuned.py`). This is the
measurement behind the phased imitation teacher of robust regression (`agents/rl/hyperparams.yaml`).

    python benchmarks/phased_teacher.py [--env l2o/RobustLinearRegression-v0] [--openings 10 15 20 25]

The recorded figures live in docs/results.md ("Learned optimizers against tuned baselines on held-out problems");
a new run's figures replace them there.
"""

from __future__ import annotations

import argparse

import torch

import l2o_gym
from agents.hand_designed.tuning import tuned_optimizer
from agents.runtime.phased_rule import PhasedRule
from l2o_gym.unroll import unroll


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="l2o/RobustLinearRegression-v0")
    parser.add_argument("--openings", type=int, nargs="+", default=[10, 15, 20, 25])
    parser.add_argument("--horizons", type=int, nargs="+", default=[40, 100])
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    problem = l2o_gym.make_family(args.env).sample(args.instances, torch.Generator().manual_seed(args.seed), "test")
    f_star = problem.optimum()
    print(f"{args.env}: {args.instances} test instances; mean final f - f* (wins against tuned Adam)")
    for horizon in args.horizons:

        def tuned(name: str, horizon: int = horizon):
            return tuned_optimizer(name, args.env, horizon)

        adam_gap = unroll(tuned("adam"), problem, horizon).final - f_star
        rules = {name: tuned(name) for name in ("momentum", "lbfgs")}
        rules.update(
            {f"adam {k} steps, then momentum": PhasedRule(tuned("adam"), tuned("momentum"), k) for k in args.openings}
        )
        print(f"T = {horizon}: tuned Adam {float(adam_gap.clamp_min(0).mean()):.3e}")
        for name, rule in rules.items():
            gap = unroll(rule, problem, horizon).final - f_star
            wins = float((gap < adam_gap).float().mean())
            print(f"  {name:<32} {float(gap.clamp_min(0).mean()):.3e} ({wins:.0%})")


if __name__ == "__main__":
    main()
