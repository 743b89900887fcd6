"""Conversions at the Gymnasium boundary: torch inside, numpy float32 outside."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


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


def info_to_numpy(info: dict[str, Tensor]) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in info.items()}
