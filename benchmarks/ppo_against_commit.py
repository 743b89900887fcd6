"""PPO problem-steps/s of the current code against the code of an earlier commit, in one run.

The commit (default d3f495a, the code before the PPO and env speed work of docs/ppo_speed.md and
docs/speed.md) is materialised with ``git archive`` into a temporary folder; there
`benchmarks/ppo_commit_driver.py` builds the logistic-regression PPO model as that commit's
`train_sb3` built it (its own hyperparameters, env, SB3's PPO) and times it. The current code is
timed by ``python -m benchmarks.ppo_throughput`` (as `train_sb3` builds it now) with its default
and each file of `--configs`. Every measurement is a fresh subprocess with one torch thread (CPU
time and wall time of `--rollouts` rollouts and updates after a warm-up one); the cases alternate
within each of `--rounds` rounds. A case's figure is the median over rounds, its ratios the medians
over rounds of its figure over the commit's, and over the first configuration's, in the same round
[min–max over rounds].

    python -m benchmarks.ppo_against_commit [--commit d3f495a] [--configs default,agents/rl/ppo_logistic_previous.yaml]
        [--rounds 5] [--rollouts 4] [--docs docs/ppo_speed.md]

With `--docs`, the table replaces its own block in that page (between the markers below; added at
the end the first time), leaving the rest of the page as it is.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks.ppo_throughput import MEASURED, PPO_ENV, PPOThroughput

ROOT = Path(__file__).resolve().parents[1]
DRIVER = Path(__file__).with_name("ppo_commit_driver.py")
DEFAULT_COMMIT = "d3f495a"  # the code before the speed work of docs/speed.md and docs/ppo_speed.md
DEFAULT = "default"
PREVIOUS = "agents/rl/ppo_logistic_previous.yaml"
BLOCK_BEGIN = "<!-- ppo_against_commit: begin (written by benchmarks/ppo_against_commit.py) -->"
BLOCK_END = "<!-- ppo_against_commit: end -->"


@dataclass(frozen=True)
class Case:
    """One thing measured: `label`, the command that prints its JSON line, run in `cwd` with `env`."""

    label: str
    command: tuple[str, ...]
    cwd: Path
    env: dict[str, str]


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, check=False)


def resolve_commit(commit: str) -> tuple[str, str] | str:
    """(full hash, subject line) of `commit` in this repository, or a one-line reason why not."""
    if shutil.which("git") is None:
        return "git is not on PATH: it is needed to materialise --commit"
    found = git("rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
    if found.returncode != 0:
        return f"--commit must name a commit of the repository at {ROOT}, got {commit!r}"
    sha = found.stdout.decode().strip()
    return sha, git("log", "-1", "--format=%s", sha).stdout.decode().strip()


def materialise(sha: str, folder: Path) -> Path:
    """The tree of commit `sha` extracted under `folder` (``git archive``); returns its root."""
    archive = git("archive", "--format=tar", sha)
    if archive.returncode != 0:
        reason = (archive.stderr.decode().strip().splitlines() or ["no message"])[-1]
        raise SystemExit(f"git archive {sha} failed: {reason}")
    tree = folder / sha[:12]
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(tree, filter="data")
    return tree


def cases(tree: Path, short: str, configs: list[str | None], rollouts: int, cache: Path) -> list[Case]:
    """The commit's measurement first, then the current code's with each configuration."""
    base = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    old = Case(
        f"{short} (its own training configuration)",
        (sys.executable, "-c", DRIVER.read_text(), PPO_ENV, str(rollouts), "0"),
        tree,
        # the commit's tree alone on the path; its caches (if it writes any) kept apart
        {**base, "PYTHONPATH": str(tree), "L2O_GYM_CACHE": str(cache)},
    )
    current = [
        Case(
            f"current code, {DEFAULT if config is None else config}",
            (sys.executable, "-m", "benchmarks.ppo_throughput", "--rollouts", str(rollouts))
            + (() if config is None else ("--config", str(Path(config).resolve()))),
            ROOT,
            {**base, "PYTHONPATH": str(ROOT)},
        )
        for config in configs
    ]
    return [old, *current]


def measure(case: Case) -> PPOThroughput:
    """Run one case's subprocess; its last stdout line is the JSON record."""
    done = subprocess.run(list(case.command), cwd=case.cwd, env=case.env, capture_output=True, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"measuring {case.label} failed (exit {done.returncode}): {reason}")
    record = json.loads(lines[-1])
    return PPOThroughput(case.label, **{name: record[name] for name in MEASURED})


def spread(ratios: list[float]) -> str:
    return f"{statistics.median(ratios):.2f}× [{min(ratios):.2f}–{max(ratios):.2f}]"


