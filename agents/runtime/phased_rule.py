"""An update rule in two phases: one rule for each instance's first `steps` steps, another after.

Both rules see every step's state (so the second's buffers, e.g. momentum, are filled when it
takes over); each instance follows the first rule while its step count t is below `steps`. Used as
an imitation teacher: on robust regression, tuned Adam's first steps choose a better basin than
momentum's, and momentum then converges faster than Adam (benchmarks/phased_teacher.py).
"""

from __future__ import annotations

import torch
from torch import Tensor

from l2o_gym.problem import check_positive_int
from l2o_gym.state import OptimizationState
from l2o_gym.update_rule import UpdateRule


class PhasedRule(UpdateRule):
    """`opening` for t < steps, then `main`; steps [B, d] chosen per instance."""

    def __init__(self, opening: UpdateRule, main: UpdateRule, steps: int) -> None:
        self.opening, self.main = opening, main
        self.steps = check_positive_int("steps", steps)
        self.name = f"{opening.name}-{steps}-{main.name}"

    def reset(self, state: OptimizationState) -> None:
        self.opening.reset(state)
        self.main.reset(state)

    def step(self, state: OptimizationState) -> Tensor:
        first, then = self.opening.step(state), self.main.step(state)
        return torch.where((state.t < self.steps).unsqueeze(1), first, then)
