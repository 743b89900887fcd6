"""Saving and loading a meta-trained rule: the weights of its network `net` (`weights.pt`) and the
metadata written beside them. The network rebuilds itself from `net.architecture()` (keywords)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from agents.runtime.saved_rules import load_weights, save_rule
from l2o_gym.state import DEFAULT_HISTORY

WEIGHTS_FILE = "weights.pt"

Rule = TypeVar("Rule", bound="SavedNetRule")


class SavedNetRule:
    """Save/load for a rule built as `cls(net)`: a subclass names its `kind`, its `network` class
    and the `saved_observation` form ("coordinatewise" or "dict") written to the metadata."""

    kind: ClassVar[str]
    network: ClassVar[type[nn.Module]]
    saved_observation: ClassVar[str]
    net: nn.Module

    def action_scale(self) -> float:
        """The scale of the steps, written to the metadata."""
        return 1.0

    def save(self, folder: str | Path, env_id: str, training: dict[str, Any] | None = None) -> Path:
        """Write the weights and metadata into `folder` (atomically, file by file)."""
        meta = {
            "kind": self.kind,
            "env_id": env_id,
            "observation": self.saved_observation,
            "history": DEFAULT_HISTORY,
            "action_scale": self.action_scale(),
            "architecture": self.net.architecture(),
            "training": training or {},
        }
        return save_rule(folder, self.net, WEIGHTS_FILE, meta)

    @classmethod
    def load(cls: type[Rule], folder: str | Path, meta: dict[str, Any], device: str | torch.device = "cpu") -> Rule:
        """Loader for `agents.runtime.saved_rules.load_rule`: the rule saved in `folder` by `save`."""
        net = cls.network(**meta["architecture"])
        load_weights(net, Path(folder) / WEIGHTS_FILE, device)
        return cls(net)
