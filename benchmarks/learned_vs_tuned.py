"""The project's main table: learned optimizers against tuned hand-designed ones on held-out
instances of Li & Malik's families, at the trained horizon T = 40 and at T = 100, plus
out-of-distribution variants and a dimension-transfer check.

For each family: train PPO (coordinatewise, hyperparameters from agents/rl/hyperparams.yaml),
optionally meta-train L2L and the meta-LSTM with the same budget of inner steps, tune the
hand-designed baselines on validation instances, and evaluate everything with
`l2o_gym.evaluate` on the same 100 test instances (disjoint seeds). Every figure is measured in
this run; wins and speed-ups are against tuned Adam run on the same instances.

    python benchmarks/learned_vs_tuned.py [--envs ...] [--meta] [--out reports/learned_vs_tuned]

The recorded figures live in docs/results.md ("Learned optimizers against tuned baselines on held-out problems");
a new run's figures replace them there.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from agents.hand_designed.tuning import tuned_optimizer
from agents.rl.sb3_training import train_sb3
from agents.runtime.saved_rules import load_rule, read_meta
from l2o_gym.evaluation import EvaluationResult, evaluate
from l2o_gym.report import write_report

FAMILIES = ("l2o/LogisticRegression-v0", "l2o/RobustLinearRegression-v0", "l2o/TwoLayerNet-v0")
BASELINES = ("adam", "momentum", "nesterov", "lbfgs", "window_qn", "window_adam_qn")
# out-of-distribution variants per family: (label, family kwargs)
VARIANTS = {
    "l2o/LogisticRegression-v0": (("10x dimension (d=31)", {"dim": 30}), ("4x points", {"n_points": 400})),
    "l2o/RobustLinearRegression-v0": (("10x dimension (d=31)", {"dim": 30}), ("noise 1.0", {"noise_std": 1.0})),
    "l2o/TwoLayerNet-v0": (("hidden 20 (d=102)", {"hidden": 20}), ("4x points", {"points_per_cluster": 100})),
}


def rules_for(env_id: str, horizon: int, learned: dict, family_kwargs: dict | None = None) -> dict:
    rules = {name: tuned_optimizer(name, env_id, horizon, family_kwargs=family_kwargs or None) for name in BASELINES}
    return {**rules, **learned}


def row(result: EvaluationResult, method: str, label: str, wall: dict) -> str:
    m = result.metrics[method]
    if m.speedup_median is None:
        speed = "—"
    elif math.isinf(m.speedup_median):  # Adam never reaches it within its longer run
        speed = f">{result.reference_horizon / result.horizon:.0f}x"
    else:
        speed = f"{m.speedup_median:.2f}x"
    wins = "—" if m.win_rate is None else f"{m.win_rate:.0%}"
    train = f"{wall[method]:.0f} s" if method in wall else "—"
    return (
        f"| {label} | {method} | {m.mean_final:.3g} | {m.median_final:.3g} | {wins} | {speed} | "
        f"{m.divergence_rate:.0%} | {train} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", default=",".join(FAMILIES))
    parser.add_argument("--timesteps", type=int, default=None, help="PPO budget (default: hyperparams.yaml)")
    parser.add_argument("--meta", action="store_true", help="also meta-train L2L and the meta-LSTM")
    parser.add_argument("--meta-timesteps", type=int, default=3_200_000)
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("reports") / "learned_vs_tuned")
    args = parser.parse_args()
    torch.set_num_threads(1)

    header = "| family | method | mean final f - f* | median | wins vs Adam | speed-up | diverged | training |"
    lines = [header, "|---|---|---:|---:|---:|---:|---:|---:|"]
    results, notes = [], []
    for env_id in args.envs.split(","):
        short = env_id.split("/")[1].removesuffix("-v0")
        learned, wall = {}, {}
        start = time.perf_counter()
        trained = train_sb3(
            env_id,
            "ppo",
            out_dir=args.out / "runs" / f"{short}_ppo",
            timesteps=args.timesteps,
            seed=args.seed,
            progress_bar=False,
        )
        wall["ppo"] = time.perf_counter() - start
        learned["ppo"] = load_rule(trained.best)
        best_step = read_meta(trained.best)["timesteps"]
        notes.append(f"- {short}: PPO best model from step {best_step:,} of {trained.timesteps:,} (0: the warm start)")
        print(notes[-1], flush=True)
        if args.meta:
            from agents.meta.meta_training import train_meta_optimizer

            for algo in ("l2l", "meta_lstm"):
                start = time.perf_counter()
                best = train_meta_optimizer(
                    env_id,
                    algo,
                    args.meta_timesteps,
                    args.seed,
                    args.out / "runs" / f"{short}_{algo}",
                    horizon=40,
                    progress=False,
                )
                wall[algo] = time.perf_counter() - start
                learned[algo] = load_rule(best)
        for horizon in (40, 100):
            result = evaluate(
                rules_for(env_id, horizon, learned), env_id, instances=args.instances, horizon=horizon, seed=args.seed
            )
            results.append(result)
            for method in result.methods:
                lines.append(row(result, method, f"{short}, T={horizon}", wall))
            print("\n".join(lines[-len(result.methods) :]), flush=True)
        for label, kwargs in VARIANTS.get(env_id, ()):
            result = evaluate(
                rules_for(env_id, 40, learned, kwargs),
                env_id,
                instances=args.instances,
                horizon=40,
                seed=args.seed,
                family_kwargs=kwargs,
            )
            results.append(result)
            for method in result.methods:
                lines.append(row(result, method, f"{short} {label}, T=40", wall))
            print("\n".join(lines[-len(result.methods) :]), flush=True)
    report = write_report(results, args.out / "report")
    table = "\n".join(lines + [""] + notes)
    (args.out / "table.md").write_text(table + "\n")
    print(table)
    print(f"report: {report}; table: {args.out / 'table.md'} (the recorded one: docs/results.md)")


if __name__ == "__main__":
    main()
