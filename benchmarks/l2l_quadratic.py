"""Reproduce Andrychowicz et al.'s quadratic result: the L2L LSTM against learning-rate-tuned Adam.

On l2o/Quadratic-v0 (d = 10, T = 100 steps, meta-trained by truncated BPTT in unrolls of 20, batch
128, Adam 1e-3), meta-train the L2L optimizer and Ravi & Larochelle's meta-LSTM within a budget of
inner steps, then run them and tuned Adam on the same 100 held-out test instances. Adam's learning
rate is tuned on validation instances (never the test ones) two ways: by `agents.hand_designed.tuning.tune` (mean
Li & Malik cost Σ f/f0, fine log grid), and by the mean final objective (the figure compared here,
the strongest Adam for it). Tuned Nesterov momentum is shown for context. Prints mean and median
final objective, win rate against each tuned baseline, and meta-training wall time, all measured in
this run. Writes results.json to --out.

    python benchmarks/l2l_quadratic.py [--timesteps 3200000] [--out runs/l2l_quadratic]

The recorded figures live in docs/results.md ("L2L and the meta-LSTM on the quadratic");
a new run's figures replace them there.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from agents.hand_designed import make_optimizer
from agents.hand_designed.tuning import tune
from agents.meta.meta_training import train_meta_optimizer
from agents.runtime.saved_rules import load_rule
from l2o_gym import make_family
from l2o_gym.unroll import unroll

ENV = "l2o/Quadratic-v0"
HORIZON = 100
LR_GRID = [float(f"{10 ** (k / 8):.4g}") for k in range(-24, 5)]  # 1e-3 .. 3.16, 8 points per decade


def adam_tuned_by_final(family, instances: int, seed: int) -> float:
    problem = family.sample(instances, torch.Generator().manual_seed(seed), split="validation")
    scores = {lr: float(unroll(make_optimizer("adam", lr=lr), problem, HORIZON).final.mean()) for lr in LR_GRID}
    return min(scores, key=scores.get)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timesteps", type=int, default=3_200_000, help="inner steps per meta-trained optimizer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-instances", type=int, default=100)
    parser.add_argument("--out", type=Path, default=None, help="run folder (default: a temporary one)")
    parser.add_argument("--skip-meta-lstm", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = args.out or Path(tempfile.mkdtemp(prefix="l2l_quadratic_"))
    family = make_family(ENV)

    began = time.perf_counter()
    setting = tune("adam", ENV, split="validation", horizon=HORIZON, instances=100, grid={"lr": LR_GRID})
    lr_final = adam_tuned_by_final(family, 100, seed=0)
    nesterov = tune("nesterov", ENV, split="validation", horizon=HORIZON, instances=100)
    tuning_s = time.perf_counter() - began
    rules = {
        "adam-cost": make_optimizer("adam", **setting.hparams),
        "adam-final": make_optimizer("adam", lr=lr_final),
        "nesterov-cost": make_optimizer("nesterov", **nesterov.hparams),
    }
    walls = {}
    for algo in ("l2l",) if args.skip_meta_lstm else ("l2l", "meta_lstm"):
        began = time.perf_counter()
        path = train_meta_optimizer(
            ENV,
            algo,
            args.timesteps,
            args.seed,
            out / algo,
            horizon=HORIZON,
            truncation=20,
            batch_size=128,
            progress=False,
            validation_every=25,
        )
        walls[algo] = time.perf_counter() - began
        rules[algo] = load_rule(path)

    test = family.sample(args.test_instances, torch.Generator().manual_seed(12345), split="test")
    finals = {}
    for name, rule in rules.items():
        problem = family.sample(args.test_instances, torch.Generator().manual_seed(12345), split="test")
        curves = unroll(rule, problem, HORIZON)
        finals[name] = (curves.final, int(curves.diverged.sum()))
    assert torch.equal(problem.x0, test.x0)  # every method ran on the same test instances

    adam_names = [n for n in rules if n.startswith(("adam", "nesterov"))]
    print(f"{ENV}: d = {family.dim}, T = {HORIZON}, {args.test_instances} test instances; "
          f"Adam tuning {tuning_s:.1f} s on validation instances")  # fmt: skip
    print(f"adam-cost: lr {setting.hparams['lr']:g} (tuning.tune, mean Σ f/f0); adam-final: lr {lr_final:g}")
    print(
        f"nesterov-cost (context, not asked for): {nesterov.hparams} (agents.hand_designed.tuning.tune, default grid)"
    )
    header = "| method | mean final f | median final f | diverged | " + " | ".join(f"wins vs {n}" for n in adam_names)
    print(header + " | meta-training wall time |")
    print("|" + "---|" * (5 + len(adam_names)))
    results = {}
    for name, (final, diverged) in finals.items():
        wins = [float((final < finals[a][0]).float().mean()) for a in adam_names]
        wall = f"{walls[name]:.0f} s" if name in walls else "-"
        cells = " | ".join(f"{100 * w:.0f} %" for w in wins)
        print(f"| {name} | {final.mean():.4g} | {final.median():.4g} | {diverged} | {cells} | {wall} |")
        results[name] = {
            "mean_final": float(final.mean()),
            "median_final": float(final.median()),
            "diverged": diverged,
            "win_rate_vs": dict(zip(adam_names, wins, strict=True)),
            "meta_training_wall_s": walls.get(name),
        }
    for algo in walls:
        for adam in adam_names:
            ratio = float(finals[algo][0].mean() / finals[adam][0].mean())
            print(f"{algo}: mean final objective / {adam}'s = {ratio:.3f}")
    (out / "results.json").write_text(json.dumps({"timesteps": args.timesteps, "results": results}, indent=2))
    print(f"results and saved models in {out}")


if __name__ == "__main__":
    main()
