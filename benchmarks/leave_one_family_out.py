"""Leave-one-family-out on the training mixture: one PPO policy per left-out member family.

For every member F of `l2o/TrainingMixture-v0` (tasks/heldout_suite.py): train PPO on the mixture
without F (`l2o-gym train --env l2o/TrainingMixture-v0 --algo ppo` with the mixture's entry of
agents/rl/hyperparams.yaml and ``env: {leave_out: F}``; `--timesteps` shortens it), check from the
saved policy's metadata that it never saw F (`tasks.leave_one_out`), then score it on F's test
split against tuned Adam, L-BFGS and window_qn (tuned on F's validation split) exactly as
benchmarks/heldout_suite.py scores a held-out id: per instance, a win when the policy did not
diverge and the baseline diverged or ended strictly lower; 95 % Wilson intervals.

    python benchmarks/leave_one_family_out.py [--timesteps N] [--instances 100] [--horizon 40]
        [--families ID,ID] [--runs runs/leave_one_out] [--out docs/leave_one_family_out.md]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.runtime.saved_rules import load_rule  # noqa: E402
from benchmarks.heldout_suite import (  # noqa: E402
    _failures,
    _rate,
    add_evaluation_options,
    check_evaluation_options,
    comma_separated_choice,
    evaluate_id,
)
from l2o_gym.atomic_io import atomic_write_text  # noqa: E402
from tasks.heldout_suite import TRAINING_MIXTURE, TRAINING_MIXTURE_ID, check_unseen  # noqa: E402
from tasks.leave_one_out import trained_families  # noqa: E402

MEMBERS: tuple[str, ...] = tuple(TRAINING_MIXTURE[1]["members"])


def train_command(family: str, run: Path, args: argparse.Namespace) -> list[str]:
    """The `l2o-gym train` command line of the run that leaves `family` out (its YAML written)."""
    run.parent.mkdir(parents=True, exist_ok=True)
    config = run.parent / f"{run.name}.yaml"
    config.write_text(yaml.safe_dump({"env": {"leave_out": family}}))
    command = [sys.executable, str(ROOT / "train_agent.py"), "train", "--env", TRAINING_MIXTURE_ID, "--algo", "ppo"]
    command += ["--config", str(config), "--out", str(run), "--overwrite", "--no-progress", "--seed", str(args.seed)]
    command += ["--test-instances", "10", "--report-horizons", str(args.horizon)]
    return command + ([] if args.timesteps is None else ["--timesteps", str(args.timesteps)])


def load_left_out_policy(family: str, run: Path) -> tuple[object, dict]:
    """The run's best policy, or a ValueError if its metadata says it trained on `family`."""
    policy = load_rule(run / "best_model")
    check_unseen({run.name: policy}, [family])
    return policy, dict(getattr(policy, "meta", {}) or {})


def run_family(family: str, args: argparse.Namespace) -> dict:
    """Train without `family` (unless --skip-train), then evaluate on its test split."""
    run = args.runs / ("without_" + family.split("/")[-1].removesuffix("-v0"))
    start = time.perf_counter()
    if not args.skip_train:
        subprocess.run(train_command(family, run, args), check=True, stdout=subprocess.DEVNULL)
    train_s = time.perf_counter() - start
    policy, meta = load_left_out_policy(family, run)
    row = evaluate_id(family, {"ppo": policy}, args)
    kept = sorted(trained_families(meta) - {TRAINING_MIXTURE_ID})
    row.update(run=str(run), kept=kept, best_step=meta.get("timesteps"), train_s=train_s)
    print(f"{family}: trained on {', '.join(kept)}; best step {row['best_step']}", file=sys.stderr, flush=True)
    return row