def table(measured: dict[str, list[PPOThroughput]]) -> list[str]:
    """Markdown rows: each case's medians over rounds, its ratio to the first case (the commit) and
    the second case's (the current code's first configuration) ratio to it, round by round."""
    first, second = list(measured.values())[:2]

    def ratios(runs: list[PPOThroughput], to: list[PPOThroughput], rate: str) -> str:
        return spread([getattr(m, rate) / getattr(t, rate) for m, t in zip(runs, to, strict=True)])

    lines = [
        "| code, configuration | instances × d | problem-steps/s (CPU) | × commit | row 2 × it "
        "| problem-steps/s (wall) | × commit | update share (CPU) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, runs in measured.items():
        lines.append(
            f"| {label} | {runs[0].num_envs} × {runs[0].dim} "
            f"| {statistics.median(m.cpu_rate for m in runs):,.0f} | {ratios(runs, first, 'cpu_rate')} "
            f"| {ratios(second, runs, 'cpu_rate')} "
            f"| {statistics.median(m.wall_rate for m in runs):,.0f} | {ratios(runs, first, 'wall_rate')} "
            f"| {statistics.median(m.update_share for m in runs):.0%} |"
        )
    return lines


def block(args: argparse.Namespace, rows: list[str]) -> str:
    configs = ",".join(DEFAULT if c is None else c for c in args.configs)
    command = f"python -m benchmarks.ppo_against_commit --commit {args.commit} --configs {configs}"
    command += f" --rounds {args.rounds} --rollouts {args.rollouts}"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return "\n".join(
        [
            BLOCK_BEGIN,
            f"## Against the code of {args.sha[:7]} (one run)",
            "",
            f"Written by `benchmarks/ppo_against_commit.py` (torch {torch.__version__}, 1 thread; load",
            f"average {load:.1f} at the end), measured in one run of",
            "",
            f"    {command}",
            "",
            f"{args.sha[:7]} extracted with `git archive`; PPO on {PPO_ENV} built as that commit's",
            "`train_sb3` built it (its own hyperparameters and env, SB3's PPO), and as `train_sb3` builds it",
            f"now. Each figure: {args.rollouts} rollouts and updates after a warm-up one, in a fresh",
            f"subprocess with one torch thread; median of {args.rounds} rounds in which the cases alternate. × commit:",
            "the median over rounds of the ratio to the commit's figure in the same round [min–max]; row 2 × it:",
            "likewise, the current code's first configuration over the row's (CPU time).",
            "",
            *rows,
            BLOCK_END,
        ]
    )


def write_block(path: Path, text: str) -> None:
    """`text` in place of the page's block (or appended at its end), atomically."""
    from l2o_gym.atomic_io import atomic_write_text

    page = path.read_text() if path.is_file() else ""
    before, found, rest = page.partition(BLOCK_BEGIN)
    after = rest.partition(BLOCK_END)[2] if found else ""
    before = before if found else before.rstrip("\n") + "\n\n"
    atomic_write_text(path, before + text + (after if found else "\n"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commit", default=DEFAULT_COMMIT, help="the commit whose code is the baseline")
    parser.add_argument(
        "--configs", default=f"{DEFAULT},{PREVIOUS}", help="current-code configurations: config files or 'default'"
    )
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    parser.add_argument("--rollouts", type=int, default=4, help="timed rollouts and updates per measurement")
    parser.add_argument("--docs", type=Path, default=None, help="write the table into this page (its own block)")
    args = parser.parse_args(argv)
    names = [c for c in args.configs.split(",") if c]
    missing = [c for c in names if c != DEFAULT and not Path(c).is_file()]
    if missing or not names:
        parser.error(
            f"--configs must name existing config files or {DEFAULT!r}, comma-separated; got {missing or names}"
        )
    args.configs = [None if c == DEFAULT else c for c in names]
    for name in ("rounds", "rollouts"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be a positive integer, got {getattr(args, name)}")
    resolved = resolve_commit(args.commit)
    if isinstance(resolved, str):
        parser.error(resolved)
    args.sha, args.subject = resolved
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"{args.sha[:7]}: {args.subject}", flush=True)
    with tempfile.TemporaryDirectory(prefix="ppo_against_commit_") as folder:
        tree = materialise(args.sha, Path(folder))
        todo = cases(tree, args.sha[:7], args.configs, args.rollouts, Path(folder) / "cache")
        measured: dict[str, list[PPOThroughput]] = {case.label: [] for case in todo}
        for round_index in range(args.rounds):
            for case in todo:
                last = measure(case)
                measured[case.label].append(last)
                print(
                    f"round {round_index + 1}: {case.label}: {last.cpu_rate:,.0f} problem-steps/s CPU, "
                    f"{last.wall_rate:,.0f} wall",
                    flush=True,
                )
    rows = table(measured)
    print("\n".join(rows))
    if args.docs is not None:
        write_block(args.docs, block(args, rows))
        print(f"wrote {args.docs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
