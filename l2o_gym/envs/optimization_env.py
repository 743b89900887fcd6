"""One optimization problem instance as a Gymnasium environment.

## Description
Each episode draws a fresh instance of a task family (from the env's `split`) and starts at its
initial point x_0. The agent chooses the step; the objective decides the reward.

## Action space
``Box(-1, 1, (d,), float32)``; the step is ``action_scale * action`` (actions outside [-1, 1]
are clipped to it; a NaN or infinite action counts as a diverging step). Coordinatewise layout:
the same, one scalar per coordinate.

## Observation space
Default (Li & Malik): ``Dict(location: Box(d), gradients: Box(H, d), improvements: Box(H))`` —
x as it is, the last H gradients (signed log-magnitude, zero-filled at the start, current last)
and the last H relative objective changes (f_t - f_{t-1}) / |f_{t-1}|, clipped to ±10.
``coordinatewise=True``: ``Box(d, F)``, one row of F = 2H + 9 features per coordinate (+ 2 with
quasi-Newton pairs, + 4 with time features; the columns are listed in `l2o_gym.observation_spec`).

## Rewards
``reward="auto"`` (default): the telescoping log-suboptimality reward where the family knows each
instance's optimum f*, else Li & Malik's cost -f(x_t) / |f(x_0)| (`l2o_gym.rewards`).
``objective="query"`` (families with a held-out query set, e.g. the MAML families): the cost
form paid on the held-out query loss instead; observation, state and divergence stay f's.

## Episode end
Truncation after `horizon` steps (default 40; a (low, high) pair samples it per episode).
Termination when the objective diverges (non-finite, or above f0 + explode_ratio (|f0| + 1)):
the reward is the bounded penalty -divergence_penalty * (horizon - t), x stays at its last
finite value so the observation stays finite.

## Info
``objective`` (raw f(x_t)), ``step``, ``diverged``, ``suboptimality`` (f - f*, where known) and
the family's own metrics.

## Arguments
``family`` (a TaskFamily, its class or "module:Class"), the episode options ``horizon``,
``reward``, ``split`` ("train", "validation" or "test"), ``device``, ``divergence_penalty``,
``explode_ratio``, ``instance_pool`` (fresh instances from a pool sampled and solved P at a time;
default 64 where the reward needs f*, else 0); the observation layout as ``observation`` (an
`l2o_gym.observation_spec.ObservationSpec`) or as its options ``coordinatewise``, ``history`` (H,
default 25), ``action_scale`` (default: the family's), ``quasi_newton_pairs`` (coordinatewise rows
with the L-BFGS direction of the history window's newest pairs; 0, the default, for none) and
``time_features`` (coordinatewise rows with the step count; default false); every other keyword
goes to the family.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from l2o_gym.envs.numpy_boundary import as_action_tensor, generator_from, info_to_numpy, to_numpy
from l2o_gym.episode_batch import EpisodeBatch
from l2o_gym.family_loader import resolve_family, split_kwargs
from l2o_gym.problem import TaskFamily


class OptimizationEnv(gym.Env):
    """A single optimization instance (B = 1 of `EpisodeBatch`)."""

    metadata = {"render_modes": []}

    def __init__(self, family: TaskFamily | type | str, render_mode: None = None, **kwargs: Any) -> None:
        if render_mode is not None:
            raise ValueError(f"render_mode must be None (no rendering), got {render_mode!r}")
        episode_kwargs, family_kwargs = split_kwargs(kwargs)
        self.family = resolve_family(family, family_kwargs)
        self.episodes = EpisodeBatch(self.family, 1, **episode_kwargs)
        self.observation_space = self.episodes.observation_spec.space(self.family.dim)
        self.action_space = spaces.Box(-1.0, 1.0, (self.family.dim,), np.float32)
        self._done = True

    def _info(self) -> dict[str, Any]:
        return {k: v[0].item() for k, v in info_to_numpy(self.episodes.info()).items()}

    def _obs(self):
        obs = to_numpy(self.episodes.observe())
        return {k: v[0] for k, v in obs.items()} if isinstance(obs, dict) else obs[0]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        # a seeded reset starts the instance stream afresh; an unseeded one goes on with the pool's
        self.episodes.reset(generator_from(self.np_random), fresh_pool=seed is not None)
        self._done = False
        return self._obs(), self._info()

    def step(self, action):
        if self._done:
            raise RuntimeError("the episode has ended (or never started): call reset() first")
        action = as_action_tensor(action, (self.family.dim,))
        reward, terminated, truncated = self.episodes.step(action.unsqueeze(0))
        term, trunc = bool(terminated[0]), bool(truncated[0])
        self._done = term or trunc
        return self._obs(), float(reward[0]), term, trunc, self._info()
