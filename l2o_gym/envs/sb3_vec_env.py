"""The batched core as a stable-baselines3 `VecEnv`, in the dict and the coordinatewise form.

Dict form: num_envs = B, observations and actions as in `OptimizationEnv`.
Coordinatewise form: num_envs = B · d; env ``b * d + i`` is coordinate i of instance b, its
observation that coordinate's row of F features (`l2o_gym.observation_spec`) and its action one
scalar in [-1, 1]. The coordinates of an instance share its reward and its episode end, so one
small policy learns an update rule that runs on problems of any dimension.

Autoreset is SB3's: an ended episode restarts on a fresh instance in the same step, its last
observation in ``infos[i]["terminal_observation"]`` and ``infos[i]["TimeLimit.truncated"]`` set
on truncation. Every info carries the raw objective ``objective`` (and ``suboptimality`` where
known). In the coordinatewise form the d envs of an instance share one info dict (read-only),
except where its episode ended: each of those envs has its own, with its terminal row (a row of
an array no later step writes into). Observations are fresh arrays every step.
"""

from __future__ import annotations

from collections import deque
from itertools import repeat
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv

from l2o_gym.envs.numpy_boundary import as_action_tensor, generator_from, select, to_numpy
from l2o_gym.episode_batch import EpisodeBatch
from l2o_gym.family_loader import resolve_family, split_kwargs
from l2o_gym.problem import TaskFamily, check_positive_int

ALWAYS_IN_INFO = ("objective", "step", "diverged")  # `EpisodeBatch.info`'s first keys


def instance_dicts(columns: dict[str, list]) -> list[dict[str, Any]]:
    """Per-instance dicts from columns of B values each: the keys every info has as one dict
    display per instance, any others added key by key at C speed (no per-key Python loop)."""
    objective, step, diverged = (columns[key] for key in ALWAYS_IN_INFO)
    if tuple(columns) == (*ALWAYS_IN_INFO, "suboptimality"):  # the common case: one display, four keys
        gaps = columns["suboptimality"]
        return [
            {"objective": o, "step": s, "diverged": v, "suboptimality": g}
            for o, s, v, g in zip(objective, step, diverged, gaps, strict=True)
        ]
    infos = [{"objective": o, "step": s, "diverged": v} for o, s, v in zip(objective, step, diverged, strict=True)]
    for key, values in columns.items():
        if key not in ALWAYS_IN_INFO:
            deque(map(dict.__setitem__, infos, repeat(key), values), maxlen=0)
    return infos


