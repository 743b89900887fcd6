"""Guided policy search against tuned momentum and tuned Adam on held-out instances.

For each family: train GPS (agents/gps, from tuned momentum) within the given options, then run
the trained policy and the tuned one-evaluation-per-step rules (momentum, Nesterov, Adam,
window_qn, window_adam_qn; tuned on the validation split at each horizon,
`agents.hand_designed.tuning`) on the same new test instances of the family (the test split's seed
stream, disjoint from training and validation). Per instance Li & Malik's cost Σ_{t=1..T} (f − f*)
is compared pairwise: win rate of GPS (ties count half) with a 95 % Wilson interval, the two-sided
sign test (ties dropped) and the Wilcoxon signed-rank test, and the ratio of mean costs, against tuned
momentum, tuned Adam and the rule with the lowest mean cost; then every rule's mean cost. Every figure
is measured in this run. The table is written into docs/gps.md between its results markers.

    python benchmarks/gps_vs_tuned.py [--envs l2o/LogisticRegression-v0,...] [--instances 200]
        [--horizons 40,100] [--out runs/gps_bench] [--config agents/gps/gps_benchmark.yaml] [--doc docs/gps.md]
        [--label NAME] [--split test|validation] [--each-run]

`--config` holds GPS options per family (agents.gps.family_options: a `shared` section and
per-environment `families` overrides, or a flat mapping for every family); its default is the
benchmark's own choice, `agents/gps/gps_benchmark.yaml`. A family's training-instance count is Li &
Malik's unless the config sets `instances`. A family whose options set `restarts: K` (K > 1) trains K
runs with seeds seed .. seed + K − 1 (out/FAMILY/run{k}) and keeps the one whose best/ wins most often
against tuned Adam at its training T and at T = 100 on the selection instances
(agents.gps.restarts); its training time is the sum over the K runs and the selection.

`--split validation` compares on validation instances instead (the tuned baselines' own split: for
choosing GPS's options, never for the report).

A run folder that already holds a trained GPS optimizer is reused (its training time as recorded),
never overwritten; one trained with other options than the config's is an error before any work.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import NamedTuple

import torch
from scipy.stats import binomtest, wilcoxon

from agents.gps.family_options import family_options_from_config
from agents.gps.options import GPSOptions
from agents.gps.restarts import choice_file, choose_run, restart_runs, selection_scores, summed_seconds
from agents.gps.training import OPTIONS_FILE, options_differing, train_gps
from agents.hand_designed.tuning import tuned_optimizer
from agents.runtime.saved_rules import load_rule
from l2o_gym.atomic_io import atomic_write_json, atomic_write_text
from l2o_gym.metrics import cost, curve_values
from l2o_gym.registry import l2o_env_ids, make_family
from l2o_gym.unroll import unroll

FAMILIES = ("l2o/LogisticRegression-v0", "l2o/RobustLinearRegression-v0", "l2o/TwoLayerNet-v0")
TRAIN_INSTANCES = {  # Li & Malik's numbers of training functions
    "l2o/LogisticRegression-v0": 90,
    "l2o/RobustLinearRegression-v0": 120,
    "l2o/TwoLayerNet-v0": 80,
}
BASELINES = ("momentum", "adam")  # compared pairwise by name
ONE_EVALUATION_RULES = ("momentum", "nesterov", "adam", "window_qn", "window_adam_qn")  # the best is compared too
SELECTION_HORIZON = 100  # pooled runs are chosen by wins vs tuned Adam at the training T and at this one
START, END = "<!-- gps results: start -->", "<!-- gps results: end -->"
EACH_RUN_HEADER = [
    "",
    "Each pooled run on the same instances (`--each-run`):",
    "",
    "| family | T | run | GPS wins vs " + " / ".join(f"tuned {n}" for n in BASELINES) + " | mean cost / Adam's |",
    "|---|---:|---|---|---:|",
]
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "agents" / "gps" / "gps_benchmark.yaml"


def markers(label: str) -> tuple[str, str]:
    """The doc's section markers of a run labelled `label` ("defaults": the main table)."""
    if label == "defaults":
        return START, END
    return f"<!-- gps results ({label}): start -->", f"<!-- gps results ({label}): end -->"


