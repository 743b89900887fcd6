"""Faster PPO settings against the default on logistic regression: speed, and whether the learned
results move.

In one run: (1) PPO problem-steps/s of the baseline configuration (`--baseline`, by default the
settings before this check: agents/rl/ppo_logistic_previous.yaml) and of each candidate
(`--candidates`; config files merged over agents/rl/hyperparams.yaml, `default` for that file as
it is), measured alternately in
this process (`benchmarks.ppo_throughput`: CPU time and wall time, median of `--rounds` rounds,
the ratio to the baseline's); (2) full-length training of each configuration with every seed of
`--seeds` (agents/rl/hyperparams.yaml's budget unless `--timesteps`; imitation warm start and
validation as configured); (3) the warm start, the best model (chosen on validation) and the final
model of every run evaluated on the same `--instances` held-out test instances at T = 40 and
T = 100 beside tuned Adam and tuned window_qn (the imitation teacher), paired by Li & Malik's cost
(wins, mean cost). A candidate's figure is flagged as moved where its mean over seeds lies outside
the baseline's range over seeds (the seed spread is the noise).

Training runs and evaluations are cells (`l2o_gym.execution`) kept under `--out`, so an
interrupted check resumes (cells name a configuration by its file: clear `--out` after editing
one); the page (`--docs`) keeps its notes below the marker.

    python -m benchmarks.ppo_speed_check [--baseline agents/rl/ppo_logistic_previous.yaml]
        [--candidates default,agents/rl/ppo_fast.yaml] [--seeds 0,1,2] [--instances 200] [--rounds 3]
        [--out reports/ppo_speed_check] [--docs docs/ppo_speed.md]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from benchmarks.ppo_throughput import PPO_ENV, PPOThroughput, measure_ppo

HORIZONS = (40, 100)
AGAINST = ("adam", "window_qn")
MODELS = ("warm_start", "best_model", "model")  # run folders: the warm start, the best, the final model
DEFAULT = "default"  # names agents/rl/hyperparams.yaml as it is in --baseline / --candidates
PREVIOUS = "agents/rl/ppo_logistic_previous.yaml"  # the settings before this check made the faster ones default
KEEP_MARKER = "<!-- notes below are kept when the benchmark rewrites this file -->"


def label(config: str | None) -> str:
    """A configuration's short name: "default", or its file's stem without "ppo_"."""
    return DEFAULT if config is None else Path(config).stem.removeprefix("ppo_")


def throughput_table(configs: list[str | None], rounds: int, quick: bool) -> list[str]:
    """Markdown rows: problem-steps/s (CPU, wall; median of `rounds` alternating rounds) of the
    baseline with SB3's own PPO and torch's tanh (the code before agents/rl/fast_tanh.py and
    truncation_bootstrap.py), then of every configuration as `train_sb3` runs it; ratios to the first."""
    cases = [(configs[0], False), *((config, True) for config in configs)]
    measured: dict[tuple[str | None, bool], list[PPOThroughput]] = {case: [] for case in cases}
    for _ in range(rounds):
        for config, speedups in cases:
            last = measure_ppo(config, rollouts=1 if quick else 4, quick=quick, speedups=speedups)
            measured[config, speedups].append(last)
            print(
                f"{case_label(config, speedups)}: {last.cpu_rate:,.0f} problem-steps/s CPU, {last.wall_rate:,.0f} wall"
            )
    first_cpu = statistics.median(m.cpu_rate for m in measured[cases[0]])
    first_wall = statistics.median(m.wall_rate for m in measured[cases[0]])
    lines = [
        "| configuration | instances × d | problem-steps/s (CPU) | × first | problem-steps/s (wall) | × first "
        "| update share (CPU) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for (config, speedups), runs in measured.items():
        cpu, wall = statistics.median(m.cpu_rate for m in runs), statistics.median(m.wall_rate for m in runs)
        share = statistics.median(m.update_share for m in runs)
        size = f"{runs[0].num_envs} × {runs[0].dim}"
        lines.append(
            f"| {case_label(config, speedups)} | {size} | {cpu:,.0f} | {cpu / first_cpu:.2f}× "
            f"| {wall:,.0f} | {wall / first_wall:.2f}× | {share:.0%} |"
        )
    return lines


def case_label(config: str | None, speedups: bool) -> str:
    return label(config) + ("" if speedups else " (SB3's own PPO, torch tanh)")


def training(configs: list[str | None], args: argparse.Namespace) -> dict[tuple[str | None, int], dict]:
    """(configuration, seed) -> the finished training cell (best folder, timesteps, best step, wall)."""
    from agents.rl.training_runs import TrainingRun, train_runs

    runs = {
        (config, seed): TrainingRun(
            PPO_ENV,
            "ppo",
            seed,
            args.out / "runs" / f"{label(config)}_s{seed}",
            args.timesteps,
            {} if config is None else {"config": config},
        )
        for config in configs
        for seed in args.seeds
    }
    done = train_runs(list(runs.values()), results_dir=args.out / "cells")
    return {key: {**done[run.key()], "folder": Path(run.out_dir)} for key, run in runs.items()}


def evaluation(trained: dict, args: argparse.Namespace) -> dict[int, object]:
    """horizon -> the evaluation of every run's models beside tuned Adam and window_qn."""
    from agents.hand_designed import make_optimizer
    from agents.hand_designed.tuning import ensure_tuned
    from agents.runtime.saved_rules import load_rule
    from l2o_gym.evaluation_sweep import EvaluationSpec, evaluate_many

    settings = iter(ensure_tuned([(name, PPO_ENV, h, None) for h in HORIZONS for name in AGAINST]))
    learned = {
        method_name(config, seed, model): load_rule(cell["folder"] / model)
        for (config, seed), cell in trained.items()
        for model in MODELS
    }
    specs = []
    for horizon in HORIZONS:
        tuned = {name: make_optimizer(name, **next(settings).hparams) for name in AGAINST}
        specs.append(EvaluationSpec(PPO_ENV, {**tuned, **learned}, instances=args.instances, horizon=horizon))
    return dict(zip(HORIZONS, evaluate_many(specs, results_dir=args.out / "cells"), strict=True))


