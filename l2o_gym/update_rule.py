"""What proposes steps: the protocol every optimizer follows, learned or hand-designed.

An update rule sees the batched `OptimizationState` (B instances) and returns the step Δx [B, d];
the caller applies it through `OptimizationState.advance`, the one transition of the gym.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor

from l2o_gym.state import OptimizationState


class UpdateRule(ABC):
    """An optimizer over B independent instances. `name` labels it in reports."""

    name: str = "rule"

    def reset(self, state: OptimizationState) -> None:
        """Prepare for a new run on state's B instances (clear momentum, hidden state, ...)."""

    @abstractmethod
    def step(self, state: OptimizationState) -> Tensor:
        """The step Δx [B, d] to take from state.x."""

    def extra_evaluations(self) -> Tensor | None:
        """Objective or gradient evaluations [B] (long) the last `step` made on its own (a line
        search's trials), beyond the one the transition makes at the new point; None: none."""
        return None
