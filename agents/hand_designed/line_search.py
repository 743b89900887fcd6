"""Batched backtracking line search with the Armijo condition, for CG and L-BFGS.

For B instances at x [B, d] with objective f [B], gradient g [B, d] and descent direction p [B, d],
each instance finds its own step α [B] with f(x + α p) <= f + c1 α gᵀp (sufficient decrease):
from the initial trial α0 it halves (`shrink`) until the condition holds, or, where α0 is accepted
at once, doubles (`grow`) while the condition still holds and f keeps falling, keeping the best.
Trials are evaluated for all B instances at once through `problem.loss` (extra objective
evaluations that are not optimization steps). An instance that finds no acceptable step within
`max_evals` evaluations gets α = 0. `instance_evaluations` [B] counts the trials each instance
makes when run alone: the first (and, interpolating, the second) for every row, then one per
trial while the row is still searching (the batch evaluates every row at each trial;
`evaluations` counts those batched calls).

With `interpolate=True` (used by CG) the second trial is the minimiser of the parabola through
f(0), f'(0) = gᵀp and f(α0) (α0 · grow where that parabola is not convex, kept within
[α0 / 100, 100 α0]); the lower of the two trials that meets the Armijo condition is taken, and
instances where neither does backtrack from the smaller one. On a quadratic the parabola is
exact, so this is an exact line search there. No doubling phase in this mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from l2o_gym.problem import Problem


@dataclass
class LineSearchResult:
    """alpha [B] accepted step (0 where none), f [B] objective there, found [B] bool, evaluations
    (int, batched trials), instance_evaluations [B] long (the trials each instance needed)."""

    alpha: Tensor
    f: Tensor
    found: Tensor
    evaluations: int
    instance_evaluations: Tensor


@torch.no_grad()
def armijo_backtracking(
    problem: Problem,
    x: Tensor,
    f: Tensor,
    grad: Tensor,
    direction: Tensor,
    alpha0: Tensor,
    *,
    c1: float = 1e-4,
    shrink: float = 0.5,
    grow: float = 2.0,
    max_evals: int = 25,
    max_grow: int = 6,
    interpolate: bool = False,
) -> LineSearchResult:
    """Per-instance Armijo steps along `direction` [B, d] from `alpha0` [B] (see module docstring)."""
    if not (0 < c1 < 1 and 0 < shrink < 1 and grow >= 1 and max_evals >= 1 and max_grow >= 0):
        raise ValueError(
            f"need 0 < c1 < 1, 0 < shrink < 1, grow >= 1, max_evals >= 1, max_grow >= 0; got c1={c1}, "
            f"shrink={shrink}, grow={grow}, max_evals={max_evals}, max_grow={max_grow}"
        )
    slope = (grad * direction).sum(dim=1)  # < 0 for a descent direction

    def trial(alpha: Tensor) -> tuple[Tensor, Tensor]:
        f_new = problem.loss(x + alpha.unsqueeze(1) * direction)
        ok = torch.isfinite(f_new) & (f_new <= f + c1 * alpha * slope) & (slope < 0)
        return f_new, ok

    alpha = alpha0.to(x.dtype).clone()
    f_try, ok = trial(alpha)
    evaluations = 1
    found = ok.clone()
    best_alpha = torch.where(ok, alpha, torch.zeros_like(alpha))
    best_f = torch.where(ok, f_try, f)
    growing = ok.clone() & (slope < 0)
    done = ~(slope < 0)  # no descent direction: nothing to search
    per_instance = torch.ones_like(done, dtype=torch.long)  # the first trial is made for every row
    grown = torch.zeros_like(done, dtype=torch.long)  # doublings so far, per instance
    if interpolate and max_evals >= 2:
        curvature = (f_try - f - slope * alpha) / alpha.pow(2)
        convex = torch.isfinite(curvature) & (curvature > 0)
        vertex = -slope / (2.0 * curvature.where(convex, torch.ones_like(curvature)))
        alpha_q = torch.where(convex, vertex, alpha * grow).clamp(alpha / 100.0, alpha * 100.0)
        f_q, ok_q = trial(alpha_q)
        evaluations += 1
        per_instance = per_instance + 1
        take_q = ok_q & (~ok | (f_q < f_try))
        best_alpha = torch.where(take_q, alpha_q, best_alpha)
        best_f = torch.where(take_q, f_q, best_f)
        found = found | ok_q
        done = done | found
        growing = torch.zeros_like(growing)
        alpha = torch.minimum(alpha, alpha_q)
    while evaluations < max_evals:
        done = done | (growing & ((grown >= max_grow) | (grow == 1.0)))
        active = ~done & (growing | ~found)
        if not bool(active.any()):
            break
        alpha = torch.where(active, torch.where(growing, alpha * grow, alpha * shrink), alpha)
        f_try, ok = trial(alpha)
        evaluations += 1
        per_instance = per_instance + active.long()
        grown = grown + (active & growing).long()
        improved = active & growing & ok & (f_try < best_f)
        accepted = active & ~growing & ok
        take = improved | accepted
        best_alpha = torch.where(take, alpha, best_alpha)
        best_f = torch.where(take, f_try, best_f)
        found = found | accepted
        done = done | accepted | (active & growing & ~improved)
    return LineSearchResult(
        alpha=best_alpha, f=best_f, found=found, evaluations=evaluations, instance_evaluations=per_instance
    )
