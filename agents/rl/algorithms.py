"""The stable-baselines3 (or sb3-contrib) algorithm class and policy name of each `--algo`."""

from __future__ import annotations

from agents.rl.config import ALGOS


def algorithm_class(algo: str, batched_bootstrap: bool = True) -> type:
    """The SB3 (or sb3-contrib) algorithm class; PPO and A2C with batched truncation bootstraps
    (`agents.rl.truncation_bootstrap`) unless `batched_bootstrap` is False."""
    if algo not in ALGOS:
        raise ValueError(f"algo must be one of {ALGOS}, got {algo!r}")
    if algo == "recurrent_ppo":
        from sb3_contrib import RecurrentPPO

        return RecurrentPPO
    if algo in ("ppo", "a2c") and batched_bootstrap:
        from agents.rl.truncation_bootstrap import BatchedBootstrapA2C, BatchedBootstrapPPO

        return BatchedBootstrapPPO if algo == "ppo" else BatchedBootstrapA2C
    import stable_baselines3

    return getattr(stable_baselines3, algo.upper())


def policy_name(algo: str, coordinatewise: bool) -> str:
    if algo == "recurrent_ppo":
        return "MlpLstmPolicy" if coordinatewise else "MultiInputLstmPolicy"
    return "MlpPolicy" if coordinatewise else "MultiInputPolicy"
