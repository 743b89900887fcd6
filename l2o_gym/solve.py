"""Each instance's optimum, batched: L-BFGS to convergence on every instance on its own, or
Newton's method where the family gives its Hessian.

`minimize_batched` runs one L-BFGS per instance, all in the same tensor operations: each instance
keeps its own curvature pairs, step size and stopping point, so its result does not depend on
which other instances are solved beside it (one L-BFGS over the sum of the objectives would share
the line search and the curvature memory between them). It works in float64, so a CPU and a GPU
run give the same optimum to float32 precision. For non-convex families it is the best local
optimum found from the starting point. `newton_batched` takes a batched Hessian [B, d, d] and a
per-instance backtracking line search: for small smooth convex problems a handful of iterations,
each a few tensor operations.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from l2o_gym.problem import Problem

ARMIJO = 1e-4  # sufficient decrease: f(x + t·p) <= f(x) + ARMIJO · t · ∇f·p
HALVINGS = 30  # backtracking halvings of the step before an instance counts as stalled


def two_loop_direction(grad: Tensor, s: Tensor, y: Tensor, rho: Tensor, newest: int, gamma: Tensor) -> Tensor:
    """-H·∇f [B, d] by the L-BFGS two-loop recursion over each instance's pairs s, y [B, m, d]
    (ring order, `newest` the last written slot; rho [B, m] = 1/(s·y), 0 for an empty slot) with
    the initial Hessian gamma·I, gamma [B] (s·y / y·y of the instance's last kept pair)."""
    m = s.shape[1]
    order = [(newest - j) % m for j in range(m)]  # newest to oldest
    q = grad.clone()
    alphas = []
    for k in order:
        alpha = rho[:, k] * (s[:, k] * q).sum(dim=1)
        q = q - alpha.unsqueeze(1) * y[:, k]
        alphas.append(alpha)
    r = gamma.unsqueeze(1) * q
    for k, alpha in zip(reversed(order), reversed(alphas), strict=True):
        beta = rho[:, k] * (y[:, k] * r).sum(dim=1)
        r = r + (alpha - beta).unsqueeze(1) * s[:, k]
    return -r


def backtrack(problem: Problem, x: Tensor, f: Tensor, direction: Tensor, slope: Tensor, size: Tensor) -> Tensor:
    """Per-instance step sizes t [B] meeting Armijo's condition f(x + t·p) <= f + ARMIJO·t·slope
    along p = `direction` [B, d] (slope [B] = ∇f·p < 0), halved from `size` [B] at most HALVINGS
    times; 0 where no halving does (or where `size` is 0). Each halving evaluates only the
    instances still searching."""
    size = size.clone()
    searching = (size > 0).nonzero().squeeze(1)
    for _ in range(HALVINGS):
        if searching.numel() == 0:
            return size
        t = size[searching]
        trial = problem.select_rows(searching).loss(x[searching] + t.unsqueeze(1) * direction[searching])
        done = torch.isfinite(trial) & (trial <= f[searching] + ARMIJO * t * slope[searching])
        size[searching] = torch.where(done, t, t / 2)
        searching = searching[~done]
    size[searching] = 0.0
    return size


class LBFGSRows:
    """The L-BFGS state of the instances still being solved: their indices `rows` [n] into the
    batch, x [n, d], f [n], ∇f [n, d], the curvature pairs s, y [n, m, d] with rho [n, m], the
    initial Hessian scale gamma [n] and whether each has taken its first step."""

    def __init__(self, problem: Problem, x: Tensor, memory: int) -> None:
        n, d = x.shape
        self.problem, self.x = problem, x
        self.rows = torch.arange(n, device=x.device)
        self.f, self.grad = problem.loss_and_grad(x)
        self.s, self.y = x.new_zeros(n, memory, d), x.new_zeros(n, memory, d)
        self.rho, self.gamma = x.new_zeros(n, memory), torch.ones_like(self.f)
        self.first = torch.ones_like(self.f, dtype=torch.bool)

    def keep(self, index: Tensor) -> None:
        """Only the instances at `index` [k] (positions in this state) go on being solved."""
        self.problem = self.problem.select_rows(index)
        for name in ("rows", "x", "f", "grad", "s", "y", "rho", "gamma", "first"):
            setattr(self, name, getattr(self, name)[index])


def minimize_batched(
    problem: Problem,
    x0: Tensor | None = None,
    max_iter: int = 1000,
    tolerance_grad: float = 1e-9,
    memory: int = 20,
) -> tuple[Tensor, Tensor]:
    """Minimise every instance on its own by L-BFGS in float64: x* [B, d] and f* [B], in the
    problem's dtype. An instance stops when its largest gradient entry is at most
    `tolerance_grad`, when the decrease its direction promises is below float64 precision of f,
    when no step along it decreases f, or after `max_iter` iterations. Instances that stopped
    leave the batch, so the last slow ones are solved alone."""
    dtype = problem.x0.dtype
    exact = problem.astype(torch.float64)
    x_out = (exact.init() if x0 is None else x0.detach().to(torch.float64)).clone()
    state = LBFGSRows(exact, x_out.clone(), memory)
    newest = memory - 1
    for _ in range(max_iter):
        active = state.grad.abs().amax(dim=1) > tolerance_grad
        direction = two_loop_direction(state.grad, state.s, state.y, state.rho, newest, state.gamma)
        slope = (direction * state.grad).sum(dim=1)
        descent = slope < 0
        direction = torch.where(descent.unsqueeze(1), direction, -state.grad)  # not a descent direction: -g
        slope = torch.where(descent, slope, -(state.grad * state.grad).sum(dim=1))
        active = active & (-slope > 1e-13 * state.f.abs().clamp_min(1e-12))
        start = (1.0 / state.grad.abs().sum(dim=1).clamp_min(1e-300)).clamp_max(1.0)
        start = torch.where(state.first, start, torch.ones_like(start))
        size = backtrack(state.problem, state.x, state.f, direction, slope, torch.where(active, start, 0 * start))
        active = active & (size > 0)
        x_out[state.rows] = state.x
        if not bool(active.any()):
            break
        if int(active.sum()) <= state.x.shape[0] // 2:
            index = active.nonzero().squeeze(1)
            state.keep(index)
            direction, size, active = direction[index], size[index], active[index]
        newest = (newest + 1) % memory
        take_step(state, direction, size, active, newest)
    x_out[state.rows] = state.x
    with torch.no_grad():
        f_star = exact.loss(x_out)
    return x_out.to(dtype), f_star.to(dtype)


def take_step(state: LBFGSRows, direction: Tensor, size: Tensor, moved: Tensor, slot: int) -> None:
    """Move the `moved` [n] instances by size [n] along direction [n, d] and write their
    curvature pair into ring `slot` (an empty pair where the curvature is not positive)."""
    x_new = state.x + size.unsqueeze(1) * direction
    f_new, grad_new = state.problem.loss_and_grad(x_new)
    step, change = x_new - state.x, grad_new - state.grad
    curvature = (step * change).sum(dim=1)
    change_sq = (change * change).sum(dim=1)
    keep = moved & (curvature > 1e-12 * change_sq)
    state.s[:, slot] = torch.where(keep.unsqueeze(1), step, torch.zeros_like(step))
    state.y[:, slot] = torch.where(keep.unsqueeze(1), change, torch.zeros_like(change))
    state.rho[:, slot] = torch.where(keep, 1.0 / curvature.clamp_min(1e-300), torch.zeros_like(curvature))
    state.gamma = torch.where(keep, curvature / change_sq.clamp_min(1e-300), state.gamma)
    state.x = torch.where(moved.unsqueeze(1), x_new, state.x)
    state.f = torch.where(moved, f_new, state.f)
    state.grad = torch.where(moved.unsqueeze(1), grad_new, state.grad)
    state.first = state.first & ~moved


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
