"""The project's main table: learned optimizers against tuned hand-designed ones on held-out
instances of Li & Malik's families, at the trained horizon T = 40 and at T = 100, plus
out-of-distribution variants and a dimension-transfer check.

For each family: train PPO (coordinatewise, hyperparameters from agents/rl/hyperparams.yaml),
optionally meta-train L2L and the meta-LSTM with the same budget of inner steps, tune the
hand-designed baselines on validation instances, and evaluate everything with
`l2o_gym.evaluate` on the same 100 test instances (disjoint seeds). Every figure is measured in
this run; wins and speed-ups are against tuned Adam run on the same instances. Li & Malik's cost
(Σ f - f* over steps 1..T) stands beside the final values, with the evaluations each method used
(L-BFGS's line-search trials included) and its median value after T + 1 evaluations. Each learned
rule is also paired by cost, instance by instance, against its own imitation teacher (rebuilt from
its run's hyperparams.yaml) and against the best tuned one-evaluation-per-step hand rule: wins with
a 95 % Wilson interval, sign-test and Wilcoxon p-values (table `paired.md`, and `--docs`).

    python benchmarks/learned_vs_tuned.py [--envs ...] [--meta] [--out reports/learned_vs_tuned]
        [--docs docs/learned_vs_tuned.md]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from agents.hand_designed.tuning import tuned_optimizer
from agents.rl.policy_comparisons import COMPARE_BEST, COMPARE_TEACHER, compare_policies, run_teacher
from agents.rl.sb3_training import train_sb3
from agents.runtime.saved_rules import load_rule, read_meta
from l2o_gym.atomic_io import atomic_write_text
from l2o_gym.evaluation import EvaluationResult, evaluate
from l2o_gym.metrics import PairedComparison
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
        f"| {label} | {method} | {m.mean_final:.3g} | {m.median_final:.3g} | {m.mean_cost:.3g} | "
        f"{m.evaluations_mean:.0f} | {m.budget_median:.3g} | {wins} | {speed} | {m.divergence_rate:.0%} | {train} |"
    )


HEADER = (
    "| family | method | mean final f - f* | median | mean cost Σ f - f* | evals in T | median at T+1 evals | "
    "wins vs Adam | speed-up | diverged | training |"
)
PAIRED_HEADER = (
    "| family | learned | against | mean cost | theirs | wins / losses / ties | win fraction (95 %) | sign p | "
    "Wilcoxon p |"
)


def paired_row(label: str, c: PairedComparison) -> str:
    return (
        f"| {label} | {c.method} | {c.against} | {c.mean_cost:.3g} | {c.against_mean_cost:.3g} | "
        f"{c.wins} / {c.losses} / {c.ties} | {c.win_fraction:.0%} ({c.win_low:.0%}–{c.win_high:.0%}) | "
        f"{c.sign_test_p:.2g} | {c.wilcoxon_p:.2g} |"
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
    parser.add_argument("--docs", type=Path, default=None, help="also write the tables to this markdown page")
    args = parser.parse_args()
    torch.set_num_threads(1)

    lines = [HEADER, "|---|---|" + "---:|" * 9]
    paired = [PAIRED_HEADER, "|---|---|---|" + "---:|" * 6]
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
        teacher = run_teacher("ppo", trained.best)  # (label, rule) or None without imitation
        teachers = {} if teacher is None else {teacher[0]: teacher[1]}
        teacher_names = {} if teacher is None else {"ppo": teacher[0]}
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
                {**rules_for(env_id, horizon, learned), **teachers},
                env_id,
                instances=args.instances,
                horizon=horizon,
                seed=args.seed,
            )
            results.append(result)
            for method in result.methods:
                lines.append(row(result, method, f"{short}, T={horizon}", wall))
            print("\n".join(lines[-len(result.methods) :]), flush=True)
            comparisons = compare_policies(
                result, list(learned), (COMPARE_TEACHER, COMPARE_BEST), BASELINES, teacher_names
            )
            paired += [paired_row(f"{short}, T={horizon}", c) for c in comparisons]
            print("\n".join(paired[-len(comparisons) :]), flush=True)
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
    (args.out / "paired.md").write_text("\n".join(paired) + "\n")
    print(table + "\n\n" + "\n".join(paired))
    if args.docs is not None:
        atomic_write_text(args.docs, docs_page(table, "\n".join(paired), args))
    print(f"report: {report}; tables: {args.out / 'table.md'}, {args.out / 'paired.md'}")


def docs_page(table: str, paired: str, args: argparse.Namespace) -> str:
    """The markdown page `--docs` writes: the command, the main table and the paired comparisons."""
    command = f"python benchmarks/learned_vs_tuned.py --envs {args.envs} --instances {args.instances}"
    command += f" --seed {args.seed}" + (" --meta" if args.meta else "")
    command += "" if args.timesteps is None else f" --timesteps {args.timesteps}"
    return (
        "# Learned against tuned hand-designed optimizers\n\nWritten by `benchmarks/learned_vs_tuned.py`; "
        f"measured in one run of\n\n    {command}\n\nDefinitions: docs/measuring.md.\n\n{table}\n\n"
        f"## Paired by cost against the teacher and the best one-evaluation rule\n\n{paired}\n"
    )


if __name__ == "__main__":
    main()
