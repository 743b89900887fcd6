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

    python benchmarks/heldout_suite.py --policy runs/logreg_ppo/best_model [--policy ...] [--instances 50]
        [--horizon 40] [--ids ID,ID] [--out docs/heldout_suite.md]
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from collections.abc import Sequence
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


def evaluate_id(env_id: str, policies: dict[str, UpdateRule], args: argparse.Namespace) -> dict:
    """One held-out id: tune, evaluate every policy beside the baselines, the figures of its rows."""
    start = time.perf_counter()
    rules = {
        name: tuned_optimizer(name, env_id, args.horizon, args.cache, instances=args.tune_instances, seed=args.seed)
        for name in args.baselines
    }
    rules.update(policies)
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
        "wins": {p: {b: int(wins_against(result, p, b).sum()) for b in args.baselines} for p in policies},
        "median": {m: float(final_values(result, m).median()) for m in rules},
        "failures": result.failures(),
        "lbfgs_evals": evaluations_per_step(rules["lbfgs"], problem, args.horizon) if "lbfgs" in rules else None,
        "seconds": time.perf_counter() - start,
    }
    print(
        f"{env_id} ({args.instances} instances): wins {row['wins']}, medians "
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


def _header(args: argparse.Namespace, wall: float) -> list[str]:
    lines = [
        "# The held-out suite",
        "",
        "Written by `benchmarks/heldout_suite.py`; every figure below was measured in one run of",
        "",
        "```",
        "python benchmarks/heldout_suite.py " + " ".join(args.argv),
        "```",
        "",
        f"({wall / 60:.0f} min on this machine; baselines' tuned settings are read from the cache when there).",
        "The suite's ids are test-only: every one refuses the training",
        "split (`tasks/heldout_suite.py`), so no policy has seen them; `l2o-gym evaluate --suite heldout` runs them",
        "from the command line and refuses a policy whose metadata names an evaluated id as its training env.",
        "Protocol: a policy is trained on training families only — one (e.g. `l2o/LogisticRegression-v0`) or the",
        "mixture `l2o/TrainingMixture-v0` (logistic regression, robust linear regression, two-layer net and",
        "quadratic instances in one batch, padded to d = 12: `tasks/mixture_family.py`; `l2o-gym train --env",
        "l2o/TrainingMixture-v0`) — and scored on every held-out family, each one never seen in training.",
        "",
        "Policies: " + "; ".join(f"`{name}`: {about}" for name, about in args.policy_about.items()) + ".",
        *(
            ["(timesteps 0: the validation's best checkpoint was the imitation warm start, before any PPO update.)"]
            if any("timesteps 0 " in about for about in args.policy_about.values())
            else []
        ),
        "They come from `l2o-gym train --env ID --algo ppo --out runs/NAME` with agents/rl/hyperparams.yaml",
        "(logistic regression: `--timesteps 100000`; the mixture: its own entry, 100k steps).",
        f"Baselines tuned per held-out id on its validation split: {', '.join(args.baselines)}.",
        f"{args.instances} test instances per id, horizon T = {args.horizon}, seed {args.seed}.",
        "A win: the policy did not diverge and the baseline diverged or ended strictly lower (f - f* where f* is",
        "known, else f; minibatch tasks: the full-batch objective at x_T). Intervals: Wilson 95 %.",
        "",
        "| id | d | task |",
        "|---|---:|---|",
    ]
    return lines + [f"| {e} | {make_family(e).dim} | {make_family(e).description} |" for e in args.ids]


def markdown(rows: list[dict], args: argparse.Namespace, wall: float) -> str:
    """The report: per task family and over the suite, per id, and every failure."""
    baselines, policies = list(args.baselines), list(args.policy_about)
    head = " | ".join(f"wins vs {b} [95 % CI]" for b in baselines)
    lines = _header(args, wall) + ["", "## Per task family", "", f"| task family | policy | instances | {head} |"]
    lines.append("|---|---|---:|" + "---:|" * len(baselines))
    by_id = {r["env_id"]: r for r in rows}
    groups = {**{g: [e for e in ids if e in by_id] for g, ids in SUITE_GROUPS.items()}, "whole suite": list(by_id)}
    for group, ids in groups.items():
        for policy in policies if ids else []:
            n = sum(by_id[e]["n"] for e in ids)
            rates = " | ".join(_rate(sum(by_id[e]["wins"][policy][b] for e in ids), n) for b in baselines)
            lines.append(f"| {group} | {policy} | {n} | {rates} |")
    medians = " | ".join(f"median {m}" for m in [*policies, *baselines])
    lines += [
        "",
        "## Per held-out id",
        "",
        "Medians of the final value (f - f*, or f where f* is unknown; minibatch tasks: full-batch objective).",
        "L-BFGS's evaluations per step are batched objective calls (its line search); every other method makes",
        "one per step.",
        "",
        f"| id | policy | {head} |",
        "|---|---|" + "---:|" * len(baselines),
    ]
    for r in rows:
        for policy in policies:
            rates = " | ".join(_rate(r["wins"][policy][b], r["n"]) for b in baselines)
            lines.append(f"| {r['env_id']} | {policy} | {rates} |")
    lines += ["", f"| id | {medians} | L-BFGS evals/step |", "|---|" + "---:|" * (len(policies) + len(baselines) + 1)]
    for r in rows:
        values = " | ".join(f"{r['median'][m]:.3g}" for m in [*policies, *baselines])
        evals = "—" if r["lbfgs_evals"] is None else f"{r['lbfgs_evals']:.1f}"
        lines.append(f"| {r['env_id']} | {values} | {evals} |")
    lines += ["", "## Failures (diverged, or ended above the starting objective)", ""]
    lines += [f"- {r['env_id']}: {_failures(r)}" for r in rows]
    return "\n".join(lines) + "\n"


def add_evaluation_options(parser: argparse.ArgumentParser, instances: int) -> None:
    """The options every held-out evaluation takes: instances, tuning, horizon, seed, baselines, cache."""
    parser.add_argument("--instances", type=int, default=instances)
    parser.add_argument("--tune-instances", type=int, default=50)
    parser.add_argument("--horizon", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baselines", default=",".join(BASELINES), help="hand-designed names; adam is required")
    parser.add_argument("--cache", type=Path, default=None, help="tuned-settings cache (see `l2o-gym tune`)")


def comma_separated(text: str) -> list[str]:
    """The non-empty, stripped names of a comma-separated option value."""
    return [name.strip() for name in text.split(",") if name.strip()]


def comma_separated_choice(
    parser: argparse.ArgumentParser, option: str, text: str, allowed: Sequence[str], what: str
) -> list[str]:
    """The names in `text`, at least one and each one of `allowed` (else `parser.error` naming
    `option` and calling the wrong names `what`)."""
    names = comma_separated(text)
    unknown = [name for name in names if name not in allowed]
    if unknown or not names:
        parser.error(f"{option}: not {what}: {unknown}; allowed: {', '.join(allowed)}")
    return names


def check_evaluation_options(
    parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]
) -> argparse.Namespace:
    """`add_evaluation_options`' values checked (a bad one is `parser.error`); baselines as a tuple."""
    args.argv = argv
    args.baselines = tuple(comma_separated(args.baselines))
    if "adam" not in args.baselines:
        parser.error("--baselines: adam is the reference and must be listed")
    if min(args.instances, args.tune_instances, args.horizon) < 1 or args.seed < 0:
        parser.error("--instances, --tune-instances and --horizon must be >= 1, --seed >= 0")
    return args


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--policy", action="append", required=True, help="a saved learned optimizer (folder; repeatable)"
    )
    add_evaluation_options(parser, instances=50)
    parser.add_argument("--ids", default=None, help="comma-separated held-out ids (default: the whole suite)")
    parser.add_argument("--out", type=Path, default=Path("docs/heldout_suite.md"))
    args = check_evaluation_options(parser, parser.parse_args(argv), argv)
    ids = ",".join(HELDOUT_IDS) if args.ids is None else args.ids
    args.ids = comma_separated_choice(parser, "--ids", ids, HELDOUT_IDS, "held-out ids")
    return args


def main(argv: list[str] | None = None) -> None:
    torch.set_num_threads(1)
    args = parse_args(sys.argv[1:] if argv is None else argv)
    policies, args.policy_about = {}, {}
    for path in args.policy:
        name = Path(path).resolve().parent.name if Path(path).name == "best_model" else Path(path).resolve().name
        try:
            policies[name] = load_rule(path)
            check_unseen({name: policies[name]}, args.ids)
        except (FileNotFoundError, ValueError) as err:
            sys.exit(f"--policy {path}: {err}")
        meta = getattr(policies[name], "meta", {})
        keys = ("kind", "algo", "env_id", "observation", "timesteps")
        about = ", ".join(f"{k} {meta[k]}" for k in keys if k in meta)
        args.policy_about[name] = f"{about} ({path})"
    start = time.perf_counter()
    rows = [evaluate_id(env_id, policies, args) for env_id in args.ids]
    text = markdown(rows, args, time.perf_counter() - start)
    atomic_write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
