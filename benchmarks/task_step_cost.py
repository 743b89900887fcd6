"""Cost of one environment step on the meta-learning families against the bare model.

For each family, at a batch of B instances: the mean wall time of one `EpisodeBatch.step`
followed by `observe()` (what an env step does; coordinatewise layout, H = 25) against one bare
batched loss + gradient of the same B models (`problem.loss_and_grad(x)`), measured in the same
run on the same problem. The ratio is the gym's overhead (a step costs one loss+gradient plus the
bookkeeping and features).

    python benchmarks/task_step_cost.py --instances 16 --repeats 10

The recorded figures live in docs/results.md ("Meta-learning families");
a new run's figures replace them there.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from l2o_gym.episode_batch import EpisodeBatch
from l2o_gym.registry import make_family

FAMILIES = {
    "l2o/MAMLSinusoid-v0": {"meta_iterations": 20},
    "l2o/MAMLDigits-v0": {"meta_iterations": 20},
    "l2o/MANNDigits-v0": {},
    "l2o/HyperNetDigits-v0": {},
}


def timed(fn, repeats: int) -> float:
    fn()  # warm up
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    print(f"B = {args.instances} instances, coordinatewise observation, {args.repeats} repeats, 1 thread\n")
    print("| family | d | loss+grad (ms) | env step + observe (ms) | ratio | observation floats |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as cache:  # the init's quality does not matter for timing
        for env_id, kwargs in FAMILIES.items():
            if "meta_iterations" in kwargs:
                kwargs = {**kwargs, "cache_dir": cache}
            family = make_family(env_id, **kwargs)
            batch = EpisodeBatch(family, args.instances, coordinatewise=True, horizon=10**6)
            batch.reset(generator)
            state = batch.require_state()
            x = state.x.clone()
            bare = timed(lambda: state.problem.loss_and_grad(x), args.repeats)  # noqa: B023
            action = 0.01 * torch.randn(args.instances, family.dim, generator=generator)

            def env_step() -> None:
                batch.step(action)  # noqa: B023
                batch.observe()  # noqa: B023

            step = timed(env_step, args.repeats)
            floats = batch.observe().numel()
            print(f"| {env_id} | {family.dim} | {1e3 * bare:.1f} | {1e3 * step:.1f} | {step / bare:.2f} | {floats:,} |")


if __name__ == "__main__":
    main()
