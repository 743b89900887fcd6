"""Li & Malik's (2017) two-layer neural net family.

A net with one hidden ReLU layer, input dimension d = 2, h = 2 hidden units and p = 2 classes,
trained with softmax cross-entropy plus (λ/2)(||W1||² + ||W2||²), λ = 5e-4:
f = -(1/N) Σ_i log softmax(W2 relu(W1 a_i + b1) + b2)[y_i] + (λ/2)(||W1||² + ||W2||²).
x = (W1 [h, d] row-major, b1 [h], W2 [p, h] row-major, b2 [p]) ∈ R^12 by default. Each instance:
N = 100 points, 25 from each of four multivariate Gaussians with random means and covariances
(`tasks.gaussian_data`); every Gaussian gets one random label, uniform over the p classes (as Li &
Malik; all four may share a label). Non-convex: the optimum is the best of `optimum_starts`
L-BFGS runs (a local optimum, not certified global). Starting points x0 ~ N(0, init_std²),
init_std = 1.

Out-of-distribution variations: `input_dim`, `hidden`, `classes`, `clusters`,
`points_per_cluster`, `lam`, `mean_std`, `spread`.

Shapes: a [B, N, d], y [B, N] (class indices), x [B, h d + h + p h + p].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from l2o_gym.problem import TaskFamily, check_positive_int
from tasks.checked_settings import keep_checked
from tasks.gaussian_data import check_nonnegative_float, gaussian_clusters
from tasks.gaussian_family_settings import GaussianClusterSettings, family_dataclass
from tasks.multistart_optimum import BestOfStartsOptimum


class TwoLayerNetProblem(BestOfStartsOptimum):
    """a [B, N, d] inputs, y [B, N] class indices (long); x packs W1, b1, W2, b2; the family's
    `settings` (hidden units, classes, λ)."""

    instance_fields = ("a", "y")

    def __init__(self, a: Tensor, y: Tensor, x0: Tensor, settings: TwoLayerNetFamily) -> None:
        super().__init__(x0)
        self.a, self.y, self.settings = a, y, settings
        self.hidden, self.classes, self.lam = settings.hidden, settings.classes, settings.lam

    def unpack(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """W1 [B, h, d], b1 [B, h], W2 [B, p, h], b2 [B, p]."""
        d, h, p = self.a.shape[2], self.hidden, self.classes
        sizes = (h * d, h, p * h, p)
        w1, b1, w2, b2 = torch.split(x, sizes, dim=1)
        return w1.reshape(-1, h, d), b1, w2.reshape(-1, p, h), b2

    def logits(self, x: Tensor) -> Tensor:
        w1, b1, w2, b2 = self.unpack(x)
        hidden = torch.relu(torch.einsum("bhd,bnd->bnh", w1, self.a) + b1.unsqueeze(1))
        return torch.einsum("bph,bnh->bnp", w2, hidden) + b2.unsqueeze(1)

    def loss(self, x: Tensor) -> Tensor:
        w1, _, w2, _ = self.unpack(x)
        log_probs = F.log_softmax(self.logits(x), dim=2)
        data = -log_probs.gather(2, self.y.unsqueeze(2)).squeeze(2).mean(dim=1)
        penalty = w1.pow(2).sum(dim=(1, 2)) + w2.pow(2).sum(dim=(1, 2))
        return data + 0.5 * self.lam * penalty

    def metrics(self, x: Tensor) -> dict[str, Tensor]:
        correct = self.logits(x).argmax(dim=2) == self.y
        return {"accuracy": correct.to(x.dtype).mean(dim=1)}


@family_dataclass
class TwoLayerNetFamily(GaussianClusterSettings, TaskFamily):
    """One-hidden-layer ReLU classifiers on four random Gaussian clusters (Li & Malik 2017).

    Keywords: `input_dim`, `hidden`, `classes` (>= 2), `lam` and the cluster settings
    (`GaussianClusterSettings`)."""

    description = "2-layer ReLU net d=h=p=2, softmax + L2 5e-4, 4 Gaussians x 25 random-label points (Li & Malik 2017)"
    default_action_scale = 0.75  # ~2.4x tuned Adam's lr (0.316, benchmarks/tuned_baselines.py)
    has_optimum = True

    input_dim: int = 2
    hidden: int = 2
    classes: int = 2
    lam: float = 5e-4

    def __post_init__(self) -> None:
        keep_checked(self, check_positive_int, input_dim=self.input_dim, hidden=self.hidden, classes=self.classes)
        if self.classes < 2:
            raise ValueError(f"classes must be >= 2, got {self.classes}")
        keep_checked(self, check_nonnegative_float, lam=self.lam)
        super().__post_init__()
        h, d, p = self.hidden, self.input_dim, self.classes
        self.dim = h * d + h + p * h + p

    def sample_instances(self, n: int, generator: torch.Generator, device: torch.device) -> TwoLayerNetProblem:
        a, cluster = gaussian_clusters(
            n,
            self.clusters,
            self.points_per_cluster,
            self.input_dim,
            generator,
            mean_std=self.mean_std,
            spread=self.spread,
        )
        labels = torch.randint(0, self.classes, (n, self.clusters), generator=generator)
        y = labels[:, cluster]
        x0 = self.init_std * torch.randn(n, self.dim, generator=generator)
        return TwoLayerNetProblem(a.to(device), y.to(device), x0.to(device), self)
