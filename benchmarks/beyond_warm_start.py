"""Does PPO improve on where it starts? Each lever trained per family, paired against its teacher.

For every family and lever combination: train PPO (agents/rl/hyperparams.yaml's entry for the
family, the lever's YAML over it; `--timesteps` sets the budget), measure the CPU time of the
training process, then pair the run's best model (chosen on validation instances) and its final
model against the run's own teacher (the warm start: `agents.rl.policy_comparisons.run_teacher`)
on `--instances` held-out test instances at T = 40 and T = 100 by Li & Malik's cost (wins %, 95 %
Wilson interval, sign test p, Wilcoxon p: `l2o_gym.metrics.paired_comparison`). Each cell's result
is kept as JSON in its run folder (`<runs>/<family>/<lever>/beyond.json`; `<lever>_seed<k>` for
`--seed k`, k > 0; the test instances are the same for every seed), so cells run one at a time
and the page (`--docs`) collects every finished one; a learning-curve plot per family (validation
net cost wins against the teacher; 0 is the warm start's line) is written beside it. The page's
summary names per family the lever chosen on validation (`choose_levers`: no test figure read)
with every seed's test figures. Its "## Notes" section is kept when the page is rewritten.

    python benchmarks/beyond_warm_start.py --families logistic --levers residual_baseline \
        [--timesteps 150000] [--seed 0] [--instances 200] [--runs runs/beyond] [--docs docs/beyond_warm_start.md]
    python benchmarks/beyond_warm_start.py --collect      # only rewrite the page from finished cells
    python benchmarks/beyond_warm_start.py --reevaluate --families F --levers L   # pair trained cells again
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import l2o_gym  # noqa: E402
from agents.hand_designed.tuning import tuned_optimizer  # noqa: E402
from agents.rl.policy_comparisons import run_teacher  # noqa: E402
from agents.rl.sb3_training import train_sb3  # noqa: E402
from agents.runtime.saved_rules import load_rule  # noqa: E402
from l2o_gym.atomic_io import atomic_write_json, atomic_write_text  # noqa: E402
from l2o_gym.metrics import curve_values, paired_comparison  # noqa: E402
from l2o_gym.unroll import unroll  # noqa: E402

FAMILIES = {
    "logistic": "l2o/LogisticRegression-v0",
    "two_layer": "l2o/TwoLayerNet-v0",
    "robust": "l2o/RobustLinearRegression-v0",
    "quadratic": "l2o/Quadratic-v0",
    "rosenbrock": "l2o/Rosenbrock-v0",
}
# families whose default teacher keeps buffers of its own: the levers use tuned window_qn instead
# (action_scale 1: tuned window_qn's steps, up to 0.5 on the Quadratic and 0.1 on Rosenbrock, are
# not clipped by the env, so a residual policy starts exactly at its teacher)
STATE_ONLY_TEACHER = {
    "env": {"quasi_newton_pairs": 5, "action_scale": 1.0},
    "imitation": {"teacher": "window_qn", "teacher_hparams": None, "opening": None, "opening_steps": None},
}
RESIDUAL = {"residual": {"form": "scale", "range": 1.0}, "policy": {"log_std_init": -3.0}}
WINDOW_ROWS = {"quasi_newton_pairs": 5, "action_scale": 1.0, "time_features": True}


def against_tuned(teacher: str, **settings: Any) -> dict[str, Any]:
    """A lever whose teacher is `teacher` tuned at the training horizon (rows with the window's
    quasi-Newton direction and the step count, action scale 1), the reward paid against it and the
    best model chosen by cost against it; `settings` added (an `env` replaces the rows' options)."""
    return {
        "env": WINDOW_ROWS,
        "imitation": {"teacher": teacher, "teacher_hparams": None, "opening": None, "opening_steps": None},
        "baseline": {"form": "gap"},
        "select_best": "teacher_cost",
        **settings,
    }


LEVERS: dict[str, dict[str, Any]] = {
    # the default run: imitation warm start, PPO on log-suboptimality, best by wins against Adam
    "imitation": {},
    # the residual policy alone (reward unchanged), best by cost against the teacher
    "residual": {**RESIDUAL, "select_best": "teacher_cost"},
    "residual_baseline": {**RESIDUAL, "baseline": {"form": "gap"}, "select_best": "teacher_cost"},
    "residual_baseline_log": {**RESIDUAL, "baseline": {"form": "log_ratio"}, "select_best": "teacher_cost"},
    "residual_add_baseline": {
        "residual": {"form": "add", "range": 0.1},
        "policy": {"log_std_init": -3.0},
        "baseline": {"form": "gap"},
        "select_best": "teacher_cost",
    },
    # residual_baseline with 4x the instances per rollout and a third of the learning rate
    "residual_baseline_large": {
        **RESIDUAL,
        "baseline": {"form": "gap"},
        "select_best": "teacher_cost",
        "num_envs": 128,
        "algo": {"learning_rate": 0.0001},
    },
    # the imitation warm start with the reward against the teacher (no residual)
    "imitation_baseline": {"baseline": {"form": "gap"}, "select_best": "teacher_cost"},
    # the same with more exploration (log_std -3; the two-layer net's default is -4)
    "imitation_baseline_explore": {
        "baseline": {"form": "gap"},
        "select_best": "teacher_cost",
        "policy": {"log_std_init": -3.0},
    },
    # the same with 4x the instances per rollout and a third of the learning rate
    "imitation_baseline_large": {
        "baseline": {"form": "gap"},
        "select_best": "teacher_cost",
        "num_envs": 128,
        "algo": {"learning_rate": 0.0001},
    },
    # the imitation warm start from tuned window_adam_qn (the best tuned one-evaluation rule on
    # robust regression and the two-layer net), paid against it, with more exploration
    "adam_qn_baseline_explore": against_tuned("window_adam_qn", policy={"log_std_init": -3.0}),
    # the same from tuned window_qn (tuned at the training horizon, 100: on the two-layer net the
    # lowest validation cost of the one-evaluation rules at T = 100)
    "qn_baseline_explore": against_tuned("window_qn", policy={"log_std_init": -3.0}),
    # the residual policy on tuned window_qn (it starts exactly at its teacher), paid against it,
    # trained on episodes of 100 steps (every step of the T = 100 cost weighs the same)
    "qn_residual_baseline_t100": against_tuned("window_qn", **RESIDUAL, env={**WINDOW_ROWS, "horizon": 100}),
    # the same paid the cost difference itself (not scaled per instance): the mean return is the
    # mean cost difference that the comparison with the hand rules reads
    "qn_residual_cost_t100": against_tuned(
        "window_qn", **RESIDUAL, env={**WINDOW_ROWS, "horizon": 100}, baseline={"form": "cost"}
    ),
}
HORIZONS = (40, 100)
# the hand-designed rules that take one evaluation per step (line-search rules are left out)
HAND_RULES = ("momentum", "nesterov", "adam", "window_qn", "window_adam_qn")
TEST_SEED = 0  # the test instances are the same for every training seed, so seeds pair on one set


def run_dir(runs: str, family: str, lever: str, seed: int) -> Path:
    """A cell's run folder: `<runs>/<family>/<lever>` for seed 0, `<lever>_seed<k>` for seed k."""
    return Path(runs) / family / (lever if seed == 0 else f"{lever}_seed{seed}")


def lever_config(family: str, lever: str, timesteps: int) -> dict[str, Any]:
    """The YAML merged over the family's hyperparams.yaml entry for this lever."""
    config = json.loads(json.dumps(LEVERS[lever]))
    if lever != "imitation" and family not in ("logistic", "two_layer"):
        config = {**STATE_ONLY_TEACHER, **config}  # a lever that names its own teacher keeps it
    eval_freq = max(timesteps // 6, 1)
    return {**config, "eval_freq": eval_freq, "eval_horizons": list(HORIZONS)}


def train_cell(family: str, lever: str, args: argparse.Namespace) -> Path:
    """Train one cell (its run folder replaced); returns the folder, with its CPU time recorded."""
    run = run_dir(args.runs, family, lever, args.seed)
    run.parent.mkdir(parents=True, exist_ok=True)
    (run / "beyond.json").unlink(missing_ok=True)  # a cell that fails leaves no stale result
    config = run.parent / f"{run.name}.yaml"
    config.write_text(yaml.safe_dump(lever_config(family, lever, args.timesteps)))
    cpu, wall = time.process_time(), time.perf_counter()
    training = {"timesteps": args.timesteps, "seed": args.seed, "overwrite": True, "progress_bar": False}
    result = train_sb3(FAMILIES[family], "ppo", out_dir=run, config=config, **training)
    timing = {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall}
    atomic_write_json(run / "training_time.json", {**timing, "validation": result.validation})
    return run


def compare(method: str, ours: Any, against: str, theirs: Any, f_star: torch.Tensor) -> dict[str, Any]:
    """`paired_comparison` of two unrolls' curves on the same instances, as a dict."""
    ours_values, their_values = curve_values(ours.objectives, f_star), curve_values(theirs.objectives, f_star)
    return paired_comparison(method, ours_values, ours.diverged, against, their_values, theirs.diverged).to_dict()


def hand_rules(family: str) -> dict[str, Any]:
    """'name@T' -> each tuned one-evaluation rule, tuned on the family's validation split at each
    horizon T (window rules with their default 5 pairs)."""
    return {
        f"{name}@{tuned_at}": tuned_optimizer(name, FAMILIES[family], tuned_at)
        for name, tuned_at in itertools.product(HAND_RULES, HORIZONS)
    }


def pair_against_teacher(run: Path, family: str, args: argparse.Namespace) -> tuple[list[dict], list[dict]]:
    """(best_model and model against the run's teacher and, where its curves differ from the
    teacher's (an imitation warm start), the run's warm start; best_model against every tuned
    one-evaluation rule), on the test instances at each horizon."""
    _, teacher = run_teacher("policy", run / "best_model")
    problem = l2o_gym.make_family(FAMILIES[family]).sample(
        args.instances, torch.Generator().manual_seed(TEST_SEED), "test"
    )
    f_star = problem.optimum()
    rules = {model: load_rule(run / model) for model in ("best_model", "model")}
    baselines = {"teacher": teacher}
    if (run / "warm_start").is_dir():
        baselines["warm start"] = load_rule(run / "warm_start")
    history = rules["model"].history  # the window the policy's rows (and window teachers) read
    hand = hand_rules(family)
    rows, hand_rows = [], []
    for horizon in HORIZONS:
        curves = {
            name: unroll(rule, problem.select_rows(torch.arange(args.instances)), horizon, history=history)
            for name, rule in {**rules, **baselines, **hand}.items()
        }
        same = "warm start" in curves and torch.equal(curves["warm start"].objectives, curves["teacher"].objectives)
        for model, against in itertools.product(rules, baselines):
            if against == "warm start" and same:
                continue  # a residual policy's warm start is its teacher itself
            comparison = compare(model, curves[model], against, curves[against], f_star)
            rows.append({**comparison, "horizon": horizon, "timesteps": rules[model].meta.get("timesteps")})
        for against in hand:
            comparison = compare("best_model", curves["best_model"], against, curves[against], f_star)
            hand_rows.append({**comparison, "horizon": horizon})
    return rows, hand_rows


def run_cell(family: str, lever: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train (unless --reevaluate) and pair one cell; its result is written to the run folder."""
    run = run_dir(args.runs, family, lever, args.seed) if args.reevaluate else train_cell(family, lever, args)
    timing = json.loads((run / "training_time.json").read_text())
    timesteps = load_rule(run / "model").meta.get("timesteps")
    cell = {"family": family, "lever": lever, "seed": args.seed, "timesteps": timesteps, **timing}
    cell["pairs"], cell["hand_rules"] = pair_against_teacher(run, family, args)
    atomic_write_json(run / "beyond.json", cell)
    print(cell_lines(cell), flush=True)
    return cell


def p_value(p: float) -> str:
    """A p-value as printed (the normal approximation underflows to 0 far in the tail)."""
    return f"{p:.2g}" if p > 0 else "< 1e-300"


def seeded(cell: dict[str, Any]) -> str:
    """The cell's lever, with its training seed where that is not 0."""
    seed = cell.get("seed", 0)
    return cell["lever"] if seed == 0 else f"{cell['lever']} (seed {seed})"


def cell_lines(cell: dict[str, Any]) -> str:
    """Markdown table rows of one cell: per horizon and model, the paired comparison."""
    lines = []
    for pair in cell["pairs"]:
        lines.append(
            f"| {cell['family']} | {seeded(cell)} | {pair['horizon']} | {pair['method']} (step {pair['timesteps']}) "
            f"| {pair['against']} "
            f"| {100 * pair['win_fraction']:.0f} % [{100 * pair['win_low']:.0f}, {100 * pair['win_high']:.0f}] "
            f"| {pair['losses']} / {pair['ties']} | {p_value(pair['sign_test_p'])} | {p_value(pair['wilcoxon_p'])} "
            f"| {pair['mean_cost']:.4g} / {pair['against_mean_cost']:.4g} | {cell['cpu_s'] / 60:.1f} |"
        )
    return "\n".join(lines)


def goal_rows(cell: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """horizon -> the best model's weakest pairing there (the lowest win fraction over teacher and
    warm start), with whether it meets the goal: >= 65 % wins, sign and Wilcoxon p < 0.01."""
    weakest = {}
    for pair in cell["pairs"]:
        if pair["method"] == "best_model":
            current = weakest.get(pair["horizon"])
            if current is None or pair["win_fraction"] < current["win_fraction"]:
                weakest[pair["horizon"]] = pair
    for pair in weakest.values():
        p = max(pair["sign_test_p"], pair["wilcoxon_p"])
        pair["goal"] = pair["win_fraction"] >= 0.65 and p < 0.01 and cell["cpu_s"] <= 600
    return weakest


def best_model_step(cell: dict[str, Any]) -> int:
    """The PPO timestep at which the cell's best model was saved."""
    return next(int(pair["timesteps"]) for pair in cell["pairs"] if pair["method"] == "best_model")


def best_model_record(cell: dict[str, Any]) -> dict[str, float]:
    """The run's validation record (its validation instances, disjoint from test) at the step of its best model."""
    step = best_model_step(cell)
    for record in cell["validation"]:
        if int(record["timesteps"]) == step:
            return record
    raise ValueError(f"{cell['family']}/{cell['lever']}: no validation record at the best model's step {step}")


def validation_figure(cell: dict[str, Any]) -> tuple[float, float]:
    """What a lever is chosen by, from `best_model_record`: net cost wins against the teacher,
    (wins − losses) / instances averaged over the horizons, then the lower mean validation cost.
    Test pairs are not read."""
    record = best_model_record(cell)
    return record["cost_net_wins_vs_teacher"], -record["mean_cost"]


def choose_levers(cells: list[dict[str, Any]]) -> dict[str, str]:
    """family -> the lever whose seed-0 run has the highest `validation_figure`."""
    chosen: dict[str, tuple[tuple[float, float], str]] = {}
    for cell in cells:
        if cell.get("seed", 0) != 0:
            continue
        figure = validation_figure(cell)
        family = cell["family"]
        if family not in chosen or figure > chosen[family][0]:
            chosen[family] = (figure, cell["lever"])
    return {family: lever for family, (_, lever) in chosen.items()}


def nearest_goal_on_test(cells: list[dict[str, Any]]) -> str:
    """The lever whose seed-0 best model comes nearest the goal on the test instances (the earlier,
    test-chosen summary; shown for comparison only)."""
    ranked = [(c, goal_rows(c)) for c in cells if c.get("seed", 0) == 0]
    return max(ranked, key=lambda m: (sum(r["goal"] for r in m[1].values()), min_wins(m[1])))[0]["lever"]


# a seed whose best model has validation net wins below RESTART_BELOW is trained once more with
# seed + RESTART_OFFSET (a rule read from validation alone); the restart's CPU time adds the first run's
RESTART_BELOW = 0.25
RESTART_OFFSET = 10


def with_restarts(runs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], bool]]:
    """(cell, counted) per seed of one lever: a seed below RESTART_BELOW on validation that has a
    restart is shown uncounted, followed by its restart (CPU time of both runs) counted."""
    by_seed = {c.get("seed", 0): c for c in runs}
    shown = []
    for seed, cell in sorted(by_seed.items()):
        restart = by_seed.get(seed + RESTART_OFFSET)
        if seed >= RESTART_OFFSET:
            continue
        if restart is not None and validation_figure(cell)[0] < RESTART_BELOW:
            shown += [(cell, False), ({**restart, "cpu_s": cell["cpu_s"] + restart["cpu_s"], "restart_of": seed}, True)]
        else:
            shown.append((cell, True))
    return shown


def seed_line(cell: dict[str, Any], counted: bool = True) -> tuple[str, bool]:
    """One summary row: a seed's test figures at T = 40 and T = 100, and whether it meets the goal."""
    rows = goal_rows(cell)
    shown = [
        f"{100 * r['win_fraction']:.0f} % ({p_value(max(r['sign_test_p'], r['wilcoxon_p']))})"
        for r in (rows[h] for h in HORIZONS)
    ]
    met = all(r["goal"] for r in rows.values())
    seed = f"{cell['restart_of']} → {cell['seed']} (restart)" if "restart_of" in cell else str(cell.get("seed", 0))
    verdict = ("yes" if met else "no") if counted else "retrained (below the validation threshold)"
    line = (
        f"| {cell['family']} | {cell['lever']} | {seed} | {validation_figure(cell)[0]:+.2f} "
        f"| {shown[0]} | {shown[1]} | {cell['cpu_s'] / 60:.1f} | {verdict} |"
    )
    return line, met and counted


def summary(cells: list[dict[str, Any]]) -> str:
    """Per family, the lever chosen on validation: its test figures per seed, and the seeds' tally."""
    chosen = choose_levers(cells)
    seeds = [
        "| family | lever | seed | validation net wins | T = 40: wins (max p) | T = 100: wins (max p) "
        "| training CPU min | goal met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    tally = [
        "| family | chosen on validation | chosen on test (earlier page) | seeds meeting the goal |",
        "|---|---|---|---|",
    ]
    for family in FAMILIES:
        if family not in chosen:
            continue
        mine = [c for c in cells if c["family"] == family]
        runs = with_restarts([c for c in mine if c["lever"] == chosen[family]])
        met = [seed_line(c, counted) for c, counted in runs]
        seeds += [line for line, _ in met]
        tally.append(
            f"| {family} | {chosen[family]} | {nearest_goal_on_test(mine)} "
            f"| {sum(ok for _, ok in met)} / {sum(counted for _, counted in runs)} |"
        )
    return "\n".join(seeds) + "\n\n" + "\n".join(tally)


def choose_best_rules(cells: list[dict[str, Any]]) -> dict[str, str]:
    """family -> the lever whose seed-0 best model has the lowest mean validation cost (averaged
    over the horizons; from `best_model_record`): the family's best learned rule for the goal
    against the hand rules. Test pairs are not read."""
    chosen: dict[str, tuple[float, str]] = {}
    for cell in cells:
        if cell.get("seed", 0) == 0:
            figure = best_model_record(cell)["mean_cost"]
            if cell["family"] not in chosen or figure < chosen[cell["family"]][0]:
                chosen[cell["family"]] = (figure, cell["lever"])
    return {family: lever for family, (_, lever) in chosen.items()}


def hand_rule_line(cell: dict[str, Any], horizon: int, chosen: bool) -> str:
    """One row of the hand-rule table: the best model at `horizon` against the tuned one-evaluation
    rule with the lowest test mean cost there (each rule tuned at T = 40 and at T = 100 counts),
    the lowest of those tuned at `horizon` itself, and tuned Adam (tuned at `horizon`)."""
    rows = [r for r in cell["hand_rules"] if r["horizon"] == horizon]
    best = min(rows, key=lambda r: r["against_mean_cost"])
    at_horizon = min((r for r in rows if r["against"].endswith(f"@{horizon}")), key=lambda r: r["against_mean_cost"])
    adam = next(r for r in rows if r["against"] == f"adam@{horizon}")

    def wins(r: dict[str, Any]) -> str:
        return f"{100 * r['win_fraction']:.0f} % [{100 * r['win_low']:.0f}, {100 * r['win_high']:.0f}]"

    def ahead(r: dict[str, Any]) -> str:
        return "yes" if r["mean_cost"] < r["against_mean_cost"] else "no"

    return (
        f"| {cell['family']} | {cell['lever']}{' (chosen)' if chosen else ''} | {cell.get('seed', 0)} | {horizon} "
        f"| {best['mean_cost']:.4g} | {best['against']} {best['against_mean_cost']:.4g} | {wins(best)} "
        f"| {p_value(best['sign_test_p'])} / {p_value(best['wilcoxon_p'])} "
        f"| {at_horizon['against']} {at_horizon['against_mean_cost']:.4g} | {wins(at_horizon)} "
        f"| {adam['against_mean_cost']:.4g} | {wins(adam)} | {ahead(best)} / {ahead(at_horizon)} |"
    )


def hand_rule_table(cells: list[dict[str, Any]]) -> str:
    """Every cell paired against the tuned one-evaluation rules (`hand_rule_line`), the lever
    chosen on validation (`choose_best_rules`) first within each family."""
    chosen = choose_best_rules(cells)
    lines = [
        "| family | lever | seed | T | learned mean cost | best tuned rule (mean cost) | wins vs it [95 % CI] "
        "| sign p / Wilcoxon p | best rule tuned at T | wins vs it | tuned Adam mean cost | wins vs Adam "
        "| ahead: of every rule / of those tuned at T |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for family in FAMILIES:
        mine = [c for c in cells if c["family"] == family and c.get("hand_rules")]
        mine.sort(key=lambda c: (c["lever"] != chosen.get(family), c["lever"], c.get("seed", 0)))
        lines += [hand_rule_line(c, h, c["lever"] == chosen.get(family)) for c in mine for h in HORIZONS]
    return "\n".join(lines)


def validation_table(cells: list[dict[str, Any]]) -> str:
    """Every seed-0 cell's validation figures, the ones the levers are chosen by (net wins against
    the teacher: `choose_levers`; mean cost: `choose_best_rules`), with the teacher's mean cost."""
    lines = [
        "| family | lever | best model step | validation net wins | validation wins T = 40 / T = 100 "
        "| validation mean cost T = 40 / T = 100 (teacher's) | mean over T |",
        "|---|---|---|---|---|---|---|",
    ]
    for cell in cells:
        if cell.get("seed", 0) != 0:
            continue
        record = best_model_record(cell)
        wins = " / ".join(f"{100 * record[f'cost_win_rate_vs_teacher_T{h}']:.0f} %" for h in HORIZONS)
        costs = " / ".join(
            f"{record[f'mean_cost_T{h}']:.4g} ({record[f'teacher_mean_cost_T{h}']:.4g})" for h in HORIZONS
        )
        lines.append(
            f"| {cell['family']} | {cell['lever']} | {best_model_step(cell)} "
            f"| {record['cost_net_wins_vs_teacher']:+.3f} | {wins} | {costs} | {record['mean_cost']:.4g} |"
        )
    return "\n".join(lines)


def min_wins(rows: dict[int, dict[str, Any]]) -> float:
    return min(r["win_fraction"] for r in rows.values())


def plot_curves(cells: list[dict[str, Any]], family: str, path: Path) -> None:
    """Validation net cost wins against the teacher over training, one line per lever and horizon."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.set_prop_cycle(color=plt.get_cmap("tab20").colors)
    for cell in cells:
        for horizon in HORIZONS:
            points = [(v["timesteps"], v.get(f"cost_net_wins_vs_teacher_T{horizon}")) for v in cell["validation"]]
            points = [p for p in points if p[1] is not None]
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=f"{seeded(cell)} T={horizon}")
    ax.axhline(0.0, color="black", linestyle="--", label="warm start (teacher)")
    ax.set_xlabel("PPO timesteps")
    ax.set_ylabel("validation: (wins − losses) / instances")
    ax.set_title(f"{family}: cost against the teacher, held-out validation")
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5))  # beside the axes, never over the lines
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


NOTES = "## Notes"  # the page's section from this heading on is kept when the page is rewritten
HEADER = (
    "| family | lever | T | model | against | wins [95 % CI] | losses / ties | sign p | Wilcoxon p "
    "| mean cost (policy / against) | training CPU min |\n|---|---|---|---|---|---|---|---|---|---|---|"
)


def write_page(args: argparse.Namespace) -> str:
    """The results page from every finished cell under `args.runs`, with a plot per family."""
    cells = [json.loads(p.read_text()) for p in sorted(Path(args.runs).glob("*/*/beyond.json"))]
    docs = Path(args.docs)
    sections = []
    for family in FAMILIES:
        mine = [c for c in cells if c["family"] == family]
        if not mine:
            continue
        plot = docs.with_name(f"beyond_warm_start_{family}.png")
        plot_curves(mine, family, plot)
        rows = "\n".join(cell_lines(c) for c in mine)
        sections.append(f"### {family}\n\n{HEADER}\n{rows}\n\n![{family} learning curves]({plot.name})\n")
    old = docs.read_text() if docs.is_file() else ""
    notes = old[old.index(NOTES) :] if NOTES in old else f"{NOTES}\n\n(none yet)\n"
    page = PAGE.format(
        command=" ".join(sys.argv),
        summary=summary(cells),
        validation=validation_table(cells),
        hand_rules=hand_rule_table(cells),
        tables="\n".join(sections),
        notes=notes,
    )
    atomic_write_text(docs, page)
    return page


PAGE = """# Beyond the warm start: does RL improve on its teacher?

Written by `benchmarks/beyond_warm_start.py` (last command: `{command}`). Each row pairs a trained
policy (best_model: best on validation by net cost wins against the teacher, or for the
`imitation` lever by wins against tuned Adam; model: the final weights) against the run's own
teacher — its warm start — on the same held-out test instances, by Li & Malik's cost
(Σ_t f − f*). Wins %: instances where the policy's cost is strictly lower; sign and Wilcoxon p:
two-sided paired tests (`l2o_gym/paired_statistics.py`). Training CPU minutes: the training
process's CPU time (validation included) on the shared 2-core machine, one thread. Goal (#15):
≥ 65 % wins, p < 0.01, on every family at T = 40 and 100, in ≤ 10 CPU minutes of training.

Levers: `imitation` the default run (imitation warm start, PPO on log-suboptimality);
`residual` the residual policy (teacher's step · exp(a), a starting at 0; log_std −3);
`residual_baseline` the same paid against the teacher run on the same instances
(r_t = (f_ref,t − f_t) / |f_0 − f*|); `residual_baseline_log` with the log-ratio reward;
`residual_add_baseline` an additive correction (± 0.1 · action_scale); `imitation_baseline` the
imitation warm start paid against the teacher; `*_large` with 128 instances per rollout (4×)
and learning rate 1e-4; `*_explore` with log_std −3. Families whose default teacher keeps buffers (robust regression,
Quadratic, Rosenbrock) use tuned `window_qn` as teacher with 5 window pairs (action scale 1).
`adam_qn_baseline_explore` / `qn_baseline_explore`: the imitation warm start from tuned
`window_adam_qn` / tuned `window_qn` (tuned at the training horizon, 100), paid against it, log_std −3;
`qn_residual_baseline_t100`: the residual policy on tuned `window_qn`, paid against it, trained on
episodes of 100 steps.

## The lever chosen on validation, per family

Rule: per family, the lever whose seed-0 run has the most net cost wins against its teacher on
the run's own validation instances (256, from the family's validation split, disjoint from test),
read from the run's validation record at the step of its best model ((wins − losses) / instances,
averaged over T = 40 and 100; ties: the lower mean validation cost). No test figure enters the
choice (`choose_levers`). That lever is then trained again with other seeds (same settings, same
timesteps; the test instances stay the same), and every seed's best model is paired on the 200
test instances. Wins: the weaker pairing (against the teacher or the warm start); max p: the
larger of the sign and Wilcoxon p-values; validation net wins: the figure the lever was chosen
by (for other seeds, that seed's own record).

{summary}

Validation figures of every lever tried (seed 0), the ones the choices read:

{validation}

## Against every tuned one-evaluation rule

The best learned rule per family is the lever whose seed-0 best model has the lowest mean
validation cost (the validation record at the best model's step, averaged over T = 40 and 100;
`choose_best_rules`; no test figure read), marked "(chosen)"; its other seeds follow, then the
other levers' cells that were paired. Each best model is paired on the 200 test instances against
every tuned one-evaluation-per-step rule (momentum, Nesterov, Adam, window_qn, window_adam_qn;
each tuned on the family's validation split at T = 40 and at T = 100, both kept: `name@T`); the
table shows the rule with the lowest test mean cost at that T, the lowest of those tuned at that T
itself, and tuned Adam (tuned at that T). Ahead: the learned rule's mean cost is below every one of
those rules' (all ten / the five tuned at T). Goal (#15): ahead on each classic family (logistic,
robust, two-layer), and ahead of tuned Adam at T = 100.

{hand_rules}

## Every cell

{tables}
{notes}"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="logistic,two_layer")
    parser.add_argument("--levers", default="residual_baseline")
    parser.add_argument("--timesteps", type=int, default=150_000)
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", default="runs/beyond")
    parser.add_argument("--docs", default="docs/beyond_warm_start.md")
    parser.add_argument("--collect", action="store_true", help="only rewrite the page from finished cells")
    parser.add_argument("--reevaluate", action="store_true", help="pair the trained cells again, no training")
    args = parser.parse_args(argv)
    bad = [f for f in args.families.split(",") if f not in FAMILIES] + [
        lever for lever in args.levers.split(",") if lever not in LEVERS
    ]
    if bad:
        parser.error(f"--families / --levers: unknown {bad[0]!r}; allowed {sorted(FAMILIES)} / {sorted(LEVERS)}")
    if args.timesteps < 1 or args.instances < 1:
        parser.error("--timesteps and --instances must be positive integers")
    return args


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    torch.set_num_threads(1)
    if not args.collect:
        for family in args.families.split(","):
            for lever in args.levers.split(","):
                run_cell(family, lever, args)
    return write_page(args)


if __name__ == "__main__":
    main()
