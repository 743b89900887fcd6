"""Each instance's optimum, batched: L-BFGS to convergence on all B instances at once, or
Newton's method where the family gives its Hessian.

Instances are independent, so minimising the sum of their objectives minimises each one; one
L-BFGS run over the [B, d] tensor solves them all. Used by families whose optimum has no closed
form (for non-convex ones it is the best local optimum found from the starting point).
`newton_batched` takes a batched Hessian [B, d, d] and a per-instance backtracking line search:
for small smooth convex problems a handful of iterations, each a few tensor operations.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from l2o_gym.problem import Problem


def minimize_batched(
    problem: Problem,
    x0: Tensor | None = None,
    max_iter: int = 1000,
    tolerance_grad: float = 1e-9,
) -> tuple[Tensor, Tensor]:
    """Minimise every instance: returns x* [B, d] and f* [B]."""
    x = (problem.init() if x0 is None else x0.clone()).detach().requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [x],
        lr=1.0,
        max_iter=max_iter,
        history_size=50,
        tolerance_grad=tolerance_grad,
        tolerance_change=1e-15,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        optimizer.zero_grad()
        total = problem.loss(x).sum()
        total.backward()
        return total

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        f_star = problem.loss(x)
    return x.detach(), f_star.detach()


def newton_batched(
    problem: Problem,
    hessian: Callable[[Tensor], Tensor],
    x0: Tensor | None = None,
    max_iter: int = 50,
    tolerance_grad: float = 1e-9,
) -> tuple[Tensor, Tensor, Tensor]:
    """Damped Newton on every instance: x* [B, d], f* [B] and converged [B] (the largest gradient
    entry at most `tolerance_grad`). Works in the problem's dtype (pass a float64 problem for
    f* to float64 precision); a step that does not decrease f (Armijo, halved up to 30 times)
    leaves that instance where it is."""
    x = (problem.init() if x0 is None else x0.clone()).detach()
    f, grad = problem.loss_and_grad(x)
    for _ in range(max_iter):
        converged = grad.abs().amax(dim=1) <= tolerance_grad
        if bool(converged.all()):
            break
        eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
        direction = -torch.linalg.solve(hessian(x) + 1e-12 * eye, grad.unsqueeze(2)).squeeze(2)
        slope = (direction * grad).sum(dim=1)
        direction = torch.where((slope < 0).unsqueeze(1), direction, -grad)  # not a descent direction: -g
        slope = (direction * grad).sum(dim=1)
        size = torch.ones_like(f)
        accepted = torch.zeros_like(converged)
        for _ in range(30):
            trial = x + size.unsqueeze(1) * direction
            f_trial = problem.loss(trial)
            accepted = torch.isfinite(f_trial) & (f_trial <= f + 1e-4 * size * slope) & ~converged
            if bool((accepted | converged).all()):
                break
            size = torch.where(accepted, size, size / 2)
        if not bool(accepted.any()):
            break
        x = torch.where(accepted.unsqueeze(1), trial, x)
        f, grad = problem.loss_and_grad(x)
    return x, f, grad.abs().amax(dim=1) <= tolerance_grad
