"""Each instance's optimum, batched: L-BFGS to convergence on all B instances at once.

Instances are independent, so minimising the sum of their objectives minimises each one; one
L-BFGS run over the [B, d] tensor solves them all. Used by families whose optimum has no closed
form (for non-convex ones it is the best local optimum found from the starting point).
"""

from __future__ import annotations

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
