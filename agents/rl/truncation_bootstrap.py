"""SB3's bootstrap of truncated episodes, one value pass per env step instead of one per env.

On-policy SB3 algorithms add γ·V(terminal observation) to the reward of every env whose episode
was cut by a time limit, calling the value network once per such env. With coordinatewise rows
an instance whose episode ends is d envs, and every instance's episode ends at its horizon, so
those single-row passes were about a fifth of a rollout's CPU time (logistic regression, 128
instances × 4 coordinates). `TruncationBootstrap` wraps the env during rollouts and does the same
in one batched pass: the truncated envs' terminal observations stacked, their values added to
the rewards, and their infos' ``TimeLimit.truncated`` set to False so that SB3 does not add them
again (a copy of the info; the env's own dict is left as it was). `BatchedBootstrapPPO` and
`BatchedBootstrapA2C` are PPO and A2C rolling out through it (and reading episode statistics
from the ended envs' infos only, not all B·d); their updates are SB3's own.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

TRUNCATED = "TimeLimit.truncated"


def stacked(observations: list[Any]) -> Any:
    """Single observations (arrays, or dicts of arrays) as one batch."""
    if isinstance(observations[0], dict):
        return {key: np.stack([o[key] for o in observations]) for key in observations[0]}
    return np.stack(observations)


class TruncationBootstrap(VecEnvWrapper):
    """`venv` whose truncated envs' rewards carry γ·V(terminal observation) from `policy`."""

    def __init__(self, venv: VecEnv, policy: Any, gamma: float) -> None:
        super().__init__(venv)
        self.policy, self.gamma = policy, gamma

    def reset(self) -> Any:
        return self.venv.reset()

    def step_wait(self) -> VecEnvStepReturn:
        observations, rewards, dones, infos = self.venv.step_wait()
        cut = [
            i
            for i in np.flatnonzero(dones)
            if infos[i].get("terminal_observation") is not None and infos[i].get(TRUNCATED, False)
        ]
        if cut:
            terminal = stacked([infos[i]["terminal_observation"] for i in cut])
            with torch.no_grad():
                values = self.policy.predict_values(self.policy.obs_to_tensor(terminal)[0])
            rewards = np.array(rewards, copy=True)
            rewards[cut] += self.gamma * values.flatten().cpu().numpy()
            infos = list(infos)
            for i in cut:
                infos[i] = {**infos[i], TRUNCATED: False}
        return observations, rewards, dones, infos


class _BatchedBootstrap:
    """Rollouts through `TruncationBootstrap` (mixed into an on-policy SB3 algorithm); episode
    statistics read from the ended envs' infos only (the episode monitor writes them nowhere else)."""

    def collect_rollouts(self, env: VecEnv, *args: Any, **kwargs: Any) -> bool:
        return super().collect_rollouts(TruncationBootstrap(env, self.policy, self.gamma), *args, **kwargs)

    def _update_info_buffer(self, infos: list[dict[str, Any]], dones: np.ndarray | None = None) -> None:
        if dones is None:
            return super()._update_info_buffer(infos, dones)
        ended = np.flatnonzero(dones)
        return super()._update_info_buffer([infos[i] for i in ended], np.asarray(dones)[ended])


class BatchedBootstrapPPO(_BatchedBootstrap, PPO):
    """PPO whose rollouts bootstrap truncated episodes in one value pass per step."""


class BatchedBootstrapA2C(_BatchedBootstrap, A2C):
    """A2C whose rollouts bootstrap truncated episodes in one value pass per step."""


__all__ = ["BatchedBootstrapA2C", "BatchedBootstrapPPO", "TruncationBootstrap"]
