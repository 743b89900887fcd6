"""PPO environment steps per second: l2o_gym's native batched SB3 VecEnv against SB3's
DummyVecEnv over single envs, same settings, same run. Prints both and their ratio.

    python benchmarks/sb3_throughput.py [--env l2o/Quadratic-v0] [--num-envs 32] [--timesteps 20480]

The recorded figures live in docs/results.md ("The native batched VecEnv");
a new run's figures replace them there.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

import l2o_gym


def steps_per_second(venv, timesteps: int, n_steps: int, seed: int) -> float:
    model = PPO("MultiInputPolicy", venv, n_steps=n_steps, batch_size=256, n_epochs=1, seed=seed, verbose=0)
    model.learn(n_steps * venv.num_envs)  # warm-up: first rollout and update
    start = time.perf_counter()
    model.learn(timesteps, reset_num_timesteps=False)
    return timesteps / (time.perf_counter() - start)


def collect_steps_per_second(venv, timesteps: int, seed: int) -> float:
    """Env steps per second of the environment alone (random actions), for the same forms."""
    venv.seed(seed)
    venv.reset()
    actions = [venv.action_space.sample() for _ in range(venv.num_envs)]
    import numpy as np

    actions = np.stack(actions)
    steps = timesteps // venv.num_envs
    start = time.perf_counter()
    for _ in range(steps):
        venv.step(actions)
    return steps * venv.num_envs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="l2o/Quadratic-v0")
    parser.add_argument("--num-envs", type=int, default=32)
    parser.add_argument("--timesteps", type=int, default=20480)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    def native():
        return l2o_gym.make_sb3_vec_env(args.env, args.num_envs, seed=args.seed)

    def dummy():
        return DummyVecEnv([lambda: gym.make(args.env) for _ in range(args.num_envs)])

    rows = []
    for label, make in (("native batched VecEnv", native), ("DummyVecEnv of single envs", dummy)):
        env_only = collect_steps_per_second(make(), args.timesteps, args.seed)
        ppo = steps_per_second(make(), args.timesteps, n_steps=40, seed=args.seed)
        rows.append((label, env_only, ppo))
    print(f"{args.env}, {args.num_envs} instances, {args.timesteps} timesteps, PPO n_steps=40, 1 epoch, 1 thread")
    print(f"{'form':<28} {'env steps/s':>12} {'PPO steps/s':>12}")
    for label, env_only, ppo in rows:
        print(f"{label:<28} {env_only:>12.0f} {ppo:>12.0f}")
    print(
        f"ratio native / DummyVecEnv: env alone {rows[0][1] / rows[1][1]:.1f}x, "
        f"PPO end to end {rows[0][2] / rows[1][2]:.1f}x"
    )


if __name__ == "__main__":
    main()
