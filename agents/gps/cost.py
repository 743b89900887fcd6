"""Li & Malik's cost Σ_t f(x_t) as a quadratic on the per-coordinate LQR state.

Around the sampled trajectories each coordinate sees f through the objective's local quadratic
along that coordinate, f(x + δ e_i) ≈ f + g_i δ + ½ h_ii δ² (h_ii the Hessian's diagonal by
autograd; cross-coordinate curvature is left to the fitted gradient dynamics). Averaged over a
condition's samples at step t, in the absolute location x_i:
    cost_t(s) = ½ h̄ x_i² + mean(g_i − h_ii x_i) · x_i       (t = 1 .. T; none at t = 0)
with h̄ floored at `curvature_floor` so that the LQR stays well posed on nonconvex problems.
"""

from __future__ import annotations

import torch
from torch import Tensor

from agents.gps.coordinate_state import ACTION_WIDTH, GRADIENT, LOCATION, STATE_WIDTH
from agents.gps.lqr import QuadraticCost


def local_quadratic_cost(
    states: Tensor,
    curvature: Tensor,
    weights: Tensor,
    curvature_floor: float = 1e-8,
    step_weights: Tensor | None = None,
) -> QuadraticCost:
    """states [N, C, T + 1, 3], curvature h_ii [N, C, T + 1], weights [N, C] -> QuadraticCost over C, T + 1.

    step_weights [N, C, T + 1] (optional) multiply each sample's gradient and curvature at each step
    (`agents.gps.cost_shaping`)."""
    states, curvature, weights = states.double(), curvature.double(), weights.double()
    samples, conditions, horizon_plus, _ = states.shape
    w = weights[:, :, None]
    total = w.sum(0).clamp_min(1e-12)  # [C, 1]
    if step_weights is not None:
        w = w * step_weights.double()
    mean_curvature = (w * curvature).sum(0) / total  # [C, T + 1]
    linear = (w * (states[..., GRADIENT] - curvature * states[..., LOCATION])).sum(0) / total
    width = STATE_WIDTH + ACTION_WIDTH
    hessians = torch.zeros(conditions, horizon_plus, width, width, dtype=torch.float64)
    gradients = torch.zeros(conditions, horizon_plus, width, dtype=torch.float64)
    hessians[:, 1:, LOCATION, LOCATION] = mean_curvature[:, 1:].clamp_min(curvature_floor)
    gradients[:, 1:, LOCATION] = linear[:, 1:]
    return QuadraticCost(hessians, gradients)
