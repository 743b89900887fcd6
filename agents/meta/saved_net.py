"""Saving and loading a meta-trained rule's network: its weights (`weights.pt`) and the metadata
written beside them. The network builds itself from `architecture()` (a dict of keywords)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from agents.runtime.saved_rules import load_weights, save_rule
from l2o_gym.state import DEFAULT_HISTORY

WEIGHTS_FILE = "weights.pt"


def save_net(
    folder: str | Path,
    net: nn.Module,
    *,
    kind: str,
    env_id: str,
    observation: str,
    action_scale: float,
    training: dict[str, Any] | None,
) -> Path:
    """Write `net`'s weights and the metadata (`net.architecture()` included) into `folder`
    (atomically, file by file)."""
    meta = {
        "kind": kind,
        "env_id": env_id,
        "observation": observation,
        "history": DEFAULT_HISTORY,
        "action_scale": action_scale,
        "architecture": net.architecture(),
        "training": training or {},
    }
    return save_rule(folder, net, WEIGHTS_FILE, meta)


def load_net(
    build: Callable[..., nn.Module], folder: str | Path, meta: dict[str, Any], device: str | torch.device
) -> nn.Module:
    """The network `build(**meta["architecture"])` with the weights saved in `folder`."""
    net = build(**meta["architecture"])
    load_weights(net, Path(folder) / WEIGHTS_FILE, device)
    return net
