"""Li & Malik's (2017) robust linear regression family (Geman-McClure loss).

f(w, b) = (1/N) Σ_i r_i² / (c² + r_i²), r_i = y_i - wᵀa_i - b, c = 1, a_i ∈ R^3, so
x = (w, b) ∈ R^4. Each instance: N = 100 points, 25 from each of four multivariate Gaussians
with random means and covariances (`tasks.gaussian_data`). Labels: the points of Gaussian k are
projected on a random vector v_k ~ N(0, I), a random bias β_k ~ N(0, 1) is added, and Gaussian
noise of std `noise_std` (0.5). A projection and bias per Gaussian is our reading of Li & Malik
(the other clusters act as outliers for any one linear fit). Non-convex: the optimum is the best
of `optimum_starts` L-BFGS runs. Starting points x0 ~ N(0, init_std²), init_std = 1.

Out-of-distribution variations: `dim`, `clusters`, `points_per_cluster`, `noise_std`, `c`,
`mean_std`, `spread`.

Shapes: a [B, N, dim], y [B, N], x [B, dim + 1].
"""

from __future__ import annotations

from dataclasses import InitVar

import torch
from torch import Tensor

from l2o_gym.problem import TaskFamily, check_positive_int
from tasks.checked_settings import keep_checked
from tasks.gaussian_data import check_nonnegative_float, check_positive_float, gaussian_clusters
from tasks.gaussian_family_settings import GaussianClusterSettings, family_dataclass
from tasks.multistart_optimum import BestOfStartsOptimum


class RobustLinearRegressionProblem(BestOfStartsOptimum):
    """a [B, N, dim] features, y [B, N] labels; x = (w [dim], b); the family's `settings` (scale c)."""

    instance_fields = ("a", "y")

    def __init__(self, a: Tensor, y: Tensor, x0: Tensor, settings: RobustLinearRegressionFamily) -> None:
        super().__init__(x0)
        self.a, self.y, self.settings, self.c = a, y, settings, settings.c

    def residual(self, x: Tensor) -> Tensor:
        return self.y - torch.einsum("bnj,bj->bn", self.a, x[:, :-1]) - x[:, -1:]

    def loss(self, x: Tensor) -> Tensor:
        r2 = self.residual(x).pow(2)
        return (r2 / (self.c**2 + r2)).mean(dim=1)

    def loss_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r = self.residual(x)
        r2 = r.pow(2)
        c2 = self.c**2
        f = (r2 / (c2 + r2)).mean(dim=1)
        # d/dr r²/(c² + r²) = 2 r c² / (c² + r²)², and dr/dw = -a, dr/db = -1.
        dr = -2.0 * c2 * r / (c2 + r2).pow(2) / r.shape[1]
        grad_w = torch.einsum("bnj,bn->bj", self.a, dr)
        return f, torch.cat([grad_w, dr.sum(dim=1, keepdim=True)], dim=1)


@family_dataclass
class RobustLinearRegressionFamily(GaussianClusterSettings, TaskFamily):
    """Geman-McClure linear regression on four random Gaussian clusters (Li & Malik 2017).

    Keywords: `dim` (the feature count; the problem's dimension is dim + 1), `noise_std`, `c`
    and the cluster settings (`GaussianClusterSettings`)."""

    description = "robust (Geman-McClure, c=1) linear regression, 4 Gaussians x 25 points (Li & Malik 2017)"
    default_action_scale = 0.75  # ~2.4x tuned Adam's lr (0.316, benchmarks/tuned_baselines.py)
    has_optimum = True

    dim: InitVar[int] = 3
    noise_std: float = 0.5
    c: float = 1.0

    def __post_init__(self, dim: int) -> None:
        self.features = check_positive_int("dim", dim)
        self.dim = self.features + 1
        keep_checked(self, check_nonnegative_float, noise_std=self.noise_std)
        keep_checked(self, check_positive_float, c=self.c)
        super().__post_init__()

    def sample_instances(
        self, n: int, generator: torch.Generator, device: torch.device
    ) -> RobustLinearRegressionProblem:
        k, p, d = self.clusters, self.points_per_cluster, self.features
        a, cluster = gaussian_clusters(n, k, p, d, generator, mean_std=self.mean_std, spread=self.spread)
        projection = torch.randn(n, k, d, generator=generator)[:, cluster]  # [n, N, d]
        bias = torch.randn(n, k, generator=generator)[:, cluster]  # [n, N]
        noise = self.noise_std * torch.randn(n, k * p, generator=generator)
        y = (a * projection).sum(dim=2) + bias + noise
        x0 = self.init_std * torch.randn(n, self.dim, generator=generator)
        return RobustLinearRegressionProblem(a.to(device), y.to(device), x0.to(device), self)
