"""SB3 VecEnv steps per second with and without an instance pool, same family, same run.

Coordinatewise layout, 32 instances, horizons sampled in [20, 100] (staggered episode ends),
zero actions, one thread. Without a pool every reset solves f* for the one or two instances that
just ended; with ``instance_pool=64`` one batched solve serves 64 resets.

    python benchmarks/instance_pool_throughput.py [--envs ...] [--steps 300]

The recorded figures live in docs/environments.md ("Observation, action, reward, episode");
a new run's figures replace them there.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import l2o_gym

FAMILIES = ("l2o/LogisticRegression-v0", "l2o/RobustLinearRegression-v0", "l2o/TwoLayerNet-v0")


def steps_per_second(env_id: str, pool: int, steps: int) -> float:
    env = l2o_gym.make_sb3_vec_env(env_id, 32, seed=0, coordinatewise=True, horizon=(20, 100), instance_pool=pool)
    env.reset()
    actions = np.zeros((env.num_envs, 1), np.float32)
    start = time.perf_counter()
    for _ in range(steps):
        env.step(actions)
    return env.num_envs * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", default=",".join(FAMILIES))
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| family | no pool (steps/s) | pool 64 (steps/s) | ratio |")
    print("|---|---:|---:|---:|")
    for env_id in args.envs.split(","):
        plain = steps_per_second(env_id, 0, args.steps)
        pooled = steps_per_second(env_id, 64, args.steps)
        print(f"| {env_id} | {plain:,.0f} | {pooled:,.0f} | {pooled / plain:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
