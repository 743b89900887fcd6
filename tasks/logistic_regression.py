"""Li & Malik's (2017) logistic regression family.

f(w, b) = -(1/N) Σ_i [y_i log σ(wᵀa_i + b) + (1 - y_i) log(1 - σ(wᵀa_i + b))] + (λ/2) ||w||²,
λ = 5e-4, features a_i ∈ R^3, so x = (w, b) ∈ R^4. Each instance is a dataset of N = 100 points,
half from each of two multivariate Gaussians with random means and covariances
(`tasks.gaussian_data`); points of Gaussian k get label k. Convex, with one optimum
(computed by batched L-BFGS). Starting points x0 ~ N(0, init_std²) (init_std = 1; Li & Malik do
not state theirs).

Out-of-distribution variations: `dim` (feature dimension), `n_points`, `mean_std` (class
separation), `spread` (class width), `lam`.

Shapes: a [B, N, dim], y [B, N] in {0, 1}, x [B, dim + 1].
"""

from __future__ import annotations

import copy
from dataclasses import InitVar

import torch
import torch.nn.functional as F
from torch import Tensor

from l2o_gym.problem import Problem, TaskFamily, check_positive_int
from l2o_gym.solve import minimize_batched, newton_batched
from tasks.checked_settings import keep_checked
from tasks.gaussian_data import check_nonnegative_float, gaussian_clusters
from tasks.gaussian_family_settings import GaussianScales, family_dataclass


class LogisticRegressionProblem(Problem):
    """a [B, N, dim] features, y [B, N] labels in {0, 1}; x = (w [dim], b)."""

    instance_fields = ("a", "y")

    def __init__(self, a: Tensor, y: Tensor, x0: Tensor, lam: float) -> None:
        super().__init__(x0)
        self.a, self.y, self.lam = a, y, lam

    def logits(self, x: Tensor) -> Tensor:
        return torch.einsum("bnj,bj->bn", self.a, x[:, :-1]) + x[:, -1:]

    def loss(self, x: Tensor) -> Tensor:
        z = self.logits(x)
        data = (F.softplus(z) - self.y * z).mean(dim=1)
        return data + 0.5 * self.lam * x[:, :-1].pow(2).sum(dim=1)

    def loss_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = self.logits(x)
        w = x[:, :-1]
        f = (F.softplus(z) - self.y * z).mean(dim=1) + 0.5 * self.lam * w.pow(2).sum(dim=1)
        residual = (torch.sigmoid(z) - self.y) / z.shape[1]
        grad_w = torch.einsum("bnj,bn->bj", self.a, residual) + self.lam * w
        return f, torch.cat([grad_w, residual.sum(dim=1, keepdim=True)], dim=1)

    def metrics(self, x: Tensor) -> dict[str, Tensor]:
        correct = (self.logits(x) > 0).to(self.y.dtype) == self.y
        return {"accuracy": correct.to(x.dtype).mean(dim=1)}

    def hessian(self, x: Tensor) -> Tensor:
        """∇²f [B, d + 1, d + 1] at x [B, d + 1]."""
        z = self.logits(x)
        curvature = torch.sigmoid(z) * torch.sigmoid(-z) / z.shape[1]  # [B, N]
        features = torch.cat([self.a, torch.ones_like(self.a[:, :, :1])], dim=2)  # [B, N, d + 1]
        hessian = torch.einsum("bni,bn,bnj->bij", features, curvature, features)
        eye = torch.eye(x.shape[1] - 1, dtype=x.dtype, device=x.device)
        hessian[:, :-1, :-1] += self.lam * eye
        return hessian

    def compute_optimum(self) -> Tensor:
        """f* by Newton's method in float64 (a few batched iterations); L-BFGS (float32) as well
        for any instance where Newton did not converge, the lower of the two kept."""
        exact = copy.copy(self)
        exact.a, exact.y, exact.x0 = self.a.double(), self.y.double(), self.x0.double()
        _, f_star, converged = newton_batched(exact, exact.hessian, tolerance_grad=1e-8)
        f_star = f_star.to(self.x0.dtype)
        if not bool(converged.all()):
            f_star = torch.minimum(f_star, minimize_batched(self)[1])
        return f_star


@family_dataclass
class LogisticRegressionFamily(GaussianScales, TaskFamily):
    """L2-regularised logistic regression on two random Gaussian classes (Li & Malik 2017).

    Keywords: `dim` (the feature count; the problem's dimension is dim + 1), `n_points` (even),
    `lam` and the scales (`GaussianScales`)."""

    description = "logistic regression, 2 random Gaussian classes, N=100, λ=5e-4 (Li & Malik 2017)"
    default_action_scale = 2.0  # 2x tuned Adam's lr (1.0, benchmarks/tuned_baselines.py)
    has_optimum = True

    dim: InitVar[int] = 3
    n_points: int = 100
    lam: float = 5e-4

    def __post_init__(self, dim: int) -> None:
        self.features = check_positive_int("dim", dim)
        self.dim = self.features + 1
        keep_checked(self, check_positive_int, n_points=self.n_points)
        if self.n_points % 2:
            raise ValueError(f"n_points must be even (half from each class), got {self.n_points}")
        keep_checked(self, check_nonnegative_float, lam=self.lam)
        super().__post_init__()

    def sample_instances(self, n: int, generator: torch.Generator, device: torch.device) -> LogisticRegressionProblem:
        a, cluster = gaussian_clusters(
            n, 2, self.n_points // 2, self.features, generator, mean_std=self.mean_std, spread=self.spread
        )
        y = cluster.to(a.dtype).expand(n, -1).clone()
        x0 = self.init_std * torch.randn(n, self.dim, generator=generator)
        return LogisticRegressionProblem(a.to(device), y.to(device), x0.to(device), self.lam)
