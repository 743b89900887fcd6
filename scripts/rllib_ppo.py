"""RLlib's PPO (new API stack) trains on an l2o_gym environment through the Gymnasium registry.

The id is the gym's own, prefixed with the module that registers it (Gymnasium's "module:id"
form), so every RLlib env runner imports l2o_gym before `gym.make_vec` builds the env:

    python scripts/rllib_ppo.py --env l2o/Quadratic-v0 --iterations 20
    python scripts/rllib_ppo.py --env l2o/Quadratic-v0 --coordinatewise --num-envs 8 --vector-entry-point

Observations are flattened by RLlib's FlattenObservations connector: the dict layout becomes one
vector, the coordinatewise rows [d, F] one vector of d * F (RLlib's default MLP then sees every
coordinate at once: the network is tied to the dimension d, not shared across coordinates).
Needs the extra: pip install 'l2o-gym[ray]'. Prints the mean episode return per iteration.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

ENV_MODULE = "l2o_gym"


def rllib_env_id(env_id: str) -> str:
    """The Gymnasium id with the module that registers it: 'l2o_gym:l2o/Quadratic-v0'."""
    return env_id if ":" in env_id else f"{ENV_MODULE}:{env_id}"


def ppo_config(
    env_id: str,
    *,
    coordinatewise: bool = False,
    num_envs: int = 1,
    vector_entry_point: bool = False,
    env_runners: int = 0,
    batch: int = 256,
    minibatch: int = 64,
    epochs: int = 4,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
):
    """An RLlib PPOConfig training on `env_id` (an l2o/* id), its observations flattened.

    `vector_entry_point`: RLlib builds `num_envs` instances as the gym's native vector env
    (one batched problem) instead of Gymnasium's sync vector of single envs."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.connectors.env_to_module import FlattenObservations

    env_config = {"coordinatewise": coordinatewise, **(env_kwargs or {})}
    mode = "vector_entry_point" if vector_entry_point else "sync"
    return (
        PPOConfig()
        .environment(rllib_env_id(env_id), env_config=env_config)
        .env_runners(
            num_env_runners=env_runners,
            num_envs_per_env_runner=num_envs,
            gym_env_vectorize_mode=mode,
            env_to_module_connector=lambda env, spaces=None, device=None: FlattenObservations(),
        )
        .training(train_batch_size_per_learner=batch, minibatch_size=minibatch, num_epochs=epochs)
        .debugging(seed=seed)
    )


def train(config, iterations: int) -> list[float]:
    """Build the algorithm, train `iterations` times; the mean episode return after each (nan: none ended)."""
    algo = config.build_algo()
    returns = []
    try:
        for _ in range(iterations):
            result = algo.train()
            returns.append(float(result.get("env_runners", {}).get("episode_return_mean", math.nan)))
    finally:
        algo.stop()
    return returns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="l2o/Quadratic-v0", help="a registered l2o/* id")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--coordinatewise", action="store_true", help="coordinatewise rows, flattened")
    parser.add_argument("--num-envs", type=int, default=1, help="env copies per env runner")
    parser.add_argument("--vector-entry-point", action="store_true", help="the gym's native vector env")
    parser.add_argument("--env-runners", type=int, default=0, help="remote env runners (0: sample here)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.iterations < 1 or args.num_envs < 1 or args.env_runners < 0:
        parser.error("--iterations and --num-envs must be >= 1, --env-runners >= 0")
    try:
        import ray
    except ImportError:
        parser.error("needs Ray: pip install 'l2o-gym[ray]'")
    import l2o_gym

    if args.env not in l2o_gym.registry.l2o_env_ids():
        parser.error(f"--env: unknown id {args.env!r}; registered: {', '.join(l2o_gym.registry.l2o_env_ids())}")
    ray.init(num_cpus=max(2, args.env_runners + 1), include_dashboard=False)
    config = ppo_config(
        args.env,
        coordinatewise=args.coordinatewise,
        num_envs=args.num_envs,
        vector_entry_point=args.vector_entry_point,
        env_runners=args.env_runners,
        seed=args.seed,
    )
    for i, value in enumerate(train(config, args.iterations), start=1):
        print(f"iteration {i}: mean episode return {value:.4g}", flush=True)
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
