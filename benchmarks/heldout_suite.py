"""A learned optimizer on the held-out suite (tasks/heldout_suite.py): families it never saw.

For every held-out id: the baselines (tuned Adam, L-BFGS with its line search, and by default
the window_qn rule, the shipped logistic-regression policy's imitation teacher) are tuned on that
id's validation split (`agents.hand_designed.tuning`, cached); then the policy and the baselines
run on the same `--instances` test instances (`l2o_gym.evaluate`) for `--horizon` steps. Per
instance, the policy wins against a baseline when it did not diverge and either the baseline
diverged or the policy's final value is strictly lower — f - f* where f* is known, the objective
otherwise, and for minibatch tasks the full-batch objective at x_T (the noisy last minibatch loss
would decide by chance). Win rates carry 95 % Wilson intervals, per id, per task family and over
the whole suite. Failures are counted for every method (`EvaluationResult.failures`: diverged,
or ended above its start). L-BFGS's function evaluations per step are counted on a copy (every
other method evaluates once per step). Everything is measured in this run.

    python benchmarks/heldout_suite.py --policy runs/logreg_ppo/best_model [--instances 50]
        [--horizon 40] [--ids ID,ID] [--out docs/heldout_suite.md]
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from pathlib import Path

import torch
from torch import Tensor

from agents.hand_designed.tuning import tuned_optimizer
from agents.runtime.saved_rules import load_rule
from l2o_gym.atomic_io import atomic_write_text
from l2o_gym.evaluation import EvaluationResult, evaluate
from l2o_gym.problem import Problem
from l2o_gym.registry import make_family
from l2o_gym.unroll import unroll
from l2o_gym.update_rule import UpdateRule
from tasks.heldout_suite import HELDOUT_IDS, SUITE_GROUPS, check_unseen

POLICY = "policy"
BASELINES = ("adam", "lbfgs", "window_qn")


def wilson(wins: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95 % for z = 1.96) of a proportion wins / n."""
    if n == 0:
        return 0.0, 1.0
    p = wins / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def final_values(result: EvaluationResult, method: str) -> Tensor:
    """Per instance [B]: the full-batch objective at x_T where the task reports one (minibatch
    tasks), else the last curve value; minus f* where known."""
    curves = result.curves[method]
    final = curves.metrics.get("full_objective", curves.objectives[-1])
    return final - curves.f_star if curves.f_star is not None else final


def wins_against(result: EvaluationResult, method: str, other: str) -> Tensor:
    """[B] bool: `method` did not diverge and `other` diverged or ended strictly lower."""
    ours, theirs = result.curves[method], result.curves[other]
    lower = final_values(result, method) < final_values(result, other)
    return ~ours.diverged & (theirs.diverged | lower)


class CountingProblem:
    """Counts the batched objective evaluations a rule makes on `problem` (a proxy)."""

    def __init__(self, problem: Problem) -> None:
        self.calls = 0
        self._inner_loss, self._inner_loss_and_grad = problem.loss, problem.loss_and_grad
        self._depth = 0
        problem.loss, problem.loss_and_grad = self._counted(self._inner_loss), self._counted(self._inner_loss_and_grad)

    def _counted(self, fn):
        def call(x):
            self.calls += self._depth == 0
            self._depth += 1
            try:
                return fn(x)
            finally:
                self._depth -= 1

        return call


def evaluations_per_step(rule: UpdateRule, problem: Problem, horizon: int) -> float:
    """Batched objective evaluations per step of `rule` on a copy of `problem` (the start excluded)."""
    copied = copy.deepcopy(problem)
    counter = CountingProblem(copied)
    unroll(rule, copied, horizon)
    return (counter.calls - 1) / horizon


def evaluate_id(env_id: str, policy: UpdateRule, args: argparse.Namespace) -> dict:
    """One held-out id: tune, evaluate, and the figures of its report row."""
    start = time.perf_counter()
    rules = {
        name: tuned_optimizer(name, env_id, args.horizon, args.cache, instances=args.tune_instances, seed=args.seed)
        for name in args.baselines
    }
    rules[POLICY] = policy
    result = evaluate(
        rules,
        env_id,
        instances=args.instances,
        horizon=args.horizon,
        seed=args.seed,
        reference="adam",
        reference_horizon=args.horizon,
    )
    problem = make_family(env_id).sample(args.instances, torch.Generator().manual_seed(args.seed), split="test")
    row = {
        "env_id": env_id,
        "dim": result.dim,
        "n": args.instances,
        "wins": {b: int(wins_against(result, POLICY, b).sum()) for b in args.baselines},
        "median": {m: float(final_values(result, m).median()) for m in rules},
        "failures": result.failures(),
        "lbfgs_evals": evaluations_per_step(rules["lbfgs"], problem, args.horizon) if "lbfgs" in rules else None,
        "seconds": time.perf_counter() - start,
    }
    print(
        f"{env_id}: wins {row['wins']} of {args.instances}, medians "
        + ", ".join(f"{m} {v:.3g}" for m, v in row["median"].items())
        + f" ({row['seconds']:.0f} s)",
        file=sys.stderr,
        flush=True,
    )
    return row


