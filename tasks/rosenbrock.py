"""The Rosenbrock function in d dimensions,
f(x) = Σ_i a (x_{i+1} - x_i²)² + (1 - x_i)², minimum 0 at x = 1.

Instances differ by their starting point, uniform on [-2, 2]^d, and by the curvature a, uniform
on [a_low, a_high] (default [50, 150] around the classic 100)."""

from __future__ import annotations

import torch
from torch import Tensor

from l2o_gym.problem import TaskFamily, check_positive_int
from tasks.zero_minimum import ZeroMinimumProblem


class RosenbrockProblem(ZeroMinimumProblem):
    """a [B] curvature per instance."""

    instance_fields = ("a",)

    def __init__(self, a: Tensor, x0: Tensor) -> None:
        super().__init__(x0)
        self.a = a

    def loss(self, x: Tensor) -> Tensor:
        valley = (x[:, 1:] - x[:, :-1].pow(2)).pow(2).sum(dim=1)
        return self.a * valley + (1.0 - x[:, :-1]).pow(2).sum(dim=1)


class RosenbrockFamily(TaskFamily):
    """Rosenbrock functions of dimension `dim` (>= 2)."""

    description = "d-dimensional Rosenbrock, random start and curvature"
    default_action_scale = 0.01
    has_optimum = True

    def __init__(self, dim: int = 2, a_low: float = 50.0, a_high: float = 150.0, start_range: float = 2.0) -> None:
        self.dim = check_positive_int("dim", dim)
        if self.dim < 2:
            raise ValueError(f"dim must be >= 2 for Rosenbrock, got {dim}")
        if not 0 < a_low <= a_high:
            raise ValueError(f"need 0 < a_low <= a_high, got a_low={a_low!r}, a_high={a_high!r}")
        if not start_range > 0:
            raise ValueError(f"start_range must be > 0, got {start_range!r}")
        self.a_low, self.a_high, self.start_range = float(a_low), float(a_high), float(start_range)

    def sample_instances(self, n: int, generator: torch.Generator, device: torch.device) -> RosenbrockProblem:
        a = self.a_low + (self.a_high - self.a_low) * torch.rand(n, generator=generator)
        x0 = self.start_range * (2.0 * torch.rand(n, self.dim, generator=generator) - 1.0)
        return RosenbrockProblem(a.to(device), x0.to(device))
