"""What proposes steps: the protocol every optimizer follows, learned or hand-designed.

An update rule sees the batched `OptimizationState` (B instances) and returns the step Δx [B, d];
the caller applies it through `OptimizationState.advance`, the one transition of the gym.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor

from l2o_gym.problem import Problem
from l2o_gym.state import OptimizationState


class UpdateRule(ABC):
    """An optimizer over B independent instances. `name` labels it in reports."""

    name: str = "rule"

    def reset(self, state: OptimizationState) -> None:
        """Prepare for a new run on state's B instances (clear momentum, hidden state, ...)."""

    @abstractmethod
    def step(self, state: OptimizationState) -> Tensor:
        """The step Δx [B, d] to take from state.x."""

    def start_points(self, problem: Problem) -> Tensor | None:
        """A learned starting point [B, d] for `problem`'s B instances, or None (the default: they
        start at their own x0). `l2o_gym.unroll` (hence every evaluation) starts there."""
        return None

    def extra_evaluations(self) -> Tensor | None:
        """Objective or gradient evaluations [B] (long) the last `step` made on its own (a line
        search's trials), beyond the one the transition makes at the new point; None: none."""
        return None