def wilson(wins: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion wins / n."""
    p = wins / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def compare(ours: torch.Tensor, theirs: torch.Tensor) -> dict[str, float]:
    """Paired comparison of per-instance costs [B] (lower is better)."""
    n = ours.numel()
    better, worse = int((ours < theirs).sum()), int((ours > theirs).sum())
    wins = better + 0.5 * (n - better - worse)
    low, high = wilson(wins, n)
    sign_p = binomtest(better, better + worse, 0.5).pvalue if better + worse else 1.0
    diff = (ours - theirs).double().numpy()
    wilcoxon_p = float(wilcoxon(diff).pvalue) if (diff != 0).any() else 1.0
    return {
        "win_rate": wins / n,
        "low": low,
        "high": high,
        "sign_p": float(sign_p),
        "wilcoxon_p": wilcoxon_p,
        "cost_ratio": float(ours.double().mean() / theirs.double().mean()),
    }


class FamilyRun(NamedTuple):
    """A family's typed options (seed: the first run's), its run folder and how many runs it pools."""

    options: GPSOptions
    folder: Path
    restarts: int = 1


def family_runs(envs: str, config: Path | None, seed: int, out: Path) -> dict[str, FamilyRun]:
    """Each family's options, run folder and restarts, all checked before any work: env id -> FamilyRun
    (folder out / short name). A bad id, config or reused folder is a one-line ValueError."""
    known = l2o_env_ids()
    env_ids = envs.split(",")
    for env_id in env_ids:
        if env_id not in known:
            raise ValueError(f"--envs: {env_id!r} is not a registered l2o environment id")
    config_options = family_options_from_config(config, known)
    runs = {}
    for env_id in env_ids:
        base = {"instances": TRAIN_INSTANCES.get(env_id, GPSOptions.instances)}
        options = config_options.options_for(env_id, seed, base)
        run = FamilyRun(options, out / env_id.split("/")[1].removesuffix("-v0"), config_options.restarts_for(env_id))
        for run_options, folder in restart_runs(*run):
            if (folder / "timing.json").is_file():
                if not (folder / OPTIONS_FILE).is_file():
                    raise ValueError(f"--out: {str(folder)!r} holds a timing but no {OPTIONS_FILE}")
                changed = options_differing(folder, run_options)
                if changed:
                    raise ValueError(
                        f"--out: the run in {str(folder)!r} was trained with other {changed} than --config's"
                    )
        runs[env_id] = run
    return runs


def beside_defaults(options: GPSOptions) -> str:
    """The options that differ from GPSOptions' defaults (seed and instances aside), as "name value, ..."."""
    defaults = GPSOptions().to_dict()
    changed = [f"{k} {v}" for k, v in options.to_dict().items() if k not in ("seed", "instances") and defaults[k] != v]
    return ", ".join(changed) if changed else "default options"


def train_or_reuse(env_id: str, folder: Path, options: GPSOptions) -> tuple[Path, float, float]:
    """The trained optimizer's folder, wall and CPU seconds of training (recorded in timing.json)."""
    timing = folder / "timing.json"
    if timing.is_file():
        recorded = json.loads(timing.read_text())
        print(f"{env_id}: reusing the GPS run in {folder}", file=sys.stderr)
        return folder / "best", recorded["wall_s"], recorded["cpu_s"]
    wall, cpu = time.perf_counter(), time.process_time()
    best = train_gps(env_id, folder, options, progress=True)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    atomic_write_json(timing, {"wall_s": wall, "cpu_s": cpu})
    return best, wall, cpu


class Pooled(NamedTuple):
    """A family's trained result: best: the kept run's best/ folder; wall_s, cpu_s: summed over all runs and
    the selection; note: how it was chosen ("" for a single run); bests: every run's best/; chosen: its index."""

    best: Path
    wall_s: float
    cpu_s: float
    note: str
    bests: list[Path]
    chosen: int


