"""B optimization instances as one natively batched Gymnasium `VectorEnv`.

Observations, actions, rewards and episode ends are those of `OptimizationEnv` (see its
docstring), stacked over B instances and computed as one tensor computation. Autoreset follows
Gymnasium's NEXT_STEP mode (as `CartPoleVectorEnv`): the step after an instance's episode ended
ignores its action, starts it on a fresh instance and returns reward 0. The env keeps its own time
limit (`horizon`); `gymnasium.make_vec(id, num_envs=B)` returns it.

``output="torch"`` keeps everything on the env's device: observations, rewards (float32),
terminated / truncated (bool) and infos are torch tensors there, and actions may be a tensor on
any device (for a torch agent on a GPU: no copy to the host per step). The default
``output="numpy"`` is Gymnasium's: numpy arrays on the host.

``copy`` is Gymnasium's vector-env flag: with the default ``copy=True`` every observation is a
fresh array. With ``copy=False`` the dict layout's arrays are views of the env's own buffers
(``location`` x, and the ring buffers' windows of ``gradients`` and ``improvements``, strided):
valid until the next `step` or `reset`, which may write into them; no O(H·d) copy per step.
Coordinatewise rows are written into one array, the same every step. Copy what you keep.

Info: ``objective``, ``step``, ``diverged`` (and ``suboptimality`` and task metrics), each an
array [B] with its Gymnasium mask ``_name``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from l2o_gym.envs.numpy_boundary import (
    WindowArrays,
    as_action_tensor,
    generator_from,
    info_to_numpy,
    tensor_to_numpy,
    to_numpy,
)
from l2o_gym.episode_batch import EpisodeBatch
from l2o_gym.family_loader import resolve_family, split_kwargs
from l2o_gym.history_window import HistoryWindow
from l2o_gym.problem import TaskFamily, check_positive_int

OUTPUTS = ("numpy", "torch")


def vector_info(info: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Gymnasium's vector info layout: each array [B] beside its mask `_name`."""
    values = info_to_numpy(info)
    masks = np.ones((len(values), next(iter(values.values())).shape[0]), dtype=bool) if values else ()
    out: dict[str, np.ndarray] = {}
    for (key, value), mask in zip(values.items(), masks, strict=True):  # one allocation for every mask
        out[key] = value
        out["_" + key] = mask
    return out


def vector_info_tensors(info: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same layout with tensors [B] (and bool masks [B]) left on their device."""
    out: dict[str, torch.Tensor] = {}
    for key, value in info.items():
        out[key] = value
        out[f"_{key}"] = torch.ones(value.shape[0], dtype=torch.bool, device=value.device)
    return out


def action_tensor(actions, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """Actions [B, d] as float32 on `device`: a tensor (any device) or anything numpy reads."""
    if isinstance(actions, torch.Tensor):
        if tuple(actions.shape) != shape:
            raise ValueError(f"actions must have shape {shape}, got {tuple(actions.shape)}")
        if not (actions.is_floating_point() or actions.dtype in (torch.int32, torch.int64)):
            raise ValueError(f"actions must be a real float tensor of shape {shape}, got dtype {actions.dtype}")
        return actions.detach().to(device=device, dtype=torch.float32)
    return as_action_tensor(actions, shape, "actions")


class OptimizationVectorEnv(VectorEnv):
    """B instances of a task family, stepped together."""

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        family: TaskFamily | type | str,
        num_envs: int = 1,
        render_mode: None = None,
        output: str = "numpy",
        copy: bool = True,
        **kwargs: Any,
    ) -> None:
        if render_mode is not None:
            raise ValueError(f"render_mode must be None (no rendering), got {render_mode!r}")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        if not isinstance(copy, bool):
            raise ValueError(f"copy must be true or false, got {copy!r}")
        self.output, self.copy = output, copy
        self.num_envs = check_positive_int("num_envs", num_envs)
        self.render_mode = None
        episode_kwargs, family_kwargs = split_kwargs(kwargs)
        self.family = resolve_family(family, family_kwargs)
        self.episodes = EpisodeBatch(self.family, self.num_envs, window_views=not copy, **episode_kwargs)
        self.single_observation_space = self.episodes.observation_spec.space(self.family.dim)
        self.single_action_space = spaces.Box(-1.0, 1.0, (self.family.dim,), np.float32)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._generator: torch.Generator | None = None
        self._window_arrays = WindowArrays()
        self._prev_done = torch.zeros(self.num_envs, dtype=torch.bool, device=self.episodes.device)

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        if isinstance(seed, (list, tuple)):
            seed = seed[0] if seed else None
        super().reset(seed=seed)
        self._generator = generator_from(self.np_random)
        self.episodes.reset(self._generator)
        self._prev_done.zero_()
        if self.output == "torch":
            return self.episodes.observe(self.copy), vector_info_tensors(self.episodes.info())
        return self._numpy_observation(), vector_info(self.episodes.info())

    def _numpy_observation(self) -> np.ndarray | dict[str, np.ndarray]:
        """The observation as numpy arrays. In the dict layout (float32 on the CPU) from numpy views
        of the windows kept per window position (`WindowArrays`): returned as they are with
        copy=False, copied once each (``ndarray.copy``, C order) with copy=True."""
        state = self.episodes.require_state()
        float32_on_cpu = state.x.dtype == torch.float32 and state.x.device.type == "cpu"
        if self.episodes.observation_spec.coordinatewise or not float32_on_cpu:
            return to_numpy(self.episodes.observe(self.copy))
        arrays = {
            name: self._window_arrays.view(name, item) if isinstance(item, HistoryWindow) else tensor_to_numpy(item)
            for name, item in self.episodes.dict_parts().items()
        }
        return {name: array.copy() for name, array in arrays.items()} if self.copy else arrays

    def step(self, actions):
        if self._generator is None:
            raise RuntimeError("call reset() before step()")
        actions = action_tensor(actions, (self.num_envs, self.family.dim), self.episodes.device)
        restart = self._prev_done
        restarting = bool(restart.any())
        if restarting:  # a new tensor: the caller's array (shared by as_action_tensor) stays as it was
            actions = actions.to(self.episodes.device).masked_fill(restart.unsqueeze(1), 0.0)
        reward, terminated, truncated = self.episodes.step(actions)
        if restarting:
            self.episodes.reset_rows(restart, self._generator)
            reward = reward.masked_fill(restart, 0.0)
            terminated = terminated & ~restart
            truncated = truncated & ~restart
        self._prev_done = terminated | truncated
        if self.output == "torch":
            obs, info = self.episodes.observe(self.copy), vector_info_tensors(self.episodes.info())
            return obs, reward.to(torch.float32), terminated, truncated, info
        return (
            self._numpy_observation(),
            reward.cpu().numpy().astype(np.float64),
            terminated.cpu().numpy(),
            truncated.cpu().numpy(),
            vector_info(self.episodes.info()),
        )
