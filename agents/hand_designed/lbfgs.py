"""L-BFGS, batched over instances: the two-loop recursion (`l2o_gym.quasi_newton`) over [B, m, d] histories.

Each instance keeps its last m pairs s = x_{k+1} - x_k, y = g_{k+1} - g_k (oldest first; a pair
is stored only where the curvature yᵀs > 1e-10 holds, so each instance's history fills on its
own). The direction -H_k g_k uses the initial scaling γ = sᵀy / yᵀy of the newest pair; an
instance without pairs, or whose direction is not a descent direction (its history is then
cleared), takes -g; so does an instance whose last line search found no step. The step comes
from the batched Armijo line search (`agents.hand_designed.line_search`), starting from `lr` (1 by default) and from
lr·min(1, 1/||g||₁) on the first step. One `step` is one L-BFGS iteration. Shapes: x, g [B, d];
S, Y [B, m, d]; ρ = 1/yᵀs [B, m], 0 for an empty slot (which makes it a no-op in the recursion).
"""

from __future__ import annotations

import torch
from torch import Tensor

from agents.hand_designed.conjugate_gradient import first_trial_step
from agents.hand_designed.line_search import armijo_backtracking
from agents.hand_designed.line_search_rule import LineSearchRule
from l2o_gym.quasi_newton import CURVATURE_EPS, two_loop
from l2o_gym.state import OptimizationState


def push_pair(history: Tensor, new: Tensor, where: Tensor) -> Tensor:
    """Drop the oldest slot and append new [B, ...] in rows where `where` [B]; others unchanged."""
    shifted = torch.cat([history[:, 1:], new.unsqueeze(1)], dim=1)
    return torch.where(where.view((-1,) + (1,) * (history.dim() - 1)), shifted, history)


class LBFGS(LineSearchRule):
    """Batched L-BFGS with `history` pairs and an Armijo line search; `lr` is the trial step."""

    name = "lbfgs"
    MEMORY = ("_S", "_Y", "_rho", "_x", "_grad", "_failed")
    _S: Tensor | None
    _Y: Tensor | None
    _rho: Tensor | None
    _x: Tensor | None
    _grad: Tensor | None
    _failed: Tensor | None

    def __init__(self, history: int = 10, max_evals: int = 25, **hparams: float) -> None:
        super().__init__(max_evals, **hparams)
        if isinstance(history, bool) or not isinstance(history, int) or history < 1:
            raise ValueError(f"history must be a positive int, got {history!r}")
        self.history = history

    def reset(self, state: OptimizationState) -> None:
        self.forget()
        b, d = state.x.shape
        self._S = state.x.new_zeros(b, self.history, d)
        self._Y = state.x.new_zeros(b, self.history, d)
        self._rho = state.x.new_zeros(b, self.history)

    def step(self, state: OptimizationState) -> Tensor:
        if self._S is None or self._S.shape[0] != state.batch_size:
            raise RuntimeError("lbfgs: call reset(state) before step(state)")
        x, g = state.x, state.grad
        lr = self.hparams["lr"]
        if self._x is not None:
            s, y = x - self._x, g - self._grad
            sy = (s * y).sum(dim=1)
            keep = sy > CURVATURE_EPS
            self._S = push_pair(self._S, s, keep)
            self._Y = push_pair(self._Y, y, keep)
            self._rho = push_pair(self._rho, torch.where(keep, 1.0 / sy.where(keep, torch.ones_like(sy)), 0.0), keep)
        has_pairs = self._rho[:, -1] > 0
        s_new, y_new = self._S[:, -1], self._Y[:, -1]
        gamma = torch.where(
            has_pairs,
            (s_new * y_new).sum(dim=1) / y_new.pow(2).sum(dim=1).clamp_min(1e-30),
            torch.ones_like(self._rho[:, -1]),
        )
        direction = -two_loop(g, self._S, self._Y, self._rho, gamma)
        descent = (g * direction).sum(dim=1) < 0
        fallback = ~descent | ~torch.isfinite(direction).all(dim=1)
        if self._failed is not None:  # the last line search found no step: restart from -g
            fallback = fallback | self._failed
        if bool(fallback.any()):
            direction = torch.where(fallback.unsqueeze(1), -g, direction)
            clear = fallback.view(-1, 1, 1)
            self._S = self._S.masked_fill(clear, 0.0)
            self._Y = self._Y.masked_fill(clear, 0.0)
            self._rho = self._rho.masked_fill(fallback.unsqueeze(1), 0.0)
            has_pairs = has_pairs & ~fallback
        alpha0 = torch.where(has_pairs, torch.full_like(gamma, lr), first_trial_step(lr, g))
        search = armijo_backtracking(state.problem, x, state.f, g, direction, alpha0, max_evals=self.max_evals)
        self._x, self._grad, self._failed = x.clone(), g.clone(), ~search.found
        self._evaluations = search.instance_evaluations
        return search.alpha.unsqueeze(1) * direction
