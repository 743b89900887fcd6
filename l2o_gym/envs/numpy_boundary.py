"""Conversions at the Gymnasium boundary: torch inside, numpy float32 outside."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from l2o_gym.history_window import HistoryWindow


def to_numpy(obs: Tensor | dict[str, Tensor]) -> np.ndarray | dict[str, np.ndarray]:
    """A tensor or a dict of tensors as float32 numpy arrays. A float32 CPU tensor is not copied:
    the array shares its memory, so pass fresh tensors (observations are)."""
    if isinstance(obs, dict):
        return {k: v.detach().cpu().numpy().astype(np.float32, copy=False) for k, v in obs.items()}
    return obs.detach().cpu().numpy().astype(np.float32, copy=False)


def select(obs: np.ndarray | dict[str, np.ndarray], index) -> np.ndarray | dict[str, np.ndarray]:
    """Rows `index` of an observation array or dict."""
    if isinstance(obs, dict):
        return {k: v[index] for k, v in obs.items()}
    return obs[index]


def as_action_tensor(action, shape: tuple[int, ...], name: str = "action") -> Tensor:
    """The action as a float32 tensor of `shape`, or a ValueError naming it and the shape."""
    if type(action) is np.ndarray and action.dtype == np.float32 and action.shape == shape:
        return torch.from_numpy(action)  # what agents pass every step: nothing to check or convert
    if np.iscomplexobj(action):
        raise ValueError(f"{name} must be real (a float array of shape {shape}), got complex values")
    try:
        array = np.asarray(action, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a float array of shape {shape}: {err}") from None
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    return torch.from_numpy(array)


def generator_from(rng: np.random.Generator) -> torch.Generator:
    """A torch generator seeded from a numpy generator (so env seeding drives every draw)."""
    return torch.Generator().manual_seed(int(rng.integers(0, 2**62)))


class WindowArrays:
    """numpy views of history windows (`HistoryWindow.view`, float32 on the CPU), made once per
    window buffer and position and kept while the window writes into the same buffer: a window's
    view at head p is the same memory every H steps. Valid as the views are: until the next push."""

    def __init__(self) -> None:
        self._kept: dict[str, tuple[Tensor, dict[int, np.ndarray]]] = {}

    def view(self, name: str, window: HistoryWindow) -> np.ndarray:
        """The window [B, H, ...] named `name` as a numpy view (strided, no copy)."""
        buffer, arrays = self._kept.get(name, (None, None))
        if buffer is not window.buffer:
            buffer, arrays = window.buffer, {}
            self._kept[name] = (buffer, arrays)
        array = arrays.get(window.head)
        if array is None:
            array = arrays[window.head] = window.view().detach().numpy()
        return array


def info_to_numpy(info: dict[str, Tensor]) -> dict[str, np.ndarray]:
    """Each tensor [B] as a numpy array (sharing memory with a CPU tensor, as `Tensor.numpy`)."""
    return {k: tensor_to_numpy(v) for k, v in info.items()}


def tensor_to_numpy(tensor: Tensor) -> np.ndarray:
    """A tensor as a numpy array: a CPU tensor without a graph shares its memory (no detach or
    move: each costs a new tensor object every step), any other is detached and moved first."""
    if tensor.device.type == "cpu" and not tensor.requires_grad:
        return tensor.numpy()
    return tensor.detach().cpu().numpy()
