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

The work runs as cells (`l2o_gym.execution`): one per training run, per tuned setting and per
evaluated (table, method), in this process or on Ray (`--backend ray`; `--address` or
$RAY_ADDRESS for a cluster, whose nodes must share --out). Finished cells are kept in OUT/cells,
so a run interrupted resumes where it stopped; the figures do not depend on the backend.

    python benchmarks/learned_vs_tuned.py [--envs ...] [--meta] [--out reports/learned_vs_tuned] [--backend ray]
        [--docs docs/learned_vs_tuned.md]

The recorded figures live in docs/results.md ("Learned optimizers against tuned baselines on held-out problems");
a new run's figures replace them there.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from agents.hand_designed import make_optimizer
from agents.hand_designed.tuning import ensure_tuned
from agents.rl.policy_comparisons import COMPARE_BEST, COMPARE_TEACHER, compare_policies, run_teacher
from agents.rl.training_runs import TrainingRun, train_runs
from agents.runtime.saved_rules import load_rule
from l2o_gym.atomic_io import atomic_write_text
from l2o_gym.evaluation import EvaluationResult
from l2o_gym.evaluation_sweep import EvaluationSpec, evaluate_many
from l2o_gym.execution import parse_backend_args
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


def tables(env_id: str) -> list[tuple[str, int, dict]]:
    """(label, horizon, family kwargs) of every table of a family."""
    short = env_id.split("/")[1].removesuffix("-v0")
    found = [(f"{short}, T={horizon}", horizon, {}) for horizon in (40, 100)]
    return found + [(f"{short} {label}, T=40", 40, kwargs) for label, kwargs in VARIANTS.get(env_id, ())]


def training_runs(args: argparse.Namespace, env_ids: list[str]) -> dict[tuple[str, str], TrainingRun]:
    runs = {}
    for env_id in env_ids:
        short = env_id.split("/")[1].removesuffix("-v0")
        folder = args.out / "runs"
        runs[env_id, "ppo"] = TrainingRun(env_id, "ppo", args.seed, folder / f"{short}_ppo", args.timesteps)
        if args.meta:
            for algo in ("l2l", "meta_lstm"):
                options = {"horizon": 40}
                runs[env_id, algo] = TrainingRun(
                    env_id, algo, args.seed, folder / f"{short}_{algo}", args.meta_timesteps, options
                )
    return runs


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
    args = parse_backend_args(parser)
    torch.set_num_threads(1)
    backend = dict(backend=args.backend, address=args.address)
    env_ids = args.envs.split(",")

    runs = training_runs(args, env_ids)
    trained = train_runs(list(runs.values()), results_dir=args.out / "cells", **backend)
    learned: dict[str, dict] = {env_id: {} for env_id in env_ids}
    wall: dict[str, dict] = {env_id: {} for env_id in env_ids}
    notes = []
    teachers: dict[str, dict] = {env_id: {} for env_id in env_ids}  # env id -> {policy: (label, rule)}
    for (env_id, algo), run in runs.items():
        done = trained[run.key()]
        learned[env_id][algo] = load_rule(done["best"])
        found = run_teacher(algo, done["best"])  # (label, rule), or None without imitation
        if found is not None:
            teachers[env_id][algo] = found
        wall[env_id][algo] = done["wall_s"]
        if algo == "ppo":
            short = env_id.split("/")[1].removesuffix("-v0")
            steps = f"{done['best_step']:,} of {done['timesteps']:,}"
            notes.append(f"- {short}: PPO best model from step {steps} (0: the warm start)")
            print(notes[-1], flush=True)

    requests = [(name, e, h, kw or None) for e in env_ids for _, h, kw in tables(e) for name in BASELINES]
    settings = iter(ensure_tuned(requests, **backend))
    specs, labels = [], []
    for env_id in env_ids:
        for label, horizon, kwargs in tables(env_id):
            rules = {name: make_optimizer(name, **next(settings).hparams) for name in BASELINES}
            all_rules = {**rules, **learned[env_id], **dict(teachers[env_id].values())}
            specs.append(EvaluationSpec(env_id, all_rules, instances=args.instances, horizon=horizon, seed=args.seed))
            specs[-1].family_kwargs = kwargs
            labels.append(label)
    results = evaluate_many(specs, results_dir=args.out / "cells", **backend)

    lines = [HEADER, "|---|---|" + "---:|" * 9]
    paired = [PAIRED_HEADER, "|---|---|---|" + "---:|" * 6]
    for result, label in zip(results, labels, strict=True):
        lines += [row(result, method, label, wall[result.env_id]) for method in result.methods]
        teacher_names = {policy: name for policy, (name, _) in teachers[result.env_id].items()}
        learned_names = list(learned[result.env_id])
        comparisons = compare_policies(result, learned_names, (COMPARE_TEACHER, COMPARE_BEST), BASELINES, teacher_names)
        paired += [paired_row(label, c) for c in comparisons]
    report = write_report(results, args.out / "report")
    table = "\n".join(lines + [""] + notes)
    (args.out / "table.md").write_text(table + "\n")
    (args.out / "paired.md").write_text("\n".join(paired) + "\n")
    print(table + "\n\n" + "\n".join(paired))
    if args.docs is not None:
        atomic_write_text(args.docs, docs_page(table, "\n".join(paired), args))
    print(f"report: {report}; tables: {args.out / 'table.md'}, {args.out / 'paired.md'} (recorded: docs/results.md)")


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
