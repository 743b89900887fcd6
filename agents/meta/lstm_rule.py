"""The shared body of the meta-trained LSTM update rules (L2L, meta-learner LSTM): a network shared
by all B·d coordinates, its hidden state, truncation, and saving / loading as a saved-rule folder.

A subclass names its network class (`network`) and its `kind` (also its name in reports), and
implements `lstm_step` (the step from a state `reset` prepared the hidden state for); the network
provides ``architecture()`` (the keywords that rebuild it) and ``initial_hidden(rows, device, dtype)``
(a tensor or nested tuples / lists of tensors, one row per coordinate).
Saved by `agents.meta.saved_net.SavedNetRule` as a folder in `agents.runtime.saved_rules`' format:
``l2o_meta.json`` (the kind, the architecture) and ``weights.pt`` (the state_dict, loaded with
``torch.load(weights_only=True)``).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from torch import Tensor, nn

from agents.meta.saved_net import SavedNetRule
from l2o_gym.problem import Problem
from l2o_gym.state import OptimizationState
from l2o_gym.update_rule import UpdateRule


def detach_tree(value: Any) -> Any:
    """The same tensors, lists and tuples with every tensor detached from its graph."""
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, list | tuple):
        return type(value)(detach_tree(item) for item in value)
    return value


class LSTMRule(SavedNetRule, UpdateRule):
    """An update rule driven by a coordinatewise recurrent network `net` over B instances of dimension d."""

    saved_observation = "coordinatewise"

    def __init__(self, net: nn.Module | None = None, **architecture: Any) -> None:
        if net is not None and architecture:
            raise TypeError("pass either net or architecture keywords, not both")
        self.net = net if net is not None else self.network(**architecture)
        self.name = self.kind
        self.hidden: Any = None
        self.rows = 0  # B·d of the state the hidden state was built for

    def reset(self, state: OptimizationState) -> None:
        param = next(self.net.parameters())
        self.rows = state.x.numel()
        self.hidden = self.net.initial_hidden(self.rows, param.device, param.dtype)

    def step(self, state: OptimizationState) -> Tensor:
        """The step Δx [B, d]; refused for a state whose B·d does not match the hidden state `reset` built."""
        if self.hidden is None or self.rows != state.x.numel():
            raise RuntimeError("call reset(state) before step(state) on a state of this batch size and dimension")
        return self.lstm_step(state)

    @abstractmethod
    def lstm_step(self, state: OptimizationState) -> Tensor:
        """The network's step Δx [B, d] from `state`, advancing the hidden state."""

    def detach_hidden(self) -> None:
        """Cut the graph at a truncation boundary (truncated backpropagation through time)."""
        self.hidden = detach_tree(self.hidden)

    def apply_initial_point(self, problem: Problem) -> None:
        """Start `problem`'s instances at the learned starting point (in place; no-op without one)."""
        start = self.start_points(problem)
        if start is not None:
            problem.x0.copy_(start.detach())