def train_pooled(env_id: str, run: FamilyRun, horizons: tuple[int, ...]) -> Pooled:
    """Train (or reuse) each of the family's runs and keep the one with the most selection wins against
    tuned Adam over `horizons` (the choice is recorded in agents.gps.restarts.choice_file and reused)."""
    trained = [train_or_reuse(env_id, folder, options) for options, folder in restart_runs(*run)]
    timings = [(wall, cpu) for _, wall, cpu in trained]
    bests = [best for best, _, _ in trained]
    if run.restarts == 1:
        return Pooled(bests[0], *timings[0], "", bests, 0)
    record = choice_file(run.folder, run.restarts)
    if record.is_file():
        choice = json.loads(record.read_text())
    else:
        wall, cpu = time.perf_counter(), time.process_time()
        scores = selection_scores(env_id, [load_rule(best) for best in bests], run.options, horizons)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        choice = {
            "scores": scores,
            "chosen": choose_run(scores),
            "horizons": list(horizons),
            "wall_s": wall,
            "cpu_s": cpu,
        }
        atomic_write_json(record, choice)
    wall, cpu = summed_seconds([*timings, (choice["wall_s"], choice["cpu_s"])])
    scores = ", ".join(f"{score:.3f}" for score in choice["scores"])
    note = (
        f"{run.restarts} runs (seeds {run.options.seed}–{run.options.seed + run.restarts - 1}), kept run "
        f"{choice['chosen']} by mean wins vs tuned Adam at T = {'/'.join(map(str, choice['horizons']))} on "
        f"{run.options.selection_instances} selection instances ({scores}); "
    )
    print(f"{env_id}: {note}", file=sys.stderr)
    return Pooled(bests[choice["chosen"]], wall, cpu, note, bests, choice["chosen"])


def each_run_rows(
    short: str, horizon: int, pooled: Pooled, baselines: dict[str, torch.Tensor], env_id: str, args: argparse.Namespace
) -> list[str]:
    """Every pooled run's wins against the baselines' costs [B] on the same instances, one row per run."""
    rules = {k: load_rule(best) for k, best in enumerate(pooled.bests)}
    costs = costs_on_split(rules, env_id, args.instances, horizon, args.seed, args.split)
    rows = []
    for k, ours in costs.items():
        vs = {name: compare(ours, theirs) for name, theirs in baselines.items()}
        rows.append(
            f"| {short} | {horizon} | run {k}{' (kept)' if k == pooled.chosen else ''} | "
            + " / ".join(f"{c['win_rate']:.0%}" for c in vs.values())
            + f" | {vs['adam']['cost_ratio']:.3f} |"
        )
        print(rows[-1], flush=True)
    return rows


