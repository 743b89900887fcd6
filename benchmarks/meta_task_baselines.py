"""Tuned hand-designed baselines on the meta-learning families, and the checks that they learn.

For each family: every learning rate of a small grid runs on the same "validation" instances; the
one with the lowest final objective then runs on fresh "test" instances. Printed per family and
rule: the final objective and the task's own metric (mean ± 95 % CI over instances).

* MAMLSinusoid / MAMLDigits: plain gradient steps (gd, MAML's inner rule) and Adam, 10 steps.
* MANNDigits: Adam trains the MANN on episodes of the TRAINING classes; accuracy by presentation
  is then measured on fixed episodes of the held-out TEST classes (the test-split problem's
  metrics at the trained weights). Chance is 1 / N = 20 %.
* HyperNetDigits: Adam on the hypernetwork classifier and on the same classifier with direct
  kernels (hyper=False); test accuracy on each task's held-out images.

    python benchmarks/meta_task_baselines.py                # all families
    python benchmarks/meta_task_baselines.py --only mann    # one of: sinusoid digits mann hypernet

The recorded figures live in docs/results.md ("Meta-learning families");
a new run's figures replace them there.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import Tensor

from agents.hand_designed import make_optimizer
from l2o_gym.problem import Problem, TaskFamily
from l2o_gym.registry import make_family
from l2o_gym.state import OptimizationState


def mean_ci(values: Tensor) -> str:
    values = values.double()
    half = 1.96 * float(values.std()) / math.sqrt(values.numel()) if values.numel() > 1 else float("nan")
    return f"{float(values.mean()):.3f} ± {half:.3f}"


def run(
    rule_name: str, lr: float, problem: Problem, steps: int, log_every: int = 0, eval_problem: Problem | None = None
) -> OptimizationState:
    """`steps` steps of the rule through the gym's one transition; returns the final state."""
    rule = make_optimizer(rule_name, lr=lr)
    state = OptimizationState.start(problem)
    rule.reset(state)
    for t in range(steps):
        state.advance(rule.step(state))
        if log_every and (t + 1) % log_every == 0:
            shown = (eval_problem or problem).metrics(state.x)
            text = ", ".join(f"{k} {float(v.mean()):.3f}" for k, v in shown.items())
            print(f"    {rule_name} lr={lr:g} step {t + 1}: objective {float(state.f.mean()):.4f}; {text}", flush=True)
    return state


def tune_and_test(
    label: str,
    family: TaskFamily,
    rule_name: str,
    lrs: list[float],
    steps: int,
    instances: int,
    metric: str,
    problem_split: str = "test",
    eval_split: str | None = None,
    log_every: int = 0,
    tune_steps: int | None = None,
) -> dict:
    """Pick the lr with the lowest mean final objective after `tune_steps` (default `steps`) steps on
    validation instances, then run it for `steps` steps on fresh instances of `problem_split`."""
    started = time.perf_counter()
    scores = {}
    for lr in lrs:
        validation = family.sample(instances, torch.Generator().manual_seed(100), split="validation")
        state = run(rule_name, lr, validation, tune_steps or steps)
        final = torch.where(state.diverged, torch.full_like(state.f, float("inf")), state.f)
        scores[lr] = float(final.mean())
        print(f"  {label} {rule_name} lr={lr:g}: validation objective {scores[lr]:.4f}", flush=True)
    best = min(scores, key=scores.get)
    problem = family.sample(instances, torch.Generator().manual_seed(200), split=problem_split)
    evaluation = family.sample(instances, torch.Generator().manual_seed(300), split=eval_split) if eval_split else None
    start_metrics = (evaluation or problem).metrics(problem.init())
    state = run(rule_name, best, problem, steps, log_every, evaluation)
    metrics = (evaluation or problem).metrics(state.x)
    return {
        "family": label,
        "rule": f"{rule_name} (lr {best:g})",
        "steps": steps,
        "f0": mean_ci(state.f0),
        "final": mean_ci(state.f),
        "metric": metric,
        "start": mean_ci(start_metrics[metric]),
        "value": mean_ci(metrics[metric]),
        "metrics": {k: float(v.mean()) for k, v in metrics.items()},
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", default=["sinusoid", "digits", "mann", "hypernet"])
    parser.add_argument("--instances", type=int, default=4)
    parser.add_argument("--mann-steps", type=int, default=1000)
    parser.add_argument("--mann-tune-steps", type=int, default=300)
    parser.add_argument("--hypernet-steps", type=int, default=200)
    parser.add_argument("--maml-iterations", type=int, default=None, help="meta-iterations of the MAML inits")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    maml_kwargs = {} if args.maml_iterations is None else {"meta_iterations": args.maml_iterations}
    if "sinusoid" in args.only:
        family = make_family("l2o/MAMLSinusoid-v0", **maml_kwargs)
        for rule, lrs in (("gd", [0.003, 0.01, 0.03]), ("adam", [0.001, 0.003, 0.01, 0.03])):
            rows.append(tune_and_test("MAMLSinusoid (5-shot)", family, rule, lrs, 10, 64, "query_mse"))
    if "digits" in args.only:
        family = make_family("l2o/MAMLDigits-v0", **maml_kwargs)
        for rule, lrs in (("gd", [0.1, 0.4, 1.0]), ("adam", [0.001, 0.003, 0.01, 0.03])):
            rows.append(tune_and_test("MAMLDigits (5-way 1-shot)", family, rule, lrs, 10, 64, "query_accuracy"))
    if "mann" in args.only:
        family = make_family("l2o/MANNDigits-v0")
        rows.append(
            tune_and_test(
                "MANNDigits (5-way, held-out classes)",
                family,
                "adam",
                [1e-3, 3e-3, 1e-2, 3e-2],
                args.mann_steps,
                args.instances,
                "accuracy_2nd",
                problem_split="train",
                eval_split="test",
                log_every=100,
                tune_steps=args.mann_tune_steps,
            )
        )
    if "hypernet" in args.only:
        for hyper in (True, False):
            family = make_family("l2o/HyperNetDigits-v0", hyper=hyper)
            label = "HyperNetDigits" if hyper else "same classifier, direct weights"
            rows.append(
                tune_and_test(
                    label,
                    family,
                    "adam",
                    [1e-3, 3e-3, 1e-2, 3e-2],
                    args.hypernet_steps,
                    args.instances,
                    "test_accuracy",
                )
            )

    print("\n| family | rule (tuned on validation) | steps | f(x_0) | final objective | metric | at x_0 | final |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['family']} | {r['rule']} | {r['steps']} | {r['f0']} | {r['final']} | {r['metric']} | "
            f"{r['start']} | {r['value']} |"
        )
    for r in rows:
        if r["family"].startswith("MANN"):
            print(
                "\nMANN accuracy by presentation on held-out classes:",
                {k: round(v, 3) for k, v in r["metrics"].items()},
            )
    print("\nseconds per row:", [round(r["seconds"]) for r in rows])


if __name__ == "__main__":
    main()
