"""Every learning algorithm gets a row: PPO, A2C, SAC, TD3 and RecurrentPPO (stable-baselines3 and
sb3-contrib, budgets and settings from agents/rl/hyperparams.yaml), L2L and the meta-LSTM
(backpropagation through unrolls), trained on one family and evaluated on the same held-out test
instances beside the tuned one-evaluation-per-step hand rules.

Per algorithm: its training budget (env steps; inner steps for L2L and the meta-LSTM) and wall
time, the step of its best model (0: the warm start, where it has one), Li & Malik's cost and final
values, its final-value wins against tuned Adam, and its paired comparison by cost against the best
tuned one-evaluation-per-step hand rule and against its own imitation teacher (wins with a 95 %
Wilson interval, sign-test p). Every figure is measured in this run.

`--scale` multiplies every SB3 algorithm's default budget (1 = the defaults); the page written
with `--docs` states the budgets used.

    python benchmarks/sb3_algorithms.py [--env l2o/LogisticRegression-v0] [--scale 1.0]
        [--meta-timesteps 3200000] [--out reports/sb3_algorithms] [--docs docs/sb3_algorithms.md]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from agents.hand_designed.tuning import tuned_optimizer
from agents.rl.hyperparams import load_hyperparams
from agents.rl.policy_comparisons import COMPARE_BEST, COMPARE_TEACHER, compare_policies, run_teacher
from agents.rl.sb3_training import ALGOS, train_sb3
from agents.runtime.saved_rules import load_rule, read_meta
from l2o_gym.atomic_io import atomic_write_text
from l2o_gym.evaluation import EvaluationResult, best_one_evaluation_rule, evaluate
from l2o_gym.report import write_report

ONE_EVALUATION_RULES = ("adam", "momentum", "nesterov", "window_qn", "window_adam_qn")
META_ALGOS = ("l2l", "meta_lstm")
HEADER = (
    "| algorithm | budget | training | best model at | mean cost | mean final | median final | wins vs Adam | "
    "vs best tuned rule (cost) | vs own teacher (cost) |"
)


def train_one(algo: str, args: argparse.Namespace) -> tuple[object, str, str, tuple | None]:
    """Train `algo`; returns its best model's folder, budget label, best-model step and teacher."""
    if algo in META_ALGOS:
        from agents.meta.meta_training import train_meta_optimizer

        best = train_meta_optimizer(
            args.env, algo, args.meta_timesteps, args.seed, args.out / "runs" / algo, horizon=40, progress=False
        )
        return best, f"{args.meta_timesteps:,} inner steps", "—", None
    default = int(load_hyperparams(args.env, algo)["timesteps"])
    steps = args.budgets.get(algo, max(1, round(default * args.scale)))
    trained = train_sb3(
        args.env, algo, out_dir=args.out / "runs" / algo, timesteps=steps, seed=args.seed, progress_bar=False
    )
    budget = f"{trained.timesteps:,} of {default:,} steps"
    return trained.best, budget, f"{read_meta(trained.best)['timesteps']:,}", run_teacher(algo, trained.best)


def parse_budgets(items: list[str]) -> dict[str, int]:
    """ALGO=STEPS items -> {algo: steps}."""
    budgets = {}
    for item in items:
        algo, _, steps = item.partition("=")
        if algo not in ALGOS or not steps.isdigit() or int(steps) < 1:
            raise SystemExit(f"--timesteps: expected ALGO=STEPS with ALGO in {', '.join(ALGOS)}, got {item!r}")
        budgets[algo] = int(steps)
    return budgets


def rows(result: EvaluationResult, learned: dict, wall: dict, budget: dict, teacher_names: dict) -> list[str]:
    """One table row per learned rule (its paired comparisons must be in `result.comparisons`)."""
    lines = []
    pairs = {(c.method, c.against): c for c in result.comparisons}
    best = best_one_evaluation_rule(result, ONE_EVALUATION_RULES)
    for algo in learned:
        m = result.metrics[algo]
        paired = []
        for c in (pairs.get((algo, best)), pairs.get((algo, teacher_names.get(algo)))):
            paired.append(
                "—"
                if c is None
                else f"{c.against}: {c.win_fraction:.0%} ({c.win_low:.0%}–{c.win_high:.0%}), p {c.sign_test_p:.2g}"
            )
        lines.append(
            f"| {algo} | {budget[algo]} | {wall[algo][0]:.0f} s | {wall[algo][1]} | {m.mean_cost:.3g} | "
            f"{m.mean_final:.3g} | {m.median_final:.3g} | {m.win_rate:.0%} | {paired[0]} | {paired[1]} |"
        )
    return lines