def _rate(wins: int, n: int) -> str:
    lo, hi = wilson(wins, n)
    return f"{wins / n:.0%} [{lo:.0%}, {hi:.0%}]"


def _failures(row: dict) -> str:
    parts = [
        f"{m}: {f['diverged']} diverged, {f['above_start']} above start"
        for m, f in row["failures"].items()
        if f["diverged"] or f["above_start"]
    ]
    return "; ".join(parts) or "none"


def markdown(rows: list[dict], args: argparse.Namespace, wall: float) -> str:
    """The report: per id, per task family and over the suite."""
    baselines = list(args.baselines)
    head = "| " + " | ".join(f"wins vs {b} [95 % CI]" for b in baselines) + " |"
    lines = [
        "# The held-out suite",
        "",
        "Written by `benchmarks/heldout_suite.py` (regenerate with the command below); every figure was measured",
        "in that one run. The policy never saw these families: every held-out id refuses its training split.",
        "",
        "```",
        "python benchmarks/heldout_suite.py " + " ".join(args.argv),
        "```",
        "",
        f"Policy: `{args.policy}` ({args.policy_about}).",
        f"Baselines tuned per held-out id on its validation split: {', '.join(baselines)}.",
        f"{args.instances} test instances per id, horizon T = {args.horizon}, seed {args.seed}; {wall / 60:.0f} min.",
        "A win: the policy did not diverge and the baseline diverged or ended strictly lower (f - f* where f* is",
        "known, else f; minibatch tasks: the full-batch objective at x_T). Intervals: Wilson 95 %.",
        "",
        "## Per task family",
        "",
        "| task family | ids | instances " + head,
        "|---|---:|---:|" + "---:|" * len(baselines),
    ]
    by_id = {r["env_id"]: r for r in rows}
    groups = {**{g: [e for e in ids if e in by_id] for g, ids in SUITE_GROUPS.items()}, "whole suite": list(by_id)}
    for group, ids in groups.items():
        if not ids:
            continue
        n = sum(by_id[e]["n"] for e in ids)
        rates = " | ".join(_rate(sum(by_id[e]["wins"][b] for e in ids), n) for b in baselines)
        lines.append(f"| {group} | {len(ids)} | {n} | {rates} |")
    lines += [
        "",
        "## Per held-out id",
        "",
        "Medians of the final value (f - f*, or f where f* is unknown) per method; L-BFGS's evaluations per step",
        "are batched objective calls (its line search), every other method makes one per step.",
        "",
        "| id | d "
        + head
        + " median policy | "
        + " | ".join(f"median {b}" for b in baselines)
        + " | L-BFGS evals/step |",
        "|---|---:|" + "---:|" * (2 * len(baselines) + 2),
    ]
    for r in rows:
        rates = " | ".join(_rate(r["wins"][b], r["n"]) for b in baselines)
        medians = " | ".join(f"{r['median'][m]:.3g}" for m in [POLICY, *baselines])
        evals = "—" if r["lbfgs_evals"] is None else f"{r['lbfgs_evals']:.1f}"
        lines.append(f"| {r['env_id']} | {r['dim']} | {rates} | {medians} | {evals} |")
    lines += ["", "## Failures (diverged, or ended above the starting objective)", ""]
    lines += [f"- {r['env_id']}: {_failures(r)}" for r in rows]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", required=True, help="a saved learned optimizer (folder)")
    parser.add_argument("--instances", type=int, default=50)
    parser.add_argument("--tune-instances", type=int, default=50)
    parser.add_argument("--horizon", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baselines", default=",".join(BASELINES), help="hand-designed names; adam is required")
    parser.add_argument("--ids", default=None, help="comma-separated held-out ids (default: the whole suite)")
    parser.add_argument("--cache", type=Path, default=None, help="tuned-settings cache (see `l2o-gym tune`)")
    parser.add_argument("--out", type=Path, default=Path("docs/heldout_suite.md"))
    args = parser.parse_args(argv)
    args.argv = argv
    args.baselines = tuple(b.strip() for b in args.baselines.split(",") if b.strip())
    if "adam" not in args.baselines:
        parser.error("--baselines: adam is the reference and must be listed")
    if min(args.instances, args.tune_instances, args.horizon) < 1 or args.seed < 0:
        parser.error("--instances, --tune-instances and --horizon must be >= 1, --seed >= 0")
    args.ids = list(HELDOUT_IDS) if args.ids is None else [e.strip() for e in args.ids.split(",") if e.strip()]
    unknown = [e for e in args.ids if e not in HELDOUT_IDS]
    if unknown or not args.ids:
        parser.error(f"--ids: not held-out ids: {unknown}; allowed: {', '.join(HELDOUT_IDS)}")
    return args


def main(argv: list[str] | None = None) -> None:
    torch.set_num_threads(1)
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        policy = load_rule(args.policy)
        check_unseen({POLICY: policy}, args.ids)
        meta = getattr(policy, "meta", {})
        args.policy_about = ", ".join(f"{k} {meta[k]}" for k in ("kind", "algo", "env_id", "observation") if k in meta)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"--policy: {err}")
    start = time.perf_counter()
    rows = [evaluate_id(env_id, policy, args) for env_id in args.ids]
    text = markdown(rows, args, time.perf_counter() - start)
    atomic_write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
