"""Several training runs (seeds, families, algorithms) as independent cells, in-process or on Ray.

`train_runs(runs)` trains every `TrainingRun` through `l2o_gym.execution.run_cells`: each run is
one cell that calls `train_sb3` (ppo, sac, ...) or `train_meta_optimizer` (l2l, meta_lstm) with
its own seed and run folder, and returns where the best learned optimizer was saved. With
`results_dir`, finished runs are remembered, so an interrupted sweep resumes with the runs not
yet finished. The run folders must be visible to the machine that loads the results: on a
cluster, put `out_dir` on storage every node shares.

    runs = [TrainingRun("l2o/Quadratic-v0", "ppo", seed, Path("runs") / f"quadratic_ppo_s{seed}") for seed in range(4)]
    finished = train_runs(runs, backend="ray")      # {run.key(): {"best": ..., "timesteps": ..., "wall_s": ...}}
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l2o_gym.execution import run_cells

META_ALGOS = ("l2l", "meta_lstm")


@dataclass
class TrainingRun:
    """One training run: `algo` on `env_id` with `seed`, written into `out_dir`; `timesteps` None
    takes the hyperparameters' budget (sb3) or 200 000 inner steps (meta); `options` are further
    keywords of `train_sb3` or `train_meta_optimizer`."""

    env_id: str
    algo: str
    seed: int
    out_dir: Path
    timesteps: int | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        """The cell's key: every setting the run depends on."""
        options = ",".join(f"{k}={v!r}" for k, v in sorted(self.options.items()))
        return f"train|{self.env_id}|{self.algo}|seed={self.seed}|T={self.timesteps}|{self.out_dir}|{options}"


def train_run(run: TrainingRun) -> dict[str, Any]:
    """Train one run (the cell); returns {"best": folder, "timesteps": steps trained, "best_step", "wall_s"}."""
    from agents.runtime.saved_rules import read_meta

    start = time.perf_counter()
    if run.algo in META_ALGOS:
        from agents.meta.meta_training import train_meta_optimizer

        options = {"progress": False, **run.options}
        timesteps = run.timesteps or 200_000
        best = train_meta_optimizer(run.env_id, run.algo, timesteps, run.seed, Path(run.out_dir), **options)
    else:
        from agents.rl.sb3_training import train_sb3

        options = {"progress_bar": False, **run.options}
        result = train_sb3(run.env_id, run.algo, out_dir=run.out_dir, timesteps=run.timesteps, seed=run.seed, **options)
        best, timesteps = result.best, result.timesteps
    return {
        "best": str(best),
        "timesteps": int(timesteps),
        "best_step": int(read_meta(best).get("timesteps", 0)),
        "wall_s": time.perf_counter() - start,
    }


def check_runs(runs: Sequence[TrainingRun]) -> list[TrainingRun]:
    """The runs, or a one-line ValueError: known algorithms, seeds >= 0, distinct run folders."""
    from agents.rl.sb3_training import ALGOS
    from l2o_gym.registry import l2o_env_ids

    runs = list(runs)
    if not runs or not all(isinstance(r, TrainingRun) for r in runs):
        raise ValueError("runs must be a non-empty sequence of TrainingRun")
    ids = l2o_env_ids()
    for run in runs:
        if run.env_id not in ids:
            raise ValueError(f"env_id {run.env_id!r} is not registered; registered: {', '.join(ids)}")
        if run.algo not in (*ALGOS, *META_ALGOS):
            raise ValueError(f"algo must be one of {', '.join((*ALGOS, *META_ALGOS))}, got {run.algo!r}")
        if isinstance(run.seed, bool) or not isinstance(run.seed, int) or run.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {run.seed!r}")
    folders = [Path(r.out_dir).resolve() for r in runs]
    if len(set(folders)) != len(folders):
        raise ValueError("out_dir: two runs write into the same folder; give each run its own")
    return runs


def train_runs(
    runs: Sequence[TrainingRun],
    *,
    backend: str = "local",
    address: str | None = None,
    progress: bool = True,
    results_dir: str | Path | None = None,
) -> dict[str, dict[str, Any]]:
    """{run.key(): what `train_run` returned} for every run, trained as cells on `backend`."""
    runs = check_runs(runs)
    cells = {run.key(): run for run in runs}
    return run_cells(
        train_run, cells, backend=backend, address=address, progress=progress, results_dir=results_dir, desc="training"
    )


__all__ = ["TrainingRun", "check_runs", "train_run", "train_runs"]
