"""Env steps per second of `EpisodeBatch` (coordinatewise observation) on the CPU and on CUDA,
same family, same batch, same run; prints both and their ratio (CUDA / CPU).

An env step is one coordinate of one instance (what an SB3 coordinatewise VecEnv counts), so a
batch step of B instances of dimension d is B · d env steps. Two loops are timed per device:
"core" (step + observe, tensors stay on the device) and "sb3" (the SB3 VecEnv: numpy actions in,
numpy observations, rewards and infos out). Episode resets (instance sampling and the optimum
solve) are outside the timed loops except for the SB3 VecEnv's autoresets.

    python benchmarks/cuda_throughput.py [--env l2o/LogisticRegression-v0] [--instances 1024 16384]
        [--seconds 3] [--threads N]

The recorded figures live in docs/results.md ("On a GPU");
a new run's figures replace them there.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import l2o_gym
from l2o_gym.episode_batch import EpisodeBatch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def core_steps_per_second(env_id: str, instances: int, device: torch.device, seconds: float) -> float:
    family = l2o_gym.make_family(env_id)
    batch = EpisodeBatch(family, instances, horizon=10**9, coordinatewise=True, device=device)
    batch.reset(torch.Generator().manual_seed(0))
    actions = 0.1 * (2 * torch.rand(instances, family.dim, generator=torch.Generator().manual_seed(1)) - 1)
    actions = actions.to(device)

    def run(steps: int) -> float:
        sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            batch.step(actions)
            batch.observe()
        sync(device)
        return time.perf_counter() - start

    run(5)  # warm-up (CUDA context, kernels, allocator)
    steps = 10
    while (elapsed := run(steps)) < seconds / 4:
        steps *= 2
    steps = max(steps, int(steps * seconds / max(elapsed, 1e-9)))
    return steps * instances * family.dim / run(steps)


def sb3_steps_per_second(env_id: str, instances: int, device: torch.device, seconds: float) -> float:
    venv = l2o_gym.make_sb3_vec_env(env_id, instances, seed=0, coordinatewise=True, device=str(device))
    venv.reset()
    actions = np.random.default_rng(0).uniform(-0.1, 0.1, (venv.num_envs, 1)).astype(np.float32)

    def run(steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            venv.step(actions)
        return time.perf_counter() - start

    run(3)
    steps = 5
    while (elapsed := run(steps)) < seconds / 4:
        steps *= 2
    steps = max(steps, int(steps * seconds / max(elapsed, 1e-9)))
    return steps * venv.num_envs / run(steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="l2o/LogisticRegression-v0")
    parser.add_argument("--instances", type=int, nargs="+", default=[1024, 16384])
    parser.add_argument("--seconds", type=float, default=2.0, help="target time of each timed loop")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch (the CPU baseline)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("CUDA is not available: nothing to compare against the CPU")
    torch.set_num_threads(args.threads)
    cuda = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name(cuda)}; torch {torch.__version__}; CPU threads: {args.threads}")
    print(f"env: {args.env} (coordinatewise), env steps/s = instance steps/s x dim")
    print(f"{'loop':<6}{'B':>8}{'CPU steps/s':>16}{'CUDA steps/s':>16}{'CUDA/CPU':>10}")
    for instances in args.instances:
        for label, measure in (("core", core_steps_per_second), ("sb3", sb3_steps_per_second)):
            cpu = measure(args.env, instances, torch.device("cpu"), args.seconds)
            gpu = measure(args.env, instances, cuda, args.seconds)
            print(f"{label:<6}{instances:>8}{cpu:>16,.0f}{gpu:>16,.0f}{gpu / cpu:>10.2f}", flush=True)


if __name__ == "__main__":
    main()
