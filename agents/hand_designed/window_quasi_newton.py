"""A quasi-Newton rule without line search: one objective evaluation per step, like the learned
rules, so it can be their teacher.

The step is lr · d clipped to ±max_step per coordinate, where d is the L-BFGS direction from the
newest `pairs` (step, gradient change) pairs of the state's own history window
(`l2o_gym.quasi_newton.window_direction`, the direction a coordinatewise policy sees with
``quasi_newton_pairs``); where there is none (the first step, no pair with positive curvature, or
not a descent direction) it is a clipped gradient step -gd_lr · g. Shapes: steps [B, d].
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from agents.hand_designed.hyperparameters import HandDesignedRule
from l2o_gym.problem import check_positive_int
from l2o_gym.quasi_newton import window_direction
from l2o_gym.state import OptimizationState


class WindowQuasiNewton(HandDesignedRule):
    """L-BFGS directions from the state's window, a fixed step scale `lr` and a per-coordinate clip."""

    name = "window_qn"
    HYPERPARAMETERS: ClassVar[dict[str, float]] = {"lr": 1.0, "max_step": 0.25, "gd_lr": 0.1}

    def __init__(self, pairs: int = 5, **hparams: float) -> None:
        super().__init__(**hparams)
        self.pairs = check_positive_int("pairs", pairs)

    @classmethod
    def default_grid(cls) -> dict[str, list[float]]:
        return {"lr": [0.5, 1.0, 1.5], "max_step": [0.1, 0.25, 0.5, 1.0], "gd_lr": [0.03, 0.1, 0.3, 1.0]}

    def step(self, state: OptimizationState) -> Tensor:
        direction = window_direction(state, self.pairs)
        has_direction = (direction != 0).any(dim=1, keepdim=True)
        step = torch.where(has_direction, self.hparams["lr"] * direction, -self.hparams["gd_lr"] * state.grad)
        return step.clamp(-self.hparams["max_step"], self.hparams["max_step"])
