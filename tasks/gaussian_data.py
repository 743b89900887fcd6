"""Li & Malik's synthetic data: points drawn from K multivariate Gaussians with random means and
random covariances, P points from each, batched over B instances.

For each instance and cluster k: mean μ_k ~ N(0, mean_std² I), covariance Σ_k = A_k A_kᵀ with
A_k [dim, dim] entries ~ N(0, spread² / dim) (so each coordinate has variance ≈ spread²), and
points μ_k + A_k z, z ~ N(0, I). Li & Malik do not state the distributions of the means and
covariances; these are our choice (documented in each family).

Shapes: points [B, K * P, dim], cluster [K * P] (the cluster index of each point, the same for
every instance; points of cluster k are rows k * P .. (k + 1) * P - 1).
"""

from __future__ import annotations

import torch
from torch import Tensor

from l2o_gym.problem import check_positive_int


def check_positive_float(name: str, value: object) -> float:
    """Return value as a float if it is a finite number > 0, else raise a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_nonnegative_float(name: str, value: object) -> float:
    """Return value as a float if it is a finite number >= 0, else raise a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def gaussian_clusters(
    n: int,
    clusters: int,
    points_per_cluster: int,
    dim: int,
    generator: torch.Generator,
    *,
    mean_std: float = 1.0,
    spread: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """Draw n instances of `clusters` Gaussians × `points_per_cluster` points in R^dim.

    Returns points [n, clusters * points_per_cluster, dim] and cluster [clusters * points_per_cluster].
    """
    check_positive_int("n", n)
    check_positive_int("clusters", clusters)
    check_positive_int("points_per_cluster", points_per_cluster)
    check_positive_int("dim", dim)
    mean_std = check_positive_float("mean_std", mean_std)
    spread = check_positive_float("spread", spread)
    means = mean_std * torch.randn(n, clusters, 1, dim, generator=generator)
    factors = (spread / dim**0.5) * torch.randn(n, clusters, dim, dim, generator=generator)
    z = torch.randn(n, clusters, points_per_cluster, dim, generator=generator)
    points = means + torch.einsum("bkij,bkpj->bkpi", factors, z)
    cluster = torch.arange(clusters).repeat_interleave(points_per_cluster)
    return points.reshape(n, clusters * points_per_cluster, dim), cluster
