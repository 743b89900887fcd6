"""Nonlinear conjugate gradient (Polak-Ribière+, with restarts), batched over instances.

Direction p_k = -g_k + β_k p_{k-1} with β_k = max(0, g_kᵀ(g_k - g_{k-1}) / ||g_{k-1}||²); it
restarts with p = -g every `restart_every` iterations (default: the dimension d) and wherever p
is not a descent direction. The step α_k comes from the batched Armijo line search
(`agents.hand_designed.line_search`, with its parabolic second trial, exact on quadratics),
starting from lr·min(1, 1/||g||₁) after a restart and from Nocedal & Wright's guess
α_{k-1} g_{k-1}ᵀp_{k-1} / g_kᵀp_k otherwise. One `step` is one CG iteration (its line-search
evaluations are extra objective evaluations). Shapes: [B, d].
"""

from __future__ import annotations

import torch
from torch import Tensor

from agents.hand_designed.line_search import armijo_backtracking
from agents.hand_designed.line_search_rule import LineSearchRule
from l2o_gym.state import OptimizationState


def first_trial_step(lr: float, grad: Tensor) -> Tensor:
    """lr · min(1, 1/||g||₁) per instance [B] (torch.optim.LBFGS's first step)."""
    return lr * grad.abs().sum(dim=1).clamp_min(1.0).reciprocal()


class ConjugateGradient(LineSearchRule):
    """Polak-Ribière+ nonlinear CG with a batched Armijo line search; `lr` is the first trial step."""

    name = "cg"
    MEMORY = ("_direction", "_grad", "_alpha", "_since_restart")
    _direction: Tensor | None
    _grad: Tensor | None
    _alpha: Tensor | None
    _since_restart: Tensor | None

    def __init__(self, restart_every: int | None = None, max_evals: int = 25, **hparams: float) -> None:
        super().__init__(max_evals, **hparams)
        if restart_every is not None and (
            isinstance(restart_every, bool) or not isinstance(restart_every, int) or restart_every < 1
        ):
            raise ValueError(f"restart_every must be a positive int or None, got {restart_every!r}")
        self.restart_every = restart_every

    def reset(self, state: OptimizationState) -> None:
        self.forget()
        self._since_restart = torch.zeros(state.batch_size, dtype=torch.long, device=state.x.device)

    def step(self, state: OptimizationState) -> Tensor:
        if self._since_restart is None or self._since_restart.shape[0] != state.batch_size:
            raise RuntimeError("cg: call reset(state) before step(state)")
        g = state.grad
        lr = self.hparams["lr"]
        restart_every = self.restart_every or state.x.shape[1]
        first = first_trial_step(lr, g)
        if self._direction is None:
            direction = -g
            restart = torch.ones_like(self._since_restart, dtype=torch.bool)
            alpha0 = first
        else:
            g_prev, p_prev, alpha_prev = self._grad, self._direction, self._alpha
            beta = ((g * (g - g_prev)).sum(dim=1) / g_prev.pow(2).sum(dim=1).clamp_min(1e-30)).clamp_min(0.0)
            direction = -g + beta.unsqueeze(1) * p_prev
            slope = (g * direction).sum(dim=1)
            restart = (self._since_restart >= restart_every) | ~(slope < 0) | (alpha_prev <= 0)
            direction = torch.where(restart.unsqueeze(1), -g, direction)
            slope = (g * direction).sum(dim=1)
            guess = alpha_prev * (g_prev * p_prev).sum(dim=1) / slope.where(slope < 0, torch.full_like(slope, -1.0))
            guess_ok = torch.isfinite(guess) & (guess > 0)
            alpha0 = torch.where(restart | ~guess_ok, first, guess)
        search = armijo_backtracking(
            state.problem, state.x, state.f, g, direction, alpha0, max_evals=self.max_evals, interpolate=True
        )
        self._since_restart = torch.where(restart, torch.ones_like(self._since_restart), self._since_restart + 1)
        self._grad, self._direction, self._alpha = g.clone(), direction, search.alpha
        self._evaluations = search.instance_evaluations
        return search.alpha.unsqueeze(1) * direction