def costs_on_split(
    rules: dict, env_id: str, instances: int, horizon: int, seed: int, split: str = "test"
) -> dict[str, torch.Tensor]:
    """Li & Malik's cost Σ (f − f*) of every rule on the same instances of `split`: name -> [B]."""
    problem = make_family(env_id).sample(instances, torch.Generator().manual_seed(seed), split)
    problem.optimum()
    out = {}
    for name, rule in rules.items():
        curves = unroll(rule, copy.deepcopy(problem), horizon, with_optimum=True)
        out[name] = cost(curve_values(curves.objectives, curves.f_star))
    return out


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[int], dict[str, FamilyRun]]:
    """The arguments, horizons and checked family runs; a bad one exits 2 with one line before any work."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", default=",".join(FAMILIES))
    parser.add_argument("--instances", type=int, default=200, help="test instances per family")
    parser.add_argument(
        "--split",
        choices=("test", "validation"),
        default="test",
        help="where the rules are compared: test (the report) or validation (choosing settings)",
    )
    parser.add_argument("--horizons", default="40,100")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="YAML of GPS options per family (agents.gps.family_options)"
    )
    parser.add_argument("--out", type=Path, default=Path("runs") / "gps_bench")
    parser.add_argument("--doc", type=Path, default=Path("docs") / "gps.md")
    parser.add_argument("--label", default="defaults", help="the doc section this run writes (one per label)")
    parser.add_argument(
        "--each-run", action="store_true", help="also compare every pooled run (restarts > 1) on the same instances"
    )
    args = parser.parse_args(argv)
    try:
        horizons = [int(h) for h in args.horizons.split(",")]
    except ValueError:
        parser.error(f"--horizons must be comma-separated integers, got {args.horizons!r}")
    if args.instances < 1 or min(horizons) < 1:
        parser.error("--instances and --horizons must be positive")
    try:
        runs = family_runs(args.envs, args.config, args.seed, args.out)
    except ValueError as err:
        parser.error(str(err))
    return args, horizons, runs


def main(argv: list[str] | None = None) -> None:
    args, horizons, runs = parse_args(argv)
    torch.set_num_threads(1)
    lines = [
        "| family | T | vs | GPS wins (95 % CI) | sign test p | Wilcoxon p | mean cost GPS / baseline |",
        "|---|---:|---|---|---:|---:|---:|",
    ]
    trained, mean_rows, each_rows = [], [], []
    mean_header = [
        "Mean cost Σ (f − f*) per rule (all tuned on the validation split at that T):",
        "",
        "| family | T | GPS | " + " | ".join(ONE_EVALUATION_RULES) + " |",
        "|---|---:|" + "---:|" * (1 + len(ONE_EVALUATION_RULES)),
    ]
    for env_id, run in runs.items():
        short, options = run.folder.name, run.options
        pooled = train_pooled(env_id, run, (options.horizon, SELECTION_HORIZON))
        trained.append(
            f"{short}: {options.instances} training instances, {beside_defaults(options)}, "
            f"{pooled.note}{pooled.wall_s:.0f} s wall, {pooled.cpu_s:.0f} s CPU"
        )
        for horizon in horizons:
            rules = {"gps": load_rule(pooled.best)}
            rules.update({name: tuned_optimizer(name, env_id, horizon) for name in ONE_EVALUATION_RULES})
            costs = costs_on_split(rules, env_id, args.instances, horizon, args.seed, args.split)
            means = {name: float(c.double().mean()) for name, c in costs.items()}
            best_hand = min(ONE_EVALUATION_RULES, key=means.__getitem__)
            for name, label in [*((n, f"tuned {n}") for n in BASELINES), (best_hand, f"best one-eval: {best_hand}")]:
                c = compare(costs["gps"], costs[name])
                row = (
                    f"| {short} | {horizon} | {label} | {c['win_rate']:.0%} ({c['low']:.0%}–{c['high']:.0%}) "
                    f"| {c['sign_p']:.2g} | {c['wilcoxon_p']:.2g} | {c['cost_ratio']:.3f} |"
                )
                lines.append(row)
                print(row, flush=True)
            mean_rows.append(f"| {short} | {horizon} | " + " | ".join(f"{means[n]:.4g}" for n in rules) + " |")
            print(mean_rows[-1], flush=True)
            if args.each_run and run.restarts > 1:
                baselines = {name: costs[name] for name in BASELINES}
                each_rows.extend(each_run_rows(short, horizon, pooled, baselines, env_id, args))
        # after every family, so a long run leaves what it measured
        each = [*EACH_RUN_HEADER, *each_rows] if each_rows else []
        write_doc(args, [*lines, "", *mean_header, *mean_rows, *each], trained)


def write_doc(args: argparse.Namespace, lines: list[str], trained: list[str]) -> None:
    """Replace docs/gps.md's results section (between the markers) with the table so far."""
    command = "python benchmarks/gps_vs_tuned.py " + shlex.join(sys.argv[1:])
    start, end = markers(args.label)
    section = "\n".join(
        [
            start,
            f"Measured by `{command.strip()}` on {args.instances} new {args.split} instances per family "
            f"({args.split} split, seed {args.seed}); baselines tuned on the validation split at each horizon.",
            "",
            *lines,
            "",
            "Training: " + "; ".join(trained) + ".",
            end,
        ]
    )
    doc = args.doc.read_text() if args.doc.is_file() else "# Guided policy search\n"
    if start in doc and end in doc:
        doc = doc[: doc.index(start)] + section + doc[doc.index(end) + len(end) :]
    else:
        doc = doc.rstrip() + "\n\n" + section + "\n"
    atomic_write_text(args.doc, doc)
    print(f"table written to {args.doc}", file=sys.stderr)


if __name__ == "__main__":
    main()
