"""Andrychowicz et al.'s quadratic: f(x) = ||W x - y||², W [d, d] and y [d] uniform on [0, 1)
per instance, x0 ~ N(0, 0.01²) (their code), d = 10 by default. W is square and almost surely
invertible, so f* = 0."""

from __future__ import annotations

import torch
from torch import Tensor

from l2o_gym.problem import TaskFamily, check_positive_int
from tasks.zero_minimum import ZeroMinimumProblem


class QuadraticProblem(ZeroMinimumProblem):
    """W [B, d, d], y [B, d]."""

    instance_fields = ("W", "y")

    def __init__(self, W: Tensor, y: Tensor, x0: Tensor) -> None:
        super().__init__(x0)
        self.W, self.y = W, y

    def residual(self, x: Tensor) -> Tensor:
        return torch.einsum("bij,bj->bi", self.W, x) - self.y

    def loss(self, x: Tensor) -> Tensor:
        return self.residual(x).pow(2).sum(dim=1)

    def loss_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r = self.residual(x)
        return r.pow(2).sum(dim=1), 2.0 * torch.einsum("bij,bi->bj", self.W, r)


class QuadraticFamily(TaskFamily):
    """Random least-squares quadratics of dimension `dim`."""

    description = "||Wx - y||^2 with W, y ~ U[0,1) (Andrychowicz et al. 2016)"
    default_action_scale = 0.1
    has_optimum = True

    def __init__(self, dim: int = 10, init_std: float = 0.01) -> None:
        self.dim = check_positive_int("dim", dim)
        if not init_std >= 0:
            raise ValueError(f"init_std must be >= 0, got {init_std!r}")
        self.init_std = float(init_std)

    def sample_instances(self, n: int, generator: torch.Generator, device: torch.device) -> QuadraticProblem:
        d = self.dim
        W = torch.rand(n, d, d, generator=generator)
        y = torch.rand(n, d, generator=generator)
        x0 = self.init_std * torch.randn(n, d, generator=generator)
        return QuadraticProblem(W.to(device), y.to(device), x0.to(device))