def write_table(
    result: EvaluationResult, learned: dict, wall: dict, budget: dict, teacher_names: dict, args: argparse.Namespace
) -> str:
    """The table (learned rows, then the tuned rules), written to `--docs` when given; returned."""
    lines = [HEADER, "|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    lines += rows(result, learned, wall, budget, teacher_names)
    lines += [
        f"| tuned {name} | — | — | — | {result.metrics[name].mean_cost:.3g} | {result.metrics[name].mean_final:.3g} | "
        f"{result.metrics[name].median_final:.3g} | — | — | — |"
        for name in ONE_EVALUATION_RULES
    ]
    table = "\n".join(lines)
    if args.docs is not None:
        overrides = "".join(f" --timesteps {a}={n}" for a, n in args.budgets.items())
        command = (
            f"python benchmarks/sb3_algorithms.py --env {args.env} --algos {args.algos} --scale {args.scale:g}"
            f"{overrides} --meta-timesteps {args.meta_timesteps} --instances {args.instances} "
            f"--horizon {args.horizon} --seed {args.seed}"
        )
        atomic_write_text(
            args.docs,
            f"# Every learning algorithm on {args.env}\n\nWritten by `benchmarks/sb3_algorithms.py`; measured in one "
            f"run of\n\n    {command}\n\n{args.instances} test instances, T = {args.horizon}; values f − f*; "
            f"definitions in docs/measuring.md.\n\n{table}\n",
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="l2o/LogisticRegression-v0")
    parser.add_argument("--algos", default=",".join((*ALGOS, *META_ALGOS)))
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of each SB3 default budget")
    parser.add_argument("--timesteps", action="append", default=[], metavar="ALGO=STEPS", help="budget override")
    parser.add_argument("--meta-timesteps", type=int, default=3_200_000)
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--horizon", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("reports") / "sb3_algorithms")
    parser.add_argument("--docs", type=Path, default=None, help="also write the table to this markdown page")
    args = parser.parse_args()
    if not args.scale > 0:
        parser.error(f"--scale must be > 0, got {args.scale}")
    args.budgets = parse_budgets(args.timesteps)
    algos = args.algos.split(",")
    unknown = [a for a in algos if a not in (*ALGOS, *META_ALGOS)]
    if unknown:
        parser.error(f"--algos: unknown {', '.join(unknown)}; known: {', '.join((*ALGOS, *META_ALGOS))}")
    torch.set_num_threads(1)

    rules = {name: tuned_optimizer(name, args.env, args.horizon) for name in ONE_EVALUATION_RULES}
    learned, wall, budget, teacher_names = {}, {}, {}, {}
    for algo in algos:  # evaluate and write after each algorithm: a cut-short run keeps its rows
        start = time.perf_counter()
        best, budget[algo], at, teacher = train_one(algo, args)
        wall[algo] = (time.perf_counter() - start, at)
        learned[algo] = rules[algo] = load_rule(best)
        if teacher is not None:
            teacher_names[algo] = teacher[0]
            rules[teacher[0]] = teacher[1]
        print(f"{algo}: trained in {wall[algo][0]:.0f} s ({budget[algo]}), best model at {at}", flush=True)
        result = evaluate(rules, args.env, instances=args.instances, horizon=args.horizon, seed=args.seed)
        compare_policies(result, list(learned), (COMPARE_BEST, COMPARE_TEACHER), ONE_EVALUATION_RULES, teacher_names)
        table = write_table(result, learned, wall, budget, teacher_names, args)
    report = write_report(result, args.out / "report")
    print(table)
    print(f"report: {report}")


if __name__ == "__main__":
    main()
