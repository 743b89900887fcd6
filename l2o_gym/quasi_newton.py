"""Quasi-Newton directions, batched over instances: L-BFGS's two-loop recursion, and the direction
it gives from the last pairs of an optimization state's own history window.

A pair is s = x_{k+1} - x_k, y = g_{k+1} - g_k. In `window_direction` the pairs come from the
state's `step_history` and `grad_history` (the newest `pairs` of them); a pair counts only where
its curvature sᵀy exceeds 1e-10 · ||s|| ||y|| (an empty slot is a no-op in the recursion). The
initial inverse-Hessian scaling is γ = sᵀy / yᵀy of the newest counted pair. Where an instance has
no counted pair, or the direction is not a descent direction or not finite, the direction is 0.
Shapes: g [B, d]; S, Y [B, m, d]; ρ = 1/sᵀy [B, m], 0 for an empty slot; γ [B].
"""

from __future__ import annotations

import torch
from torch import Tensor

from l2o_gym.state import OptimizationState

CURVATURE_EPS = 1e-10


def two_loop(grad: Tensor, S: Tensor, Y: Tensor, rho: Tensor, gamma: Tensor) -> Tensor:
    """H g [B, d] for the L-BFGS inverse-Hessian approximation given by S, Y [B, m, d], ρ [B, m]."""
    steps, changes, rhos = S.unbind(1), Y.unbind(1), rho.unbind(1)  # views, one per pair
    q = grad
    alphas: list[Tensor] = [grad] * len(steps)
    for i in reversed(range(len(steps))):  # newest to oldest (a loop over history slots, not instances)
        alphas[i] = rhos[i] * (steps[i] * q).sum(dim=1)
        q = q - alphas[i].unsqueeze(1) * changes[i]
    r = gamma.unsqueeze(1) * q
    for i in range(len(steps)):
        b = rhos[i] * (changes[i] * r).sum(dim=1)
        r = r + steps[i] * (alphas[i] - b).unsqueeze(1)
    return r


def window_direction(state: OptimizationState, pairs: int) -> Tensor:
    """The L-BFGS direction -H g [B, d] from the newest `pairs` pairs of the state's window (0 where
    there is none; see the module docstring). Needs 1 <= pairs < the state's history length."""
    history = state.history
    if isinstance(pairs, bool) or not isinstance(pairs, int) or not 1 <= pairs < history:
        raise ValueError(f"pairs must be an int in [1, {history - 1}] for a history of {history}, got {pairs!r}")
    S = state.step_window.newest(pairs).contiguous()  # [B, m, d]: the newest pairs only, not the window
    if not bool(S.any()):  # no steps (fresh episodes): no pair counts anywhere, the direction is 0
        return torch.zeros_like(state.grad)
    grads = state.grad_window.newest(pairs + 1).contiguous()
    Y = grads[:, 1:] - grads[:, :-1]
    sy = (S * Y).sum(dim=2)
    scale = S.square().sum(dim=2).sqrt() * Y.square().sum(dim=2).sqrt()
    counted = sy > CURVATURE_EPS * scale.clamp_min(torch.finfo(sy.dtype).tiny)
    rho = torch.where(counted, 1.0 / torch.where(counted, sy, torch.ones_like(sy)), torch.zeros_like(sy))
    yy = Y.square().sum(dim=2).clamp_min(torch.finfo(sy.dtype).tiny)
    # the newest counted pair's scaling (0 where none counts): the largest counted index
    newest = (counted * torch.arange(1, pairs + 1, device=sy.device)).argmax(dim=1, keepdim=True)
    any_counted = counted.any(dim=1)
    gamma = torch.where(any_counted, (sy / yy).gather(1, newest).squeeze(1), 0.0)
    direction = -two_loop(state.grad, S, Y, rho, gamma)
    usable = any_counted & torch.isfinite(direction).all(dim=1) & ((direction * state.grad).sum(dim=1) < 0)
    return torch.where(usable.unsqueeze(1), direction, torch.zeros_like(direction))