def method_name(config: str | None, seed: int, model: str) -> str:
    return f"{label(config)}_s{seed}_{model}"


def spread(values: list[float], percent: bool) -> str:
    """mean [min – max] of the seeds' figures."""
    show = (lambda v: f"{100 * v:.1f}") if percent else (lambda v: f"{v:.4g}")
    return f"{show(statistics.fmean(values))} [{show(min(values))}–{show(max(values))}]"


def moved_lines(what: str, ours: list[list[float]], theirs: list[list[float]], baseline: str) -> list[str]:
    """A line for each figure (wins against each tuned rule, mean cost; one list of seeds each)
    whose mean over our seeds lies outside the baseline's range over its seeds, saying which way."""
    lines = []
    for name, values, base in zip([*AGAINST, "mean cost"], ours, theirs, strict=True):
        mean = statistics.fmean(values)
        if min(base) <= mean <= max(base):
            continue
        better = mean < min(base) if name == "mean cost" else mean > max(base)
        lines.append(
            f"- {what} {name}: mean {mean:.4g} outside {baseline}'s range [{min(base):.4g}, {max(base):.4g}] "
            f"({'better' if better else 'worse'})"
        )
    return lines


def results_table(configs: list[str | None], seeds: list[int], results: dict) -> tuple[list[str], list[str]]:
    """Markdown rows (configuration, model, horizon: wins % against each tuned rule and mean cost,
    mean [range] over seeds) and the lines naming every candidate figure whose mean lies outside the
    baseline's (the first configuration's) range."""
    from l2o_gym.evaluation import compare

    header = "| configuration | model | T | " + " | ".join(f"wins vs {a} %" for a in AGAINST) + " | mean cost |"
    lines = [header, "|---|---|---:|" + "---:|" * (len(AGAINST) + 1)]
    moved = []
    figures: dict[tuple[str | None, str, int], list[list[float]]] = {}
    for config in configs:
        for model in MODELS:
            for horizon, result in results.items():
                per_seed = []
                for seed in seeds:
                    name = method_name(config, seed, model)
                    wins = [compare(result, name, a).win_fraction for a in AGAINST]
                    per_seed.append([*wins, result.metrics[name].mean_cost])
                columns = [list(c) for c in zip(*per_seed, strict=True)]
                figures[config, model, horizon] = columns
                cells = [spread(c, percent=i < len(AGAINST)) for i, c in enumerate(columns)]
                lines.append(f"| {label(config)} | {model} | {horizon} | " + " | ".join(cells) + " |")
                if config != configs[0]:
                    what = f"{label(config)} {model} T={horizon}"
                    moved += moved_lines(what, columns, figures[configs[0], model, horizon], label(configs[0]))
    for horizon, result in results.items():
        for name in AGAINST:
            blank = " | ".join(
                "—" if a == name else f"{100 * compare(result, name, a).win_fraction:.1f}" for a in AGAINST
            )
            lines.append(f"| tuned {name} | — | {horizon} | {blank} | {result.metrics[name].mean_cost:.4g} |")
    return lines, moved