def markdown(rows: list[dict], args: argparse.Namespace, wall: float) -> str:
    """The report: one row per left-out family, then medians and failures."""
    baselines = list(args.baselines)
    budget = "the mixture's hyperparams.yaml entry" if args.timesteps is None else f"--timesteps {args.timesteps}"
    lines = [
        "# Leave one family out",
        "",
        "Written by `benchmarks/leave_one_family_out.py`; every figure below was measured in one run of",
        "",
        "```",
        "python benchmarks/leave_one_family_out.py " + " ".join(args.argv),
        "```",
        "",
        f"({wall / 60:.0f} min on this machine, training included; training budget: {budget}.)",
        f"For each member F of `{TRAINING_MIXTURE_ID}`, one PPO policy is trained on the mixture without F",
        "(`l2o-gym train --env l2o/TrainingMixture-v0 --algo ppo` with `env: {leave_out: F}` in its YAML, over",
        "the mixture's entry of agents/rl/hyperparams.yaml: window_qn imitation warm start, then PPO), and",
        "scored on F's test split, which it never saw (checked from its metadata: `tasks/leave_one_out.py`;",
        "`l2o-gym evaluate --leave-one-out` applies the same check).",
        f"Baselines tuned on F's validation split: {', '.join(baselines)}. {args.instances} test instances per F,",
        f"horizon T = {args.horizon}, seed {args.seed}. A win: the policy did not diverge and the baseline",
        "diverged or ended strictly lower (f - f* where f* is known, else f). Intervals: Wilson 95 %.",
        "Best step: the training step of the saved policy (`best_model`, chosen on validation); 0 means the",
        "imitation warm start beat every PPO update.",
        "",
        "| left-out family | trained on | best step | "
        + " | ".join(f"wins vs {b} [95 % CI]" for b in baselines)
        + " |",
        "|---|---|---:|" + "---:|" * len(baselines),
    ]
    for r in rows:
        rates = " | ".join(_rate(r["wins"]["ppo"][b], r["n"]) for b in baselines)
        kept = ", ".join(k.removeprefix("l2o/").removesuffix("-v0") for k in r["kept"])
        lines.append(f"| {r['env_id']} | {kept} | {r['best_step']} | {rates} |")
    methods = ["ppo", *baselines]
    lines += ["", "Medians of the final value (f - f*, or f where f* is unknown).", ""]
    lines += [
        f"| left-out family | {' | '.join(methods)} | train s | evaluate s |",
        "|---|" + "---:|" * (len(methods) + 2),
    ]
    for r in rows:
        medians = " | ".join(f"{r['median'][m]:.3g}" for m in methods)
        lines.append(f"| {r['env_id']} | {medians} | {r['train_s']:.0f} | {r['seconds']:.0f} |")
    lines += ["", "Failures (diverged, or ended above the starting objective):", ""]
    lines += [f"- {r['env_id']}: {_failures(r)}" for r in rows]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timesteps", type=int, default=None, help="PPO steps per run (default: hyperparams.yaml)")
    add_evaluation_options(parser, instances=100)
    parser.add_argument("--families", default=",".join(MEMBERS), help="comma-separated members to leave out")
    parser.add_argument("--runs", type=Path, default=Path("runs/leave_one_out"), help="folder of the runs")
    parser.add_argument("--skip-train", action="store_true", help="evaluate the runs already in --runs")
    parser.add_argument("--out", type=Path, default=Path("docs/leave_one_family_out.md"))
    args = check_evaluation_options(parser, parser.parse_args(argv), argv)
    if args.timesteps is not None and args.timesteps < 1:
        parser.error("--timesteps must be >= 1")
    args.families = comma_separated_choice(parser, "--families", args.families, MEMBERS, "mixture members")
    return args


def main(argv: list[str] | None = None) -> str:
    torch.set_num_threads(1)
    args = parse_args(sys.argv[1:] if argv is None else argv)
    start = time.perf_counter()
    try:
        rows = [run_family(family, args) for family in args.families]
    except (FileNotFoundError, ValueError, subprocess.CalledProcessError) as err:
        sys.exit(f"leave_one_family_out: {err}")
    text = markdown(rows, args, time.perf_counter() - start)
    atomic_write_text(args.out, text)
    print(text)
    return text


if __name__ == "__main__":
    main()
