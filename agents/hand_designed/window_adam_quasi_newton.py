"""Adam's direction from the history window with a decaying step size, plus a small quasi-Newton
correction: one objective evaluation per step, and a function of what a coordinatewise policy sees
(with ``quasi_newton_pairs`` and ``time_features``), so a policy can copy it.

The step is -lr · exp(-t / lr_decay_steps) · a + clip(qn_lr · d, ±qn_max_step) per coordinate,
where t is the number of steps taken, a the window's Adam-like direction (the gradient's β = 0.9
average over its root-mean-square, in [-1, 1]: `l2o_gym.features.window_adam_directions`, a
coordinatewise row's own feature) and d the L-BFGS direction from the newest `pairs` pairs of the
window (`l2o_gym.quasi_newton.window_direction`, 0 where there is none). The Adam part chooses
where the run goes (on the two-layer net it keeps to Adam's basins); its decay stands in for
Adam's growing second-moment memory, which the window forgets; the clipped correction, small
beside it, speeds progress along the curvature the window reveals. Shapes: steps [B, d].
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from agents.hand_designed.hyperparameters import HandDesignedRule
from l2o_gym.features import window_adam_directions
from l2o_gym.problem import check_positive_int
from l2o_gym.quasi_newton import window_direction
from l2o_gym.state import OptimizationState

ADAM_BETA = 0.9  # one of l2o_gym.features.MOMENTUM_BETAS: the rows hold exactly this direction


class WindowAdamQuasiNewton(HandDesignedRule):
    """-lr · exp(-t / lr_decay_steps) · (window Adam direction) + quasi-Newton direction · qn_lr
    clipped to ±qn_max_step."""

    name = "window_adam_qn"
    HYPERPARAMETERS: ClassVar[dict[str, float]] = {
        "lr": 0.316,
        "lr_decay_steps": 80.0,
        "qn_lr": 0.3,
        "qn_max_step": 0.03,
    }

    def __init__(self, pairs: int = 5, **hparams: float) -> None:
        super().__init__(**hparams)
        self.pairs = check_positive_int("pairs", pairs)

    @classmethod
    def default_grid(cls) -> dict[str, list[float]]:
        return {
            "lr": [0.1, 0.316, 1.0],
            "lr_decay_steps": [20.0, 80.0, 320.0],
            "qn_lr": [0.3, 1.0],
            "qn_max_step": [0.03, 0.1],
        }

    def step(self, state: OptimizationState) -> Tensor:
        adam = window_adam_directions(state, (ADAM_BETA,))[:, 0]
        t = state.t.to(state.x.dtype).unsqueeze(1)
        lr = self.hparams["lr"] * torch.exp(-t / self.hparams["lr_decay_steps"])
        correction = (self.hparams["qn_lr"] * window_direction(state, self.pairs)).clamp(
            -self.hparams["qn_max_step"], self.hparams["qn_max_step"]
        )
        return -lr * adam + correction