def runs_table(trained: dict) -> list[str]:
    lines = ["| run | best model at step | timesteps | training wall (s) |", "|---|---:|---:|---:|"]
    for (config, seed), cell in trained.items():
        lines.append(
            f"| {label(config)} seed {seed} | {cell['best_step']:,} | {cell['timesteps']:,} | {cell['wall_s']:.0f} |"
        )
    return lines


def page(args: argparse.Namespace, speed: list[str], results: list[str], moved: list[str], runs: list[str]) -> str:
    candidates = ",".join(args.candidates)
    seeds = ",".join(map(str, args.seeds))
    command = f"python -m benchmarks.ppo_speed_check --baseline {args.baseline} --candidates {candidates}"
    command += f" --seeds {seeds}"
    command += f" --instances {args.instances} --rounds {args.rounds}"
    command += "" if args.timesteps is None else f" --timesteps {args.timesteps}"
    verdict = "\n".join(moved) if moved else "No candidate's mean lies outside the baseline's range over seeds."
    verdict = "Figures outside the baseline's range over seeds:\n\n" + verdict if moved else verdict
    return "\n".join(
        [
            "# PPO speed: faster settings against the default",
            "",
            f"Written by `benchmarks/ppo_speed_check.py` (torch {torch.__version__}, 1 thread), measured in one run of",
            "",
            f"    {command}",
            "",
            f"## Problem-steps/s on {PPO_ENV} (median of {args.rounds} alternating rounds)",
            "",
            *speed,
            "",
            f"## Learned against tuned, {args.instances} test instances (mean [min–max] over seeds {seeds})",
            "",
            "Wins: paired by Li & Malik's cost on the same instances. `warm_start`: the imitation warm",
            "start PPO begins from; `best_model`: chosen on validation; `model`: the final one.",
            "",
            *results,
            "",
            verdict,
            "",
            *runs,
            "",
        ]
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The checked arguments; `configs`: the baseline, then the candidates (None: hyperparams.yaml as it is)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", default=DEFAULT, help="comma-separated config files or 'default'")
    parser.add_argument("--baseline", default=PREVIOUS, help="a config file or 'default' (hyperparams.yaml as it is)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="alternating throughput rounds")
    parser.add_argument("--timesteps", type=int, default=None, help="training budget (default: hyperparams.yaml)")
    parser.add_argument("--out", type=Path, default=Path("reports") / "ppo_speed_check")
    parser.add_argument("--docs", type=Path, default=None, help="also write the page here (e.g. docs/ppo_speed.md)")
    parser.add_argument("--throughput-only", action="store_true", help="only the problem-steps/s table")
    parser.add_argument("--quick", action="store_true", help="tiny throughput sizes: a smoke test")
    args = parser.parse_args(argv)
    args.candidates = [c for c in args.candidates.split(",") if c]
    named = [args.baseline, *args.candidates]
    missing = [c for c in named if c != DEFAULT and not Path(c).is_file()]
    if missing or not args.candidates or len(set(named)) < len(named):
        allowed = f"distinct existing config files or {DEFAULT!r}"
        parser.error(f"--baseline and --candidates must name {allowed}, got {missing or named}")
    args.configs = [None if c == DEFAULT else c for c in named]
    try:
        args.seeds = sorted({int(s) for s in args.seeds.split(",")})
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers >= 0, got {args.seeds!r}")
    for name in ("instances", "rounds", "timesteps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be a positive integer, got {value}")
    if min(args.seeds) < 0:
        parser.error(f"--seeds must be integers >= 0, got {args.seeds}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    configs = args.configs
    started = time.perf_counter()
    speed = throughput_table(configs, args.rounds, args.quick)
    print("\n".join(speed), flush=True)
    if args.throughput_only:
        return 0
    trained = training(configs, args)
    results, moved = results_table(configs, args.seeds, evaluation(trained, args))
    runs = runs_table(trained)
    print("\n".join(["", *results, "", *(moved or ["nothing moved beyond the seed range"]), "", *runs]))
    if args.docs is not None:
        from l2o_gym.atomic_io import atomic_write_text

        kept = args.docs.read_text().partition(KEEP_MARKER)[2] if args.docs.is_file() else ""
        atomic_write_text(args.docs, page(args, speed, results, moved, runs) + "\n" + KEEP_MARKER + (kept or "\n"))
        print(f"wrote {args.docs}")
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
