"""PPO problem-steps per second with a training configuration, built exactly as a training run
builds it (`agents.rl.sb3_training.build_env` / `build_model`: step form, episode monitor,
the policy's sigmoid tanh), without warm start or validation.

A problem-step is one instance advanced one step (B per env step, whatever d; a coordinatewise
row is one of its d coordinates). `measure_ppo` times whole rollouts and updates after one
warm-up rollout and update, with both clocks (CPU time of this process and wall time), and the
share of the CPU time spent outside the rollouts (PPO's update). Used by
`benchmarks/env_overhead.py` (its PPO rows), `benchmarks/ppo_speed_check.py` and, as a command that
prints one JSON line of the measured fields, `benchmarks/ppo_against_commit.py`:

    python -m benchmarks.ppo_throughput [--config FILE] [--env-id ID] [--rollouts 4] [--seed 0]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PPO_ENV = "l2o/LogisticRegression-v0"
# the fields of a PPOThroughput that a measurement fills (all but its label), as the JSON line holds them
MEASURED = ("num_envs", "dim", "problem_steps", "cpu_s", "wall_s", "collect_cpu_s")


@dataclass
class PPOThroughput:
    """What `measure_ppo` measured: `problem_steps` in `cpu_s` CPU seconds and `wall_s` wall
    seconds, `collect_cpu_s` of the CPU time inside rollouts; B = `num_envs` instances of dimension `dim`."""

    label: str
    num_envs: int
    dim: int
    problem_steps: int
    cpu_s: float
    wall_s: float
    collect_cpu_s: float

    @property
    def cpu_rate(self) -> float:
        return self.problem_steps / self.cpu_s

    @property
    def wall_rate(self) -> float:
        return self.problem_steps / self.wall_s

    @property
    def update_share(self) -> float:
        return 1.0 - self.collect_cpu_s / self.cpu_s


def quick_config(config: Any) -> Any:
    """A tiny version of a TrainingConfig (2 instances, 4 steps, one epoch): a smoke test."""
    algo = {**config.algo, "n_steps": 4, "batch_size": 16, "n_epochs": 1}
    return dataclasses.replace(config, num_envs=2, algo=algo)


def measure_ppo(
    config: str | Path | None = None,
    *,
    env_id: str = PPO_ENV,
    rollouts: int = 4,
    quick: bool = False,
    seed: int = 0,
    speedups: bool = True,
) -> PPOThroughput:
    """PPO on `env_id` with its hyperparameters (and the file `config` over them): `rollouts`
    rollouts and updates timed after one warm-up rollout and update. `speedups=False`: SB3's own
    PPO and torch's tanh (`agents.rl.sb3_training.build_model`), to measure what they save."""
    from stable_baselines3.common.callbacks import BaseCallback

    from agents.rl.config_loading import check_training_config, load_training_config
    from agents.rl.sb3_training import build_env, build_model

    training = load_training_config(env_id, "ppo", config)
    family = check_training_config(training, env_id, "ppo")
    training = quick_config(training) if quick else training

    class RolloutClock(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.collecting = self._start = 0.0

        def _on_rollout_start(self) -> None:
            self._start = time.process_time()

        def _on_rollout_end(self) -> None:
            self.collecting += time.process_time() - self._start

        def _on_step(self) -> bool:
            return True

    venv, raw, _ = build_env(training, family, seed)
    with tempfile.TemporaryDirectory() as logs:
        model = build_model("ppo", training, venv, seed, Path(logs), verbose=0, speedups=speedups)
        per_rollout = int(training.algo["n_steps"]) * venv.num_envs
        model.learn(per_rollout)  # warm-up: one rollout and one update
        clock = RolloutClock()
        cpu, wall = time.process_time(), time.perf_counter()
        model.learn(rollouts * per_rollout, reset_num_timesteps=False, callback=clock)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    label = "training configuration" + (f" + {config}" if config else "") + ("" if speedups else ", SB3's own PPO")
    problem_steps = rollouts * int(training.algo["n_steps"]) * training.num_envs
    return PPOThroughput(label, training.num_envs, raw.dim, problem_steps, cpu, wall, clock.collecting)


def main(argv: list[str] | None = None) -> int:
    """One measurement with one torch thread, printed as one JSON line of `MEASURED`."""
    import torch

    from l2o_gym.registry import l2o_env_ids

    parser = argparse.ArgumentParser(description="PPO problem-steps/s of a training configuration (one JSON line)")
    parser.add_argument("--config", default=None, help="a config file merged over agents/rl/hyperparams.yaml")
    parser.add_argument("--env-id", default=PPO_ENV)
    parser.add_argument("--rollouts", type=int, default=4, help="timed rollouts and updates after a warm-up one")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.config is not None and not Path(args.config).is_file():
        parser.error(f"--config must name an existing config file, got {args.config!r}")
    if args.env_id not in l2o_env_ids():
        parser.error(f"--env-id must be a registered l2o env id (e.g. {PPO_ENV}), got {args.env_id!r}")
    if args.rollouts < 1 or args.seed < 0:
        parser.error(f"--rollouts must be >= 1 and --seed >= 0, got {args.rollouts} and {args.seed}")
    torch.set_num_threads(1)
    measured = measure_ppo(args.config, env_id=args.env_id, rollouts=args.rollouts, seed=args.seed)
    print(json.dumps({name: getattr(measured, name) for name in MEASURED}))
    return 0


__all__ = ["MEASURED", "PPO_ENV", "PPOThroughput", "main", "measure_ppo", "quick_config"]


if __name__ == "__main__":
    raise SystemExit(main())
