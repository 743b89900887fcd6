"""Best-of-several-starts optimum for non-convex families: batched L-BFGS (l2o_gym.solve) from the
instances' own starting points and from extra random starts, keeping each instance's lowest f.

All starts run in one L-BFGS call: the problem's instances are repeated `starts` times (rows
s·B + i hold instance i from start s). Shapes: problem with B instances over R^d; returns
x* [B, d], f* [B].
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor

from l2o_gym.problem import Problem
from l2o_gym.solve import minimize_batched
from tasks.gaussian_family_settings import GaussianClusterSettings

OPTIMUM_SEED = 20170424  # fixed: the extra starts are reproducible for given instances


def repeat_instances(problem: Problem, times: int) -> Problem:
    """A shallow copy of `problem` whose per-instance tensors are repeated `times` times along dim 0."""
    repeated = copy.copy(problem)
    for name in ("x0", *problem.instance_fields):
        value = getattr(problem, name)
        setattr(repeated, name, value.repeat(times, *([1] * (value.dim() - 1))))
    repeated.f_star = None
    return repeated


def best_of_starts(problem: Problem, starts: int, init_std: float, max_iter: int = 500) -> tuple[Tensor, Tensor]:
    """Minimise from x0 and from `starts - 1` draws of N(0, init_std²); the best per instance.

    For a non-convex objective this is the best local optimum found, not a certified global one.
    """
    if isinstance(starts, bool) or not isinstance(starts, int) or starts < 1:
        raise ValueError(f"starts must be a positive int, got {starts!r}")
    b, d = problem.batch_size, problem.dim
    generator = torch.Generator().manual_seed(OPTIMUM_SEED)
    extra = init_std * torch.randn((starts - 1) * b, d, generator=generator)
    x0 = torch.cat([problem.x0, extra.to(problem.x0)])
    x, f = minimize_batched(repeat_instances(problem, starts), x0=x0, max_iter=max_iter)
    f = torch.where(torch.isfinite(f), f, torch.full_like(f, float("inf"))).view(starts, b)
    best = f.argmin(dim=0)
    return x.view(starts, b, d)[best, torch.arange(b)], f.min(dim=0).values


class BestOfStartsOptimum(Problem):
    """A problem whose f* is `best_of_starts` with its family's `settings` (`optimum_starts` starts,
    extra ones drawn with `init_std`)."""

    settings: GaussianClusterSettings

    def compute_optimum(self) -> Tensor:
        return best_of_starts(self, self.settings.optimum_starts, self.settings.init_std)[1]
