"""A learned per-coordinate step size (Li et al., "Meta-SGD", 2017), as an `UpdateRule`.

The rule is Δx = -α ⊙ ∇f with a vector α [d] (one step size per coordinate, any sign, shared by
every instance and every step), meta-trained by backpropagation through the unrolled iterates
(`agents.meta.meta_training.meta_train_iteration`, e.g. on the held-out query loss). Unlike
Meta-SGD the initialisation is not learned here: the family's own starting points are used (e.g.
MAML's initialisation), so the rule is an inner optimizer for a fixed starting point. It is not
dimension-free: α is tied to the family's d.

Saved as a folder in `agents.runtime.saved_rules`' format: ``l2o_meta.json`` (kind "meta_sgd",
d) and ``weights.pt`` (α, loaded with ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from agents.meta.saved_net import SavedNetRule
from l2o_gym.problem import Problem, check_positive_int
from l2o_gym.state import OptimizationState
from l2o_gym.update_rule import UpdateRule


class PerCoordinateStepSize(nn.Module):
    """α [d], every entry starting at `initial_lr` (plain gradient descent with that step)."""

    def __init__(self, dim: int, initial_lr: float = 0.01) -> None:
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        if not initial_lr > 0:
            raise ValueError(f"initial_lr must be > 0, got {initial_lr!r}")
        self.initial_lr = float(initial_lr)
        self.alpha = nn.Parameter(torch.full((dim,), self.initial_lr))

    def architecture(self) -> dict[str, Any]:
        return {"dim": self.dim, "initial_lr": self.initial_lr}


class StepSizeRule(SavedNetRule, UpdateRule):
    """What learned step-size rules share: no learned start and no hidden state to cut; the net
    holds `dim` (the d it is tied to) and `initial_lr` (written to the metadata as the action scale)."""

    saved_observation = "dict"

    def __init__(self, net: nn.Module) -> None:
        self.net = net

    def check_dim(self, state: OptimizationState) -> None:
        """A one-line ValueError when the state's d is not the rule's."""
        if state.x.shape[1] != self.net.dim:
            raise ValueError(f"this rule has step sizes for d = {self.net.dim}, the state has d = {state.x.shape[1]}")

    def start_points(self, problem: Problem) -> None:
        """No learned initial state: instances start at their own x0."""
        return None

    def detach_hidden(self) -> None:
        """No hidden state built from the graph to cut at a truncation boundary."""

    def action_scale(self) -> float:
        """The initial step size α₀, written to the metadata."""
        return self.net.initial_lr


class MetaSGDOptimizer(StepSizeRule):
    """Δx [B, d] = -α ⊙ ∇f [B, d]; the meta-trainer's protocol (net, start_points, detach_hidden)."""

    kind = "meta_sgd"
    name = "meta_sgd"
    network = PerCoordinateStepSize

    def step(self, state: OptimizationState) -> Tensor:
        self.check_dim(state)
        return -(self.net.alpha.to(state.x.dtype) * state.grad)


load = MetaSGDOptimizer.load  # the loader `agents.runtime.saved_rules.load_rule` finds for kind "meta_sgd"