class OptimizationSB3VecEnv(VecEnv):
    """B instances of a task family as an SB3 VecEnv (B · d envs when coordinatewise)."""

    def __init__(
        self,
        family: TaskFamily | type | str,
        num_instances: int,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.num_instances = check_positive_int("num_instances", num_instances)
        episode_kwargs, family_kwargs = split_kwargs(kwargs)
        self.family = resolve_family(family, family_kwargs)
        self.episodes = EpisodeBatch(self.family, self.num_instances, **episode_kwargs)
        self.observation_spec = self.episodes.observation_spec
        self.coordinatewise = self.observation_spec.coordinatewise
        self.dim = self.family.dim
        self.render_mode = None
        num_envs = self.num_instances * self.dim if self.coordinatewise else self.num_instances
        action_space = spaces.Box(-1.0, 1.0, (1 if self.coordinatewise else self.dim,), np.float32)
        super().__init__(num_envs, self.observation_spec.policy_space(self.dim), action_space)
        self._pending_seed = seed
        self._rng = np.random.default_rng(seed)
        self._generator: torch.Generator | None = None
        self._actions: torch.Tensor | None = None

    # -- layout ---------------------------------------------------------------------------
    def _observation(self):
        obs = to_numpy(self.episodes.observe())
        if self.coordinatewise:
            return obs.reshape(self.num_envs, -1)
        return obs

    def _per_env(self, values: np.ndarray) -> np.ndarray:
        """Instance values [B] as env values [num_envs]."""
        return np.repeat(values, self.dim) if self.coordinatewise else values

    def _repeated(self, values: list) -> list:
        """Instance values [B'] as env values [B' · d] (each repeated over its d envs, the same
        object) when coordinatewise: d slice assignments, no loop over envs."""
        if not self.coordinatewise:
            return values
        envs: list = [None] * (len(values) * self.dim)
        for i in range(self.dim):  # env b * d + i
            envs[i :: self.dim] = values
        return envs

    def _instance_infos(self) -> list[dict[str, Any]]:
        """One info dict per instance [B]."""
        return instance_dicts({k: v.detach().cpu().numpy().tolist() for k, v in self.episodes.info().items()})

    def _infos(self) -> list[dict[str, Any]]:
        """One info dict per env: an instance's dict shared by its d envs when coordinatewise."""
        return self._repeated(self._instance_infos())

    # -- VecEnv API -----------------------------------------------------------------------
    def seed(self, seed: int | None = None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"seed must be None or an integer >= 0, got {seed!r}")
        self._pending_seed = seed
        return [seed] * self.num_envs

    def reset(self):
        seed = self._seeds[0] if self._seeds[0] is not None else self._pending_seed
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            self._pending_seed = None
        self._generator = generator_from(self._rng)
        self.episodes.reset(self._generator)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = self._infos()
        return self._observation()

    def step_async(self, actions: np.ndarray) -> None:
        shape = (self.num_envs, 1) if self.coordinatewise else (self.num_envs, self.dim)
        if self.coordinatewise and np.shape(actions) == (self.num_envs,):
            actions = np.asarray(actions).reshape(shape)
        self._actions = as_action_tensor(actions, shape, "actions").reshape(self.num_instances, self.dim)

    def step_wait(self):
        if self._generator is None or self._actions is None:
            raise RuntimeError("call reset() and step_async() before step_wait()")
        reward, terminated, truncated = self.episodes.step(self._actions)
        self._actions = None
        ends = terminated | truncated
        done = ends.cpu().numpy()
        per_instance = self._instance_infos()
        obs = self._observation()
        rewards = self._per_env(reward.cpu().numpy().astype(np.float32))
        if not done.any():
            return obs, rewards, self._per_env(done), self._repeated(per_instance)
        ended = np.flatnonzero(done)  # the instances whose episode ended
        time_limit = (truncated & ~terminated).cpu().numpy()[ended].tolist()
        terminal = self._terminal_rows(obs, ended)
        fresh = self.episodes.reset_rows(ends, self._generator)
        obs = self._with_fresh_rows(obs, ended, fresh)
        infos = self._with_terminal_infos(per_instance, ended, time_limit, terminal)
        return obs, rewards, self._per_env(done), infos

    def _terminal_rows(self, last_obs, ended: np.ndarray) -> list:
        """The last observation of each env whose instance ended (ended [k] instance indices; k · d
        rows when coordinatewise, instance-major): rows of an array nothing writes into again, views
        of last_obs itself where every instance ended (it is not returned) and otherwise copies."""
        every = len(ended) == self.num_instances
        if self.coordinatewise:
            rows = last_obs if every else last_obs.reshape(self.num_instances, self.dim, -1)[ended]
            return list(rows.reshape(len(ended) * self.dim, -1))
        terminal = last_obs if every else select(last_obs, ended)
        keys = tuple(terminal)
        return [dict(zip(keys, row, strict=True)) for row in zip(*terminal.values(), strict=True)]

    def _with_terminal_infos(self, per_instance: list, ended: np.ndarray, time_limit: list, rows: list) -> list:
        """The infos of every env, where the envs of the ended instances (ended [k], time_limit [k])
        each have their own dict with their own terminal row (rows [k · d], instance-major): one
        template per ended instance, copied once per env with its row (no loop over envs in Python
        bytecode); the list itself where every env ended."""
        templates = [
            {**per_instance[b], "terminal_observation": None, "TimeLimit.truncated": limit}
            for b, limit in zip(ended.tolist(), time_limit, strict=True)
        ]
        per_env = zip(self._repeated(templates), rows, strict=True)
        own = [dict(template, terminal_observation=row) for template, row in per_env]
        if len(own) == self.num_envs:
            return own
        infos = self._repeated(per_instance)
        envs = (ended[:, None] * self.dim + np.arange(self.dim)).ravel() if self.coordinatewise else ended
        deque(map(infos.__setitem__, envs.tolist(), own), maxlen=0)
        return infos

    def _with_fresh_rows(self, last_obs, ended: np.ndarray, fresh):
        """The observation to return: the fresh episodes' rows where their instances (ended [k])
        restarted, written into last_obs (fresh this step; the terminal rows are already taken),
        or only those rows where every instance restarted (a fresh array)."""
        rows = to_numpy(self.episodes.observation_spec.observe(fresh))
        if len(ended) == self.num_instances:
            return rows.reshape(self.num_envs, -1) if self.coordinatewise else rows
        if self.coordinatewise:
            last_obs.reshape(self.num_instances, self.dim, -1)[ended] = rows
            return last_obs
        for key, value in last_obs.items():
            value[ended] = rows[key]
        return last_obs

    def close(self) -> None:
        pass

    def _indices(self, indices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int):
            return [indices]
        return list(indices)

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        target = self if hasattr(self, attr_name) else self.episodes
        return [getattr(target, attr_name) for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        target = self if hasattr(self, attr_name) else self.episodes
        setattr(target, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        result = getattr(self.episodes, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._indices(indices)]
