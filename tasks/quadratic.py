"""Andrychowicz et al.'s quadratic: f(x) = ||W x - y||², W [d, d] and y [d] uniform on [0, 1)
per instance, x0 ~ N(0, 0.01²) (their code), d = 10 by default. W is square and almost surely
invertible, so f* = 0."""

from __future__ import annotations

import torch
from torch import Tensor

from l2o_gym.problem import TaskFamily, check_positive_int
from tasks.zero_minimum import ZeroMinimumProblem


class QuadraticProblem(ZeroMinimumProblem):
    """W [B, d, d], y [B, d].

    The gradient 2 Wᵀ r reads W by columns: it is taken as one batched product with a contiguous
    2 Wᵀ [B, d, d], made when W changes (a new tensor, or W written in place: torch's version
    counter) and kept until then, since a batched product with a transposed view is about twice
    as slow on the CPU."""

    instance_fields = ("W", "y")

    def __init__(self, W: Tensor, y: Tensor, x0: Tensor) -> None:
        super().__init__(x0)
        self.W, self.y = W, y
        self._transposed: tuple[Tensor, int, Tensor] | None = None  # (W it was made from, W's version, 2 Wᵀ)

    def residual(self, x: Tensor) -> Tensor:
        """W x - y [B, d] at x [B, d]."""
        return torch.baddbmm(self.y.unsqueeze(2), self.W, x.unsqueeze(2), beta=-1.0).squeeze(2)

    def loss(self, x: Tensor) -> Tensor:
        r = self.residual(x)
        return torch.linalg.vecdot(r, r)

    def loss_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r = self.residual(x)
        grad = torch.bmm(self.twice_w_transposed(), r.unsqueeze(2)).squeeze(2)
        return torch.linalg.vecdot(r, r), grad

    def twice_w_transposed(self) -> Tensor:
        """2 Wᵀ [B, d, d] as a contiguous tensor (kept while W stays as it is)."""
        W, kept = self.W, self._transposed
        if kept is None or kept[0] is not W or kept[1] != W._version:
            kept = (W, W._version, W.detach().transpose(1, 2).clone(memory_format=torch.contiguous_format).mul_(2.0))
            self._transposed = kept
        return kept[2]


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
