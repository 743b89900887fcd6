"""Several GPS training runs of one family (seeds seed, seed + 1, ...), one of them chosen as the result.

Training runs differ from each other more than the iterations within a run do, so a family's options
may ask for `restarts: K` runs (agents.gps.family_options); the run kept is the one whose `best/`
beats tuned Adam on the most selection instances (agents.gps.best_selection: paired wins by
Σ_{t=1..τ} f, ties half, averaged over the selection horizons, on instances of their own seed stream,
disjoint from the benchmark's validation and test instances). The training time of the pooled
result is the sum over all its runs and the selection.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from agents.gps.best_selection import WinsAgainstAdam
from agents.gps.options import GPSOptions
from l2o_gym.registry import make_family
from l2o_gym.update_rule import UpdateRule


def choice_file(folder: Path, restarts: int) -> Path:
    """Where the choice among the first `restarts` runs of `folder` is recorded (scores per run, the chosen
    run, selection seconds); one per K, so pools of 3 and 4 runs of the same folder do not mix."""
    return folder / f"restarts_{restarts}.json"


def restart_runs(options: GPSOptions, folder: Path, restarts: int) -> list[tuple[GPSOptions, Path]]:
    """Each run's options and folder: one run is `folder` itself; K > 1 are folder/run{k} with seed + k."""
    if restarts == 1:
        return [(options, folder)]
    return [(replace(options, seed=options.seed + k), folder / f"run{k}") for k in range(restarts)]


def choose_run(scores: list[float]) -> int:
    """Index of the highest selection score (the first of equal ones)."""
    if not scores:
        raise ValueError("choose_run needs at least one run's score")
    return max(range(len(scores)), key=lambda k: (scores[k], -k))


def summed_seconds(timings: list[tuple[float, float]]) -> tuple[float, float]:
    """(wall, CPU) seconds summed over runs given as (wall, CPU) pairs."""
    return sum(wall for wall, _ in timings), sum(cpu for _, cpu in timings)


def selection_scores(
    env_id: str, rules: list[UpdateRule], options: GPSOptions, horizons: tuple[int, ...]
) -> list[float]:
    """Each rule's mean paired win rate against tuned Adam over `horizons` on options.selection_instances
    selection instances (seed stream SELECTION_SEED_OFFSET + options.seed)."""
    selector = WinsAgainstAdam(
        env_id, make_family(env_id), options.selection_instances, horizons, options.seed, options.history
    )
    return [selector.score(rule) for rule in rules]
