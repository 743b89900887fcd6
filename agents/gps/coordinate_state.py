"""The per-coordinate state of the LQR and the objective's local curvature along each coordinate.

Coordinate i of an instance is one condition of guided policy search, with state
s = (x_i, g_i, Δx_i^{prev}): its location, its gradient and its last step (S = 3), and action
u = Δx_i (A = 1). Why these three: heavy-ball momentum, the controllers' starting point, is exactly
linear in them (u = μ Δx^{prev} − lr g), the location moves exactly linearly (x' = x + u), so the
cost f can be written on the state through the objective's own local quadratic, and the gradient is
what the global policy's rows describe; the gradient's dynamics (which depend on the other
coordinates and on curvature) are what the fitted model has to learn.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.func import grad, jvp, vmap

from l2o_gym.problem import Problem
from l2o_gym.state import OptimizationState

STATE_WIDTH = 3
ACTION_WIDTH = 1
LOCATION, GRADIENT, LAST_STEP = 0, 1, 2


def coordinate_states(state: OptimizationState) -> Tensor:
    """(x, ∇f, last step) of every coordinate: [B, d, 3]."""
    return torch.stack([state.x, state.grad, state.last_step], dim=2)


def hessian_diagonal(problem: Problem, x: Tensor) -> Tensor:
    """∂²f/∂x_i² of every instance and coordinate at x [B, d] -> [B, d] (forward-over-reverse autograd)."""
    x = x.detach()
    dim = x.shape[1]

    def gradient(point: Tensor) -> Tensor:
        return grad(lambda p: problem.loss(p).sum())(point)

    basis = torch.eye(dim, dtype=x.dtype, device=x.device).unsqueeze(1).expand(dim, *x.shape)  # [d, B, d]
    with torch.enable_grad():
        columns = vmap(lambda v: jvp(gradient, (x,), (v,))[1])(basis)  # [d, B, d]: H e_i for each i
    return torch.diagonal(columns, dim1=0, dim2=2).detach().contiguous()  # [B, d]


def impose_kinematics(matrices: Tensor, offsets: Tensor, noise: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Replace the fitted rows of the two exactly known transitions, x' = x + u and Δx' = u, in
    dynamics matrices [C, T, 3, 4], offsets [C, T, 3], noise [C, T, 3, 3] (their noise set to zero
    but for a tiny floor relative to the gradient's); the gradient's row stays as fitted."""
    matrices, offsets, noise = matrices.clone(), offsets.clone(), noise.clone()
    action = STATE_WIDTH  # the action's column
    for row in (LOCATION, LAST_STEP):
        matrices[:, :, row] = 0.0
        matrices[:, :, row, action] = 1.0
        offsets[:, :, row] = 0.0
        noise[:, :, row, :] = 0.0
        noise[:, :, :, row] = 0.0
    matrices[:, :, LOCATION, LOCATION] = 1.0
    floor = 1e-9 * noise[:, :, GRADIENT, GRADIENT].clamp_min(1e-30)
    noise[:, :, LOCATION, LOCATION] = floor
    noise[:, :, LAST_STEP, LAST_STEP] = floor
    return matrices, offsets, noise
