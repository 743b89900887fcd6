"""Reproduce MAML's 5-shot sinusoid table (Finn et al., 2017, appendix): query MSE after 1 / 5 / 10
plain gradient steps (the hand-designed "gd", α = 0.01) from the MAML initialisation and from a network pretrained
on all tasks, on 600 held-out ("test" split) tasks, with 95 % confidence intervals.

The initialisations come from the package's own meta-training (tasks.maml_training), cached under
$L2O_GYM_CACHE (or ~/.cache/l2o_gym); `--meta-iterations` sets how long they train (paper: 70,000).

    python benchmarks/maml_sinusoid_reproduction.py --meta-iterations 70000

The recorded figures live in docs/results.md ("Meta-learning families");
a new run's figures replace them there.
"""

from __future__ import annotations

import argparse
import math

import torch
from torch import Tensor

from agents.hand_designed import make_optimizer
from l2o_gym.unroll import unroll
from tasks.maml_sinusoid import MAMLSinusoidFamily

PAPER = {"maml": (0.67, 0.38, 0.35), "pretrained": (2.41, 2.23, 2.19)}
STEPS = (1, 5, 10)
BLOW_UP = 10.0


def mean_ci(values: Tensor) -> tuple[float, float]:
    """Mean and the half-width of its 95 % normal confidence interval."""
    return float(values.mean()), 1.96 * float(values.std()) / math.sqrt(values.numel())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meta-iterations", type=int, default=20000)
    parser.add_argument("--tasks", type=int, default=600)
    parser.add_argument("--k-shot", type=int, default=5)
    parser.add_argument("--inits", nargs="+", default=["maml", "fomaml", "pretrained"])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)

    rows = []
    for init in args.inits:
        family = MAMLSinusoidFamily(k_shot=args.k_shot, init=init, meta_iterations=args.meta_iterations)
        family.initial_parameters()
        meta = family.init_metadata
        problem = family.sample(args.tasks, torch.Generator().manual_seed(args.seed), split="test")
        start = problem.metrics(problem.init())["query_mse"]
        before = mean_ci(start)
        cells, medians, unstable = [], [], []
        for steps in STEPS:
            curves = unroll(make_optimizer("gd", lr=0.01), problem, steps)
            query = curves.metrics["query_mse"]
            cells.append(mean_ci(query))
            # a task where SGD with α = 0.01 blew up: query MSE more than BLOW_UP above its value at x_0
            unstable.append(int((query > start + BLOW_UP).sum()))
            medians.append(float(query.median()))
        rows.append((init, before, cells, meta, medians, unstable))

    print(
        f"\n{args.k_shot}-shot sinusoid, {args.tasks} test tasks, SGD α = 0.01, "
        f"{args.meta_iterations} meta-iterations (paper: 70,000)\n"
    )
    print("| init | 0 steps | 1 step | 5 steps | 10 steps | paper (1/5/10) | meta-training |")
    print("|---|---|---|---|---|---|---|")
    for init, before, cells, meta, _, _ in rows:
        paper = PAPER.get(init if init != "fomaml" else "maml")
        paper_text = " / ".join(f"{p:.2f}" for p in paper) if args.k_shot == 5 else "-"
        text = " | ".join(f"{m:.3f} ± {c:.3f}" for m, c in [before, *cells])
        source = "cache" if meta.get("from_cache") else "trained now"
        print(f"| {init} | {text} | {paper_text} | {meta.get('seconds', float('nan')):.0f} s ({source}) |")
    print(f"\nMedian query MSE, and the tasks on which SGD blew up (query MSE more than {BLOW_UP:g} above x_0's):\n")
    print("| init | median, 1 step | 5 steps | 10 steps | blown-up tasks at 1/5/10 steps |")
    print("|---|---|---|---|---|")
    for init, _, _, _, medians, unstable in rows:
        text = " | ".join(f"{m:.3f}" for m in medians)
        print(f"| {init} | {text} | {' / '.join(str(u) for u in unstable)} of {args.tasks} |")
    maml = next((r for r in rows if r[0] == "maml"), None)
    if maml is not None and args.k_shot == 5:
        print(
            "\nMAML within 30 % of the paper:",
            [abs(m - p) <= 0.3 * p for (m, _), p in zip(maml[2], PAPER["maml"], strict=True)],
        )
        pretrained = next((r for r in rows if r[0] == "pretrained"), None)
        if pretrained is not None:
            ratios = [p[0] / m[0] for m, p in zip(maml[2], pretrained[2], strict=True)]
            print("pretrained / MAML query MSE at 1/5/10 steps:", [f"{r:.1f}x" for r in ratios])


if __name__ == "__main__":
    main()
